//! The planning pipeline after binding, owned here so no caller orders its security steps:
//! a bound query ([`PlannedQuery`]) becomes an [`Optimized`] plan, then a [`Physical`] one, and
//! each stage can only be built by this module, verified as it is built.
//!
//! * [`Pipeline::optimize`]: verify the bound plan (every protected scan under its barrier),
//!   then either keep it for direct lowering (`crate::direct`) or run the logical optimizer
//!   once, sink total predicates into the policies (`security::pushdown`), and verify again.
//! * [`Pipeline::physical`]: lower directly or run the query planner on exactly the verified
//!   plan (never `SessionState::create_physical_plan`, which would optimize again), then verify
//!   the physical plan (barriers kept, each protected scan under its own barrier).

use std::sync::{Arc, OnceLock};

use datafusion::datasource::MemTable;
use datafusion::datasource::source_as_provider;
use datafusion::execution::{SessionState, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;

use crate::bind::PlannedQuery;
use crate::error::Result;
use crate::security::protected::ProtectedTable;
use crate::security::{pushdown, verify};

/// The sessions plans are made in (one for single-partition plans, one for the rest, each built
/// once: building one costs about a millisecond) and how plans are lowered.
pub struct Pipeline {
    /// Partitions multi-partition plans run with.
    partitions: usize,
    /// Lower small plans directly (`crate::direct`).
    direct: bool,
    sessions: [OnceLock<(SessionState, Arc<TaskContext>)>; 2],
}

/// A logical plan verified with its barriers in place, ready to plan physically.
#[derive(Debug, Clone)]
pub struct Optimized {
    plan: LogicalPlan,
    /// The bound plan kept as is, to be lowered directly.
    direct: bool,
}

impl Optimized {
    /// The optimized plan, or the bound plan when it is to be lowered directly.
    pub fn plan(&self) -> &LogicalPlan {
        &self.plan
    }

    /// Whether the plan skipped DataFusion's optimizers to be lowered directly.
    pub fn direct(&self) -> bool {
        self.direct
    }
}

/// A physical plan verified against the logical plan it came from, with the task context to
/// run it in.
#[derive(Debug, Clone)]
pub struct Physical {
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    lowered_directly: bool,
}

impl Physical {
    pub fn plan(&self) -> &Arc<dyn ExecutionPlan> {
        &self.plan
    }

    pub fn task(&self) -> &Arc<TaskContext> {
        &self.task
    }

    /// Whether the plan was lowered directly, without DataFusion's optimizers and planner.
    pub fn lowered_directly(&self) -> bool {
        self.lowered_directly
    }

    /// Runs the plan to completion.
    pub async fn collect(&self) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
        Ok(datafusion::physical_plan::collect(Arc::clone(&self.plan), Arc::clone(&self.task)).await?)
    }
}

impl Pipeline {
    pub fn new(partitions: usize, direct: bool) -> Pipeline {
        Pipeline { partitions: partitions.max(1), direct, sessions: Default::default() }
    }

    /// The session state (and a task context to run its plans with) for a plan reading tables
    /// of at most `partitions` partitions.
    /// Drops what the sessions cached of files (Parquet footers: schemas and statistics, data
    /// of encrypted files once decrypted).
    pub fn clear_file_caches(&self) {
        for slot in &self.sessions {
            if let Some((state, _)) = slot.get() {
                state.runtime_env().cache_manager.get_file_metadata_cache().clear();
            }
        }
    }

    fn session(&self, partitions: usize) -> &(SessionState, Arc<TaskContext>) {
        let slot = &self.sessions[usize::from(partitions > 1)];
        slot.get_or_init(|| {
            // No round-robin repartitioning: tables are already split into partitions, and
            // spreading a single-partition input (`range`, `datatable`, a sorted or serialized
            // result) over several would lose the row order KQL keeps for them.
            let mut config = SessionConfig::new()
                .with_target_partitions(if partitions > 1 { self.partitions } else { 1 })
                .with_round_robin_repartition(false)
                .with_information_schema(false);
            // Tables on disk are Parquet: their filters are evaluated while decoding (late
            // materialisation: the other columns of a row group are decoded only for the rows
            // that pass), most selective first. Row groups and pages are skipped by their
            // statistics either way.
            config.options_mut().execution.parquet.pushdown_filters = true;
            config.options_mut().execution.parquet.reorder_filters = true;
            // One pass of the logical optimizer: the binder's plans are already simple, and
            // DataFusion's second and third passes cost about a fifth of planning time
            // (benches/stages) for plans that came out the same. Under a security barrier a
            // user's total predicate reaches the barrier and moves inside it in that pass (the
            // barrier rule runs after PushDownFilter); `optimize` then sinks it into the
            // policy's plan with PushDownFilter alone.
            config.options_mut().optimizer.max_passes = 1;
            let state = crate::session::session_state(config);
            let task = Arc::new(TaskContext::from(&state));
            (state, task)
        })
    }

