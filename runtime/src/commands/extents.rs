//! Extents and data policies: `.show ... extents`, `.drop extent(s)` (by id, by age, all of a
//! table, or those a `.show ... extents` or a query lists), and the caching and retention
//! policies (`.alter|.alter-merge|.show|.delete ... policy caching|retention`). Retention is
//! applied when its policy is set and when a cluster directory is opened
//! (`Meta::apply_retention`).

use std::collections::HashSet;

use kustodian_parser::ast::{self, DataPolicyKind, ExtentScope, ExtentSource, PolicyTarget};
use kustodian_planner::KqlType;

use super::{Cx, can_show, is_table_admin, named_db, need_db_mut, need_table, table_db};
use crate::auth::{Needs, check};
use crate::catalog::State;
use crate::cluster::Meta;
use crate::error::{Result, RuntimeError};
use crate::meta::DataPolicies;
use crate::output::{QueryOutput, V, table};
use crate::storage::ExtentInfo;

/// Nanoseconds per tick (the unit of timespan literals).
const NANOS_PER_TICK: i64 = 100;

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

const EXTENT_COLS: &[(&str, KqlType)] = &[
    ("ExtentId", KqlType::Guid),
    ("DatabaseName", KqlType::String),
    ("TableName", KqlType::String),
    ("MaxCreatedOn", KqlType::Datetime),
    ("OriginalSize", KqlType::Real),
    ("ExtentSize", KqlType::Real),
    ("CompressedSize", KqlType::Real),
    ("IndexSize", KqlType::Real),
    ("Blocks", KqlType::Long),
    ("Segments", KqlType::Long),
    ("ExtentContainerId", KqlType::String),
    ("RowCount", KqlType::Long),
    ("MinCreatedOn", KqlType::Datetime),
    ("Tags", KqlType::String),
    ("Kind", KqlType::String),
    ("DeletedRowCount", KqlType::Long),
];

/// The tables `.show ... extents` covers, as (database, table) pairs the caller may show.
fn scope_tables(cx: &Cx<'_>, scope: &ExtentScope) -> Result<Vec<(String, String)>> {
    let Cx { caller, ctx, snap, .. } = *cx;
    Ok(match scope {
        ExtentScope::Table(q) => {
            let (d, t) = table_db(q, ctx, snap)?;
            need_table(&snap.meta, &d, &t)?;
            vec![(d, t)]
        }
        ExtentScope::Tables(qs) => {
            let mut v = Vec::new();
            for q in qs {
                let (d, t) = table_db(q, ctx, snap)?;
                need_table(&snap.meta, &d, &t)?;
                v.push((d, t));
            }
            v
        }
        ExtentScope::Database(n) => {
            let d = named_db(n.as_ref(), ctx, snap);
            let db = snap.meta.db(&d).ok_or_else(|| RuntimeError::bad_request(format!("database '{d}' does not exist")))?;
            db.tables.iter().map(|t| (db.name.clone(), t.name.clone())).collect()
        }
        // Only the databases the caller may see.
        ExtentScope::Cluster => snap
            .meta
            .databases
            .iter()
            .filter(|d| can_show(snap, caller, &d.name))
            .flat_map(|d| d.tables.iter().map(|t| (d.name.clone(), t.name.clone())))
            .collect(),
    })
}


