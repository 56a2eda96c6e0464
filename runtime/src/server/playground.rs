//! The playground: a page that runs a query as several principals side by side ("who sees
//! what"), with the effective query, the policies applied and the plan with its barriers.
//!
//! Its assets are compiled into the binary. Its API answers JSON and goes through the same gate
//! as the REST API: network rule, authentication, concurrency limit, audit. Running a query as
//! anyone but the caller is allowed only to a Table Admin of every table the query reads
//! (`Cluster::authorize_view_as`); everyone else uses the page as themselves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::audit::{AuditRecord, Outcome, RequestKind};
use super::errors::ApiError;
use super::http::{ServerState, admit, is_command};
use crate::encoding::{columns, text_value};
use crate::{Identity, RequestOptions, RuntimeError};

const INDEX: &str = include_str!("playground/index.html");
const SCRIPT: &str = include_str!("playground/app.js");
const STYLE: &str = include_str!("playground/app.css");

/// Rows of each principal's answer the page shows at most.
pub const MAX_ROWS: usize = 1000;
/// Principals one run compares at most.
const MAX_PRINCIPALS: usize = 8;

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    r.headers_mut().insert("x-content-type-options", header::HeaderValue::from_static("nosniff"));
    r
}

pub async fn index() -> Response {
    let mut r = asset("text/html; charset=utf-8", INDEX);
    // Everything the page loads is its own: no inline script, nothing from elsewhere.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    );
    r
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json; charset=utf-8"));
    r
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.status, &json!({ "error": { "code": e.code, "message": e.text } }))
}

/// Who the caller is and what they may pick: their FQN, the databases they can see, and the
/// principals the first database names (for a caller who may list them).
pub async fn session(State(state): State<Arc<ServerState>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let identity = match admit(&state, peer, &headers).await {
        Ok((identity, _)) => identity,
        Err((e, _)) => return error_response(&e),
    };
    let opts = RequestOptions { identity: Some(identity.clone()), ..Default::default() };
    let databases: Vec<String> = match state.cluster.execute(".show databases", &opts).await {
        Ok(out) => first_column(&out),
        Err(_) => Vec::new(),
    };
    let mut principals: Vec<String> = Vec::new();
    for db in &databases {
        let o = RequestOptions { database: Some(db.clone()), ..opts.clone() };
        if let Ok(out) = state.cluster.execute(&format!(".show database {} principals", kustodian_parser::ast::quote_ident(db)), &o).await {
            let cols = columns(&out.schema, out.batches.first());
            let Some(i) = cols.iter().position(|(n, _)| n == "PrincipalFQN") else { continue };
            for b in &out.batches {
                for r in 0..b.num_rows() {
                    let fqn = text_value(b.column(i).as_ref(), r, cols[i].1);
                    if !fqn.is_empty() && !principals.contains(&fqn) {
                        principals.push(fqn);
                    }
                }
            }
        }
    }
    json_response(
        StatusCode::OK,
        &json!({ "principal": identity.principal, "groups": identity.groups, "databases": databases, "principals": principals }),
    )
}

fn first_column(out: &crate::QueryOutput) -> Vec<String> {
    let cols = columns(&out.schema, out.batches.first());
    let mut v = Vec::new();
    for b in &out.batches {
        for r in 0..b.num_rows() {
            if let (Some(c), Some((_, ty))) = (b.columns().first(), cols.first()) {
                v.push(text_value(c.as_ref(), r, *ty));
            }
        }
    }
    v
}

#[derive(Debug, Deserialize)]
struct RunRequest {
    db: Option<String>,
    csl: String,
    /// Principals to run as; empty: the caller.
    #[serde(default, rename = "as")]
    principals: Vec<Principal>,
}

#[derive(Debug, Deserialize)]
struct Principal {
    principal: String,
    #[serde(default)]
    groups: Vec<String>,
}

