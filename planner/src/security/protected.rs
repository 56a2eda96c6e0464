//! Scans of protected tables, marked: the binder reads a table whose policy it substitutes
//! through [`ProtectedTable`], whose physical scan is a [`ProtectedScanExec`] naming the table.
//! The verifier can then check placement in both plans: every logical scan of a protected table
//! reads through this provider, and every physical scan it produces has that table's barrier as
//! an ancestor (a physical plan otherwise names no table).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result as DfResult, Statistics};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::projection::{ProjectionExec, all_columns, make_with_child};
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};

use super::barrier::only_child;

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
/// table. Like [`super::barrier::BarrierExec`], it lets only projections of plain columns
/// swap below it.
#[derive(Debug)]
pub struct ProtectedScanExec {
    entity: String,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl ProtectedScanExec {
    pub fn new(entity: impl Into<String>, input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::clone(input.properties());
        ProtectedScanExec { entity: entity.into(), input, properties }
    }

    pub fn entity(&self) -> &str {
        &self.entity
    }
}

impl DisplayAs for ProtectedScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ProtectedScanExec: table={}", self.entity)
    }
}

impl ExecutionPlan for ProtectedScanExec {
    fn name(&self) -> &str {
        "ProtectedScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = only_child(children, "ProtectedScanExec")?;
        Ok(match options.children_properties {
            ChildrenPropertiesMode::Keep => Arc::new(ProtectedScanExec {
                entity: self.entity.clone(),
                input,
                properties: Arc::clone(&self.properties),
            }),
            ChildrenPropertiesMode::Recompute => Arc::new(ProtectedScanExec::new(self.entity.clone(), input)),
        })
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn with_new_children_and_same_properties(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep))
    }

    /// Projections of plain columns compute nothing: they may narrow the scan.
    fn try_swapping_with_projection(&self, projection: &ProjectionExec) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        if !all_columns(projection.expr()) {
            return Ok(None);
        }
        let narrowed = make_with_child(projection, &self.input)?;
        Ok(Some(Arc::new(ProtectedScanExec::new(self.entity.clone(), narrowed))))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}
