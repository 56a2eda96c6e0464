//! Materialized views: commands, materialization, queries, permissions, their row-level
//! security policies and the spec 5.6 rules, through the runtime's request API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_tests::{rt, cells};
use kustodian_runtime::{Cluster, Identity, QueryOutput, RequestOptions};

const ADMIN: &str = "aaduser=admin@contoso.com";
const ALICE: &str = "aaduser=alice@contoso.com";
const BOB: &str = "aaduser=bob@contoso.com";
const CAROL: &str = "aaduser=carol@contoso.com";
const AUDITORS: &str = "aadgroup=auditors@contoso.com";

const LATEST: &str = ".create materialized-view Latest on table T { T | summarize arg_max(Ts, *) by Owner }";
const TOTALS: &str = ".create materialized-view Totals on table T { T | summarize Total = sum(Amount), N = count() by Owner }";
const OWN_ROWS: &str = "Owner == current_principal() or current_principal_is_member_of('aadgroup=auditors@contoso.com')";

fn exec_as(c: &Cluster, who: &str, groups: &[&str], text: &str) -> Result<QueryOutput, (String, String)> {
    let opts = RequestOptions {
        database: Some("Db".into()),
        identity: Some(Identity { principal: who.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..Default::default() }),
        properties: vec![],
        ..Default::default()
    };
    rt().block_on(c.execute(text, &opts)).map_err(|e| (e.code().as_str().to_string(), e.to_string()))
}

fn exec(c: &Cluster, who: &str, text: &str) -> Result<QueryOutput, (String, String)> {
    exec_as(c, who, &[], text)
}

fn ok(c: &Cluster, who: &str, text: &str) -> QueryOutput {
    exec(c, who, text).unwrap_or_else(|e| panic!("`{text}` as {who}: {e:?}"))
}

fn err(c: &Cluster, who: &str, text: &str) -> String {
    match exec(c, who, text) {
        Ok(_) => panic!("`{text}` as {who} should fail"),
        Err(e) => e.1,
    }
}

fn rows(c: &Cluster, who: &str, q: &str) -> Vec<Vec<String>> {
    cells(&ok(c, who, q))
}

fn one(c: &Cluster, who: &str, q: &str) -> String {
    rows(c, who, q)[0][0].clone()
}

/// The database's metadata as the schema script shows it (everything a command can change).
fn script(c: &Cluster) -> Vec<Vec<String>> {
    rows(c, ADMIN, ".show database Db schema as csl script")
}

fn setup_in(c: &Cluster) {
    for cmd in [
        ".create database Db",
        ".create table T (Owner:string, Region:string, Amount:long, Ts:long)",
        ".create table Other (Owner:string)",
        ".ingest inline into table T <|\naaduser=alice@contoso.com,East,10,1\naaduser=bob@contoso.com,West,20,2\naaduser=bob@contoso.com,North,5,3\naaduser=alice@contoso.com,West,7,4",
        ".add database Db users ('aaduser=alice@contoso.com')",
        ".add database Db viewers ('aaduser=bob@contoso.com', 'aaduser=carol@contoso.com')",
    ] {
        ok(c, ADMIN, cmd);
    }
}

fn setup() -> Cluster {
    let c = Cluster::in_memory(ADMIN, "test admin").unwrap();
    setup_in(&c);
    c
}

