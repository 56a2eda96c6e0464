//! Tabular operators (`| where`, `| project`, `| summarize`, `| join`, ...) lowered onto
//! DataFusion plan builders, with Kusto's result column names.

use datafusion::common::{JoinType, ScalarValue};
use datafusion::logical_expr::{Expr as DfExpr, LogicalPlanBuilder, SortExpr, cast, lit};
use kustodian_parser::ast::{self, ExprKind, OperatorKind, Span};

use super::sources::param_word;
use super::{Binder, Binding, Rel, Scope, glob_match};
use crate::error::{PlanError, Result};
use crate::functions::{self, TypedExpr};
use crate::types::{KqlColumn, KqlSchema, KqlType};

impl<'a> Binder<'a> {
    pub fn bind_operator(&mut self, rel: Rel, op: &ast::Operator, scope: &Scope) -> Result<Rel> {
        let span = op.span;
        match &op.kind {
            OperatorKind::Where(pred) => self.plan_where(rel, pred, scope),
            OperatorKind::Project(items) => self.plan_project(rel, items, scope, span),
            OperatorKind::Extend(items) => self.plan_extend(rel, items, scope, span),
            OperatorKind::ProjectAway(items) => {
                let drop = self.match_columns(&rel, items, true)?;
                let keep: Vec<String> = rel.names().into_iter().filter(|n| !drop.contains(n)).collect();
                self.select(rel, &keep)
            }
            OperatorKind::ProjectKeep(items) => {
                let keep_set = self.match_columns(&rel, items, true)?;
                let keep: Vec<String> = rel.names().into_iter().filter(|n| keep_set.contains(n)).collect();
                self.select(rel, &keep)
            }
            OperatorKind::ProjectRename(items) => self.plan_rename(rel, items),
            OperatorKind::ProjectReorder(items) => self.plan_reorder(rel, items),
            OperatorKind::Summarize(s) => self.plan_summarize(rel, s, scope, span),
            OperatorKind::Count | OperatorKind::CountAs(_) => {
                let name = match &op.kind {
                    OperatorKind::CountAs(n) => n.name.clone(),
                    _ => "Count".to_string(),
                };
                let plan = rel
                    .builder()
                    .aggregate(Vec::<DfExpr>::new(), vec![datafusion::functions_aggregate::count::count(lit(1i64)).alias(name.clone())])?
                    .build()?;
                Ok(Rel::new(plan, KqlSchema::new(vec![KqlColumn::new(name, KqlType::Long)])))
            }
            OperatorKind::Take(n) | OperatorKind::Sample(n) => {
                let n = self.const_count(n, scope)?;
                let plan = rel.builder().limit(0, Some(n))?.build()?;
                Ok(Rel::new(plan, rel.schema))
            }
            OperatorKind::Top { count, by } => {
                let n = self.const_count(count, scope)?;
                let sorted = self.plan_sort(rel, std::slice::from_ref(by), scope)?;
                let plan = sorted.builder().limit(0, Some(n))?.build()?;
                Ok(Rel::new(plan, sorted.schema))
            }
            OperatorKind::Sort { by, .. } => self.plan_sort(rel, by, scope),
            OperatorKind::Distinct { columns, .. } => self.plan_distinct(rel, columns, scope, span),
            OperatorKind::Join(j) => self.plan_join(rel, j, scope, span, false),
            OperatorKind::Lookup(j) => self.plan_join(rel, j, scope, span, true),
            OperatorKind::Union(u) => self.bind_union(Some(rel), u, scope, span),
            OperatorKind::As { name, .. } => {
                // The name is visible to the rest of the query; binding the pipeline left to right
                // means later references see it through the scope of enclosing statements only.
                let _ = Binding::Tabular(rel.clone());
                let _ = name;
                Ok(rel)
            }
            OperatorKind::Getschema => self.plan_getschema(rel),
            OperatorKind::Serialize(items) => {
                if items.is_empty() {
                    Ok(rel)
                } else {
                    Err(self.unsupported("serialize with window functions (row_number, prev, next)", span))
                }
            }
            OperatorKind::MvExpand(_) => Err(self.unsupported("the 'mv-expand' operator", span)),
            OperatorKind::Parse(p) => Err(self.unsupported(if p.is_where { "the 'parse-where' operator" } else { "the 'parse' operator" }, span)),
            OperatorKind::TopNested(_) => Err(self.unsupported("the 'top-nested' operator", span)),
            OperatorKind::TopHitters { .. } => Err(self.unsupported("the 'top-hitters' operator", span)),
            OperatorKind::MvApply(_) => Err(self.unsupported("the 'mv-apply' operator", span)),
            OperatorKind::ParseKv { .. } => Err(self.unsupported("the 'parse-kv' operator", span)),
            OperatorKind::Evaluate(_) => Err(self.unsupported("the 'evaluate' operator (plugins)", span)),
            OperatorKind::MakeSeries(_) => Err(self.unsupported("the 'make-series' operator", span)),
            OperatorKind::SampleDistinct { .. } => Err(self.unsupported("the 'sample-distinct' operator", span)),
            OperatorKind::Search(_) => Err(self.unsupported("the 'search' operator", span)),
            OperatorKind::Find(_) => Err(self.unsupported("the 'find' operator", span)),
            OperatorKind::Render { .. } => Ok(rel),
            OperatorKind::Invoke(call) => self.plan_invoke(rel, call, scope, span),
            OperatorKind::Fork(_) => Err(self.unsupported("the 'fork' operator", span)),
            OperatorKind::Facet { .. } => Err(self.unsupported("the 'facet' operator", span)),
            OperatorKind::Partition(_) => Err(self.unsupported("the 'partition' operator", span)),
            OperatorKind::Scan(_) => Err(self.unsupported("the 'scan' operator", span)),
            OperatorKind::Reduce { .. } => Err(self.unsupported("the 'reduce' operator", span)),
            OperatorKind::Consume(_) => {
                let plan = rel.builder().limit(0, Some(0))?.build()?;
                Ok(Rel::new(plan, KqlSchema::default()).with_no_columns())
            }
        }
    }

