//! The security barrier: a logical node and a physical exec that wrap a row-level-security
//! policy's sub-plan so that nothing the user wrote is evaluated below it.
//!
//! Why two layers (see ARCHITECTURE.md): DataFusion's logical `PushDownFilter` would merge user
//! predicates into the policy's filter, and physical `FilterPushdown`/`ProjectionPushdown` would
//! move user predicates and projections under it; either lets a fallible user expression run on
//! hidden rows and leak their values through errors. The logical node blocks predicate pushdown
//! (the default `prevent_predicate_push_down_columns` is "all columns") while still allowing
//! column pruning; the physical exec keeps the `ExecutionPlan` default that refuses filter
//! pushdown, lets only projections of plain columns pass below it (they compute nothing), and
//! reports unknown statistics so no exact row count of the raw table reaches the optimizer.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchemaRef, Result as DfResult, internal_err};

use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};
use datafusion::common::config::ConfigOptions;
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::projection::{ProjectionExec, all_columns, make_with_child};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use datafusion::catalog::Session;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;

use super::provenance::Admitted;

/// Logical barrier around the plan of one table's row-level-security policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecurityBarrier {
    /// `[database].[table]` of the protected table, for explain output and verification.
    pub table: String,
    pub input: LogicalPlan,
    schema: DFSchemaRef,
}

impl SecurityBarrier {
    pub fn new(table: impl Into<String>, input: LogicalPlan) -> Self {
        let schema = input.schema().clone();
        SecurityBarrier { table: table.into(), input, schema }
    }

    /// Wraps `input` in a barrier and returns the extension plan node.
    pub fn wrap(table: impl Into<String>, input: LogicalPlan) -> LogicalPlan {
        LogicalPlan::Extension(Extension { node: Arc::new(SecurityBarrier::new(table, input)) })
    }

    /// The barrier of an extension node, if it is one.
    pub fn of(node: &dyn UserDefinedLogicalNode) -> Option<&SecurityBarrier> {
        node.as_any().downcast_ref::<SecurityBarrier>()
    }
}

impl PartialOrd for SecurityBarrier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.table.partial_cmp(&other.table) {
            Some(Ordering::Equal) => self.input.partial_cmp(&other.input),
            ord => ord,
        }
    }
}

impl UserDefinedLogicalNodeCore for SecurityBarrier {
    fn name(&self) -> &str {
        "SecurityBarrier"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    // `prevent_predicate_push_down_columns` keeps its default: every column, so no predicate
    // crosses the barrier.

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SecurityBarrier: table={}", self.table)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        match inputs.pop() {
            Some(input) if inputs.is_empty() => Ok(SecurityBarrier::new(self.table.clone(), input)),
            _ => internal_err!("SecurityBarrier takes exactly one input"),
        }
    }

    /// The barrier passes columns through unchanged, so column pruning may reach the scan.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        Some(vec![output_columns.to_vec()])
    }
}

/// Physical pass-through node for [`SecurityBarrier`]. It keeps the `ExecutionPlan` defaults
/// that refuse filter pushdown (`gather_filters_for_pushdown`), projection pushdown
/// (`try_swapping_with_projection`, but for projections of plain columns) and limit pushdown,
/// and exposes no statistics.
pub type BarrierExec = TableMarkExec<Barrier>;

/// What a [`TableMarkExec`] marks: its name in plans, and which projections may swap below it.
pub trait Mark: fmt::Debug + Send + Sync + 'static {
    const NAME: &'static str;
    /// Whether a projection of plain columns over `input_width` columns may pass below.
    fn narrows(projected: usize, input_width: usize) -> bool;
    /// Whether the physical filter pushdown may carry filters through to the input. Never
    /// through a barrier: what reaches it from above is the user's.
    const PASSES_FILTERS: bool = false;
    /// Whether the node guards the plan below it: it records the expressions that plan held
    /// when it was built ([`Admitted`]) for the verifier to hold later rewrites against.
    const GUARDS: bool = false;
}

/// The barrier around a policy's plan.
#[derive(Debug)]
pub struct Barrier;

impl Mark for Barrier {
    const NAME: &'static str = "BarrierExec";
    const GUARDS: bool = true;
    /// A projection of plain columns may pass below the barrier: it evaluates nothing (cannot
    /// fail, observes no value), it only narrows the rows the policy lets through to the
    /// columns the query uses, so the policy's filter can drop the others instead of copying
    /// them (`T | where Amount > 500 | count` under an own-rows policy copied every visible
    /// row's Owner string only to throw it away: 1.35x the handwritten filter). Projections
    /// that compute anything stay above.
    fn narrows(projected: usize, input_width: usize) -> bool {
        projected < input_width
    }
}

/// A pass-through physical node that names a table: the barrier of its policy
/// ([`BarrierExec`]) or the policy's own scan of it (`protected::ProtectedScanExec`). Batches
/// pass without a copy; only projections of plain columns may swap below it.
#[derive(Debug)]
pub struct TableMarkExec<M: Mark> {
    table: String,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
    /// For a barrier, the expressions of its plan when it was built (see [`Admitted`]); kept
    /// as physical rules rewrite the plan below it.
    admitted: Arc<Admitted>,
    mark: std::marker::PhantomData<M>,
}

