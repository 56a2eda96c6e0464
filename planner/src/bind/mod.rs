//! The binder: resolves a parsed KQL query against a [`Catalog`] and lowers it to a DataFusion
//! `LogicalPlan`, substituting row-level-security policies at the one table-resolution choke
//! point ([`Binder::resolve_table`]) and folding principal functions to literals.

mod graph;
mod grouped;
mod make_series;
mod materialized;
mod mv_apply;
mod ops;
mod parse_kv;
mod parse_op;
mod plugins;
mod probed;
mod scalar;
mod scan;
mod search;
mod sources;

use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use datafusion::common::{Column, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr as DfExpr, LogicalPlan, LogicalPlanBuilder};
use kustodian_parser::ast::{self, ExprKind, Span, StatementKind, TabularShape};

use crate::security::barrier::SecurityBarrier;
use crate::catalog::{Catalog, DepKind, PolicyDep, TableInfo};
use crate::error::{PlanError, Result};
use crate::functions::{FunctionContext, TypedExpr};
use crate::principal::RequestContext;
use crate::types::{KqlSchema, KqlType};

pub use crate::planned::{AppliedPolicy, PlannedQuery, TableAccess};

/// Nesting limit for binding (policies, functions, lets inlining each other).
const MAX_DEPTH: usize = 64;

/// A relation being built: the DataFusion plan and the KQL schema of its output.
#[derive(Debug, Clone)]
pub struct Rel {
    pub plan: LogicalPlan,
    pub schema: KqlSchema,
    /// The name given by a trailing `as Name` (a `union withsource` label).
    pub alias: Option<String>,
}

impl Rel {
    pub fn new(plan: LogicalPlan, schema: KqlSchema) -> Self {
        Rel { plan, schema, alias: None }
    }

    pub(crate) fn builder(&self) -> LogicalPlanBuilder {
        LogicalPlanBuilder::from(self.plan.clone())
    }

    /// A column reference by exact (case-sensitive) name.
    pub(crate) fn col(&self, name: &str) -> Result<TypedExpr> {
        let c = self
            .schema
            .get(name)
            .ok_or_else(|| PlanError::Internal(format!("column '{name}' missing from relation")))?;
        Ok(TypedExpr::new(column_expr(&self.plan, name), c.ty))
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.schema.columns.iter().map(|c| c.name.clone()).collect()
    }
}

/// `UNION ALL` of legs the binder has already cast to one list of column types, as one n-ary
/// union with the schema DataFusion's type coercion gives a union (a column is nullable when
/// any leg's is, field metadata merged). Built this way the bound plan is already what the
/// analyzer would make of it, so the runtime does not run the analyzer (debug builds check
/// that it would change nothing: `Cluster::optimize`).
pub(crate) fn union_all(legs: Vec<LogicalPlan>) -> Result<LogicalPlan> {
    let mut legs: Vec<Arc<LogicalPlan>> = legs.into_iter().map(Arc::new).collect();
    if legs.len() == 1
        && let Some(only) = legs.pop()
    {
        return Ok(Arc::unwrap_or_clone(only));
    }
    let union = datafusion::logical_expr::Union::try_new_with_loose_types(legs)?;
    Ok(datafusion::optimizer::analyzer::type_coercion::TypeCoercionRewriter::coerce_union(union)?)
}

/// The projection of `exprs` over `input` that `LogicalPlanBuilder::project` makes, for the
/// binder's expressions, whose columns are already qualified as `input`'s schema has them
/// ([`column_expr`]): without the builder re-qualifying every column (which walks the whole
/// input plan for USING-join columns, once per column) and, when `input` carries no functional
/// dependencies (nothing below is an aggregate), without DataFusion working them out for the
/// projection (which formats every expression to a string). A column the builder would
/// qualify, or an aggregate or window input (whose output expressions the builder turns into
/// columns), sends the projection through the builder. Debug builds check that the builder makes
/// the same plan.
pub(crate) fn project(input: LogicalPlan, exprs: Vec<DfExpr>) -> Result<LogicalPlan> {
    let schema = input.schema();
    let qualified_as_input = exprs.iter().all(|e| {
        e.column_refs().iter().all(|c| {
            c.relation.is_some() || matches!(schema.qualified_fields_with_unqualified_name(&c.name)[..], [(None, _)])
        })
    });
    // Over an aggregate or a window the builder also replaces expressions equal to one of their
    // outputs by that output's column.
    if !qualified_as_input || matches!(input, LogicalPlan::Aggregate(_) | LogicalPlan::Window(_)) {
        return Ok(LogicalPlanBuilder::from(input).project(exprs)?.build()?);
    }
    #[cfg(debug_assertions)]
    let built = LogicalPlanBuilder::from(input.clone()).project(exprs.clone())?.build()?;
    let input = Arc::new(input);
    let projection = if input.schema().functional_dependencies().is_empty() {
        let fields = datafusion::logical_expr::utils::exprlist_to_fields(&exprs, &input)?;
        let schema = datafusion::common::DFSchema::new_with_metadata(fields, input.schema().metadata().clone())?;
        datafusion::logical_expr::Projection::try_new_with_schema(exprs, input, Arc::new(schema))?
    } else {
        datafusion::logical_expr::Projection::try_new(exprs, input)?
    };
    let plan = LogicalPlan::Projection(projection);
    #[cfg(debug_assertions)]
    if built != plan {
        return Err(PlanError::Internal("a projection the binder built differs from the one DataFusion's builder makes".into()));
    }
    Ok(plan)
}

