//! Authorization around the engine: the permission matrix over every command and role
//! (spec 3.2), authorize-before-resolve, closed-world policies, `restrict`, materialized views,
//! canonical identity and ingestion roots. Each finding of the outside attack has a test here,
//! for at least two principals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_runtime::{Cluster, Identity, QueryOutput, RequestOptions};
use kustodian_tests::{cells, rt};

const ADMIN: &str = "aaduser=admin@contoso.com";

fn fqn(name: &str) -> String {
    format!("aaduser={name}@contoso.com")
}

fn opts(who: &str, groups: &[&str], props: &[(&str, &str)]) -> RequestOptions {
    RequestOptions {
        database: Some("Db".into()),
        identity: Some(Identity { principal: who.into(), groups: groups.iter().map(|g| g.to_string()).collect(), ..Default::default() }),
        properties: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

fn exec_with(c: &Cluster, o: &RequestOptions, text: &str) -> Result<QueryOutput, (String, String)> {
    rt().block_on(c.execute(text, o)).map_err(|e| (e.code().as_str().to_string(), e.to_string()))
}

fn exec(c: &Cluster, who: &str, text: &str) -> Result<QueryOutput, (String, String)> {
    exec_with(c, &opts(who, &[], &[]), text)
}

fn ok(c: &Cluster, who: &str, text: &str) -> QueryOutput {
    exec(c, who, text).unwrap_or_else(|e| panic!("`{text}` as {who}: {e:?}"))
}

fn err(c: &Cluster, who: &str, text: &str) -> (String, String) {
    match exec(c, who, text) {
        Ok(out) => panic!("`{text}` as {who} should fail, returned {:?}", cells(&out)),
        Err(e) => e,
    }
}

fn forbidden(c: &Cluster, who: &str, text: &str) -> String {
    let (code, msg) = err(c, who, text);
    assert_eq!(code, "Forbidden", "`{text}` as {who}: {msg}");
    assert!(msg.contains(who), "a denial names the principal: {msg}");
    msg
}

fn one(c: &Cluster, who: &str, q: &str) -> String {
    cells(&ok(c, who, q))[0][0].clone()
}

/// The roles of the matrix: one principal each (table and function roles also hold Database
/// Viewer, their documented prerequisite).
const ROLES: &[(&str, &[&str])] = &[
    ("ca", &[".add cluster alldatabasesadmins ('aaduser=ca@contoso.com')"]),
    ("cv", &[".add cluster alldatabasesviewers ('aaduser=cv@contoso.com')"]),
    ("cm", &[".add cluster alldatabasesmonitors ('aaduser=cm@contoso.com')"]),
    ("da", &[".add database Db admins ('aaduser=da@contoso.com')"]),
    ("du", &[".add database Db users ('aaduser=du@contoso.com')"]),
    ("dv", &[".add database Db viewers ('aaduser=dv@contoso.com')"]),
    ("duv", &[".add database Db viewers ('aaduser=duv@contoso.com')", ".add database Db unrestrictedviewers ('aaduser=duv@contoso.com')"]),
    ("di", &[".add database Db ingestors ('aaduser=di@contoso.com')"]),
    ("dm", &[".add database Db monitors ('aaduser=dm@contoso.com')"]),
    ("ta", &[".add database Db viewers ('aaduser=ta@contoso.com')", ".add table T admins ('aaduser=ta@contoso.com')"]),
    ("ti", &[".add database Db viewers ('aaduser=ti@contoso.com')", ".add table T ingestors ('aaduser=ti@contoso.com')"]),
    ("fa", &[".add database Db viewers ('aaduser=fa@contoso.com')", ".add function F admins ('aaduser=fa@contoso.com')"]),
    ("no", &[]),
];

fn matrix_cluster() -> Cluster {
    let c = Cluster::in_memory(ADMIN, "first admin").unwrap();
    for cmd in [
        ".create database Db",
        ".create table T (Owner:string, V:long)",
        ".ingest inline into table T <|\nx,1\ny,2",
        ".create table R (S:string)",
        ".alter table R policy restricted_view_access true",
        ".create function F() { T | take 1 }",
        ".create table MS (Owner:string, V:long)",
        ".create materialized-view MV on table MS { MS | summarize arg_max(V, *) by Owner }",
    ] {
        ok(&c, ADMIN, cmd);
    }
    for (_, cmds) in ROLES {
        for cmd in *cmds {
            ok(&c, ADMIN, cmd);
        }
    }
    c
}

/// Roles that may read the metadata of `Db` (every role with a database or cluster reach but
/// ingestors).
const SHOW: &[&str] = &["ca", "cv", "cm", "da", "du", "dv", "duv", "dm", "ta", "ti", "fa"];
const READ: &[&str] = &["ca", "cv", "da", "du", "dv", "duv", "ta", "ti", "fa"];

/// Kusto's permission matrix (spec 3.2) as the commands this engine implements: the command,
/// and the roles that may run it. Every other role must get Forbidden.
const MATRIX: &[(&str, &[&str])] = &[
    (".create database New", &["ca"]),
    (".create table New (a:long)", &["ca", "da", "du"]),
    (".create-merge table T (Owner:string, V:long)", &["ca", "da"]),
    (".drop table T", &["ca", "da", "ta"]),
    (".show tables", SHOW),
    (".show table T schema as json", SHOW),
    (".show functions", SHOW),
    (".show function F", SHOW),
    (".show table T policy row_level_security", SHOW),
    (".show table * policy restricted_view_access", SHOW),
    (".show database Db schema as csl script", SHOW),
    (".show materialized-views", SHOW),
    (".show ingestion failures", SHOW),
    (".ingest inline into table T <| z,3", &["ca", "da", "di", "ta", "ti"]),
    // The query of `.append` is a query in the database: an ingestor, who may not query, may
    // append only with `.ingest`.
    (".append T <| datatable(Owner:string, V:long)['z', 3]", &["ca", "da", "ta", "ti"]),
    (".set-or-replace T <| datatable(Owner:string, V:long)['z', 3]", &["ca", "da", "ta"]),
    (".set New2 <| datatable(Owner:string, V:long)['z', 3]", &["ca", "da", "du"]),
    (".create function G() { print 1 }", &["ca", "da", "du"]),
    (".alter function F() { T | take 2 }", &["ca", "da", "fa"]),
    (".drop function F", &["ca", "da", "fa"]),
    (".alter table T policy row_level_security enable \"T | where V > 1\"", &["ca", "da", "ta"]),
    (".delete table T policy row_level_security", &["ca", "da", "ta"]),
    (".alter table T policy restricted_view_access true", &["ca", "da", "ta"]),
    (".show database Db principals", &["ca", "cm", "da", "dm"]),
    (".add database Db viewers ('aaduser=x@contoso.com')", &["ca", "da"]),
    (".set database Db monitors none", &["ca", "da"]),
    (".add table T admins ('aaduser=dv@contoso.com')", &["ca", "da", "ta"]),
    (".show table T principals", &["ca", "cm", "da", "dm", "ta"]),
    (".add function F admins ('aaduser=dv@contoso.com')", &["ca", "da", "fa"]),
    (".show function F principals", &["ca", "cm", "da", "dm", "fa"]),
    (".add cluster alldatabasesadmins ('aaduser=x@contoso.com')", &["ca"]),
    (".add cluster alldatabasesmonitors ('aaduser=x@contoso.com')", &["ca"]),
    (".show cluster principals", &["ca", "cm"]),
    (".show database Db principal 'aaduser=dv@contoso.com' roles", &["ca", "cm", "da", "dm", "dv"]),
    (".show principal roles", &["ca", "cv", "cm", "da", "du", "dv", "duv", "di", "dm", "ta", "ti", "fa", "no"]),
    (".create materialized-view V2 on table T { T | summarize count() by Owner }", &["ca", "da"]),
    (".drop materialized-view MV", &["ca", "da"]),
    ("T | count", READ),
    ("MV | count", READ),
    ("F | count", READ),
    ("R | count", &["duv"]),
];

#[test]
fn every_command_and_role_follows_the_permission_matrix() {
    let mut wrong = Vec::new();
    for (cmd, allowed) in MATRIX {
        for (role, _) in ROLES {
            // Commands change the cluster: each runs on a fresh one.
            let c = matrix_cluster();
            let who = fqn(role);
            let got = exec(&c, &who, cmd);
            let refused = matches!(&got, Err((code, _)) if code == "Forbidden");
            if refused == allowed.contains(role) {
                wrong.push(format!("{cmd:?} as {role}: expected {}, got {got:?}", if allowed.contains(role) { "allowed" } else { "Forbidden" }));
            }
            // An allowed command must really run (not merely pass authorization and fail).
            if allowed.contains(role) && got.is_err() && *role == "ca" {
                wrong.push(format!("{cmd:?} as {role} failed: {got:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} cells differ from the matrix:\n{}", wrong.len(), wrong.join("\n"));
}

/// Finding 1: a monitor may show, never change.
#[test]
fn a_monitor_cannot_grant_itself_admin() {
    let c = matrix_cluster();
    for who in [fqn("cm"), fqn("dm")] {
        let msg = forbidden(&c, &who, &format!(".add cluster alldatabasesadmins ('{who}')"));
        assert!(msg.contains("AllDatabasesAdmin"), "{msg}");
        forbidden(&c, &who, &format!(".add database Db admins ('{who}')"));
        forbidden(&c, &who, &format!(".set cluster alldatabasesviewers ('{who}')"));
        forbidden(&c, &who, "T | count");
    }
    // The cluster monitor still lists them.
    ok(&c, &fqn("cm"), ".show cluster principals");
    ok(&c, &fqn("ca"), &format!(".add cluster alldatabasesmonitors ('{}')", fqn("new")));
}

/// Finding 7: a database the caller may not read answers Forbidden, before any lookup: no
/// existence, no "did you mean", no schema, no type — also through a command's pipe.
#[test]
fn names_in_unreadable_databases_are_never_resolved() {
    let c = matrix_cluster();
    ok(&c, ADMIN, ".create database Hidden");
    let hidden = RequestOptions { database: Some("Hidden".into()), ..opts(ADMIN, &[], &[]) };
    exec_with(&c, &hidden, ".create table Payroll (Name:string, Salary:long)").unwrap();
    exec_with(&c, &hidden, ".ingest inline into table Payroll <| ann,100").unwrap();
    let probes = [
        "database('Hidden').Payrol | count",
        "database('Hidden').Payroll | project Salar",
        "database('Hidden').Payroll | where Salary == 'x'",
        "database('Nope').Payroll | count",
        "union database('Hidden').Payroll, T",
        "print toscalar(database('Hidden').Payroll | count)",
        ".show databases | extend x = toscalar(database('Hidden').Payrol | count)",
        ".show tables | extend x = toscalar(database('Hidden').Payroll | summarize sum(Salary))",
    ];
    // A viewer of another database, and a principal with no role at all.
    for who in [fqn("dv"), fqn("no")] {
        for q in probes {
            let (code, msg) = err(&c, &who, q);
            for leak in ["did you mean", "Salary", "long", "does not exist", "unknown"] {
                assert!(!msg.contains(leak), "{q} as {who}: {msg}");
            }
            if q.contains("database(") {
                assert_eq!(code, "Forbidden", "{q} as {who}: {msg}");
            }
        }
        // The same text for a database that exists and one that does not.
        let a = err(&c, &who, "database('Hidden').T | count").1.replace("Hidden", "X");
        let b = err(&c, &who, "database('Nope').T | count").1.replace("Nope", "X");
        assert_eq!(a, b);
        let a = err(&c, &who, ".show database Hidden schema").1.replace("Hidden", "X");
        let b = err(&c, &who, ".show database Nope schema").1.replace("Nope", "X");
        assert_eq!(a, b);
    }
    // Nor through what an admin of another database writes: a view's query, a policy.
    for cmd in [
        ".create materialized-view V on table T { T | join kind=inner (database('Hidden').Payrol) on $left.Owner == $right.Name | summarize count() by Owner }",
        ".alter table T policy row_level_security enable \"T | where Owner in ((database('Hidden').Payrol | project Name))\"",
        ".set-or-append T <| database('Hidden').Payrol | project Owner = Name, V = Salary",
    ] {
        let msg = forbidden(&c, &fqn("da"), cmd);
        assert!(!msg.contains("did you mean") && !msg.contains("Salary"), "{cmd}: {msg}");
    }
    // The database a request runs in: the same refusal for one that exists and one that does
    // not, and "does not exist" only for a cluster-wide reader.
    for who in [fqn("dv"), fqn("no")] {
        let hidden = exec_with(&c, &RequestOptions { database: Some("Hidden".into()), ..opts(&who, &[], &[]) }, "print 1").unwrap_err();
        let nope = exec_with(&c, &RequestOptions { database: Some("Nope".into()), ..opts(&who, &[], &[]) }, "print 1").unwrap_err();
        assert_eq!(hidden.0, "Forbidden", "{hidden:?}");
        assert_eq!(hidden.1.replace("Hidden", "X"), nope.1.replace("Nope", "X"));
    }
    let nope = exec_with(&c, &RequestOptions { database: Some("Nope".into()), ..opts(&fqn("cv"), &[], &[]) }, "print 1").unwrap_err();
    assert!(nope.1.contains("does not exist"), "{nope:?}");
    // A reader of the database still gets hints.
    let (_, msg) = err(&c, &fqn("ca"), "database('Hidden').Payrol | count");
    assert!(msg.contains("did you mean 'Payroll'"), "{msg}");
}

/// Finding 8: commands answer Forbidden before saying whether something exists, and never
/// echo a body, schema or policy.
#[test]
fn commands_are_no_existence_oracle() {
    let c = matrix_cluster();
    ok(&c, ADMIN, ".create function HiddenFn() { T | where Owner == 'secret-owner' }");
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where Owner != 'secret-owner'\"");
    for who in [fqn("no"), fqn("di")] {
        let pairs = [
            (".create function ifnotexists HiddenFn() { print 1 }", ".create function ifnotexists MissingFn() { print 1 }"),
            (".create table T (Owner:string, V:long)", ".create table Missing (Owner:string, V:long)"),
            (".show table T policy row_level_security", ".show table Missing policy row_level_security"),
            (".drop table T", ".drop table Missing"),
            (".show function HiddenFn principals", ".show function MissingFn principals"),
            (".show table T principals", ".show table Missing principals"),
            (".drop function HiddenFn", ".drop function MissingFn"),
            (".alter table T policy row_level_security enable \"T\"", ".alter table Missing policy row_level_security enable \"T\""),
            (".show table T schema as json", ".show table Missing schema as json"),
        ];
        for (real, missing) in pairs {
            let a = forbidden(&c, &who, real);
            let b = forbidden(&c, &who, missing);
            assert!(!a.contains("secret-owner") && !a.contains("Owner:string"), "{real} as {who}: {a}");
            let strip = |s: String| s.replace("HiddenFn", "X").replace("MissingFn", "X").replace("'Missing'", "'X'").replace("'T'", "'X'");
            assert_eq!(strip(a), strip(b), "{real} vs {missing} as {who}");
        }
    }
}

/// Finding 9: an admin of one database reads nothing of another's role assignments.
#[test]
fn an_admin_of_one_database_cannot_list_another() {
    let c = matrix_cluster();
    ok(&c, ADMIN, ".create database Hidden");
    ok(&c, ADMIN, ".add database Hidden viewers ('aaduser=secret@contoso.com')");
    for who in [fqn("da"), fqn("du")] {
        forbidden(&c, &who, ".show database Hidden principal 'aaduser=secret@contoso.com' roles");
        forbidden(&c, &who, ".show database Hidden principals");
        forbidden(&c, &who, ".show principal 'aaduser=secret@contoso.com' roles");
    }
    // Their own roles, and the admin's view of its own database, still answer.
    assert!(!cells(&ok(&c, &fqn("da"), ".show database Db principal 'aaduser=du@contoso.com' roles")).is_empty());
    assert!(!cells(&ok(&c, &fqn("du"), ".show principal roles")).is_empty());
}

/// Finding 3: built-in names cannot be shadowed, in policies or anywhere.
#[test]
fn stored_functions_cannot_shadow_built_ins() {
    let c = matrix_cluster();
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where tostring(V) == '2' | extend Owner = substring(Owner, 0, 0)\"");
    for who in [fqn("du"), ADMIN.to_string()] {
        for name in ["substring", "tostring", "ago", "now", "current_principal", "strlen", "count", "parse_json", "isnotempty", "hash_sha256"] {
            let (code, msg) = err(&c, &who, &format!(".create-or-alter function {name}(s:string) {{ s }}"));
            assert_eq!(code, "BadRequest", "{name} as {who}: {msg}");
            assert!(msg.contains("built-in"), "{msg}");
        }
    }
    // The policy computes what it did: one row, owner masked to ''.
    for who in [fqn("dv"), ADMIN.to_string()] {
        assert_eq!(cells(&ok(&c, &who, "T | project Owner, V")), vec![vec![String::new(), "2".to_string()]]);
    }
}

/// Finding 3, the other door: a policy's stored functions are pinned when it is validated.
#[test]
fn a_policy_fails_closed_when_its_function_changes() {
    let c = matrix_cluster();
    ok(&c, ADMIN, ".create function Visible(t:(Owner:string, V:long)) { t | where V > 1 }");
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"Visible(T)\"");
    for who in [fqn("dv"), fqn("du")] {
        assert_eq!(one(&c, &who, "T | count"), "1");
    }
    // The function's admin (its creator, here the admin; any Function Admin) changes it: the
    // policy now refuses to run rather than compute something else.
    ok(&c, ADMIN, ".create-or-alter function Visible(t:(Owner:string, V:long)) { t }");
    for who in [fqn("dv"), fqn("du")] {
        let (code, msg) = err(&c, &who, "T | count");
        assert_eq!(code, "SemanticError");
        assert!(msg.contains("validate the policy again"), "{msg}");
    }
    // A Table Admin validates it again, and it applies the new definition.
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"Visible(T)\"");
    assert_eq!(one(&c, &fqn("dv"), "T | count"), "2");

    // A Database User's function used by the policy: dropping it and creating a table of the
    // same name, with rows of that user's choosing, does not feed the policy either.
    ok(&c, &fqn("du"), ".create function Allowed() { datatable(Owner:string)['y'] }");
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where Owner in (Allowed)\"");
    assert_eq!(one(&c, &fqn("dv"), "T | count"), "1");
    ok(&c, &fqn("du"), ".drop function Allowed");
    ok(&c, &fqn("du"), ".create table Allowed (Owner:string)");
    ok(&c, &fqn("du"), ".ingest inline into table Allowed <|\nx\ny");
    for who in [fqn("dv"), fqn("du")] {
        let (code, msg) = err(&c, &who, "T | count");
        assert_eq!(code, "SemanticError", "{msg}");
        assert!(msg.contains("table 'Allowed'"), "{msg}");
    }
}

/// Finding 6: `query_now` (request property or `set`) moves the query's clock, never a policy's.
#[test]
fn policies_see_the_real_clock() {
    let c = matrix_cluster();
    ok(&c, ADMIN, ".create table E (Ts:datetime, V:long)");
    ok(&c, ADMIN, ".set-or-append E <| print Ts = now(), V = 1");
    ok(&c, ADMIN, ".set-or-append E <| print Ts = datetime(2000-01-01), V = 2");
    ok(&c, ADMIN, ".alter table E policy row_level_security enable \"E | where Ts > ago(365d)\"");
    for who in [fqn("dv"), ADMIN.to_string()] {
        assert_eq!(one(&c, &who, "E | count"), "1");
        assert_eq!(one(&c, &who, "set query_now = datetime(2000-06-01); E | count"), "1");
        let o = opts(&who, &[], &[("query_now", "datetime(2000-06-01)")]);
        assert_eq!(cells(&exec_with(&c, &o, "E | count").unwrap())[0][0], "1");
        // The query's own clock does move.
        assert_eq!(cells(&exec_with(&c, &o, "print y = getyear(now())").unwrap())[0][0], "2000");
        assert_eq!(one(&c, &who, "set query_now = datetime(2000-06-01); print y = getyear(now())"), "2000");
    }
}

/// Text may tighten the request's security properties, never relax them.
#[test]
fn set_statements_cannot_lift_the_callers_properties() {
    let c = matrix_cluster();
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where V > 1\"");
    for who in [fqn("dv"), ADMIN.to_string()] {
        let o = opts(&who, &[], &[("request_block_row_level_security", "true")]);
        for q in ["T | count", "set request_block_row_level_security=false; T | count", "set request_block_row_level_security = false; T | count"] {
            let (code, _) = exec_with(&c, &o, q).unwrap_err();
            assert_eq!(code, "Forbidden", "{q}");
        }
        ok(&c, &who, ".show tables");
    }
    ok(&c, ADMIN, ".alter table T policy row_level_security disable \"T | where V > 1\"");
    for who in [fqn("dv"), ADMIN.to_string()] {
        let o = opts(&who, &[], &[("query_force_row_level_security", "true")]);
        assert_eq!(cells(&exec_with(&c, &o, "set query_force_row_level_security=false; T | count").unwrap())[0][0], "1");
        assert_eq!(one(&c, &who, "T | count"), "2");
    }
}