#[test]
fn views_are_created_shown_and_dropped() {
    let c = setup();
    let out = ok(&c, ADMIN, &TOTALS.replace("Totals on", "with (docString='per owner', folder='F') Totals on"));
    let cols: Vec<String> = out.schema.columns.iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        cols,
        [
            "Name", "SourceTable", "Query", "MaterializedTo", "LastRun", "LastRunResult", "IsHealthy", "IsEnabled", "Folder",
            "DocString", "AutoUpdateSchema", "EffectiveDateTime", "Lookback", "LookbackColumn"
        ]
    );
    let r = &cells(&out)[0];
    assert_eq!(r[0], "Totals");
    assert_eq!(r[1], "T");
    assert_eq!(r[2], "T | summarize Total = sum(Amount), N = count() by Owner");
    assert_eq!((r[5].as_str(), r[6].as_str(), r[7].as_str(), r[8].as_str(), r[9].as_str()), ("Completed", "true", "true", "F", "per owner"));
    ok(&c, ADMIN, LATEST);
    let all = rows(&c, BOB, ".show materialized-views");
    assert_eq!(all.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["Totals", "Latest"]);
    assert_eq!(rows(&c, BOB, ".show materialized-view Latest")[0][1], "T");
    // Views are not tables.
    let tables = rows(&c, ADMIN, ".show tables");
    assert!(tables.iter().all(|r| r[0] != "Totals" && r[0] != "Latest"), "{tables:?}");
    // Names are shared with tables and functions.
    assert!(err(&c, ADMIN, TOTALS).contains("already exists"));
    assert_eq!(ok(&c, ADMIN, &TOTALS.replace(".create ", ".create ifnotexists ")).row_count(), 1);
    assert!(err(&c, ADMIN, ".create table Totals (a:long)").contains("materialized view named 'Totals'"));
    assert!(err(&c, ADMIN, ".create function Totals() { T }").contains("materialized view named 'Totals'"));
    assert!(err(&c, ADMIN, ".create materialized-view T on table T { T | summarize count() by Owner }").contains("table named 'T'"));
    // Drop.
    // Kusto returns the views left.
    assert_eq!(rows(&c, ADMIN, ".drop materialized-view Totals"), rows(&c, ADMIN, ".show materialized-views"));
    assert_eq!(rows(&c, ADMIN, ".show materialized-views").len(), 1);
    assert!(err(&c, ADMIN, ".show materialized-view Totals").contains("does not exist"));
    assert!(err(&c, ADMIN, "Totals | count").contains("Totals"));
    assert_eq!(ok(&c, ADMIN, ".drop materialized-view Totals ifexists").row_count(), 1);
    assert!(err(&c, ADMIN, ".drop materialized-view Totals").contains("does not exist"));
}

#[test]
fn create_validates_source_query_and_properties() {
    let c = setup();
    assert!(err(&c, ADMIN, ".create materialized-view V on table Nope { Nope | summarize count() by Owner }").contains("'Nope' does not exist"));
    let e = err(&c, ADMIN, ".create materialized-view V on table T { T | where Amount > 1 }");
    assert!(e.contains("must end with a summarize"), "{e}");
    let e = err(&c, ADMIN, ".create materialized-view V on table T { Other | summarize count() by Owner }");
    assert!(e.contains("may read only its source table 'T', not 'Other'"), "{e}");
    let e = err(&c, ADMIN, ".create materialized-view with (lookback=2d) V on table T { T | summarize count() by Owner }");
    assert!(e.contains("lookback"), "{e}");
    let e = err(&c, ADMIN, ".create materialized-view with (frobnicate=true) V on table T { T | summarize count() by Owner }");
    assert!(e.contains("unknown property 'frobnicate'"), "{e}");
    let e = err(&c, ADMIN, ".create materialized-view with (backfill=false) V on table T { T | summarize count() by Owner }");
    assert!(e.contains("backfill=false"), "{e}");
    let e = err(&c, ADMIN, ".create materialized-view V on table T { T | summarize count() by Nope }");
    assert!(e.contains("not valid"), "{e}");
    ok(&c, ADMIN, ".create materialized-view with (backfill=true) V on table T { T | where Amount > 5 | summarize count() by Owner }");
    assert_eq!(one(&c, ADMIN, "V | where Owner == 'aaduser=bob@contoso.com' | project count_"), "1");
}

