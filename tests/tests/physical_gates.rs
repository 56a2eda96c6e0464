//! Kustodian's physical optimizer skips the operator-specific rules for plans without those
//! operators (`kustodian_planner::physical_rules::OnlyWhenPresent`). This checks that skipping
//! them changes nothing: for every corpus query, as the sample admin and as a sales person,
//! with one partition per table and with four, the physical plan equals the one planned with
//! every rule run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionConfig;
use kustodian_planner::physical_rules::without_presence_gates;
use kustodian_runtime::{Cluster, Identity, RequestOptions};
use kustodian_tests::rt;

#[test]
fn skipped_physical_rules_change_no_corpus_plan() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/queries");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "kql")).collect();
    paths.sort();
    let mut compared = 0;
    for partitions in [1, 4] {
        let cluster = rt().block_on(Cluster::sample()).unwrap().with_partitions(partitions);
        let config = SessionConfig::new().with_target_partitions(partitions).with_round_robin_repartition(false);
        let gated = kustodian_planner::barrier::session_state(config);
        let every = SessionStateBuilder::new_from_existing(gated.clone())
            .with_physical_optimizer_rules(without_presence_gates(gated.physical_optimizers()))
            .build();
        assert!(every.physical_optimizers().len() == gated.physical_optimizers().len());
        for path in &paths {
            let text = std::fs::read_to_string(path).unwrap();
            let db = text.lines().find_map(|l| l.trim_start().strip_prefix("// db:")).map(|d| d.trim().to_string());
            for who in [None, Some("aaduser=alice@contoso.com")] {
                let opts = RequestOptions {
                    database: Some(db.clone().unwrap_or_else(|| "ContosoSales".into())),
                    identity: who.map(|p| Identity { principal: p.into(), groups: vec![] }),
                    ..RequestOptions::default()
                };
                // Cases meant to fail, commands and queries this principal may not run.
                let Ok(planned) = cluster.bind(&text, &opts) else { continue };
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
    }
    assert!(compared > 1600, "only {compared} plans compared");
}