/// Finding 4: `restrict access to` hides every let, view and table it does not list, and
/// admits stored functions it lists.
#[test]
fn restrict_hides_everything_unlisted() {
    let c = matrix_cluster();
    ok(&c, ADMIN, ".create table S (Owner:string, V:long)");
    ok(&c, ADMIN, ".ingest inline into table S <|\nx,10\ny,20");
    for who in [fqn("dv"), ADMIN.to_string()] {
        let base = "let AllRows = view() { T }; let A = view() { AllRows | where V > 1 }; restrict access to (A); ";
        assert_eq!(one(&c, &who, &format!("{base}A | count")), "1");
        for q in ["AllRows | count", "T | count", "table('T') | count", "database('Db').T | count", "S | count", "union T, A | count", "F | count"] {
            let (code, msg) = err(&c, &who, &format!("{base}{q}"));
            assert_eq!(code, "SemanticError", "{q}: {msg}");
            assert!(msg.contains("restrict access"), "{q}: {msg}");
        }
        // A let defined after the statement is the query's own.
        assert_eq!(one(&c, &who, &format!("{base}let B = A | where V > 5; B | count")), "0");
        // A stored function named in the list may be called; it reads what it needs.
        assert_eq!(one(&c, &who, "restrict access to (F); F | count"), "1");
        assert_eq!(one(&c, &who, "restrict access to (database('Db').F); F | count"), "1");
    }
}

