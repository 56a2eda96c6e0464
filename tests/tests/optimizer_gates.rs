//! Kustodian's logical optimizer driver (`kustodian_planner::optimize`) skips the rules that
//! cannot change a plan. This checks that skipping them changes nothing: for every corpus query,
//! bound as the sample admin and as a sales person (whose plans hold row-level security
//! barriers with the user's filters moved inside), the driver's plan equals the plan of
//! DataFusion's own optimizer running every rule in one pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use datafusion::optimizer::Optimizer;
use datafusion::prelude::SessionConfig;
use kustodian_runtime::Cluster;
use kustodian_tests::{corpus_requests_by_principal, rt};

#[test]
fn skipped_rules_change_no_corpus_plan() {
    let cluster = rt().block_on(Cluster::sample()).unwrap();
    let mut config = SessionConfig::new().with_target_partitions(1);
    config.options_mut().optimizer.max_passes = 1;
    // One state per optimizer: each state's alias generator names decorrelated subqueries
    // (`__correlated_sq_N`), and both must count the same way.
    let state = kustodian_planner::session::session_state(config.clone());
    let reference = kustodian_planner::session::session_state(config);
    let rules = &state.optimizer().rules;
    let every_rule = Optimizer::with_rules(rules.clone());

    let (mut compared, mut ran, mut skipped) = (0, 0, 0);
    for req in corpus_requests_by_principal() {
        let (path, who) = (&req.path, req.who);
        // Cases meant to fail, commands and queries this principal may not run.
        let Ok(planned) = cluster.bind(&req.text, &req.opts) else { continue };
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
    assert!(compared > 800, "only {compared} plans compared");
    // The gates do skip rules (most plans have no joins, limits or subqueries).
    assert!(skipped > ran, "{skipped} rule runs skipped, {ran} run");
}