/// `input` sorted by `sorts`, whose columns the binder resolved against `input`: the plan
/// `LogicalPlanBuilder::sort` makes, without the builder's work for SQL's ORDER BY (keys
/// rewritten through aggregates, missing columns added, every column re-qualified), which is
/// about a twentieth of binding a query with a sort. Debug builds check that the builder makes
/// the same plan.
pub(crate) fn sort_plan(input: LogicalPlan, sorts: Vec<datafusion::logical_expr::SortExpr>) -> Result<LogicalPlan> {
    #[cfg(debug_assertions)]
    let built = LogicalPlanBuilder::from(input.clone()).sort(sorts.clone())?.build()?;
    let plan = LogicalPlan::Sort(datafusion::logical_expr::Sort { expr: sorts, input: Arc::new(input), fetch: None });
    #[cfg(debug_assertions)]
    if built != plan {
        return Err(PlanError::Internal("a sort the binder built differs from the one DataFusion's builder makes".into()));
    }
    Ok(plan)
}

/// A column reference that never lower-cases (`col("...")` would) and keeps the qualifier the
/// plan's schema has for it, so self-joins and aliases resolve.
pub(crate) fn column_expr(plan: &LogicalPlan, name: &str) -> DfExpr {
    let schema = plan.schema();
    let mut found = None;
    for (q, f) in schema.iter() {
        if f.name() == name {
            found = Some(q.cloned());
            break;
        }
    }
    match found {
        Some(q) => DfExpr::Column(Column::new(q, name)),
        None => DfExpr::Column(Column::new_unqualified(name)),
    }
}

#[derive(Clone)]
pub(crate) enum Binding {
    Scalar(TypedExpr),
    Tabular(Rel),
    Lambda(Rc<LambdaDef>),
}

pub(crate) struct LambdaDef {
    pub name: String,
    pub params: Vec<ast::Param>,
    pub body: Vec<ast::Statement>,
    pub scope: Scope,
    /// The `restrict` state when defined: views defined before `restrict` may use anything.
    pub restrict: Option<Rc<Restriction>>,
    /// Stored functions resolve names in their own database.
    pub database: Option<String>,
    /// `let V = view () {...}`: a table-like name that `union` and `search` patterns reach.
    pub is_view: bool,
}

/// Lexical scope of `let` names, lambda parameters and `as` names (innermost last).
#[derive(Clone, Default)]
pub(crate) struct Scope {
    vars: Vec<(String, Binding)>,
    /// After `restrict access to (...)`: the names bound before it (the first `.0` entries)
    /// that are not in the list `.1` are hidden. Views defined before the statement captured
    /// their own scope and still see everything.
    hidden: Option<(usize, Rc<HashSet<String>>)>,
}

impl Scope {
    pub fn get(&self, name: &str) -> Option<&Binding> {
        let (i, b) = self.vars.iter().enumerate().rev().find(|(_, (n, _))| n == name).map(|(i, (_, b))| (i, b))?;
        match &self.hidden {
            Some((mark, listed)) if i < *mark && !listed.contains(name) => None,
            _ => Some(b),
        }
    }

