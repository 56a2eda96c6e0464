//! Roles, principal commands, policy commands and their validation, each checked for at least
//! two principals, through the runtime's request API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_tests::{rt, cells};
use kustodian_runtime::{Cluster, Identity, QueryOutput, RequestOptions};

const ADMIN: &str = "aaduser=admin@contoso.com";
const ALICE: &str = "aaduser=alice@contoso.com";
const BOB: &str = "aaduser=bob@contoso.com";

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

fn count(c: &Cluster, who: &str, q: &str) -> String {
    cells(&ok(c, who, q))[0][0].clone()
}

fn setup() -> (tempfile::TempDir, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::init(dir.path(), ADMIN).unwrap();
    for cmd in [
        ".create database Db",
        ".create table T (Owner:string, V:long)",
        ".create table M (User:string, Owner:string)",
        ".ingest inline into table T <|\naaduser=alice@contoso.com,1\naaduser=bob@contoso.com,2\naaduser=bob@contoso.com,3",
        ".ingest inline into table M <|\nalice@contoso.com,aaduser=bob@contoso.com",
    ] {
        ok(&c, ADMIN, cmd);
    }
    (dir, c)
}

#[test]
fn principals_are_added_listed_and_removed() {
    let (_d, c) = setup();
    let out = ok(&c, ADMIN, ".add database Db viewers ('aaduser=alice@contoso.com', 'AADUser=bob@contoso.com') 'team'");
    let cols: Vec<String> = out.schema.columns.iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        cols,
        ["Role", "PrincipalType", "PrincipalDisplayName", "PrincipalObjectId", "PrincipalFQN", "Notes", "RoleAssignmentIdentifier"]
    );
    let rows = cells(&ok(&c, ADMIN, ".show database Db principals"));
    assert!(rows.iter().any(|r| r[0] == "Database Db Viewer" && r[4] == BOB && r[5] == "team"), "{rows:?}");
    assert_eq!(count(&c, ALICE, "T | count"), "3");
    assert_eq!(count(&c, BOB, "T | count"), "3");
    let dropped = ok(&c, ADMIN, ".drop database Db viewers ('aaduser=bob@contoso.com') skip-results");
    assert_eq!(dropped.row_count(), 0, "skip-results returns no rows");
    let (code, msg) = err(&c, BOB, "T | count");
    assert_eq!(code, "Forbidden");
    assert!(msg.contains(BOB) && msg.contains("Database Viewer") && msg.contains("'Db'"), "{msg}");
    ok(&c, ADMIN, ".set database Db viewers none");
    assert_eq!(err(&c, ALICE, "T | count").0, "Forbidden");
    // Non-admins may not manage or list principals.
    ok(&c, ADMIN, ".add database Db users ('aaduser=alice@contoso.com')");
    let (code, msg) = err(&c, ALICE, ".add database Db admins ('aaduser=alice@contoso.com')");
    assert_eq!(code, "Forbidden");
    assert!(msg.contains(ALICE) && msg.contains("Database Admin"), "{msg}");
    assert_eq!(err(&c, BOB, ".show database Db principals").0, "Forbidden");
    // Bad input: unknown role, bad FQN; nothing changes.
    let code = err(&c, ADMIN, ".add database Db readers ('aaduser=x@y.com')").0;
    assert!(code == "SyntaxError" || code == "BadRequest", "{code}");
    assert_eq!(err(&c, ADMIN, ".add database Db viewers ('someone@contoso.com')").0, "BadRequest");
}

#[test]
fn creators_administer_what_they_create_and_others_do_not() {
    let (_d, c) = setup();
    ok(&c, ADMIN, ".add database Db users ('aaduser=alice@contoso.com', 'aaduser=bob@contoso.com')");
    ok(&c, ALICE, ".create table A (x:long)");
    ok(&c, ALICE, ".ingest inline into table A <|\n1\n2");
    ok(&c, ALICE, ".alter table A policy row_level_security enable \"A | where x > 1\"");
    let (code, msg) = err(&c, BOB, ".drop table A");
    assert_eq!(code, "Forbidden");
    assert!(msg.contains(BOB) && msg.contains("Table Admin"), "{msg}");
    assert_eq!(err(&c, BOB, ".alter table A policy row_level_security disable \"A\"").0, "Forbidden");
    assert_eq!(err(&c, BOB, ".delete table A policy row_level_security").0, "Forbidden");
    // Viewers cannot create tables.
    ok(&c, ADMIN, ".add database Db viewers ('aaduser=carol@contoso.com')");
    let (code, msg) = err(&c, "aaduser=carol@contoso.com", ".create table C (x:long)");
    assert_eq!(code, "Forbidden");
    assert!(msg.contains("Database User"), "{msg}");
    ok(&c, ALICE, ".drop table A");
}

