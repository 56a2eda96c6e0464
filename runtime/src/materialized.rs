//! Materialized views: `.create/.show/.drop/.enable/.disable materialized-view`, their
//! row-level security policies and principals, and their materialization.
//!
//! **Kustodian's materialized views are always fully materialized: there is no delta.** A view's
//! data is the result of its query over the raw source table (run as the system, so the
//! source's own row-level security does not apply), stored as extents like a table's. It is
//! computed when the view is created or re-enabled, and again, in the same atomic commit,
//! whenever a command changes the source table's data (`.append`, `.ingest`, `.set-or-append`,
//! `.set-or-replace`, `.set`). Reading a view by name and through `materialized_view()` is
//! therefore the same thing, and `max_age` changes nothing. A disabled view is not refreshed;
//! it keeps the data of its last materialization.
//!
//! Because materialization ignores the source's row-level security, spec section 5.6 applies:
//! * a view may have its own policy only if it copies rows (`arg_max`, `arg_min`, `take_any`)
//!   or its policy references one of the view's group-by keys;
//! * the source of a row-copying view without an enabled policy of its own may not get an
//!   enabled policy, unless `allowMaterializedViewsWithoutRowLevelSecurity=true` (at `.alter
//!   table ... policy row_level_security`, `.create materialized-view` or
//!   `.enable materialized-view`); the override is remembered by the view;
//! * a table with restricted view access cannot be a source, and a source cannot get restricted
//!   view access.

use std::collections::HashMap;

use datafusion::arrow::array::RecordBatch;
use kustodian_parser::ast::visit::{self, Visitor};
use kustodian_parser::ast::{self, ExprKind, OperatorKind, StatementKind};
use kustodian_planner::{KqlSchema, KqlType, RequestContext};

use crate::auth::{self, Action, Caller, Role, RoleAssignment, check, Needs};
pub use crate::meta::MaterializedViewMeta;
use crate::catalog::{Access, ExtentData, SnapshotCatalog, State};
use crate::cluster::Cluster;
use crate::meta::{DatabaseMeta, Meta, RlsMeta};
use crate::output::{V, table};
use crate::error::{Result, RuntimeError};
use crate::output::QueryOutput;

/// The `with` property that overrides the materialized-view checks of spec section 5.6.
pub(crate) const ALLOW_WITHOUT_RLS: &str = "allowMaterializedViewsWithoutRowLevelSecurity";

/// Aggregations whose result copies source rows (spec 5.6); `any` is `take_any`'s old name.
const ROW_COPYING: &[&str] = &["arg_max", "arg_min", "take_any", "any"];

/// What the policy rules need to know of a view's query.
struct Shape {
    /// Some aggregation copies source rows.
    any_row_copying: bool,
    /// Every aggregation copies source rows (and there is at least one).
    all_row_copying: bool,
    /// Number of group-by keys (the first columns of the result).
    keys: usize,
}

fn shape_of(q: &ast::Query, view: &str) -> Result<Shape> {
    let not_aggregation = || {
        RuntimeError::bad_request(format!(
            "the query of materialized view '{view}' must be an aggregation: it must end with a summarize operator"
        ))
    };
    let Some(ast::Statement { kind: StatementKind::Expr(e), .. }) = q.statements.last() else {
        return Err(not_aggregation());
    };
    let ExprKind::Pipe { op, .. } = &e.kind else { return Err(not_aggregation()) };
    let OperatorKind::Summarize(s) = &op.kind else { return Err(not_aggregation()) };
    let copying: Vec<bool> = s
        .aggregates
        .iter()
        .map(|a| matches!(&a.expr.kind, ExprKind::Call { name, .. } if ROW_COPYING.contains(&name.name.to_ascii_lowercase().as_str())))
        .collect();
    Ok(Shape {
        any_row_copying: copying.iter().any(|c| *c),
        all_row_copying: !copying.is_empty() && copying.iter().all(|c| *c),
        keys: s.by.len(),
    })
}

fn parse_query(text: &str, view: &str) -> Result<ast::Query> {
    match kustodian_parser::parse(text) {
        Ok(ast::Request::Query(q)) => Ok(q),
        Ok(ast::Request::Command(_)) => Err(RuntimeError::bad_request(format!("the query of materialized view '{view}' is a command"))),
        Err(e) => Err(RuntimeError::bad_request(format!("the query of materialized view '{view}' is not valid KQL: {e}"))),
    }
}

impl MaterializedViewMeta {
    fn shape(&self) -> Result<Shape> {
        shape_of(&parse_query(&self.query, &self.name)?, &self.name)
    }

    /// Whether some aggregation copies rows; an unreadable stored query counts as copying
    /// (fail closed).
    fn copies_rows(&self) -> bool {
        self.shape().map(|s| s.any_row_copying).unwrap_or(true)
    }

    fn rls_enabled(&self) -> bool {
        self.rls.as_ref().is_some_and(|r| r.enabled)
    }

    /// Names of the group-by keys: the first columns of the view.
    fn keys(&self) -> Result<Vec<String>> {
        let n = self.shape()?.keys;
        Ok(self.schema.columns.iter().take(n).map(|c| c.name.clone()).collect())
    }
}

