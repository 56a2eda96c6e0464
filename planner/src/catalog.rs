//! The catalog the binder resolves names against; the runtime implements it, tests use an
//! in-memory one.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use kustodian_parser::ast;

use crate::error::Result;
use crate::types::KqlSchema;

/// A table's row-level-security policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsPolicy {
    pub enabled: bool,
    /// KQL text: a query, a stored function's name, or a function call.
    pub query: String,
    /// What the policy's names resolved to when it was validated (closed world): binding it
    /// with any other stored function, another version of one, or a table where there was none
    /// fails. None for a policy stored before dependencies were recorded: it may then call no
    /// stored function at all.
    pub functions: Option<Vec<PolicyDep>>,
}

/// What a name in a policy resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum DepKind {
    Table,
    Function,
}

/// A stored table or function a policy depends on: its kind, its name and, for a function, the
/// catalog's version of its definition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PolicyDep {
    pub kind: DepKind,
    pub name: String,
    #[serde(default)]
    pub version: String,
}

/// What the binder needs to know of a table.
#[derive(Clone)]
pub struct TableInfo {
    pub database: String,
    pub name: String,
    pub schema: KqlSchema,
    pub provider: Arc<dyn TableProvider>,
    pub rls: Option<RlsPolicy>,
    pub restricted_view_access: bool,
    /// A materialized view (read by name or `materialized_view()`), not a table. Its RLS
    /// policy is substituted like a table's, at the same choke point.
    pub materialized_view: bool,
}

impl TableInfo {
    /// `[db].[table]`, Kusto's entity name form.
    pub fn entity_name(&self) -> String {
        format!("[{}].[{}]", self.database, self.name)
    }
}

/// A stored function: its parameters and body as parsed from its definition.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub database: String,
    pub name: String,
    pub params: Vec<ast::Param>,
    pub body: Vec<ast::Statement>,
    /// Identifies this definition: any change of parameters or body changes it.
    pub version: String,
}

/// Name resolution for the binder. Lookups of tables and functions are case-sensitive, as in
/// Kusto; database names are case-insensitive.
///
/// Every lookup is fallible on purpose: an implementation refuses (with
/// [`PlanError::Forbidden`](crate::PlanError)) any lookup in a database the caller may not
/// read, whether or not the name exists there. The binder learns nothing about such a database
/// (no existence, no schema, no "did you mean"), because it cannot ask without being refused.
pub trait Catalog: Send + Sync {
    /// The canonical name of a database, if it exists.
    fn database(&self, name: &str) -> Result<Option<String>>;
    /// A table or materialized view. Refused also for a table the caller may not read
    /// (restricted view access), before its schema reaches the binder.
    fn table(&self, database: &str, name: &str) -> Result<Option<TableInfo>>;
    fn function(&self, database: &str, name: &str) -> Result<Option<FunctionInfo>>;
    /// Table names of a database (for `union T*` and did-you-mean hints).
    fn table_names(&self, database: &str) -> Result<Vec<String>>;
    /// Runs part of a request that the binder needs the result of before it can finish the
    /// request's plan (the columns of `evaluate bag_unpack` or `pivot` without an output
    /// schema), as the request's caller: authorized, verified and executed like a query. A
    /// catalog that cannot run queries refuses.
    fn probe(&self, planned: &crate::planned::PlannedQuery) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
        let _ = planned;
        Err(crate::error::PlanError::unsupported(
            "running a query while planning (evaluate bag_unpack or pivot without an output schema, here)",
        ))
    }
}

/// A table provider that says how many partitions its scans produce, for a provider the planner
/// cannot look into (the runtime's tables on disk): the planner sizes its session by the widest
/// scan of a plan, as it does for a `MemTable`'s batches. Everything else is the inner provider's.
#[derive(Debug)]
pub struct PartitionedTable {
    inner: Arc<dyn TableProvider>,
    partitions: usize,
}

impl PartitionedTable {
    pub fn new(inner: Arc<dyn TableProvider>, partitions: usize) -> Self {
        PartitionedTable { inner, partitions: partitions.max(1) }
    }

    pub fn partitions(&self) -> usize {
        self.partitions
    }

    pub fn inner(&self) -> &Arc<dyn TableProvider> {
        &self.inner
    }
}

#[async_trait::async_trait]
impl TableProvider for PartitionedTable {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::logical_expr::Expr],
    ) -> datafusion::common::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<datafusion::common::Statistics> {
        self.inner.statistics()
    }
}
