//! Policies: `row_level_security` (of tables; of materialized views through
//! `crate::materialized`) and `restricted_view_access`: `.alter`, `.show` and `.delete`.

use std::collections::HashMap;

use kustodian_parser::ast::{self, PolicyTarget};
use kustodian_planner::RequestContext;

use super::{Cx, can_show, is_table_admin, need_table, need_table_mut, props, table_db, unsupported};
use crate::auth::{Caller, check, Needs};
use crate::catalog::State;
use crate::cluster::RlsMeta;
use crate::error::{Result, RuntimeError};
use crate::output::{POLICY_COLS, QueryOutput, V, table};

/// `.alter table|materialized-view X policy row_level_security enable|disable "query"`.
pub(super) fn alter_rls(cx: &Cx<'_>, target: &PolicyTarget, enable: bool, query: &str, with: &[ast::Property]) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, .. } = *cx;
    let mut meta = snap.meta.clone();
    if let PolicyTarget::MaterializedView(q) = target {
        let allow = rls_properties(&props(with))?;
        let (d, v) = table_db(q, ctx, snap)?;
        return crate::materialized::alter_rls(cluster, caller, ctx, snap, meta, &d, &v, enable, allow, query);
    }
    let PolicyTarget::Table(q) = target else {
        return Err(RuntimeError::bad_request("row_level_security applies to one table or materialized view"));
    };
    let allow = rls_properties(&props(with))?;
    let (d, t) = table_db(q, ctx, snap)?;
    check(is_table_admin(snap, caller, &d, &t), caller, &format!("alter the row_level_security policy of table '{t}'"), Needs::TableAdmin)?;
    let tm = need_table(&meta, &d, &t)?;
    if enable && tm.restricted_view_access {
        return Err(RuntimeError::bad_request(format!(
            "table '{t}' has restricted view access; row level security cannot be enabled on it"
        )));
    }
    let functions = crate::policy::validate_policy(snap, caller, ctx, &d, &t, query)?;
    if enable {
        crate::materialized::check_source_rls(&mut meta, &d, &t, allow)?;
    }
    need_table_mut(&mut meta, &d, &t)?.rls = Some(RlsMeta { enabled: enable, query: query.to_string(), functions: Some(functions) });
    let json = rls_json(&need_table(&meta, &d, &t)?.rls);
    cluster.commit(meta, HashMap::new())?;
    table(POLICY_COLS, vec![policy_row("RowLevelSecurityPolicy", format!("[{d}].[{t}]"), json)])
}

/// `.show table T|* policy row_level_security`, `.show materialized-view MV policy ...`.
pub(super) fn show_rls(cx: &Cx<'_>, target: &PolicyTarget) -> Result<QueryOutput> {
    let Cx { caller, ctx, snap, .. } = *cx;
    if let PolicyTarget::MaterializedView(q) = target {
        let (d, v) = table_db(q, ctx, snap)?;
        return crate::materialized::show_rls(snap, caller, &d, &v);
    }
    let meta = &snap.meta;
    let rows = policy_targets(target, ctx, snap, caller)?
        .into_iter()
        .map(|(d, t)| {
            let json = meta.db(&d).and_then(|x| x.table(&t)).and_then(|tm| rls_json(&tm.rls));
            policy_row("RowLevelSecurityPolicy", format!("[{d}].[{t}]"), json)
        })
        .collect();
    table(POLICY_COLS, rows)
}

/// `.delete table T policy row_level_security`, `.delete materialized-view MV policy ...`.
pub(super) fn delete_rls(cx: &Cx<'_>, target: &PolicyTarget) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, .. } = *cx;
    let mut meta = snap.meta.clone();
    if let PolicyTarget::MaterializedView(q) = target {
        let (d, v) = table_db(q, ctx, snap)?;
        return crate::materialized::delete_rls(cluster, caller, snap, meta, &d, &v);
    }
    let PolicyTarget::Table(q) = target else {
        return Err(unsupported("row_level_security on materialized views"));
    };
    let (d, t) = table_db(q, ctx, snap)?;
    check(is_table_admin(snap, caller, &d, &t), caller, &format!("delete the row_level_security policy of table '{t}'"), Needs::TableAdmin)?;
    need_table_mut(&mut meta, &d, &t)?.rls = None;
    cluster.commit(meta, HashMap::new())?;
    table(POLICY_COLS, vec![policy_row("RowLevelSecurityPolicy", format!("[{d}].[{t}]"), None)])
}

