//! Tabular sources: names, `database().T`, `table()`, `datatable`, `print`, `range`, `union`,
//! function calls and views; and the effective query text with policies substituted.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue, UnnestOptions};
use datafusion::logical_expr::{Expr as DfExpr, ExprSchemable, LogicalPlanBuilder, cast, lit, when};
use kustodian_parser::ast::{self, ExprKind, Span};

use super::{Binder, Binding, Rel, Scope, glob_match};
use crate::error::{PlanError, Result};
use crate::functions::{TypedExpr, lower_cast};
use crate::types::{KqlColumn, KqlSchema, KqlType};

impl<'a> Binder<'a> {
    /// Binds a pipeline. A name bound by `| as Name` is visible to the operators after it
    /// (`T | as X | join (X | ...) on k`); the returned scope holds those names, if any.
    fn bind_chain(&mut self, e: &ast::Expr, scope: &Scope) -> Result<(Rel, Option<Scope>)> {
        let ExprKind::Pipe { input, op } = &e.kind else {
            return Ok((self.bind_tabular(e, scope)?, None));
        };
        // `make-graph ... partitioned-by c (operators)`: the graph operators apply inside.
        if let ast::OperatorKind::MakeGraph(g) = &op.kind
            && let Some((_, ops)) = &g.partitioned_by
        {
            let (rel, named) = self.bind_chain(input, scope)?;
            let s = named.as_ref().unwrap_or(scope);
            let mut graph = self.bind_make_graph(rel, g, s, op.span)?;
            let mut rest = ops.as_slice();
            while let [first, tail @ ..] = rest
                && let ast::OperatorKind::GraphMarkComponents(params) = &first.kind
            {
                graph = self.mark_components(graph, params, s, first.span)?;
                rest = tail;
            }
            let [first, tail @ ..] = rest else {
                return Err(self.semantic("make-graph partitioned-by needs a graph operator in its parentheses", op.span));
            };
            let mut out = self.graph_operator(graph, first, s)?;
            for o in tail {
                out = self.bind_operator(out, o, s)?;
            }
            return Ok((out, named));
        }
        // A graph operator reads the graph `make-graph` builds of its input.
        if let ast::OperatorKind::GraphMatch(_) | ast::OperatorKind::GraphShortestPaths(_) | ast::OperatorKind::GraphToTable(_) = &op.kind {
            let (graph, named) = self.bind_graph(input, scope, op.span)?;
            let s = named.as_ref().unwrap_or(scope);
            let out = self.graph_operator(graph, op, s)?;
            return Ok((out, named));
        }
        let (rel, named) = self.bind_chain(input, scope)?;
        let s = named.as_ref().unwrap_or(scope);
        let out = self.bind_operator(rel, op, s)?;
        if let ast::OperatorKind::As { name, .. } = &op.kind {
            let named = s.with(&name.name, Binding::Tabular(out.clone()));
            return Ok((out, Some(named)));
        }
        Ok((out, named))
    }

    /// A graph operator (`graph-match`, `graph-shortest-paths`, `graph-to-table`) over a graph.
    fn graph_operator(&mut self, graph: super::graph::Graph, op: &ast::Operator, s: &Scope) -> Result<Rel> {
        match &op.kind {
            ast::OperatorKind::GraphMatch(m) => self.plan_graph_match(graph, m, None, s, op.span),
            ast::OperatorKind::GraphShortestPaths(m) => {
                let mut all = false;
                for p in &m.params {
                    match &p.value.kind {
                        ExprKind::Ident(i) if i.name == "any" || i.name == "all" => all = i.name == "all",
                        _ => return Err(self.semantic("graph-shortest-paths: output must be any or all", p.span)),
                    }
                }
                self.plan_graph_match(graph, m, Some(all), s, op.span)
            }
            ast::OperatorKind::GraphToTable(items) => self.plan_graph_to_table(graph, items, s, op.span),
            _ => Err(self.semantic("expected a graph operator (graph-match, graph-shortest-paths, graph-to-table, graph-mark-components)", op.span)),
        }
    }

