//! Small plans are lowered directly to physical plans, without DataFusion's optimizers and
//! physical planner (`kustodian_planner::direct`). This checks that it changes no answer: every
//! corpus query, as the sample admin and as a sales person (whose plans hold row-level security
//! barriers), returns the same rows, or the same error, with direct lowering on and off. And
//! that most of the corpus does take the direct path, so the comparison means something.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_runtime::Cluster;
use kustodian_tests::{cells, corpus_requests_by_principal, rt};

#[test]
fn direct_lowering_changes_no_corpus_answer() {
    let direct = rt().block_on(Cluster::sample()).unwrap().with_plan_cache(false);
    let planned = rt().block_on(Cluster::sample()).unwrap().with_plan_cache(false).with_direct_lowering(false);
    let (mut compared, mut lowered, mut restricted_lowered) = (0, 0, 0);
    for req in corpus_requests_by_principal() {
        let (path, who) = (&req.path, req.who);
        // Management commands and queries that do not plan (expected failures) are compared
        // as errors below only when both sides plan.
        let Ok(prepared) = rt().block_on(direct.prepare(&req.text, &req.opts)) else { continue };
        if prepared.lowered_directly {
            lowered += 1;
            restricted_lowered += usize::from(!prepared.policies.is_empty());
        } else if let Ok(bound) = direct.bind(&req.text, &req.opts)
            && kustodian_planner::direct::blocker(&bound.plan).is_none()
        {
            println!("declined: {} as {who:?}", path.display());
        }
        let got = rt().block_on(direct.execute(&req.text, &req.opts)).map(|o| cells(&o)).map_err(|e| e.to_string());
        let want = rt().block_on(planned.execute(&req.text, &req.opts)).map(|o| cells(&o)).map_err(|e| e.to_string());
        assert_eq!(got, want, "{} as {who:?}: direct lowering changed the answer", path.display());
        compared += 1;
    }
    println!("{compared} requests compared, {lowered} lowered directly ({restricted_lowered} under a policy)");
    assert!(compared > 800, "only {compared} requests compared");
    assert!(lowered * 2 > compared, "only {lowered} of {compared} requests were lowered directly");
    assert!(restricted_lowered > 50, "only {restricted_lowered} requests under a policy were lowered directly");
}