#[test]
fn policy_validation_refuses_bad_policies_and_keeps_the_old_one() {
    let (_d, c) = setup();
    ok(&c, ADMIN, ".add database Db viewers ('aaduser=alice@contoso.com', 'aaduser=bob@contoso.com')");
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where Owner == current_principal()\"");
    assert_eq!(count(&c, ALICE, "T | count"), "1");
    assert_eq!(count(&c, BOB, "T | count"), "2");
    for bad in [
        "T | where",                                   // syntax error
        "T | where NoSuchColumn == 1",                 // semantic error
        "T | project Owner",                           // schema differs
        "T | extend V = tostring(V)",                  // type differs
        "T | project V, Owner",                        // order differs
        "T | where Owner in ((M | project Owner))",    // fine on its own, used below
    ] {
        let r = exec(&c, ADMIN, &format!(".alter table T policy row_level_security enable \"{bad}\""));
        if bad.starts_with("T | where Owner in") {
            assert!(r.is_ok(), "a mapping table without RLS is allowed: {r:?}");
            ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where Owner == current_principal()\"");
            continue;
        }
        let (code, _) = r.err().unwrap_or_else(|| panic!("policy `{bad}` should be refused"));
        assert_eq!(code, "BadRequest", "{bad}");
        // The old policy still holds.
        assert_eq!(count(&c, ALICE, "T | count"), "1", "after refusing `{bad}`");
    }
    // A policy may not reference another table with RLS enabled.
    ok(&c, ADMIN, ".alter table M policy row_level_security enable \"M | where User == 'nobody'\"");
    let (code, msg) = err(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where Owner in ((M | project Owner))\"");
    assert_eq!(code, "BadRequest");
    assert!(msg.contains("row level security enabled"), "{msg}");
    // Show returns the policy JSON; delete removes it.
    let rows = cells(&ok(&c, ADMIN, ".show table T policy row_level_security"));
    assert_eq!(rows[0][0], "RowLevelSecurityPolicy");
    assert_eq!(rows[0][1], "[Db].[T]");
    let json: serde_json::Value = serde_json::from_str(&rows[0][2]).unwrap();
    assert_eq!(json["IsEnabled"], true);
    assert_eq!(json["Query"], "T | where Owner == current_principal()");
    ok(&c, ADMIN, ".delete table T policy row_level_security");
    assert_eq!(count(&c, ALICE, "T | count"), "3");
    assert_eq!(cells(&ok(&c, ADMIN, ".show table T policy row_level_security"))[0][2], "null");
}

#[test]
fn restricted_view_access_and_rls_exclude_each_other() {
    let (_d, c) = setup();
    ok(&c, ADMIN, ".add database Db viewers ('aaduser=alice@contoso.com', 'aaduser=bob@contoso.com')");
    ok(&c, ADMIN, ".add database Db unrestrictedviewers ('aaduser=alice@contoso.com')");
    ok(&c, ADMIN, ".alter table T policy restricted_view_access true");
    assert_eq!(count(&c, ALICE, "T | count"), "3");
    let (code, msg) = err(&c, BOB, "T | count");
    assert_eq!(code, "Forbidden");
    assert!(msg.contains("UnrestrictedViewer") && !msg.contains("aaduser=alice"), "{msg}");
    // Admins are not exempt.
    assert_eq!(err(&c, ADMIN, "T | count").0, "Forbidden");
    // RLS cannot be enabled on an RVA table...
    assert_eq!(err(&c, ADMIN, ".alter table T policy row_level_security enable \"T\"").0, "BadRequest");
    // ...but a disabled policy can be stored.
    ok(&c, ADMIN, ".alter table T policy row_level_security disable \"T | where V > 1\"");
    ok(&c, ADMIN, ".delete table T policy restricted_view_access");
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where V > 1\"");
    // RVA cannot be enabled on a table with RLS enabled.
    assert_eq!(err(&c, ADMIN, ".alter tables (T, M) policy restricted_view_access true").0, "BadRequest");
    assert_eq!(count(&c, BOB, "M | count"), "1", "the failed .alter tables changed nothing");
    // Unrestricted viewer alone gives no access.
    ok(&c, ADMIN, ".add database Db unrestrictedviewers ('aaduser=eve@contoso.com')");
    ok(&c, ADMIN, ".alter table M policy restricted_view_access true");
    assert_eq!(err(&c, "aaduser=eve@contoso.com", "M | count").0, "Forbidden");
}

