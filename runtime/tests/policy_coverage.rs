//! `Cluster::policy_branches` and `Cluster::probe_branch` on the sample: who may ask, and what a
//! probe says for two principals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_runtime::coverage::{BranchKind, Outcome};
use kustodian_runtime::{Cluster, ErrorCode, Identity, RequestOptions};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

const ADMIN: &str = "aaduser=admin@contoso.com";

fn as_(principal: &str, groups: &[&str]) -> RequestOptions {
    RequestOptions {
        database: Some("ContosoSales".into()),
        identity: Some(Identity { principal: principal.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..Default::default() }),
        ..Default::default()
    }
}

#[test]
fn probes_tell_which_way_each_branch_went_per_principal() {
    let rt = rt();
    let cluster = rt.block_on(Cluster::sample()).unwrap();
    let admin = Identity::new(ADMIN);
    let policies = cluster.policy_branches("ContosoSales", &admin).unwrap();
    let customers = policies.iter().find(|p| p.table == "Customers").unwrap();
    assert_eq!(customers.sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["policy", "function CustomersPolicy"]);
    let legs: Vec<_> = customers.branches.iter().filter(|b| b.kind == BranchKind::UnionLeg).collect();
    assert_eq!(legs.iter().map(|b| b.text(customers)).collect::<Vec<_>>(), ["AllData", "PartialData"]);

    let bob = as_("aaduser=bob@contoso.com", &[]);
    let dave = as_("aaduser=dave@contoso.com", &["aadgroup=sales_managers@contoso.com"]);
    let probe = |b, who: &RequestOptions| rt.block_on(cluster.probe_branch(customers, b, who, &admin)).unwrap();
    assert_eq!(probe(legs[0], &bob), Outcome { made_true: false, made_false: true });
    assert_eq!(probe(legs[1], &bob), Outcome { made_true: true, made_false: false });
    assert_eq!(probe(legs[0], &dave), Outcome { made_true: true, made_false: false });
    assert_eq!(probe(legs[1], &dave), Outcome { made_true: false, made_false: true });

    // The Sales policy's row predicate: alice's rows are kept, everyone else's dropped.
    let sales = policies.iter().find(|p| p.table == "Sales").unwrap();
    let pred = sales.branches.iter().find(|b| b.kind == BranchKind::Where).unwrap();
    let alice = as_("aaduser=alice@contoso.com", &[]);
    assert_eq!(rt.block_on(cluster.probe_branch(sales, pred, &alice, &admin)).unwrap(), Outcome { made_true: true, made_false: true });
    assert_eq!(rt.block_on(cluster.probe_branch(sales, pred, &dave, &admin)).unwrap(), Outcome { made_true: true, made_false: false });
}

#[test]
fn only_a_table_admin_may_analyse_or_probe_a_policy() {
    let rt = rt();
    let cluster = rt.block_on(Cluster::sample()).unwrap();
    let admin = Identity::new(ADMIN);
    let policies = cluster.policy_branches("ContosoSales", &admin).unwrap();
    let sales = policies.iter().find(|p| p.table == "Sales").unwrap();
    let pred = sales.branches.first().unwrap();
    // A viewer, and a manager (a Database User through his group): neither administers Sales.
    let managers = ["aadgroup=sales_managers@contoso.com"];
    for (who, groups) in [("aaduser=bob@contoso.com", &[][..]), ("aaduser=dave@contoso.com", &managers[..])] {
        let id = Identity { principal: who.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..Default::default() };
        let e = cluster.policy_branches("ContosoSales", &id).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Forbidden, "{e}");
        assert!(e.to_string().contains(who) && e.to_string().contains("Table Admin"), "{e}");
        let e = rt.block_on(cluster.probe_branch(sales, pred, &as_(who, groups), &id)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Forbidden, "{e}");
    }
    // A database the caller may not see: forbidden before "does not exist", and the same for
    // one that exists (even before whether it has policies).
    for db in ["NoSuchDb", "ContosoSales"] {
        let e = cluster.policy_branches(db, &Identity::new("aaduser=stranger@contoso.com")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Forbidden, "{db}: {e}");
        assert!(e.to_string().contains(&format!("show the policies of database '{db}'")), "{e}");
    }
    let e = cluster.policy_branches("NoSuchDb", &Identity::new("aaduser=bob@contoso.com")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Forbidden, "{e}");
}