/// Finding 5: a materialized view reads only its source table.
#[test]
fn materialized_views_read_only_their_source() {
    let c = matrix_cluster();
    ok(&c, ADMIN, ".create table Open (Owner:string, V:long)");
    ok(&c, ADMIN, ".ingest inline into table Open <| x,1");
    for (i, q) in [
        "Open | join kind=inner (R | project Owner = S) on Owner | summarize count() by Owner",
        "Open | join kind=inner (T) on Owner | summarize count() by Owner",
        "union Open, T | summarize count() by Owner",
        "Open | where V in ((T | project V)) | summarize count() by Owner",
        "Open | extend n = toscalar(R | count) | summarize count() by Owner",
        "Open | join kind=inner (F) on Owner | summarize count() by Owner",
    ]
    .iter()
    .enumerate()
    {
        for who in [ADMIN.to_string(), fqn("da")] {
            let (code, msg) = err(&c, &who, &format!(".create materialized-view V{i} on table Open {{ {q} }}"));
            assert!(code == "BadRequest" || code == "Forbidden", "{q}: {msg}");
            assert!(msg.contains("only its source table") || code == "Forbidden", "{q}: {msg}");
        }
    }
    ok(&c, &fqn("da"), ".create materialized-view Ok1 on table Open { Open | summarize count() by Owner }");
}