#[test]
fn views_are_read_by_name_and_with_materialized_view() {
    let c = setup();
    ok(&c, ADMIN, TOTALS);
    assert_eq!(one(&c, BOB, "Totals | where Owner == 'aaduser=bob@contoso.com' | project Total"), "25");
    assert_eq!(one(&c, BOB, "materialized_view('Totals') | where Owner == 'aaduser=alice@contoso.com' | project Total"), "17");
    assert_eq!(one(&c, BOB, "materialized_view(\"Totals\", 1h) | count"), "2");
    assert_eq!(one(&c, BOB, "table('Totals') | summarize sum(N)"), "4");
    assert_eq!(one(&c, BOB, "T | join kind=inner Totals on Owner | count"), "4");
    assert!(err(&c, BOB, "materialized_view('T') | count").contains("unknown materialized view 'T'"));
    assert!(err(&c, BOB, "materialized_view('Totals', 3) | count").contains("timespan"));
    // Reading a view needs a role that reads the database.
    let e = exec(&c, "aaduser=eve@contoso.com", "Totals | count").unwrap_err();
    assert_eq!(e.0, "Forbidden", "{e:?}");
    assert!(e.1.contains("aaduser=eve@contoso.com") && e.1.contains("Database Viewer"), "{e:?}");
}

#[test]
fn views_follow_their_source_data() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::init(dir.path(), ADMIN).unwrap();
    setup_in(&c);
    ok(&c, ADMIN, TOTALS);
    ok(&c, ADMIN, LATEST);
    ok(&c, ADMIN, ".append T <| datatable(Owner:string, Region:string, Amount:long, Ts:long) ['aaduser=carol@contoso.com', 'South', 100, 9]");
    assert_eq!(one(&c, ADMIN, "Totals | count"), "3");
    assert_eq!(one(&c, ADMIN, "Totals | where Owner == 'aaduser=carol@contoso.com' | project Total"), "100");
    ok(&c, ADMIN, ".ingest inline into table T <|\naaduser=bob@contoso.com,East,1,10");
    assert_eq!(one(&c, ADMIN, "Totals | where Owner == 'aaduser=bob@contoso.com' | project Total"), "26");
    assert_eq!(one(&c, ADMIN, "Latest | where Owner == 'aaduser=bob@contoso.com' | project Region"), "East");
    ok(&c, ADMIN, ".set-or-append T <| datatable(Owner:string, Region:string, Amount:long, Ts:long) ['aaduser=bob@contoso.com', 'West', 4, 11]");
    assert_eq!(one(&c, ADMIN, "Totals | where Owner == 'aaduser=bob@contoso.com' | project N"), "4");
    // The view survives a restart with its data.
    drop(c);
    let c = Cluster::open(dir.path()).unwrap();
    assert_eq!(one(&c, ADMIN, "Totals | where Owner == 'aaduser=bob@contoso.com' | project Total"), "30");
    assert_eq!(one(&c, ADMIN, "materialized_view('Latest') | where Owner == 'aaduser=bob@contoso.com' | project Ts"), "11");
    ok(&c, ADMIN, ".set-or-replace T <| T | where Owner == 'aaduser=alice@contoso.com'");
    assert_eq!(rows(&c, ADMIN, "Totals | project Owner, Total"), [[ALICE.to_string(), "17".to_string()]]);
    // A source cannot be dropped before its views.
    let e = err(&c, ADMIN, ".drop table T");
    assert!(e.contains("source of materialized view"), "{e}");
    // A disabled view is not refreshed; enabling it catches up.
    ok(&c, ADMIN, ".disable materialized-view Totals");
    assert_eq!(rows(&c, ADMIN, ".show materialized-view Totals")[0][7], "false");
    ok(&c, ADMIN, ".ingest inline into table T <|\naaduser=alice@contoso.com,East,3,12");
    assert_eq!(one(&c, ADMIN, "Totals | project Total"), "17");
    assert_eq!(one(&c, ADMIN, "Latest | project Ts"), "12");
    ok(&c, ADMIN, ".enable materialized-view Totals");
    assert_eq!(one(&c, ADMIN, "Totals | project Total"), "20");
}

