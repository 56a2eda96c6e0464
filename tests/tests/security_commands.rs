//! Roles, principal commands, policy commands and their validation, each checked for at least
//! two principals, through the runtime's request API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_runtime::{Cluster, Identity, QueryOutput, RequestOptions};

const ADMIN: &str = "aaduser=admin@contoso.com";
const ALICE: &str = "aaduser=alice@contoso.com";
const BOB: &str = "aaduser=bob@contoso.com";

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap())
}

fn exec(c: &Cluster, who: &str, text: &str) -> Result<QueryOutput, (String, String)> {
    let opts = RequestOptions {
        database: Some("Db".into()),
        identity: Some(Identity { principal: who.into(), groups: vec![] }),
        properties: vec![],
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

fn cells(out: &QueryOutput) -> Vec<Vec<String>> {
    use datafusion::arrow::util::display::array_value_to_string;
    let mut v = Vec::new();
    for b in &out.batches {
        for r in 0..b.num_rows() {
            v.push(b.columns().iter().map(|c| array_value_to_string(c, r).unwrap()).collect());
        }
    }
    v
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
