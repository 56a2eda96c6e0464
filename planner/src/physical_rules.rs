//! Kustodian's physical optimizer rules: DataFusion's, with `EnsureRequirements` (distribution
//! and sort enforcement) run only when the plan needs it.
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
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_optimizer::sanity_checker::SanityCheckPlan;
use datafusion::physical_plan::ExecutionPlan;

/// DataFusion's physical optimizer rules in DataFusion's order, `EnsureRequirements` wrapped
/// in [`OnlyWhenUnsatisfied`].
pub fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    PhysicalOptimizer::new()
        .rules
        .into_iter()
        .map(|rule| {
            if rule.name() == "EnsureRequirements" {
                Arc::new(OnlyWhenUnsatisfied { inner: rule }) as Arc<dyn PhysicalOptimizerRule + Send + Sync>
            } else {
                rule
            }
        })
        .collect()
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

impl PhysicalOptimizerRule for OnlyWhenUnsatisfied {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> DfResult<Arc<dyn ExecutionPlan>> {
        if config.execution.target_partitions == 1 && SanityCheckPlan::new().optimize(Arc::clone(&plan), config).is_ok() {
            return Ok(plan);
        }
        self.inner.optimize(plan, config)
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