#[test]
fn permissions_are_enforced() {
    let c = setup();
    // Creating needs Database Admin: a Database User is denied.
    let e = exec(&c, ALICE, TOTALS).unwrap_err();
    assert_eq!(e.0, "Forbidden");
    assert!(e.1.contains(ALICE) && e.1.contains("create materialized view 'Totals'") && e.1.contains("Database Admin"), "{}", e.1);
    ok(&c, ADMIN, TOTALS);
    // A viewer may show, not alter the policy, drop, disable or manage principals.
    assert_eq!(rows(&c, BOB, ".show materialized-views").len(), 1);
    let e = err(&c, BOB, ".alter materialized-view Totals policy row_level_security enable \"Totals | where Owner == current_principal()\"");
    assert!(e.contains(BOB) && e.contains("alter the row_level_security policy of materialized view 'Totals'") && e.contains("Database Admin"), "{e}");
    let e = err(&c, BOB, ".drop materialized-view Totals");
    assert!(e.contains(BOB) && e.contains("drop materialized view 'Totals'") && e.contains("Materialized View Admin"), "{e}");
    let e = err(&c, BOB, ".disable materialized-view Totals");
    assert!(e.contains("disable materialized view 'Totals'") && e.contains("Materialized View Admin"), "{e}");
    let e = err(&c, BOB, ".add materialized-view Totals admins ('aaduser=bob@contoso.com')");
    assert!(e.contains(BOB) && e.contains("manage the principals of materialized view 'Totals'") && e.contains("Materialized View Admin"), "{e}");
    let e = err(&c, BOB, ".delete materialized-view Totals policy row_level_security");
    assert!(e.contains("Materialized View Admin"), "{e}");
    // Someone without any database role cannot see the views.
    let e = err(&c, "aaduser=eve@contoso.com", ".show materialized-views");
    assert!(e.contains("Database Viewer"), "{e}");
}

#[test]
fn view_principals_are_managed() {
    let c = setup();
    ok(&c, ADMIN, TOTALS);
    let listed = rows(&c, ADMIN, ".show materialized-view Totals principals");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0][0].as_str(), listed[0][4].as_str()), ("Materialized View Totals Admin", ADMIN));
    let out = rows(&c, ADMIN, ".add materialized-view Totals admins ('aaduser=alice@contoso.com') 'owner team'");
    assert!(out.iter().any(|r| r[0] == "Materialized View Totals Admin" && r[4] == ALICE && r[5] == "owner team"), "{out:?}");
    assert!(err(&c, ADMIN, ".add materialized-view Totals viewers ('aaduser=alice@contoso.com')").contains("unknown materialized-view role 'viewers'"));
    // A view admin needs database access first.
    let e = err(&c, ADMIN, ".add materialized-view Totals admins ('aaduser=eve@contoso.com')");
    assert!(e.contains("has no access to database"), "{e}");
    // The view admin may show and manage its principals and disable, enable and drop it,
    // but not alter its policy (Database Admin).
    assert_eq!(rows(&c, ALICE, ".show materialized-view Totals principals").len(), 2);
    let roles = rows(&c, ALICE, ".show materialized-view Totals principal roles");
    assert!(roles.iter().any(|r| r[0] == "Materialized View Db.Totals" && r[3] == "Admin"), "{roles:?}");
    ok(&c, ALICE, ".set materialized-view Totals admins ('aaduser=alice@contoso.com')");
    assert_eq!(rows(&c, ADMIN, ".show materialized-view Totals principals").len(), 1);
    let e = err(&c, ALICE, ".alter materialized-view Totals policy row_level_security enable \"Totals | where Owner == current_principal()\"");
    assert!(e.contains("Database Admin"), "{e}");
    ok(&c, ALICE, ".disable materialized-view Totals");
    ok(&c, ALICE, ".enable materialized-view Totals");
    ok(&c, ALICE, ".drop materialized-view Totals");
}

