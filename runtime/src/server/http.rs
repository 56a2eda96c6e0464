//! The HTTP server: Kusto's REST endpoints over the engine.
//!
//! Every request goes through the same gate, in this order: the network rule (refused callers
//! get 403 before anything else is looked at), authentication (401), the concurrency limit
//! (429), the body limit (413); then the engine, which authorizes what the request reads.
//! Queries stream out as v2 frames while the engine produces batches; commands answer v1 tables.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::audit::{AuditLog, AuditRecord, Outcome, RequestKind};
use super::body::{Limits, RestRequest};
use super::errors::ApiError;
use super::frames::{self, Completion};
use super::network::NetworkPolicy;
use super::queries::Queries;
use super::gate::Authenticator;
use crate::output::QueryStream;
use crate::{Cluster, Identity, RequestOptions, RuntimeError};
use datafusion::arrow::record_batch::RecordBatch;
use kustodian_planner::KqlType;

/// What the server is: the engine, and the rules every request passes.
pub struct ServerState {
    pub cluster: Arc<Cluster>,
    pub auth: Authenticator,
    pub network: NetworkPolicy,
    pub audit: Option<AuditLog>,
    pub queries: Queries,
    /// Requests running at once at most; more get 429.
    pub slots: Arc<Semaphore>,
    pub max_body: usize,
    pub started: chrono::DateTime<chrono::Utc>,
    pub address: String,
}

/// The router of Kusto's REST API.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v2/rest/query", post(v2_query))
        .route("/v1/rest/query", post(v1_query_post).get(v1_query_get))
        .route("/v1/rest/mgmt", post(v1_mgmt))
        .route("/v1/rest/auth/metadata", get(auth_metadata))
        .route("/healthz", get(|| async { "ok" }))
        .route("/playground", get(super::playground::index))
        .route("/playground/app.js", get(super::playground::script))
        .route("/playground/app.css", get(super::playground::style))
        .route("/playground/api/session", get(super::playground::session))
        .route("/playground/api/run", post(super::playground::run))
        .fallback(|uri: axum::http::Uri| async move { ApiError::not_found(uri.path()) })
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// A request's identifiers: Kusto's client request id (echoed) and activity id (ours).
#[derive(Debug, Clone)]
struct Ids {
    activity_id: String,
    client_request_id: String,
    application: String,
}

impl Ids {
    fn of(headers: &HeaderMap, kind: &str) -> Ids {
        let activity_id = uuid::Uuid::new_v4().to_string();
        let text = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
        let client_request_id = text("x-ms-client-request-id").unwrap_or_else(|| format!("KD.{kind};{}", uuid::Uuid::new_v4()));
        Ids { activity_id, client_request_id, application: text("x-ms-app").unwrap_or_default() }
    }

    fn headers(&self, r: &mut Response) {
        for (name, value) in [("x-ms-activity-id", &self.activity_id), ("x-ms-client-request-id", &self.client_request_id)] {
            if let Ok(v) = HeaderValue::from_str(value) {
                r.headers_mut().insert(name, v);
            }
        }
    }
}

/// Network rule, then authentication: who is asking, or the answer that refuses them.
pub(super) async fn admit(state: &ServerState, peer: SocketAddr, headers: &HeaderMap) -> Result<(Identity, IpAddr), (ApiError, IpAddr)> {
    let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    let decision = state.network.decide(peer.ip(), forwarded);
    if !decision.allowed {
        return Err((ApiError::network_refused(decision.refusal_message()), decision.client));
    }
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match state.auth.authenticate(authorization).await {
        Ok(identity) => Ok((identity, decision.client)),
        Err(why) => Err((ApiError::unauthorized(why), decision.client)),
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| ApiError::too_large(limit))
}

