//! The cluster: databases, tables, functions, policies and principals, and request execution.
//!
//! NOTE: this file currently only fixes the API the CLI is written against; the engine behind
//! it lands with the planner.

use std::path::Path;

use crate::error::{Result, RuntimeError};
use crate::output::QueryOutput;

/// Who is making a request: a principal FQN plus its group claims (`--as`, `--group`).
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub principal: String,
    pub groups: Vec<String>,
}

/// Per-request options: database in scope, identity (None = the cluster's first admin),
/// request properties (`--set name[=value]`).
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    pub database: Option<String>,
    pub identity: Option<Identity>,
    pub properties: Vec<(String, String)>,
}

/// What `kustodian explain` prints.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The effective KQL with policies substituted, printed from the AST.
    pub effective_kql: String,
    /// Policies applied, one line each (e.g. `RowLevelSecurity on [Sales].[Orders]: <query>`).
    pub policies: Vec<String>,
    pub logical_plan: String,
    pub physical_plan: String,
}

pub struct Cluster {
    _private: (),
}

impl Cluster {
    /// Creates a new empty cluster directory whose first admin (AllDatabasesAdmin) is `admin`.
    pub fn init(_dir: &Path, _admin: &str) -> Result<Cluster> {
        Err(RuntimeError::Internal("engine not wired yet".into()))
    }

    /// Opens an existing cluster directory.
    pub fn open(_dir: &Path) -> Result<Cluster> {
        Err(RuntimeError::Internal("engine not wired yet".into()))
    }

    /// An in-memory cluster holding the bundled sample database.
    pub async fn sample() -> Result<Cluster> {
        Err(RuntimeError::Internal("engine not wired yet".into()))
    }

    /// The database requests run in when none is named (the only or the first database).
    pub fn default_database(&self) -> Option<String> {
        None
    }

    /// Runs one request (a query or a management command).
    pub async fn execute(&self, _text: &str, _opts: &RequestOptions) -> Result<QueryOutput> {
        Err(RuntimeError::Internal("engine not wired yet".into()))
    }

    /// Plans a query without running it and describes the plan.
    pub async fn explain(&self, _text: &str, _opts: &RequestOptions) -> Result<Explanation> {
        Err(RuntimeError::Internal("engine not wired yet".into()))
    }
}