#[test]
fn view_policy_applies_to_two_principals() {
    let c = setup();
    ok(&c, ADMIN, LATEST);
    let out = rows(&c, ADMIN, &format!(".alter materialized-view Latest policy row_level_security enable \"Latest | where {OWN_ROWS}\""));
    assert_eq!(out[0][0], "RowLevelSecurityPolicy");
    assert_eq!(out[0][1], "[Db].[Latest]");
    let json: serde_json::Value = serde_json::from_str(&out[0][2]).unwrap();
    assert_eq!(json["IsEnabled"], true);
    let shown = rows(&c, BOB, ".show materialized-view Latest policy row_level_security");
    assert_eq!(shown[0][1], "[Db].[Latest]");
    assert_eq!(shown[0][2], out[0][2]);
    // Alice sees her own row; an auditor sees all; both through the name and the function.
    assert_eq!(one(&c, ALICE, "Latest | count"), "1");
    assert_eq!(rows(&c, ALICE, "Latest | project Owner, Ts"), [[ALICE.to_string(), "4".to_string()]]);
    assert_eq!(one(&c, ALICE, "materialized_view('Latest') | count"), "1");
    let e = err(&c, ALICE, "set request_block_row_level_security; Latest | count");
    assert!(e.contains("[Db].[Latest]"), "{e}");
    let all = cells(&exec_as(&c, BOB, &[AUDITORS], "Latest | order by Owner asc | project Owner, Ts").unwrap());
    assert_eq!(all, [[ALICE.to_string(), "4".to_string()], [BOB.to_string(), "3".to_string()]]);
    assert_eq!(cells(&exec_as(&c, BOB, &[AUDITORS], "materialized_view('Latest') | count").unwrap())[0][0], "2");
    // Bob without the group sees only his own row; Carol has none.
    assert_eq!(one(&c, BOB, "Latest | project Region"), "North");
    assert_eq!(one(&c, CAROL, "Latest | count"), "0");
    // The plan keeps the view's scan under its barrier.
    let explained = rt()
        .block_on(c.explain(
            "Latest | where Amount > 0",
            &RequestOptions { database: Some("Db".into()), identity: Some(Identity { principal: ALICE.into(), groups: vec![], ..Default::default() }), properties: vec![], ..Default::default() },
        ))
        .unwrap();
    assert!(explained.policies.iter().any(|p| p.contains("[Db].[Latest]")), "{:?}", explained.policies);
    // Disabled: everyone sees everything; deleted: the policy is null.
    ok(&c, ADMIN, &format!(".alter materialized-view Latest policy row_level_security disable \"Latest | where {OWN_ROWS}\""));
    assert_eq!(one(&c, CAROL, "Latest | count"), "2");
    // Force mode applies the disabled policy; block mode refuses an enabled one.
    assert_eq!(one(&c, CAROL, "set query_force_row_level_security; Latest | count"), "0");
    assert_eq!(one(&c, ALICE, "set query_force_row_level_security; materialized_view('Latest') | count"), "1");
    assert_eq!(rows(&c, ADMIN, ".delete materialized-view Latest policy row_level_security")[0][2], "null");
    assert_eq!(rows(&c, ADMIN, ".show materialized-view Latest policy row_level_security")[0][2], "null");
}

#[test]
fn view_policies_are_validated() {
    let c = setup();
    ok(&c, ADMIN, TOTALS);
    ok(&c, ADMIN, LATEST);
    // A sum/count view: the policy must reference a group-by key.
    let e = err(&c, ADMIN, ".alter materialized-view Totals policy row_level_security enable \"Totals | where Total > 10\"");
    assert!(e.contains("group-by keys (Owner)"), "{e}");
    ok(&c, ADMIN, ".alter materialized-view Totals policy row_level_security enable \"Totals | where Owner == current_principal()\"");
    assert_eq!(one(&c, ALICE, "Totals | project Total"), "17");
    assert_eq!(one(&c, ADMIN, "Totals | count"), "0");
    // An arg_max view may have any policy, but it must keep the view's schema.
    let e = err(&c, ADMIN, ".alter materialized-view Latest policy row_level_security enable \"Latest | project Owner\"");
    assert!(e.contains("schema"), "{e}");
    ok(&c, ADMIN, ".alter materialized-view Latest policy row_level_security enable \"Latest | where Amount > 5\"");
    assert_eq!(one(&c, CAROL, "Latest | count"), "1");
    // No other RLS-protected entity, no other database.
    let e = err(&c, ADMIN, ".alter materialized-view Latest policy row_level_security enable \"Latest | where Owner in (Totals | project Owner)\"");
    assert!(e.contains("'Totals', which has row level security enabled"), "{e}");
    let e = err(&c, ADMIN, ".alter materialized-view Nope policy row_level_security enable \"Nope\"");
    assert!(e.contains("does not exist"), "{e}");
    let e = err(&c, ADMIN, ".alter materialized-view Latest policy row_level_security enable with (frob=true) \"Latest\"");
    assert!(e.contains("unknown property 'frob'"), "{e}");
}