impl<M: Mark> TableMarkExec<M> {
    /// A mark over `input`; a barrier records the expressions `input` holds now, as planned
    /// from the verified logical plan, before any physical rule ran.
    pub fn new(table: impl Into<String>, input: Arc<dyn ExecutionPlan>) -> Self {
        let admitted = if M::GUARDS { Admitted::capture(&input, &|p| p.is::<BarrierExec>()) } else { Admitted::default() };
        Self::with_admitted(table.into(), input, Arc::new(admitted))
    }

    fn with_admitted(table: String, input: Arc<dyn ExecutionPlan>, admitted: Arc<Admitted>) -> Self {
        let properties = Arc::clone(input.properties());
        TableMarkExec { table, input, properties, admitted, mark: std::marker::PhantomData }
    }

    /// What may run below this barrier besides total operators (empty for other marks).
    pub fn admitted(&self) -> &Admitted {
        &self.admitted
    }

    /// The table, `[db].[table]`.
    pub fn table(&self) -> &str {
        &self.table
    }
}

impl<M: Mark> DisplayAs for TableMarkExec<M> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: table={}", M::NAME, self.table)
    }
}

impl<M: Mark> ExecutionPlan for TableMarkExec<M> {
    fn name(&self) -> &str {
        M::NAME
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
        let input = only_child(children, M::NAME)?;
        Ok(match options.children_properties {
            ChildrenPropertiesMode::Keep => Arc::new(TableMarkExec::<M> {
                table: self.table.clone(),
                input,
                properties: Arc::clone(&self.properties),
                admitted: Arc::clone(&self.admitted),
                mark: std::marker::PhantomData,
            }),
            ChildrenPropertiesMode::Recompute => {
                Arc::new(TableMarkExec::<M>::with_admitted(self.table.clone(), input, Arc::clone(&self.admitted)))
            }
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

    /// Projections of plain columns compute nothing: they may pass below when the mark allows.
    fn try_swapping_with_projection(&self, projection: &ProjectionExec) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        if !all_columns(projection.expr()) || !M::narrows(projection.expr().len(), projection.input().schema().fields().len()) {
            return Ok(None);
        }
        let narrowed = make_with_child(projection, &self.input)?;
        Ok(Some(Arc::new(TableMarkExec::<M>::with_admitted(self.table.clone(), narrowed, Arc::clone(&self.admitted)))))
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> DfResult<FilterDescription> {
        if M::PASSES_FILTERS {
            FilterDescription::from_children(parent_filters, &self.children())
        } else {
            Ok(FilterDescription::all_unsupported(&parent_filters, &self.children()))
        }
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> DfResult<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        if M::PASSES_FILTERS {
            Ok(FilterPushdownPropagation::if_all(child_pushdown_result))
        } else {
            Ok(FilterPushdownPropagation::all_unsupported(child_pushdown_result))
        }
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        // Pass-through: no copy of the batches.
        self.input.execute(partition, context)
    }
}

/// The one child given to `replace_children` of a single-input exec named `name`.
pub(crate) fn only_child(mut children: Vec<Arc<dyn ExecutionPlan>>, name: &str) -> DfResult<Arc<dyn ExecutionPlan>> {
    match (children.pop(), children.is_empty()) {
        (Some(child), true) => Ok(child),
        _ => internal_err!("{name} takes exactly one child"),
    }
}

/// Plans [`SecurityBarrier`] nodes as [`BarrierExec`].
#[derive(Debug, Default)]
pub struct BarrierPlanner;

#[async_trait]
impl ExtensionPlanner for BarrierPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(barrier) = SecurityBarrier::of(node) else {
            return Ok(None);
        };
        match physical_inputs {
            [input] => Ok(Some(Arc::new(BarrierExec::new(barrier.table.clone(), Arc::clone(input))))),
            _ => internal_err!("SecurityBarrier takes exactly one input"),
        }
    }
}

/// Counts the distinct barriers in a logical plan (subqueries included). Identical barriers
/// count once: the physical planner plans identical scalar subqueries once
/// (`let s = toscalar(T | ...); print a = s, b = s` reads `T` through one barrier), so a
/// plain count would demand more barrier execs than a correct physical plan has.
pub fn count_logical_barriers(plan: &LogicalPlan) -> usize {
    let mut seen: Vec<SecurityBarrier> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Extension(ext) = node
            && let Some(b) = SecurityBarrier::of(ext.node.as_ref())
            && !seen.contains(b)
        {
            seen.push(b.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    seen.len()
}

/// Counts the barrier execs in a physical plan.
pub fn count_physical_barriers(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let own = usize::from(plan.is::<BarrierExec>());
    own + plan.children().iter().map(|c| count_physical_barriers(c)).sum::<usize>()
}