fn need_view<'m>(meta: &'m Meta, db: &str, name: &str) -> Result<&'m MaterializedViewMeta> {
    meta.db(db)
        .and_then(|d| d.materialized_view(name))
        .ok_or_else(|| RuntimeError::bad_request(format!("materialized view '{name}' does not exist in database '{db}'")))
}

fn need_view_mut<'m>(meta: &'m mut Meta, db: &str, name: &str) -> Result<&'m mut MaterializedViewMeta> {
    meta.db_mut(db)
        .and_then(|d| d.materialized_view_mut(name))
        .ok_or_else(|| RuntimeError::bad_request(format!("materialized view '{name}' does not exist in database '{db}'")))
}

fn need_db<'m>(meta: &'m Meta, db: &str) -> Result<&'m DatabaseMeta> {
    meta.db(db).ok_or_else(|| RuntimeError::bad_request(format!("database '{db}' does not exist")))
}

pub(crate) fn is_view_admin(snap: &State, caller: &Caller, db: &str, name: &str) -> bool {
    auth::allows(&snap.meta, caller, &Action::AdminDatabase(db))
        || snap.meta.db(db).and_then(|d| d.materialized_view(name)).is_some_and(|v| caller.holds(&v.principals, Role::Admins))
}

/// Fails if `name` is a materialized view of `db` (tables, functions and views share names).
pub(crate) fn name_free(meta: &Meta, db: &str, name: &str) -> Result<()> {
    if meta.db(db).and_then(|d| d.materialized_view(name)).is_some() {
        return Err(RuntimeError::bad_request(format!("a materialized view named '{name}' already exists in database '{db}'")));
    }
    Ok(())
}

fn bool_prop(k: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(RuntimeError::bad_request(format!("property '{k}' must be true or false, not '{v}'"))),
    }
}

const SHOW_COLS: &[(&str, KqlType)] = &[
    ("Name", KqlType::String),
    ("SourceTable", KqlType::String),
    ("Query", KqlType::String),
    ("MaterializedTo", KqlType::Datetime),
    ("LastRun", KqlType::Datetime),
    ("LastRunResult", KqlType::String),
    ("IsHealthy", KqlType::Bool),
    ("IsEnabled", KqlType::Bool),
    ("Folder", KqlType::String),
    ("DocString", KqlType::String),
    ("AutoUpdateSchema", KqlType::Bool),
    ("EffectiveDateTime", KqlType::Datetime),
    ("Lookback", KqlType::Timespan),
    ("LookbackColumn", KqlType::String),
];

/// One `.show materialized-view` row. The view holds everything ingested up to its last run,
/// so `MaterializedTo` is that run's time; it is healthy while enabled (always up to date).
fn show_row(v: &MaterializedViewMeta) -> Vec<V> {
    vec![
        V::S(v.name.clone()),
        V::S(v.source.clone()),
        V::S(v.query.clone()),
        V::D(Some(v.last_run)),
        V::D(Some(v.last_run)),
        V::S("Completed".into()),
        V::B(v.enabled),
        V::B(v.enabled),
        V::S(v.folder.clone()),
        V::S(v.docstring.clone()),
        V::B(false),
        V::D(None),
        V::Ts(None),
        V::S(String::new()),
    ]
}

fn show_rows(views: &[&MaterializedViewMeta]) -> Result<QueryOutput> {
    table(SHOW_COLS, views.iter().map(|v| show_row(v)).collect())
}

pub(crate) fn show(snap: &State, caller: &Caller, db: &str, name: Option<&str>) -> Result<QueryOutput> {
    check(auth::allows(&snap.meta, caller, &Action::ShowDatabase(db)), caller, &format!("show the materialized views of database '{db}'"), Needs::DatabaseViewer)?;
    let d = need_db(&snap.meta, db)?;
    match name {
        Some(n) => show_rows(&[need_view(&snap.meta, db, n)?]),
        None => show_rows(&d.materialized_views.iter().collect::<Vec<_>>()),
    }
}

