//! `search` reads tables through the binder's table resolution: row-level security policies,
//! restricted view access and authorization apply to it as to any other query.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_tests::{rt, cells};
use kustodian_runtime::{Cluster, Identity, QueryOutput, RequestOptions};

const ADMIN: &str = "aaduser=admin@contoso.com";
const ALICE: &str = "aaduser=alice@contoso.com";
const BOB: &str = "aaduser=bob@contoso.com";
const MALLORY: &str = "aaduser=mallory@contoso.com";

fn exec(c: &Cluster, who: &str, text: &str) -> Result<QueryOutput, (String, String)> {
    let opts = RequestOptions {
        database: Some("Db".into()),
        identity: Some(Identity { principal: who.into(), groups: vec![], ..Default::default() }),
        properties: vec![],
        ..Default::default()
    };
    rt().block_on(c.execute(text, &opts)).map_err(|e| (e.code().as_str().to_string(), e.to_string()))
}

fn ok(c: &Cluster, who: &str, text: &str) -> QueryOutput {
    exec(c, who, text).unwrap_or_else(|e| panic!("`{text}` as {who}: {e:?}"))
}

fn err(c: &Cluster, who: &str, text: &str) -> (String, String) {
    match exec(c, who, text) {
        Ok(_) => panic!("`{text}` as {who} should fail"),
        Err(e) => e,
    }
}

/// The sorted `(table, Id)` pairs a search returns.
fn hits(c: &Cluster, who: &str, q: &str) -> Vec<(String, String)> {
    let out = ok(c, who, &format!("{q} | project ['$table'], Id"));
    let mut v: Vec<(String, String)> = cells(&out).into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    v.sort();
    v
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn setup() -> (tempfile::TempDir, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::init(dir.path(), ADMIN).unwrap();
    for cmd in [
        ".create database Db",
        ".create table T (Id:long, Owner:string, Note:string)",
        ".create table U (Id:long, Note:string)",
        ".create table S (Id:long, Note:string)",
        ".ingest inline into table T <|\n1,aaduser=alice@contoso.com,secret red\n2,aaduser=bob@contoso.com,secret red\n3,aaduser=bob@contoso.com,secret blue",
        ".ingest inline into table U <|\n10,public red",
        ".ingest inline into table S <|\n20,restricted red",
        ".alter table T policy row_level_security enable \"T | where Owner == current_principal()\"",
        ".alter table S policy restricted_view_access true",
        ".add database Db viewers ('aaduser=alice@contoso.com', 'aaduser=bob@contoso.com')",
    ] {
        ok(&c, ADMIN, cmd);
    }
    (dir, c)
}

#[test]
fn search_applies_row_level_security_per_principal() {
    let (_d, c) = setup();
    // Every table of the database: T through its policy, U as is, S (restricted view) left out.
    assert_eq!(hits(&c, ALICE, "search \"red\""), pairs(&[("T", "1"), ("U", "10")]));
    assert_eq!(hits(&c, BOB, "search \"red\""), pairs(&[("T", "2"), ("U", "10")]));
    // Explicit tables, wildcards and a piped table.
    assert_eq!(hits(&c, ALICE, "search in (T) \"secret\""), pairs(&[("T", "1")]));
    assert_eq!(hits(&c, BOB, "search in (T*, U) \"secret\""), pairs(&[("T", "2"), ("T", "3")]));
    assert_eq!(hits(&c, BOB, "T | search \"blue\""), pairs(&[("T", "3")]));
    assert_eq!(hits(&c, BOB, "search *"), pairs(&[("T", "2"), ("T", "3"), ("U", "10")]));
    // A term only hidden rows hold finds nothing; `where *` sees the policy's rows too.
    assert_eq!(hits(&c, ALICE, "search \"blue\""), pairs(&[]));
    assert_eq!(hits(&c, ALICE, "search Owner:\"bob\""), pairs(&[]));
    assert_eq!(cells(&ok(&c, ALICE, "T | where * has \"bob\" | count"))[0][0], "0");
    assert_eq!(cells(&ok(&c, BOB, "T | where * has \"bob\" | count"))[0][0], "2");
    // The policy binds the admin too, who owns no row of T.
    assert_eq!(hits(&c, ADMIN, "search in (T, U) \"red\""), pairs(&[("U", "10")]));
}

#[test]
fn search_is_authorized_like_any_query() {
    let (_d, c) = setup();
    // No role on the database.
    let (code, msg) = err(&c, MALLORY, "search \"red\"");
    assert_eq!(code, "Forbidden", "{msg}");
    assert!(msg.contains(MALLORY), "{msg}");
    assert_eq!(err(&c, MALLORY, "search in (U) \"red\"").0, "Forbidden");
    assert_eq!(err(&c, MALLORY, "T | search \"red\"").0, "Forbidden");
    // Naming a restricted-view table needs the UnrestrictedViewer role.
    let (code, msg) = err(&c, ALICE, "search in (S) \"red\"");
    assert_eq!(code, "Forbidden", "{msg}");
    assert!(msg.contains("restricted view access"), "{msg}");
    ok(&c, ADMIN, ".add database Db unrestrictedviewers ('aaduser=alice@contoso.com')");
    assert_eq!(hits(&c, ALICE, "search in (S) \"red\""), pairs(&[("S", "20")]));
    assert_eq!(hits(&c, BOB, "search in (U) \"red\""), pairs(&[("U", "10")]));
    // Blocking row-level security fails instead of reading the raw table.
    let (code, _) = err(&c, BOB, "set request_block_row_level_security; search \"red\"");
    assert_eq!(code, "Forbidden");
}

/// `search` and `union` patterns reach the query's views (`let V = view () {...}`), as the let
/// statement's and union's reference examples show; the tables beside them keep their
/// policies, so each principal still finds only its own rows.
#[test]
fn search_and_union_patterns_reach_views() {
    let (_dir, c) = setup();
    let views = "let V1 = view () { datatable(Id:long, Note:string)[100, 'view red'] };\n\
                 let V2 = view () { datatable(Id:long, Note:string)[200, 'view blue'] };\n";
    let red = |who: &str| hits(&c, who, &format!("{views}search 'red'"));
    assert_eq!(red(ALICE), pairs(&[("T", "1"), ("U", "10"), ("V1", "100")]));
    assert_eq!(red(BOB), pairs(&[("T", "2"), ("U", "10"), ("V1", "100")]));
    // A column only the views have: the tables' legs match nothing.
    let doc = "let Range10 = view () { range MyColumn from 1 to 10 step 1 };\n\
               let Range20 = view () { range MyColumn from 1 to 20 step 1 };\n\
               search MyColumn == 5 | project ['$table'], MyColumn | order by ['$table'] asc";
    for who in [ALICE, BOB] {
        assert_eq!(cells(&ok(&c, who, doc)), vec![vec!["Range10".to_string(), "5".to_string()], vec!["Range20".to_string(), "5".to_string()]]);
    }
    // union's patterns: views by name, and tables as before.
    let count = |who: &str, q: &str| cells(&ok(&c, who, &format!("{views}{q} | count")))[0][0].clone();
    assert_eq!(count(ALICE, "union isfuzzy=true V*"), "2");
    assert_eq!(count(ALICE, "union isfuzzy=true V*, T"), "3");
    assert_eq!(count(BOB, "union isfuzzy=true V*, T"), "4");
}