#[test]
fn source_policy_rule_for_row_copying_views() {
    let c = setup();
    ok(&c, ADMIN, LATEST);
    ok(&c, ADMIN, TOTALS);
    let enable = ".alter table T policy row_level_security enable \"T | where Owner == current_principal()\"";
    let before = script(&c);
    let e = err(&c, ADMIN, enable);
    assert!(e.contains("'Latest'") && !e.contains("'Totals'") && e.contains("allowMaterializedViewsWithoutRowLevelSecurity"), "{e}");
    assert_eq!(script(&c), before, "a failed command changes nothing");
    // Storing a disabled policy is fine.
    ok(&c, ADMIN, ".alter table T policy row_level_security disable \"T | where Owner == current_principal()\"");
    // With the override the source is protected, the view still holds every owner's latest row.
    ok(&c, ADMIN, &enable.replace("enable ", "enable with (allowMaterializedViewsWithoutRowLevelSecurity=true) "));
    assert_eq!(one(&c, ALICE, "T | count"), "2");
    assert_eq!(one(&c, ALICE, "Latest | count"), "2");
    // Materialization runs as the system: new rows reach the view in full.
    ok(&c, ADMIN, ".ingest inline into table T <|\naaduser=carol@contoso.com,East,1,20");
    assert_eq!(one(&c, BOB, "Latest | count"), "3");
    assert_eq!(one(&c, BOB, "T | count"), "2");

    // At creation time: a new arg_max view over the protected source needs the override.
    let create = ".create materialized-view Latest2 on table T { T | summarize arg_min(Ts, *) by Owner }";
    let e = err(&c, ADMIN, create);
    assert!(e.contains("allowMaterializedViewsWithoutRowLevelSecurity") && e.contains("row level security enabled"), "{e}");
    assert!(err(&c, ADMIN, ".show materialized-view Latest2").contains("does not exist"));
    ok(&c, ADMIN, &create.replace("materialized-view Latest2", "materialized-view with (allowMaterializedViewsWithoutRowLevelSecurity=true) Latest2"));
    // An aggregating view needs no override.
    ok(&c, ADMIN, ".create materialized-view Sums on table T { T | summarize sum(Amount) by Region }");
}

#[test]
fn a_view_with_its_own_policy_allows_the_source_policy() {
    let c = setup();
    ok(&c, ADMIN, LATEST);
    ok(&c, ADMIN, &format!(".alter materialized-view Latest policy row_level_security enable \"Latest | where {OWN_ROWS}\""));
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where Owner == current_principal()\"");
    assert_eq!(one(&c, ALICE, "Latest | count"), "1");
    // Removing or disabling the view's policy now would expose the source's rows.
    let e = err(&c, ADMIN, ".delete materialized-view Latest policy row_level_security");
    assert!(e.contains("cannot be removed or disabled"), "{e}");
    let e = err(&c, ADMIN, ".alter materialized-view Latest policy row_level_security disable \"Latest\"");
    assert!(e.contains("cannot be removed or disabled"), "{e}");
    ok(&c, ADMIN, ".alter materialized-view Latest policy row_level_security disable with (allowMaterializedViewsWithoutRowLevelSecurity=true) \"Latest\"");
}

#[test]
fn enabling_a_view_checks_its_source_policy() {
    let c = setup();
    ok(&c, ADMIN, LATEST);
    ok(&c, ADMIN, ".disable materialized-view Latest");
    // The view is disabled: the source may get a policy.
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where Owner == current_principal()\"");
    let before = script(&c);
    let e = err(&c, ADMIN, ".enable materialized-view Latest");
    assert!(e.contains("cannot be enabled") && e.contains("allowMaterializedViewsWithoutRowLevelSecurity"), "{e}");
    assert_eq!(script(&c), before);
    assert!(err(&c, ADMIN, ".enable materialized-view Latest with (frob=true)").contains("unknown property 'frob'"));
    ok(&c, ADMIN, ".enable materialized-view Latest with (allowMaterializedViewsWithoutRowLevelSecurity=true)");
    assert_eq!(rows(&c, ADMIN, ".show materialized-view Latest")[0][7], "true");
    // The override is remembered.
    ok(&c, ADMIN, ".disable materialized-view Latest");
    ok(&c, ADMIN, ".enable materialized-view Latest");
}