/// Runs a view's query over the raw tables of `meta`/`data` and returns its schema and rows.
/// Checks that the query reads its source table and nothing else. Names are resolved with the
/// rights of `access`: the admin creating or enabling the view (whose errors must describe only
/// what that admin may read), the system when a change of the source refreshes it.
#[allow(clippy::too_many_arguments)]
async fn compute(
    cluster: &Cluster,
    access: Access<'_>,
    meta: &Meta,
    data: &ExtentData,
    db: &str,
    view: &str,
    source: &str,
    query: &str,
) -> Result<(KqlSchema, Vec<RecordBatch>)> {
    let q = parse_query(query, view)?;
    let state = State::new(meta.clone(), data.clone()).with_files(cluster.files.clone());
    let catalog = SnapshotCatalog { without_rls: crate::catalog::Unpoliced::All, ..cluster.catalog(&state, access) };
    let ctx = RequestContext::new(cluster.admin.clone(), Vec::new(), db, now());
    let planned = kustodian_planner::plan_query(&catalog, &ctx, &q, query).map_err(|e| match e {
        kustodian_planner::PlanError::Forbidden { .. } => RuntimeError::Plan(e),
        e => RuntimeError::bad_request(format!("the query of materialized view '{view}' is not valid: {e}")),
    })?;
    let d = need_db(meta, db)?;
    for t in &planned.tables {
        if !t.database.eq_ignore_ascii_case(db) {
            return Err(RuntimeError::bad_request(format!(
                "the query of materialized view '{view}' references table '{}' in another database ('{}')",
                t.table, t.database
            )));
        }
        if d.materialized_view(&t.table).is_some() {
            return Err(RuntimeError::Plan(kustodian_planner::PlanError::unsupported(format!(
                "a materialized view over another materialized view ('{}')",
                t.table
            ))));
        }
        // The view's query runs as the cluster, over raw tables: reading any table but its
        // source (a join, a union, a function, `table()`) would copy rows that the other
        // table's policies, restricted view access or roles hide into a view its viewers read.
        if t.table != source {
            return Err(RuntimeError::bad_request(format!(
                "the query of materialized view '{view}' may read only its source table '{source}', not '{}'",
                t.table
            )));
        }
    }
    if !planned.tables.iter().any(|t| t.table == source) {
        return Err(RuntimeError::bad_request(format!(
            "the query of materialized view '{view}' must read its source table '{source}'"
        )));
    }
    let (_, physical) = cluster.physical(&planned).await?;
    let batches = physical.collect().await?;
    Ok((planned.schema, batches))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

/// Stores `batches` as the only extent of view `name` in `meta`, adding the extent to
/// `new_data`.
fn store(cluster: &Cluster, meta: &mut Meta, new_data: &mut ExtentData, db: &str, name: &str, batches: Vec<RecordBatch>) -> Result<()> {
    let v = need_view_mut(meta, db, name)?;
    let schema = v.schema.arrow_schema();
    v.extents.clear();
    if let Some((info, data)) = cluster.new_extent(batches, &schema)? {
        new_data.insert(info.id.clone(), data);
        v.extents.push(info);
    }
    v.last_run = now();
    Ok(())
}

/// Re-materializes the enabled views over `source` after a change of its data in `meta`
/// (whose new extents are in `new_data`), for the same commit.
pub(crate) async fn refresh(cluster: &Cluster, meta: &mut Meta, new_data: &mut ExtentData, db: &str, source: &str) -> Result<()> {
    let views: Vec<(String, String, KqlSchema)> = meta
        .db(db)
        .map(|d| {
            d.materialized_views
                .iter()
                .filter(|v| v.enabled && v.source == source)
                .map(|v| (v.name.clone(), v.query.clone(), v.schema.clone()))
                .collect()
        })
        .unwrap_or_default();
    if views.is_empty() {
        return Ok(());
    }
    let mut data = cluster.snapshot().data.clone();
    data.extend(new_data.iter().map(|(k, v)| (k.clone(), std::sync::Arc::clone(v))));
    let mut results = Vec::new();
    for (name, query, schema) in views {
        let (got, batches) = compute(cluster, Access::System, meta, &data, db, &name, source, &query).await?;
        if got != schema {
            return Err(RuntimeError::bad_request(format!(
                "materialized view '{name}' can no longer be materialized: its query now returns {} instead of {}; \
                 drop and recreate the view",
                got.to_kql(),
                schema.to_kql()
            )));
        }
        results.push((name, batches));
    }
    for (name, batches) in results {
        store(cluster, meta, new_data, db, &name, batches)?;
    }
    Ok(())
}

/// The views that read `table` and would copy its rows without a policy of their own (spec
/// 5.6), among the enabled ones.
fn unprotected_copies<'d>(d: &'d DatabaseMeta, table: &str) -> impl Iterator<Item = &'d MaterializedViewMeta> {
    let table = table.to_string();
    d.materialized_views.iter().filter(move |v| v.enabled && v.source == table && !v.rls_enabled() && v.copies_rows())
}

/// `.alter table T policy row_level_security enable`: fails when `T` is the source of an
/// enabled arg_max/arg_min/take_any view without an enabled policy of its own, unless
/// `allow`; with `allow`, those views remember the override.
pub(crate) fn check_source_rls(meta: &mut Meta, db: &str, table: &str, allow: bool) -> Result<()> {
    let Some(d) = meta.db_mut(db) else { return Ok(()) };
    let names: Vec<String> = unprotected_copies(d, table).map(|v| v.name.clone()).collect();
    if names.is_empty() {
        return Ok(());
    }
    if !allow {
        return Err(RuntimeError::bad_request(format!(
            "row level security cannot be enabled on table '{table}': it is the source of materialized view(s) {} \
             whose arg_max()/arg_min()/take_any() aggregation copies its rows and which have no row_level_security policy \
             of their own; set a policy on the view(s) first, or use with ({ALLOW_WITHOUT_RLS}=true)",
            names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
        )));
    }
    for v in d.materialized_views.iter_mut().filter(|v| names.contains(&v.name)) {
        v.allow_without_rls = true;
    }
    Ok(())
}

/// A materialized view whose source is `table`, if any.
fn view_over<'m>(meta: &'m Meta, db: &str, table: &str) -> Option<&'m MaterializedViewMeta> {
    meta.db(db).and_then(|d| d.materialized_views.iter().find(|v| v.source == table))
}

/// `.alter table T policy restricted_view_access true`: a source table cannot have it.
pub(crate) fn check_source_rva(meta: &Meta, db: &str, table: &str) -> Result<()> {
    if let Some(v) = view_over(meta, db, table) {
        return Err(RuntimeError::bad_request(format!(
            "restricted view access cannot be enabled on table '{table}': it is the source of materialized view '{}'",
            v.name
        )));
    }
    Ok(())
}

