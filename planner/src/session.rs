//! The DataFusion session Kustodian plans with: its logical optimizer rules, its physical rules,
//! and the query planner that turns security barriers (and KQL's `scan`) into their execs.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result as DfResult;
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

use crate::security::barrier::BarrierPlanner;

/// The session's query planner: DataFusion's, plus the barrier.
#[derive(Debug, Default)]
pub struct KustodianQueryPlanner;

#[async_trait]
impl QueryPlanner for KustodianQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let planner = DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(BarrierPlanner), Arc::new(crate::scan_exec::ScanPlanner), Arc::new(crate::materialize_exec::MaterializePlanner)]);
        planner.create_physical_plan(logical_plan, session_state).await
    }
}

/// Installs the barrier-aware query planner, and the rule that moves total user predicates
/// into barriers, on a session state.
pub fn with_barrier_planner(state: SessionState) -> SessionState {
    datafusion::execution::SessionStateBuilder::new_from_existing(state)
        .with_query_planner(Arc::new(KustodianQueryPlanner))
        .with_optimizer_rule(Arc::new(crate::security::pushdown::PushTotalFiltersIntoBarrier))
        .build()
}

/// A session state with DataFusion's functions, Kustodian's logical optimizer rules
/// ([`optimizer_rules`]), DataFusion's physical optimizer rules with sort and distribution
/// enforcement only where needed ([`crate::physical_rules`]) and the barrier-aware query
/// planner.
///
/// The state's execution properties carry its configuration: without it DataFusion gives every
/// scalar function expression a fresh default `ConfigOptions` (allocating one per function
/// call in the plan, and making each equality test between two of them, which the physical
/// planner's equivalence tracking runs often, compare every configuration entry sorted). The
/// start time it also fixes is never read: the binder folds `now()` to the request's instant
/// and emits none of DataFusion's clock functions.
pub fn session_state(config: datafusion::prelude::SessionConfig) -> SessionState {
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    // No spill files: an operator that would spill fails instead, so nothing a query holds
    // ever lands in a plaintext temporary file (data at rest is always encrypted). The memory
    // pool is unbounded, so no operator is asked to spill.
    let runtime = RuntimeEnvBuilder::new()
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled))
        .build_arc();
    let mut builder = datafusion::execution::SessionStateBuilder::new();
    if let Ok(runtime) = runtime {
        builder = builder.with_runtime_env(runtime);
    }
    let mut state = builder
        .with_config(config)
        .with_default_features()
        .with_optimizer_rules(optimizer_rules())
        .with_physical_optimizer_rules(crate::physical_rules::physical_optimizer_rules())
        .with_query_planner(Arc::new(KustodianQueryPlanner))
        .build();
    state.mark_start_execution();
    state
}

/// The logical optimizer rules Kustodian runs: DataFusion's, in DataFusion's order, less the
/// ones for plan shapes the binder never produces (SQL's set comparisons, lateral joins, cross
/// joins with join predicates in a WHERE, outer joins a WHERE makes inner, GROUP BY constants,
/// duplicated sort keys, leaf-expression extraction) or that only rewrite SQL-written
/// redundancy (common subexpressions, a single DISTINCT aggregate), plus the rule that moves
/// total user predicates into barriers ([`crate::pushdown`]). Every rule costs a walk of the
/// plan and a schema check per pass whether or not it applies; the dropped ones were about a
/// third of the optimizer's time on the corpus (benches/stages).
pub fn optimizer_rules() -> Vec<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>> {
    use datafusion::optimizer::{
        decorrelate_predicate_subquery::DecorrelatePredicateSubquery, eliminate_filter::EliminateFilter,
        eliminate_limit::EliminateLimit, extract_equijoin_predicate::ExtractEquijoinPredicate,
        optimize_projections::OptimizeProjections, optimize_unions::OptimizeUnions,
        propagate_empty_relation::PropagateEmptyRelation, push_down_filter::PushDownFilter, push_down_limit::PushDownLimit,
        replace_distinct_aggregate::ReplaceDistinctWithAggregate, scalar_subquery_to_join::ScalarSubqueryToJoin,
        simplify_expressions::SimplifyExpressions,
    };
    vec![
        Arc::new(OptimizeUnions::new()),
        Arc::new(SimplifyExpressions::new()),
        Arc::new(ReplaceDistinctWithAggregate::new()),
        Arc::new(DecorrelatePredicateSubquery::new()),
        Arc::new(ScalarSubqueryToJoin::new()),
        Arc::new(ExtractEquijoinPredicate::new()),
        Arc::new(EliminateFilter::new()),
        Arc::new(EliminateLimit::new()),
        Arc::new(PropagateEmptyRelation::new()),
        Arc::new(PushDownLimit::new()),
        Arc::new(PushDownFilter::new()),
        Arc::new(OptimizeProjections::new()),
        Arc::new(crate::security::pushdown::PushTotalFiltersIntoBarrier),
    ]
}