/// The common start of every REST request.
struct Admitted {
    ids: Ids,
    identity: Identity,
    client: IpAddr,
    request: RestRequest,
    /// Held while the request runs (in the streaming task for v2): the concurrency limit.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

async fn prelude(state: &ServerState, peer: SocketAddr, headers: &HeaderMap, body: Option<Body>, query: Option<String>, kind: &str) -> Result<Admitted, Response> {
    let ids = Ids::of(headers, kind);
    let fail = |e: ApiError, ids: &Ids| {
        let mut r = e.with_ids(&ids.activity_id, &ids.client_request_id).into_response();
        ids.headers(&mut r);
        r
    };
    let (identity, client) = match admit(state, peer, headers).await {
        Ok(x) => x,
        Err((e, client)) => {
            state.audit_refusal(&ids, client, kind, &e);
            return Err(fail(e, &ids));
        }
    };
    let permit = match Arc::clone(&state.slots).try_acquire_owned() {
        Ok(p) => p,
        Err(_) => return Err(fail(ApiError::throttled("too many requests are running at once"), &ids)),
    };
    let request = match (body, query) {
        (Some(body), _) => match read_body(body, state.max_body).await {
            Ok(bytes) => RestRequest::from_json(&bytes),
            Err(e) => Err(e),
        },
        (None, q) => RestRequest::from_query_string(q.as_deref().unwrap_or("")),
    };
    match request {
        Ok(request) => Ok(Admitted { ids, identity, client, request, _permit: permit }),
        Err(e) => Err(fail(e, &ids)),
    }
}

/// Whether a request's text is a management command (its first token starts with a dot),
/// after blank lines and `//` comments, as Kusto's clients decide.
pub fn is_command(text: &str) -> bool {
    text.lines().map(str::trim_start).find(|l| !l.is_empty() && !l.starts_with("//")).is_some_and(|l| l.starts_with('.'))
}

fn options(a: &Admitted) -> RequestOptions {
    RequestOptions {
        database: a.request.db.clone(),
        identity: Some(a.identity.clone()),
        properties: a.request.engine_properties(),
        parameters: a.request.parameters.clone(),
    }
}

async fn v2_query(State(state): State<Arc<ServerState>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Body) -> Response {
    let a = match prelude(&state, peer, &headers, Some(body), None, "query").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if is_command(&a.request.csl) {
        let e = ApiError::bad_request("a management command (text starting with '.') goes to /v1/rest/mgmt, not /v2/rest/query");
        return state.refuse(&a, "query", e);
    }
    run_query(state, a, Format::V2).await
}

async fn v1_query_post(State(state): State<Arc<ServerState>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Body) -> Response {
    match prelude(&state, peer, &headers, Some(body), None, "query").await {
        Ok(a) => run_query(state, a, Format::V1).await,
        Err(r) => r,
    }
}

async fn v1_query_get(State(state): State<Arc<ServerState>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    match prelude(&state, peer, &headers, None, Some(q.unwrap_or_default()), "query").await {
        Ok(a) => run_query(state, a, Format::V1).await,
        Err(r) => r,
    }
}

async fn v1_mgmt(State(state): State<Arc<ServerState>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Body) -> Response {
    let a = match prelude(&state, peer, &headers, Some(body), None, "mgmt").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !is_command(&a.request.csl) {
        // Kusto's management endpoint runs queries too; they answer in v1.
        return run_query(state, a, Format::V1).await;
    }
    if let Some(cmd) = super::commands::ServerCommand::parse(&a.request.csl) {
        return match super::commands::run(&state, &a.identity, &a.ids.client_request_id, cmd).await {
            Ok(table) => {
                state.audit_done(&a, "command", &[], &[], Outcome::succeeded(), 0);
                v1_response(&a.ids, json!({"Tables": [table]}))
            }
            Err(e) => state.refuse(&a, "command", e),
        };
    }
    let started = Instant::now();
    let running = state.queries.start(&a.ids.client_request_id, &a.ids.activity_id, &a.request.csl, a.request.db.as_deref().unwrap_or(""), &a.identity.principal, &a.ids.application);
    let opts = options(&a);
    let result = tokio::select! {
        r = state.cluster.execute(&a.request.csl, &opts) => r.map_err(|e| ApiError::from_runtime(&e)),
        _ = running.cancel.cancelled() => Err(ApiError::bad_request("the command was cancelled (.cancel query)")),
    };
    match result {
        Ok(out) => {
            running.completed();
            let cols: Vec<(String, kustodian_planner::KqlType)> = out.schema.columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
            let types: Vec<_> = cols.iter().map(|c| c.1).collect();
            let rows: Vec<Value> = out.batches.iter().flat_map(|b| (0..b.num_rows()).map(|r| frames::v1_row(b, &types, r)).collect::<Vec<_>>()).collect();
            state.audit_done(&a, "command", &[], &[], Outcome::succeeded(), started.elapsed().as_millis() as u64);
            v1_response(&a.ids, json!({"Tables": [frames::v1_table("Table_0", &cols, rows)]}))
        }
        Err(e) => {
            running.failed(e.text.clone());
            state.refuse(&a, "command", e)
        }
    }
}

async fn auth_metadata() -> Response {
    // What the clients' AAD token providers read; Kustodian accepts tokens from its configured
    // issuers, and the public cloud's values are what a client expects to find here.
    axum::Json(json!({"AzureAD": {
        "LoginEndpoint": "https://login.microsoftonline.com",
        "LoginMfaRequired": false,
        "KustoClientAppId": "db662dc1-0cfe-4e1c-a843-19a68e65be58",
        "KustoClientRedirectUri": "https://microsoft/kustoclient",
        "KustoServiceResourceId": "https://kusto.kusto.windows.net",
        "FirstPartyAuthorityUrl": "https://login.microsoftonline.com/f8cdef31-a31e-4b4a-93e4-5f571e91255a",
    }}))
    .into_response()
}

fn v1_response(ids: &Ids, body: Value) -> Response {
    let mut r = (StatusCode::OK, axum::Json(body)).into_response();
    ids.headers(&mut r);
    r
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    V1,
    V2,
}

/// Why a result stopped before its end.
#[derive(Debug, Clone)]
struct Stop {
    /// The OneApi error written in the result.
    error: Value,
    status_code: i64,
    status_name: &'static str,
    cancelled: bool,
}

impl Stop {
    fn limit(what: String) -> Stop {
        let text = format!(
            "Query execution has exceeded the allowed limits (80DA0003): {what} (E_QUERY_RESULT_SET_TOO_LARGE, 0x80DA0003). See https://aka.ms/kustoquerylimits for more information and possible solutions."
        );
        Stop {
            error: partial_error("LimitsExceeded", "Kusto.Data.Exceptions.KustoServicePartialQueryFailureLimitsExceededException", &text),
            status_code: 0x80DA_0003_u32 as i32 as i64,
            status_name: "E_QUERY_RESULT_SET_TOO_LARGE",
            cancelled: false,
        }
    }