/// `.drop table T`: a source table cannot be dropped before its views.
pub(crate) fn check_source_drop(meta: &Meta, db: &str, table: &str) -> Result<()> {
    if let Some(v) = view_over(meta, db, table) {
        return Err(RuntimeError::bad_request(format!(
            "table '{table}' cannot be dropped: it is the source of materialized view '{}'; drop the view first",
            v.name
        )));
    }
    Ok(())
}

/// Whether `name` in `db` is a table or a view with an enabled row-level security policy.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn create(
    cluster: &Cluster,
    caller: &Caller,
    snap: &State,
    mut meta: Meta,
    db: &str,
    if_not_exists: bool,
    with: &[(String, String)],
    name: &str,
    source: &str,
    query: &ast::Query,
    text: &str,
) -> Result<QueryOutput> {
    check(auth::allows(&snap.meta, caller, &Action::AdminDatabase(db)), caller, &format!("create materialized view '{name}' in database '{db}'"), Needs::DatabaseAdmin)?;
    crate::names::validate(crate::names::EntityKind::MaterializedView, name, false)?;
    let d = need_db(&meta, db)?;
    if let Some(v) = d.materialized_view(name) {
        if if_not_exists {
            return show_rows(&[v]);
        }
        return Err(RuntimeError::bad_request(format!("materialized view '{name}' already exists in database '{db}'")));
    }
    if d.table(name).is_some() {
        return Err(RuntimeError::bad_request(format!("a table named '{name}' already exists in database '{db}'")));
    }
    if d.function(name).is_some() {
        return Err(RuntimeError::bad_request(format!("a function named '{name}' already exists in database '{db}'")));
    }
    let (mut allow, mut docstring, mut folder) = (false, String::new(), String::new());
    for (k, v) in with {
        match k.to_ascii_lowercase().as_str() {
            "allowmaterializedviewswithoutrowlevelsecurity" => allow = bool_prop(k, v)?,
            "docstring" => docstring = v.clone(),
            "folder" => folder = v.clone(),
            // Views are always materialized from all the source's records.
            "backfill" => {
                if !bool_prop(k, v)? {
                    return Err(RuntimeError::Plan(kustodian_planner::PlanError::unsupported(
                        "backfill=false: Kustodian's materialized views always hold all the source table's records",
                    )));
                }
            }
            "effectivedatetime" | "updateextentscreationtime" | "autoupdateschema" | "dimensiontables" | "lookback"
            | "lookback_column" | "concurrency" | "maxsourcerecordsforsingleingest" | "sourceingestiontimepartition" => {
                return Err(RuntimeError::Plan(kustodian_planner::PlanError::unsupported(format!(
                    "the materialized view property '{k}'"
                ))));
            }
            _ => {
                return Err(RuntimeError::bad_request(format!(
                    "unknown property '{k}' of .create materialized-view (known: {ALLOW_WITHOUT_RLS}, backfill, docString, folder)"
                )));
            }
        }
    }
    let src = d
        .table(source)
        .ok_or_else(|| RuntimeError::bad_request(format!("table '{source}' does not exist in database '{db}'")))?;
    if src.restricted_view_access {
        return Err(RuntimeError::bad_request(format!(
            "table '{source}' has restricted view access; it cannot be the source of a materialized view"
        )));
    }
    let shape = shape_of(query, name)?;
    if shape.any_row_copying && src.rls.as_ref().is_some_and(|r| r.enabled) && !allow {
        return Err(RuntimeError::bad_request(format!(
            "materialized view '{name}' cannot be created: its arg_max()/arg_min()/take_any() aggregation would copy the rows of \
             table '{source}', which has row level security enabled; use with ({ALLOW_WITHOUT_RLS}=true) and set a \
             row_level_security policy on the view"
        )));
    }
    let query_text = text
        .get(query.span.start..query.span.end)
        .map(|s| s.trim().to_string())
        .ok_or_else(|| RuntimeError::Internal("the materialized view's query span is out of the request".into()))?;
    let (schema, batches) = compute(cluster, Access::Caller(caller), &meta, &snap.data, db, name, source, &query_text).await?;
    let view = MaterializedViewMeta {
        name: name.to_string(),
        source: source.to_string(),
        query: query_text,
        schema,
        extents: Vec::new(),
        rls: None,
        principals: vec![RoleAssignment { role: Role::Admins.keyword().into(), principal: caller.principal.fqn(), notes: "creator".into() }],
        docstring,
        folder,
        enabled: true,
        allow_without_rls: allow,
        last_run: 0,
    };
    meta.db_mut(db).ok_or_else(|| RuntimeError::bad_request(format!("database '{db}' does not exist")))?.materialized_views.push(view);
    let mut new_data = HashMap::new();
    store(cluster, &mut meta, &mut new_data, db, name, batches)?;
    let row = show_row(need_view(&meta, db, name)?);
    cluster.commit(meta, new_data)?;
    table(SHOW_COLS, vec![row])
}