#[test]
fn restricted_view_access_sources_are_refused_both_ways() {
    let c = setup();
    ok(&c, ADMIN, ".alter table Other policy restricted_view_access true");
    let e = err(&c, ADMIN, ".create materialized-view V on table Other { Other | summarize count() by Owner }");
    assert!(e.contains("restricted view access"), "{e}");
    ok(&c, ADMIN, TOTALS);
    let before = script(&c);
    let e = err(&c, ADMIN, ".alter table T policy restricted_view_access true");
    assert!(e.contains("source of materialized view 'Totals'"), "{e}");
    let e = err(&c, ADMIN, ".alter tables (Other, T) policy restricted_view_access true");
    assert!(e.contains("source of materialized view 'Totals'"), "{e}");
    assert_eq!(script(&c), before, "a failed command changes nothing");
    ok(&c, ADMIN, ".alter table T policy restricted_view_access false");
}

#[test]
fn failed_commands_leave_metadata_unchanged() {
    let c = setup();
    ok(&c, ADMIN, LATEST);
    let before = script(&c);
    let data = rows(&c, ADMIN, "Latest | order by Owner asc");
    for (who, cmd) in [
        (ALICE, TOTALS),
        (ADMIN, ".create materialized-view V on table T { T | take 1 }"),
        (ADMIN, ".create materialized-view V on table T { T | summarize count() by Nope }"),
        (BOB, ".drop materialized-view Latest"),
        (ADMIN, ".alter materialized-view Latest policy row_level_security enable \"Latest | project Owner\""),
        (ADMIN, ".drop table T"),
        (ADMIN, ".alter table T policy restricted_view_access true"),
        (ADMIN, ".alter table T policy row_level_security enable \"T | where Owner == current_principal()\""),
        (BOB, ".add materialized-view Latest admins ('aaduser=bob@contoso.com')"),
        (ADMIN, ".add materialized-view Latest admins ('aaduser=eve@contoso.com')"),
    ] {
        let _ = err(&c, who, cmd);
        assert_eq!(script(&c), before, "after `{cmd}`");
        assert_eq!(rows(&c, ADMIN, "Latest | order by Owner asc"), data, "after `{cmd}`");
    }
}

#[test]
fn the_schema_script_recreates_views() {
    let c = setup();
    ok(&c, ADMIN, &LATEST.replace("Latest on", "with (folder='F') Latest on"));
    ok(&c, ADMIN, &format!(".alter materialized-view Latest policy row_level_security enable \"Latest | where {OWN_ROWS}\""));
    ok(&c, ADMIN, ".add materialized-view Latest admins ('aaduser=alice@contoso.com')");
    let lines: Vec<String> = script(&c).into_iter().map(|r| r[0].clone()).collect();
    let create = lines.iter().position(|l| l == ".create materialized-view with (folder = \"F\") Latest on table T { T | summarize arg_max(Ts, *) by Owner }");
    let policy = lines.iter().position(|l| l.starts_with(".alter materialized-view Latest policy row_level_security enable "));
    let admin = lines.iter().position(|l| l == ".add materialized-view Latest admins (\"aaduser=alice@contoso.com\")");
    assert!(create.is_some() && policy.is_some() && admin.is_some(), "{lines:#?}");
    assert!(create < policy, "{lines:#?}");
    // Every line parses.
    for l in &lines {
        kustodian_parser::parse(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    // Without security settings: the view, no policy and no principals.
    let lines: Vec<String> =
        rows(&c, ADMIN, ".show database Db schema as csl script with (IncludeSecuritySettings=false)").into_iter().map(|r| r[0].clone()).collect();
    assert!(lines.iter().any(|l| l.starts_with(".create materialized-view")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("materialized-view Latest policy") || l.starts_with(".add")), "{lines:#?}");
}
