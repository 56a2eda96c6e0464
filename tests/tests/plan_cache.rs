//! The plan cache reuses a query's optimized plan only for the same text, caller, group
//! claims, request properties and state snapshot: a reused plan never shows one principal
//! another's rows, never outlives a change of policy, role or data, and never freezes `now()`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_tests::{rt, cells};
use kustodian_runtime::{Cluster, Identity, QueryOutput, RequestOptions};

const ADMIN: &str = "aaduser=admin@contoso.com";
const ALICE: &str = "aaduser=alice@contoso.com";
const BOB: &str = "aaduser=bob@contoso.com";

fn opts(who: &str, groups: &[&str], properties: &[(&str, &str)]) -> RequestOptions {
    RequestOptions {
        database: Some("Db".into()),
        identity: Some(Identity { principal: who.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..Default::default() }),
        properties: properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

fn run(c: &Cluster, o: &RequestOptions, text: &str) -> Result<QueryOutput, String> {
    rt().block_on(c.execute(text, o)).map_err(|e| e.to_string())
}

/// The query's single column as strings, as `who` with `groups`.
fn col(c: &Cluster, who: &str, groups: &[&str], text: &str) -> Vec<String> {
    let out = run(c, &opts(who, groups, &[]), text).unwrap_or_else(|e| panic!("`{text}` as {who}: {e}"));
    cells(&out).into_iter().map(|r| r[0].clone()).collect()
}

fn admin(c: &Cluster, cmd: &str) {
    run(c, &opts(ADMIN, &[], &[]), cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"));
}

fn hits(c: &Cluster) -> u64 {
    c.plan_cache_stats().0
}

fn setup() -> Cluster {
    let c = Cluster::in_memory(ADMIN, "test admin").unwrap();
    for cmd in [
        ".create database Db",
        ".create table T (Id:long, Owner:string)",
        ".ingest inline into table T <|\n1,aaduser=alice@contoso.com\n2,aaduser=bob@contoso.com\n3,aaduser=bob@contoso.com",
        ".alter table T policy row_level_security enable \"T | where Owner == current_principal() or current_principal_is_member_of('aadgroup=auditors')\"",
        ".add database Db viewers ('aaduser=alice@contoso.com', 'aaduser=bob@contoso.com')",
    ] {
        admin(&c, cmd);
    }
    c
}

const Q: &str = "T | order by Id asc | project Id";

#[test]
fn a_cached_plan_serves_only_the_principal_it_was_planned_for() {
    let c = setup();
    for round in 0..3 {
        assert_eq!(col(&c, ALICE, &[], Q), ["1"], "round {round}");
        assert_eq!(col(&c, BOB, &[], Q), ["2", "3"], "round {round}");
    }
    // Rounds two and three were served from the cache, each principal its own plan.
    assert_eq!(hits(&c), 4);
    // The principal is keyed in canonical form: every spelling of bob is bob, and none is
    // another principal's plan.
    assert_eq!(col(&c, "AADUser=bob@contoso.com", &[], "print current_principal()"), ["aaduser=bob@contoso.com"]);
    assert_eq!(col(&c, "aaduser=BOB@contoso.com;contoso.com", &[], "print current_principal()"), ["aaduser=bob@contoso.com"]);
    assert_eq!(col(&c, "aaduser=BOB@contoso.com", &[], Q), ["2", "3"]);

}

#[test]
fn group_claims_and_request_properties_are_part_of_the_key() {
    let c = setup();
    assert_eq!(col(&c, ALICE, &[], Q), ["1"]);
    assert_eq!(col(&c, ALICE, &["auditors"], Q), ["1", "2", "3"]);
    assert_eq!(col(&c, ALICE, &[], Q), ["1"]);
    assert_eq!(col(&c, ALICE, &["auditors"], Q), ["1", "2", "3"]);
    // `validatepermissions` checks and runs nothing, with or without a cached plan.
    let o = opts(ALICE, &[], &[("validatepermissions", "true")]);
    let out = run(&c, &o, Q).unwrap();
    assert!(!cells(&out).iter().any(|r| r.contains(&"1".to_string())), "{:?}", cells(&out));
    // Blocking row-level security fails rather than reuse the plan that applied it.
    let o = opts(ALICE, &[], &[("request_block_row_level_security", "true")]);
    assert!(run(&c, &o, Q).is_err());
    assert_eq!(col(&c, ALICE, &[], Q), ["1"]);
}

#[test]
fn a_committed_change_retires_every_cached_plan() {
    let c = setup();
    assert_eq!(col(&c, BOB, &[], Q), ["2", "3"]);
    assert_eq!(col(&c, BOB, &[], Q), ["2", "3"]);
    // New data.
    admin(&c, ".ingest inline into table T <|\n4,aaduser=bob@contoso.com");
    assert_eq!(col(&c, BOB, &[], Q), ["2", "3", "4"]);
    // A new policy.
    admin(&c, ".alter table T policy row_level_security enable \"T | where Id > 2\"");
    assert_eq!(col(&c, ALICE, &[], Q), ["3", "4"]);
    assert_eq!(col(&c, ALICE, &[], Q), ["3", "4"]);
    // A role taken away: the cached, authorized plan does not outlive it.
    admin(&c, ".drop database Db viewers ('aaduser=alice@contoso.com')");
    let err = run(&c, &opts(ALICE, &[], &[]), Q).unwrap_err();
    assert!(err.contains(ALICE), "{err}");
    assert_eq!(col(&c, BOB, &[], Q), ["3", "4"]);
}

#[test]
fn plans_that_read_the_clock_are_never_reused() {
    let c = setup();
    let before = hits(&c);
    let a = col(&c, ALICE, &[], "print now()");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let b = col(&c, ALICE, &[], "print now()");
    assert_ne!(a, b, "now() was frozen by a cached plan");
    // Through a policy too.
    admin(&c, ".alter table T policy row_level_security enable \"T | extend Seen = now() | project-away Seen\"");
    col(&c, ALICE, &[], Q);
    col(&c, ALICE, &[], Q);
    assert_eq!(hits(&c), before, "a plan holding the request's instant was reused");
    // A query that fixes its instant is the same every time, and is reused.
    let fixed = "set query_now = datetime(2020-01-01); print now()";
    assert_eq!(col(&c, ALICE, &[], fixed), ["2020-01-01T00:00:00"]);
    assert_eq!(col(&c, ALICE, &[], fixed), ["2020-01-01T00:00:00"]);
    assert_eq!(hits(&c), before + 1);
}

#[test]
fn turning_the_cache_off_plans_every_request() {
    let c = setup().with_plan_cache(false);
    for _ in 0..3 {
        assert_eq!(col(&c, ALICE, &[], Q), ["1"]);
    }
    assert_eq!(c.plan_cache_stats(), (0, 0));
}