    fn plan_invoke(&mut self, rel: Rel, call: &ast::Expr, scope: &Scope, span: Span) -> Result<Rel> {
        let ExprKind::Call { name, args } = &call.kind else {
            return Err(self.semantic("invoke expects a function call", span));
        };
        let def = match scope.get(&name.name).cloned() {
            Some(Binding::Lambda(l)) => l,
            _ => match self.stored_function(&name.name, span)? {
                Some(f) => f,
                None => return Err(self.semantic(format!("unknown function '{}'", name.name), name.span)),
            },
        };
        let Some(first) = def.params.first() else {
            return Err(self.semantic(format!("'{}' takes no tabular parameter to invoke with", name.name), span));
        };
        let first_name = first.name.name.clone();
        let scope2 = scope.with(&first_name, Binding::Tabular(rel));
        let mut full_args = vec![ast::Arg::Positional(ast::Expr::new(
            ExprKind::Ident(ast::Ident::new(first_name, span)),
            span,
        ))];
        full_args.extend(args.iter().cloned());
        let (r, _) = self.call_lambda(&def, &full_args, &scope2, span, None)?;
        r.ok_or_else(|| self.semantic("invoke needs a function that returns a table", span))
    }

    fn const_count(&mut self, n: &ast::Expr, scope: &Scope) -> Result<usize> {
        let v = self.bind_scalar(n, None, scope)?;
        match super::scalar::const_i128(&v) {
            Some(x) if x >= 0 => Ok(usize::try_from(x).unwrap_or(usize::MAX)),
            Some(_) => Ok(0),
            None => Err(self.semantic("the row count must be a constant integer", n.span)),
        }
    }

