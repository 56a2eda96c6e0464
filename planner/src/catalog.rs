//! The catalog the binder resolves names against; the runtime implements it, tests use an
//! in-memory one.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use kustodian_parser::ast;

use crate::types::KqlSchema;

/// A table's row-level-security policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlsPolicy {
    pub enabled: bool,
    /// KQL text: a query, a stored function's name, or a function call.
    pub query: String,
}

/// What the binder needs to know of a table.
#[derive(Clone)]
pub struct TableInfo {
    pub database: String,
    pub name: String,
    pub schema: KqlSchema,
    pub provider: Arc<dyn TableProvider>,
    pub rls: Option<RlsPolicy>,
    pub restricted_view_access: bool,
    /// A materialized view (read by name or `materialized_view()`), not a table. Its RLS
    /// policy is substituted like a table's, at the same choke point.
    pub materialized_view: bool,
}

impl TableInfo {
    /// `[db].[table]`, Kusto's entity name form.
    pub fn entity_name(&self) -> String {
        format!("[{}].[{}]", self.database, self.name)
    }
}

/// A stored function: its parameters and body as parsed from its definition.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub database: String,
    pub name: String,
    pub params: Vec<ast::Param>,
    pub body: Vec<ast::Statement>,
}

/// Name resolution for the binder. Lookups of tables and functions are case-sensitive, as in
/// Kusto; database names are case-insensitive.
pub trait Catalog: Send + Sync {
    /// The canonical name of a database, if it exists.
    fn database(&self, name: &str) -> Option<String>;
    fn table(&self, database: &str, name: &str) -> Option<TableInfo>;
    fn function(&self, database: &str, name: &str) -> Option<FunctionInfo>;
    /// Table names of a database (for `union T*` and did-you-mean hints).
    fn table_names(&self, database: &str) -> Vec<String>;
}