/// `.alter table T policy restricted_view_access true|false`, `.alter tables (T1, T2) ...`.
pub(super) fn alter_rva(cx: &Cx<'_>, target: &PolicyTarget, enable: bool) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, .. } = *cx;
    let mut meta = snap.meta.clone();
    let targets: Vec<ast::QualifiedName> = match target {
        PolicyTarget::Table(q) => vec![q.clone()],
        PolicyTarget::Tables(qs) => qs.clone(),
        _ => return Err(RuntimeError::bad_request("restricted_view_access applies to tables")),
    };
    let mut rows = Vec::new();
    for q in &targets {
        let (d, t) = table_db(q, ctx, snap)?;
        check(is_table_admin(snap, caller, &d, &t), caller, &format!("alter the restricted_view_access policy of table '{t}'"), Needs::TableAdmin)?;
        if enable {
            crate::materialized::check_source_rva(&meta, &d, &t)?;
        }
        let tm = need_table_mut(&mut meta, &d, &t)?;
        if enable && tm.rls.as_ref().is_some_and(|r| r.enabled) {
            return Err(RuntimeError::bad_request(format!(
                "table '{t}' has an enabled row_level_security policy; restricted view access cannot be enabled on it"
            )));
        }
        tm.restricted_view_access = enable;
        rows.push(policy_row("RestrictedViewAccessPolicy", format!("[{d}].[{t}]"), Some(serde_json::json!({"IsEnabled": enable}).to_string())));
    }
    cluster.commit(meta, HashMap::new())?;
    table(POLICY_COLS, rows)
}

/// `.show table T|* policy restricted_view_access`.
pub(super) fn show_rva(cx: &Cx<'_>, target: &PolicyTarget) -> Result<QueryOutput> {
    let Cx { caller, ctx, snap, .. } = *cx;
    let meta = &snap.meta;
    let rows = policy_targets(target, ctx, snap, caller)?
        .into_iter()
        .map(|(d, t)| {
            let on = meta.db(&d).and_then(|x| x.table(&t)).is_some_and(|tm| tm.restricted_view_access);
            policy_row(
                "RestrictedViewAccessPolicy",
                format!("[{d}].[{t}]"),
                on.then(|| serde_json::json!({"IsEnabled": true}).to_string()),
            )
        })
        .collect();
    table(POLICY_COLS, rows)
}

/// `.delete table T policy restricted_view_access`.
pub(super) fn delete_rva(cx: &Cx<'_>, target: &PolicyTarget) -> Result<QueryOutput> {
    let Cx { cluster, caller, ctx, snap, .. } = *cx;
    let mut meta = snap.meta.clone();
    let PolicyTarget::Table(q) = target else {
        return Err(RuntimeError::bad_request("restricted_view_access applies to tables"));
    };
    let (d, t) = table_db(q, ctx, snap)?;
    check(is_table_admin(snap, caller, &d, &t), caller, &format!("delete the restricted_view_access policy of table '{t}'"), Needs::TableAdmin)?;
    need_table_mut(&mut meta, &d, &t)?.restricted_view_access = false;
    cluster.commit(meta, HashMap::new())?;
    table(POLICY_COLS, vec![policy_row("RestrictedViewAccessPolicy", format!("[{d}].[{t}]"), None)])
}

fn policy_row(policy: &str, entity: String, json: Option<String>) -> Vec<V> {
    vec![V::S(policy.into()), V::S(entity), V::S(json.unwrap_or_else(|| "null".into())), V::S(String::new()), V::S(String::new())]
}



/// The `with (...)` properties of `.alter table|materialized-view X policy row_level_security`.
/// The one Kusto documents, `allowMaterializedViewsWithoutRowLevelSecurity`, overrides the
/// materialized-view checks of spec 5.6 (see `materialized.rs`); returns its value.
fn rls_properties(with: &[(String, String)]) -> Result<bool> {
    let mut allow = false;
    for (k, v) in with {
        if !k.eq_ignore_ascii_case("allowMaterializedViewsWithoutRowLevelSecurity") {
            return Err(RuntimeError::bad_request(format!(
                "unknown property '{k}' of the row_level_security policy (known: allowMaterializedViewsWithoutRowLevelSecurity)"
            )));
        }
        if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
            return Err(RuntimeError::bad_request(format!("property '{k}' must be true or false, not '{v}'")));
        }
        allow = v.eq_ignore_ascii_case("true");
    }
    Ok(allow)
}

fn rls_json(r: &Option<RlsMeta>) -> Option<String> {
    r.as_ref().map(|r| serde_json::json!({"IsEnabled": r.enabled, "Query": r.query}).to_string())
}

fn policy_targets(target: &PolicyTarget, ctx: &RequestContext, snap: &State, caller: &Caller) -> Result<Vec<(String, String)>> {
    let out = match target {
        PolicyTarget::Table(q) => {
            let (d, t) = table_db(q, ctx, snap)?;
            need_table(&snap.meta, &d, &t)?;
            vec![(d, t)]
        }
        PolicyTarget::Tables(qs) => {
            let mut v = Vec::new();
            for q in qs {
                let (d, t) = table_db(q, ctx, snap)?;
                need_table(&snap.meta, &d, &t)?;
                v.push((d, t));
            }
            v
        }
        PolicyTarget::AllTables => snap
            .meta
            .db(&ctx.database)
            .map(|d| d.tables.iter().map(|t| (d.name.clone(), t.name.clone())).collect())
            .unwrap_or_default(),
        PolicyTarget::MaterializedView(_) => {
            return Err(RuntimeError::bad_request("restricted_view_access applies to tables, not materialized views"));
        }
        PolicyTarget::Database(_) => {
            return Err(RuntimeError::bad_request("restricted_view_access and row_level_security apply to tables, not databases"));
        }
    };
    for (d, _) in &out {
        check(can_show(snap, caller, d), caller, &format!("show policies in database '{d}'"), Needs::DatabaseViewer)?;
    }
    Ok(out)
}