    fn timeout(after: Duration) -> Stop {
        let text = format!("Query execution lasted longer than its servertimeout of {} s (E_QUERY_TIMEOUT); not all records were returned.", after.as_secs_f64());
        Stop {
            error: partial_error("RequestExecutionTimeout", "Kusto.Data.Exceptions.QueryTimeoutException", &text),
            status_code: 0x80DA_0001_u32 as i32 as i64,
            status_name: "E_QUERY_TIMEOUT",
            cancelled: true,
        }
    }

    fn cancelled() -> Stop {
        Stop {
            error: partial_error("Cancelled", "Kusto.Data.Exceptions.QueryCancelledException", "The query was cancelled (.cancel query)."),
            status_code: 0x80DA_0004_u32 as i32 as i64,
            status_name: "E_QUERY_CANCELLED",
            cancelled: true,
        }
    }

    fn engine(e: &RuntimeError) -> Stop {
        let api = ApiError::from_runtime(e);
        Stop { error: api.body(), status_code: 0x8013_1500_u32 as i32 as i64, status_name: "E_QUERY_FAILED", cancelled: false }
    }
}

fn partial_error(code: &str, kind: &str, text: &str) -> Value {
    json!({"error": {"code": code, "message": "Query execution failed partially.", "@type": kind, "@message": text, "@permanent": false}})
}

/// Runs a query and answers it in v2 (streamed) or v1.
async fn run_query(state: Arc<ServerState>, a: Admitted, format: Format) -> Response {
    let limits = match a.request.limits() {
        Ok(l) => l,
        Err(e) => return state.refuse(&a, "query", e),
    };
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let running = state.queries.start(&a.ids.client_request_id, &a.ids.activity_id, &a.request.csl, a.request.db.as_deref().unwrap_or(""), &a.identity.principal, &a.ids.application);
    let opts = options(&a);
    let planned = tokio::select! {
        r = state.cluster.execute_stream(&a.request.csl, &opts) => r.map_err(|e| ApiError::from_runtime(&e)),
        _ = running.cancel.cancelled() => Err(ApiError::bad_request("the query was cancelled (.cancel query)")),
        _ = tokio::time::sleep_until(deadline) => Err(ApiError::bad_request(format!("the query did not start within its servertimeout of {} s", limits.timeout.as_secs_f64()))),
    };
    let stream = match planned {
        Ok(s) => s,
        Err(e) => {
            running.failed(e.text.clone());
            return state.refuse(&a, "query", e);
        }
    };
    let tables: Vec<String> = stream.tables.clone();
    let policies: Vec<String> = stream.policies.clone();
    match format {
        Format::V2 => {
            let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(8);
            let ids = a.ids.clone();
            let st = Arc::clone(&state);
            tokio::spawn(async move {
                let stop = write_v2(stream, &tx, limits, deadline, &running.cancel, &a.ids).await;
                let outcome = match &stop {
                    None => Outcome::succeeded(),
                    Some(s) => Outcome::failed(200, s.status_name),
                };
                st.audit_done(&a, "query", &tables, &policies, outcome, started.elapsed().as_millis() as u64);
                match stop {
                    None => running.completed(),
                    Some(s) => running.failed(s.error.to_string()),
                }
            });
            let mut r = Response::new(Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
            ids.headers(&mut r);
            r
        }
        Format::V1 => {
            let (cols, rows, stop) = collect_v1(stream, limits, deadline, &running.cancel).await;
            let outcome = match &stop {
                None => Outcome::succeeded(),
                Some(s) => Outcome::failed(200, s.status_name),
            };
            state.audit_done(&a, "query", &tables, &policies, outcome, started.elapsed().as_millis() as u64);
            let body = v1_query_body(&a.ids, &cols, rows, stop.as_ref());
            match stop {
                None => running.completed(),
                Some(s) => running.failed(s.error.to_string()),
            }
            v1_response(&a.ids, body)
        }
    }
}

fn columns_of(stream: &QueryStream) -> Vec<(String, KqlType)> {
    stream.schema.columns.iter().map(|c| (c.name.clone(), c.ty)).collect()
}

/// Counts what a result has written against its limits.
struct Budget {
    limits: Limits,
    rows: u64,
    bytes: u64,
}

impl Budget {
    /// Admits one more row of `len` bytes of JSON, or says why it may not be written.
    /// `Ok(false)`: the silent `query_take_max_records` limit is reached.
    fn admit(&mut self, len: usize) -> Result<bool, Stop> {
        if self.limits.take.is_some_and(|t| self.rows >= t) {
            return Ok(false);
        }
        if let Some(max) = self.limits.max_records.filter(|m| self.rows >= *m) {
            return Err(Stop::limit(format!("The results of this query exceed the set limit of {max} records, so not all records were returned")));
        }
        if let Some(max) = self.limits.max_size.filter(|m| self.bytes + len as u64 > *m) {
            return Err(Stop::limit(format!("The results of this query exceed the set limit of {max} bytes, so not all records were returned")));
        }
        self.rows += 1;
        self.bytes += len as u64;
        Ok(true)
    }
}

/// The next batch of a result, or why the result stops.
async fn next(stream: &mut QueryStream, deadline: tokio::time::Instant, timeout: Duration, cancel: &CancellationToken) -> Result<Option<RecordBatch>, Stop> {
    tokio::select! {
        b = stream.next_batch() => match b {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(Stop::engine(&e)),
        },
        _ = cancel.cancelled() => Err(Stop::cancelled()),
        _ = tokio::time::sleep_until(deadline) => Err(Stop::timeout(timeout)),
    }
}

/// Writes a query's v2 frames into `tx` as batches arrive. Returns why it stopped early, if
/// it did; a client that goes away stops it too (the engine's stream is dropped).
async fn write_v2(
    mut stream: QueryStream,
    tx: &mpsc::Sender<Result<Bytes, Infallible>>,
    limits: Limits,
    deadline: tokio::time::Instant,
    cancel: &CancellationToken,
    ids: &Ids,
) -> Option<Stop> {
    let cols = columns_of(&stream);
    let types: Vec<KqlType> = cols.iter().map(|c| c.1).collect();
    let mut head = frames::v2_header();
    head.push_str(&frames::v2_query_properties());
    head.push_str(&frames::v2_primary_start(&cols));
    if tx.send(Ok(Bytes::from(head))).await.is_err() {
        return None;
    }
    let mut budget = Budget { limits, rows: 0, bytes: 0 };
    let mut stop = None;
    'batches: loop {
        let batch = match next(&mut stream, deadline, limits.timeout, cancel).await {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(s) => {
                stop = Some(s);
                break;
            }
        };
        let mut chunk = String::new();
        let mut done = false;
        for r in 0..batch.num_rows() {
            let row = frames::v2_row(&batch, &types, r).to_string();
            match budget.admit(row.len()) {
                Ok(true) => {}
                Ok(false) => {
                    done = true;
                    break;
                }
                Err(s) => {
                    stop = Some(s);
                    done = true;
                    break;
                }
            }
            chunk.push_str(if budget.rows == 1 { "\n" } else { ",\n" });
            chunk.push_str(&row);
        }
        if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
            return None;
        }
        if done {
            break 'batches;
        }
    }
    let errors: Vec<Value> = stop.iter().map(|s| s.error.clone()).collect();
    let mut tail = frames::v2_primary_end(stop.as_ref().map(|s| &s.error), budget.rows > 0);
    tail.push_str(&frames::v2_completion_table(&completion_rows(ids, budget.rows, stop.as_ref())));
    tail.push_str(&frames::v2_completion(&errors, stop.as_ref().is_some_and(|s| s.cancelled)));
    let _ = tx.send(Ok(Bytes::from(tail))).await;
    stop
}

