//! Requests: a query or a management command with its options, parsed, authorized, planned
//! and run against the cluster (`Cluster::execute`, `prepare`, `bind`, `explain`).

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::physical_plan::displayable;
use kustodian_parser::ast;
use kustodian_planner::{AppliedPolicy, KqlSchema, PlannedQuery, Principal, RequestContext, TableAccess, plan_pipe};

use crate::auth::Caller;
use crate::catalog::{Access, SnapshotCatalog, State, Unpoliced};
use crate::cluster::Cluster;
use crate::commands;
use crate::error::{Result, RuntimeError};
use crate::output::{QueryOutput, QueryStream, conform, ordered_stream};
use crate::plan_cache::{OptimizedQuery, PlanKey};

/// Who is making a request: a principal FQN plus its group claims (`--as`, `--group`, or an
/// authenticated token's claims).
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub principal: String,
    pub groups: Vec<String>,
    /// Other FQNs of the principal and of its groups (a token user's `aaduser=<upn>`, a group's
    /// email beside its object id): role assignments and `current_principal_is_member_of`
    /// arguments made with them mean this caller.
    pub aliases: Vec<String>,
    /// What `current_principal_details()` reports beyond the FQN.
    pub details: kustodian_planner::PrincipalDetails,
}

impl Identity {
    /// An identity with only a principal FQN.
    pub fn new(principal: impl Into<String>) -> Self {
        Identity { principal: principal.into(), ..Identity::default() }
    }
}

/// Per-request options: database in scope, identity (None = the cluster's first admin),
/// request properties (`--set name[=value]`, REST `Options`), query parameters (REST
/// `Parameters`).
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    pub database: Option<String>,
    pub identity: Option<Identity>,
    pub properties: Vec<(String, String)>,
    pub parameters: Vec<(String, String)>,
}

/// A query planned down to its physical plan ([`Cluster::prepare`]), ready to run.
pub struct Prepared {
    /// Verified by the planner's pipeline.
    physical: kustodian_planner::pipeline::Physical,
    /// The KQL schema of the result.
    pub schema: KqlSchema,
    /// The row-level security policies substituted into the query.
    pub policies: Vec<AppliedPolicy>,
    /// Every table the query reads, including through functions and policies.
    pub tables: Vec<TableAccess>,
    /// Whether the plan was lowered directly, without DataFusion's optimizers and planner
    /// (`kustodian_planner::direct`).
    pub lowered_directly: bool,
}

/// How a request sees the tables (see [`SnapshotCatalog`]).
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub without_rls: Unpoliced,
    pub fraction: f64,
}

impl Default for View {
    fn default() -> Self {
        View { without_rls: Unpoliced::None, fraction: 1.0 }
    }
}

/// What `kustodian explain` prints.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The effective KQL with policies substituted, printed from the AST.
    pub effective_kql: String,
    /// Policies applied, one line each.
    pub policies: Vec<String>,
    /// The same policies, as the planner applied them.
    pub applied: Vec<AppliedPolicy>,
    /// The optimized logical plan, or the bound plan when it was lowered directly.
    pub logical_plan: String,
    pub physical_plan: String,
    /// Whether the bound plan was lowered directly, without DataFusion's optimizers and
    /// physical planner (`kustodian_planner::direct`).
    pub lowered_directly: bool,
    /// What running the query did (`explain --analyze`).
    pub analysis: Option<Analysis>,
}

/// What a query's run read and skipped ([`Cluster::explain_analyze`]).
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// The physical plan with DataFusion's metrics on every node.
    pub plan_with_metrics: String,
    pub rows: u64,
    pub elapsed: std::time::Duration,
    /// Bytes read from extent files by the scans.
    pub bytes_scanned: u64,
    /// Size of the extent files of the tables the query reads.
    pub bytes_in_tables: u64,
    /// Row groups the scans read, and those skipped by their statistics.
    pub row_groups_read: u64,
    pub row_groups_pruned: u64,
    /// Rows the page index let the scans skip.
    pub page_rows_pruned: u64,
}

