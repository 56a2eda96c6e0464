//! The cluster's persistent metadata (serde JSON in the cluster directory): databases, tables,
//! functions, materialized views, their policies and role assignments. Plain data: the rules
//! over it live in `auth` (who may do what) and `commands` (what changes it).

use kustodian_planner::{PolicyDep, KqlSchema, Principal};
use serde::{Deserialize, Serialize};

use crate::storage::ExtentInfo;

/// One role assignment as stored and listed by `.show ... principals`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoleAssignment {
    /// Role keyword as in the commands: `admins`, `users`, `viewers`, `unrestrictedviewers`,
    /// `ingestors`, `monitors`; cluster: `alldatabasesadmins`, `alldatabasesviewers`,
    /// `alldatabasesmonitors`.
    pub role: String,
    /// Normalised FQN.
    pub principal: String,
    #[serde(default)]
    pub notes: String,
}

impl RoleAssignment {
    pub fn principal(&self) -> Option<Principal> {
        Principal::parse(&self.principal).ok()
    }
}

/// Persistent metadata of the cluster (serde JSON in the cluster directory).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Meta {
    /// Bumped by every commit. A commit is made only over the version it read (see
    /// `Cluster::commit`); older clusters without it start at 0.
    #[serde(default)]
    pub version: u64,
    pub cluster_roles: Vec<RoleAssignment>,
    pub databases: Vec<DatabaseMeta>,
    /// The latest failed ingestions (at most [`MAX_INGESTION_FAILURES`]), for
    /// `.show ingestion failures`.
    #[serde(default)]
    pub ingestion_failures: Vec<crate::ingest::IngestionFailure>,
}

/// How many failed ingestions the metadata keeps (the oldest go first).
pub const MAX_INGESTION_FAILURES: usize = 1000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DatabaseMeta {
    pub name: String,
    pub principals: Vec<RoleAssignment>,
    pub tables: Vec<TableMeta>,
    pub functions: Vec<FunctionMeta>,
    #[serde(default)]
    pub materialized_views: Vec<MaterializedViewMeta>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableMeta {
    pub name: String,
    pub schema: KqlSchema,
    pub extents: Vec<ExtentInfo>,
    #[serde(default)]
    pub rls: Option<RlsMeta>,
    #[serde(default)]
    pub restricted_view_access: bool,
    #[serde(default)]
    pub principals: Vec<RoleAssignment>,
    #[serde(default)]
    pub docstring: String,
    #[serde(default)]
    pub folder: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RlsMeta {
    pub enabled: bool,
    pub query: String,
    /// The stored functions (and their versions) the policy was validated with; see
    /// [`kustodian_planner::RlsPolicy::functions`].
    #[serde(default)]
    pub functions: Option<Vec<PolicyDep>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionMeta {
    pub name: String,
    /// `(params)` as written.
    pub parameters: String,
    /// `{ body }` as written.
    pub body: String,
    #[serde(default)]
    pub docstring: String,
    #[serde(default)]
    pub folder: String,
    #[serde(default)]
    pub principals: Vec<RoleAssignment>,
}

impl RlsMeta {
    pub fn policy(&self) -> kustodian_planner::RlsPolicy {
        kustodian_planner::RlsPolicy { enabled: self.enabled, query: self.query.clone(), functions: self.functions.clone() }
    }
}

impl FunctionMeta {
    /// Identifies this definition of the function: a digest of its parameters and body.
    pub fn version(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.parameters.as_bytes());
        h.update([0u8]);
        h.update(self.body.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Meta {
    /// Writes every role assignment's principal in canonical form, so that role checks compare
    /// strings (`auth::Caller::is`). Metadata written by an older version may hold other
    /// spellings; unparsable ones are left as they are (they match no one).
    pub fn canonicalize(&mut self) {
        let lists = std::iter::once(&mut self.cluster_roles).chain(self.databases.iter_mut().flat_map(|d| {
            std::iter::once(&mut d.principals)
                .chain(d.tables.iter_mut().map(|t| &mut t.principals))
                .chain(d.functions.iter_mut().map(|f| &mut f.principals))
                .chain(d.materialized_views.iter_mut().map(|v| &mut v.principals))
        }));
        for list in lists {
            for a in list.iter_mut() {
                if let Ok(p) = Principal::parse(&a.principal) {
                    a.principal = p.fqn();
                }
            }
        }
    }

    /// Whether table or materialized view `name` of `db` has an enabled RLS policy.
    pub fn has_enabled_rls(&self, db: &str, name: &str) -> bool {
        self.db(db).is_some_and(|d| {
            d.table(name).is_some_and(|t| t.rls.as_ref().is_some_and(|r| r.enabled))
                || d.materialized_view(name).is_some_and(|v| v.rls.as_ref().is_some_and(|r| r.enabled))
        })
    }

    /// Every extent the metadata references (tables and materialized views).
    pub fn extents(&self) -> impl Iterator<Item = &ExtentInfo> {
        self.databases.iter().flat_map(|d| {
            d.tables.iter().flat_map(|t| t.extents.iter()).chain(d.materialized_views.iter().flat_map(|v| v.extents.iter()))
        })
    }

    pub fn db(&self, name: &str) -> Option<&DatabaseMeta> {
        self.databases.iter().find(|d| d.name.eq_ignore_ascii_case(name))
    }

    pub fn db_mut(&mut self, name: &str) -> Option<&mut DatabaseMeta> {
        self.databases.iter_mut().find(|d| d.name.eq_ignore_ascii_case(name))
    }
}

impl DatabaseMeta {
    pub fn table(&self, name: &str) -> Option<&TableMeta> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn table_mut(&mut self, name: &str) -> Option<&mut TableMeta> {
        self.tables.iter_mut().find(|t| t.name == name)
    }

    pub fn function(&self, name: &str) -> Option<&FunctionMeta> {
        self.functions.iter().find(|f| f.name == name)
    }
}

fn yes() -> bool {
    true
}

/// A materialized view as stored in the cluster metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MaterializedViewMeta {
    pub name: String,
    /// The source table (same database).
    pub source: String,
    /// The view's query, as written between the braces of `.create materialized-view`.
    pub query: String,
    /// The schema of the materialized data (the query's result schema).
    pub schema: KqlSchema,
    pub extents: Vec<ExtentInfo>,
    #[serde(default)]
    pub rls: Option<RlsMeta>,
    #[serde(default)]
    pub principals: Vec<RoleAssignment>,
    #[serde(default)]
    pub docstring: String,
    #[serde(default)]
    pub folder: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `allowMaterializedViewsWithoutRowLevelSecurity=true` was given for this view (at create
    /// or enable time, or when its source's policy was enabled): the view may copy rows of an
    /// RLS-protected source without a policy of its own.
    #[serde(default)]
    pub allow_without_rls: bool,
    /// When the view was last materialized (ns since the Unix epoch).
    #[serde(default)]
    pub last_run: i64,
}

impl DatabaseMeta {
    pub fn materialized_view(&self, name: &str) -> Option<&MaterializedViewMeta> {
        self.materialized_views.iter().find(|v| v.name == name)
    }

    pub fn materialized_view_mut(&mut self, name: &str) -> Option<&mut MaterializedViewMeta> {
        self.materialized_views.iter_mut().find(|v| v.name == name)
    }
}

