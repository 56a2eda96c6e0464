//! The security rewrites at the planner's level, over an in-memory catalog and without a
//! cluster: a policy substituted under its barrier (for two principals), a disabled policy
//! applied by force mode, `restrict access to`, a catalog's refusal, and a policy pinned to the
//! functions it was validated with. Plans are inline snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use kustodian_parser::ast;
use kustodian_planner::{
    Catalog, DepKind, FunctionInfo, KqlColumn, KqlSchema, KqlType, PlanError, PlannedQuery, PolicyDep, Principal, RequestContext,
    RlsPolicy, TableInfo, plan_query,
};

/// Tables and functions of one database `Db`; `Hidden` is a database the caller may not read,
/// refused the way the runtime's catalog refuses it.
#[derive(Default)]
struct MemCatalog {
    tables: HashMap<String, TableInfo>,
    functions: HashMap<String, (String, String)>,
}

impl MemCatalog {
    fn table(mut self, name: &str, rls: Option<RlsPolicy>) -> Self {
        let schema = KqlSchema::new(vec![KqlColumn::new("Owner", KqlType::String), KqlColumn::new("V", KqlType::Long)]);
        let arrow = Arc::new(Schema::new(vec![Field::new("Owner", DataType::Utf8, true), Field::new("V", DataType::Int64, true)]));
        let provider = Arc::new(MemTable::try_new(arrow, vec![vec![]]).unwrap());
        let info = TableInfo {
            database: "Db".into(),
            name: name.into(),
            schema,
            provider,
            rls,
            restricted_view_access: false,
            materialized_view: false,
        };
        self.tables.insert(name.into(), info);
        self
    }

    fn function(mut self, name: &str, params: &str, body: &str) -> Self {
        self.functions.insert(name.into(), (params.into(), body.into()));
        self
    }
}

fn refuse(db: &str) -> PlanError {
    PlanError::Forbidden { message: format!("may not read database '{db}'") }
}

impl Catalog for MemCatalog {
    fn database(&self, name: &str) -> kustodian_planner::Result<Option<String>> {
        match name {
            "Db" => Ok(Some("Db".into())),
            "Hidden" => Err(refuse(name)),
            _ => Ok(None),
        }
    }

    fn table(&self, database: &str, name: &str) -> kustodian_planner::Result<Option<TableInfo>> {
        if database != "Db" {
            return Err(refuse(database));
        }
        Ok(self.tables.get(name).cloned())
    }

    fn function(&self, database: &str, name: &str) -> kustodian_planner::Result<Option<FunctionInfo>> {
        if database != "Db" {
            return Err(refuse(database));
        }
        let Some((params, body)) = self.functions.get(name) else { return Ok(None) };
        let text = format!(".create function {name}{params} {body}");
        let ast::Request::Command(cmd) = kustodian_parser::parse(&text).unwrap() else { panic!("not a command") };
        let ast::CommandKind::CreateFunction { params, body: stmts, .. } = cmd.kind else { panic!("not a function") };
        Ok(Some(FunctionInfo { database: "Db".into(), name: name.into(), params, body: stmts, version: body.clone() }))
    }

    fn table_names(&self, database: &str) -> kustodian_planner::Result<Vec<String>> {
        if database != "Db" {
            return Err(refuse(database));
        }
        Ok(self.tables.keys().cloned().collect())
    }
}

fn ctx(who: &str, force: bool) -> RequestContext {
    RequestContext { force_rls: force, ..RequestContext::new(Principal::parse(who).unwrap(), vec![], "Db", 0) }
}

fn plan(catalog: &MemCatalog, who: &str, force: bool, text: &str) -> Result<PlannedQuery, PlanError> {
    let ast::Request::Query(q) = kustodian_parser::parse(text).unwrap() else { panic!("not a query") };
    plan_query(catalog, &ctx(who, force), &q, text)
}

fn own_rows(enabled: bool) -> Option<RlsPolicy> {
    let reads_t = PolicyDep { kind: DepKind::Table, name: "T".into(), version: String::new() };
    Some(RlsPolicy { enabled, query: "T | where Owner == current_principal()".into(), functions: Some(vec![reads_t]) })
}

