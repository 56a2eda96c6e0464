//! Binder decisions made by walking the AST (`kustodian_parser::ast::visit`):
//! * whether a name or a call denotes a table: the parser's one syntactic definition
//!   (`Expr::tabular_shape`), names and calls decided by scope and catalog. Stored functions
//!   are judged by the shape of their body without binding it; the copy that did this before
//!   missed `search`, `find`, `evaluate` and `externaldata` bodies and read them as scalars;
//! * aggregates and window functions are found in one query's expressions, not in its
//!   subqueries;
//! * the guards of per-group subqueries (`partition`, `mv-apply`) see every name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use kustodian_parser::ast;
use kustodian_planner::{
    Catalog, FunctionInfo, KqlColumn, KqlSchema, KqlType, PlanError, PlannedQuery, Principal, RequestContext, TableInfo,
    plan_query,
};

/// One table `T (Owner:string, V:long)` and stored functions, in database `Db`.
#[derive(Default)]
struct MemCatalog {
    functions: HashMap<String, String>,
}

impl MemCatalog {
    fn function(mut self, name: &str, body: &str) -> Self {
        self.functions.insert(name.into(), body.into());
        self
    }
}

impl Catalog for MemCatalog {
    fn database(&self, name: &str) -> kustodian_planner::Result<Option<String>> {
        Ok((name == "Db").then(|| "Db".to_string()))
    }

    fn table(&self, database: &str, name: &str) -> kustodian_planner::Result<Option<TableInfo>> {
        if database != "Db" || name != "T" {
            return Ok(None);
        }
        let schema = KqlSchema::new(vec![KqlColumn::new("Owner", KqlType::String), KqlColumn::new("V", KqlType::Long)]);
        let arrow = Arc::new(Schema::new(vec![Field::new("Owner", DataType::Utf8, true), Field::new("V", DataType::Int64, true)]));
        let provider = Arc::new(MemTable::try_new(arrow, vec![vec![]]).unwrap());
        Ok(Some(TableInfo {
            database: "Db".into(),
            name: "T".into(),
            schema,
            provider,
            rls: None,
            restricted_view_access: false,
            materialized_view: false,
        }))
    }

    fn function(&self, database: &str, name: &str) -> kustodian_planner::Result<Option<FunctionInfo>> {
        let Some(body) = self.functions.get(name).filter(|_| database == "Db") else { return Ok(None) };
        let text = format!(".create function {name}() {body}");
        let ast::Request::Command(cmd) = kustodian_parser::parse(&text).unwrap() else { panic!("not a command") };
        let ast::CommandKind::CreateFunction { params, body: stmts, .. } = cmd.kind else { panic!("not a function") };
        Ok(Some(FunctionInfo { database: "Db".into(), name: name.into(), params, body: stmts, version: body.clone() }))
    }

    fn table_names(&self, database: &str) -> kustodian_planner::Result<Vec<String>> {
        Ok(if database == "Db" { vec!["T".into()] } else { vec![] })
    }
}

fn plan(catalog: &MemCatalog, text: &str) -> Result<PlannedQuery, PlanError> {
    let ast::Request::Query(q) = kustodian_parser::parse(text).unwrap() else { panic!("not a query") };
    let ctx = RequestContext::new(Principal::parse("aaduser=alice@contoso.com").unwrap(), vec![], "Db", 0);
    plan_query(catalog, &ctx, &q, text)
}

#[test]
fn a_stored_function_ending_in_search_is_a_table() {
    let c = MemCatalog::default().function("Hits", "{ search in (T) \"alice\" }");
    // As a `let` value and as an `in (...)` subquery, where only tabularity decides.
    let planned = plan(&c, "let h = Hits; h | count").unwrap();
    assert_eq!(planned.schema.columns.len(), 1);
    plan(&c, "T | where Owner in (Hits | project Owner)").unwrap();
    plan(&c, "T | where V > toscalar(Hits | count)").unwrap();
    let planned = plan(&c, "let h = Hits; T | where Owner in (h)").unwrap();
    assert!(planned.plan.display_indent().to_string().contains("Subquery"), "{}", planned.plan.display_indent());
}

#[test]
fn a_stored_function_ending_in_find_is_a_table() {
    // `find` is not supported: reading the body as a table reports that, not a scalar error.
    let c = MemCatalog::default().function("Found", "{ find in (T) where V > 1 }");
    let e = plan(&c, "let f = Found; f | count").unwrap_err().to_string();
    assert!(e.contains("'find' operator"), "{e}");
}

#[test]
fn a_stored_function_ending_in_datatable_is_a_table() {
    let c = MemCatalog::default().function("Owners", "{ datatable(Owner:string)['a', 'b'] }");
    let planned = plan(&c, "let o = Owners; T | where Owner in (o)").unwrap();
    assert!(planned.plan.display_indent().to_string().contains("Subquery"), "{}", planned.plan.display_indent());
}

#[test]
fn a_stored_function_ending_in_a_scalar_is_a_scalar() {
    let c = MemCatalog::default().function("Limit", "{ 10 }");
    plan(&c, "T | where V < Limit()").unwrap();
}

#[test]
fn aggregates_and_window_calls_of_a_subquery_are_its_own() {
    let c = MemCatalog::default();
    // The subquery's `max` is not one of the outer summarize's aggregates.
    let planned = plan(&c, "T | summarize n = count() + toscalar(T | summarize max(V))").unwrap();
    assert_eq!(planned.schema.columns[0].name, "n");
    // The subquery's `row_number()` does not serialize the outer rows.
    let planned = plan(&c, "T | extend m = toscalar(T | serialize | extend r = row_number() | summarize max(r))").unwrap();
    let text = planned.plan.display_indent().to_string();
    assert_eq!(text.matches("AS __kql_rn]]").count(), 1, "{text}");
    // Nested window calls: the innermost first.
    plan(&c, "T | serialize | extend r = row_cumsum(prev(V, 1, 0))").unwrap();
}

#[test]
fn per_group_subqueries_see_every_name() {
    let c = MemCatalog::default();
    let e = plan(&c, "T | mv-apply x = pack_array(V) on (where x in ((T | serialize | extend r = row_number() | project V)))")
        .unwrap_err()
        .to_string();
    assert!(e.contains("'row_number()' inside mv-apply"), "{e}");
    let e = plan(&c, "T | partition by Owner (as P | where V > toscalar(P | count))").unwrap_err().to_string();
    assert!(e.contains("the partition name 'P'"), "{e}");
    let e = plan(&c, "T | partition by Owner { T | where Owner == 'x' | project Owner2 = Owner }").unwrap_err().to_string();
    assert!(e.contains("a column named 'Owner'"), "{e}");
    // The key written as the group column, also under `toscalar(Key)`.
    plan(&c, "T | partition by Owner { range x from 1 to 2 step 1 | extend k = toscalar(Owner), j = strcat(Owner, '') }").unwrap();
}