#[test]
fn failed_commands_change_nothing_and_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Cluster::init(dir.path(), ADMIN).unwrap();
        ok(&c, ADMIN, ".create database Db");
        ok(&c, ADMIN, ".create table T (Owner:string, V:long)");
        ok(&c, ADMIN, ".ingest inline into table T <|\na,1\nb,2");
        ok(&c, ADMIN, ".add database Db viewers ('aaduser=alice@contoso.com')");
        ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where Owner == 'a'\"");
        // A failing .set-or-append adds nothing.
        assert!(exec(&c, ADMIN, ".set-or-append T <| T | extend W = 1").is_err());
        assert!(exec(&c, ADMIN, ".append T <| datatable(a:string)['x']").is_err());
        assert_eq!(count(&c, ADMIN, "T | count"), "1");
    }
    let c = Cluster::open(dir.path()).unwrap();
    assert_eq!(count(&c, ALICE, "T | count"), "1", "the policy survives reopening");
    assert_eq!(count(&c, ADMIN, "T | count"), "1", "admins are not exempt");
    ok(&c, ADMIN, ".delete table T policy row_level_security");
    assert_eq!(count(&c, ALICE, "T | count"), "2");
    assert_eq!(err(&c, "aaduser=mallory@contoso.com", "T | count").0, "Forbidden");
}

fn exec_with(c: &Cluster, who: &str, text: &str, properties: &[(&str, &str)]) -> Result<QueryOutput, (String, String)> {
    let opts = RequestOptions {
        database: Some("Db".into()),
        identity: Some(Identity { principal: who.into(), groups: vec![], ..Default::default() }),
        properties: properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    rt().block_on(c.execute(text, &opts)).map_err(|e| (e.code().as_str().to_string(), e.to_string()))
}

#[test]
fn validatepermissions_checks_without_running() {
    let (_d, c) = setup();
    ok(&c, ADMIN, ".add database Db viewers ('aaduser=alice@contoso.com')");
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where Owner == current_principal()\"");
    // As a `set` statement and as a request property: one row `OK`, and nothing runs (a
    // query that would fail at run time still validates).
    for (text, props) in [
        ("set validatepermissions; T | take 1", vec![]),
        ("T | where V / 0 > 1", vec![("validatepermissions", "true")]),
    ] {
        let out = exec_with(&c, ALICE, text, &props).unwrap();
        assert_eq!(out.schema.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["Result"]);
        assert_eq!(cells(&out), [["OK"]], "{text}");
    }
    // Bob holds no role: denied, naming him and the role.
    let (code, msg) = exec_with(&c, BOB, "set validatepermissions; T | take 1", &[]).unwrap_err();
    assert_eq!(code, "Forbidden");
    assert!(msg.contains(BOB) && msg.contains("Database Viewer"), "{msg}");
    // Through a function and a policy's other tables, too.
    ok(&c, ADMIN, ".create function F() { M | count }");
    let (code, _) = exec_with(&c, BOB, "set validatepermissions; F()", &[]).unwrap_err();
    assert_eq!(code, "Forbidden");
    assert_eq!(cells(&exec_with(&c, ALICE, "set validatepermissions; F()", &[]).unwrap()), [["OK"]]);
}