    /// Verifies a bound query and returns the plan to plan physically: the bound plan itself
    /// when it is lowered directly (a plan over single-partition tables, of the shapes
    /// `crate::direct` lowers: DataFusion's optimizers and planner cost far more than such
    /// queries take to run), else the optimized plan, verified again.
    pub fn optimize(&self, planned: &PlannedQuery) -> Result<Optimized> {
        let partitions = input_partitions(&planned.plan);
        let (state, _) = self.session(partitions);
        verify::verify_logical(&planned.plan, &planned.protected)?;
        // The logical optimizer's rules (one pass, each only where it applies: see
        // `crate::optimize`) without DataFusion's analyzer: the binder types every expression
        // and builds unions with their coerced schema, so type coercion (a tenth of planning
        // time) would rebuild the plan unchanged. Debug builds check that it would.
        #[cfg(debug_assertions)]
        {
            let analyzed = state.analyzer().execute_and_check(planned.plan.clone(), state.config_options(), |_, _| {})?;
            if analyzed != planned.plan {
                // Not the plans themselves: they hold policy predicates.
                return Err(crate::error::PlanError::Internal(
                    "the bound plan is not what DataFusion's analyzer makes of it (compare `planned.plan` with the analyzer's output)".into(),
                ));
            }
        }
        if self.direct && partitions == 1 && crate::direct::applies(&planned.plan) {
            return Ok(Optimized { plan: planned.plan.clone(), direct: true });
        }
        let mut optimized = crate::optimize::optimize_with(planned.plan.clone(), &state.optimizer().rules, state, |_, _| {})?;
        if !planned.protected.is_empty() {
            optimized = pushdown::sink_into_policies(optimized, state)?;
        }
        verify::verify_logical(&optimized, &planned.protected)?;
        Ok(Optimized { plan: optimized, direct: false })
    }

    /// Plans a verified logical plan physically and verifies the result.
    pub async fn physical(&self, optimized: &Optimized) -> Result<Physical> {
        let (state, task) = self.session(input_partitions(&optimized.plan));
        let lowered = if optimized.direct { crate::direct::lower(&optimized.plan, state).await? } else { None };
        // The query planner itself, not `SessionState::create_physical_plan`, which would run
        // the analyzer and the logical optimizer again: the plan planned physically is the
        // very plan `verify_logical` checked. A direct plan whose lowering declined (it needs
        // physical rules) is planned unoptimized: still the plan the binder made.
        let lowered_directly = lowered.is_some();
        let plan = match lowered {
            Some(physical) => physical,
            None => state.query_planner().create_physical_plan(&optimized.plan, state).await?,
        };
        // The copies of each materialize() in this plan share one result, and serialized rows
        // come in their partitions' order (a union's legs as written).
        let plan = crate::materialize_exec::share_results(plan)?;
        let plan = crate::serialize_exec::serialize_in_order(plan)?;
        verify::verify_physical(&optimized.plan, &plan)?;
        Ok(Physical { plan, task: Arc::clone(task), lowered_directly })
    }
}

/// The most partitions any table scan of a plan has (1 when it reads no table): the target
/// partition count to plan it with.
fn input_partitions(plan: &LogicalPlan) -> usize {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut n = 1;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
        {
            // A policy's own scan reads its table through the protected marker.
            let provider = match provider.downcast_ref::<ProtectedTable>() {
                Some(p) => Arc::clone(p.inner()),
                None => provider,
            };
            let parts = match provider.downcast_ref::<MemTable>() {
                Some(m) => m.batches.len(),
                None => provider.downcast_ref::<crate::catalog::PartitionedTable>().map_or(1, |p| p.partitions()),
            };
            n = n.max(parts);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    n
}
