//! Direct lowering of small plans: a bound logical plan straight to its physical plan, without
//! DataFusion's logical optimizer, physical planner and physical optimizer.
//!
//! On tables that fit in one partition (the bundled sample database, reference and mapping
//! tables), a query's execution takes microseconds, and those three stages cost several times
//! more: over the corpus, about 300 µs of a 390 µs request (issue 5). Most of it is generic
//! work done for plans that need none of it: rebuilding every projection to prune columns,
//! simplifying expressions that are already simple, and computing equivalence properties for
//! physical rules that find nothing to do on one partition.
//!
//! This module lowers the common shapes (scans, `datatable`, filters, projections, sorts,
//! limits, aggregates, unions, security barriers) node by node, pruning columns as it goes
//! down, and leaves every other plan to DataFusion ([`applies`], [`blocker`]). It executes the
//! bound plan as it is: nothing moves across a security barrier, so it is as safe as the plan
//! the binder and RLS substitution produced, which `verify_logical` checked. It does not
//! simplify expressions: a plan holding a function that DataFusion only evaluates once
//! simplified (`now`, `arrow_cast`...) is not lowered here. Projections are
//! [`PlainProjectionExec`]s, without the equivalence analysis only physical rules use. A union's
//! legs stay one partition each, merged where an operator needs one input partition. The
//! result must need no physical rule: [`lower`] declines (`None`) a plan with an operator whose
//! required input ordering or distribution does not already hold.
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result as DfResult, internal_err};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::logical_plan::{FetchType, SkipType};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, create_physical_expr, create_physical_sort_exprs};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
use datafusion::physical_expr::projection::{ProjectionExpr, ProjectionExprs, Projector};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::StreamExt;
use futures::future::BoxFuture;

use crate::security::barrier::{BarrierExec, SecurityBarrier};

/// DataFusion functions whose `invoke` fails unless the expression simplifier rewrote them
/// first (their `simplify` is not an optimization but their implementation).
const NEED_SIMPLIFY: &[&str] = &[
    "now",
    "current_date",
    "current_time",
    "coalesce",
    "nvl",
    "nvl2",
    "arrow_cast",
    "arrow_try_cast",
    "cast_to_type",
    "try_cast_to_type",
];

/// Whether the plan has only the shapes this module lowers. Tables' partitioning is checked by
/// the caller (one partition each) and again by [`lower`].
pub fn applies(plan: &LogicalPlan) -> bool {
    blocker(plan).is_none()
}