fn completion_rows<'a>(ids: &'a Ids, rows: u64, stop: Option<&'a Stop>) -> Vec<Completion<'a>> {
    let timestamp = crate::encoding::datetime_v2(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let mut out = vec![Completion {
        timestamp: timestamp.clone(),
        client_request_id: &ids.client_request_id,
        activity_id: &ids.activity_id,
        level: 4,
        status_code: 0,
        status_name: "S_OK (0)",
        event_type: 4,
        event_name: "QueryInfo",
        payload: json!({"Count": 1, "Text": "Query completed successfully", "RowCount": rows}),
    }];
    if let Some(s) = stop {
        out.push(Completion {
            timestamp,
            client_request_id: &ids.client_request_id,
            activity_id: &ids.activity_id,
            level: 2,
            status_code: s.status_code,
            status_name: s.status_name,
            event_type: 4,
            event_name: "QueryInfo",
            payload: s.error.clone(),
        });
        out.remove(0);
    }
    out
}

/// Reads a result for a v1 answer, under the same limits.
async fn collect_v1(mut stream: QueryStream, limits: Limits, deadline: tokio::time::Instant, cancel: &CancellationToken) -> (Vec<(String, KqlType)>, Vec<Value>, Option<Stop>) {
    let cols = columns_of(&stream);
    let types: Vec<KqlType> = cols.iter().map(|c| c.1).collect();
    let mut budget = Budget { limits, rows: 0, bytes: 0 };
    let mut rows = Vec::new();
    loop {
        let batch = match next(&mut stream, deadline, limits.timeout, cancel).await {
            Ok(Some(b)) => b,
            Ok(None) => return (cols, rows, None),
            Err(s) => return (cols, rows, Some(s)),
        };
        for r in 0..batch.num_rows() {
            let row = frames::v1_row(&batch, &types, r);
            match budget.admit(row.to_string().len()) {
                Ok(true) => rows.push(row),
                Ok(false) => return (cols, rows, None),
                Err(s) => return (cols, rows, Some(s)),
            }
        }
    }
}

/// A v1 query answer: the result, the query properties, the query status and the table of
/// contents that names them.
fn v1_query_body(ids: &Ids, cols: &[(String, KqlType)], rows: Vec<Value>, stop: Option<&Stop>) -> Value {
    let now = crate::encoding::datetime_v2(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let (severity, name, code, description) = match stop {
        None => (4, "Info", 0, "Query completed successfully".to_string()),
        Some(s) => (2, "Error", s.status_code, s.error["error"]["@message"].as_str().unwrap_or_default().to_string()),
    };
    let status_cols = [
        ("Timestamp", KqlType::Datetime), ("Severity", KqlType::Int), ("SeverityName", KqlType::String),
        ("StatusCode", KqlType::Int), ("StatusDescription", KqlType::String), ("Count", KqlType::Int),
        ("RequestId", KqlType::Guid), ("ActivityId", KqlType::Guid), ("SubActivityId", KqlType::Guid),
        ("ClientActivityId", KqlType::String),
    ]
    .map(|(n, t)| (n.to_string(), t));
    let status = vec![json!([now, severity, name, code, description, 1, ids.activity_id, ids.activity_id, ids.activity_id, ids.client_request_id])];
    let toc_cols = [("Ordinal", KqlType::Long), ("Kind", KqlType::String), ("Name", KqlType::String), ("Id", KqlType::String), ("PrettyName", KqlType::String)]
        .map(|(n, t)| (n.to_string(), t));
    let toc = vec![
        json!([0, "QueryResult", "PrimaryResult", uuid::Uuid::new_v4().to_string(), ""]),
        json!([1, "QueryProperties", "@ExtendedProperties", uuid::Uuid::new_v4().to_string(), ""]),
        json!([2, "QueryStatus", "QueryStatus", "00000000-0000-0000-0000-000000000000", ""]),
    ];
    json!({"Tables": [
        frames::v1_table("Table_0", cols, rows),
        frames::v1_table("Table_1", &[("Value".to_string(), KqlType::String)], vec![json!(["{\"Visualization\":null}"])]),
        frames::v1_table("Table_2", &status_cols, status),
        frames::v1_table("Table_3", &toc_cols, toc),
    ]})
}

impl ServerState {
    /// Answers an error before any result was written, and records it.
    fn refuse(&self, a: &Admitted, kind: &str, e: ApiError) -> Response {
        self.audit_done(a, kind, &[], &[], Outcome::failed(e.status.as_u16(), e.code), 0);
        let mut r = e.with_ids(&a.ids.activity_id, &a.ids.client_request_id).into_response();
        a.ids.headers(&mut r);
        r
    }

    fn audit_done(&self, a: &Admitted, kind: &str, tables: &[String], policies: &[String], outcome: Outcome, duration_ms: u64) {
        if let Some(log) = &self.audit {
            let mut r = AuditRecord::new(a.ids.activity_id.clone(), &a.request.csl, request_kind(kind), outcome);
            r.client_request_id = Some(a.ids.client_request_id.clone());
            r.client_address = Some(a.client);
            r.principal = Some(a.identity.principal.clone());
            r.database = a.request.db.clone();
            r.tables = tables.to_vec();
            r.policies = policies.to_vec();
            r.duration_ms = duration_ms;
            self.append(log, &r);
        }
    }

    fn audit_refusal(&self, ids: &Ids, client: IpAddr, kind: &str, e: &ApiError) {
        if let Some(log) = &self.audit {
            let mut r = AuditRecord::new(ids.activity_id.clone(), "", request_kind(kind), Outcome::failed(e.status.as_u16(), e.code));
            r.client_request_id = Some(ids.client_request_id.clone());
            r.client_address = Some(client);
            self.append(log, &r);
        }
    }

    /// A failed audit write is logged: the request it records has already been answered.
    fn append(&self, log: &AuditLog, r: &AuditRecord) {
        if let Err(e) = log.append(r) {
            tracing::error!("audit log {}: {e}", log.path().display());
        }
    }
}

fn request_kind(kind: &str) -> RequestKind {
    if kind == "command" { RequestKind::Command } else { RequestKind::Query }
}
