//! Tabular operators (`| where`, `| project`, `| summarize`, `| join`, ...) lowered onto
//! DataFusion plan builders, with Kusto's result column names.

use datafusion::common::{JoinType, ScalarValue};
use datafusion::logical_expr::{Expr as DfExpr, LogicalPlanBuilder, SortExpr, cast, lit};
use kustodian_parser::ast::visit::{self, Visitor};
use kustodian_parser::ast::visit_mut::{self, VisitorMut};
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
            OperatorKind::ProjectByNames(specs) => {
                let keep = self.names_by_specifiers(&rel, specs, scope)?;
                if keep.is_empty() {
                    return Err(self.semantic("project-by-names: no column of the input is named", span));
                }
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
            // `as Name` names the result for `union withsource=` (see bind_union). Referring to the
            // name later in the same query is not supported: it fails as an unknown table.
            OperatorKind::As { name, .. } => Ok(Rel { alias: Some(name.name.clone()), ..rel }),
            OperatorKind::Getschema => self.plan_getschema(rel),
            OperatorKind::Serialize(items) => {
                if items.is_empty() {
                    Ok(rel)
                } else {
                    self.plan_extend(rel, items, scope, span)
                }
            }
            OperatorKind::MvExpand(m) => self.plan_mv_expand(rel, m, scope, span),
            OperatorKind::Parse(p) => self.plan_parse(rel, p, scope, span),
            OperatorKind::TopNested(clauses) => self.plan_top_nested(rel, clauses, scope, span),
            OperatorKind::TopHitters { count, of, by } => self.plan_top_hitters(rel, count, of, by.as_ref(), scope, span),
            OperatorKind::MvApply(m) => self.plan_mv_apply(rel, m, scope, span),
            OperatorKind::ParseKv { expr, columns, with } => self.plan_parse_kv(rel, expr, columns, with, scope, span),
            OperatorKind::Evaluate(ev) => self.plan_evaluate(rel, ev, scope, span),
            OperatorKind::MakeGraph(_) => Err(self.semantic("make-graph makes a graph, which a graph operator (graph-match, graph-to-table) must follow", span)),
            OperatorKind::GraphMarkComponents(_) => Err(self.semantic("graph-mark-components makes a graph, which a graph operator (graph-match, graph-to-table) must follow", span)),
            OperatorKind::GraphMatch(_) | OperatorKind::GraphShortestPaths(_) | OperatorKind::GraphToTable(_) => {
                Err(self.semantic("a graph operator needs a graph: make-graph first", span))
            }
            OperatorKind::MakeSeries(m) => self.plan_make_series(rel, m, scope, span),
            OperatorKind::SampleDistinct { count, of } => self.plan_sample_distinct(rel, count, of, scope, span),
            OperatorKind::Search(s) => self.plan_search(Some(rel), s, scope, span),
            OperatorKind::Find(_) => Err(self.unsupported("the 'find' operator", span)),
            OperatorKind::Render { .. } => Ok(rel),
            OperatorKind::Invoke(call) => self.plan_invoke(rel, call, scope, span),
            OperatorKind::Fork(_) => Err(self.unsupported("the 'fork' operator", span)),
            OperatorKind::Facet { .. } => Err(self.unsupported("the 'facet' operator", span)),
            OperatorKind::Partition(p) => self.plan_partition(rel, p, scope, span),
            OperatorKind::Scan(s) => self.plan_scan(rel, s, scope, span),
            OperatorKind::Reduce { .. } => Err(self.unsupported("the 'reduce' operator", span)),
            OperatorKind::Consume(_) => {
                let plan = rel.builder().limit(0, Some(0))?.build()?;
                Ok(Rel::new(plan, rel.schema))
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
        let plan = rel.builder().filter(as_filter(p.expr))?.build()?;
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
        let plan = super::project(rel.plan.clone(), exprs)?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    /// Kusto's name for an unnamed expression (see [`result_name`]); `None` gives `ColumnN`.
    pub(crate) fn derived_name(e: &ast::Expr) -> Option<String> {
        result_name(e, &|_| None)
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
        let (rel, items) = match self.plan_windows(rel, items, scope)? {
            Windowed::No(rel) => (rel, std::borrow::Cow::Borrowed(items)),
            Windowed::Yes(rel, items) => {
                // Keep the serialized order: sort by the row number, then project.
                let plan = rel.builder().sort(vec![rel.col(ROW_NUMBER_COL)?.expr.sort(true, false)])?.build()?;
                (Rel::new(plan, rel.schema), std::borrow::Cow::Owned(items))
            }
        };
        let items: &[ast::NamedExpr] = &items;
        let mut rel = rel;
        let mut exprs = Vec::new();
        let mut cols: Vec<KqlColumn> = Vec::new();
        let mut counter = 0;
        for it in items {
            if let Some((with_bag, fields)) = self.multi_columns(rel.clone(), it, scope)? {
                rel = with_bag;
                for (name, v) in fields {
                    if cols.iter().any(|c| c.name == name) {
                        return Err(self.semantic(format!("column '{name}' is projected more than once"), it.span));
                    }
                    exprs.push(v.expr.alias(name.clone()));
                    cols.push(KqlColumn::new(name, v.ty));
                }
                continue;
            }
            if it.names.len() > 1 {
                return Err(self.unsupported("tuple assignment in project", it.span));
            }
            let v = self.bind_scalar(&it.expr, Some(&rel), scope)?;
            let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            let name = match it.names.first() {
                Some(n) => n.name.clone(),
                None => match Binder::derived_name(&it.expr) {
                    // A derived name that is taken is made unique (`x1`), as Kusto does.
                    Some(n) if matches!(it.expr.kind, ExprKind::Ident(_)) => n,
                    Some(n) => Binder::unique_name(&n, &taken),
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
        let plan = super::project(rel.plan.clone(), exprs)?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    fn plan_extend(&mut self, rel: Rel, items: &[ast::NamedExpr], scope: &Scope, span: Span) -> Result<Rel> {
        match self.plan_windows(rel, items, scope)? {
            Windowed::No(rel) => self.plan_extend_items(rel, items, scope, span),
            Windowed::Yes(rel, items) => {
                let visible: Vec<String> = rel.names().into_iter().filter(|n| !is_hidden(n)).collect();
                let rel = self.plan_extend_items(rel, &items, scope, span)?;
                let plan = rel.builder().sort(vec![rel.col(ROW_NUMBER_COL)?.expr.sort(true, false)])?.build()?;
                let sorted = Rel::new(plan, rel.schema.clone());
                let mut keep = visible;
                for c in &rel.schema.columns {
                    if !is_hidden(&c.name) && !keep.contains(&c.name) {
                        keep.push(c.name.clone());
                    }
                }
                self.select(sorted, &keep)
            }
        }
    }

    fn plan_extend_items(&mut self, rel: Rel, items: &[ast::NamedExpr], scope: &Scope, span: Span) -> Result<Rel> {
        let outer = self.extend_input.replace(rel.names());
        let out = self.plan_extend_items_in(rel, items, scope, span);
        self.extend_input = outer;
        out
    }

    fn plan_extend_items_in(&mut self, mut rel: Rel, items: &[ast::NamedExpr], scope: &Scope, _span: Span) -> Result<Rel> {
        let mut counter = 0;
        for it in items {
            if let Some((with_bag, fields)) = self.multi_columns(rel.clone(), it, scope)? {
                let keep: Vec<String> = rel.names();
                let mut out = with_bag;
                for (name, v) in fields {
                    out = self.add_column(out, &name, v.expr, v.ty)?;
                }
                // The input's columns where they were (a field may replace one), then the new ones.
                let mut order: Vec<String> = keep.clone();
                order.extend(out.names().into_iter().filter(|n| !keep.contains(n) && n != MULTI_BAG));
                rel = self.select(out, &order)?;
                continue;
            }
            if it.names.len() > 1 {
                return Err(self.unsupported("tuple assignment in extend", it.span));
            }
            let v = self.bind_scalar(&it.expr, Some(&rel), scope)?;
            let names = rel.names();
            let name = match it.names.first() {
                Some(n) => n.name.clone(),
                // `extend x` names the column after `x`, as the official parser does.
                None => match Binder::derived_name(&it.expr) {
                    Some(n) => n,
                    None => Binder::next_column_name(&mut counter, &names),
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
            let plan = super::project(rel.plan.clone(), exprs)?;
            rel = Rel::new(plan, KqlSchema::new(cols));
        }
        Ok(rel)
    }

    /// A call of a function that gives several columns (`series_stats(x)`...): the relation
    /// with the call's bag of fields as a hidden column, and each field's column, named by the
    /// item's names in order (`extend (a, b) = ...`) and the rest `f_arg_field` as Kusto names
    /// them. `None` when the item is not such a call.
    pub(crate) fn multi_columns(&mut self, rel: Rel, it: &ast::NamedExpr, scope: &Scope) -> Result<Option<(Rel, Vec<NamedValue>)>> {
        let ExprKind::Call { name, args } = &it.expr.kind else { return Ok(None) };
        if matches!(name.name.as_str(), "array_sort_asc" | "array_sort_desc") {
            return self.sorted_arrays(rel, it, &name.name, args, scope);
        }
        let Some(fields) = functions::multi_column(&name.name) else { return Ok(None) };
        if it.names.len() > fields.len() {
            return Err(self.semantic(format!("'{}' gives {} columns, but {} names were given", name.name, fields.len(), it.names.len()), it.span));
        }
        let mut bound = Vec::with_capacity(args.len());
        for a in args {
            bound.push(self.bind_scalar(a.expr(), Some(&rel), scope)?);
        }
        let bag = functions::lower_multi(&name.name, bound)?;
        let arg = args.first().and_then(|a| Binder::derived_name(a.expr())).unwrap_or_default();
        let rel = self.add_column(rel, MULTI_BAG, bag.expr, KqlType::Dynamic)?;
        let bag = rel.col(MULTI_BAG)?;
        let mut out = Vec::with_capacity(fields.len());
        for (i, (field, ty)) in fields.iter().enumerate() {
            let col = match it.names.get(i) {
                Some(n) => n.name.clone(),
                None => format!("{}_{arg}_{field}", name.name),
            };
            let value = functions::lower_index(bag.clone(), TypedExpr::new(lit(*field), KqlType::String))?;
            out.push((col, functions::lower_cast(value, *ty)?));
        }
        Ok(Some((rel, out)))
    }

    /// `array_sort_asc(a1, a2, ...[, nulls_last])` of two or more arrays: one column per array,
    /// each reordered as sorting the first orders it, named by the item's names in order, the
    /// rest `a1_sorted`, `a2_sorted`... `None` for one array (an ordinary call).
    fn sorted_arrays(&mut self, rel: Rel, it: &ast::NamedExpr, name: &str, args: &[ast::Arg], scope: &Scope) -> Result<Option<(Rel, Vec<NamedValue>)>> {
        let mut bound = Vec::with_capacity(args.len());
        for a in args {
            bound.push(self.bind_scalar(a.expr(), Some(&rel), scope)?);
        }
        let narrays = bound.iter().take_while(|b| b.ty == KqlType::Dynamic).count();
        if narrays < 2 {
            return Ok(None);
        }
        let nulls_last = bound.get(narrays).cloned();
        let arg_names: Vec<String> = args.iter().take(narrays).map(|a| Binder::derived_name(a.expr()).unwrap_or_default()).collect();
        let bound: Vec<TypedExpr> = bound.into_iter().take(narrays).collect();
        let bag = functions::lower_array_sort_many(name, bound, nulls_last)?;
        let rel = self.add_column(rel, MULTI_BAG, bag.expr, KqlType::Dynamic)?;
        let bag = rel.col(MULTI_BAG)?;
        let mut out = Vec::with_capacity(narrays);
        for (i, arg) in arg_names.iter().enumerate() {
            let col = match it.names.get(i) {
                Some(n) => n.name.clone(),
                None => format!("{arg}_sorted"),
            };
            let key = TypedExpr::new(lit(i.to_string()), KqlType::String);
            out.push((col, functions::lower_index(bag.clone(), key)?));
        }
        Ok(Some((rel, out)))
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

    /// The columns `project-by-names` keeps, in the order named: each specifier a constant
    /// string (a name, or a pattern with `*`) or a constant dynamic array of names; names no
    /// column has are left out.
    fn names_by_specifiers(&mut self, rel: &Rel, specs: &[ast::Expr], scope: &Scope) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for spec in specs {
            if let ExprKind::Ident(i) = &spec.kind
                && rel.schema.get(&i.name).is_some()
                && scope.get(&i.name).is_none()
            {
                return Err(self.semantic(format!("project-by-names takes names as strings (\"{}\"), not columns", i.name), spec.span));
            }
            let v = self.bind_scalar(spec, None, scope)?;
            let Some(text) = super::scalar::const_string(&v) else {
                return Err(self.semantic("project-by-names: expected a constant column name, array of names or pattern", spec.span));
            };
            let names: Vec<String> = if v.ty == KqlType::Dynamic {
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(serde_json::Value::Array(items)) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
                    Ok(serde_json::Value::String(s)) => vec![s],
                    _ => return Err(self.semantic("project-by-names: a dynamic specifier must be an array of column names", spec.span)),
                }
            } else if v.ty == KqlType::String {
                vec![text]
            } else {
                return Err(self.semantic("project-by-names: expected a column name, array of names or pattern", spec.span));
            };
            for n in names {
                let matched: Vec<String> = if n.contains('*') {
                    rel.names().into_iter().filter(|c| glob_match(&n, c)).collect()
                } else {
                    rel.schema.get(&n).map(|c| vec![c.name.clone()]).unwrap_or_default()
                };
                for m in matched {
                    if !out.contains(&m) {
                        out.push(m);
                    }
                }
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
        let plan = super::project(rel.plan.clone(), exprs)?;
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
            if v.ty == KqlType::Real {
                // Kusto orders NaN with the nulls (just after them when nulls come first, just
                // before them when last); DataFusion puts NaN above +inf.
                let nan_as_null = datafusion::logical_expr::when(
                    datafusion::functions::math::expr_fn::isnan(v.expr.clone()),
                    datafusion::logical_expr::lit(datafusion::common::ScalarValue::Float64(None)),
                )
                .otherwise(v.expr.clone())?;
                sorts.push(nan_as_null.sort(!desc, nulls_first));
            }
            sorts.push(v.expr.sort(!desc, nulls_first));
        }
        let plan = super::sort_plan(rel.plan, sorts)?;
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
        // Columns a `*` argument does not repeat: the keys and the columns they are made of.
        let mut key_names: Vec<String> = Vec::new();
        let mut counter = 0;
        for it in &s.by {
            if it.names.len() > 1 {
                return Err(self.unsupported("tuple names in summarize by", it.span));
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
            let name = Binder::unique_name(&name, &taken);
            if let ExprKind::Ident(i) = &it.expr.kind {
                key_names.push(i.name.clone());
            }
            key_names.push(name.clone());
            group.push(v.expr.alias(name.clone()));
            cols.push(KqlColumn::new(name, v.ty));
        }
        let nkeys = cols.len();
        let mut aggs = Vec::new();
        // Aggregates computed for expressions over aggregates (`sum(x) / count()`): hidden columns.
        let mut hidden: Vec<KqlColumn> = Vec::new();
        // Output items after the keys: an aggregate column, or an expression over hidden columns.
        let mut outputs: Vec<(String, Option<ast::Expr>)> = Vec::new();
        for it in &s.aggregates {
            let direct = match &it.expr.kind {
                ExprKind::Call { name, args } if functions::is_aggregate(&name.name) && scope.get(&name.name).is_none() => {
                    Some((name.name.clone(), args.clone()))
                }
                _ => None,
            };
            if let Some((fname, args)) = direct {
                let lowered = self.lower_aggregate(&rel, &fname, &args, &key_names, scope, it.expr.span)?;
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
                    cols.push(KqlColumn::new(name.clone(), l.ty));
                    outputs.push((name, None));
                }
                continue;
            }
            if it.names.len() > 1 {
                return Err(self.unsupported("tuple names for a summarize expression", it.span));
            }
            // An expression over aggregates: compute each aggregate as a hidden column, then
            // the expression over them.
            let mut found: Vec<ast::Expr> = Vec::new();
            let first_hidden = hidden.len();
            let rewritten = rewrite_aggregates(&it.expr, scope, &mut found, first_hidden);
            if found.is_empty() {
                if let ExprKind::Call { name, .. } = &it.expr.kind
                    && scope.get(&name.name).is_none()
                    && !functions::is_aggregate(&name.name)
                {
                    return Err(self.unsupported(format!("aggregate function '{}'", name.name), name.span));
                }
                return Err(self.semantic("a summarize expression must contain an aggregate function", it.expr.span));
            }
            let mut agg_names: Vec<((usize, usize), String)> = Vec::new();
            for (k, call) in found.iter().enumerate() {
                let ExprKind::Call { name, args } = &call.kind else {
                    return Err(PlanError::Internal("aggregate call expected".into()));
                };
                let mut lowered = self.lower_aggregate(&rel, &name.name, args, &key_names, scope, call.span)?;
                if lowered.len() != 1 {
                    return Err(self.unsupported(
                        format!("'{}' with several result columns inside an expression", name.name),
                        call.span,
                    ));
                }
                let l = lowered.remove(0);
                let hname = hidden_agg_name(first_hidden + k);
                agg_names.push(((call.span.start, call.span.end), l.default_name.clone()));
                aggs.push(l.expr.alias(hname.clone()));
                hidden.push(KqlColumn::new(hname, l.ty));
            }
            let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).chain(outputs.iter().map(|o| o.0.clone())).collect();
            let name = match it.names.first() {
                Some(n) => n.name.clone(),
                None => {
                    let lookup = |e: &ast::Expr| {
                        agg_names.iter().find(|(sp, _)| *sp == (e.span.start, e.span.end)).map(|(_, n)| n.clone())
                    };
                    match result_name(&it.expr, &lookup) {
                        Some(n) if !n.is_empty() => n,
                        _ => Binder::next_column_name(&mut counter, &taken),
                    }
                }
            };
            let name = Binder::unique_name(&name, &taken);
            outputs.push((name, Some(rewritten)));
        }
        if group.is_empty() && aggs.is_empty() {
            return Err(self.semantic("summarize needs aggregates or 'by' columns", span));
        }
        let plan = rel.builder().aggregate(group, aggs)?.build()?;
        // Exact types for every aggregate output (keys, aggregates, hidden aggregates).
        let mut all = cols.clone();
        all.extend(hidden.iter().cloned());
        let out = Rel::new(plan, KqlSchema::new(all.clone()));
        // A cast only where the aggregate's type differs (`cast_to` keeps an expression of the
        // right type as it is); when none does, the aggregate's output is already typed and
        // the projection is left out, sparing every later planning stage a node.
        let mut exact = true;
        let exprs: Vec<DfExpr> = all
            .iter()
            .map(|c| {
                let e = out.col(&c.name)?.expr;
                let typed = datafusion::logical_expr::ExprSchemable::cast_to(e.clone(), &c.ty.arrow_type(), out.plan.schema())?;
                exact &= typed == e;
                Ok(typed.alias(c.name.clone()))
            })
            .collect::<Result<_>>()?;
        let same_names = out.plan.schema().fields().iter().map(|f| f.name()).eq(all.iter().map(|c| &c.name));
        let plan = if exact && same_names {
            out.plan
        } else {
            super::project(out.plan.clone(), exprs)?
        };
        let typed = Rel::new(plan, KqlSchema::new(all));
        if hidden.is_empty() {
            return Ok(Rel::new(typed.plan, KqlSchema::new(cols)));
        }
        // Kusto's column order: keys first, then the items in order.
        let mut exprs = Vec::new();
        let mut final_cols = Vec::new();
        for c in &cols[..nkeys] {
            exprs.push(typed.col(&c.name)?.expr.alias(c.name.clone()));
            final_cols.push(c.clone());
        }
        for (name, e) in &outputs {
            let v = match e {
                None => typed.col(name)?,
                Some(e) => self.bind_scalar(e, Some(&typed), scope)?,
            };
            exprs.push(v.expr.alias(name.clone()));
            final_cols.push(KqlColumn::new(name.clone(), v.ty));
        }
        let plan = super::project(typed.plan.clone(), exprs)?;
        Ok(Rel::new(plan, KqlSchema::new(final_cols)))
    }

    /// Lowers one aggregate call over `rel`, expanding `*` arguments (without repeating the
    /// `by` keys, the first argument of `arg_max`/`arg_min`, or a column twice).
    fn lower_aggregate(
        &mut self,
        rel: &Rel,
        fname: &str,
        args: &[ast::Arg],
        key_names: &[String],
        scope: &Scope,
        span: Span,
    ) -> Result<Vec<functions::AggregateLowering>> {
        let mut vals = Vec::new();
        let mut arg_names: Vec<Option<String>> = Vec::new();
        let has_star = args.iter().any(|a| matches!(a.expr().kind, ExprKind::Star));
        let is_arg_ext = matches!(fname, "arg_max" | "arg_min");
        for a in args {
            let e = a.expr();
            if matches!(e.kind, ExprKind::Star) {
                let skip_first = if is_arg_ext { arg_names.first().cloned().flatten() } else { None };
                for c in &rel.schema.columns {
                    if key_names.contains(&c.name) || skip_first.as_deref() == Some(c.name.as_str()) {
                        continue;
                    }
                    vals.push(rel.col(&c.name)?);
                    arg_names.push(Some(c.name.clone()));
                }
                continue;
            }
            // An argument's name, as Kusto derives it through conversions and functions that
            // keep their argument's name (`avg(abs(x))` is `avg_x`, `sum(x * 2)` is `sum_`).
            let name = Binder::derived_name(e);
            vals.push(self.bind_scalar(e, Some(rel), scope)?);
            arg_names.push(name);
        }
        if has_star {
            // With `*`, a column is not repeated.
            let mut seen: Vec<String> = Vec::new();
            let mut keep_vals = Vec::new();
            let mut keep_names = Vec::new();
            for (v, n) in vals.into_iter().zip(arg_names) {
                if let Some(n) = &n {
                    if seen.contains(n) {
                        continue;
                    }
                    seen.push(n.clone());
                }
                keep_vals.push(v);
                keep_names.push(n);
            }
            vals = keep_vals;
            arg_names = keep_names;
        }
        let lowered = if functions::is_multi_column_aggregate(fname) {
            functions::lower_aggregate_columns(fname, vals, arg_names)
        } else {
            functions::lower_aggregate_call(fname, vals, arg_names).map(|l| vec![l])
        };
        lowered.map_err(|e| e.with_span(self.err_span(span)))
    }

    /// Window functions over serialized rows (`row_number`, `prev`, `next`, `row_cumsum`) in
    /// `items`: numbers the rows in their current order (`__kql_rn`), computes each call as a
    /// hidden column (innermost calls first, so `row_number(1, prev(g) != g)` works), and
    /// returns the items with the calls replaced by those columns.
    fn plan_windows(&mut self, rel: Rel, items: &[ast::NamedExpr], scope: &Scope) -> Result<Windowed> {
        if !items.iter().any(|it| contains_window_call(&it.expr, scope)) {
            return Ok(Windowed::No(rel));
        }
        use datafusion::functions_window::expr_fn::row_number;
        // Number the rows in their serialized order: the order of the sort they come from
        // (DataFusion drops a sort that nothing above requires), else the input order.
        let plan = match input_ordering(&rel.plan) {
            Some(order) => {
                use datafusion::logical_expr::ExprFunctionExt;
                rel.builder().window(vec![row_number().order_by(order).build()?.alias(ROW_NUMBER_COL)])?.build()?
            }
            // A sort whose keys the projections above it drop: number the rows right above
            // the sort, and carry the number up.
            None => match number_in_sort_order(&rel.plan)? {
                Some(plan) => plan,
                None => rel.builder().window(vec![row_number().alias(ROW_NUMBER_COL)])?.build()?,
            },
        };
        let mut cols = rel.schema.columns.clone();
        cols.push(KqlColumn::new(ROW_NUMBER_COL, KqlType::Long));
        let mut rel = Rel::new(plan, KqlSchema::new(cols));
        let mut items: Vec<ast::NamedExpr> = items.to_vec();
        let mut next_id = 0usize;
        loop {
            let mut found: Vec<(String, ast::Expr)> = Vec::new();
            for it in &mut items {
                rewrite_innermost_windows(&mut it.expr, scope, &mut found, &mut next_id);
            }
            if found.is_empty() {
                break;
            }
            for (name, call) in found {
                rel = self.plan_window_call(rel, &name, &call, scope)?;
            }
        }
        Ok(Windowed::Yes(rel, items))
    }

    /// Adds one window call as column `name`.
    fn plan_window_call(&mut self, rel: Rel, name: &str, call: &ast::Expr, scope: &Scope) -> Result<Rel> {
        use datafusion::functions_window::expr_fn::{lag, lead, row_number};
        use datafusion::logical_expr::expr::WindowFunction;
        use datafusion::logical_expr::{ExprFunctionExt, WindowFrame, WindowFunctionDefinition};
        let ExprKind::Call { name: fname, args } = &call.kind else {
            return Err(PlanError::Internal("window call expected".into()));
        };
        let order = || -> Result<Vec<SortExpr>> { Ok(vec![rel.col(ROW_NUMBER_COL)?.expr.sort(true, false)]) };
        let mut vals = Vec::new();
        for a in args {
            vals.push(self.bind_scalar(a.expr(), Some(&rel), scope)?);
        }
        let fname = fname.name.as_str();
        // `restart` arguments: number the groups (a running count of restarts), then partition by it.
        let restart_idx = match fname {
            "row_number" | "row_cumsum" | "row_rank_dense" | "row_rank_min" => Some(1),
            "row_window_session" => Some(3),
            _ => None,
        };
        let mut rel = rel.clone();
        let mut partition: Vec<DfExpr> = Vec::new();
        if let Some(i) = restart_idx
            && let Some(r) = vals.get(i).cloned()
        {
            if r.ty != KqlType::Bool {
                return Err(self.semantic(format!("{fname}(): the restart argument must be bool"), call.span));
            }
            let flag = datafusion::logical_expr::when(r.expr.is_true(), lit(1i64)).otherwise(lit(0i64))?;
            let grp_name = format!("{name}_grp");
            let grp = DfExpr::from(WindowFunction::new(
                WindowFunctionDefinition::AggregateUDF(datafusion::functions_aggregate::sum::sum_udaf()),
                vec![flag],
            ))
            .order_by(order()?)
            .window_frame(WindowFrame::new(Some(true)))
            .build()?
            .alias(grp_name.clone());
            let plan = rel.builder().window(vec![grp])?.build()?;
            let mut cols = rel.schema.columns.clone();
            cols.push(KqlColumn::new(grp_name.clone(), KqlType::Long));
            rel = Rel::new(plan, KqlSchema::new(cols));
            partition.push(rel.col(&grp_name)?.expr);
        }
        let order = vec![rel.col(ROW_NUMBER_COL)?.expr.sort(true, false)];
        let (expr, ty) = match fname {
            "row_number" => {
                if vals.len() > 2 {
                    return Err(self.semantic("row_number() takes at most 2 arguments", call.span));
                }
                let start = match vals.first() {
                    Some(v) => super::scalar::const_i128(v)
                        .and_then(|x| i64::try_from(x).ok())
                        .ok_or_else(|| self.semantic("row_number(): the start must be a constant integer", call.span))?,
                    None => 1,
                };
                let rn = row_number().partition_by(partition).order_by(order).build()?;
                (cast(rn, KqlType::Long.arrow_type()) + lit(start - 1), KqlType::Long)
            }
            "prev" | "next" => {
                if vals.is_empty() || vals.len() > 3 {
                    return Err(self.semantic(format!("{fname}() takes 1 to 3 arguments"), call.span));
                }
                let v = vals.remove(0);
                let offset = match vals.first() {
                    Some(o) => super::scalar::const_i128(o)
                        .and_then(|x| i64::try_from(x).ok())
                        .ok_or_else(|| self.semantic(format!("{fname}(): the offset must be a constant integer"), call.span))?,
                    None => 1,
                };
                let default = match vals.get(1) {
                    Some(d) => {
                        let d = if d.ty == v.ty { d.clone() } else { functions::lower_cast(d.clone(), v.ty)? };
                        match super::scalar::const_value(&d) {
                            Some(x) => x.cast_to(&v.ty.arrow_type())?,
                            None => return Err(self.semantic(format!("{fname}(): the default must be a constant"), call.span)),
                        }
                    }
                    // Strings are never null in Kusto.
                    None if v.ty == KqlType::String => ScalarValue::Utf8(Some(String::new())),
                    None => ScalarValue::try_from(&v.ty.arrow_type())?,
                };
                let f = if fname == "prev" { lag(v.expr, Some(offset), Some(default)) } else { lead(v.expr, Some(offset), Some(default)) };
                (f.order_by(order).build()?, v.ty)
            }
            "row_rank_dense" | "row_rank_min" => {
                if vals.is_empty() || vals.len() > 2 {
                    return Err(self.semantic(format!("{fname}() takes 1 or 2 arguments"), call.span));
                }
                let (r, f) = self.plan_row_rank(rel, name, fname == "row_rank_min", vals.remove(0), partition)?;
                rel = r;
                (f, KqlType::Long)
            }
            "row_window_session" => {
                if vals.len() < 3 || vals.len() > 4 {
                    return Err(self.semantic("row_window_session() takes 3 or 4 arguments", call.span));
                }
                let v = vals.remove(0);
                if v.ty != KqlType::Datetime {
                    return Err(self.semantic("row_window_session(): the first argument must be a datetime", call.span));
                }
                let mut span_arg = |what: &str| -> Result<i64> {
                    let d = vals.remove(0);
                    let d = if d.ty == KqlType::Timespan { d } else { functions::lower_cast(d, KqlType::Timespan)? };
                    match super::scalar::const_value(&d) {
                        Some(ScalarValue::DurationNanosecond(Some(n))) => Ok(n),
                        _ => Err(self.semantic(format!("row_window_session(): {what} must be a constant timespan"), call.span)),
                    }
                };
                let max_from_first = span_arg("MaxDistanceFromFirst")?;
                let max_between = span_arg("MaxDistanceBetweenNeighbors")?;
                let udwf = datafusion::logical_expr::WindowUDF::from(RowWindowSession::new(max_from_first, max_between));
                let f = udwf
                    .call(vec![cast(v.expr, datafusion::arrow::datatypes::DataType::Int64)])
                    .partition_by(partition)
                    .order_by(order)
                    .build()?;
                (cast(f, KqlType::Datetime.arrow_type()), KqlType::Datetime)
            }
            "row_cumsum" => {
                if vals.is_empty() || vals.len() > 2 {
                    return Err(self.semantic("row_cumsum() takes 1 or 2 arguments", call.span));
                }
                let v = vals.remove(0);
                let v = match v.ty {
                    KqlType::Int | KqlType::Bool => functions::lower_cast(v, KqlType::Long)?,
                    KqlType::Long | KqlType::Real | KqlType::Decimal | KqlType::Timespan => v,
                    t => return Err(self.semantic(format!("row_cumsum() is not defined for {t}"), call.span)),
                };
                let ty = v.ty;
                let f = DfExpr::from(WindowFunction::new(
                    WindowFunctionDefinition::AggregateUDF(datafusion::functions_aggregate::sum::sum_udaf()),
                    vec![v.expr],
                ))
                .partition_by(partition)
                .order_by(order)
                .window_frame(WindowFrame::new(Some(true)))
                .build()?;
                (cast(f, ty.arrow_type()), ty)
            }
            other => return Err(PlanError::Internal(format!("not a window function: {other}"))),
        };
        // The window node holds the bare window expression; the cast/offset go in a projection.
        let (win, post) = split_window_expr(expr);
        let tmp = format!("{name}_raw");
        let plan = rel.builder().window(vec![win.alias(tmp.clone())])?.build()?;
        let mut exprs: Vec<DfExpr> = Vec::new();
        let mut cols = Vec::new();
        for c in &rel.schema.columns {
            exprs.push(column_ref(&c.name));
            cols.push(c.clone());
        }
        exprs.push(post(column_ref(&tmp)).alias(name.to_string()));
        cols.push(KqlColumn::new(name.to_string(), ty));
        let plan = super::project(plan, exprs)?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    /// `row_rank_dense(Term)` / `row_rank_min(Term)` within the `partition` (restart groups):
    /// a row starts a new rank when it is the partition's first or its *Term* differs from the
    /// previous row's. Dense ranks count those starts; min ranks are the row number (in the
    /// partition) of the start. Adds hidden helper columns to `rel`; returns the window
    /// expression giving the rank.
    fn plan_row_rank(&mut self, rel: Rel, name: &str, min: bool, term: TypedExpr, partition: Vec<DfExpr>) -> Result<(Rel, DfExpr)> {
        use datafusion::functions_window::expr_fn::{lag, row_number};
        use datafusion::logical_expr::expr::WindowFunction;
        use datafusion::logical_expr::{ExprFunctionExt, Operator, WindowFrame, WindowFunctionDefinition, binary_expr, when};
        let order = vec![rel.col(ROW_NUMBER_COL)?.expr.sort(true, false)];
        let prev_name = format!("{name}_prev");
        let pn_name = format!("{name}_pn");
        let prev = lag(term.expr.clone(), Some(1), None)
            .partition_by(partition.clone())
            .order_by(order.clone())
            .build()?
            .alias(prev_name.clone());
        let pn = row_number().partition_by(partition.clone()).order_by(order.clone()).build()?.alias(pn_name.clone());
        let plan = rel.builder().window(vec![prev, pn])?.build()?;
        // The start flag (1/0) or, for min ranks, the start's row number (null elsewhere).
        let start_name = format!("{name}_start");
        let pn_col = column_ref(&pn_name);
        let is_start = pn_col.clone().eq(lit(1u64)).or(binary_expr(column_ref(&prev_name), Operator::IsDistinctFrom, term.expr));
        let start = if min {
            when(is_start, cast(pn_col, KqlType::Long.arrow_type())).otherwise(lit(ScalarValue::Int64(None)))?
        } else {
            when(is_start, lit(1i64)).otherwise(lit(0i64))?
        };
        let mut exprs: Vec<DfExpr> = Vec::new();
        let mut cols = Vec::new();
        for c in &rel.schema.columns {
            exprs.push(column_ref(&c.name));
            cols.push(c.clone());
        }
        exprs.push(start.alias(start_name.clone()));
        cols.push(KqlColumn::new(start_name.clone(), KqlType::Long));
        let plan = super::project(plan, exprs)?;
        let rel = Rel::new(plan, KqlSchema::new(cols));
        let agg = if min { datafusion::functions_aggregate::min_max::max_udaf() } else { datafusion::functions_aggregate::sum::sum_udaf() };
        let f = DfExpr::from(WindowFunction::new(WindowFunctionDefinition::AggregateUDF(agg), vec![column_ref(&start_name)]))
            .partition_by(partition)
            .order_by(vec![rel.col(ROW_NUMBER_COL)?.expr.sort(true, false)])
            .window_frame(WindowFrame::new(Some(true)))
            .build()?;
        Ok((rel, cast(f, KqlType::Long.arrow_type())))
    }

    /// `mv-expand`: one row per element of the expanded dynamic values (zipped when there are
    /// several; rows whose values are all empty or null are dropped), elements typed dynamic
    /// unless `to typeof(t)`; `with_itemindex=I` adds the element index.
    fn plan_mv_expand(&mut self, rel: Rel, m: &ast::MvExpand, scope: &Scope, span: Span) -> Result<Rel> {
        let mut bag_as_array = false;
        let mut index_name: Option<String> = None;
        for p in &m.params {
            match p.name.name.to_ascii_lowercase().as_str() {
                "kind" => {
                    let w = param_word(&p.value).unwrap_or_default().to_ascii_lowercase();
                    bag_as_array = match w.as_str() {
                        "bag" => false,
                        "array" => true,
                        other => return Err(self.semantic(format!("mv-expand kind must be bag or array, not '{other}'"), p.span)),
                    };
                }
                "bagexpansion" => {
                    let w = param_word(&p.value).unwrap_or_default().to_ascii_lowercase();
                    bag_as_array = w == "array";
                }
                "with_itemindex" => index_name = param_word(&p.value),
                n if n.starts_with("hint.") => {}
                _ => return Err(self.semantic(format!("unknown mv-expand parameter '{}'", p.name.name), p.span)),
            }
        }
        let limit = match &m.limit {
            Some(l) => Some(i64::try_from(self.const_count(l, scope)?).unwrap_or(i64::MAX)),
            None => None,
        };
        let mut values = Vec::new();
        let mut outs: Vec<(String, Option<KqlType>)> = Vec::new();
        let mut counter = 0;
        for it in &m.items {
            if it.expr.names.len() > 1 {
                return Err(self.unsupported("tuple names in mv-expand", it.span));
            }
            let v = self.bind_scalar(&it.expr.expr, Some(&rel), scope)?;
            let name = match it.expr.names.first() {
                Some(n) => n.name.clone(),
                None => match Binder::derived_name(&it.expr.expr) {
                    Some(n) => n,
                    None => Binder::next_column_name(&mut counter, &rel.names()),
                },
            };
            let to = match &it.to_type {
                Some(t) => Some(self.type_name(t)?),
                None => None,
            };
            values.push(v);
            outs.push((name, to));
        }
        if values.is_empty() {
            return Err(self.semantic("mv-expand needs a column or expression to expand", span));
        }
        const MV: &str = "__kql_mv";
        let call = functions::mv_expand_call(values, bag_as_array, limit)?;
        let mut exprs: Vec<DfExpr> = Vec::new();
        for c in &rel.schema.columns {
            exprs.push(rel.col(&c.name)?.expr.alias(c.name.clone()));
        }
        exprs.push(call.alias(MV));
        let plan = rel
            .builder()
            .project(exprs)?
            .unnest_column(datafusion::common::Column::new_unqualified(MV))?
            .build()?;
        let tuple = TypedExpr::new(column_ref(MV), KqlType::Dynamic);
        let element = |k: i64| functions::lower_index(tuple.clone(), TypedExpr::new(lit(k), KqlType::Long));
        let mut item_exprs: Vec<(String, TypedExpr)> = Vec::new();
        for (k, (name, to)) in outs.iter().enumerate() {
            let mut e = element(k as i64 + 1)?;
            if let Some(t) = to {
                e = functions::lower_cast(e, *t)?;
            }
            item_exprs.push((name.clone(), e));
        }
        let mut exprs = Vec::new();
        let mut cols: Vec<KqlColumn> = Vec::new();
        for c in &rel.schema.columns {
            match item_exprs.iter().position(|(n, _)| n == &c.name) {
                Some(i) => {
                    let (n, e) = item_exprs.remove(i);
                    exprs.push(e.expr.alias(n.clone()));
                    cols.push(KqlColumn::new(n, e.ty));
                }
                None => {
                    exprs.push(column_ref(&c.name).alias(c.name.clone()));
                    cols.push(c.clone());
                }
            }
        }
        for (n, e) in item_exprs {
            exprs.push(e.expr.alias(n.clone()));
            cols.push(KqlColumn::new(n, e.ty));
        }
        if let Some(ix) = index_name {
            let taken: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
            let ix = Binder::unique_name(&ix, &taken);
            let e = functions::lower_cast(element(0)?, KqlType::Long)?;
            exprs.push(e.expr.alias(ix.clone()));
            cols.push(KqlColumn::new(ix, KqlType::Long));
        }
        let plan = super::project(plan, exprs)?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    fn plan_getschema(&mut self, rel: Rel) -> Result<Rel> {
        let mut rows = Vec::new();
        for (i, c) in rel.schema.columns.iter().enumerate() {
            rows.push(vec![
                lit(c.name.clone()),
                lit(i as i64),
                lit(c.ty.dotnet_name().to_string()),
                lit(c.ty.name().to_string()),
            ]);
        }
        let schema = KqlSchema::new(vec![
            KqlColumn::new("ColumnName", KqlType::String),
            KqlColumn::new("ColumnOrdinal", KqlType::Long),
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
        let plan = super::project(plan, exprs)?;
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
        if j.on.is_empty() {
            // Without `on`, Kusto joins on the columns the two sides have in common.
            keys = left.names().into_iter().filter(|n| right.schema.get(n).is_some()).map(|n| (n.clone(), n)).collect();
        }
        if keys.is_empty() {
            return Err(self.semantic("join needs at least one 'on' key (the two sides have no column in common)", span));
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
        // Strings are never null in Kusto: the missing side of an outer join gives "".
        let fill = |e: DfExpr, ty: KqlType, outer: bool| {
            if outer && ty == KqlType::String {
                crate::functions::coalesce(vec![e, lit("")])
            } else {
                e
            }
        };
        let left_nullable = matches!(join_type, JoinType::Right | JoinType::Full);
        let right_nullable = matches!(join_type, JoinType::Left | JoinType::Full);
        if !right_only {
            for c in &left.schema.columns {
                exprs.push(fill(lcol(&c.name), c.ty, left_nullable).alias(c.name.clone()));
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
                exprs.push(fill(rcol(&c.name), c.ty, right_nullable).alias(name.clone()));
                cols.push(KqlColumn::new(name, c.ty));
            }
        }
        let plan = super::project(joined, exprs)?;
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
        let plan = super::project(rel.plan.clone(), exprs)?;
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





/// Functions whose result column is named after their first argument (`round(x)` -> `x`).
const NAME_FIRST_ARG: &[&str] = &[
    "round", "abs", "floor", "bin", "bin_at", "ceiling", "sqrt", "pow", "exp", "exp2", "exp10", "log", "log2",
    "log10", "split", "tohex", "tolong", "toint", "toreal", "todouble", "tostring", "tobool", "toboolean",
    "todatetime", "totimespan", "totime", "todecimal", "toguid", "todynamic", "toobject", "parse_json", "cos", "sin",
    "tan", "acos", "asin", "atan", "atan2", "startofday", "format_datetime", "format_timespan",
];

/// Kusto's result name of an expression (Kusto.Language `GetExpressionResultName`): a column
/// keeps its name, `d.a` gives `d_a`, some functions propagate or prefix their first
/// argument's name, aggregates are named by `agg` (e.g. `sum_x`); `None` otherwise.
pub(crate) fn result_name(e: &ast::Expr, agg: &dyn Fn(&ast::Expr) -> Option<String>) -> Option<String> {
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    match &e.kind {
        ExprKind::Ident(i) => Some(i.name.clone()),
        ExprKind::Paren(inner) => result_name(inner, agg),
        ExprKind::Member { expr, name } => match non_empty(result_name(expr, agg)) {
            Some(l) => Some(format!("{l}_{}", name.name)),
            None => Some(name.name.clone()),
        },
        ExprKind::Index { expr, index } => {
            let right = match &index.kind {
                ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => s.clone(),
                ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::Long(n), .. }) => n.to_string(),
                ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::Int(n), .. }) => n.to_string(),
                _ => return None,
            };
            match non_empty(result_name(expr, agg)) {
                Some(l) => Some(format!("{l}_{right}")),
                None => Some(right),
            }
        }
        ExprKind::Call { name, args } => {
            if functions::is_aggregate(&name.name) {
                return agg(e);
            }
            let first = || args.first().and_then(|a| non_empty(result_name(a.expr(), agg)));
            match name.name.as_str() {
                n if NAME_FIRST_ARG.contains(&n) => first(),
                "strlen" | "string_size" | "dcount_hll" | "percentile_tdigest" => Some(format!("{}_{}", name.name, first().unwrap_or_default())),
                "gettype" => Some(format!("type_{}", first().unwrap_or_default())),
                "percentiles_array_tdigest" => Some(format!("percentile_tdigest_{}", first().unwrap_or_default())),
                "treepath" => Some(format!("tree_{}", first().unwrap_or_default())),
                "merge_tdigest" => Some("tdigests_merge_result".to_string()),
                "hll_merge" => Some("hll_merged_result".to_string()),
                "array_sort_asc" | "array_sort_desc" => first().map(|f| format!("{f}_sorted")),
                _ => None,
            }
        }
        _ => None,
    }
}

fn hidden_agg_name(i: usize) -> String {
    format!("__kql_agg{i}")
}

/// A copy of `e` with each aggregate call replaced by a reference to a hidden column
/// (`__kql_aggN`, numbered from `first`); the calls are appended to `found`, in source order.
/// Subqueries and lambdas are left alone: their aggregates are their own.
fn rewrite_aggregates(e: &ast::Expr, scope: &Scope, found: &mut Vec<ast::Expr>, first: usize) -> ast::Expr {
    struct Aggregates<'a> {
        scope: &'a Scope,
        found: &'a mut Vec<ast::Expr>,
        first: usize,
    }
    impl VisitorMut for Aggregates<'_> {
        fn visit_expr(&mut self, e: &mut ast::Expr) {
            if let ExprKind::Call { name, .. } = &e.kind
                && functions::is_aggregate(&name.name)
                && self.scope.get(&name.name).is_none()
            {
                let id = hidden_agg_name(self.first + self.found.len());
                self.found.push(e.clone());
                e.kind = ExprKind::Ident(ast::Ident::new(id, e.span));
            } else if !e.is_query_boundary() {
                visit_mut::walk_expr(self, e);
            }
        }
    }
    let mut out = e.clone();
    Aggregates { scope, found, first }.visit_expr(&mut out);
    out
}

/// The serialized row number column added for window functions.
const ROW_NUMBER_COL: &str = "__kql_rn";

/// A column's name and value.
pub(crate) type NamedValue = (String, TypedExpr);

/// The hidden column holding the bag of fields of a function that gives several columns.
const MULTI_BAG: &str = "__kql_multi";

fn is_hidden(name: &str) -> bool {
    name.starts_with("__kql_")
}

fn column_ref(name: &str) -> DfExpr {
    DfExpr::Column(datafusion::common::Column::new_unqualified(name))
}

pub(crate) enum Windowed {
    No(Rel),
    Yes(Rel, Vec<ast::NamedExpr>),
}

/// Kusto's window functions: they read the serialized rows around the current one.
pub(crate) const WINDOW_FUNCTIONS: &[&str] =
    &["row_number", "prev", "next", "row_cumsum", "row_rank_dense", "row_rank_min", "row_window_session"];

/// `row_window_session(Expr, MaxDistanceFromFirst, MaxDistanceBetweenNeighbors)` over one
/// restart group, on the datetime as nanoseconds (Int64): each row gets its session's first
/// value. A session starts at the first row, after a null, and when the value reaches the
/// session start plus `max_from_first` or the previous value plus `max_between`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RowWindowSession {
    signature: datafusion::logical_expr::Signature,
    max_from_first: i64,
    max_between: i64,
}

impl RowWindowSession {
    fn new(max_from_first: i64, max_between: i64) -> Self {
        use datafusion::arrow::datatypes::DataType;
        use datafusion::logical_expr::{Signature, Volatility};
        RowWindowSession { signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable), max_from_first, max_between }
    }
}

impl datafusion::logical_expr::WindowUDFImpl for RowWindowSession {
    fn name(&self) -> &str {
        "kql_row_window_session"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: datafusion::logical_expr::function::PartitionEvaluatorArgs,
    ) -> datafusion::common::Result<Box<dyn datafusion::logical_expr::PartitionEvaluator>> {
        Ok(Box::new(RowWindowSessionEval { max_from_first: self.max_from_first, max_between: self.max_between }))
    }

    fn field(
        &self,
        field_args: datafusion::logical_expr::function::WindowUDFFieldArgs,
    ) -> datafusion::common::Result<datafusion::arrow::datatypes::FieldRef> {
        use datafusion::arrow::datatypes::{DataType, Field};
        Ok(std::sync::Arc::new(Field::new(field_args.name(), DataType::Int64, true)))
    }
}

#[derive(Debug)]
struct RowWindowSessionEval {
    max_from_first: i64,
    max_between: i64,
}

impl datafusion::logical_expr::PartitionEvaluator for RowWindowSessionEval {
    fn evaluate_all(
        &mut self,
        values: &[datafusion::arrow::array::ArrayRef],
        num_rows: usize,
    ) -> datafusion::common::Result<datafusion::arrow::array::ArrayRef> {
        use datafusion::arrow::array::{Array, Int64Array};
        let Some(v) = values.first().and_then(|a| a.as_any().downcast_ref::<Int64Array>()) else {
            return Err(datafusion::common::DataFusionError::Internal("row_window_session: Int64 input expected".into()));
        };
        let mut out: Vec<Option<i64>> = Vec::with_capacity(num_rows);
        let mut start: Option<i64> = None;
        let mut prev: Option<i64> = None;
        for i in 0..num_rows {
            if v.is_null(i) {
                out.push(None);
                start = None;
                prev = None;
                continue;
            }
            let x = v.value(i);
            let new_session = match (start, prev) {
                (Some(s), Some(p)) => x >= s.saturating_add(self.max_from_first) || x >= p.saturating_add(self.max_between),
                _ => true,
            };
            if new_session {
                start = Some(x);
            }
            prev = Some(x);
            out.push(start);
        }
        Ok(std::sync::Arc::new(Int64Array::from(out)))
    }
}

fn is_window_call(e: &ast::Expr, scope: &Scope) -> bool {
    matches!(&e.kind, ExprKind::Call { name, .. } if WINDOW_FUNCTIONS.contains(&name.name.as_str()) && scope.get(&name.name).is_none())
}

/// Whether `e` calls a window function outside its subqueries and lambdas.
fn contains_window_call(e: &ast::Expr, scope: &Scope) -> bool {
    struct HasWindow<'s> {
        scope: &'s Scope,
        found: bool,
    }
    impl Visitor<'_> for HasWindow<'_> {
        fn visit_expr(&mut self, e: &ast::Expr) {
            if self.found || e.is_query_boundary() {
                return;
            }
            if is_window_call(e, self.scope) {
                self.found = true;
            } else {
                visit::walk_expr(self, e);
            }
        }
    }
    let mut v = HasWindow { scope, found: false };
    v.visit_expr(e);
    v.found
}

/// Replaces the window calls of `e` that contain no other window call by hidden column
/// names; returns whether `e` contained a window call (outside its subqueries and lambdas).
fn rewrite_innermost_windows(e: &mut ast::Expr, scope: &Scope, found: &mut Vec<(String, ast::Expr)>, next: &mut usize) -> bool {
    struct Innermost<'a> {
        scope: &'a Scope,
        found: &'a mut Vec<(String, ast::Expr)>,
        next: &'a mut usize,
        /// A window call was seen in the subtree being walked.
        seen: bool,
    }
    impl VisitorMut for Innermost<'_> {
        fn visit_expr(&mut self, e: &mut ast::Expr) {
            if e.is_query_boundary() {
                return;
            }
            let before = std::mem::take(&mut self.seen);
            visit_mut::walk_expr(self, e);
            if is_window_call(e, self.scope) {
                if !self.seen {
                    let name = format!("__kql_win{}", *self.next);
                    *self.next += 1;
                    self.found.push((name.clone(), e.clone()));
                    e.kind = ExprKind::Ident(ast::Ident::new(name, e.span));
                }
                self.seen = true;
            }
            self.seen |= before;
        }
    }
    let mut v = Innermost { scope, found, next, seen: false };
    v.visit_expr(e);
    v.seen
}

/// Splits `cast(window) + k` style expressions into the window expression and the function
/// applying the rest to its result column.
fn split_window_expr(e: DfExpr) -> (DfExpr, Box<dyn Fn(DfExpr) -> DfExpr>) {
    match e {
        DfExpr::WindowFunction(_) => (e, Box::new(|x| x)),
        DfExpr::Cast(c) => {
            let to = c.field.data_type().clone();
            let (w, f) = split_window_expr(*c.expr);
            (w, Box::new(move |x| cast(f(x), to.clone())))
        }
        DfExpr::BinaryExpr(b) => {
            let (w, f) = split_window_expr(*b.left);
            let op = b.op;
            let right = *b.right;
            (w, Box::new(move |x| datafusion::logical_expr::binary_expr(f(x), op, right.clone())))
        }
        other => (other, Box::new(|x| x)),
    }
}

/// The ordering of a plan's rows from the sort it ends in (through `take` and projections that
/// pass the sort columns through unchanged), as sort expressions over the plan's output.
/// `plan` with the row number column (`ROW_NUMBER_COL`) computed in the order of the sort
/// below its projections and carried up through them, when only projections stand between
/// its top and a sort (`T | sort by k | project a | serialize n = row_number()`: DataFusion
/// drops a sort that nothing above requires, and the projection drops `k`).
fn number_in_sort_order(plan: &datafusion::logical_expr::LogicalPlan) -> Result<Option<datafusion::logical_expr::LogicalPlan>> {
    use datafusion::logical_expr::{ExprFunctionExt, LogicalPlan, LogicalPlanBuilder};
    use datafusion::functions_window::expr_fn::row_number;
    Ok(match plan {
        LogicalPlan::Sort(s) if s.fetch.is_none() => {
            let rn = row_number().order_by(s.expr.clone()).build()?.alias(ROW_NUMBER_COL);
            Some(LogicalPlanBuilder::from(plan.clone()).window(vec![rn])?.build()?)
        }
        LogicalPlan::Projection(p) => match number_in_sort_order(&p.input)? {
            Some(inner) => {
                let mut exprs = p.expr.clone();
                exprs.push(DfExpr::Column(datafusion::common::Column::new_unqualified(ROW_NUMBER_COL)));
                Some(LogicalPlanBuilder::from(inner).project(exprs)?.build()?)
            }
            None => None,
        },
        _ => None,
    })
}

pub(crate) fn input_ordering(plan: &datafusion::logical_expr::LogicalPlan) -> Option<Vec<SortExpr>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::LogicalPlan;
    let mut p = plan;
    // Names that must pass through the projections between the plan's top and the sort.
    let mut projections: Vec<&datafusion::logical_expr::Projection> = Vec::new();
    let sort = loop {
        match p {
            LogicalPlan::Sort(s) => break s,
            LogicalPlan::Limit(l) => p = l.input.as_ref(),
            LogicalPlan::Projection(pr) => {
                projections.push(pr);
                p = pr.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(a) => p = a.input.as_ref(),
            // A materialized result keeps its input's order (`MaterializeExec`).
            LogicalPlan::Extension(e) if e.node.as_any().is::<crate::materialize_exec::MaterializeNode>() => match e.node.inputs().first() {
                Some(input) => p = input,
                None => return None,
            },
            _ => return None,
        }
    };
    let mut out = Vec::new();
    for se in &sort.expr {
        for c in se.expr.column_refs() {
            let passes = projections.iter().all(|pr| {
                pr.expr.iter().any(|e| match e {
                    DfExpr::Column(x) => x.name == c.name,
                    DfExpr::Alias(a) => a.name == c.name && matches!(a.expr.as_ref(), DfExpr::Column(x) if x.name == c.name),
                    _ => false,
                })
            });
            if !passes {
                return None;
            }
        }
        let e = se
            .expr
            .clone()
            .transform(|e| {
                Ok(match e {
                    DfExpr::Column(c) => Transformed::yes(DfExpr::Column(datafusion::common::Column::new_unqualified(c.name))),
                    other => Transformed::no(other),
                })
            })
            .ok()?
            .data;
        out.push(SortExpr::new(e, se.asc, se.nulls_first));
    }
    Some(out)
}

/// A `where` predicate as a filter reads it. KQL comparisons are two-valued (`s == "a"` is
/// false, not null, when `s` is null), so the binder guards them: `s IS NOT NULL AND s = 'a'`.
/// A filter keeps only the rows where its predicate is true, and through `and`/`or` alone a
/// false and a null operand make the same rows true; so where the guarded comparison is null
/// whenever `s` is (a comparison with a non-null literal, an `in` list of them, and `and`/`or`
/// of those), the guard only costs an extra test per row, and is dropped. Nothing under a `not`
/// or inside any other operator is touched: there null and false differ.
pub(crate) fn as_filter(e: DfExpr) -> DfExpr {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    match e {
        DfExpr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            let (l, r) = (as_filter(*left), as_filter(*right));
            match (&l, &r) {
                (DfExpr::IsNotNull(x), p) if null_when_null(p, x) => r,
                (p, DfExpr::IsNotNull(x)) if null_when_null(p, x) => l,
                _ => l.and(r),
            }
        }
        DfExpr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => as_filter(*left).or(as_filter(*right)),
        // `and`/`or` read a null operand as false (`x IS TRUE`); reached from the filter's root
        // through `and`/`or` alone, a null and a false drop the row alike.
        DfExpr::IsTrue(x) => as_filter(*x),
        other => other,
    }
}

/// Whether `p` is null whenever `x` is.
fn null_when_null(p: &DfExpr, x: &DfExpr) -> bool {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let non_null_literal = |e: &DfExpr| matches!(e, DfExpr::Literal(v, _) if !v.is_null());
    match p {
        DfExpr::BinaryExpr(BinaryExpr { left, op: Operator::And | Operator::Or, right }) => {
            null_when_null(left, x) && null_when_null(right, x)
        }
        DfExpr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq,
            right,
        }) => (left.as_ref() == x && non_null_literal(right)) || (right.as_ref() == x && non_null_literal(left)),
        DfExpr::InList(il) => il.expr.as_ref() == x && il.list.iter().all(non_null_literal),
        _ => false,
    }
}