    /// The views (`let V = view () {...}`) visible here whose names match `pattern`, sorted
    /// by name, each with its innermost definition.
    pub fn views_matching(&self, pattern: &str) -> Vec<(String, Rc<LambdaDef>)> {
        let mut out: Vec<(String, Rc<LambdaDef>)> = Vec::new();
        for (name, _) in self.vars.iter().rev() {
            if out.iter().any(|(n, _)| n == name) || !glob_match(pattern, name) {
                continue;
            }
            if let Some(Binding::Lambda(l)) = self.get(name)
                && l.is_view
            {
                out.push((name.clone(), l.clone()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Whether `name` is bound but hidden by `restrict access to`.
    pub fn is_hidden(&self, name: &str) -> bool {
        self.get(name).is_none() && self.vars.iter().any(|(n, _)| n == name)
    }

    /// Hides every name bound so far but those listed (`restrict access to`).
    fn restrict_to(&mut self, listed: &HashSet<String>) {
        self.hidden = Some((self.vars.len(), Rc::new(listed.clone())));
    }

    pub fn with(&self, name: &str, b: Binding) -> Scope {
        let mut s = self.clone();
        s.vars.push((name.to_string(), b));
        s
    }

    pub fn push(&mut self, name: &str, b: Binding) {
        self.vars.push((name.to_string(), b));
    }
}

/// What `restrict access to (...)` allows.
#[derive(Debug, Default)]
pub(crate) struct Restriction {
    /// `let` names listed.
    pub lets: HashSet<String>,
    /// `(database, table)` listed; table `*` means every table of that database.
    pub tables: Vec<(String, String)>,
}

pub(crate) struct Binder<'a> {
    pub catalog: &'a dyn Catalog,
    pub ctx: &'a RequestContext,
    pub fctx: FunctionContext,
    pub database: String,
    pub force_rls: bool,
    pub block_rls: bool,
    pub validate_permissions: bool,
    pub policies: Vec<AppliedPolicy>,
    pub tables: Vec<TableAccess>,
    /// Spans in the request text of table references replaced by policies, with the entity.
    pub substitutions: Vec<(Span, String)>,
    /// Entities whose policy is being bound: inside it, the table is the raw table.
    pub policy_stack: Vec<String>,
    /// For each policy being bound (innermost last), the stored functions it called.
    pub policy_deps: Vec<Vec<PolicyDep>>,
    pub restrict: Option<Rc<Restriction>>,
    /// Nonzero while binding text that is not the request's (functions, policies), whose
    /// spans do not point into the request.
    pub foreign_text: usize,
    pub depth: usize,
    /// How many `materialize()` calls were bound: the next one's number in the plan.
    pub materialized: u64,
    /// While an `extend` binds its items: its input's columns, which `pack_all()` packs (not
    /// the columns the same `extend` defined before it).
    pub extend_input: Option<Vec<String>>,
}

/// Request properties a `set` statement may not change (Kusto's request-properties page): a
/// query text must not turn off read-only mode or change the identity recorded for the request.
pub const NOT_SETTABLE: &[&str] = &[
    "norequesttimeout",
    "queryconsistency",
    "query_language",
    "query_log_query_parameters",
    "query_weakconsistency_session_id",
    "request_app_name",
    "request_readonly",
    "request_readonly_hardline",
    "request_user",
    "results_progressive_enabled",
    "results_v2_fragment_primary_tables",
    "servertimeout",
    "truncationmaxsize",
];

/// Plans a query for a request.
pub fn plan_query(catalog: &dyn Catalog, ctx: &RequestContext, query: &ast::Query, text: &str) -> Result<PlannedQuery> {
    let mut b = Binder::new(catalog, ctx);
    let rel = b.bind_statements(&query.statements, &mut Scope::default(), true)?;
    let effective = Some((text.to_string(), std::mem::take(&mut b.substitutions)));
    b.planned(rel, effective, b.validate_permissions)
}

fn dedup_in_order<T: Eq + std::hash::Hash + Clone>(v: &mut Vec<T>) {
    let mut seen = HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

impl<'a> Binder<'a> {
    pub fn new(catalog: &'a dyn Catalog, ctx: &'a RequestContext) -> Self {
        let mut fctx = FunctionContext::new(ctx.now_nanos);
        if let Some(n) = ctx.query_now {
            fctx.fix_now(n);
        }
        Binder {
            catalog,
            ctx,
            fctx,
            database: ctx.database.clone(),
            force_rls: ctx.force_rls,
            block_rls: ctx.block_rls,
            validate_permissions: ctx.validate_permissions,
            policies: Vec::new(),
            tables: Vec::new(),
            substitutions: Vec::new(),
            policy_stack: Vec::new(),
            policy_deps: Vec::new(),
            restrict: None,
            foreign_text: 0,
            depth: 0,
            materialized: 0,
            extend_input: None,
        }
    }

    /// Error span for a node: only when the text being bound is the request's own.
    pub fn err_span(&self, s: Span) -> Span {
        if self.foreign_text > 0 { Span::default() } else { s }
    }

    /// `rel` as a planned query, with the policies this binder applied and the tables it
    /// reached so far (the request's, or a probe's part of it).
    fn planned(&self, rel: Rel, effective: Option<(String, Vec<(Span, String)>)>, validate_permissions: bool) -> Result<PlannedQuery> {
        let mut protected: Vec<String> = self.policies.iter().map(|p| p.table.clone()).collect();
        protected.sort();
        protected.dedup();
        let mut tables = self.tables.clone();
        dedup_in_order(&mut tables);
        Ok(PlannedQuery {
            plan: in_subqueries_outside_filters(rel.plan)?,
            schema: rel.schema,
            effective,
            policies: self.policies.clone(),
            tables,
            protected,
            validate_permissions,
            reads_clock: self.fctx.clock_read(),
        })
    }

    pub fn semantic(&self, msg: impl Into<String>, s: Span) -> PlanError {
        PlanError::Semantic { message: msg.into(), span: (self.foreign_text == 0).then_some(s) }
    }

    pub fn unsupported(&self, feature: impl Into<String>, s: Span) -> PlanError {
        PlanError::Unsupported { feature: feature.into(), span: (self.foreign_text == 0).then_some(s) }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(PlanError::semantic(
                "query nesting too deep (recursive functions, views or policies?)",
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Binds a statement list whose last statement is the result (query or lambda body).
    /// The value of a query parameter given with the request: a string parameter takes the
    /// text as it is; any other type parses it as one literal (`42`, `-1.5`, `2024-01-01` or
    /// `datetime(2024-01-01)`, `1d`, `true`, `dynamic([1])`), never as an expression, so a
    /// parameter's value can reference nothing.
    fn parameter_value(&mut self, name: &str, text: &str, ty: KqlType, span: Span) -> Result<TypedExpr> {
        if ty == KqlType::String {
            return Ok(TypedExpr::new(datafusion::logical_expr::lit(text.to_string()), KqlType::String));
        }
        let message = |why: &str| format!("query parameter '{name}': '{text}' is not a {ty} literal{why}");
        let t = text.trim();
        let wrapped = if t.contains('(') || matches!(ty, KqlType::Long | KqlType::Int | KqlType::Real | KqlType::Bool) {
            t.to_string()
        } else {
            format!("{ty}({t})")
        };
        let expr = match kustodian_parser::parse(&format!("print __value = {wrapped}")) {
            Ok(ast::Request::Query(q)) => match q.statements.as_slice() {
                [st] => match &st.kind {
                    StatementKind::Expr(ast::Expr { kind: ExprKind::Print(cols), .. }) if cols.len() == 1 => Some(cols[0].expr.clone()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        let Some(e) = expr else { return Err(self.semantic(message(""), span)) };
        let literal = match &e.kind {
            ExprKind::Literal(_) => true,
            ExprKind::Unary { op: ast::UnaryOp::Neg, expr } => matches!(expr.kind, ExprKind::Literal(_)),
            _ => false,
        };
        if !literal {
            return Err(self.semantic(message(": a parameter's value must be a single literal"), span));
        }
        // Positions in the value's own text mean nothing to the request: report the declaration.
        match self.bind_scalar(&e, None, &Scope::default()) {
            Ok(v) => Ok(v),
            Err(_) => Err(self.semantic(message(""), span)),
        }
    }

    pub fn bind_statements(&mut self, stmts: &[ast::Statement], scope: &mut Scope, top: bool) -> Result<Rel> {
        let mut result: Option<Rel> = None;
        for (i, st) in stmts.iter().enumerate() {
            let last = i + 1 == stmts.len();
            match &st.kind {
                StatementKind::Let { name, value } => {
                    let b = self.bind_let(&name.name, value, scope)?;
                    scope.push(&name.name, b);
                }
                StatementKind::Set { name, value } => self.bind_set(name, value.as_ref(), top)?,
                StatementKind::DeclareQueryParameters(params) => {
                    for p in params {
                        let ty = match &p.ty {
                            ast::ParamType::Scalar(t) => self.type_name(t)?,
                            ast::ParamType::Tabular(_) => {
                                return Err(self.unsupported("tabular query parameters", p.span));
                            }
                        };
                        let given = self.ctx.parameters.iter().rev().find(|(k, _)| *k == p.name.name).map(|(_, v)| v.clone());
                        let v = match (given, &p.default) {
                            (Some(text), _) => self.parameter_value(&p.name.name, &text, ty, p.span)?,
                            (None, Some(default)) => self.bind_scalar(default, None, scope)?,
                            (None, None) => {
                                return Err(self.semantic(
                                    format!("query parameter '{}' has no value: the request gives none and it has no default", p.name.name),
                                    p.span,
                                ));
                            }
                        };
                        let v = if v.ty == ty { v } else { crate::functions::lower_cast(v, ty)? };
                        scope.push(&p.name.name, Binding::Scalar(v));
                    }
                }
                StatementKind::DeclarePattern { name } => {
                    return Err(self.unsupported(format!("declare pattern '{}'", name.name), st.span));
                }
                StatementKind::RestrictAccess(items) => {
                    if !top {
                        return Err(self.semantic("'restrict access' is only allowed in a query's statements", st.span));
                    }
                    let r = self.bind_restrict(items, scope)?;
                    scope.restrict_to(&r.lets);
                    self.restrict = Some(Rc::new(r));
                }
                StatementKind::AliasDatabase { .. } => {
                    return Err(self.unsupported("alias database", st.span));
                }
                StatementKind::Expr(e) => {
                    if !last {
                        // Kusto runs every tabular statement; Kustodian returns one result table.
                        return Err(self.unsupported("multiple result tables (more than one tabular statement)", st.span));
                    }
                    result = Some(self.bind_tabular(e, scope)?);
                }
            }
        }
        result.ok_or_else(|| PlanError::semantic("the query has no tabular expression to return"))
    }

    fn bind_set(&mut self, name: &ast::Ident, value: Option<&ast::Expr>, top: bool) -> Result<()> {
        let on = match value {
            None => true,
            Some(e) => match &e.kind {
                ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::Bool(b), .. }) => *b,
                ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => s.eq_ignore_ascii_case("true"),
                ExprKind::Ident(i) => i.name.eq_ignore_ascii_case("true"),
                _ => true,
            },
        };
        let lower = name.name.to_ascii_lowercase();
        if NOT_SETTABLE.contains(&lower.as_str()) {
            return Err(self.semantic(
                format!("request property '{}' cannot be set by a set statement; pass it with the request's properties", name.name),
                name.span,
            ));
        }
        if !top {
            return Ok(());
        }
        // A statement in the text may add restrictions to the request, never lift one the
        // caller set in the request's properties.
        match lower.as_str() {
            "query_force_row_level_security" => self.force_rls = on || self.ctx.force_rls,
            "request_block_row_level_security" => self.block_rls = on || self.ctx.block_rls,
            "validatepermissions" => self.validate_permissions = on || self.ctx.validate_permissions,
            "query_now" => {
                if let Some(e) = value {
                    let v = self.bind_scalar(e, None, &Scope::default())?;
                    if let Some(n) = scalar::const_datetime_nanos(&v) {
                        self.fctx.fix_now(n);
                    }
                }
            }
            // Other request options (notruncation, truncationmaxrecords, ...) do not change results here.
            _ => {}
        }
        Ok(())
    }

    fn bind_restrict(&mut self, items: &[ast::Expr], scope: &Scope) -> Result<Restriction> {
        let mut r = Restriction::default();
        for it in items {
            match &it.kind {
                ExprKind::Ident(i) => {
                    if scope.get(&i.name).is_some() {
                        r.lets.insert(i.name.clone());
                    } else {
                        r.tables.push((self.database.clone(), i.name.clone()));
                    }
                }
                ExprKind::Star => {}
                ExprKind::Member { expr, name } => {
                    let db = self.database_of_call(expr)?;
                    r.tables.push((db, name.name.clone()));
                }
                ExprKind::MemberWildcard { expr, pattern } => {
                    let db = self.database_of_call(expr)?;
                    r.tables.push((db, pattern.clone()));
                }
                _ => return Err(self.semantic("'restrict access to' takes let names, database().T, database('x').* or *", it.span)),
            }
        }
        Ok(r)
    }

    /// `database('x')` / `database()` → canonical database name.
    pub fn database_of_call(&self, e: &ast::Expr) -> Result<String> {
        match &e.kind {
            ExprKind::Call { name, args } if name.name == "database" => {
                let db = match args.as_slice() {
                    [] => return Ok(self.database.clone()),
                    [a] => match &a.expr().kind {
                        ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => s.clone(),
                        _ => return Err(self.semantic("database() takes a string literal", e.span)),
                    },
                    _ => return Err(self.semantic("database() takes one argument", e.span)),
                };
                self.catalog
                    .database(&db)?
                    .ok_or_else(|| self.semantic(format!("database '{db}' does not exist"), e.span))
            }
            ExprKind::MemberCall { expr, name, .. } if name.name == "database" => {
                if let ExprKind::Call { name: c, .. } = &expr.kind
                    && c.name == "cluster"
                {
                    return Err(self.unsupported("cross-cluster queries (cluster(...))", e.span));
                }
                Err(self.semantic("expected database('name')", e.span))
            }
            _ => Err(self.semantic("expected database('name')", e.span)),
        }
    }

    pub fn type_name(&self, t: &ast::Ident) -> Result<crate::types::KqlType> {
        crate::types::KqlType::from_name(&t.name).ok_or_else(|| self.semantic(format!("unknown type '{}'", t.name), t.span))
    }

    fn bind_let(&mut self, name: &str, value: &ast::Expr, scope: &Scope) -> Result<Binding> {
        match &value.kind {
            ExprKind::Lambda(l) => Ok(Binding::Lambda(Rc::new(LambdaDef {
                name: name.to_string(),
                params: l.params.clone(),
                body: l.body.clone(),
                scope: scope.clone(),
                restrict: self.restrict.clone(),
                database: None,
                is_view: l.is_view && l.params.is_empty(),
            }))),
            _ if self.is_tabular(value, scope) => Ok(Binding::Tabular(self.bind_tabular(value, scope)?)),
            _ => Ok(Binding::Scalar(self.bind_scalar(value, None, scope)?)),
        }
    }

    /// Whether an expression denotes a table (as opposed to a scalar): its syntax
    /// ([`ast::Expr::tabular_shape`]) and, for a bare name or a call, what the name is bound to
    /// here (a tabular `let`, a lambda or stored function returning a table, a stored table).
    pub fn is_tabular(&self, e: &ast::Expr, scope: &Scope) -> bool {
        match e.tabular_shape() {
            TabularShape::Tabular => true,
            TabularShape::Scalar => false,
            TabularShape::Name(i) => match scope.get(&i.name) {
                Some(Binding::Tabular(_)) => true,
                Some(Binding::Lambda(l)) => l.params.is_empty() && self.lambda_is_tabular(l),
                Some(Binding::Scalar(_)) => false,
                // A refused lookup counts as tabular: binding it then reports the refusal.
                None => match self.catalog.table(&self.database, &i.name) {
                    Ok(Some(_)) | Err(_) => true,
                    Ok(None) => match self.catalog.function(&self.database, &i.name) {
                        Ok(Some(f)) => f.params.is_empty() && body_is_tabular(&f.body),
                        Ok(None) => false,
                        Err(_) => true,
                    },
                },
            },
            TabularShape::Call(name) => match scope.get(&name.name) {
                Some(Binding::Lambda(l)) => self.lambda_is_tabular(l),
                Some(_) => false,
                None => match self.catalog.function(&self.database, &name.name) {
                    Ok(Some(f)) => body_is_tabular(&f.body),
                    Ok(None) => false,
                    Err(_) => true,
                },
            },
        }
    }

    fn lambda_is_tabular(&self, l: &LambdaDef) -> bool {
        let mut scope = l.scope.clone();
        for p in &l.params {
            let b = match &p.ty {
                ast::ParamType::Tabular(_) => Binding::Tabular(Rel::new(
                    LogicalPlanBuilder::empty(false).build().unwrap_or_else(|_| LogicalPlan::default()),
                    KqlSchema::default(),
                )),
                ast::ParamType::Scalar(_) => Binding::Scalar(TypedExpr::new(
                    DfExpr::Literal(datafusion::common::ScalarValue::Null, None),
                    crate::types::KqlType::Long,
                )),
            };
            scope.push(&p.name.name, b);
        }
        for st in &l.body {
            if let StatementKind::Let { name, value } = &st.kind {
                let b = if self.is_tabular(value, &scope) {
                    Binding::Tabular(Rel::new(LogicalPlan::default(), KqlSchema::default()))
                } else {
                    Binding::Scalar(TypedExpr::new(
                        DfExpr::Literal(datafusion::common::ScalarValue::Null, None),
                        crate::types::KqlType::Long,
                    ))
                };
                scope.push(&name.name, b);
            }
        }
        match l.body.last().map(|s| &s.kind) {
            Some(StatementKind::Expr(e)) => self.is_tabular(e, &scope),
            _ => false,
        }
    }

    /// The single table-resolution choke point: every reference to a stored table, however it
    /// is reached, resolves here. Substitutes the table's RLS policy (enabled, or disabled under
    /// force mode) wrapped in a security barrier; inside the policy the table is the raw table.
    pub fn resolve_table(&mut self, database: &str, name: &str, span: Span) -> Result<Rel> {
        let Some(info) = self.catalog.table(database, name)? else {
            return Err(self.unknown_table(database, name, span));
        };
        self.check_restrict_table(&info, span)?;
        if let Some(frame) = self.policy_deps.last_mut() {
            frame.push(PolicyDep { kind: DepKind::Table, name: info.name.clone(), version: String::new() });
        }
        self.tables.push(TableAccess {
            database: info.database.clone(),
            table: info.name.clone(),
            restricted_view_access: info.restricted_view_access,
        });
        let entity = info.entity_name();
        if self.policy_stack.contains(&entity) {
            // The policy's own read of its table: marked, so the verifier can find it in the
            // physical plan and check that its barrier is above it.
            let provider = Arc::new(crate::security::protected::ProtectedTable::new(entity.clone(), Arc::clone(&info.provider)));
            return self.scan_provider(&info, provider);
        }
        let raw = self.scan(&info)?;
        let Some(policy) = info.rls.clone() else {
            return Ok(raw);
        };
        if policy.enabled && self.block_rls {
            return Err(PlanError::Forbidden {
                message: format!(
                    "request_block_row_level_security is set and table {entity} has a row_level_security policy enabled"
                ),
            });
        }
        if !policy.enabled && !self.force_rls {
            return Ok(raw);
        }
        let (rel, used) = self.bind_policy(&info, &policy.query)?;
        check_policy_deps(&entity, &used, policy.functions.as_deref())?;
        if self.foreign_text == 0 {
            self.substitutions.push((span, entity.clone()));
        }
        self.policies.push(AppliedPolicy { table: entity.clone(), query: policy.query.clone(), forced: !policy.enabled });
        Ok(Rel::new(SecurityBarrier::wrap(entity, rel.plan), rel.schema))
    }

    /// Binds a policy query for `info` and checks that it yields exactly the table's schema;
    /// returns it with the stored functions it called. Fails closed: any error here is an
    /// error of the query, never the raw table.
    pub fn bind_policy(&mut self, info: &TableInfo, query: &str) -> Result<(Rel, Vec<PolicyDep>)> {
        let entity = info.entity_name();
        let parsed = kustodian_parser::parse(query).map_err(|e| {
            PlanError::semantic(format!("the row_level_security policy of {entity} is not valid KQL: {e}"))
        })?;
        let ast::Request::Query(q) = parsed else {
            return Err(PlanError::semantic(format!("the row_level_security policy of {entity} is a command, not a query")));
        };
        self.enter()?;
        self.policy_stack.push(entity.clone());
        self.foreign_text += 1;
        let saved_db = std::mem::replace(&mut self.database, info.database.clone());
        let saved_restrict = self.restrict.take();
        // Closed world: a policy sees the request's real clock, whatever `query_now` the
        // request or its text set.
        let saved_fctx = std::mem::replace(&mut self.fctx, FunctionContext::new(self.ctx.now_nanos));
        self.policy_deps.push(Vec::new());
        let r = self.bind_statements(&q.statements, &mut Scope::default(), false);
        let mut used = self.policy_deps.pop().unwrap_or_default();
        used.sort();
        used.dedup();
        let policy_fctx = std::mem::replace(&mut self.fctx, saved_fctx);
        self.fctx.absorb(&policy_fctx);
        self.restrict = saved_restrict;
        self.database = saved_db;
        self.foreign_text -= 1;
        self.policy_stack.pop();
        self.leave();
        let rel = r.map_err(|e| match e {
            PlanError::Forbidden { .. } | PlanError::Internal(_) => e,
            other => PlanError::semantic(format!("the row_level_security policy of {entity} failed to bind: {other}")),
        })?;
        if rel.schema != info.schema {
            return Err(PlanError::semantic(format!(
                "the row_level_security policy of {entity} must return the table's schema {} but returns {}",
                info.schema.to_kql(),
                rel.schema.to_kql()
            )));
        }
        Ok((rel, used))
    }

    fn scan(&self, info: &TableInfo) -> Result<Rel> {
        self.scan_provider(info, Arc::clone(&info.provider))
    }

    fn scan_provider(&self, info: &TableInfo, provider: Arc<dyn datafusion::catalog::TableProvider>) -> Result<Rel> {
        let source = provider_as_source(provider);
        let plan = LogicalPlanBuilder::scan(TableReference::partial(info.database.as_str(), info.name.as_str()), source, None)?
            .build()?;
        // Stored data may carry Arrow types that differ from the KQL schema's (none today);
        // the KQL schema is authoritative.
        Ok(Rel::new(plan, info.schema.clone()))
    }

    fn check_restrict_table(&self, info: &TableInfo, span: Span) -> Result<()> {
        let Some(r) = &self.restrict else { return Ok(()) };
        let ok = r.tables.iter().any(|(db, t)| {
            db.eq_ignore_ascii_case(&info.database) && (t == &info.name || glob_match(t, &info.name))
        });
        if ok {
            Ok(())
        } else {
            Err(PlanError::Semantic {
                message: format!("'{}' is not accessible: the query's 'restrict access to' statement does not list it", info.name),
                span: (self.foreign_text == 0).then_some(span),
            })
        }
    }

    pub fn hidden_name(&self, name: &str, span: Span) -> PlanError {
        self.semantic(format!("'{name}' is not accessible: the query's 'restrict access to' statement does not list it"), span)
    }

    pub fn unknown_table(&self, database: &str, name: &str, span: Span) -> PlanError {
        // Hints only from a database the caller may read (the catalog refuses the others).
        let names = match self.catalog.table_names(database) {
            Ok(names) => names,
            Err(e) => return e,
        };
        let hint = did_you_mean(name, names.iter().map(String::as_str));
        self.semantic(
            format!(
                "unknown table or function '{name}' in database '{database}'{}",
                hint.map(|h| format!("; did you mean '{h}'?")).unwrap_or_default()
            ),
            span,
        )
    }

    /// Binds a call of a lambda or stored function with its arguments.
    pub fn call_lambda(&mut self, l: &LambdaDef, args: &[ast::Arg], outer: &Scope, span: Span, row: Option<&Rel>) -> Result<(Option<Rel>, Option<TypedExpr>)> {
        if args.len() > l.params.len() {
            return Err(self.semantic(
                format!("function '{}' takes {} argument(s) but {} were given", l.name, l.params.len(), args.len()),
                span,
            ));
        }
        let mut scope = l.scope.clone();
        let mut bound: Vec<Option<Binding>> = vec![None; l.params.len()];
        // Named arguments first, so that a positional argument after them takes the first
        // parameter they left (`checkLength(len=3, input)` binds `input` to the second).
        let named_first = args.iter().filter(|a| matches!(a, ast::Arg::Named { .. })).chain(args.iter().filter(|a| matches!(a, ast::Arg::Positional(_))));
        for a in named_first {
            let idx = match a {
                ast::Arg::Positional(_) => bound.iter().position(Option::is_none).ok_or_else(|| {
                    self.semantic(format!("function '{}' takes {} argument(s)", l.name, l.params.len()), span)
                })?,
                ast::Arg::Named { name, .. } => l
                    .params
                    .iter()
                    .position(|p| p.name.name == name.name)
                    .ok_or_else(|| self.semantic(format!("function '{}' has no parameter '{}'", l.name, name.name), span))?,
            };
            let p = &l.params[idx];
            let e = a.expr();
            let b = match &p.ty {
                ast::ParamType::Tabular(_) => Binding::Tabular(self.bind_tabular(e, outer)?),
                ast::ParamType::Scalar(t) => {
                    let v = self.bind_scalar(e, row, outer)?;
                    let ty = self.type_name(t)?;
                    Binding::Scalar(if v.ty == ty || !v.ty.is_numeric() || !ty.is_numeric() { v } else { crate::functions::lower_cast(v, ty)? })
                }
            };
            bound[idx] = Some(b);
        }
        for (i, p) in l.params.iter().enumerate() {
            let b = match bound[i].take() {
                Some(b) => b,
                None => match &p.default {
                    Some(d) => Binding::Scalar(self.bind_scalar(d, None, &l.scope)?),
                    None => {
                        return Err(self.semantic(
                            format!("function '{}': missing argument for parameter '{}'", l.name, p.name.name),
                            span,
                        ));
                    }
                },
            };
            scope.push(&p.name.name, b);
        }
        self.enter()?;
        let saved_restrict = std::mem::replace(&mut self.restrict, l.restrict.clone());
        let saved_db = l.database.as_ref().map(|db| std::mem::replace(&mut self.database, db.clone()));
        if l.database.is_some() {
            self.foreign_text += 1;
        }
        let r = self.bind_body(&l.body, &mut scope, row);
        if l.database.is_some() {
            self.foreign_text -= 1;
        }
        if let Some(db) = saved_db {
            self.database = db;
        }
        self.restrict = saved_restrict;
        self.leave();
        r
    }

    /// A lambda body: `let`s, then a tabular or scalar result.
    fn bind_body(&mut self, body: &[ast::Statement], scope: &mut Scope, row: Option<&Rel>) -> Result<(Option<Rel>, Option<TypedExpr>)> {
        let Some((last, lets)) = body.split_last() else {
            return Err(PlanError::semantic("function body is empty"));
        };
        for st in lets {
            match &st.kind {
                StatementKind::Let { name, value } => {
                    let b = self.bind_let(&name.name, value, scope)?;
                    scope.push(&name.name, b);
                }
                _ => return Err(self.semantic("only 'let' statements may precede a function's result", st.span)),
            }
        }
        match &last.kind {
            StatementKind::Expr(e) if self.is_tabular(e, scope) => Ok((Some(self.bind_tabular(e, scope)?), None)),
            StatementKind::Expr(e) => Ok((None, Some(self.bind_scalar(e, row, scope)?))),
            _ => Err(self.semantic("a function body must end with an expression", last.span)),
        }
    }

    /// A stored function as a lambda definition, if visible.
    pub fn stored_function(&mut self, name: &str, span: Span) -> Result<Option<Rc<LambdaDef>>> {
        if let Some(r) = &self.restrict
            && !r.lets.contains(name)
            && !r.tables.iter().any(|(db, t)| db.eq_ignore_ascii_case(&self.database) && glob_match(t, name))
        {
            return Err(self.semantic(
                format!("'{name}' is not accessible: the query's 'restrict access to' statement does not list it"),
                span,
            ));
        }
        let Some(f) = self.catalog.function(&self.database, name)? else { return Ok(None) };
        if let Some(frame) = self.policy_deps.last_mut() {
            frame.push(PolicyDep { kind: DepKind::Function, name: f.name.clone(), version: f.version.clone() });
        }
        Ok(Some(Rc::new(LambdaDef {
            name: f.name.clone(),
            params: f.params,
            body: f.body,
            scope: Scope::default(),
            restrict: None,
            database: Some(f.database),
            is_view: false,
        })))
    }

    /// Deduplicates a column name against `taken` the way Kusto does (`x`, `x1`, `x2`, ...).
    pub fn unique_name(base: &str, taken: &[String]) -> String {
        if !taken.iter().any(|t| t == base) {
            return base.to_string();
        }
        let mut i = 1;
        loop {
            let cand = format!("{base}{i}");
            if !taken.iter().any(|t| t == &cand) {
                return cand;
            }
            i += 1;
        }
    }
}

/// Whether a stored function's body returns a table, without binding it: its result
/// expression is a table by its syntax or a bare name (scalar functions end in a scalar
/// expression over their parameters); a call of another function counts as scalar.
fn body_is_tabular(body: &[ast::Statement]) -> bool {
    match body.last().map(|s| &s.kind) {
        Some(StatementKind::Expr(e)) => matches!(e.tabular_shape(), TabularShape::Tabular | TabularShape::Name(_)),
        _ => false,
    }
}

/// `*` wildcard matching on names (`T*`, `*_log`, `a*b`).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i + 1 == parts.len() {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

/// The closest name by edit distance, if close enough to be a likely typo.
pub(crate) fn did_you_mean<'n>(name: &str, candidates: impl Iterator<Item = &'n str>) -> Option<String> {
    let lower = name.to_lowercase();
    candidates
        .map(|c| (levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `x in (subquery)` outside a filter (`extend b = x in (T)`, `summarize countif(x in (T))`):
/// DataFusion only turns an `IN` subquery into a join inside a filter, and cannot plan it
/// anywhere else. There it becomes a membership test in the subquery's distinct values, read
/// once as a scalar subquery: `array_has((T | summarize make_set(c)), x)`.
fn in_subqueries_outside_filters(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::expr::InSubquery;
    use datafusion::logical_expr::{ExprFunctionExt, Subquery, not};
    // Most plans have none: look without cloning any expression before rewriting.
    let mut found = false;
    plan.apply_with_subqueries(|p| {
        if matches!(p, LogicalPlan::Filter(_)) {
            return Ok(TreeNodeRecursion::Continue);
        }
        p.apply_expressions(|e| {
            found = e.exists(|x| Ok(matches!(x, DfExpr::InSubquery(_))))?;
            Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })
    })?;
    if !found {
        return Ok(plan);
    }
    let rewritten = plan.transform_up_with_subqueries(|node| {
        if matches!(node, LogicalPlan::Filter(_)) {
            return Ok(Transformed::no(node));
        }
        let t = node.map_expressions(|e| {
            e.transform_up(|x| {
                let DfExpr::InSubquery(InSubquery { expr, subquery, negated }) = x else {
                    return Ok(Transformed::no(x));
                };
                let inner = Arc::unwrap_or_clone(subquery.subquery);
                let Some(item) = inner.schema().columns().into_iter().next() else {
                    return datafusion::common::internal_err!("an 'in' subquery without a column");
                };
                let set = datafusion::functions_aggregate::expr_fn::array_agg(DfExpr::Column(item)).distinct().build()?;
                let values = LogicalPlanBuilder::from(inner).aggregate(Vec::<DfExpr>::new(), vec![set.alias("__in_set")])?.build()?;
                let values = DfExpr::ScalarSubquery(Subquery { subquery: Arc::new(values), outer_ref_columns: subquery.outer_ref_columns, spans: subquery.spans });
                let has = datafusion::functions_nested::expr_fn::array_has(values, *expr);
                Ok(Transformed::yes(if negated { not(has) } else { has }))
            })
        })?;
        if t.transformed { t.map_data(|p| p.recompute_schema()) } else { Ok(t) }
    })?;
    Ok(rewritten.data)
}

/// Plans `ops` over an input relation (a management command's result piped into operators).
pub fn plan_pipe(catalog: &dyn Catalog, ctx: &RequestContext, input: LogicalPlan, schema: KqlSchema, ops: &[ast::Operator]) -> Result<PlannedQuery> {
    let mut b = Binder::new(catalog, ctx);
    let mut rel = Rel::new(input, schema);
    let scope = Scope::default();
    for op in ops {
        rel = b.bind_operator(rel, op, &scope)?;
    }
    b.planned(rel, None, false)
}

/// Binds a policy query for `table` the way queries will run it, to validate it before it is
/// stored: it must parse, bind, and return exactly the table's schema.
/// Returns the tables it reads and the stored functions it calls, which the policy is then
/// pinned to (see [`RlsPolicy::functions`]).
pub fn validate_policy(catalog: &dyn Catalog, ctx: &RequestContext, table: &TableInfo, query: &str) -> Result<(Vec<TableAccess>, Vec<PolicyDep>)> {
    let mut b = Binder::new(catalog, ctx);
    b.database = table.database.clone();
    b.force_rls = false;
    b.block_rls = false;
    let (_, used) = b.bind_policy(table, query)?;
    Ok((b.tables, used))
}

/// A policy binds only what it was validated with: the same stored functions in the same
/// versions, and tables only under names that were tables. A function created, altered or
/// re-created since, or a table created under a name the policy used for something else (by
/// anyone), fails the query instead of changing what the policy computes.
fn check_policy_deps(entity: &str, used: &[PolicyDep], pinned: Option<&[PolicyDep]>) -> Result<()> {
    for d in used {
        let ok = match pinned {
            Some(p) => p.contains(d),
            // Stored before dependencies were recorded: tables as they are, no function.
            None => d.kind == DepKind::Table,
        };
        if !ok {
            let what = match d.kind {
                DepKind::Function => "stored function",
                DepKind::Table => "table",
            };
            return Err(PlanError::semantic(format!(
                "the row_level_security policy of {entity} uses {what} '{}', which was created or changed after the policy was \
                 validated; a Table Admin must validate the policy again (.alter ... policy row_level_security)",
                d.name
            )));
        }
    }
    Ok(())
}
