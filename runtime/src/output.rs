//! The result of one request: a KQL schema and Arrow batches, collected or as a stream.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use kustodian_planner::KqlSchema;

use crate::cluster::conform_batch;
use crate::error::Result;

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

/// A result read batch by batch as the engine produces it, so a caller can write rows out
/// without holding the whole result. Batches come out cast to the KQL schema's Arrow types;
/// empty batches are skipped.
pub struct QueryStream {
    pub schema: KqlSchema,
    arrow: SchemaRef,
    source: Source,
}

enum Source {
    Ready(std::vec::IntoIter<RecordBatch>),
    Engine(SendableRecordBatchStream),
}

impl QueryStream {
    /// A stream over a result that is already in memory (command results).
    pub fn ready(output: QueryOutput) -> Self {
        let arrow = output.schema.arrow_schema();
        QueryStream { schema: output.schema, arrow, source: Source::Ready(output.batches.into_iter()) }
    }

    /// A stream over an executing plan.
    pub(crate) fn engine(schema: KqlSchema, stream: SendableRecordBatchStream) -> Self {
        let arrow = schema.arrow_schema();
        QueryStream { schema, arrow, source: Source::Engine(stream) }
    }

    /// The next non-empty batch, `None` at the end.
    pub async fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            let batch = match &mut self.source {
                Source::Ready(it) => it.next()?,
                Source::Engine(s) => match s.next().await? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(e.into())),
                },
            };
            if batch.num_rows() > 0 {
                return Some(conform_batch(batch, &self.arrow));
            }
        }
    }

    /// Reads the whole result.
    pub async fn collect(mut self) -> Result<QueryOutput> {
        let mut batches = Vec::new();
        while let Some(b) = self.next_batch().await {
            batches.push(b?);
        }
        Ok(QueryOutput { schema: self.schema, batches })
    }
}