impl Analysis {
    /// The figures as one line each.
    pub fn summary(&self) -> String {
        let pct = if self.bytes_in_tables > 0 { 100.0 * self.bytes_scanned as f64 / self.bytes_in_tables as f64 } else { 0.0 };
        format!(
            "rows: {}\nelapsed: {:.1} ms\nbytes scanned: {} of {} in the tables' extents ({pct:.1} %)\nrow groups: {} read, {} pruned by statistics\nrows skipped by the page index: {}\n",
            self.rows,
            self.elapsed.as_secs_f64() * 1e3,
            self.bytes_scanned,
            self.bytes_in_tables,
            self.row_groups_read,
            self.row_groups_pruned,
            self.page_rows_pruned
        )
    }
}

/// Adds up the Parquet scans' metrics of a plan that ran.
fn scan_metrics(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>, a: &mut Analysis) {
    use datafusion::physical_plan::metrics::MetricValue;
    if let Some(metrics) = plan.metrics() {
        for m in metrics.iter() {
            match m.value() {
                MetricValue::Count { name, count } if name == "bytes_scanned" => a.bytes_scanned += count.value() as u64,
                MetricValue::PruningMetrics { name, pruning_metrics } if name == "row_groups_pruned_statistics" => {
                    a.row_groups_read += pruning_metrics.matched() as u64;
                    a.row_groups_pruned += pruning_metrics.pruned() as u64;
                }
                MetricValue::PruningMetrics { name, pruning_metrics } if name == "page_index_rows_pruned" => {
                    a.page_rows_pruned += pruning_metrics.pruned() as u64;
                }
                _ => {}
            }
        }
    }
    for child in plan.children() {
        scan_metrics(child, a);
    }
}

impl Cluster {
    /// Plans the operators piped after a command (`.show tables | where ...`) over its result,
    /// as the caller.
    pub(crate) fn plan_command_pipe(
        &self,
        snap: &State,
        caller: &Caller,
        ctx: &RequestContext,
        out: QueryOutput,
        pipe: &[ast::Operator],
    ) -> Result<PlannedQuery> {
        let provider = MemTable::try_new(out.schema.arrow_schema(), vec![conform(out.batches, &out.schema.arrow_schema())?])?;
        let scan = datafusion::logical_expr::LogicalPlanBuilder::scan(
            "command_result",
            datafusion::datasource::provider_as_source(Arc::new(provider)),
            None,
        )?
        .build()?;
        let catalog = self.catalog(snap, Access::Caller(caller));
        let planned = plan_pipe(&catalog, ctx, scan, out.schema, pipe)?;
        self.authorize_tables(snap, caller, &planned)?;
        Ok(planned)
    }

    /// A command's result with the operators piped after it applied.
    pub(crate) async fn pipe_output(&self, snap: &State, caller: &Caller, ctx: &RequestContext, out: QueryOutput, pipe: &[ast::Operator]) -> Result<QueryOutput> {
        if pipe.is_empty() {
            return Ok(out);
        }
        let planned = self.plan_command_pipe(snap, caller, ctx, out, pipe)?;
        self.stream_plan(&planned).await?.collect().await
    }

