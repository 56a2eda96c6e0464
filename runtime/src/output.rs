//! The result of one request: a KQL schema and Arrow batches, collected or as a stream.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, DurationNanosecondArray, Int64Array, StringArray, TimestampNanosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, execute_stream};
use futures::StreamExt;
use kustodian_planner::{KqlColumn, KqlSchema, KqlType};

use crate::error::{Result, RuntimeError};

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
    /// The tables the request reads (`[db].[table]`), through functions, views and policies.
    pub tables: Vec<String>,
    /// The row-level security policies substituted into it (`[db].[table]`).
    pub policies: Vec<String>,
    arrow: SchemaRef,
    source: Source,
    /// Names the damaged extent behind a failed decryption (see [`Diagnose`]).
    diagnose: Option<Diagnose>,
}

/// Finds which extent of the tables a query read fails to decrypt: run only when a scan failed
/// to decrypt a page (DataFusion's error does not say which file), it reads the extents again
/// one by one.
pub(crate) type Diagnose = std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>;

enum Source {
    Ready(std::vec::IntoIter<RecordBatch>),
    Engine(SendableRecordBatchStream),
}

impl QueryStream {
    /// A stream over a result that is already in memory (command results).
    pub fn ready(output: QueryOutput) -> Self {
        let arrow = output.schema.arrow_schema();
        QueryStream {
            schema: output.schema,
            tables: Vec::new(),
            policies: Vec::new(),
            arrow,
            source: Source::Ready(output.batches.into_iter()),
            diagnose: None,
        }
    }

    /// A stream over an executing plan.
    pub(crate) fn engine(schema: KqlSchema, stream: SendableRecordBatchStream) -> Self {
        let arrow = schema.arrow_schema();
        QueryStream { schema, tables: Vec::new(), policies: Vec::new(), arrow, source: Source::Engine(stream), diagnose: None }
    }

    /// Names the damaged extent when a scan fails to decrypt.
    pub(crate) fn diagnosing(mut self, diagnose: Option<Diagnose>) -> Self {
        self.diagnose = diagnose;
        self
    }

    /// Records what the request read and which policies applied (for an audit log).
    pub(crate) fn reading(mut self, tables: &[kustodian_planner::TableAccess], policies: &[kustodian_planner::AppliedPolicy]) -> Self {
        self.tables = tables.iter().map(|t| format!("[{}].[{}]", t.database, t.table)).collect();
        self.tables.sort();
        self.tables.dedup();
        self.policies = policies.iter().map(|p| p.table.clone()).collect();
        self.policies.dedup();
        self
    }

    /// The next non-empty batch, `None` at the end.
    pub async fn next_batch(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            let batch = match &mut self.source {
                Source::Ready(it) => it.next()?,
                Source::Engine(s) => match s.next().await? {
                    Ok(b) => b,
                    Err(e) => {
                        let text = e.to_string();
                        if text.contains("decrypt")
                            && let Some(found) = self.diagnose.as_ref().and_then(|d| blocking(|| d()))
                        {
                            return Some(Err(crate::error::RuntimeError::Internal(format!("{found}: {text}"))));
                        }
                        return Some(Err(e.into()));
                    }
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

/// Runs blocking work from async code: through `block_in_place` on a multi-threaded runtime
/// (other tasks move to other workers), directly elsewhere.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Casts batches to a table's Arrow schema (types and field metadata), by position; drops
/// empty batches.
pub(crate) fn conform(batches: Vec<RecordBatch>, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    batches.into_iter().filter(|b| b.num_rows() > 0).map(|b| conform_batch(b, schema)).collect()
}

/// Casts one batch to a table's Arrow schema (types and field metadata), by position.
pub(crate) fn conform_batch(b: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if b.num_columns() != schema.fields().len() {
        return Err(RuntimeError::bad_request(format!(
            "the data has {} columns but the table has {}",
            b.num_columns(),
            schema.fields().len()
        )));
    }
    let cols: Vec<ArrayRef> = b
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(Arc::clone(c)) } else { cast(c, f.data_type()) })
        .collect::<std::result::Result<_, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), cols)?)
}

