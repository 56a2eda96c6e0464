//! KQL's `materialize()`: a tabular expression computed once per query, however many times the
//! query reads it. Kusto documents that the expression is evaluated once and its result cached
//! for the query, so `rand()` or `new_guid()` inside it give every reader the same values.
//!
//! The binder wraps the expression in a [`MaterializeNode`], numbered per query; every reference
//! to it (a `let` used twice clones the plan) carries the same number. The node hides its input
//! from the optimizer's pushdowns (it declares no expressions, no needed columns and no limit or
//! filter pushdown), so every copy keeps the same input plan. Each copy is planned as a
//! [`MaterializeExec`] with a result cell of its own; [`share_results`] then gives the copies of
//! one physical plan a single cell, so the first to run computes the result for all. Physical
//! plans are made per execution, so a cached logical plan never shares results across requests.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, DataFusionError, Result as DfResult, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, ReplaceChildrenOptions,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use tokio::sync::OnceCell;

/// A materialized expression in the logical plan: its input and its number in the query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct MaterializeNode {
    pub input: LogicalPlan,
    pub id: u64,
}

impl MaterializeNode {
    pub fn plan(input: LogicalPlan, id: u64) -> LogicalPlan {
        LogicalPlan::Extension(Extension { node: Arc::new(MaterializeNode { input, id }) })
    }

    pub fn of(node: &dyn UserDefinedLogicalNode) -> Option<&MaterializeNode> {
        node.as_any().downcast_ref::<MaterializeNode>()
    }
}

impl UserDefinedLogicalNodeCore for MaterializeNode {
    fn name(&self) -> &str {
        "KqlMaterialize"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "KqlMaterialize: id={}", self.id)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        match inputs.pop() {
            Some(input) if inputs.is_empty() => Ok(MaterializeNode { input, id: self.id }),
            _ => internal_err!("KqlMaterialize takes exactly one input"),
        }
    }

    // Every column of the input is kept (no projection is pushed into it) and no filter or
    // limit passes it: all readers must see the one result.
    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        None
    }

    fn supports_limit_pushdown(&self) -> bool {
        false
    }
}

/// The result of a materialized expression, computed by the first reader.
type Cell = Arc<OnceCell<Result<Vec<RecordBatch>, String>>>;

/// A materialized expression in the physical plan: one partition, the input's whole result.
#[derive(Debug)]
pub struct MaterializeExec {
    input: Arc<dyn ExecutionPlan>,
    id: u64,
    cell: Cell,
    properties: Arc<PlanProperties>,
}

impl MaterializeExec {
    fn new(input: Arc<dyn ExecutionPlan>, id: u64, cell: Cell) -> Self {
        // One input partition is read in order (`collect`), so a sorted input stays sorted and
        // the sort below is kept; several are merged in no particular order.
        let ordered = input.properties().output_partitioning().partition_count() == 1;
        let eq = if ordered { input.properties().equivalence_properties().clone() } else { EquivalenceProperties::new(input.schema()) };
        let properties = Arc::new(PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        MaterializeExec { input, id, cell, properties }
    }
}

impl DisplayAs for MaterializeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "KqlMaterializeExec: id={}", self.id)
    }
}

impl ExecutionPlan for MaterializeExec {
    fn name(&self) -> &str {
        "KqlMaterializeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![self.input.properties().output_partitioning().partition_count() == 1]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
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
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = crate::security::barrier::only_child(children, "KqlMaterializeExec")?;
        Ok(Arc::new(MaterializeExec::new(input, self.id, Arc::clone(&self.cell))))
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("KqlMaterializeExec has one partition, not {partition}");
        }
        let input = Arc::clone(&self.input);
        let cell = Arc::clone(&self.cell);
        let schema = input.schema();
        let fut = async move {
            let result = cell
                .get_or_init(|| async move {
                    datafusion::physical_plan::collect(input, context).await.map_err(|e| e.to_string())
                })
                .await;
            match result {
                Ok(batches) => Ok(futures::stream::iter(batches.clone().into_iter().map(Ok))),
                Err(e) => Err(DataFusionError::Execution(e.clone())),
            }
        };
        let stream = futures::stream::once(fut);
        let flat = futures::StreamExt::flat_map(stream, |r| match r {
            Ok(s) => futures::StreamExt::boxed(s),
            Err(e) => futures::StreamExt::boxed(futures::stream::once(async move { Err(e) })),
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, flat)))
    }
}

/// Plans [`MaterializeNode`]s as [`MaterializeExec`]s, each with a cell of its own until
/// [`share_results`] joins the copies.
#[derive(Debug, Default)]
pub struct MaterializePlanner;

#[async_trait]
impl ExtensionPlanner for MaterializePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(m) = MaterializeNode::of(node) else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return internal_err!("KqlMaterialize takes exactly one input");
        };
        Ok(Some(Arc::new(MaterializeExec::new(Arc::clone(input), m.id, Cell::default()))))
    }
}

/// Gives all the copies of each materialized expression in a physical plan one result cell.
pub fn share_results(plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
    let mut cells: HashMap<u64, Cell> = HashMap::new();
    let shared = plan.transform_up(|node| {
        let Some(m) = node.downcast_ref::<MaterializeExec>() else {
            return Ok(Transformed::no(node));
        };
        let cell = Arc::clone(cells.entry(m.id).or_insert_with(|| Arc::clone(&m.cell)));
        if Arc::ptr_eq(&cell, &m.cell) {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(Arc::new(MaterializeExec::new(Arc::clone(&m.input), m.id, cell)) as Arc<dyn ExecutionPlan>))
    })?;
    Ok(shared.data)
}