/// `.drop materialized-view V [ifexists]`: returns the views left in the database (Kusto's
/// output, that of `.show materialized-views`).
pub(crate) fn drop(cluster: &Cluster, caller: &Caller, snap: &State, mut meta: Meta, db: &str, name: &str, if_exists: bool) -> Result<QueryOutput> {
    if meta.db(db).and_then(|d| d.materialized_view(name)).is_some() {
        check(is_view_admin(snap, caller, db, name), caller, &format!("drop materialized view '{name}'"), Needs::MaterializedViewAdmin)?;
        meta.db_mut(db).ok_or_else(|| RuntimeError::bad_request(format!("database '{db}' does not exist")))?.materialized_views.retain(|v| v.name != name);
        cluster.commit(meta.clone(), HashMap::new())?;
    } else if !if_exists {
        need_view(&meta, db, name)?;
    } else {
        check(auth::allows(&snap.meta, caller, &Action::ShowDatabase(db)), caller, &format!("show the materialized views of database '{db}'"), Needs::DatabaseViewer)?;
    }
    show_rows(&need_db(&meta, db)?.materialized_views.iter().collect::<Vec<_>>())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn enable(
    cluster: &Cluster,
    caller: &Caller,
    snap: &State,
    mut meta: Meta,
    db: &str,
    name: &str,
    on: bool,
    with: &[(String, String)],
) -> Result<QueryOutput> {
    let v = need_view(&meta, db, name)?;
    check(
        is_view_admin(snap, caller, db, name),
        caller,
        &format!("{} materialized view '{name}'", if on { "enable" } else { "disable" }),
        Needs::MaterializedViewAdmin,
    )?;
    let mut allow = false;
    for (k, val) in with {
        if !k.eq_ignore_ascii_case(ALLOW_WITHOUT_RLS) {
            return Err(RuntimeError::bad_request(format!("unknown property '{k}' of .enable materialized-view (known: {ALLOW_WITHOUT_RLS})")));
        }
        allow = bool_prop(k, val)?;
    }
    if !on {
        need_view_mut(&mut meta, db, name)?.enabled = false;
        let row = show_row(need_view(&meta, db, name)?);
        cluster.commit(meta, HashMap::new())?;
        return table(SHOW_COLS, vec![row]);
    }
    if v.enabled {
        return show_rows(&[v]);
    }
    let source_rls = meta.db(db).and_then(|d| d.table(&v.source)).is_some_and(|t| t.rls.as_ref().is_some_and(|r| r.enabled));
    if source_rls && v.copies_rows() && !v.rls_enabled() && !v.allow_without_rls && !allow {
        return Err(RuntimeError::bad_request(format!(
            "materialized view '{name}' cannot be enabled: row level security was enabled on its source table '{}' while it was \
             disabled, and its arg_max()/arg_min()/take_any() aggregation copies the source's rows without a \
             row_level_security policy of its own; set one, or use with ({ALLOW_WITHOUT_RLS}=true)",
            v.source
        )));
    }
    let (source, query) = (v.source.clone(), v.query.clone());
    let expected = v.schema.clone();
    let (schema, batches) = compute(cluster, Access::Caller(caller), &meta, &snap.data, db, name, &source, &query).await?;
    if schema != expected {
        return Err(RuntimeError::bad_request(format!(
            "materialized view '{name}' can no longer be materialized: its query now returns {} instead of {}",
            schema.to_kql(),
            expected.to_kql()
        )));
    }
    {
        let v = need_view_mut(&mut meta, db, name)?;
        v.enabled = true;
        v.allow_without_rls |= allow;
    }
    let mut new_data = HashMap::new();
    store(cluster, &mut meta, &mut new_data, db, name, batches)?;
    let row = show_row(need_view(&meta, db, name)?);
    cluster.commit(meta, new_data)?;
    table(SHOW_COLS, vec![row])
}

fn policy_out(db: &str, name: &str, json: Option<String>) -> Result<QueryOutput> {
    table(
        crate::output::POLICY_COLS,
        vec![vec![
            V::S("RowLevelSecurityPolicy".into()),
            V::S(format!("[{db}].[{name}]")),
            V::S(json.unwrap_or_else(|| "null".into())),
            V::S(String::new()),
            V::S(String::new()),
        ]],
    )
}

fn rls_json(r: &Option<RlsMeta>) -> Option<String> {
    r.as_ref().map(|r| serde_json::json!({"IsEnabled": r.enabled, "Query": r.query}).to_string())
}

/// Whether the row-level security policy `query` of materialized view `view` reads one of
/// its group-by `keys` as a column of the view's rows (spec 5.6). Read syntactically and
/// strictly, so that a policy that does not filter the view by a key is refused:
///
/// * a read is a column reference by name (`Owner`, `['Owner']`, `$left.Owner` in a join's
///   conditions) in an expression of an operator of a pipeline whose source is the view
///   (`V | ...`, `materialized_view('V') | ...`, `table('V') | ...`, `database('d').V | ...`);
/// * not a string literal, a member name (`d.Owner`), a function name, an output name
///   (`extend Owner = ...`), an operator parameter, nor a name inside a subquery or a lambda
///   (the rows there are another table's) or on the other side of a join;
/// * a key the policy binds itself (`let`, a parameter) is not the view's column anywhere;
/// * once an operator defines a column named like the key (or one whose output columns are
///   unknown: `evaluate`, `invoke`), the name no longer means the view's column;
/// * a policy that is only a function's name or a text that does not parse reads nothing: the
///   rule fails closed.
fn references_key(query: &str, view: &str, keys: &[String]) -> bool {
    let Ok(ast::Request::Query(q)) = kustodian_parser::parse(query) else { return false };
    let mut bound = BoundNames::default();
    bound.visit_query(&q);
    let keys: Vec<&str> = keys.iter().map(String::as_str).filter(|k| !bound.0.iter().any(|b| b == k)).collect();
    let mut pipelines = ViewPipelines { view, keys: &keys, found: false };
    pipelines.visit_query(&q);
    pipelines.found
}

/// The names a query binds itself: `let` names and parameters (of lambdas, `declare
/// query_parameters`, `scan declare`).
#[derive(Default)]
struct BoundNames(Vec<String>);

impl Visitor<'_> for BoundNames {
    fn visit_statement(&mut self, s: &ast::Statement) {
        if let StatementKind::Let { name, .. } = &s.kind {
            self.0.push(name.name.clone());
        }
        visit::walk_statement(self, s);
    }

    fn visit_param(&mut self, p: &ast::Param) {
        self.0.push(p.name.name.clone());
        visit::walk_param(self, p);
    }
}

