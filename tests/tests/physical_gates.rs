//! Kustodian's physical optimizer skips the operator-specific rules for plans without those
//! operators (`kustodian_planner::physical_rules::OnlyWhenPresent`). This checks that skipping
//! them changes nothing: for every corpus query, as the sample admin and as a sales person,
//! with one partition per table and with four, the physical plan equals the one planned with
//! every rule run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionConfig;
use kustodian_planner::physical_rules::without_presence_gates;
use kustodian_runtime::Cluster;
use kustodian_tests::{corpus_requests_by_principal, rt};

#[test]
fn skipped_physical_rules_change_no_corpus_plan() {
    let mut compared = 0;
    for partitions in [1, 4] {
        let cluster = rt().block_on(Cluster::sample()).unwrap().with_partitions(partitions);
        let config = SessionConfig::new().with_target_partitions(partitions).with_round_robin_repartition(false);
        let gated = kustodian_planner::session::session_state(config);
        let every = SessionStateBuilder::new_from_existing(gated.clone())
            .with_physical_optimizer_rules(without_presence_gates(gated.physical_optimizers()))
            .build();
        assert!(every.physical_optimizers().len() == gated.physical_optimizers().len());
        for req in corpus_requests_by_principal() {
            let (path, who) = (&req.path, req.who);
            // Cases meant to fail, commands and queries this principal may not run.
            let Ok(planned) = cluster.bind(&req.text, &req.opts) else { continue };
            let optimized =
                kustodian_planner::optimize::optimize_with(planned.plan.clone(), &gated.optimizer().rules, &gated, |_, _| {}).unwrap();
            let plan = |state: &datafusion::execution::SessionState| {
                rt().block_on(state.query_planner().create_physical_plan(&optimized, state))
                    .map(|p: Arc<dyn datafusion::physical_plan::ExecutionPlan>| displayable(p.as_ref()).indent(true).to_string())
                    .map_err(|e| e.to_string())
            };
            let (expected, got) = (plan(&every), plan(&gated));
            assert_eq!(got, expected, "{} as {who:?}, {partitions} partition(s): skipping rules changed the plan", path.display());
            compared += 1;
        }
    }
    assert!(compared > 1600, "only {compared} plans compared");
}