/// What keeps a plan from being lowered directly: the first node or expression of a shape
/// this module does not lower (`None`: it lowers them all).
pub fn blocker(plan: &LogicalPlan) -> Option<String> {
    let mut found = None;
    let _ = plan.apply(|node| {
        found = node_blocker(node);
        Ok(if found.is_none() { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
    });
    found
}

fn node_blocker(node: &LogicalPlan) -> Option<String> {
    let shape = match node {
        LogicalPlan::TableScan(scan) => scan.filters.is_empty() && scan.fetch.is_none() && source_as_provider(&scan.source).is_ok(),
        LogicalPlan::Limit(limit) => {
            matches!(limit.get_skip_type(), Ok(SkipType::Literal(_))) && matches!(limit.get_fetch_type(), Ok(FetchType::Literal(_)))
        }
        // An ordered aggregate that needs its input sorted says so in its required input
        // ordering, and `lower` then declines the plan (`first_value` ordered by a column, as
        // `arg_max` is, does not: it keeps the best row itself).
        LogicalPlan::Aggregate(agg) => agg.aggr_expr.iter().all(|e| match e {
            Expr::Alias(a) => matches!(a.expr.as_ref(), Expr::AggregateFunction(_)),
            e => matches!(e, Expr::AggregateFunction(_)),
        }),
        LogicalPlan::Extension(ext) => SecurityBarrier::of(ext.node.as_ref()).is_some(),
        LogicalPlan::Values(v) => !v.values.is_empty(),
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::EmptyRelation(_)
        | LogicalPlan::Union(_) => true,
        _ => false,
    };
    if !shape {
        let shown = node.display().to_string();
        return Some(shown.split(':').next().unwrap_or(&shown).to_string());
    }
    // By reference: `expressions()` would clone every expression of every node, per request.
    let mut found = None;
    let _ = node.apply_expressions(|e| {
        found = expr_blocker(e);
        Ok(if found.is_none() { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
    });
    found
}

fn expr_blocker(e: &Expr) -> Option<String> {
    let mut found = None;
    let _ = e.apply(|e| {
        let blocked = match e {
            Expr::ScalarFunction(f) => NEED_SIMPLIFY.contains(&f.func.name()),
            Expr::ScalarSubquery(_)
            | Expr::Exists(_)
            | Expr::InSubquery(_)
            | Expr::SetComparison(_)
            | Expr::OuterReferenceColumn(..)
            | Expr::Placeholder(_)
            | Expr::GroupingSet(_)
            | Expr::Unnest(_)
            | Expr::WindowFunction(_) => true,
            #[allow(deprecated)]
            Expr::Wildcard { .. } => true,
            _ => false,
        };
        if blocked {
            found = Some(match e {
                Expr::ScalarFunction(f) => format!("function {}", f.func.name()),
                other => format!("expression {}", other.variant_name()),
            });
        }
        Ok(if blocked { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}

/// A lowered node: its physical plan, and for each of its output columns the index of the
/// logical column it holds (a subset of the logical node's columns: those needed above).
struct Lowered {
    exec: Arc<dyn ExecutionPlan>,
    cols: Vec<usize>,
}

/// Lowers a plan for which [`applies`] holds. `Ok(None)`: the physical plan would need
/// DataFusion's physical rules (more than one partition somewhere, an operator requiring a
/// sorted or distributed input); plan it the usual way.
pub async fn lower(plan: &LogicalPlan, state: &SessionState) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
    let width = plan.schema().fields().len();
    let lowered = lower_node(plan, vec![true; width], state).await?;
    // The root outputs every column, in order.
    let all: Vec<usize> = (0..width).collect();
    let exec = if lowered.cols == all { lowered.exec } else { select(plan.schema(), lowered, &all)? };
    if !needs_no_rules(&exec) {
        return Ok(None);
    }
    // A table on disk: the filters above its scan go into the Parquet source, which skips row
    // groups and pages by their statistics and filters while decoding. DataFusion's own rule,
    // the one its physical optimizer runs; it stops at security barriers as there.
    if reads_files(&exec) {
        use datafusion::physical_optimizer::PhysicalOptimizerRule;
        let pushed = datafusion::physical_optimizer::filter_pushdown::FilterPushdown::new().optimize(exec, state.config_options())?;
        return Ok(Some(pushed));
    }
    Ok(Some(exec))
}

/// Whether a plan scans files (a `DataSourceExec` over a file scan).
fn reads_files(exec: &Arc<dyn ExecutionPlan>) -> bool {
    let own = exec
        .downcast_ref::<datafusion::datasource::source::DataSourceExec>()
        .is_some_and(|d| d.data_source().downcast_ref::<datafusion::datasource::physical_plan::FileScanConfig>().is_some());
    own || exec.children().iter().any(|c| reads_files(c))
}

/// The logical columns `cols` of a lowered node, in that order.
fn select(schema: &DFSchema, lowered: Lowered, cols: &[usize]) -> DfResult<Arc<dyn ExecutionPlan>> {
    let exprs = cols
        .iter()
        .map(|&i| {
            let Some(at) = lowered.cols.iter().position(|&c| c == i) else {
                return internal_err!("direct lowering lost column {i}");
            };
            let name = schema.field(i).name().clone();
            let expr: Arc<dyn PhysicalExpr> = Arc::new(datafusion::physical_expr::expressions::Column::new(&name, at));
            Ok(ProjectionExpr { expr, alias: name })
        })
        .collect::<DfResult<Vec<_>>>()?;
    let output = if cols.iter().copied().eq(0..schema.fields().len()) { Arc::new(schema.clone()) } else { schema_of(schema, cols)? };
    Ok(Arc::new(PlainProjectionExec::try_new(exprs, lowered.exec, &output)?))
}

/// One partition of `exec`'s output, for an operator that needs its whole input in one (a
/// union's legs are a partition each): merged as DataFusion's distribution rule would.
fn single_partition(exec: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    if exec.output_partitioning().partition_count() == 1 { exec } else { Arc::new(CoalescePartitionsExec::new(exec)) }
}

/// Whether every operator's input requirements already hold (as DataFusion's sanity check
/// verifies them): a single partition wherever an operator needs one, and any input ordering
/// an operator requires already there (an aggregate grouping by a column a filter fixed to one
/// value streams). The root may have several partitions (the runtime reads them in order).
fn needs_no_rules(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let children = plan.children();
    let ordered = plan.required_input_ordering().into_iter().zip(&children).all(|(req, child)| match req {
        None => true,
        Some(req) => child.equivalence_properties().ordering_satisfy_requirement(req.into_single()).unwrap_or(false),
    });
    let distributed = plan.input_distribution_requirements().per_child_distributions().zip(&children).all(|(d, child)| match d {
        Distribution::UnspecifiedDistribution => true,
        Distribution::SinglePartition => child.output_partitioning().partition_count() == 1,
        _ => false,
    });
    ordered && distributed && children.into_iter().all(needs_no_rules)
}

/// The column an expression passes on unchanged: a column, aliased or cast to its own type
/// (a union leg's coercion casts every column, most of them to the type they have).
fn plain_column<'e>(e: &'e Expr, schema: &DFSchema) -> Option<&'e datafusion::common::Column> {
    match e {
        Expr::Alias(a) => plain_column(&a.expr, schema),
        Expr::Column(c) => Some(c),
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::Column(c) if schema.qualified_field_from_column(c).is_ok_and(|(_, f)| f.data_type() == cast.field.data_type()) => Some(c),
            _ => None,
        },
        _ => None,
    }
}

/// The indices of the needed columns, at least one when there are any: a node that must still
/// count rows, under a `count` that needs no column, carries them in its first column.
fn needed_columns(need: &[bool]) -> Vec<usize> {
    let mut cols: Vec<usize> = (0..need.len()).filter(|&i| need[i]).collect();
    if cols.is_empty() && !need.is_empty() {
        cols.push(0);
    }
    cols
}

/// The logical indices of the columns an expression reads from `schema`.
fn mark_columns(e: &Expr, schema: &DFSchema, need: &mut [bool]) -> DfResult<()> {
    for c in e.column_refs() {
        need[schema.index_of_column(c)?] = true;
    }
    Ok(())
}

/// The schema of a lowered node's output: the logical columns `cols` of `schema`, in order.
fn schema_of(schema: &DFSchema, cols: &[usize]) -> DfResult<Arc<DFSchema>> {
    let fields = cols
        .iter()
        .map(|&i| {
            let (q, f) = schema.qualified_field(i);
            (q.cloned(), Arc::clone(f))
        })
        .collect();
    Ok(Arc::new(DFSchema::new_with_metadata(fields, schema.metadata().clone())?))
}

/// The input schema for expressions over a lowered child: the child's logical schema when it
/// outputs all its columns in order, else the subset it outputs.
fn input_schema(child: &LogicalPlan, lowered: &Lowered) -> DfResult<Arc<DFSchema>> {
    let schema = child.schema();
    if lowered.cols.iter().copied().eq(0..schema.fields().len()) { Ok(Arc::clone(schema)) } else { schema_of(schema, &lowered.cols) }
}

fn lower_node<'a>(plan: &'a LogicalPlan, need: Vec<bool>, state: &'a SessionState) -> BoxFuture<'a, DfResult<Lowered>> {
    Box::pin(async move {
        let props = state.execution_props();
        let ctx = PhysicalPlanningContext::default();
        match plan {
            LogicalPlan::TableScan(scan) => {
                let provider = source_as_provider(&scan.source)?;
                let cols: Vec<usize> = (0..need.len()).filter(|&i| need[i]).collect();
                let projection: Vec<usize> = cols.iter().map(|&i| scan.projection.as_ref().map_or(i, |p| p[i])).collect();
                let exec = provider.scan(state, Some(&projection), &[], None).await?;
                Ok(Lowered { exec, cols })
            }
            LogicalPlan::Values(values) => {
                let cols = needed_columns(&need);
                let schema = values.schema.as_ref();
                let rows = values
                    .values
                    .iter()
                    .map(|row| cols.iter().map(|&i| create_physical_expr(&row[i], schema, props, &ctx)).collect::<DfResult<Vec<_>>>())
                    .collect::<DfResult<Vec<_>>>()?;
                let arrow = Arc::new(Schema::new_with_metadata(
                    cols.iter().map(|&i| Arc::clone(&schema.inner().fields()[i])).collect::<Vec<_>>(),
                    schema.inner().metadata().clone(),
                ));
                let exec: Arc<dyn ExecutionPlan> = MemorySourceConfig::try_new_as_values(arrow, rows)?;
                Ok(Lowered { exec, cols })
            }
            LogicalPlan::EmptyRelation(empty) => {
                let schema = Arc::clone(empty.schema.inner());
                let exec: Arc<dyn ExecutionPlan> =
                    if empty.produce_one_row { Arc::new(PlaceholderRowExec::new(schema)) } else { Arc::new(EmptyExec::new(schema)) };
                Ok(Lowered { exec, cols: (0..need.len()).collect() })
            }
            LogicalPlan::SubqueryAlias(alias) => lower_node(&alias.input, need, state).await,
            LogicalPlan::Extension(ext) => {
                let Some(barrier) = SecurityBarrier::of(ext.node.as_ref()) else {
                    return internal_err!("direct lowering of an extension node other than a security barrier");
                };
                // Column pruning passes below the barrier (it computes nothing).
                let child = lower_node(&barrier.input, need, state).await?;
                Ok(Lowered { exec: Arc::new(BarrierExec::new(barrier.table.clone(), child.exec)), cols: child.cols })
            }
            LogicalPlan::Filter(filter) => {
                let input_schema_logical = filter.input.schema();
                let mut child_need = need.clone();
                mark_columns(&filter.predicate, input_schema_logical, &mut child_need)?;
                let child = lower_node(&filter.input, child_need, state).await?;
                let schema = input_schema(&filter.input, &child)?;
                let predicate = create_physical_expr(&filter.predicate, &schema, props, &ctx)?;
                // Output only what is needed above: the predicate's own columns are dropped.
                let keep: Vec<usize> = (0..child.cols.len()).filter(|&j| need[child.cols[j]]).collect();
                let (projection, cols) = if keep.len() < child.cols.len() {
                    let cols = keep.iter().map(|&j| child.cols[j]).collect();
                    (Some(keep), cols)
                } else {
                    (None, child.cols)
                };
                let exec = FilterExecBuilder::new(predicate, child.exec)
                    .apply_projection(projection)?
                    .with_batch_size(state.config().batch_size())
                    .with_default_selectivity(state.config().options().optimizer.default_filter_selectivity)
                    .build()?;
                Ok(Lowered { exec: Arc::new(exec), cols })
            }
            LogicalPlan::Projection(projection) => {
                let input_logical = projection.input.schema();
                let cols = needed_columns(&need);
                let mut child_need = vec![false; input_logical.fields().len()];
                for &i in &cols {
                    mark_columns(&projection.expr[i], input_logical, &mut child_need)?;
                }
                let child = lower_node(&projection.input, child_need, state).await?;
                let schema = input_schema(&projection.input, &child)?;
                // Plain columns that keep the child's columns as they are: nothing to compute.
                let identity = cols.len() == child.cols.len()
                    && cols.iter().zip(&child.cols).all(|(&i, &c)| {
                        plain_column(&projection.expr[i], input_logical).is_some_and(|col| input_logical.index_of_column(col).is_ok_and(|at| at == c))
                    });
                if identity {
                    return Ok(Lowered { exec: child.exec, cols });
                }
                let out = projection.schema.as_ref();
                let output = if cols.iter().copied().eq(0..need.len()) { Arc::clone(&projection.schema) } else { schema_of(out, &cols)? };
                let exprs = cols
                    .iter()
                    .map(|&i| {
                        let expr = create_physical_expr(&projection.expr[i], &schema, props, &ctx)?;
                        Ok(ProjectionExpr { expr, alias: out.field(i).name().clone() })
                    })
                    .collect::<DfResult<Vec<_>>>()?;
                Ok(Lowered { exec: Arc::new(PlainProjectionExec::try_new(exprs, child.exec, &output)?), cols })
            }
            LogicalPlan::Sort(sort) => {
                let mut child_need = need;
                for e in &sort.expr {
                    mark_columns(&e.expr, sort.input.schema(), &mut child_need)?;
                }
                let child = lower_node(&sort.input, child_need, state).await?;
                let schema = input_schema(&sort.input, &child)?;
                let exprs = create_physical_sort_exprs(&sort.expr, &schema, props, &ctx)?;
                let Some(ordering) = LexOrdering::new(exprs) else {
                    return internal_err!("a sort without sort expressions");
                };
                let sorted = SortExec::new(ordering, single_partition(child.exec)).with_fetch(sort.fetch);
                Ok(Lowered { exec: Arc::new(sorted), cols: child.cols })
            }
            LogicalPlan::Limit(limit) => {
                let (Ok(SkipType::Literal(skip)), Ok(FetchType::Literal(fetch))) = (limit.get_skip_type(), limit.get_fetch_type()) else {
                    return internal_err!("direct lowering of a limit that is not a literal");
                };
                let child = lower_node(&limit.input, need, state).await?;
                // A sort under a limit keeps only the rows the limit can return (top-k).
                let input = match (child.exec.downcast_ref::<SortExec>(), fetch) {
                    (Some(s), Some(n)) if s.fetch().is_none() => Arc::new(s.clone().with_fetch(Some(skip + n))),
                    _ => single_partition(child.exec),
                };
                Ok(Lowered { exec: Arc::new(GlobalLimitExec::new(input, skip, fetch)), cols: child.cols })
            }
            LogicalPlan::Aggregate(agg) => {
                let input_logical = agg.input.schema();
                let mut child_need = vec![false; input_logical.fields().len()];
                for e in agg.group_expr.iter().chain(&agg.aggr_expr) {
                    mark_columns(e, input_logical, &mut child_need)?;
                }
                let mut child = lower_node(&agg.input, child_need, state).await?;
                child.exec = single_partition(child.exec);
                let schema = input_schema(&agg.input, &child)?;
                let physical_schema = child.exec.schema();
                let groups = agg
                    .group_expr
                    .iter()
                    .map(|e| Ok((create_physical_expr(e, &schema, props, &ctx)?, datafusion::logical_expr::expr::physical_name(e)?)))
                    .collect::<DfResult<Vec<_>>>()?;
                let groups = if groups.is_empty() { PhysicalGroupBy::new(vec![], vec![], vec![], false) } else { PhysicalGroupBy::new_single(groups) };
                let mut aggregates = Vec::with_capacity(agg.aggr_expr.len());
                let mut filters = Vec::with_capacity(agg.aggr_expr.len());
                for e in &agg.aggr_expr {
                    let lowered = LoweredAggregateBuilder::new(e, &schema, &physical_schema, props, &ctx).build()?;
                    aggregates.push(lowered.aggregate);
                    filters.push(lowered.filter);
                }
                let exec = AggregateExec::try_new(AggregateMode::Single, groups, aggregates, filters, child.exec, physical_schema)?;
                Ok(Lowered { exec: Arc::new(exec), cols: (0..need.len()).collect() })
            }
            LogicalPlan::Union(union) => {
                // Every leg outputs exactly the needed columns, in order.
                let cols = needed_columns(&need);
                let mut leg_need = vec![false; need.len()];
                for &i in &cols {
                    leg_need[i] = true;
                }
                let mut legs = Vec::with_capacity(union.inputs.len());
                for input in &union.inputs {
                    let leg = lower_node(input, leg_need.clone(), state).await?;
                    legs.push(if leg.cols == cols { leg.exec } else { select(input.schema(), leg, &cols)? });
                }
                Ok(Lowered { exec: UnionExec::try_new(legs)?, cols })
            }
            other => internal_err!("direct lowering of {} nodes", other.display()),
        }
    })
}

/// A projection that, unlike DataFusion's `ProjectionExec`, works out no equivalence properties
/// (orderings, constants) of its output: they are for physical rules, which do not run on a
/// directly lowered plan, and computing them made `ProjectionExec::try_new` the largest cost
/// of lowering. It evaluates its expressions batch by batch with DataFusion's `Projector`.
#[derive(Debug)]
pub struct PlainProjectionExec {
    projector: Arc<Projector>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl PlainProjectionExec {
    /// Projects `input` with `exprs`; `output` gives the fields' and schema's metadata.
    pub fn try_new(exprs: Vec<ProjectionExpr>, input: Arc<dyn ExecutionPlan>, output: &DFSchema) -> DfResult<Self> {
        let projector = ProjectionExprs::new(exprs).make_projector_with_schema_metadata(&input.schema(), output.as_arrow())?;
        let properties = Arc::new(PlanProperties::new(
            datafusion::physical_expr::EquivalenceProperties::new(Arc::clone(projector.output_schema())),
            datafusion::physical_plan::Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            input.pipeline_behavior(),
            input.boundedness(),
        ));
        Ok(PlainProjectionExec { projector: Arc::new(projector), input, properties })
    }
}

impl DisplayAs for PlainProjectionExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let exprs: Vec<String> = self.projector.projection().iter().map(|e| format!("{} as {}", e.expr, e.alias)).collect();
        write!(f, "PlainProjectionExec: expr=[{}]", exprs.join(", "))
    }
}

impl ExecutionPlan for PlainProjectionExec {
    fn name(&self) -> &str {
        "PlainProjectionExec"
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

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        for e in self.projector.projection().iter() {
            if f(&e.expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = crate::security::barrier::only_child(children, "PlainProjectionExec")?;
        let properties = match options.children_properties {
            ChildrenPropertiesMode::Keep => Arc::clone(&self.properties),
            ChildrenPropertiesMode::Recompute => Arc::new(
                self.properties.as_ref().clone().with_partitioning(datafusion::physical_plan::Partitioning::UnknownPartitioning(
                    input.output_partitioning().partition_count(),
                )),
            ),
        };
        Ok(Arc::new(PlainProjectionExec { projector: Arc::clone(&self.projector), input, properties }))
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

    fn execute(
        &self,
        partition: usize,
        context: Arc<datafusion::execution::TaskContext>,
    ) -> DfResult<datafusion::execution::SendableRecordBatchStream> {
        let projector = Arc::clone(&self.projector);
        let batches = self.input.execute(partition, context)?.map(move |b| b.and_then(|b| projector.project_batch(&b)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(self.projector.output_schema()), batches)))
    }
}