/// `has` on tags: the value equals a tag or is a whole term of it (case-insensitive).
fn tag_has(tag: &str, value: &str) -> bool {
    let (tag, value) = (tag.to_lowercase(), value.to_lowercase());
    if value.is_empty() {
        return false;
    }
    tag.match_indices(&value).any(|(i, _)| {
        let before = tag[..i].chars().next_back();
        let after = tag[i + value.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

fn tags_match(tags: &[String], filters: &[ast::TagFilter]) -> Result<bool> {
    for f in filters {
        let ast::LiteralKind::String(v) = &f.value.kind else {
            return Err(RuntimeError::bad_request("an extent tag filter takes a string"));
        };
        let any = |pred: &dyn Fn(&str) -> bool| tags.iter().any(|t| pred(t));
        let ok = match f.op {
            ast::BinaryOp::Has => any(&|t| tag_has(t, v)),
            ast::BinaryOp::NotHas => !any(&|t| tag_has(t, v)),
            ast::BinaryOp::Contains => any(&|t| t.to_lowercase().contains(&v.to_lowercase())),
            ast::BinaryOp::NotContains => !any(&|t| t.to_lowercase().contains(&v.to_lowercase())),
            _ => return Err(RuntimeError::bad_request("extent tags are filtered with has, !has, contains or !contains")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn extent_row(db: &str, t: &str, e: &ExtentInfo) -> Vec<V> {
    vec![
        V::S(e.id.clone()),
        V::S(db.to_string()),
        V::S(t.to_string()),
        V::D(Some(e.max_created)),
        V::R(e.original_size as f64),
        V::R(e.bytes as f64),
        V::R(e.bytes as f64),
        V::R(0.0),
        V::L(1),
        V::L(1),
        V::S(String::new()),
        V::L(i64::try_from(e.rows).unwrap_or(i64::MAX)),
        V::D(Some(e.min_created)),
        V::S(e.tags.join("\r\n")),
        V::S("StorageV3".into()),
        V::L(0),
    ]
}

/// `.show table T extents [hot] [where tags ...]` and its database and cluster forms.
pub(super) fn show_extents(cx: &Cx<'_>, scope: &ExtentScope, hot: bool, tags: &[ast::TagFilter]) -> Result<QueryOutput> {
    let meta = &cx.snap.meta;
    let now = now_ns();
    let mut rows = Vec::new();
    for (d, t) in scope_tables(cx, scope)? {
        let tm = need_table(meta, &d, &t)?;
        for e in &tm.extents {
            if hot && !meta.is_hot(&d, &t, e, now) {
                continue;
            }
            if tags_match(&e.tags, tags)? {
                rows.push(extent_row(&d, &t, e));
            }
        }
    }
    table(EXTENT_COLS, rows)
}

const DROPPED_COLS: &[(&str, KqlType)] = &[("ExtentId", KqlType::Guid), ("TableName", KqlType::String), ("CreatedOn", KqlType::Datetime)];

/// Removes the extents `pick` selects from the tables of database `db` listed in `tables`, and
/// returns the rows of the command's result.
fn remove_extents(meta: &mut Meta, db: &str, tables: &[String], pick: &dyn Fn(&str, &ExtentInfo) -> bool) -> Result<Vec<Vec<V>>> {
    let dbm = need_db_mut(meta, db)?;
    let mut rows = Vec::new();
    for tm in dbm.tables.iter_mut().filter(|t| tables.contains(&t.name)) {
        let name = tm.name.clone();
        tm.extents.retain(|e| {
            let drop = pick(&name, e);
            if drop {
                rows.push(vec![V::S(e.id.clone()), V::S(name.clone()), V::D(Some(e.max_created))]);
            }
            !drop
        });
    }
    Ok(rows)
}

/// The tables of `db` whose data changed, recomputing their materialized views, then commits.
async fn commit_dropped(cx: &Cx<'_>, mut meta: Meta, db: &str, rows: &[Vec<V>]) -> Result<()> {
    let changed: HashSet<String> = rows.iter().filter_map(|r| match r.get(1) { Some(V::S(t)) => Some(t.clone()), _ => None }).collect();
    let mut new_data = std::collections::HashMap::new();
    for t in &changed {
        crate::materialized::refresh(cx.cluster, &mut meta, &mut new_data, db, t).await?;
    }
    cx.cluster.commit(meta, new_data)
}

/// `.drop extent ID [from T]`, `.drop extents (IDs) [from T]`, `.drop extents [older N unit]
/// from T` / `from all tables`.
pub(super) async fn drop_extents(cx: &Cx<'_>, ids: &[ast::Literal], table: Option<&ast::QualifiedName>, all_tables: bool, older: Option<&(i64, ast::Ident)>) -> Result<QueryOutput> {
    let Cx { caller, ctx, snap, .. } = *cx;
    let mut meta = snap.meta.clone();
    let (db, tables) = match table {
        Some(q) => {
            let (d, t) = table_db(q, ctx, snap)?;
            need_table(&meta, &d, &t)?;
            check(is_table_admin(snap, caller, &d, &t), caller, &format!("drop extents of table '{t}'"), Needs::TableAdmin)?;
            (d, vec![t])
        }
        None => {
            let d = named_db(None, ctx, snap);
            let db = meta.db(&d).ok_or_else(|| RuntimeError::bad_request(format!("database '{d}' does not exist")))?;
            (d.clone(), db.tables.iter().map(|t| t.name.clone()).collect())
        }
    };
    let _ = all_tables;
    let wanted: Vec<String> = ids
        .iter()
        .map(|l| match &l.kind {
            ast::LiteralKind::String(s) => Ok(s.to_lowercase()),
            _ => Err(RuntimeError::bad_request("an extent id is a GUID")),
        })
        .collect::<Result<_>>()?;
    let cutoff = match older {
        Some((n, unit)) => {
            let per = match unit.name.to_ascii_lowercase().as_str() {
                "day" | "days" | "d" => 86_400_000_000_000i64,
                "hour" | "hours" | "h" => 3_600_000_000_000i64,
                other => return Err(RuntimeError::bad_request(format!("'older {n} {other}': the unit is days or hours"))),
            };
            Some(now_ns().saturating_sub(n.saturating_mul(per)))
        }
        None => None,
    };
    let rows = remove_extents(&mut meta, &db, &tables, &|_, e| {
        (wanted.is_empty() || wanted.contains(&e.id.to_lowercase())) && cutoff.is_none_or(|c| e.max_created < c)
    })?;
    let found: HashSet<String> = rows.iter().filter_map(|r| match r.first() { Some(V::S(id)) => Some(id.to_lowercase()), _ => None }).collect();
    if let Some(missing) = wanted.iter().find(|w| !found.contains(*w)) {
        return Err(RuntimeError::bad_request(format!("extent '{missing}' does not exist in {}", match table {
            Some(q) => format!("table '{}'", q.name.name),
            None => format!("database '{db}'"),
        })));
    }
    commit_dropped(cx, meta, &db, &rows).await?;
    table_out(rows)
}

fn table_out(rows: Vec<Vec<V>>) -> Result<QueryOutput> {
    table(DROPPED_COLS, rows)
}

/// `.drop extents [whatif] <| .show ... extents ...` or `<| query`: the extents listed in the
/// source's `ExtentId` column, each checked against its table's admins.
pub(super) async fn drop_extents_from(cx: &Cx<'_>, whatif: bool, source: &ExtentSource) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, text, .. } = *cx;
    let listed = match source {
        ExtentSource::Command(c) => {
            if !matches!(c.kind, ast::CommandKind::ShowExtents { .. }) {
                return Err(RuntimeError::bad_request("`.drop extents <|` takes a `.show ... extents` command or a query"));
            }
            super::gate(snap, caller, ctx, c)?;
            let ast::CommandKind::ShowExtents { scope, hot, tags } = &c.kind else { unreachable!() };
            let out = show_extents(cx, scope, *hot, tags)?;
            cluster.pipe_output(snap, caller, ctx, out, &c.pipe).await?
        }
        ExtentSource::Query(q) => {
            let planned = cluster.plan(snap, caller, ctx, q, text)?;
            cluster.stream_plan(&planned).await?.collect().await?
        }
    };
    let Some(col) = listed.schema.columns.iter().position(|c| c.name == "ExtentId") else {
        return Err(RuntimeError::bad_request("the extents to drop are listed in an 'ExtentId' column, which the source does not have"));
    };
    let mut ids = HashSet::new();
    for b in &listed.batches {
        let arr = datafusion::arrow::compute::cast(b.column(col), &datafusion::arrow::datatypes::DataType::Utf8)?;
        let arr = datafusion::arrow::array::cast::as_string_array(&arr);
        ids.extend(arr.iter().flatten().map(str::to_lowercase));
    }
    let mut meta = snap.meta.clone();
    // Each extent's table, among the databases the caller may see; its admins alone may drop it.
    let mut by_db: Vec<(String, Vec<String>)> = Vec::new();
    for d in &snap.meta.databases {
        if !can_show(snap, caller, &d.name) {
            continue;
        }
        let mut tables = Vec::new();
        for t in &d.tables {
            if t.extents.iter().any(|e| ids.contains(&e.id.to_lowercase())) {
                check(is_table_admin(snap, caller, &d.name, &t.name), caller, &format!("drop extents of table '{}'", t.name), Needs::TableAdmin)?;
                tables.push(t.name.clone());
            }
        }
        if !tables.is_empty() {
            by_db.push((d.name.clone(), tables));
        }
    }
    let mut rows = Vec::new();
    let mut changed: Vec<(String, String)> = Vec::new();
    for (d, tables) in &by_db {
        let r = remove_extents(&mut meta, d, tables, &|_, e| ids.contains(&e.id.to_lowercase()))?;
        for x in &r {
            if let Some(V::S(t)) = x.get(1)
                && !changed.iter().any(|(cd, ct)| cd == d && ct == t)
            {
                changed.push((d.clone(), t.clone()));
            }
        }
        rows.extend(r);
    }
    if !whatif && !rows.is_empty() {
        let mut new_data = std::collections::HashMap::new();
        for (d, t) in &changed {
            crate::materialized::refresh(cluster, &mut meta, &mut new_data, d, t).await?;
        }
        cluster.commit(meta, new_data)?;
    }
    table_out(rows)
}

// ---------------------------------------------------------------------------------------------
// Caching and retention policies
// ---------------------------------------------------------------------------------------------

/// The (database, table) pairs a data-policy command targets (`table` empty: the database).
fn policy_targets(cx: &Cx<'_>, target: &PolicyTarget) -> Result<Vec<(String, Option<String>)>> {
    let Cx { ctx, snap, .. } = *cx;
    Ok(match target {
        PolicyTarget::Table(q) => {
            let (d, t) = table_db(q, ctx, snap)?;
            need_table(&snap.meta, &d, &t)?;
            vec![(d, Some(t))]
        }
        PolicyTarget::Tables(qs) => {
            let mut v = Vec::new();
            for q in qs {
                let (d, t) = table_db(q, ctx, snap)?;
                need_table(&snap.meta, &d, &t)?;
                v.push((d, Some(t)));
            }
            v
        }
        PolicyTarget::AllTables => {
            let d = named_db(None, ctx, snap);
            let db = snap.meta.db(&d).ok_or_else(|| RuntimeError::bad_request(format!("database '{d}' does not exist")))?;
            db.tables.iter().map(|t| (db.name.clone(), Some(t.name.clone()))).collect()
        }
        PolicyTarget::Database(n) => {
            let d = named_db(Some(n), ctx, snap);
            if snap.meta.db(&d).is_none() {
                return Err(RuntimeError::bad_request(format!("database '{d}' does not exist")));
            }
            vec![(d, None)]
        }
        PolicyTarget::MaterializedView(_) => {
            return Err(RuntimeError::Plan(kustodian_planner::PlanError::unsupported("caching and retention policies of materialized views")));
        }
    })
}

fn policies_mut<'m>(meta: &'m mut Meta, d: &str, t: Option<&str>) -> Result<&'m mut DataPolicies> {
    let db = need_db_mut(meta, d)?;
    match t {
        None => Ok(&mut db.policies),
        Some(t) => db
            .table_mut(t)
            .map(|tm| &mut tm.policies)
            .ok_or_else(|| RuntimeError::bad_request(format!("table '{t}' does not exist in database '{d}'"))),
    }
}

/// `.alter[-merge] ... policy caching hot = TIMESPAN`.
pub(super) fn alter_caching(cx: &Cx<'_>, target: &PolicyTarget, hot_ticks: i64) -> Result<QueryOutput> {
    if hot_ticks < 0 {
        return Err(RuntimeError::bad_request("the hot period of a caching policy cannot be negative"));
    }
    let mut meta = cx.snap.meta.clone();
    let targets = policy_targets(cx, target)?;
    for (d, t) in &targets {
        policies_mut(&mut meta, d, t.as_deref())?.caching_hot = Some(hot_ticks.saturating_mul(NANOS_PER_TICK));
    }
    cx.cluster.commit(meta, std::collections::HashMap::new())?;
    show_policies(&cx.cluster.snapshot(), &targets, DataPolicyKind::Caching)
}

/// A retention policy given as JSON: `{"SoftDeletePeriod": "30.00:00:00", "Recoverability": "Enabled"}`.
fn parse_retention_json(text: &str) -> Result<(Option<i64>, Option<bool>)> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| RuntimeError::bad_request(format!("the retention policy is not valid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| RuntimeError::bad_request("the retention policy is a JSON object"))?;
    let mut softdelete = None;
    let mut recoverability = None;
    for (k, val) in obj {
        match k.to_ascii_lowercase().as_str() {
            "softdeleteperiod" => {
                let s = val.as_str().ok_or_else(|| RuntimeError::bad_request("SoftDeletePeriod is a timespan string"))?;
                softdelete = Some(
                    crate::ingest::convert::parse_timespan(s).ok_or_else(|| RuntimeError::bad_request(format!("SoftDeletePeriod '{s}' is not a timespan")))?,
                );
            }
            "recoverability" => recoverability = Some(recoverability_flag(val.as_str().unwrap_or_default())?),
            other => return Err(RuntimeError::bad_request(format!("unknown retention policy property '{other}'"))),
        }
    }
    Ok((softdelete, recoverability))
}

fn recoverability_flag(text: &str) -> Result<bool> {
    match text.to_ascii_lowercase().as_str() {
        "enabled" => Ok(true),
        "disabled" => Ok(false),
        other => Err(RuntimeError::bad_request(format!("recoverability is 'enabled' or 'disabled', not '{other}'"))),
    }
}

/// `.alter[-merge] ... policy retention softdelete = TIMESPAN [recoverability = ...]` (or JSON):
/// sets the policy and applies it at once, in the same commit.
pub(super) async fn alter_retention(
    cx: &Cx<'_>,
    target: &PolicyTarget,
    merge: bool,
    softdelete: Option<i64>,
    recoverability: Option<&ast::Ident>,
    json: Option<&ast::Literal>,
) -> Result<QueryOutput> {
    let (softdelete, recoverable) = match json {
        Some(ast::Literal { kind: ast::LiteralKind::String(text), .. }) => parse_retention_json(text)?,
        Some(_) => return Err(RuntimeError::bad_request("the retention policy is a JSON string")),
        None => (softdelete.map(|t| t.saturating_mul(NANOS_PER_TICK)), recoverability.map(|r| recoverability_flag(&r.name)).transpose()?),
    };
    if softdelete.is_some_and(|s| s <= 0) {
        return Err(RuntimeError::bad_request("the soft-delete period of a retention policy must be positive"));
    }
    let mut meta = cx.snap.meta.clone();
    let targets = policy_targets(cx, target)?;
    for (d, t) in &targets {
        let p = policies_mut(&mut meta, d, t.as_deref())?;
        if merge && p.retention_set {
            if softdelete.is_some() {
                p.retention_softdelete = softdelete;
            }
        } else {
            p.retention_softdelete = softdelete;
        }
        if let Some(r) = recoverable {
            p.retention_recoverability_disabled = !r;
        } else if !merge {
            p.retention_recoverability_disabled = false;
        }
        p.retention_set = true;
    }
    let dropped = meta.apply_retention(now_ns());
    let mut new_data = std::collections::HashMap::new();
    let changed: HashSet<(String, String)> = dropped.into_iter().collect();
    for (d, t) in &changed {
        crate::materialized::refresh(cx.cluster, &mut meta, &mut new_data, d, t).await?;
    }
    cx.cluster.commit(meta, new_data)?;
    show_policies(&cx.cluster.snapshot(), &targets, DataPolicyKind::Retention)
}

/// `.delete ... policy caching|retention`.
pub(super) fn delete_policy(cx: &Cx<'_>, target: &PolicyTarget, kind: DataPolicyKind) -> Result<QueryOutput> {
    let mut meta = cx.snap.meta.clone();
    let targets = policy_targets(cx, target)?;
    for (d, t) in &targets {
        let p = policies_mut(&mut meta, d, t.as_deref())?;
        match kind {
            DataPolicyKind::Caching => p.caching_hot = None,
            DataPolicyKind::Retention => {
                p.retention_softdelete = None;
                p.retention_recoverability_disabled = false;
                p.retention_set = false;
            }
        }
    }
    cx.cluster.commit(meta, std::collections::HashMap::new())?;
    show_policies(&cx.cluster.snapshot(), &targets, kind)
}

/// `.show ... policy caching|retention`.
pub(super) fn show_policy(cx: &Cx<'_>, target: &PolicyTarget, kind: DataPolicyKind) -> Result<QueryOutput> {
    let targets = policy_targets(cx, target)?;
    show_policies(cx.snap, &targets, kind)
}

fn show_policies(snap: &State, targets: &[(String, Option<String>)], kind: DataPolicyKind) -> Result<QueryOutput> {
    let mut rows = Vec::new();
    for (d, t) in targets {
        let Some(db) = snap.meta.db(d) else { continue };
        let own = match t {
            None => db.policies.clone(),
            Some(t) => db.table(t).map(|tm| tm.policies.clone()).unwrap_or_default(),
        };
        let policy = match kind {
            DataPolicyKind::Caching => own.caching_json(),
            DataPolicyKind::Retention => own.retention_json(),
        };
        let (entity, entity_type) = match t {
            None => (format!("[{d}]"), "Database"),
            Some(t) => (format!("[{d}].[{t}]"), "Table"),
        };
        rows.push(vec![
            V::S(match kind {
                DataPolicyKind::Caching => "CachingPolicy".into(),
                DataPolicyKind::Retention => "RetentionPolicy".into(),
            }),
            V::S(entity),
            V::S(policy.unwrap_or_else(|| "null".into())),
            V::S(String::new()),
            V::S(entity_type.into()),
        ]);
    }
    table(crate::output::POLICY_COLS, rows)
}

impl crate::cluster::Cluster {
    /// Applies the retention policies now: drops the extents older than their table's
    /// soft-delete period (and recomputes the materialized views over those tables), in one
    /// commit. Returns the tables that lost extents. The server runs it periodically; opening a
    /// cluster and `.alter ... policy retention` apply retention too.
    pub async fn enforce_retention(&self) -> Result<Vec<(String, String)>> {
        let _write = self.begin_write().await?;
        let mut meta = self.snapshot().meta.clone();
        let changed = meta.apply_retention(now_ns());
        if changed.is_empty() {
            return Ok(changed);
        }
        let mut new_data = std::collections::HashMap::new();
        for (d, t) in &changed {
            crate::materialized::refresh(self, &mut meta, &mut new_data, d, t).await?;
        }
        self.commit(meta, new_data)?;
        Ok(changed)
    }
}