/// Finds the pipelines that read the view and looks for a key read in their operators.
struct ViewPipelines<'a> {
    view: &'a str,
    keys: &'a [&'a str],
    found: bool,
}

impl<'q> Visitor<'q> for ViewPipelines<'_> {
    fn visit_expr(&mut self, e: &'q ast::Expr) {
        if !matches!(e.kind, ExprKind::Pipe { .. }) {
            return visit::walk_expr(self, e);
        }
        // The whole chain, `source | op | op ...`, source first.
        let mut ops: Vec<&ast::Operator> = Vec::new();
        let mut source = e;
        while let ExprKind::Pipe { input, op } = &source.kind {
            ops.push(op);
            source = input;
        }
        ops.reverse();
        if reads_view(source, self.view) {
            self.found |= self.keys.iter().any(|k| pipeline_reads(&ops, k));
        }
        // Pipelines nested in the source and the operators (subqueries) are looked at too.
        self.visit_expr(source);
        for op in ops {
            self.visit_operator(op);
        }
    }
}

/// Whether a pipeline's source is the view itself.
fn reads_view(source: &ast::Expr, view: &str) -> bool {
    let first_arg_is_view = |args: &[ast::Arg]| {
        matches!(args.first().map(|a| &a.expr().kind),
            Some(ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. })) if s == view)
    };
    match &source.kind {
        ExprKind::Ident(i) => i.name == view,
        ExprKind::Paren(inner) => reads_view(inner, view),
        ExprKind::Call { name, args } if matches!(name.name.as_str(), "materialized_view" | "table") => first_arg_is_view(args),
        ExprKind::Member { expr, name } => name.name == view && matches!(&expr.kind, ExprKind::Call { name, .. } if name.name == "database"),
        _ => false,
    }
}

/// Whether an operator of the view's pipeline reads `key` before one redefines it. In
/// `extend`/`project`/`serialize` the items count in order (`extend Owner = f(Owner)` reads the
/// view's column, then redefines it); any other operator that redefines the key reads nothing.
fn pipeline_reads(ops: &[&ast::Operator], key: &str) -> bool {
    for op in ops {
        let mut reads = KeyReads { key, found: false };
        if let OperatorKind::Extend(items) | OperatorKind::Project(items) | OperatorKind::Serialize(items) = &op.kind {
            for it in items {
                reads.visit_expr(&it.expr);
                if reads.found {
                    return true;
                }
                if it.names.iter().any(|n| n.name == key) {
                    return false;
                }
            }
            continue;
        }
        if redefines(op, key) {
            return false;
        }
        reads.visit_operator(op);
        if reads.found {
            return true;
        }
    }
    false
}

/// Whether an operator defines a column named `key`, or may (its outputs are unknown).
fn redefines(op: &ast::Operator, key: &str) -> bool {
    /// The names an operator gives its output columns; expressions are not entered (a
    /// subquery's outputs are its own).
    struct Defines<'k> {
        key: &'k str,
        found: bool,
    }
    impl Visitor<'_> for Defines<'_> {
        fn visit_expr(&mut self, _: &ast::Expr) {}
        fn visit_named_expr(&mut self, n: &ast::NamedExpr) {
            self.found |= n.names.iter().any(|i| i.name == self.key);
        }
        fn visit_rename_item(&mut self, r: &ast::RenameItem) {
            self.found |= r.new.name == self.key;
        }
        fn visit_parse_pattern_item(&mut self, i: &ast::ParsePatternItem) {
            self.found |= matches!(i, ast::ParsePatternItem::Column { name, .. } if name.name == self.key);
        }
        fn visit_column_decl(&mut self, c: &ast::ColumnDecl) {
            self.found |= c.name.name == self.key;
        }
        fn visit_scan_step(&mut self, s: &ast::ScanStep) {
            self.found |= s.assignments.iter().any(|(c, _)| c.name == self.key);
        }
        fn visit_param(&mut self, p: &ast::Param) {
            self.found |= p.name.name == self.key;
        }
        fn visit_ident(&mut self, _: &ast::Ident) {}
    }
    if matches!(op.kind, OperatorKind::Evaluate(_) | OperatorKind::Invoke(_)) {
        return true;
    }
    let mut d = Defines { key, found: false };
    d.visit_operator(op);
    d.found
}