/// Runs a query as each principal asked for: per principal, the effective query, the policies,
/// the physical plan, and the answer (at most [`MAX_ROWS`] rows) or the error.
pub async fn run(State(state): State<Arc<ServerState>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let activity_id = uuid::Uuid::new_v4().to_string();
    let (caller, client) = match admit(&state, peer, &headers).await {
        Ok(x) => x,
        Err((e, client)) => {
            audit(&state, &activity_id, "", None, None, Some(client), Outcome::failed(e.status.as_u16(), e.code), 0);
            return error_response(&e);
        }
    };
    let Ok(_permit) = Arc::clone(&state.slots).try_acquire_owned() else {
        return error_response(&ApiError::throttled("too many requests are running at once"));
    };
    let bytes = match axum::body::to_bytes(body, state.max_body).await {
        Ok(b) => b,
        Err(_) => return error_response(&ApiError::too_large(state.max_body)),
    };
    let req: RunRequest = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => return error_response(&ApiError::bad_request(format!("the playground's request is not valid: {e}"))),
    };
    let fail = |e: ApiError| {
        audit(&state, &activity_id, &req.csl, Some(&caller), req.db.clone(), Some(client), Outcome::failed(e.status.as_u16(), e.code), 0);
        error_response(&e)
    };
    if is_command(&req.csl) {
        return fail(ApiError::bad_request("the playground runs queries; a management command (text starting with '.') goes to /v1/rest/mgmt"));
    }
    if req.principals.len() > MAX_PRINCIPALS {
        return fail(ApiError::bad_request(format!("the playground compares at most {MAX_PRINCIPALS} principals at once")));
    }
    let caller_opts = RequestOptions { database: req.db.clone(), identity: Some(caller.clone()), ..Default::default() };
    let targets: Vec<Identity> = if req.principals.is_empty() {
        vec![caller.clone()]
    } else {
        req.principals.iter().map(|p| Identity { principal: p.principal.clone(), groups: p.groups.clone(), ..Default::default() }).collect()
    };
    // Every target is authorized before anything runs: a refusal shows nothing of anyone.
    for t in &targets {
        if let Err(e) = state.cluster.authorize_view_as(&req.csl, &caller_opts, t).await {
            return fail(ApiError::from_runtime(&e));
        }
    }
    let mut results = Vec::new();
    let mut tables: Vec<String> = Vec::new();
    let mut policies: Vec<String> = Vec::new();
    for t in targets {
        // The caller as themselves keeps every claim of their token (aliases, details).
        let identity = if req.principals.is_empty() { caller.clone() } else { t.clone() };
        let opts = RequestOptions { identity: Some(identity), ..caller_opts.clone() };
        let mut entry = json!({ "principal": t.principal, "groups": t.groups });
        match state.cluster.explain(&req.csl, &opts).await {
            Ok(ex) => {
                entry["effective_kql"] = json!(ex.effective_kql);
                entry["policies"] = json!(ex.policies);
                entry["plan"] = json!(ex.physical_plan);
                for p in &ex.applied {
                    if !policies.contains(&p.table) {
                        policies.push(p.table.clone());
                    }
                }
            }
            Err(e) => entry["error"] = error_json(&e),
        }
        if entry.get("error").is_none() {
            match answer(&state, &req.csl, &opts).await {
                Ok((cols, rows, truncated, read)) => {
                    entry["columns"] = json!(cols.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>());
                    entry["rows"] = json!(rows);
                    entry["truncated"] = json!(truncated);
                    for t in read {
                        if !tables.contains(&t) {
                            tables.push(t);
                        }
                    }
                }
                Err(e) => entry["error"] = error_json(&e),
            }
        }
        results.push(entry);
    }
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(log) = &state.audit {
        let mut r = AuditRecord::new(activity_id.clone(), &req.csl, RequestKind::Query, Outcome::succeeded());
        r.client_address = Some(client);
        r.principal = Some(caller.principal.clone());
        r.database = req.db.clone();
        r.tables = tables;
        r.policies = policies;
        r.duration_ms = ms;
        let _ = log.append(&r);
    }
    json_response(StatusCode::OK, &json!({ "results": results, "duration_ms": ms }))
}

fn error_json(e: &RuntimeError) -> Value {
    json!({ "code": e.code().as_str(), "message": e.to_string() })
}

type Answer = (Vec<(String, String)>, Vec<Vec<String>>, bool, Vec<String>);

/// A query's answer as text cells: columns (name, KQL type), at most [`MAX_ROWS`] rows, whether
/// there were more, and the tables it read.
async fn answer(state: &ServerState, csl: &str, opts: &RequestOptions) -> Result<Answer, RuntimeError> {
    let mut stream = state.cluster.execute_stream(csl, opts).await?;
    let read = stream.tables.clone();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut cols: Option<Vec<(String, kustodian_planner::KqlType)>> = None;
    let mut truncated = false;
    while let Some(batch) = stream.next_batch().await {
        let batch = batch?;
        let c = cols.get_or_insert_with(|| columns(&stream.schema, Some(&batch)));
        for r in 0..batch.num_rows() {
            if rows.len() == MAX_ROWS {
                truncated = true;
                break;
            }
            rows.push(batch.columns().iter().zip(c.iter()).map(|(a, (_, ty))| text_value(a.as_ref(), r, *ty)).collect());
        }
        if truncated {
            break;
        }
    }
    let cols = cols.unwrap_or_else(|| columns(&stream.schema, None));
    Ok((cols.into_iter().map(|(n, t)| (n, t.to_string())).collect(), rows, truncated, read))
}

#[allow(clippy::too_many_arguments)]
fn audit(
    state: &ServerState,
    activity_id: &str,
    text: &str,
    caller: Option<&Identity>,
    database: Option<String>,
    client: Option<std::net::IpAddr>,
    outcome: Outcome,
    duration_ms: u64,
) {
    if let Some(log) = &state.audit {
        let mut r = AuditRecord::new(activity_id.to_string(), text, RequestKind::Query, outcome);
        r.client_address = client;
        r.principal = caller.map(|c| c.principal.clone());
        r.database = database;
        r.duration_ms = duration_ms;
        let _ = log.append(&r);
    }
}
