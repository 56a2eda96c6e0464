//! The rows of KQL's `range` operator, generated batch by batch as they are read: `range x
//! from 1 to 100000000 step 1 | count` holds one batch at a time, never the whole series (a
//! `range()` list literal unnested would be folded into the plan and copied in full).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::memory::{LazyBatchGenerator, LazyMemoryExec};
use parking_lot::RwLock;

const BATCH: i64 = 8192;

/// `count` rows of one `Int64` column `__series` holding 0, 1, .., count-1.
#[derive(Debug)]
pub struct RangeTable {
    count: i64,
    schema: SchemaRef,
}

impl RangeTable {
    pub fn new(count: i64) -> Self {
        RangeTable { count: count.max(0), schema: Arc::new(Schema::new(vec![Field::new("__series", DataType::Int64, false)])) }
    }
}

#[async_trait]
impl TableProvider for RangeTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The only column, or none (`range ... | count` reads no column).
        let schema = match projection {
            Some(p) if p.is_empty() => Arc::new(Schema::empty()),
            _ => Arc::clone(&self.schema),
        };
        let generator = Series { next: 0, count: self.count, schema: Arc::clone(&schema) };
        Ok(Arc::new(LazyMemoryExec::try_new(schema, vec![Arc::new(RwLock::new(generator))])?))
    }
}

#[derive(Debug)]
struct Series {
    next: i64,
    count: i64,
    schema: SchemaRef,
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "range: rows={}", self.count)
    }
}

impl LazyBatchGenerator for Series {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn generate_next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.next >= self.count {
            return Ok(None);
        }
        let end = (self.next + BATCH).min(self.count);
        let rows = usize::try_from(end - self.next).unwrap_or(0);
        let columns: Vec<ArrayRef> =
            if self.schema.fields().is_empty() { vec![] } else { vec![Arc::new(Int64Array::from_iter_values(self.next..end))] };
        self.next = end;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(Some(RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)?))
    }

    fn reset_state(&self) -> Arc<RwLock<dyn LazyBatchGenerator>> {
        Arc::new(RwLock::new(Series { next: 0, count: self.count, schema: Arc::clone(&self.schema) }))
    }
}