    /// The caller of a request and its request context.
    pub(crate) fn request_context(&self, opts: &RequestOptions, database: &str) -> Result<(Caller, RequestContext)> {
        let parse_group = |g: &str| {
            // A bare group name is taken as an aadgroup principal.
            let fqn = if g.contains('=') { g.to_string() } else { format!("aadgroup={g}") };
            Principal::parse(&fqn).map_err(RuntimeError::bad_request)
        };
        let (principal, groups, aliases, details) = match &opts.identity {
            Some(id) => {
                let p = Principal::parse(&id.principal).map_err(RuntimeError::bad_request)?;
                let mut gs = id.groups.iter().map(|g| parse_group(g)).collect::<Result<Vec<_>>>()?;
                gs.dedup();
                let aliases = id.aliases.iter().map(|a| Principal::parse(a).map_err(RuntimeError::bad_request)).collect::<Result<Vec<_>>>()?;
                (p, gs, aliases, id.details.clone())
            }
            None => (self.admin.clone(), Vec::new(), Vec::new(), kustodian_planner::PrincipalDetails::default()),
        };
        let force = property_on(opts, "query_force_row_level_security");
        let block = property_on(opts, "request_block_row_level_security");
        let validate_permissions = property_on(opts, "validatepermissions");
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let query_now = match opts.properties.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case("query_now")) {
            Some((_, v)) => Some(kustodian_planner::parse_datetime(v).ok_or_else(|| {
                RuntimeError::bad_request(format!("request property query_now: '{v}' is not a datetime"))
            })?),
            None => None,
        };
        let caller = Caller::with_aliases(principal.clone(), groups.clone(), aliases.clone())?;
        let ctx = RequestContext {
            aliases,
            details,
            force_rls: force,
            block_rls: block,
            validate_permissions,
            query_now,
            parameters: opts.parameters.clone(),
            ..RequestContext::new(principal, groups, database, now)
        };
        Ok((caller, ctx))
    }

    pub(crate) fn database_for(&self, opts: &RequestOptions) -> Result<String> {
        let snap = self.snapshot();
        match &opts.database {
            // A database that does not exist yet is kept as named: `.create database` may be
            // what the request does; queries and other commands check for it.
            Some(d) => Ok(snap.meta.db(d).map(|d| d.name.clone()).unwrap_or_else(|| d.clone())),
            None => Ok(snap.meta.databases.first().map(|d| d.name.clone()).unwrap_or_default()),
        }
    }

    /// The start of a query request: catch up with other processes' commits, take the snapshot
    /// it runs on, resolve its caller, and find a plan this caller already made for the same
    /// text on this snapshot (then nothing is parsed).
    fn look_up(&self, text: &str, opts: &RequestOptions) -> Result<Lookup> {
        self.refresh()?;
        let snap = self.snapshot();
        let context = self.resolve(opts);
        let key = context.as_ref().ok().map(|(_, _, ctx)| PlanKey::new(text, ctx, &opts.properties));
        let hit = key.as_ref().and_then(|k| self.plans.get(&snap, k));
        Ok(Lookup { snap, context, key, hit })
    }

    /// Whether a caller may watch the whole service: see and cancel everyone's requests,
    /// `.show cluster` (Kusto's AllDatabasesMonitor or AllDatabasesAdmin).
    pub fn may_monitor(&self, identity: &Identity) -> Result<bool> {
        self.refresh()?;
        let opts = RequestOptions { identity: Some(identity.clone()), ..RequestOptions::default() };
        let (caller, _) = self.request_context(&opts, "")?;
        let snap = self.snapshot();
        Ok(crate::auth::allows(&snap.meta, &caller, &crate::auth::Action::ShowCluster))
    }

    /// Runs one request (a query or a management command).
    pub async fn execute(&self, text: &str, opts: &RequestOptions) -> Result<QueryOutput> {
        self.execute_stream(text, opts).await?.collect().await
    }

    /// Runs a request and returns its result as a stream of batches: a query's rows come out
    /// as the engine produces them (a command's result is complete when it returns).
    pub async fn execute_stream(&self, text: &str, opts: &RequestOptions) -> Result<QueryStream> {
        if let Some(keys) = self.keyring()
            && keys.suspension().is_some()
            && let Ok(ast::Request::Command(cmd)) = kustodian_parser::parse(text)
            && matches!(cmd.kind, ast::CommandKind::ShowEncryptionPolicy)
            && self.check_keys().is_err()
        {
            // Suspended: the key's state can still be shown (it says why), from the metadata
            // this process last loaded; nothing else runs. A process that never read its
            // metadata knows no role: it only says that it is suspended.
            if self.snapshot().meta.version == u64::MAX {
                return Err(RuntimeError::Suspended(keys.suspension().unwrap_or_default()));
            }
            let (_, caller, ctx) = self.resolve(opts)?;
            return Ok(QueryStream::ready(commands::execute(self, &caller, &ctx, &cmd, text).await?));
        }
        let Lookup { snap, context, key, hit } = self.look_up(text, opts)?;
        if let Some(hit) = hit {
            return self.stream_optimized(&hit).await;
        }
        // A syntax error is reported before a bad identity.
        let request = kustodian_parser::parse(text).map_err(kustodian_planner::PlanError::from)?;
        let (database, caller, ctx) = context?;
        match &request {
            ast::Request::Query(q) => {
                let planned = self.plan_request(&snap, q, text, &database, &caller, &ctx, View::default())?;
                if planned.validate_permissions {
                    // Authorized (planning checked every table it reaches); nothing runs.
                    return Ok(QueryStream::ready(validation_result()?));
                }
                let optimized = self.optimize_and_keep(&snap, key, planned)?;
                self.stream_optimized(&optimized).await
            }
            ast::Request::Command(cmd) => {
                if request_readonly(opts) && !commands::is_read_only(&cmd.kind) {
                    return Err(RuntimeError::bad_request(
                        "request_readonly is set: the request may not run a command that changes the cluster",
                    ));
                }
                let out = if commands::is_read_only(&cmd.kind) {
                    commands::execute(self, &caller, &ctx, cmd, text).await?
                } else {
                    // Over the latest commit of any process, and alone until committed.
                    let _write = self.begin_write().await?;
                    commands::execute(self, &caller, &ctx, cmd, text).await?
                };
                if cmd.pipe.is_empty() {
                    return Ok(QueryStream::ready(out));
                }
                let snap = self.snapshot();
                let planned = self.plan_command_pipe(&snap, &caller, &ctx, out, &cmd.pipe)?;
                self.stream_plan(&planned).await
            }
        }
    }

    /// Parses, authorizes and binds a query to its DataFusion logical plan (before optimization).
    pub fn bind(&self, text: &str, opts: &RequestOptions) -> Result<PlannedQuery> {
        self.refresh()?;
        // Always binds: the result is the plan before optimization, which the cache does not keep.
        let (q, _, caller, ctx) = self.query_request(text, opts, "only a query can be bound, not a management command")?;
        self.plan(&self.snapshot(), &caller, &ctx, &q, text)
    }

    /// Parses, authorizes and plans a query down to its physical plan, without running it.
    /// A query this caller already prepared or ran against the same snapshot reuses its
    /// optimized plan (see [`crate::plan_cache`]).
    pub async fn prepare(&self, text: &str, opts: &RequestOptions) -> Result<Prepared> {
        let Lookup { snap, context, key, hit } = self.look_up(text, opts)?;
        if let Some(hit) = hit {
            return self.prepared(&hit).await;
        }
        let q = parse_query(text, "only a query can be prepared, not a management command")?;
        let (database, caller, ctx) = context?;
        let planned = self.plan_request(&snap, &q, text, &database, &caller, &ctx, View::default())?;
        let optimized = self.optimize_and_keep(&snap, key, planned)?;
        self.prepared(&optimized).await
    }

    /// Prepares a query under a view of the tables, always planning it in full: `overhead`
    /// measures what a request costs, planning the policies included.
    pub(crate) async fn prepare_view(&self, text: &str, opts: &RequestOptions, view: View) -> Result<Prepared> {
        let (q, database, caller, ctx) =
            self.query_request(text, opts, "only a query can be prepared, not a management command")?;
        self.prepare_query(&q, text, &database, &caller, &ctx, view).await
    }

    /// Plans an optimized query physically and starts it.
    async fn stream_optimized(&self, optimized: &OptimizedQuery) -> Result<QueryStream> {
        let physical = self.pipeline.physical(&optimized.optimized).await?;
        Ok(QueryStream::engine(optimized.schema.clone(), ordered_stream(Arc::clone(physical.plan()), Arc::clone(physical.task()))?)
            .reading(&optimized.tables, &optimized.policies)
            .diagnosing(self.diagnose(&optimized.tables)))
    }

    /// Plans an optimized query physically, ready to run.
    async fn prepared(&self, optimized: &OptimizedQuery) -> Result<Prepared> {
        let physical = self.pipeline.physical(&optimized.optimized).await?;
        Ok(Prepared {
            lowered_directly: physical.lowered_directly(),
            physical,
            schema: optimized.schema.clone(),
            policies: optimized.policies.clone(),
            tables: optimized.tables.clone(),
        })
    }

    /// Parses a request that must be a query (`not_query` is the error otherwise) and resolves
    /// its database, caller and request context.
    fn query_request(&self, text: &str, opts: &RequestOptions, not_query: &str) -> Result<(ast::Query, String, Caller, RequestContext)> {
        let q = parse_query(text, not_query)?;
        let (database, caller, ctx) = self.resolve(opts)?;
        Ok((q, database, caller, ctx))
    }

    /// A request's database, caller and request context.
    fn resolve(&self, opts: &RequestOptions) -> Result<(String, Caller, RequestContext)> {
        let database = self.database_for(opts)?;
        let (caller, ctx) = self.request_context(opts, &database)?;
        Ok((database, caller, ctx))
    }

    /// Plans a query of a request against a view of the current snapshot and authorizes it.
    #[allow(clippy::too_many_arguments)]
    fn plan_request(
        &self,
        snap: &State,
        q: &ast::Query,
        text: &str,
        database: &str,
        caller: &Caller,
        ctx: &RequestContext,
        view: View,
    ) -> Result<PlannedQuery> {
        if !database.is_empty() && snap.meta.db(database).is_none() {
            // Forbidden before "does not exist": only a caller who could read it may learn that.
            crate::auth::authorize(&snap.meta, caller, &crate::auth::Action::ReadDatabase(database), &format!("query database '{database}'"))?;
            return Err(RuntimeError::bad_request(format!("database '{database}' does not exist")));
        }
        let catalog = SnapshotCatalog { without_rls: view.without_rls.clone(), fraction: view.fraction, ..self.catalog(snap, Access::Caller(caller)) };
        self.plan_in(&catalog, caller, ctx, q, text)
    }

    async fn prepare_query(
        &self,
        q: &ast::Query,
        text: &str,
        database: &str,
        caller: &Caller,
        ctx: &RequestContext,
        view: View,
    ) -> Result<Prepared> {
        let planned = self.plan_request(&self.snapshot(), q, text, database, caller, ctx, view)?;
        let (_, physical) = self.physical(&planned).await?;
        Ok(Prepared {
            lowered_directly: physical.lowered_directly(),
            physical,
            schema: planned.schema,
            policies: planned.policies,
            tables: planned.tables,
        })
    }

    /// Runs a prepared query to completion.
    pub async fn run_prepared(&self, prepared: &Prepared) -> Result<QueryOutput> {
        let stream = ordered_stream(Arc::clone(prepared.physical.plan()), Arc::clone(prepared.physical.task()))?;
        QueryStream::engine(prepared.schema.clone(), stream).collect().await
    }

    /// Plans a query without running it and describes the plan.
    pub async fn explain(&self, text: &str, opts: &RequestOptions) -> Result<Explanation> {
        self.refresh()?;
        let (q, _, caller, ctx) = self.query_request(text, opts, "explain takes a query, not a management command")?;
        let snap = self.snapshot();
        let planned = self.plan(&snap, &caller, &ctx, &q, text)?;
        let (optimized, physical) = self.physical(&planned).await?;
        let policies = planned
            .policies
            .iter()
            .map(|p| {
                format!(
                    "RowLevelSecurity on {}{}: {}",
                    p.table,
                    if p.forced { " (disabled, applied by query_force_row_level_security)" } else { "" },
                    p.query
                )
            })
            .collect();
        Ok(Explanation {
            effective_kql: planned.effective_kql(),
            policies,
            applied: planned.policies.clone(),
            logical_plan: optimized.plan().display_indent().to_string(),
            physical_plan: displayable(physical.plan().as_ref()).indent(false).to_string(),
            lowered_directly: physical.lowered_directly(),
            analysis: None,
        })
    }

    /// [`Cluster::explain`], and runs the query (its rows are counted, not returned) to report
    /// what it read: the plan with DataFusion's metrics, bytes scanned against the size of the
    /// tables' extents, row groups and pages skipped. A scan's metrics describe the whole table
    /// it reads, hidden rows included (how many rows, which row groups hold a value), so where
    /// a row-level-security policy applies only an admin of that table may ask for them.
    pub async fn explain_analyze(&self, text: &str, opts: &RequestOptions) -> Result<Explanation> {
        self.refresh()?;
        let (q, _, caller, ctx) = self.query_request(text, opts, "explain takes a query, not a management command")?;
        let snap = self.snapshot();
        let planned = self.plan(&snap, &caller, &ctx, &q, text)?;
        for p in &planned.policies {
            let t = planned.tables.iter().find(|t| format!("[{}].[{}]", t.database, t.table) == p.table);
            let Some(t) = t else { continue };
            crate::auth::check(
                crate::auth::allows(&snap.meta, &caller, &crate::auth::Action::AdminTable(&t.database, &t.table)),
                &caller,
                &format!("see what the query reads of table '{}' in database '{}' (its row_level_security policy applies)", t.table, t.database),
                crate::auth::Needs::TableAdmin,
            )?;
        }
        let mut explanation = self.explain(text, opts).await?;
        let (_, physical) = self.physical(&planned).await?;
        let started = std::time::Instant::now();
        let batches = physical.collect().await?;
        let mut analysis = Analysis { elapsed: started.elapsed(), rows: batches.iter().map(|b| b.num_rows() as u64).sum(), ..Analysis::default() };
        scan_metrics(physical.plan(), &mut analysis);
        let mut seen = std::collections::HashSet::new();
        analysis.bytes_in_tables = planned
            .tables
            .iter()
            .filter(|t| seen.insert((t.database.clone(), t.table.clone())))
            .filter_map(|t| snap.meta.db(&t.database).and_then(|d| d.table(&t.table).map(|x| x.extents.clone()).or_else(|| d.materialized_view(&t.table).map(|v| v.extents.clone()))))
            .flatten()
            .map(|e| e.bytes)
            .sum();
        analysis.plan_with_metrics = datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(physical.plan().as_ref()).indent(false).to_string();
        explanation.analysis = Some(analysis);
        Ok(explanation)
    }
}