    fn plan_where(&mut self, rel: Rel, pred: &ast::Expr, scope: &Scope) -> Result<Rel> {
        let p = self.bind_scalar(pred, Some(&rel), scope)?;
        if p.ty != KqlType::Bool {
            return Err(self.semantic(format!("the 'where' predicate must be bool, not {}", p.ty), pred.span));
        }
        match super::scalar::const_value(&p) {
            Some(ScalarValue::Boolean(Some(true))) => return Ok(rel),
            Some(ScalarValue::Boolean(_)) => {
                let plan = rel.builder().limit(0, Some(0))?.build()?;
                return Ok(Rel::new(plan, rel.schema));
            }
            _ => {}
        }
        let plan = rel.builder().filter(p.expr)?.build()?;
        Ok(Rel::new(plan, rel.schema))
    }

    /// Projects the named columns, in order.
    pub(crate) fn select(&self, rel: Rel, names: &[String]) -> Result<Rel> {
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        for n in names {
            let c = rel.col(n)?;
            exprs.push(c.expr.alias(n.clone()));
            cols.push(KqlColumn::new(n.clone(), c.ty));
        }
        let plan = rel.builder().project(exprs)?.build()?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    /// Kusto's name for an unnamed expression: a column keeps its name; `a.b` gives `a_b`;
    /// anything else gets `Column1`, `Column2`, ...
    fn derived_name(e: &ast::Expr) -> Option<String> {
        match &e.kind {
            ExprKind::Ident(i) => Some(i.name.clone()),
            ExprKind::Member { expr, name } => Binder::derived_name(expr).map(|b| format!("{b}_{}", name.name)),
            ExprKind::Index { expr, index } => match &index.kind {
                ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => {
                    Binder::derived_name(expr).map(|b| format!("{b}_{s}"))
                }
                ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::Long(n), .. }) => {
                    Binder::derived_name(expr).map(|b| format!("{b}_{n}"))
                }
                _ => None,
            },
            ExprKind::Paren(inner) => Binder::derived_name(inner),
            _ => None,
        }
    }

    fn next_column_name(counter: &mut usize, taken: &[String]) -> String {
        loop {
            *counter += 1;
            let n = format!("Column{counter}");
            if !taken.contains(&n) {
                return n;
            }
        }
    }

    fn plan_project(&mut self, rel: Rel, items: &[ast::NamedExpr], scope: &Scope, span: Span) -> Result<Rel> {
        let mut exprs = Vec::new();
        let mut cols: Vec<KqlColumn> = Vec::new();
        let mut counter = 0;
        for it in items {
            if it.names.len() > 1 {
                return Err(self.unsupported("tuple assignment in project", it.span));
            }
            let v = self.bind_scalar(&it.expr, Some(&rel), scope)?;
            let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            let name = match it.names.first() {
                Some(n) => n.name.clone(),
                None => match Binder::derived_name(&it.expr) {
                    Some(n) => n,
                    None => Binder::next_column_name(&mut counter, &taken),
                },
            };
            if taken.contains(&name) {
                return Err(self.semantic(format!("column '{name}' is projected more than once"), it.span));
            }
            exprs.push(v.expr.alias(name.clone()));
            cols.push(KqlColumn::new(name, v.ty));
        }
        if exprs.is_empty() {
            return Err(self.semantic("project needs at least one column", span));
        }
        let plan = rel.builder().project(exprs)?.build()?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    fn plan_extend(&mut self, mut rel: Rel, items: &[ast::NamedExpr], scope: &Scope, _span: Span) -> Result<Rel> {
        let mut counter = 0;
        for it in items {
            if it.names.len() > 1 {
                return Err(self.unsupported("tuple assignment in extend", it.span));
            }
            let v = self.bind_scalar(&it.expr, Some(&rel), scope)?;
            let names = rel.names();
            let name = match it.names.first() {
                Some(n) => n.name.clone(),
                None => match Binder::derived_name(&it.expr) {
                    Some(n) if !matches!(it.expr.kind, ExprKind::Ident(_)) => n,
                    _ => Binder::next_column_name(&mut counter, &names),
                },
            };
            let mut exprs = Vec::new();
            let mut cols = Vec::new();
            let mut replaced = false;
            for c in &rel.schema.columns {
                if c.name == name {
                    exprs.push(v.expr.clone().alias(name.clone()));
                    cols.push(KqlColumn::new(name.clone(), v.ty));
                    replaced = true;
                } else {
                    exprs.push(rel.col(&c.name)?.expr.alias(c.name.clone()));
                    cols.push(c.clone());
                }
            }
            if !replaced {
                exprs.push(v.expr.alias(name.clone()));
                cols.push(KqlColumn::new(name, v.ty));
            }
            let plan = rel.builder().project(exprs)?.build()?;
            rel = Rel::new(plan, KqlSchema::new(cols));
        }
        Ok(rel)
    }

    /// Columns named by a list of names and wildcards.
    fn match_columns(&self, rel: &Rel, items: &[ast::Expr], must_exist: bool) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for it in items {
            match &it.kind {
                ExprKind::Ident(i) => {
                    if rel.schema.get(&i.name).is_none() {
                        if must_exist {
                            return Err(self.semantic(format!("unknown column '{}'", i.name), it.span));
                        }
                        continue;
                    }
                    out.push(i.name.clone());
                }
                ExprKind::Wildcard(p) => {
                    out.extend(rel.names().into_iter().filter(|n| glob_match(p, n)));
                }
                ExprKind::Star => out.extend(rel.names()),
                _ => return Err(self.semantic("expected a column name or a wildcard", it.span)),
            }
        }
        Ok(out)
    }

    fn plan_rename(&mut self, rel: Rel, items: &[ast::RenameItem]) -> Result<Rel> {
        let mut names = rel.names();
        for it in items {
            let Some(pos) = names.iter().position(|n| n == &it.old.name) else {
                return Err(self.semantic(format!("unknown column '{}'", it.old.name), it.old.span));
            };
            names[pos] = it.new.name.clone();
        }
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            if !seen.insert(n) {
                return Err(self.semantic(format!("project-rename produces column '{n}' twice"), Span::default()));
            }
        }
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        for (c, new) in rel.schema.columns.iter().zip(&names) {
            exprs.push(rel.col(&c.name)?.expr.alias(new.clone()));
            cols.push(KqlColumn::new(new.clone(), c.ty));
        }
        let plan = rel.builder().project(exprs)?.build()?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    fn plan_reorder(&mut self, rel: Rel, items: &[ast::ReorderItem]) -> Result<Rel> {
        let mut order: Vec<String> = Vec::new();
        for it in items {
            let mut matched = self.match_columns(&rel, std::slice::from_ref(&it.column), true)?;
            match it.order {
                Some(ast::ReorderOrder::Asc) | Some(ast::ReorderOrder::GrannyAsc) => matched.sort(),
                Some(ast::ReorderOrder::Desc) | Some(ast::ReorderOrder::GrannyDesc) => {
                    matched.sort();
                    matched.reverse();
                }
                None => {}
            }
            for m in matched {
                if !order.contains(&m) {
                    order.push(m);
                }
            }
        }
        for n in rel.names() {
            if !order.contains(&n) {
                order.push(n);
            }
        }
        self.select(rel, &order)
    }

    fn plan_sort(&mut self, rel: Rel, keys: &[ast::SortKey], scope: &Scope) -> Result<Rel> {
        let mut sorts: Vec<SortExpr> = Vec::new();
        for k in keys {
            let v = self.bind_scalar(&k.expr, Some(&rel), scope)?;
            if v.ty == KqlType::Dynamic {
                return Err(self.semantic("cannot sort by a dynamic value; convert it first (tostring, tolong...)", k.expr.span));
            }
            let desc = k.desc.unwrap_or(true);
            // Kusto: nulls first when ascending, last when descending, unless written.
            let nulls_first = k.nulls_first.unwrap_or(!desc);
            sorts.push(v.expr.sort(!desc, nulls_first));
        }
        let plan = rel.builder().sort(sorts)?.build()?;
        Ok(Rel::new(plan, rel.schema))
    }

    fn plan_distinct(&mut self, rel: Rel, columns: &[ast::NamedExpr], scope: &Scope, span: Span) -> Result<Rel> {
        if columns.len() == 1 && matches!(columns[0].expr.kind, ExprKind::Star) {
            if rel.schema.columns.iter().any(|c| c.ty == KqlType::Dynamic) {
                // Dynamic values are compared by their JSON text.
            }
            let plan = rel.builder().distinct()?.build()?;
            return Ok(Rel::new(plan, rel.schema));
        }
        let mut group = Vec::new();
        let mut cols: Vec<KqlColumn> = Vec::new();
        let mut counter = 0;
        for it in columns {
            let v = self.bind_scalar(&it.expr, Some(&rel), scope)?;
            let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            let name = match it.names.first() {
                Some(n) => n.name.clone(),
                None => Binder::derived_name(&it.expr).unwrap_or_else(|| Binder::next_column_name(&mut counter, &taken)),
            };
            group.push(v.expr.alias(name.clone()));
            cols.push(KqlColumn::new(name, v.ty));
        }
        if group.is_empty() {
            return Err(self.semantic("distinct needs columns or *", span));
        }
        let plan = rel.builder().aggregate(group, Vec::<DfExpr>::new())?.build()?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    fn plan_summarize(&mut self, rel: Rel, s: &ast::Summarize, scope: &Scope, span: Span) -> Result<Rel> {
        let mut group = Vec::new();
        let mut cols: Vec<KqlColumn> = Vec::new();
        let mut counter = 0;
        for it in &s.by {
            if it.names.len() > 1 {
                return Err(self.unsupported("tuple names in summarize by", it.span));
            }
            let v = self.bind_scalar(&it.expr, Some(&rel), scope)?;
            let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            let name = match it.names.first() {
                Some(n) => n.name.clone(),
                None => match by_key_name(&it.expr) {
                    Some(n) => n,
                    None => Binder::next_column_name(&mut counter, &taken),
                },
            };
            let name = Binder::unique_name(&name, &taken);
            group.push(v.expr.alias(name.clone()));
            cols.push(KqlColumn::new(name, v.ty));
        }
        let mut aggs = Vec::new();
        for it in &s.aggregates {
            let (fname, args) = match &it.expr.kind {
                ExprKind::Call { name, args } if functions::is_aggregate(&name.name) => (name.name.clone(), args.clone()),
                _ => {
                    return Err(self.unsupported(
                        "summarize expressions that are not a single aggregate call (e.g. sum(x) / count())",
                        it.expr.span,
                    ));
                }
            };
            let mut vals = Vec::new();
            let mut arg_names = Vec::new();
            for a in &args {
                let e = a.expr();
                if matches!(e.kind, ExprKind::Star) {
                    for c in &rel.schema.columns {
                        vals.push(rel.col(&c.name)?);
                        arg_names.push(Some(c.name.clone()));
                    }
                    continue;
                }
                vals.push(self.bind_scalar(e, Some(&rel), scope)?);
                arg_names.push(match &e.kind {
                    ExprKind::Ident(i) => Some(i.name.clone()),
                    _ => None,
                });
            }
            let lowered = if functions::is_multi_column_aggregate(&fname) {
                functions::lower_aggregate_columns(&fname, vals, arg_names)
            } else {
                functions::lower_aggregate_call(&fname, vals, arg_names).map(|l| vec![l])
            }
            .map_err(|e| e.with_span(self.err_span(it.expr.span)))?;
            if !it.names.is_empty() && it.names.len() != lowered.len() {
                return Err(self.semantic(
                    format!("{} names given for {} aggregate result column(s)", it.names.len(), lowered.len()),
                    it.span,
                ));
            }
            for (i, l) in lowered.into_iter().enumerate() {
                let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
                let base = it.names.get(i).map(|n| n.name.clone()).unwrap_or(l.default_name);
                let name = Binder::unique_name(&base, &taken);
                aggs.push(l.expr.alias(name.clone()));
                cols.push(KqlColumn::new(name, l.ty));
            }
        }
        if group.is_empty() && aggs.is_empty() {
            return Err(self.semantic("summarize needs aggregates or 'by' columns", span));
        }
        let plan = rel.builder().aggregate(group, aggs)?.build()?;
        // Restore Kusto's column order: keys first, then aggregates (already so), with exact types.
        let out = Rel::new(plan, KqlSchema::new(cols.clone()));
        let exprs: Vec<DfExpr> = cols
            .iter()
            .map(|c| Ok(cast(out.col(&c.name)?.expr, c.ty.arrow_type()).alias(c.name.clone())))
            .collect::<Result<_>>()?;
        let plan = out.builder().project(exprs)?.build()?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    fn plan_getschema(&mut self, rel: Rel) -> Result<Rel> {
        let mut rows = Vec::new();
        for (i, c) in rel.schema.columns.iter().enumerate() {
            rows.push(vec![
                lit(c.name.clone()),
                lit(i as i32),
                lit(dotnet_type(c.ty).to_string()),
                lit(c.ty.name().to_string()),
            ]);
        }
        let schema = KqlSchema::new(vec![
            KqlColumn::new("ColumnName", KqlType::String),
            KqlColumn::new("ColumnOrdinal", KqlType::Int),
            KqlColumn::new("DataType", KqlType::String),
            KqlColumn::new("ColumnType", KqlType::String),
        ]);
        if rows.is_empty() {
            let df = datafusion::common::DFSchema::try_from(schema.arrow_schema().as_ref().clone())?;
            let plan = datafusion::logical_expr::LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: std::sync::Arc::new(df),
            });
            return Ok(Rel::new(plan, schema));
        }
        let plan = LogicalPlanBuilder::values(rows)?.build()?;
        let names = ["ColumnName", "ColumnOrdinal", "DataType", "ColumnType"];
        let exprs: Vec<DfExpr> = plan
            .schema()
            .fields()
            .iter()
            .zip(names)
            .map(|(f, n)| DfExpr::Column(datafusion::common::Column::new_unqualified(f.name())).alias(n))
            .collect();
        let plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
        Ok(Rel::new(plan, schema))
    }

    fn plan_join(&mut self, left: Rel, j: &ast::Join, scope: &Scope, span: Span, lookup: bool) -> Result<Rel> {
        let mut kind = if lookup { "leftouter".to_string() } else { "innerunique".to_string() };
        for p in &j.params {
            let n = p.name.name.to_ascii_lowercase();
            if n == "kind" {
                kind = param_word(&p.value).unwrap_or_default().to_ascii_lowercase();
            } else if !n.starts_with("hint.") {
                return Err(self.semantic(format!("unknown join parameter '{}'", p.name.name), p.span));
            }
        }
        let right = self.bind_tabular(&j.right, scope)?;
        let mut keys: Vec<(String, String)> = Vec::new();
        for cond in &j.on {
            self.join_keys(cond, &mut keys)?;
        }
        if keys.is_empty() {
            return Err(self.semantic("join needs at least one 'on' key", span));
        }
        for (l, r) in &keys {
            if left.schema.get(l).is_none() {
                return Err(self.semantic(format!("join key '{l}' is not a column of the left side"), span));
            }
            if right.schema.get(r).is_none() {
                return Err(self.semantic(format!("join key '{r}' is not a column of the right side"), span));
            }
        }
        if lookup && !matches!(kind.as_str(), "leftouter" | "inner") {
            return Err(self.semantic(format!("lookup kind must be leftouter or inner, not '{kind}'"), span));
        }
        let join_type = match kind.as_str() {
            "innerunique" | "inner" => JoinType::Inner,
            "leftouter" => JoinType::Left,
            "rightouter" => JoinType::Right,
            "fullouter" | "outer" => JoinType::Full,
            "leftsemi" => JoinType::LeftSemi,
            "leftanti" | "anti" | "leftantisemi" => JoinType::LeftAnti,
            "rightsemi" => JoinType::RightSemi,
            "rightanti" | "rightantisemi" => JoinType::RightAnti,
            other => return Err(self.semantic(format!("unknown join kind '{other}'"), span)),
        };
        // Key types must agree; numeric keys are widened.
        let mut left = left;
        let mut right = right;
        for (l, r) in &keys {
            let (lt, rt) = (left.schema.get(l).map(|c| c.ty), right.schema.get(r).map(|c| c.ty));
            if let (Some(lt), Some(rt)) = (lt, rt)
                && lt != rt
            {
                if lt.is_numeric() && rt.is_numeric() {
                    let target = if lt == KqlType::Real || rt == KqlType::Real { KqlType::Real } else { KqlType::Long };
                    left = self.retype(left, l, target)?;
                    right = self.retype(right, r, target)?;
                } else {
                    return Err(self.semantic(format!("join key types differ: '{l}' is {lt}, '{r}' is {rt}"), span));
                }
            }
        }
        if kind == "innerunique" {
            // Kusto de-duplicates the left side on the join key (one arbitrary row per key).
            let on: Vec<DfExpr> = keys.iter().map(|(l, _)| left.col(l).map(|c| c.expr)).collect::<Result<_>>()?;
            let sel: Vec<DfExpr> = left
                .schema
                .columns
                .iter()
                .map(|c| left.col(&c.name).map(|e| e.expr.alias(c.name.clone())))
                .collect::<Result<_>>()?;
            let plan = left.builder().distinct_on(on, sel, None)?.build()?;
            left = Rel::new(plan, left.schema.clone());
        }
        let lplan = left.builder().alias("__left")?.build()?;
        let rplan = right.builder().alias("__right")?.build()?;
        let lkeys: Vec<datafusion::common::Column> =
            keys.iter().map(|(l, _)| datafusion::common::Column::new(Some("__left"), l.as_str())).collect();
        let rkeys: Vec<datafusion::common::Column> =
            keys.iter().map(|(_, r)| datafusion::common::Column::new(Some("__right"), r.as_str())).collect();
        let joined = LogicalPlanBuilder::from(lplan).join(rplan, join_type, (lkeys, rkeys), None)?.build()?;
        let lcol = |n: &str| DfExpr::Column(datafusion::common::Column::new(Some("__left"), n));
        let rcol = |n: &str| DfExpr::Column(datafusion::common::Column::new(Some("__right"), n));
        let mut exprs = Vec::new();
        let mut cols: Vec<KqlColumn> = Vec::new();
        let left_only = matches!(join_type, JoinType::LeftSemi | JoinType::LeftAnti);
        let right_only = matches!(join_type, JoinType::RightSemi | JoinType::RightAnti);
        if !right_only {
            for c in &left.schema.columns {
                exprs.push(lcol(&c.name).alias(c.name.clone()));
                cols.push(c.clone());
            }
        }
        if !left_only {
            for c in &right.schema.columns {
                if lookup && keys.iter().any(|(_, r)| r == &c.name) {
                    continue;
                }
                let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
                let name = Binder::unique_name(&c.name, &taken);
                exprs.push(rcol(&c.name).alias(name.clone()));
                cols.push(KqlColumn::new(name, c.ty));
            }
        }
        let plan = LogicalPlanBuilder::from(joined).project(exprs)?.build()?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    fn retype(&self, rel: Rel, name: &str, ty: KqlType) -> Result<Rel> {
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        for c in &rel.schema.columns {
            let e = rel.col(&c.name)?;
            if c.name == name {
                exprs.push(functions::lower_cast(e, ty)?.expr.alias(c.name.clone()));
                cols.push(KqlColumn::new(c.name.clone(), ty));
            } else {
                exprs.push(e.expr.alias(c.name.clone()));
                cols.push(c.clone());
            }
        }
        let plan = rel.builder().project(exprs)?.build()?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    fn join_keys(&self, cond: &ast::Expr, keys: &mut Vec<(String, String)>) -> Result<()> {
        match &cond.kind {
            ExprKind::Ident(i) => {
                keys.push((i.name.clone(), i.name.clone()));
                Ok(())
            }
            ExprKind::Paren(inner) => self.join_keys(inner, keys),
            ExprKind::Binary { op: ast::BinaryOp::And, left, right } => {
                self.join_keys(left, keys)?;
                self.join_keys(right, keys)
            }
            ExprKind::Binary { op: ast::BinaryOp::Eq, left, right } => {
                let side = |e: &ast::Expr| match &e.kind {
                    ExprKind::Member { expr, name } => match expr.kind {
                        ExprKind::JoinSide(s) => Some((s, name.name.clone())),
                        _ => None,
                    },
                    _ => None,
                };
                match (side(left), side(right)) {
                    (Some((ast::JoinSide::Left, l)), Some((ast::JoinSide::Right, r)))
                    | (Some((ast::JoinSide::Right, r)), Some((ast::JoinSide::Left, l))) => {
                        keys.push((l, r));
                        Ok(())
                    }
                    _ => Err(self.unsupported("join conditions other than equality of $left and $right columns", cond.span)),
                }
            }
            _ => Err(self.unsupported("join conditions other than equality of $left and $right columns", cond.span)),
        }
    }
}

impl Rel {
    fn with_no_columns(self) -> Rel {
        self
    }
}

/// The name Kusto gives an unnamed `by` key: the column inside `bin(x, ...)`, `floor(x, ...)`,
/// or a plain column.
fn by_key_name(e: &ast::Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Ident(i) => Some(i.name.clone()),
        ExprKind::Call { name, args } if matches!(name.name.as_str(), "bin" | "floor" | "bin_at") => {
            args.first().and_then(|a| match &a.expr().kind {
                ExprKind::Ident(i) => Some(i.name.clone()),
                _ => None,
            })
        }
        ExprKind::Member { .. } | ExprKind::Index { .. } => Binder::derived_name_pub(e),
        _ => None,
    }
}

impl<'a> Binder<'a> {
    fn derived_name_pub(e: &ast::Expr) -> Option<String> {
        Binder::derived_name(e)
    }
}

fn dotnet_type(t: KqlType) -> &'static str {
    match t {
        KqlType::Bool => "System.Boolean",
        KqlType::Int => "System.Int32",
        KqlType::Long => "System.Int64",
        KqlType::Real => "System.Double",
        KqlType::Decimal => "System.Data.SqlTypes.SqlDecimal",
        KqlType::String => "System.String",
        KqlType::Datetime => "System.DateTime",
        KqlType::Timespan => "System.TimeSpan",
        KqlType::Guid => "System.Guid",
        KqlType::Dynamic => "System.Object",
    }
}

#[allow(dead_code)]
fn typed_null(ty: KqlType) -> Result<TypedExpr> {
    Ok(TypedExpr::new(lit(ScalarValue::try_from(&ty.arrow_type())?), ty))
}

#[allow(dead_code)]
fn internal(msg: &str) -> PlanError {
    PlanError::Internal(msg.to_string())
}