    /// Binds the graph a graph operator reads: `edges | make-graph ...`, maybe followed by
    /// `graph-mark-components`.
    fn bind_graph(&mut self, e: &ast::Expr, scope: &Scope, at: Span) -> Result<(super::graph::Graph, Option<Scope>)> {
        let no_graph = || self.semantic("a graph operator needs a graph: make-graph first", at);
        let ExprKind::Pipe { input, op } = &e.kind else {
            return Err(no_graph());
        };
        match &op.kind {
            ast::OperatorKind::MakeGraph(g) => {
                let (rel, named) = self.bind_chain(input, scope)?;
                let s = named.as_ref().unwrap_or(scope);
                let graph = self.bind_make_graph(rel, g, s, op.span)?;
                Ok((graph, named))
            }
            ast::OperatorKind::GraphMarkComponents(params) => {
                let (graph, named) = self.bind_graph(input, scope, op.span)?;
                let s = named.as_ref().unwrap_or(scope);
                let graph = self.mark_components(graph, params, s, op.span)?;
                Ok((graph, named))
            }
            _ => Err(no_graph()),
        }
    }

    /// Binds an expression that must denote a table.
    pub fn bind_tabular(&mut self, e: &ast::Expr, scope: &Scope) -> Result<Rel> {
        match &e.kind {
            ExprKind::Pipe { .. } => Ok(self.bind_chain(e, scope)?.0),
            ExprKind::Paren(inner) => self.bind_tabular(inner, scope),
            ExprKind::Ident(i) => self.bind_name(&i.name, e.span, scope),
            ExprKind::Member { expr, name } => {
                let db = self.database_of_call(expr)?;
                self.resolve_table(&db, &name.name, e.span)
            }
            ExprKind::Call { name, args } => self.bind_tabular_call(name, args, e.span, scope),
            ExprKind::Datatable { schema, values } => self.bind_datatable(schema, values, scope, e.span),
            ExprKind::Print(items) => self.bind_print(items, scope),
            ExprKind::Range { name, from, to, step } => self.bind_range(name, from, to, step, scope, e.span),
            ExprKind::Union(u) => self.bind_union(None, u, scope, e.span),
            ExprKind::Find(_) => Err(self.unsupported("the 'find' operator", e.span)),
            ExprKind::Search(s) => self.plan_search(None, s, scope, e.span),
            ExprKind::Evaluate(ev) => Err(self.unsupported(format!("evaluate {}", call_name(&ev.call)), e.span)),
            ExprKind::Externaldata { .. } => Err(self.unsupported("externaldata (Kustodian reads no external storage)", e.span)),
            ExprKind::MemberCall { .. } => Err(self.semantic("expected a table: database('x').T", e.span)),
            _ => Err(self.semantic("expected a tabular expression", e.span)),
        }
    }

    /// A bare name in tabular position: `let`, `as`, view, stored table, parameterless function.
    fn bind_name(&mut self, name: &str, span: Span, scope: &Scope) -> Result<Rel> {
        match scope.get(name).cloned() {
            Some(Binding::Tabular(rel)) => return Ok(rel),
            Some(Binding::Lambda(l)) => {
                let (rel, _) = self.call_lambda(&l, &[], scope, span, None)?;
                return rel.ok_or_else(|| self.semantic(format!("'{name}' is a scalar function, not a table"), span));
            }
            Some(Binding::Scalar(_)) => return Err(self.semantic(format!("'{name}' is a scalar, not a table"), span)),
            None if scope.is_hidden(name) => return Err(self.hidden_name(name, span)),
            None => {}
        }
        if self.catalog.table(&self.database.clone(), name)?.is_some() {
            let db = self.database.clone();
            return self.resolve_table(&db, name, span);
        }
        if let Some(f) = self.stored_function(name, span)? {
            let (rel, _) = self.call_lambda(&f, &[], scope, span, None)?;
            return rel.ok_or_else(|| self.semantic(format!("'{name}' is a scalar function, not a table"), span));
        }
        let db = self.database.clone();
        Err(self.unknown_table(&db, name, span))
    }