/// Finding 10: identity is canonical.
#[test]
fn identity_is_matched_canonically() {
    let c = matrix_cluster();
    // Another tenant is another principal.
    for who in ["aaduser=admin@contoso.com;fabrikam.com", "aaduser=ca@contoso.com;fabrikam.com"] {
        forbidden(&c, who, "T | count");
    }
    // The same tenant written explicitly, and another case, are the same principal.
    assert_eq!(one(&c, "aaduser=ADMIN@Contoso.com;contoso.com", "T | count"), "2");
    // Only aadgroup= claims are groups; a group is never the caller.
    for (who, groups) in [(fqn("no"), vec![ADMIN]), (fqn("no"), vec!["aadapp=1234;contoso.com"])] {
        let (code, msg) = exec_with(&c, &opts(&who, &groups, &[]), "T | count").unwrap_err();
        assert_eq!(code, "BadRequest", "{msg}");
        assert!(msg.contains("only aadgroup="), "{msg}");
    }
    ok(&c, ADMIN, ".add database Db viewers ('aadgroup=readers@contoso.com')");
    let (code, msg) = exec_with(&c, &opts("aadgroup=readers@contoso.com", &[], &[]), "T | count").unwrap_err();
    assert_eq!(code, "BadRequest", "{msg}");
    assert_eq!(cells(&exec_with(&c, &opts(&fqn("no"), &["aadgroup=Readers@Contoso.com"], &[]), "T | count").unwrap())[0][0], "2");
    // current_principal() is the canonical form, so an own-rows policy matches any spelling.
    ok(&c, ADMIN, ".add database Db viewers ('aaduser=alice@contoso.com', 'aaduser=bob@contoso.com')");
    ok(&c, ADMIN, ".set-or-append T <| datatable(Owner:string, V:long)['aaduser=alice@contoso.com', 7, 'aaduser=bob@contoso.com', 8]");
    ok(&c, ADMIN, ".alter table T policy row_level_security enable \"T | where Owner == current_principal()\"");
    for (who, v) in [("aaduser=ALICE@CONTOSO.COM", "7"), ("AADUser=Bob@contoso.com;CONTOSO.COM", "8")] {
        assert_eq!(cells(&ok(&c, who, "T | project V")), vec![vec![v.to_string()]]);
        assert_eq!(one(&c, who, "print current_principal()"), format!("aaduser={}@contoso.com", if v == "7" { "alice" } else { "bob" }));
        assert_eq!(one(&c, who, &format!("print current_principal_is_member_of('aaduser={}@contoso.com')", if v == "7" { "Alice" } else { "BOB" })), "true");
        assert_eq!(one(&c, who, "print current_principal_is_member_of('aaduser=alice@contoso.com;fabrikam.com')"), "false");
    }
}