#[cfg(test)]
mod as_filter_tests {
    use super::as_filter;
    use datafusion::logical_expr::{Expr, col, lit};

    fn guarded(c: &str, p: Expr) -> Expr {
        col(c).is_not_null().and(p)
    }

    #[test]
    fn drops_the_guard_of_a_comparison_with_a_literal() {
        assert_eq!(as_filter(guarded("s", col("s").eq(lit("a")))), col("s").eq(lit("a")));
        let in_list = col("s").in_list(vec![lit("a"), lit("b")], false);
        assert_eq!(as_filter(guarded("s", in_list.clone())), in_list);
        let either = col("s").eq(lit("a")).or(col("s").eq(lit("b")));
        assert_eq!(as_filter(guarded("s", either.clone())), either);
        // Under `and` and `or` of the filter, both sides.
        let two = guarded("s", col("s").eq(lit("a"))).or(guarded("t", col("t").gt(lit(1))));
        assert_eq!(as_filter(two), col("s").eq(lit("a")).or(col("t").gt(lit(1))));
    }

    #[test]
    fn keeps_a_guard_that_decides_something() {
        // Another column, a null literal, a column on both sides, under a `not`.
        for e in [
            guarded("s", col("t").eq(lit("a"))),
            guarded("s", col("s").eq(lit(datafusion::common::ScalarValue::Utf8(None)))),
            guarded("s", col("s").eq(col("t"))),
            guarded("s", col("s").eq(lit("a")).or(col("t").eq(lit("b")))),
            Expr::Not(Box::new(guarded("s", col("s").eq(lit("a"))))),
        ] {
            assert_eq!(as_filter(e.clone()), e);
        }
    }
}