    fn bind_tabular_call(&mut self, name: &ast::Ident, args: &[ast::Arg], span: Span, scope: &Scope) -> Result<Rel> {
        match name.name.as_str() {
            "table" => {
                let Some(first) = args.first() else {
                    return Err(self.semantic("table() takes a table name", span));
                };
                let tname = match &first.expr().kind {
                    ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => s.clone(),
                    _ => {
                        let v = self.bind_scalar(first.expr(), None, scope)?;
                        match super::scalar::const_string(&v) {
                            Some(s) => s,
                            None => return Err(self.semantic("table() takes a constant string", span)),
                        }
                    }
                };
                // `table('T')` may also name a `let` tabular value or a view.
                if let Some(b) = scope.get(&tname).cloned() {
                    return match b {
                        Binding::Tabular(r) => Ok(r),
                        Binding::Lambda(l) => self.call_lambda(&l, &[], scope, span, None)?.0.ok_or_else(|| self.semantic(format!("'{tname}' is not a table"), span)),
                        Binding::Scalar(_) => Err(self.semantic(format!("'{tname}' is not a table"), span)),
                    };
                }
                let db = self.database.clone();
                self.resolve_table(&db, &tname, span)
            }
            "materialize" => match args {
                [a] => {
                    let rel = self.bind_tabular(a.expr(), scope)?;
                    Ok(self.materialize(rel))
                }
                _ => Err(self.semantic("materialize() takes one tabular expression", span)),
            },
            "materialized_view" => self.bind_materialized_view(args, span, scope),
            "external_table" => Err(self.unsupported("external tables", span)),
            "database" => Err(self.semantic("database() must be followed by a table: database('db').T", span)),
            "cluster" => Err(self.unsupported("cross-cluster queries (cluster(...))", span)),
            n => {
                if let Some(Binding::Lambda(l)) = scope.get(n).cloned() {
                    let (rel, _) = self.call_lambda(&l, args, scope, span, None)?;
                    return rel.ok_or_else(|| self.semantic(format!("'{n}' returns a scalar, not a table"), span));
                }
                if let Some(f) = self.stored_function(n, span)? {
                    let (rel, _) = self.call_lambda(&f, args, scope, span, None)?;
                    return rel.ok_or_else(|| self.semantic(format!("'{n}' returns a scalar, not a table"), span));
                }
                Err(self.semantic(format!("unknown tabular function '{n}'"), span))
            }
        }
    }

