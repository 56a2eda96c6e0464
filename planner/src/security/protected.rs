//! Scans of protected tables, marked: the binder reads a table whose policy it substitutes
//! through [`ProtectedTable`], whose physical scan is a [`ProtectedScanExec`] naming the table.
//! The verifier can then check placement in both plans: every logical scan of a protected table
//! reads through this provider, and every physical scan it produces has that table's barrier as
//! an ancestor (a physical plan otherwise names no table).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Result as DfResult, Statistics};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::barrier::{Mark, TableMarkExec};

/// A table read under a row-level-security policy (the policy's own scan of its table).
#[derive(Debug)]
pub struct ProtectedTable {
    entity: String,
    inner: Arc<dyn TableProvider>,
}

impl ProtectedTable {
    pub fn new(entity: impl Into<String>, inner: Arc<dyn TableProvider>) -> Self {
        ProtectedTable { entity: entity.into(), inner }
    }

    /// `[db].[table]`
    pub fn entity(&self) -> &str {
        &self.entity
    }

    pub fn inner(&self) -> &Arc<dyn TableProvider> {
        &self.inner
    }
}

#[async_trait]
impl TableProvider for ProtectedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = self.inner.scan(state, projection, filters, limit).await?;
        Ok(Arc::new(ProtectedScanExec::new(self.entity.clone(), input)))
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }
}

/// The physical scan of a [`ProtectedTable`]: a pass-through over the inner scan that names the
/// table, letting projections of plain columns swap below it.
pub type ProtectedScanExec = TableMarkExec<ProtectedScan>;

/// The policy's own scan of its table.
#[derive(Debug)]
pub struct ProtectedScan;

impl Mark for ProtectedScan {
    const NAME: &'static str = "ProtectedScanExec";
    /// What reaches the policy's own scan comes from inside the barrier (the policy's filter
    /// and the total predicates moved into it): it may prune the table's files.
    const PASSES_FILTERS: bool = true;
    fn narrows(_projected: usize, _input_width: usize) -> bool {
        true
    }
}