/// Runs a physical plan and returns its output as one stream. When the plan ends in several
/// partitions (the legs of a `union`, the slices of a table), they all run at once, each into a
/// small buffer, and their batches come out partition after partition: the same request gives
/// its rows in the same order every time (`union` legs in the order written), where
/// DataFusion's coalescing would interleave them as they finish.
pub(crate) fn ordered_stream(
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<datafusion::execution::TaskContext>,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream> {
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::StreamExt;
    let partitions = plan.properties().output_partitioning().partition_count();
    if partitions <= 1 {
        return Ok(execute_stream(plan, task)?);
    }
    let schema = plan.schema();
    let mut receivers = Vec::with_capacity(partitions);
    for i in 0..partitions {
        let mut stream = plan.execute(i, Arc::clone(&task))?;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(batch) = stream.next().await {
                let failed = batch.is_err();
                // The reader is gone (the request was dropped): stop.
                if tx.send(batch).await.is_err() || failed {
                    break;
                }
            }
        });
        receivers.push(rx);
    }
    let batches = futures::stream::iter(receivers).flat_map(tokio_stream_of);
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}

fn tokio_stream_of<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A value of a command's result table.
pub(crate) enum V {
    S(String),
    L(i64),
    B(bool),
    /// A datetime (ns since the Unix epoch), or null.
    D(Option<i64>),
    /// A timespan (ns), or null.
    Ts(Option<i64>),
    R(f64),
}

/// The columns of a policy command's result (`.show|.alter|.delete ... policy ...`).
pub(crate) const POLICY_COLS: &[(&str, KqlType)] = &[
    ("PolicyName", KqlType::String),
    ("EntityName", KqlType::String),
    ("Policy", KqlType::String),
    ("ChildEntities", KqlType::String),
    ("EntityType", KqlType::String),
];

/// Builds a result table of string, long and bool columns.
pub(crate) fn table(cols: &[(&str, KqlType)], rows: Vec<Vec<V>>) -> Result<QueryOutput> {
    let schema = KqlSchema::new(cols.iter().map(|(n, t)| KqlColumn::new(*n, *t)).collect());
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, (_, t)) in cols.iter().enumerate() {
        let arr: ArrayRef = match t {
            KqlType::Long => Arc::new(Int64Array::from(
                rows.iter().map(|r| match r.get(i) { Some(V::L(v)) => Some(*v), _ => None }).collect::<Vec<_>>(),
            )),
            KqlType::Bool => Arc::new(BooleanArray::from(
                rows.iter().map(|r| match r.get(i) { Some(V::B(v)) => Some(*v), _ => None }).collect::<Vec<_>>(),
            )),
            KqlType::Datetime => Arc::new(TimestampNanosecondArray::from(
                rows.iter().map(|r| match r.get(i) { Some(V::D(v)) => *v, _ => None }).collect::<Vec<_>>(),
            )),
            KqlType::Timespan => Arc::new(DurationNanosecondArray::from(
                rows.iter().map(|r| match r.get(i) { Some(V::Ts(v)) => *v, _ => None }).collect::<Vec<_>>(),
            )),
            KqlType::Real => Arc::new(datafusion::arrow::array::Float64Array::from(
                rows.iter().map(|r| match r.get(i) { Some(V::R(v)) => Some(*v), _ => None }).collect::<Vec<_>>(),
            )),
            _ => Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| match r.get(i) { Some(V::S(v)) => Some(v.clone()), _ => None })
                    .collect::<Vec<_>>(),
            )),
        };
        arrays.push(arr);
    }
    let batch = RecordBatch::try_new(schema.arrow_schema(), arrays)?;
    Ok(QueryOutput { schema, batches: vec![batch] })
}