    fn bind_datatable(&mut self, schema: &[ast::ColumnDecl], values: &[ast::Expr], scope: &Scope, span: Span) -> Result<Rel> {
        if schema.is_empty() {
            return Err(self.semantic("datatable needs at least one column", span));
        }
        if !values.len().is_multiple_of(schema.len()) {
            return Err(self.semantic(
                format!("datatable has {} columns but {} values, not a multiple", schema.len(), values.len()),
                span,
            ));
        }
        let mut cols = Vec::new();
        for c in schema {
            cols.push(KqlColumn::new(c.name.name.clone(), self.type_name(&c.ty)?));
        }
        let kschema = KqlSchema::new(cols);
        if values.is_empty() {
            let df = datafusion::common::DFSchema::try_from(kschema.arrow_schema().as_ref().clone())?;
            let plan = datafusion::logical_expr::LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: std::sync::Arc::new(df),
            });
            return Ok(Rel::new(plan, kschema));
        }
        let mut rows = Vec::new();
        for chunk in values.chunks(schema.len()) {
            let mut row = Vec::new();
            for (v, c) in chunk.iter().zip(&kschema.columns) {
                let te = self.bind_scalar(v, None, scope)?;
                row.push(self.coerce_literal(te, c.ty, v.span)?);
            }
            rows.push(row);
        }
        // Values with the declared names and exact types, every value cast where its type
        // differs: `LogicalPlanBuilder::values` would name the columns `column1..n` and need a
        // renaming projection on top, one more operator to plan and run.
        let none = datafusion::common::DFSchema::empty();
        let mut fields = Vec::with_capacity(kschema.columns.len());
        for (j, c) in kschema.columns.iter().enumerate() {
            let ty = c.ty.arrow_type();
            let mut nullable = false;
            for row in &mut rows {
                let v = std::mem::take(&mut row[j]);
                let v = if v.get_type(&none)? == ty { v } else { cast(v, ty.clone()) };
                nullable |= v.nullable(&none)?;
                row[j] = v;
            }
            fields.push(datafusion::arrow::datatypes::Field::new(c.name.clone(), ty, nullable));
        }
        let schema = datafusion::common::DFSchema::from_unqualified_fields(fields.into(), Default::default())?;
        let plan = datafusion::logical_expr::LogicalPlan::Values(datafusion::logical_expr::Values { schema: std::sync::Arc::new(schema), values: rows });
        Ok(Rel::new(plan, kschema))
    }

    /// A datatable / typed value: same type, or converted the way Kusto converts literals.
    pub fn coerce_literal(&self, te: TypedExpr, ty: KqlType, span: Span) -> Result<DfExpr> {
        if te.ty == ty {
            return Ok(cast(te.expr, ty.arrow_type()));
        }
        if let DfExpr::Literal(ScalarValue::Null, _) = te.expr {
            return Ok(lit(ScalarValue::try_from(&ty.arrow_type())?));
        }
        let ok = matches!(
            (te.ty, ty),
            (KqlType::Long | KqlType::Int | KqlType::Real | KqlType::Decimal, KqlType::Long | KqlType::Int | KqlType::Real | KqlType::Decimal)
                | (_, KqlType::Dynamic)
                | (KqlType::String, KqlType::Guid)
        );
        if !ok {
            return Err(self.semantic(format!("a value of type {} cannot be stored in a column of type {}", te.ty, ty), span));
        }
        Ok(cast(lower_cast(te, ty)?.expr, ty.arrow_type()))
    }

    fn bind_print(&mut self, items: &[ast::NamedExpr], scope: &Scope) -> Result<Rel> {
        let mut one = Rel::new(LogicalPlanBuilder::empty(true).build()?, KqlSchema::default());
        let mut exprs = Vec::new();
        let mut cols: Vec<KqlColumn> = Vec::new();
        for (i, it) in items.iter().enumerate() {
            if let Some((with_bag, fields)) = self.multi_columns(one.clone(), it, scope)? {
                one = with_bag;
                for (name, v) in fields {
                    let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
                    let name = Binder::unique_name(&name, &taken);
                    exprs.push(v.expr.alias(name.clone()));
                    cols.push(KqlColumn::new(name, v.ty));
                }
                continue;
            }
            let names = self.output_names(it, &format!("print_{i}"))?;
            let v = self.bind_scalar(&it.expr, Some(&one), scope)?;
            if names.len() != 1 {
                return Err(self.unsupported("tuple names in print", it.span));
            }
            let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            let name = Binder::unique_name(&names[0], &taken);
            exprs.push(v.expr.alias(name.clone()));
            cols.push(KqlColumn::new(name, v.ty));
        }
        let plan = super::project(one.plan.clone(), exprs)?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    fn output_names(&self, it: &ast::NamedExpr, default: &str) -> Result<Vec<String>> {
        if it.names.is_empty() {
            Ok(vec![default.to_string()])
        } else {
            Ok(it.names.iter().map(|n| n.name.clone()).collect())
        }
    }

    fn bind_range(&mut self, name: &ast::Ident, from: &ast::Expr, to: &ast::Expr, step: &ast::Expr, scope: &Scope, span: Span) -> Result<Rel> {
        let from = self.bind_scalar(from, None, scope)?;
        let to = self.bind_scalar(to, None, scope)?;
        let step = self.bind_scalar(step, None, scope)?;
        let (f, t, s) = match (
            super::scalar::const_i128(&from),
            super::scalar::const_i128(&to),
            super::scalar::const_i128(&step),
        ) {
            (Some(f), Some(t), Some(s)) => (f, t, s),
            _ => {
                if from.ty == KqlType::Real || to.ty == KqlType::Real || step.ty == KqlType::Real {
                    return self.bind_range_real(name, &from, &to, &step, span);
                }
                if let Some(rel) = self.bind_range_runtime(name, &from, &to, &step)? {
                    return Ok(rel);
                }
                return Err(self.semantic("range bounds and step must be constants", span));
            }
        };
        if s == 0 {
            return Err(self.semantic("range step must not be zero", span));
        }
        let count = if (s > 0 && t < f) || (s < 0 && t > f) { 0 } else { (t - f) / s + 1 };
        if count > 100_000_000 {
            return Err(self.semantic(format!("range would produce {count} rows; the limit is 100000000"), span));
        }
        let ty = match (from.ty, step.ty) {
            (KqlType::Datetime, _) => KqlType::Datetime,
            (KqlType::Timespan, _) => KqlType::Timespan,
            (KqlType::Int, KqlType::Int) if to.ty == KqlType::Int => KqlType::Long,
            _ => KqlType::Long,
        };
        let plan = range_plan(f as i64, s as i64, count as i64, &name.name, ty)?;
        Ok(Rel::new(plan, KqlSchema::new(vec![KqlColumn::new(name.name.clone(), ty)])))
    }

    fn bind_range_real(&mut self, name: &ast::Ident, from: &TypedExpr, to: &TypedExpr, step: &TypedExpr, span: Span) -> Result<Rel> {
        let (Some(f), Some(t), Some(s)) = (
            super::scalar::const_f64(from),
            super::scalar::const_f64(to),
            super::scalar::const_f64(step),
        ) else {
            return Err(self.semantic("range bounds and step must be constants", span));
        };
        if s == 0.0 || !s.is_finite() {
            return Err(self.semantic("range step must be a non-zero number", span));
        }
        let n = ((t - f) / s).floor();
        let count = if n < 0.0 { 0 } else { n as i64 + 1 };
        if count > 100_000_000 {
            return Err(self.semantic("range would produce too many rows", span));
        }
        let base = range_plan(0, 1, count, "__i", KqlType::Long)?;
        let e = (lit(f) + cast(DfExpr::Column(datafusion::common::Column::new_unqualified("__i")), datafusion::arrow::datatypes::DataType::Float64) * lit(s))
            .alias(name.name.clone());
        let plan = LogicalPlanBuilder::from(base).project(vec![e])?.build()?;
        Ok(Rel::new(plan, KqlSchema::new(vec![KqlColumn::new(name.name.clone(), KqlType::Real)])))
    }

    /// A relation computed once however many times the query reads it (`materialize()`), with
    /// the next number of the query's materialized expressions.
    pub(crate) fn materialize(&mut self, rel: Rel) -> Rel {
        self.materialized += 1;
        Rel { plan: crate::materialize_exec::MaterializeNode::plan(rel.plan, self.materialized), ..rel }
    }

    /// One leg of a `union`. With `isfuzzy=true`, a leg that names a table, function or
    /// database that does not exist, or one the caller may not read, is left out (`None`), as
    /// Kusto reduces a fuzzy union to the references that exist and are accessible; the two
    /// cases are treated alike, so leaving a leg out says nothing about what the caller may not
    /// see. Any other error in a leg is still an error.
    fn bind_union_leg(&mut self, t: &ast::Expr, scope: &Scope, fuzzy: bool) -> Result<Option<Rel>> {
        let (subs, tables, policies) = (self.substitutions.len(), self.tables.len(), self.policies.len());
        match self.bind_tabular(t, scope) {
            Ok(rel) => Ok(Some(rel)),
            Err(e) if fuzzy && unresolved(&e) => {
                self.substitutions.truncate(subs);
                self.tables.truncate(tables);
                self.policies.truncate(policies);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `union` as a source (`input` None) or operator.
    pub fn bind_union(&mut self, input: Option<Rel>, u: &ast::Union, scope: &Scope, span: Span) -> Result<Rel> {
        let mut kind_inner = false;
        let mut withsource: Option<String> = None;
        let mut fuzzy = false;
        for p in &u.params {
            match p.name.name.to_ascii_lowercase().as_str() {
                "kind" => kind_inner = param_word(&p.value).is_some_and(|w| w.eq_ignore_ascii_case("inner")),
                "withsource" => withsource = param_word(&p.value),
                "isfuzzy" => fuzzy = param_word(&p.value).is_some_and(|w| w.eq_ignore_ascii_case("true")),
                n if n.starts_with("hint.") => {}
                _ => return Err(self.semantic(format!("unknown union parameter '{}'", p.name.name), p.span)),
            }
        }
        let mut legs: Vec<(String, Rel)> = Vec::new();
        if let Some(rel) = input {
            legs.push((rel.alias.clone().unwrap_or_else(|| "union_arg0".to_string()), rel));
        }
        for t in &u.tables {
            match &t.kind {
                ExprKind::Wildcard(_) | ExprKind::Star => {
                    // `union *` is the pattern every table name matches.
                    let pat = match &t.kind {
                        ExprKind::Wildcard(p) => p.as_str(),
                        _ => "*",
                    };
                    let db = self.database.clone();
                    let mut names: Vec<String> = self.catalog.table_names(&db)?.into_iter().filter(|n| glob_match(pat, n)).collect();
                    names.sort();
                    // The tables the pattern stands for, for the effective query.
                    let mut matched = Vec::new();
                    for n in names {
                        // A pattern reaches only the tables the request may read: the catalog
                        // refuses those the caller may not read (restricted view access), and a
                        // `restrict access` statement hides those it does not list. Naming such
                        // a table is still an error; matching it is not.
                        let info = match self.catalog.table(&db, &n) {
                            Ok(Some(info)) => info,
                            Ok(None) | Err(PlanError::Forbidden { .. }) => continue,
                            Err(e) => return Err(e),
                        };
                        // Materialized views are read by name, never through a table pattern.
                        if info.materialized_view || self.check_restrict_table(&info, t.span).is_err() {
                            continue;
                        }
                        let subs = self.substitutions.len();
                        let rel = self.resolve_table(&db, &n, t.span)?;
                        // Recorded below for every matched table, policy or not: the pattern's
                        // one span stands for all of them.
                        self.substitutions.truncate(subs);
                        matched.push(info.entity_name());
                        legs.push((n, rel));
                    }
                    if self.foreign_text == 0 {
                        self.substitutions.extend(matched.into_iter().map(|e| (t.span, e)));
                    }
                    // A pattern reaches the query's views too (`let View_1 = view () {...}`),
                    // as the union reference's example counts them.
                    for (name, view) in scope.views_matching(pat) {
                        if let (Some(rel), _) = self.call_lambda(&view, &[], scope, t.span, None)? {
                            legs.push((name, rel));
                        }
                    }
                }
                _ => {
                    let Some(rel) = self.bind_union_leg(t, scope, fuzzy)? else { continue };
                    let name = match &t.kind {
                        ExprKind::Ident(i) => i.name.clone(),
                        ExprKind::Member { name, .. } => name.name.clone(),
                        _ => as_name(t).unwrap_or_else(|| format!("union_arg{}", legs.len())),
                    };
                    legs.push((name, rel));
                }
            }
        }
        if legs.is_empty() {
            let msg = if fuzzy { "union isfuzzy=true: none of the union's tables can be read" } else { "union has no tables" };
            return Err(self.semantic(msg, span));
        }
        // Output columns: outer = all columns by name in order of appearance; inner = common.
        // A name that comes with several types becomes one column per type, `x_long`,
        // `x_int` (Kusto's rule), each filled from the legs where it has that type.
        let mut names: Vec<(String, Vec<KqlType>)> = Vec::new();
        for (_, rel) in &legs {
            for c in &rel.schema.columns {
                match names.iter_mut().find(|(n, _)| *n == c.name) {
                    Some((_, tys)) if !tys.contains(&c.ty) => tys.push(c.ty),
                    Some(_) => {}
                    None => names.push((c.name.clone(), vec![c.ty])),
                }
            }
        }
        // (output column, source name, source type)
        let mut out: Vec<(KqlColumn, String, KqlType)> = Vec::new();
        let plain: Vec<String> = names.iter().filter(|(_, t)| t.len() == 1).map(|(n, _)| n.clone()).collect();
        for (name, tys) in &names {
            if tys.len() == 1 {
                out.push((KqlColumn::new(name.clone(), tys[0]), name.clone(), tys[0]));
                continue;
            }
            for ty in tys {
                let mut taken: Vec<String> = out.iter().map(|(c, _, _)| c.name.clone()).collect();
                taken.extend(plain.iter().cloned());
                let col = Binder::unique_name(&format!("{name}_{}", ty.name()), &taken);
                out.push((KqlColumn::new(col, *ty), name.clone(), *ty));
            }
        }
        let has = |rel: &Rel, name: &str, ty: KqlType| rel.schema.get(name).is_some_and(|c| c.ty == ty);
        if kind_inner {
            out.retain(|(_, n, t)| legs.iter().all(|(_, r)| has(r, n, *t)));
        }
        let mut final_cols = Vec::new();
        if let Some(src) = &withsource {
            final_cols.push(KqlColumn::new(src.clone(), KqlType::String));
        }
        final_cols.extend(out.iter().map(|(c, _, _)| c.clone()));
        let mut plans = Vec::with_capacity(legs.len());
        for (leg_name, rel) in &legs {
            let mut exprs = Vec::new();
            if let Some(src) = &withsource {
                exprs.push(lit(leg_name.clone()).alias(src.clone()));
            }
            for (c, name, ty) in &out {
                let e = if has(rel, name, *ty) {
                    rel.col(name)?.expr
                } else if c.ty == KqlType::String {
                    // Strings are never null in Kusto: a missing string column is empty.
                    lit("")
                } else {
                    lit(ScalarValue::try_from(&c.ty.arrow_type())?)
                };
                exprs.push(cast(e, c.ty.arrow_type()).alias(c.name.clone()));
            }
            plans.push(super::project(rel.plan.clone(), exprs)?);
        }
        if plans.is_empty() {
            return Err(PlanError::Internal("empty union".into()));
        }
        let plan = super::union_all(plans)?;
        Ok(Rel::new(plan, KqlSchema::new(final_cols)))
    }
}

/// `start + i * step` for `i in 0..count`, as an unnest of a generated series.
fn range_plan(start: i64, step: i64, count: i64, name: &str, ty: KqlType) -> Result<datafusion::logical_expr::LogicalPlan> {
    let table = std::sync::Arc::new(crate::range_table::RangeTable::new(count));
    let plan = LogicalPlanBuilder::scan("range", datafusion::datasource::provider_as_source(table), None)?.build()?;
    let i = DfExpr::Column(datafusion::common::Column::new_unqualified("__series"));
    let v = lit(start) + i * lit(step);
    let v = match ty {
        KqlType::Datetime | KqlType::Timespan => cast(v, ty.arrow_type()),
        _ => v,
    };
    Ok(LogicalPlanBuilder::from(plan).project(vec![v.alias(name.to_string())])?.build()?)
}

/// The `as` name a union leg ends with (`(T | as Name)`), which `withsource` reports.
fn as_name(e: &ast::Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Paren(inner) => as_name(inner),
        ExprKind::Pipe { op, .. } => match &op.kind {
            ast::OperatorKind::As { name, .. } => Some(name.name.clone()),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn param_word(e: &ast::Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Ident(i) => Some(i.name.clone()),
        ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => Some(s.clone()),
        ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::Bool(b), .. }) => Some(b.to_string()),
        ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::Long(n), .. }) => Some(n.to_string()),
        _ => None,
    }
}

