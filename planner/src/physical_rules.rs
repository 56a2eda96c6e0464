//! Kustodian's physical optimizer rules: DataFusion's, with `EnsureRequirements` (distribution
//! and sort enforcement) run only when the plan needs it, and the rules that only rewrite
//! particular operators (aggregates, joins, limits, windows, filters, projections, sorts)
//! skipped for plans that have none of them ([`OnlyWhenPresent`]).
//!
//! For a plan of one partition, DataFusion's initial physical plan usually satisfies every
//! operator's distribution and ordering requirement already, and `EnsureRequirements` then
//! walks and rebuilds the whole tree to change nothing: it was the most expensive step of
//! planning a typical corpus query (about 90 µs of 650, `benches/stages`). The check that
//! decides whether it is needed is DataFusion's own final gate, `SanityCheckPlan`, which still
//! runs last over the optimized plan: a plan that passes it before `EnsureRequirements` would
//! only lose the rule's optimizations (dropping a sort the input already satisfies), never
//! correctness. Plans of several partitions always run the rule, which also adds the
//! repartitioning and merges that make them parallel.

use std::fmt;
use std::sync::Arc;

use datafusion::common::Result as DfResult;
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::{PhysicalOptimizerContext, PhysicalOptimizerRule};
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_optimizer::sanity_checker::SanityCheckPlan;
use datafusion::physical_plan::ExecutionPlan;

/// DataFusion's physical optimizer rules in DataFusion's order, `EnsureRequirements` wrapped
/// in [`OnlyWhenUnsatisfied`] and the operator-specific rules in [`OnlyWhenPresent`].
pub fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    PhysicalOptimizer::new()
        .rules
        .into_iter()
        .map(|rule| {
            if rule.name() == "EnsureRequirements" {
                return Arc::new(OnlyWhenUnsatisfied { inner: rule }) as Arc<dyn PhysicalOptimizerRule + Send + Sync>;
            }
            match operators_rewritten_by(rule.name()) {
                Some(needs) => Arc::new(OnlyWhenPresent { inner: rule, needs }),
                None => rule,
            }
        })
        .collect()
}

/// The operators a plan holds, as far as [`operators_rewritten_by`] needs to know.
#[derive(Debug, Default, Clone, Copy)]
pub struct Operators {
    aggregate: bool,
    join: bool,
    hash_join: bool,
    filter: bool,
    projection: bool,
    sort: bool,
    window: bool,
    repartition: bool,
    /// A limit operator, or any operator with a fetch (a top-k sort).
    limit: bool,
}

impl Operators {
    pub fn of(plan: &Arc<dyn ExecutionPlan>) -> Self {
        let mut ops = Operators::default();
        let mut stack = vec![Arc::clone(plan)];
        while let Some(node) = stack.pop() {
            match node.name() {
                "AggregateExec" => ops.aggregate = true,
                "HashJoinExec" => {
                    ops.join = true;
                    ops.hash_join = true;
                }
                "NestedLoopJoinExec" | "CrossJoinExec" | "SortMergeJoinExec" | "SymmetricHashJoinExec" => ops.join = true,
                "FilterExec" => ops.filter = true,
                "ProjectionExec" => ops.projection = true,
                "SortExec" => ops.sort = true,
                "BoundedWindowAggExec" | "WindowAggExec" => ops.window = true,
                "RepartitionExec" => ops.repartition = true,
                "GlobalLimitExec" | "LocalLimitExec" => ops.limit = true,
                _ => {}
            }
            if node.fetch().is_some() {
                ops.limit = true;
            }
            stack.extend(node.children().into_iter().cloned());
        }
        ops
    }
}

/// For a rule that only rewrites particular operators, whether a plan holding `Operators` may
/// be changed by it (DataFusion 55's rules: each starts from the operators named here). `None`
/// for the rules that run on every plan. `tests/physical_gates.rs` checks over the corpus that
/// the plans come out exactly as with every rule run.
fn operators_rewritten_by(rule: &str) -> Option<fn(&Operators) -> bool> {
    Some(match rule {
        "aggregate_statistics" | "LimitedDistinctAggregation" | "CombinePartialFinalAggregate" | "OptimizeAggregateOrder" | "LimitAggregation" => {
            |o| o.aggregate
        }
        "join_selection" => |o| o.join,
        "HashJoinBuffering" => |o| o.hash_join,
        // Filters start at a FilterExec, or at a join's filter.
        "FilterPushdown" => |o| o.filter || o.join,
        // Dynamic filters: from a top-k sort, a join or an aggregate.
        "FilterPushdown(Post)" => |o| o.sort || o.join || o.aggregate || o.filter,
        "ProjectionPushdown" => |o| o.projection,
        "WindowTopN" | "LimitPushPastWindows" => |o| o.window,
        "LimitPushdown" => |o| o.limit,
        "TopKRepartition" => |o| o.repartition,
        "PushdownSort" => |o| o.sort,
        _ => return None,
    })
}

