//! The result of one request: a KQL schema and Arrow batches.

use datafusion::arrow::record_batch::RecordBatch;
use kustodian_planner::KqlSchema;

/// What a query or command returns. The KQL schema says which `Utf8` columns are `dynamic`
/// (JSON text) or `guid`, so encoders can print them as Kusto does.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    pub schema: KqlSchema,
    pub batches: Vec<RecordBatch>,
}

impl QueryOutput {
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}