fn call_name(e: &ast::Expr) -> String {
    match &e.kind {
        ExprKind::Call { name, .. } => name.name.clone(),
        _ => "plugin".to_string(),
    }
}

/// The most rows `range` produces (as for constant bounds).
const MAX_RANGE_ROWS: f64 = 100_000_000.0;

impl Binder<'_> {
    /// `range` over long bounds that are only known when the query runs (scalar subqueries):
    /// the series is generated and unnested at run time. `None` when the bounds are not longs,
    /// datetimes with a timespan step, or timespans.
    /// More than 100,000,000 rows, or a zero step, yield no rows.
    pub(crate) fn bind_range_runtime(&mut self, name: &ast::Ident, from: &TypedExpr, to: &TypedExpr, step: &TypedExpr) -> Result<Option<Rel>> {
        let int = |t: KqlType| matches!(t, KqlType::Long | KqlType::Int);
        // Datetimes and timespans run as their nanoseconds.
        let ty = match (from.ty, to.ty, step.ty) {
            (f, t, s) if int(f) && int(t) && int(s) => KqlType::Long,
            (KqlType::Datetime, KqlType::Datetime, KqlType::Timespan) => KqlType::Datetime,
            (KqlType::Timespan, KqlType::Timespan, KqlType::Timespan) => KqlType::Timespan,
            _ => return Ok(None),
        };
        let f = cast(from.expr.clone(), DataType::Int64);
        let t = cast(to.expr.clone(), DataType::Int64);
        let s = cast(step.expr.clone(), DataType::Int64);
        let fl = |e: &DfExpr| cast(e.clone(), DataType::Float64);
        let count = (fl(&t) - fl(&f)) / fl(&s);
        let too_many = s.clone().eq(lit(0i64)).or(count.gt(lit(MAX_RANGE_ROWS - 1.0)));
        let stop = when(too_many, lit(ScalarValue::Int64(None))).otherwise(t)?;
        let series = datafusion::functions_nested::expr_fn::gen_series(f, stop, s).alias("__kql_range");
        let plan = LogicalPlanBuilder::empty(true)
            .project(vec![series])?
            .unnest_column_with_options(Column::new_unqualified("__kql_range"), UnnestOptions::new().with_preserve_nulls(false))?
            .build()?;
        let mut out = DfExpr::Column(Column::new_unqualified("__kql_range"));
        if ty != KqlType::Long {
            out = cast(out, ty.arrow_type());
        }
        let plan = LogicalPlanBuilder::from(plan).project(vec![out.alias(name.name.clone())])?.build()?;
        Ok(Some(Rel::new(plan, KqlSchema::new(vec![KqlColumn::new(name.name.clone(), ty)]))))
    }
}

/// Whether a binding error is a name that could not be resolved (or may not be read).
fn unresolved(e: &PlanError) -> bool {
    match e {
        PlanError::Forbidden { .. } => true,
        PlanError::Semantic { message, .. } => {
            message.starts_with("unknown table or function")
                || (message.starts_with("database '") && message.ends_with("' does not exist"))
        }
        _ => false,
    }
}