#[test]
fn a_policy_is_substituted_under_its_barrier_per_principal() {
    let c = MemCatalog::default().table("T", own_rows(true));
    let alice = plan(&c, "aaduser=alice@contoso.com", false, "T | where V > 1").unwrap();
    insta::assert_snapshot!(alice.plan.display_indent().to_string(), @r#"
    Filter: Db.T.V > Int64(1)
      SecurityBarrier: table=[Db].[T]
        Filter: Db.T.Owner = Utf8("aaduser=alice@contoso.com")
          TableScan: Db.T
    "#);
    assert_eq!(alice.protected, vec!["[Db].[T]".to_string()]);
    // Another principal: the same rewrite, its own identity folded in.
    let bob = plan(&c, "aaduser=BOB@contoso.com", false, "T | where V > 1").unwrap();
    assert!(bob.plan.display_indent().to_string().contains(r#"Utf8("aaduser=bob@contoso.com")"#));
    kustodian_planner::security::verify::verify_logical(&alice.plan, &alice.protected).unwrap();
}

#[test]
fn force_mode_applies_a_disabled_policy() {
    let c = MemCatalog::default().table("T", own_rows(false));
    let plain = plan(&c, "aaduser=alice@contoso.com", false, "T | count").unwrap();
    insta::assert_snapshot!(plain.plan.display_indent().to_string(), @r"
    Aggregate: groupBy=[[]], aggr=[[count(Int64(1)) AS Count]]
      TableScan: Db.T
    ");
    let forced = plan(&c, "aaduser=alice@contoso.com", true, "T | count").unwrap();
    insta::assert_snapshot!(forced.plan.display_indent().to_string(), @r#"
    Aggregate: groupBy=[[]], aggr=[[count(Int64(1)) AS Count]]
      SecurityBarrier: table=[Db].[T]
        Filter: Db.T.Owner = Utf8("aaduser=alice@contoso.com")
          TableScan: Db.T
    "#);
    assert!(forced.policies[0].forced);
}

#[test]
fn restrict_and_refusals_stop_binding() {
    let c = MemCatalog::default().table("T", None).table("S", None);
    let hidden = "let All = view() { T }; let A = view() { All | where V > 1 }; restrict access to (A); All | count";
    let e = plan(&c, "aaduser=alice@contoso.com", false, hidden).unwrap_err().to_string();
    assert!(e.contains("'All' is not accessible"), "{e}");
    let e = plan(&c, "aaduser=alice@contoso.com", false, "restrict access to (T); S | count").unwrap_err().to_string();
    assert!(e.contains("'S' is not accessible"), "{e}");
    // The catalog's refusal reaches the caller as it is: no "did you mean", no existence.
    for q in ["database('Hidden').Payrol | count", "union database('Hidden').T, T"] {
        match plan(&c, "aaduser=alice@contoso.com", false, q) {
            Err(PlanError::Forbidden { message }) => assert_eq!(message, "may not read database 'Hidden'"),
            other => panic!("{q}: {other:?}"),
        }
    }
}

#[test]
fn a_policy_binds_only_what_it_was_validated_with() {
    let pinned = |version: &str| {
        Some(RlsPolicy {
            enabled: true,
            query: "Visible(T)".into(),
            functions: Some(vec![
                PolicyDep { kind: DepKind::Function, name: "Visible".into(), version: version.into() },
                PolicyDep { kind: DepKind::Table, name: "T".into(), version: String::new() },
            ]),
        })
    };
    let body = "{ t | where V > 1 }";
    let c = MemCatalog::default().table("T", pinned(body)).function("Visible", "(t:(Owner:string, V:long))", body);
    plan(&c, "aaduser=alice@contoso.com", false, "T | count").unwrap();
    // The function changed since the policy was validated: the query fails, closed.
    let c = MemCatalog::default().table("T", pinned(body)).function("Visible", "(t:(Owner:string, V:long))", "{ t }");
    let e = plan(&c, "aaduser=alice@contoso.com", false, "T | count").unwrap_err().to_string();
    assert!(e.contains("stored function 'Visible'") && e.contains("validate the policy again"), "{e}");
    // A built-in's name never reaches a stored function, even one the catalog offers.
    let c = MemCatalog::default().table("T", None).function("strlen", "(s:string)", "{ 42 }");
    let p = plan(&c, "aaduser=alice@contoso.com", false, "T | extend n = strlen(Owner)").unwrap();
    assert!(!p.plan.display_indent().to_string().contains("42"));
}
