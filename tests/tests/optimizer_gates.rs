//! Kustodian's logical optimizer driver (`kustodian_planner::optimize`) skips the rules that
//! cannot change a plan. This checks that skipping them changes nothing: for every corpus query,
//! bound as the sample admin and as a sales person (whose plans hold row-level security
//! barriers with the user's filters moved inside), the driver's plan equals the plan of
//! DataFusion's own optimizer running every rule in one pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use datafusion::optimizer::Optimizer;
use datafusion::prelude::SessionConfig;
use kustodian_runtime::{Cluster, Identity, RequestOptions};
use kustodian_tests::rt;

#[test]
fn skipped_rules_change_no_corpus_plan() {
    let cluster = rt().block_on(Cluster::sample()).unwrap();
    let mut config = SessionConfig::new().with_target_partitions(1);
    config.options_mut().optimizer.max_passes = 1;
    // One state per optimizer: each state's alias generator names decorrelated subqueries
    // (`__correlated_sq_N`), and both must count the same way.
    let state = kustodian_planner::barrier::session_state(config.clone());
    let reference = kustodian_planner::barrier::session_state(config);
    let rules = &state.optimizer().rules;
    let every_rule = Optimizer::with_rules(rules.clone());

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/queries");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "kql")).collect();
    paths.sort();
    let (mut compared, mut ran, mut skipped) = (0, 0, 0);
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
            let Ok(expected) = every_rule.optimize(planned.plan.clone(), &reference, |_, _| {}) else { continue };
            let mut applied = 0;
            let gated = kustodian_planner::optimize::optimize_with(planned.plan.clone(), rules, &state, |_, _| applied += 1)
                .unwrap_or_else(|e| panic!("{} as {who:?}: {e}", path.display()));
            assert_eq!(
                gated,
                expected,
                "{} as {who:?}: skipping rules changed the plan\ngated:\n{}\nevery rule:\n{}",
                path.display(),
                gated.display_indent(),
                expected.display_indent()
            );
            compared += 1;
            ran += applied;
            skipped += rules.len() - applied;
        }
    }
    assert!(compared > 800, "only {compared} plans compared");
    // The gates do skip rules (most plans have no joins, limits or subqueries).
    assert!(skipped > ran, "{skipped} rule runs skipped, {ran} run");
}
