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
    /// Extents dropped (or merged away) whose files are kept for a grace period: see
    /// [`crate::storage::RetiredExtent`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<crate::storage::RetiredExtent>,
}

/// A table's or database's data policies (Kusto's caching and retention policies). Periods in
/// nanoseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DataPolicies {
    /// `policy caching hot = <timespan>`: extents whose newest row is younger are hot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caching_hot: Option<i64>,
    /// `policy retention softdelete = <timespan>`: extents whose newest row is older are
    /// dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_softdelete: Option<i64>,
    /// `recoverability = disabled` was given (kept for `.show`; nothing is recoverable here).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retention_recoverability_disabled: bool,
    /// Whether `.alter ... policy retention` set a policy (a softdelete of `None` then means
    /// "keep forever", Kusto's default, shown as a policy rather than as null).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retention_set: bool,
}

impl DataPolicies {
    /// The caching policy as Kusto shows it (`.show ... policy caching`, `.show table details`),
    /// `None` when none is set.
    pub fn caching_json(&self) -> Option<String> {
        self.caching_hot.map(|h| {
            let span = kustodian_parser::value_text::format_timespan_nanos(h);
            serde_json::json!({"DataHotSpan": {"Value": span}, "IndexHotSpan": {"Value": span}, "HotWindows": []}).to_string()
        })
    }

    /// The retention policy as Kusto shows it, `None` when none is set (a policy without a
    /// soft-delete period keeps data forever: Kusto's largest timespan).
    pub fn retention_json(&self) -> Option<String> {
        self.retention_set.then(|| {
            serde_json::json!({
                "SoftDeletePeriod": self.retention_softdelete.map_or_else(|| "106751.23:47:16.8547758".to_string(), kustodian_parser::value_text::format_timespan_nanos),
                "Recoverability": if self.retention_recoverability_disabled { "Disabled" } else { "Enabled" },
            })
            .to_string()
        })
    }
}

/// An ingestion mapping (`.create table T ingestion csv mapping 'Name' '[...]'`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IngestionMappingMeta {
    pub name: String,
    /// `csv`, `json`, `parquet`, ...
    pub kind: String,
    /// The mapping as given (a JSON array).
    pub mapping: String,
    /// When it was last changed (ns since the Unix epoch).
    #[serde(default)]
    pub last_updated: i64,
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
    #[serde(default, skip_serializing_if = "is_default")]
    pub policies: DataPolicies,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
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
    #[serde(default, skip_serializing_if = "is_default")]
    pub policies: DataPolicies,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<IngestionMappingMeta>,
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

    /// The effective data policies of table `t` of database `db`: the table's own, else the
    /// database's, per policy.
    pub fn effective_policies(&self, db: &str, t: &str) -> DataPolicies {
        let Some(d) = self.db(db) else { return DataPolicies::default() };
        let own = d.table(t).map(|t| t.policies.clone()).unwrap_or_default();
        DataPolicies {
            caching_hot: own.caching_hot.or(d.policies.caching_hot),
            retention_softdelete: if own.retention_set { own.retention_softdelete } else { d.policies.retention_softdelete },
            retention_recoverability_disabled: own.retention_recoverability_disabled || d.policies.retention_recoverability_disabled,
            retention_set: own.retention_set || d.policies.retention_set,
        }
    }

    /// Whether an extent of table `t` is hot under the table's effective caching policy.
    pub fn is_hot(&self, db: &str, t: &str, e: &ExtentInfo, now: i64) -> bool {
        self.effective_policies(db, t).caching_hot.is_none_or(|hot| e.max_created >= now.saturating_sub(hot))
    }

    /// The extents that are hot under their tables' caching policies (a materialized view's
    /// always are).
    pub fn hot_extents(&self, now: i64) -> std::collections::HashSet<String> {
        let mut hot = std::collections::HashSet::new();
        for d in &self.databases {
            for t in &d.tables {
                hot.extend(t.extents.iter().filter(|e| self.is_hot(&d.name, &t.name, e, now)).map(|e| e.id.clone()));
            }
            for v in &d.materialized_views {
                hot.extend(v.extents.iter().map(|e| e.id.clone()));
            }
        }
        hot
    }

    /// Drops every extent whose newest row is older than its table's soft-delete period, and
    /// returns the (database, table) pairs that lost extents. Applied by the retention command
    /// and when a cluster directory is opened.
    pub fn apply_retention(&mut self, now: i64) -> Vec<(String, String)> {
        let mut changed = Vec::new();
        let periods: Vec<(String, String, i64)> = self
            .databases
            .iter()
            .flat_map(|d| d.tables.iter().map(move |t| (d.name.clone(), t.name.clone())))
            .filter_map(|(d, t)| self.effective_policies(&d, &t).retention_softdelete.map(|p| (d, t, p)))
            .collect();
        for (d, t, period) in periods {
            let cutoff = now.saturating_sub(period);
            if let Some(tm) = self.db_mut(&d).and_then(|db| db.table_mut(&t)) {
                let before = tm.extents.len();
                tm.extents.retain(|e| e.max_created >= cutoff);
                if tm.extents.len() != before {
                    changed.push((d, t));
                }
            }
        }
        changed
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