/// `rules` with every [`OnlyWhenPresent`] replaced by the rule it wraps: what the gates are
/// checked against (`tests/physical_gates.rs`).
pub fn without_presence_gates(rules: &[Arc<dyn PhysicalOptimizerRule + Send + Sync>]) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    rules
        .iter()
        .map(|rule| match (rule.as_ref() as &dyn std::any::Any).downcast_ref::<OnlyWhenPresent>() {
            Some(gated) => Arc::clone(&gated.inner),
            None => Arc::clone(rule),
        })
        .collect()
}

/// Runs the wrapped rule only when the plan holds an operator it rewrites.
pub struct OnlyWhenPresent {
    inner: Arc<dyn PhysicalOptimizerRule + Send + Sync>,
    needs: fn(&Operators) -> bool,
}

impl OnlyWhenPresent {
    fn applies(&self, plan: &Arc<dyn ExecutionPlan>) -> bool {
        (self.needs)(&Operators::of(plan))
    }
}

impl fmt::Debug for OnlyWhenPresent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OnlyWhenPresent({})", self.inner.name())
    }
}

impl PhysicalOptimizerRule for OnlyWhenPresent {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> DfResult<Arc<dyn ExecutionPlan>> {
        if self.applies(&plan) { self.inner.optimize(plan, config) } else { Ok(plan) }
    }

    // As for `OnlyWhenUnsatisfied`: the context goes to the wrapped rule.
    fn optimize_with_context(&self, plan: Arc<dyn ExecutionPlan>, context: &dyn PhysicalOptimizerContext) -> DfResult<Arc<dyn ExecutionPlan>> {
        if self.applies(&plan) { self.inner.optimize_with_context(plan, context) } else { Ok(plan) }
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn schema_check(&self) -> bool {
        self.inner.schema_check()
    }
}

/// Runs the wrapped rule unless the plan is single-partitioned and already passes
/// `SanityCheckPlan` (every operator's required input distribution and ordering satisfied).
pub struct OnlyWhenUnsatisfied {
    inner: Arc<dyn PhysicalOptimizerRule + Send + Sync>,
}

impl fmt::Debug for OnlyWhenUnsatisfied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OnlyWhenUnsatisfied({})", self.inner.name())
    }
}

impl OnlyWhenUnsatisfied {
    fn satisfied(plan: &Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> bool {
        config.execution.target_partitions == 1 && SanityCheckPlan::new().optimize(Arc::clone(plan), config).is_ok()
    }
}

impl PhysicalOptimizerRule for OnlyWhenUnsatisfied {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> DfResult<Arc<dyn ExecutionPlan>> {
        if Self::satisfied(&plan, config) { Ok(plan) } else { self.inner.optimize(plan, config) }
    }

    // What the physical planner calls: the wrapped rule gets the context (its statistics
    // registry) as it would unwrapped.
    fn optimize_with_context(&self, plan: Arc<dyn ExecutionPlan>, context: &dyn PhysicalOptimizerContext) -> DfResult<Arc<dyn ExecutionPlan>> {
        if Self::satisfied(&plan, context.config_options()) { Ok(plan) } else { self.inner.optimize_with_context(plan, context) }
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn schema_check(&self) -> bool {
        self.inner.schema_check()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// DataFusion's initial physical plan (no optimizer rules) of `sql` with one target
    /// partition, over a table `t` of `parts` partitions.
    async fn initial_plan(parts: usize, sql: &str) -> (Arc<dyn ExecutionPlan>, ConfigOptions) {
        let config = SessionConfig::new().with_target_partitions(1).with_round_robin_repartition(false);
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(vec![])
            .build();
        let ctx = SessionContext::new_with_state(state);
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(vec![3, 1, 2]))]).unwrap();
        let table = MemTable::try_new(schema, vec![vec![batch]; parts]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        (plan, ctx.state().config_options().as_ref().clone())
    }

    fn ensure_requirements() -> Arc<dyn PhysicalOptimizerRule + Send + Sync> {
        physical_optimizer_rules().into_iter().find(|r| r.name() == "EnsureRequirements").unwrap()
    }

    #[tokio::test]
    async fn a_satisfied_single_partition_plan_is_left_as_it_is() {
        let (plan, config) = initial_plan(1, "select a, count(*) from t group by a order by a").await;
        assert!(SanityCheckPlan::new().optimize(Arc::clone(&plan), &config).is_ok());
        let out = ensure_requirements().optimize(Arc::clone(&plan), &config).unwrap();
        assert!(Arc::ptr_eq(&plan, &out), "the rule rebuilt a plan that needed nothing");
    }

    #[tokio::test]
    async fn an_unsatisfied_plan_still_gets_its_requirements() {
        // Two partitions under a sort: the plan needs a merge, which only the rule adds.
        let (plan, config) = initial_plan(2, "select a from t order by a").await;
        assert!(SanityCheckPlan::new().optimize(Arc::clone(&plan), &config).is_err());
        let out = ensure_requirements().optimize(Arc::clone(&plan), &config).unwrap();
        SanityCheckPlan::new().optimize(Arc::clone(&out), &config).unwrap();
        let text = displayable(out.as_ref()).indent(false).to_string();
        assert!(text.contains("SortPreservingMergeExec") || text.contains("CoalescePartitionsExec"), "{text}");
    }
}