/// Reads of `key` as a column in an operator's expressions (see [`references_key`]).
struct KeyReads<'k> {
    key: &'k str,
    found: bool,
}

impl Visitor<'_> for KeyReads<'_> {
    fn visit_expr(&mut self, e: &ast::Expr) {
        if e.is_query_boundary() {
            return;
        }
        match &e.kind {
            ExprKind::Ident(i) => self.found |= i.name == self.key,
            // `$left.Key` is the view's side of a join; `$right.Key` the other table's.
            ExprKind::Member { expr, name } if matches!(expr.kind, ExprKind::JoinSide(_)) => {
                self.found |= matches!(expr.kind, ExprKind::JoinSide(ast::JoinSide::Left)) && name.name == self.key;
            }
            // One bare name in `in (...)` may be a table; `toscalar(T)` names a table.
            ExprKind::In { expr, list, .. } | ExprKind::HasAny { expr, list } | ExprKind::HasAll { expr, list } => {
                self.visit_expr(expr);
                if !matches!(list.as_slice(), [one] if matches!(one.kind, ExprKind::Ident(_))) {
                    list.iter().for_each(|x| self.visit_expr(x));
                }
            }
            ExprKind::Call { name, .. } if name.name == "toscalar" => {}
            _ => visit::walk_expr(self, e),
        }
    }

    /// Parameters (`kind=inner`, `hint.strategy=shuffle`) are options, not reads of a column.
    fn visit_op_param(&mut self, _: &ast::OpParam) {}

    /// The right side of a join or lookup is another table: only its conditions are read.
    fn visit_join(&mut self, j: &ast::Join) {
        j.on.iter().for_each(|c| self.visit_expr(c));
    }

    /// The legs of a `union` are other tables.
    fn visit_union(&mut self, _: &ast::Union) {}
}