#[test]
fn set_cannot_change_read_only_or_identity_properties() {
    let (_d, c) = setup();
    ok(&c, ADMIN, ".add database Db users ('aaduser=alice@contoso.com')");
    for who in [ADMIN, ALICE] {
        for prop in ["request_readonly", "request_user", "request_app_name", "servertimeout", "query_language"] {
            let (code, msg) = err(&c, who, &format!("set {prop} = true; T | count"));
            assert_eq!(code, "SemanticError", "{prop}: {msg}");
            assert!(msg.contains(prop), "{msg}");
        }
    }
    // As a request property, request_readonly refuses commands that change the cluster and
    // leaves everything as it was; queries and .show commands still run.
    for who in [ADMIN, ALICE] {
        let ro = [("request_readonly", "true")];
        let (code, msg) = exec_with(&c, who, ".create table X (a:long)", &ro).unwrap_err();
        assert_eq!(code, "BadRequest", "{msg}");
        assert!(msg.contains("request_readonly"), "{msg}");
        exec_with(&c, who, ".ingest inline into table T <|\nx,9", &ro).unwrap_err();
        assert_eq!(cells(&exec_with(&c, who, "T | count", &ro).unwrap()), [["3"]]);
        assert!(exec_with(&c, who, ".show tables", &ro).is_ok());
    }
    assert!(err(&c, ADMIN, "X").1.contains("X"), "the table was not created");
}

#[test]
fn rls_with_properties_are_validated() {
    let (_d, c) = setup();
    ok(&c, ADMIN, ".add database Db viewers ('aaduser=alice@contoso.com', 'aaduser=bob@contoso.com')");
    let q = "\"T | where Owner == current_principal()\"";
    let out = ok(&c, ADMIN, &format!(".alter table T policy row_level_security enable with (allowMaterializedViewsWithoutRowLevelSecurity=true) {q}"));
    assert!(cells(&out)[0][2].contains("\"IsEnabled\":true"));
    assert_eq!(count(&c, ALICE, "T | count"), "1");
    assert_eq!(count(&c, BOB, "T | count"), "2");
    for bad in ["with (NoSuchProperty=true)", "with (allowMaterializedViewsWithoutRowLevelSecurity='maybe')"] {
        let (code, msg) = err(&c, ADMIN, &format!(".alter table T policy row_level_security disable {bad} \"T\""));
        assert_eq!(code, "BadRequest", "{msg}");
    }
    // The failed commands kept the enabled policy.
    assert_eq!(count(&c, ALICE, "T | count"), "1");
}

#[test]
fn database_schema_script_replays_and_hides_principals_from_non_admins() {
    let (_d, c) = setup();
    ok(&c, ADMIN, ".add database Db viewers ('aaduser=alice@contoso.com') 'readers'");
    ok(&c, ADMIN, ".create function with (folder='Sec', docstring='own rows') Own() { T | where Owner == current_principal() }");
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"Own\"");
    ok(&c, ADMIN, ".alter table M policy restricted_view_access true");
    let admin_script: Vec<String> = cells(&ok(&c, ADMIN, ".show database Db schema as csl script")).into_iter().map(|r| r[0].clone()).collect();
    assert!(admin_script.iter().any(|l| l.starts_with(".create-merge table T (Owner:string, V:long)")), "{admin_script:#?}");
    assert!(admin_script.iter().any(|l| l.contains("function with (folder = \"Sec\"") && l.contains("Own()")), "{admin_script:#?}");
    assert!(admin_script.iter().any(|l| l == ".alter table T policy row_level_security enable \"Own\""), "{admin_script:#?}");
    assert!(admin_script.iter().any(|l| l == ".alter table M policy restricted_view_access true"), "{admin_script:#?}");
    assert!(admin_script.iter().any(|l| l.contains("viewers (\"aaduser=alice@contoso.com\") \"readers\"")), "{admin_script:#?}");
    // A viewer gets the schema and policies but not the principals.
    let alice_script: Vec<String> = cells(&ok(&c, ALICE, ".show database Db schema as csl script")).into_iter().map(|r| r[0].clone()).collect();
    assert!(alice_script.iter().all(|l| !l.starts_with(".add")), "{alice_script:#?}");
    assert!(alice_script.iter().any(|l| l.contains("row_level_security")), "{alice_script:#?}");
    // IncludeSecuritySettings=false leaves out policies and principals.
    let plain = cells(&ok(&c, ADMIN, ".show database Db schema as csl script with (IncludeSecuritySettings=false)"));
    assert!(plain.iter().all(|r| !r[0].contains("policy") && !r[0].starts_with(".add")), "{plain:?}");
    // Bob holds no role on the database.
    assert_eq!(err(&c, BOB, ".show database Db schema as csl script").0, "Forbidden");
    // The script recreates the same database in another cluster.
    let dir = tempfile::tempdir().unwrap();
    let other = Cluster::init(dir.path(), ADMIN).unwrap();
    ok(&other, ADMIN, ".create database Db");
    for line in &admin_script {
        ok(&other, ADMIN, line);
    }
    let again: Vec<String> = cells(&ok(&other, ADMIN, ".show database Db schema as csl script")).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(again, admin_script);
    // The default form lists the database, its tables and their columns.
    let rows = cells(&ok(&c, ALICE, ".show database Db schema | where TableName == 'T' and ColumnName != '' | project ColumnName, ColumnType"));
    assert_eq!(rows, [["Owner", "System.String"], ["V", "System.Int64"]]);
}