/// Parses a request that must be a query (`not_query` is the error otherwise).
fn parse_query(text: &str, not_query: &str) -> Result<ast::Query> {
    match kustodian_parser::parse(text).map_err(kustodian_planner::PlanError::from)? {
        ast::Request::Query(q) => Ok(q),
        ast::Request::Command(_) => Err(RuntimeError::bad_request(not_query)),
    }
}

/// Whether a boolean request property is set (given without a value, or `true`).
fn property_on(opts: &RequestOptions, name: &str) -> bool {
    opts.properties.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(name)).is_some_and(|(_, v)| v.is_empty() || v.eq_ignore_ascii_case("true"))
}

/// `request_readonly` / `request_readonly_hardline`: the request may not change anything.
fn request_readonly(opts: &RequestOptions) -> bool {
    property_on(opts, "request_readonly") || property_on(opts, "request_readonly_hardline")
}

/// The answer to a `validatepermissions` request that passed authorization.
fn validation_result() -> Result<QueryOutput> {
    use datafusion::arrow::array::StringArray;
    let schema = KqlSchema::new(vec![kustodian_planner::KqlColumn::new("Result", kustodian_planner::KqlType::String)]);
    let batch = RecordBatch::try_new(schema.arrow_schema(), vec![Arc::new(StringArray::from(vec!["OK"]))])?;
    Ok(QueryOutput { schema, batches: vec![batch] })
}

/// See `Cluster::look_up`.
struct Lookup {
    snap: Arc<State>,
    /// The request's database, caller and context, or why they could not be resolved (reported
    /// after a syntax error).
    context: Result<(String, Caller, RequestContext)>,
    key: Option<PlanKey>,
    hit: Option<Arc<OptimizedQuery>>,
}