/// Removing or disabling the view's policy must not let it copy the rows of an RLS-protected
/// source (spec 5.6), unless the view carries the override.
fn check_unprotect(meta: &Meta, db: &str, v: &MaterializedViewMeta, allow: bool) -> Result<()> {
    let source_rls = meta.db(db).and_then(|d| d.table(&v.source)).is_some_and(|t| t.rls.as_ref().is_some_and(|r| r.enabled));
    if v.enabled && source_rls && v.copies_rows() && !v.allow_without_rls && !allow {
        return Err(RuntimeError::bad_request(format!(
            "the row_level_security policy of materialized view '{}' cannot be removed or disabled: its source table '{}' has \
             row level security enabled and the view's arg_max()/arg_min()/take_any() aggregation copies its rows",
            v.name, v.source
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn alter_rls(
    cluster: &Cluster,
    caller: &Caller,
    ctx: &RequestContext,
    snap: &State,
    mut meta: Meta,
    db: &str,
    name: &str,
    enable: bool,
    allow: bool,
    query: &str,
) -> Result<QueryOutput> {
    check(
        auth::allows(&snap.meta, caller, &Action::AdminDatabase(db)),
        caller,
        &format!("alter the row_level_security policy of materialized view '{name}'"),
        Needs::DatabaseAdmin,
    )?;
    let v = need_view(&meta, db, name)?;
    let shape = v.shape()?;
    if !shape.all_row_copying {
        let keys = v.keys()?;
        if !references_key(query, name, &keys) {
            return Err(RuntimeError::bad_request(format!(
                "row level security can be set on materialized view '{name}' only if its aggregation is arg_max(), arg_min() or \
                 take_any(), or if the policy query references one of its group-by keys ({})",
                keys.join(", ")
            )));
        }
    }
    if !enable {
        check_unprotect(&meta, db, v, allow)?;
    }
    let functions = crate::policy::validate_policy(snap, caller, ctx, db, name, query)?;
    let v = need_view_mut(&mut meta, db, name)?;
    v.rls = Some(RlsMeta { enabled: enable, query: query.to_string(), functions: Some(functions) });
    v.allow_without_rls |= allow;
    let json = rls_json(&v.rls);
    cluster.commit(meta, HashMap::new())?;
    policy_out(db, name, json)
}

pub(crate) fn show_rls(snap: &State, caller: &Caller, db: &str, name: &str) -> Result<QueryOutput> {
    check(auth::allows(&snap.meta, caller, &Action::ShowDatabase(db)), caller, &format!("show the policies of materialized view '{name}'"), Needs::DatabaseViewer)?;
    let v = need_view(&snap.meta, db, name)?;
    policy_out(db, name, rls_json(&v.rls))
}

pub(crate) fn delete_rls(cluster: &Cluster, caller: &Caller, snap: &State, mut meta: Meta, db: &str, name: &str) -> Result<QueryOutput> {
    let v = need_view(&meta, db, name)?;
    check(
        is_view_admin(snap, caller, db, name),
        caller,
        &format!("delete the row_level_security policy of materialized view '{name}'"),
        Needs::MaterializedViewAdmin,
    )?;
    check_unprotect(&meta, db, v, false)?;
    need_view_mut(&mut meta, db, name)?.rls = None;
    cluster.commit(meta, HashMap::new())?;
    policy_out(db, name, None)
}

/// The label and assignments of a view, after the caller's permission check (Database Admin
/// or the view's admin).
pub(crate) fn principals(snap: &State, caller: &Caller, db: &str, name: &str, show: bool) -> Result<(String, Vec<RoleAssignment>)> {
    let v = need_view(&snap.meta, db, name)?;
    check(
        is_view_admin(snap, caller, db, name),
        caller,
        &format!("{} the principals of materialized view '{name}'", if show { "show" } else { "manage" }),
        Needs::MaterializedViewAdmin,
    )?;
    Ok((format!("Materialized View {name}"), v.principals.clone()))
}

/// A view admin must have access at database level or be admin of the source table
/// (spec 3.1).
pub(crate) fn check_admin_prerequisite(snap: &State, db: &str, name: &str, fqn: &str) -> Result<()> {
    let p = kustodian_planner::Principal::parse(fqn).map_err(RuntimeError::bad_request)?;
    let c = Caller::assignee(p);
    let source_admin = snap
        .meta
        .db(db)
        .and_then(|d| d.materialized_view(name).and_then(|v| d.table(&v.source)))
        .is_some_and(|t| c.holds(&t.principals, Role::Admins));
    if auth::allows(&snap.meta, &c, &Action::ReadDatabase(db)) || source_admin {
        return Ok(());
    }
    Err(RuntimeError::bad_request(format!(
        "principal '{fqn}' has no access to database '{db}'; grant a database role (for example users) before a materialized view role"
    )))
}

/// The assignments list of a view in `meta`, to change.
pub(crate) fn principals_mut<'m>(meta: &'m mut Meta, db: &str, name: &str) -> Result<&'m mut Vec<RoleAssignment>> {
    Ok(&mut need_view_mut(meta, db, name)?.principals)
}

#[cfg(test)]
mod tests {
    use super::references_key;

    fn reads_owner(policy: &str) -> bool {
        references_key(policy, "Totals", &["Owner".to_string(), "Region".to_string()])
    }

    #[test]
    fn a_filter_on_a_key_of_the_view_is_a_read() {
        for policy in [
            "Totals | where Owner == current_principal()",
            "Totals | where ['Owner'] == current_principal()",
            "Totals | where Region == 'North' and Total > 0",
            "Totals | where Total > 0 | where Owner == current_principal()",
            "Totals | where IsAllowed(Owner)",
            "Totals | where Owner in (Allowed | where User == current_principal() | project Owner)",
            "Totals | where Owner in ('a', 'b')",
            "Totals | where tolower(Owner) has current_principal_details().UserPrincipalName",
            "materialized_view('Totals') | where Owner == current_principal()",
            "table('Totals') | where Owner == current_principal()",
            "database('Db').Totals | where Owner == current_principal()",
            "(Totals) | where Owner == current_principal()",
            "let allowed = Allowed | project User; Totals | where Owner in (allowed)",
            "Totals | join kind=inner (Allowed | where User == current_principal()) on Owner",
            "Totals | join kind=inner (Allowed) on $left.Owner == $right.User",
            "Totals | extend Owner = iff(Owner == current_principal(), Owner, 'hidden')",
            "union (Totals | where Owner == current_principal()), (Totals | take 0)",
        ] {
            assert!(reads_owner(policy), "{policy}");
        }
    }

    #[test]
    fn the_same_name_elsewhere_is_not_a_read() {
        for policy in [
            // No key at all; a string literal that equals the key's name.
            "Totals | where Total > 10",
            "Totals | where 'Owner' == current_principal()",
            "Totals | where d.Owner == 'x'",
            "Totals | where Owner(Total)",
            // A key the policy binds itself.
            "let Owner = current_principal(); Totals | where Total > 0 and Owner != ''",
            "let f = (Owner:string) { Owner == current_principal() }; Totals | where f('x')",
            // Another table's column: a subquery, the other side of a join, a union leg.
            "Totals | where Total in (Allowed | where Owner == current_principal() | project Total)",
            "Totals | where toscalar(Allowed | where Owner == 'x' | count) > 0",
            "Totals | join kind=inner (Allowed | where Owner == current_principal()) on Total",
            "Totals | join kind=inner (Allowed) on $right.Owner == $left.Total",
            "Totals | union (Allowed | where Owner == 'x') | where Total > 0",
            "Allowed | where Owner == current_principal()",
            // Not a reference: an output name, a parameter, a single name in `in (...)`.
            "Totals | extend Owner = 'x' | where Owner == 'x'",
            "Totals | project-rename Owner = Total | where Owner == 1",
            "Totals | extend x = 1, Owner = 'x', y = Owner",
            "Totals | parse Total with Owner:string | where Owner == 'x'",
            "Totals | summarize hint.shufflekey = Owner count() by Total",
            "Totals | where Total in (Owner)",
            // After an operator whose outputs are unknown.
            "Totals | evaluate bag_unpack(d) | where Owner == current_principal()",
            // A function's name, a text that does not parse.
            "OwnerPolicy",
            "Totals | where Owner ==",
        ] {
            assert!(!reads_owner(policy), "{policy}");
        }
    }
}