/// `bag_unpack` and `pivot` without an output schema find their columns by running their input
/// first (a probe), as the caller: a policy may not use them (its columns would come from rows
/// it hides), a caller's probe reads only what the policy lets it see, and `validatepermissions`
/// runs none.
#[test]
fn data_dependent_plugins_probe_as_the_caller() {
    let (_d, c) = setup();
    ok(&c, ADMIN, ".add database Db viewers ('aaduser=alice@contoso.com', 'aaduser=bob@contoso.com')");
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where Owner == current_principal()\"");
    let columns = |who: &str, q: &str| -> Vec<String> { ok(&c, who, q).schema.columns.iter().map(|c| c.name.clone()).collect() };
    let q = "T | project b = bag_pack(Owner, V) | evaluate bag_unpack(b)";
    assert_eq!(columns(ALICE, q), ["aaduser=alice@contoso.com"]);
    assert_eq!(columns(BOB, q), ["aaduser=bob@contoso.com"]);
    // The admin is not an owner: the policy leaves it no rows, so no slots and no columns.
    assert!(err(&c, ADMIN, q).1.contains("the result would have no columns"));
    let q = "T | extend k = 1 | evaluate pivot(Owner, sum(V), k)";
    assert_eq!(columns(ALICE, q), ["k", "aaduser=alice@contoso.com"]);
    assert_eq!(cells(&ok(&c, BOB, q)), [["1", "5"]]);
    // A policy may not use them without an output schema; with one it may.
    for bad in [
        "T | extend b = bag_pack('Owner', Owner, 'V', V) | project b | evaluate bag_unpack(b)",
        "T | extend one = 1 | evaluate pivot(Owner, sum(V), one) | project Owner = '', V = 0",
    ] {
        let (code, msg) = err(&c, ADMIN, &format!(".alter table T policy row_level_security enable \"{bad}\""));
        assert_eq!(code, "BadRequest", "{bad}: {msg}");
        assert!(msg.contains("without an output schema in a row_level_security policy"), "{msg}");
    }
    assert_eq!(count(&c, ALICE, "T | count"), "1", "the old policy holds");
    ok(
        &c,
        ADMIN,
        ".alter table T policy row_level_security enable \"T | project b = bag_pack('Owner', Owner, 'V', V) | evaluate bag_unpack(b) : (Owner:string, V:long) | where Owner == current_principal()\"",
    );
    assert_eq!(cells(&ok(&c, BOB, "T | project V | order by V asc")), [["2"], ["3"]]);
    // Authorized, not run: the probe finds nothing, and a caller without a role is refused
    // before anything runs.
    let out = exec_with(&c, ALICE, "set validatepermissions; T | project b = bag_pack(Owner, V) | evaluate bag_unpack(b)", &[]).unwrap();
    assert_eq!(cells(&out), [["OK"]]);
    ok(&c, ADMIN, ".drop database Db viewers ('aaduser=bob@contoso.com')");
    let (code, msg) = err(&c, BOB, "T | project b = bag_pack(Owner, V) | evaluate bag_unpack(b)");
    assert_eq!(code, "Forbidden", "{msg}");
}