/// Finding 2: `.ingest` reads only below the ingestion roots, never the cluster directory.
#[test]
fn ingestion_reads_only_below_its_roots() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("in");
    let data = root.join("cluster");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("ok.csv"), "a,1\n").unwrap();
    std::fs::write(base.path().join("outside.csv"), "b,2\n").unwrap();
    let c = Cluster::init(&data, ADMIN).unwrap().with_ingestion_roots(std::slice::from_ref(&root)).unwrap();
    ok(&c, ADMIN, ".create database Db");
    ok(&c, ADMIN, ".create table T (Owner:string, V:long)");
    ok(&c, ADMIN, ".create table Raw (Line:string)");
    ok(&c, ADMIN, ".add database Db ingestors ('aaduser=ing@contoso.com')");
    ok(&c, ADMIN, ".add table T ingestors ('aaduser=ing@contoso.com')");
    ok(&c, ADMIN, &format!(".ingest into table T ('{}')", root.join("ok.csv").display()));
    let extent = std::fs::read_dir(data.join("extents")).ok().and_then(|mut d| d.next()).map(|e| e.unwrap().path());
    let mut paths = vec![
        "/etc/passwd".to_string(),
        base.path().join("outside.csv").display().to_string(),
        format!("{}/../outside.csv", root.display()),
        data.join("metadata.json").display().to_string(),
    ];
    paths.extend(extent.map(|p| p.display().to_string()));
    for who in [ADMIN.to_string(), fqn("ing")] {
        for p in &paths {
            let (code, msg) = err(&c, &who, &format!(".ingest into table Raw ('{p}') with (format='csv')"));
            let (code2, msg2) = err(&c, &who, &format!(".ingest into table T ('{p}') with (format='parquet')"));
            for (code, msg) in [(code, msg), (code2, msg2)] {
                assert_eq!(code, "Forbidden", "{p} as {who}: {msg}");
                assert!(msg.contains("is not allowed") && !msg.contains("root:"), "{p}: {msg}");
            }
        }
    }
    assert_eq!(one(&c, ADMIN, "T | count"), "1");
    // A library cluster without roots reads no local file at all.
    let c2 = Cluster::in_memory(ADMIN, "x").unwrap();
    ok(&c2, ADMIN, ".create database Db");
    ok(&c2, ADMIN, ".create table T (Owner:string, V:long)");
    let (code, _) = err(&c2, ADMIN, &format!(".ingest into table T ('{}')", root.join("ok.csv").display()));
    assert_eq!(code, "Forbidden");
}
