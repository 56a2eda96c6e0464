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

/// Shapes the corpus has few of: no column needed above a node (counts), limits over sorts and
/// over unions, unions under aggregates, `datatable` narrowed to one column, empty inputs. Each
/// is lowered directly and answers as through DataFusion's optimizers.
#[test]
fn direct_lowering_edge_shapes() {
    let direct = rt().block_on(Cluster::sample()).unwrap().with_plan_cache(false);
    let planned = rt().block_on(Cluster::sample()).unwrap().with_plan_cache(false).with_direct_lowering(false);
    let opts = kustodian_runtime::RequestOptions { database: Some("ContosoSales".into()), ..Default::default() };
    for q in [
        "Products | project Category | count",
        "Products | where Price > 10 | count",
        "Products | where Price > 1000000 | summarize n = count(), s = sum(Price)",
        "Products | where Price > 10 | project Double = Price * 2, Product | sort by Double desc, Product asc | take 2",
        "Products | top 3 by Price desc | project Product",
        "union (Products | project Product), (Products | project Product) | summarize count()",
        "union (Products | where Price > 100), (Products | where Price <= 100) | sort by Product asc | take 4",
        "union Products, Products | project Category | distinct Category | count",
        "Products | summarize arg_max(Price, Product) by Category | sort by Category asc",
        "datatable(a:long, b:string, c:real)[1, 'x', 0.5, 2, 'y', 1.5] | project b | take 1",
        "datatable(a:long, b:string)[1, 'x', 2, 'y'] | where a > 5 | project b",
        "print x = 1, y = 'z' | project y",
        "Sales | summarize n = count() by Region | where n > 0 | sort by Region asc",
    ] {
        let prepared = rt().block_on(direct.prepare(q, &opts)).unwrap_or_else(|e| panic!("`{q}`: {e}"));
        let got = rt().block_on(direct.execute(q, &opts)).map(|o| cells(&o)).map_err(|e| e.to_string());
        let want = rt().block_on(planned.execute(q, &opts)).map(|o| cells(&o)).map_err(|e| e.to_string());
        assert_eq!(got, want, "`{q}`: direct lowering changed the answer");
        assert!(prepared.lowered_directly, "`{q}`: not lowered directly");
    }
}
