//! Subqueries applied per group of rows (`partition`, `mv-apply`), and the grouping operators
//! `top-nested`, `top-hitters` and `sample-distinct`.
//!
//! DataFusion has no per-group subquery, so the documented subquery shapes are lowered onto
//! the whole input with a hidden group column (`__kqlg_grp`) and a hidden order-within-group
//! column (`__kqlg_ord`): row-wise operators run as they are, `summarize`/`count`/`distinct`
//! group by the group column too, and `take`/`top`/`sort` become window functions partitioned
//! by it. Any other operator inside such a subquery is reported as not supported.

use datafusion::common::{Column, JoinType, NullEquality};
use datafusion::logical_expr::{Expr as DfExpr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, SortExpr, cast, lit};
use kustodian_parser::ast::visit::{self, Visitor};
use kustodian_parser::ast::visit_mut::{self, VisitorMut};
use kustodian_parser::ast::{self, ExprKind, Operator, OperatorKind, Span};

use super::ops::WINDOW_FUNCTIONS;
use super::{Binder, Rel, Scope};
use crate::error::Result;
use crate::types::{KqlColumn, KqlSchema, KqlType};

/// The hidden group column (row id for `mv-apply`, key for `partition`).
pub(crate) const GROUP_COL: &str = "__kqlg_grp";
/// The hidden order of a row within its group.
pub(crate) const ORD_COL: &str = "__kqlg_ord";
const RN_COL: &str = "__kqlg_rn";
const IX_COL: &str = "__kqlg_ix";

pub(crate) fn col_ref(name: &str) -> DfExpr {
    DfExpr::Column(Column::new_unqualified(name))
}

pub(crate) fn qcol(q: &str, name: &str) -> DfExpr {
    DfExpr::Column(Column::new(Some(q), name))
}

pub(crate) fn ident(name: &str, span: Span) -> ast::Expr {
    ast::Expr::new(ExprKind::Ident(ast::Ident::new(name, span)), span)
}

pub(crate) fn named(name: Option<&str>, expr: ast::Expr, span: Span) -> ast::NamedExpr {
    ast::NamedExpr { names: name.map(|n| vec![ast::Ident::new(n, span)]).unwrap_or_default(), expr, span }
}

pub(crate) fn is_grouping_hidden(name: &str) -> bool {
    name.starts_with("__kqlg_")
}

/// The window function called anywhere in `op` (its subqueries included), the first in
/// [`WINDOW_FUNCTIONS`]' order when there are several.
fn window_call_in(op: &Operator) -> Option<&'static str> {
    struct Calls<'a>(Vec<&'a str>);
    impl<'a> Visitor<'a> for Calls<'a> {
        fn visit_expr(&mut self, e: &'a ast::Expr) {
            if let ExprKind::Call { name, .. } = &e.kind {
                self.0.push(&name.name);
            }
            visit::walk_expr(self, e);
        }
    }
    let mut calls = Calls(Vec::new());
    calls.visit_operator(op);
    WINDOW_FUNCTIONS.iter().copied().find(|f| calls.0.contains(f))
}

/// Whether the name `name` occurs anywhere in what `walk` visits: as a reference, an output
/// column name, a `let` name, a function or member name... (every [`ast::Ident`]).
fn mentions_name<'a>(name: &str, walk: impl FnOnce(&mut dyn Visitor<'a>)) -> bool {
    struct Mentions<'n> {
        name: &'n str,
        found: bool,
    }
    impl Visitor<'_> for Mentions<'_> {
        fn visit_ident(&mut self, i: &ast::Ident) {
            self.found |= i.name == self.name;
        }
    }
    let mut m = Mentions { name, found: false };
    walk(&mut m);
    m.found
}

fn ops_mention(ops: &[Operator], name: &str) -> bool {
    mentions_name(name, |v| ops.iter().for_each(|o| v.visit_operator(o)))
}

fn op_name(kind: &OperatorKind) -> String {
    let dbg = format!("{kind:?}");
    let word: String = dbg.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    // CamelCase to kebab-case (`TopNested` -> `top-nested`).
    let mut out = String::new();
    for (i, c) in word.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl<'a> Binder<'a> {
    pub(crate) fn grouped_const_count(&mut self, n: &ast::Expr, scope: &Scope) -> Result<usize> {
        let v = self.bind_scalar(n, None, scope)?;
        let v = if v.ty == KqlType::Real { crate::functions::lower_cast(v, KqlType::Long)? } else { v };
        match super::scalar::const_i128(&v) {
            Some(x) if x >= 0 => Ok(usize::try_from(x).unwrap_or(usize::MAX)),
            Some(_) => Ok(0),
            None => Err(self.semantic("the row count must be a constant integer", n.span)),
        }
    }

    /// Appends `name` = the row number (Int64, from 1) in the input's order.
    pub(crate) fn add_row_number(&self, rel: Rel, name: &str) -> Result<Rel> {
        use datafusion::functions_window::expr_fn::row_number;
        let rn = match super::ops::input_ordering(&rel.plan) {
            Some(order) => row_number().order_by(order).build()?,
            None => row_number(),
        };
        let plan = rel.builder().window(vec![rn.alias(RN_COL)])?.build()?;
        let tmp = Rel::new(plan, rel.schema.clone());
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        for c in &rel.schema.columns {
            exprs.push(tmp.col(&c.name)?.expr.alias(c.name.clone()));
            cols.push(c.clone());
        }
        exprs.push(cast(col_ref(RN_COL), KqlType::Long.arrow_type()).alias(name));
        cols.push(KqlColumn::new(name, KqlType::Long));
        let plan = super::project(tmp.plan.clone(), exprs)?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    /// Appends `name` = `e` (a projection keeping every column).
    pub(crate) fn add_column(&self, rel: Rel, name: &str, e: DfExpr, ty: KqlType) -> Result<Rel> {
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        for c in &rel.schema.columns {
            if c.name == name {
                continue;
            }
            exprs.push(rel.col(&c.name)?.expr.alias(c.name.clone()));
            cols.push(c.clone());
        }
        exprs.push(e.alias(name));
        cols.push(KqlColumn::new(name, ty));
        let plan = super::project(rel.plan.clone(), exprs)?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    /// Renumbers the order column within each group by `order`, keeping the first `limit` rows
    /// of each group when given.
    fn grouped_renumber(&self, rel: Rel, order: Vec<SortExpr>, limit: Option<usize>) -> Result<Rel> {
        use datafusion::functions_window::expr_fn::row_number;
        let grp = rel.col(GROUP_COL)?.expr;
        let rn = row_number().partition_by(vec![grp]).order_by(order).build()?.alias(RN_COL);
        let plan = rel.builder().window(vec![rn])?.build()?;
        let mut b = LogicalPlanBuilder::from(plan);
        if let Some(n) = limit {
            b = b.filter(col_ref(RN_COL).lt_eq(lit(n as u64)))?;
        }
        let tmp = Rel::new(b.build()?, rel.schema.clone());
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        for c in &rel.schema.columns {
            if c.name == ORD_COL {
                continue;
            }
            exprs.push(tmp.col(&c.name)?.expr.alias(c.name.clone()));
            cols.push(c.clone());
        }
        exprs.push(cast(col_ref(RN_COL), KqlType::Long.arrow_type()).alias(ORD_COL));
        cols.push(KqlColumn::new(ORD_COL, KqlType::Long));
        let plan = super::project(tmp.plan.clone(), exprs)?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }

    fn grouped_sort_exprs(&mut self, rel: &Rel, keys: &[ast::SortKey], scope: &Scope) -> Result<Vec<SortExpr>> {
        let mut out = Vec::new();
        for k in keys {
            let v = self.bind_scalar(&k.expr, Some(rel), scope)?;
            if v.ty == KqlType::Dynamic {
                return Err(self.semantic("cannot sort by a dynamic value; convert it first (tostring, tolong...)", k.expr.span));
            }
            let desc = k.desc.unwrap_or(true);
            let nulls_first = k.nulls_first.unwrap_or(!desc);
            out.push(v.expr.sort(!desc, nulls_first));
        }
        Ok(out)
    }

    fn ord_asc(rel: &Rel) -> Result<SortExpr> {
        Ok(rel.col(ORD_COL)?.expr.sort(true, false))
    }

    /// `summarize` per group: the group column is an extra key; the order column restarts.
    fn grouped_summarize(&mut self, rel: Rel, s: &ast::Summarize, scope: &Scope, span: Span) -> Result<Rel> {
        let visible: Vec<String> = rel.names().into_iter().filter(|n| n != ORD_COL).collect();
        let rel = self.select(rel, &visible)?;
        let mut by = vec![named(Some(GROUP_COL), ident(GROUP_COL, span), span)];
        by.extend(s.by.iter().cloned());
        let s2 = ast::Summarize { hints: s.hints.clone(), aggregates: s.aggregates.clone(), by };
        let nkeys = s2.by.len();
        let out = self.bind_operator(rel, &Operator::new(OperatorKind::Summarize(s2), span), scope)?;
        let out = self.add_column(out, ORD_COL, lit(0i64), KqlType::Long)?;
        // A stable order within the group: by the keys.
        let mut order = Vec::new();
        for c in out.schema.columns.iter().skip(1).take(nkeys.saturating_sub(1)) {
            if c.ty != KqlType::Dynamic {
                order.push(out.col(&c.name)?.expr.sort(true, true));
            }
        }
        if order.is_empty() {
            return Ok(out);
        }
        self.grouped_renumber(out, order, None)
    }

    /// Applies a subquery's operators to each group of `rel` (which holds the hidden group and
    /// order columns, and keeps them). `ctx` names the construct for error messages.
    pub(crate) fn lower_grouped_ops(&mut self, mut rel: Rel, ops: &[Operator], scope: &Scope, ctx: &str) -> Result<Rel> {
        for (i, op) in ops.iter().enumerate() {
            let span = op.span;
            if let Some(f) = window_call_in(op) {
                return Err(self.unsupported(format!("the window function '{f}()' inside {ctx}"), span));
            }
            rel = match &op.kind {
                OperatorKind::Where(_)
                | OperatorKind::Extend(_)
                | OperatorKind::ProjectRename(_)
                | OperatorKind::ProjectReorder(_)
                | OperatorKind::ProjectAway(_)
                | OperatorKind::Parse(_)
                | OperatorKind::Render { .. } => self.bind_operator(rel, op, scope)?,
                OperatorKind::Serialize(items) => {
                    if items.is_empty() {
                        rel
                    } else {
                        self.bind_operator(rel, op, scope)?
                    }
                }
                OperatorKind::Project(items) => {
                    let mut items = items.clone();
                    items.push(named(None, ident(GROUP_COL, span), span));
                    items.push(named(None, ident(ORD_COL, span), span));
                    self.bind_operator(rel, &Operator::new(OperatorKind::Project(items), span), scope)?
                }
                OperatorKind::ProjectKeep(items) => {
                    let mut items = items.clone();
                    items.push(ident(GROUP_COL, span));
                    items.push(ident(ORD_COL, span));
                    self.bind_operator(rel, &Operator::new(OperatorKind::ProjectKeep(items), span), scope)?
                }
                OperatorKind::As { name, .. } => {
                    if ops_mention(&ops[i + 1..], &name.name) {
                        return Err(self.unsupported(format!("referring to the partition name '{}' (as) inside {ctx}", name.name), span));
                    }
                    rel
                }
                OperatorKind::Summarize(s) => self.grouped_summarize(rel, s, scope, span)?,
                OperatorKind::Count | OperatorKind::CountAs(_) => {
                    let name = match &op.kind {
                        OperatorKind::CountAs(n) => n.name.clone(),
                        _ => "Count".to_string(),
                    };
                    let call = ast::Expr::new(ExprKind::Call { name: ast::Ident::new("count", span), args: vec![] }, span);
                    let s = ast::Summarize { hints: vec![], aggregates: vec![named(Some(&name), call, span)], by: vec![] };
                    self.grouped_summarize(rel, &s, scope, span)?
                }
                OperatorKind::Distinct { columns, .. } => {
                    let by: Vec<ast::NamedExpr> = if columns.len() == 1 && matches!(columns[0].expr.kind, ExprKind::Star) {
                        rel.names().iter().filter(|n| !is_grouping_hidden(n)).map(|n| named(None, ident(n, span), span)).collect()
                    } else {
                        columns.clone()
                    };
                    let s = ast::Summarize { hints: vec![], aggregates: vec![], by };
                    self.grouped_summarize(rel, &s, scope, span)?
                }
                OperatorKind::Take(n) | OperatorKind::Sample(n) => {
                    let n = self.grouped_const_count(n, scope)?;
                    let order = vec![Self::ord_asc(&rel)?];
                    self.grouped_renumber(rel, order, Some(n))?
                }
                OperatorKind::Top { count, by } => {
                    let n = self.grouped_const_count(count, scope)?;
                    let mut order = self.grouped_sort_exprs(&rel, std::slice::from_ref(by), scope)?;
                    order.push(Self::ord_asc(&rel)?);
                    self.grouped_renumber(rel, order, Some(n))?
                }
                OperatorKind::Sort { by, .. } => {
                    let mut order = self.grouped_sort_exprs(&rel, by, scope)?;
                    order.push(Self::ord_asc(&rel)?);
                    self.grouped_renumber(rel, order, None)?
                }
                OperatorKind::MvExpand(m) => {
                    let has_index = m.params.iter().any(|p| p.name.name.eq_ignore_ascii_case("with_itemindex"));
                    if has_index {
                        let out = self.bind_operator(rel, op, scope)?;
                        let order = vec![Self::ord_asc(&out)?];
                        self.grouped_renumber(out, order, None)?
                    } else {
                        let mut m2 = m.clone();
                        m2.params.push(ast::OpParam {
                            name: ast::Ident::new("with_itemindex", span),
                            value: ident(IX_COL, span),
                            span,
                        });
                        let out = self.bind_operator(rel, &Operator::new(OperatorKind::MvExpand(m2), span), scope)?;
                        let order = vec![Self::ord_asc(&out)?, out.col(IX_COL)?.expr.sort(true, false)];
                        let out = self.grouped_renumber(out, order, None)?;
                        let keep: Vec<String> = out.names().into_iter().filter(|n| n != IX_COL).collect();
                        self.select(out, &keep)?
                    }
                }
                OperatorKind::Scan(s) => self.plan_scan_grouped(rel, s, scope, span, Some((GROUP_COL, ORD_COL)))?,
                other => {
                    return Err(self.unsupported(format!("the '{}' operator inside {ctx}", op_name(other)), span));
                }
            };
            if rel.schema.get(GROUP_COL).is_none() || rel.schema.get(ORD_COL).is_none() {
                return Err(self.unsupported(format!("this '{}' inside {ctx} (it drops the per-group columns)", op_name(&op.kind)), span));
            }
        }
        Ok(rel)
    }

    /// An equi-join of two relations on same-named keys, nulls equal; sides are qualified
    /// `__gl` and `__gr`.
    pub(crate) fn grouped_join(&self, left: &Rel, right: &Rel, keys: &[String]) -> Result<LogicalPlan> {
        let lplan = left.builder().alias("__gl")?.build()?;
        let rplan = right.builder().alias("__gr")?.build()?;
        let lk: Vec<Column> = keys.iter().map(|k| Column::new(Some("__gl"), k.as_str())).collect();
        let rk: Vec<Column> = keys.iter().map(|k| Column::new(Some("__gr"), k.as_str())).collect();
        Ok(LogicalPlanBuilder::from(lplan)
            .join_detailed(rplan, JoinType::Inner, (lk, rk), None, NullEquality::NullEqualsNull)?
            .build()?)
    }

    /// Sorts by the group (when orderable) and the order within it, then drops the hidden columns.
    pub(crate) fn grouped_finish(&self, rel: Rel, sort_by_group: bool) -> Result<Rel> {
        let mut order = Vec::new();
        if sort_by_group && rel.schema.get(GROUP_COL).is_some_and(|c| c.ty != KqlType::Dynamic) {
            order.push(rel.col(GROUP_COL)?.expr.sort(true, true));
        }
        order.push(Self::ord_asc(&rel)?);
        let plan = rel.builder().sort(order)?.build()?;
        let sorted = Rel::new(plan, rel.schema.clone());
        let keep: Vec<String> = sorted.names().into_iter().filter(|n| !is_grouping_hidden(n)).collect();
        self.select(sorted, &keep)
    }

    // ------------------------------------------------------------------------------ partition

    /// `partition [hints] by Col (ops)` / `partition by Col { Source | ops }`.
    pub(crate) fn plan_partition(&mut self, rel: Rel, p: &ast::Partition, scope: &Scope, span: Span) -> Result<Rel> {
        for prm in &p.params {
            let n = prm.name.name.to_ascii_lowercase();
            if n == "hint.strategy" {
                let w = super::sources::param_word(&prm.value).unwrap_or_default().to_ascii_lowercase();
                if !matches!(w.as_str(), "native" | "shuffle" | "legacy") {
                    return Err(self.semantic(format!("partition hint.strategy must be native, shuffle or legacy, not '{w}'"), prm.span));
                }
            } else if !n.starts_with("hint.") {
                return Err(self.semantic(format!("unknown partition parameter '{}'", prm.name.name), prm.span));
            }
        }
        let key = match &p.by.kind {
            ExprKind::Ident(i) => i.name.clone(),
            _ => return Err(self.semantic("partition by expects a column name", p.by.span)),
        };
        let Some(kc) = rel.schema.get(&key).cloned() else {
            return Err(self.semantic(format!("unknown column '{key}'"), p.by.span));
        };
        if kc.ty == KqlType::Dynamic {
            return Err(self.unsupported("partition by a dynamic column", p.by.span));
        }
        match &p.body {
            ast::PartitionBody::Operators(ops) => {
                let ke = rel.col(&key)?.expr;
                let r = self.add_column(rel, GROUP_COL, ke, kc.ty)?;
                let r = self.add_row_number(r, ORD_COL)?;
                let out = self.lower_grouped_ops(r, ops, scope, "partition")?;
                self.grouped_finish(out, true)
            }
            ast::PartitionBody::Expr(e) => {
                // Split `Source | op | op` into the source and the operators.
                let mut ops: Vec<Operator> = Vec::new();
                let mut cur: &ast::Expr = e;
                loop {
                    match &cur.kind {
                        ExprKind::Pipe { input, op } => {
                            ops.push((**op).clone());
                            cur = input;
                        }
                        ExprKind::Paren(inner) if ops.is_empty() => cur = inner,
                        _ => break,
                    }
                }
                ops.reverse();
                if mentions_name(&key, |v| v.visit_expr(cur)) {
                    return Err(self.unsupported(format!("referring to the partition key '{key}' in the source of a partition subquery"), cur.span));
                }
                let source = self.bind_tabular(cur, scope)?;
                if source.schema.get(&key).is_some() && ops_mention(&ops, &key) {
                    return Err(self.unsupported(
                        format!("a partition subquery whose source also has a column named '{key}'"),
                        span,
                    ));
                }
                // The distinct keys, crossed with the source.
                let ke = rel.col(&key)?.expr;
                let keys_plan = rel.builder().aggregate(vec![ke.alias(GROUP_COL)], Vec::<DfExpr>::new())?.build()?;
                let src_plan = source.builder().alias("__gs")?.build()?;
                let joined = LogicalPlanBuilder::from(src_plan).cross_join(keys_plan)?.build()?;
                let mut exprs = Vec::new();
                let mut cols = Vec::new();
                for c in &source.schema.columns {
                    exprs.push(qcol("__gs", &c.name).alias(c.name.clone()));
                    cols.push(c.clone());
                }
                exprs.push(col_ref(GROUP_COL).alias(GROUP_COL));
                cols.push(KqlColumn::new(GROUP_COL, kc.ty));
                let plan = super::project(joined, exprs)?;
                let r = Rel::new(plan, KqlSchema::new(cols));
                let r = self.add_row_number(r, ORD_COL)?;
                // The key is a scalar in the subquery: `Col` and `toscalar(Col)` name the group column.
                let ops: Vec<Operator> = ops.iter().map(|o| rewrite_key_refs(o, &key)).collect();
                let out = self.lower_grouped_ops(r, &ops, scope, "partition")?;
                self.grouped_finish(out, true)
            }
        }
    }

    // ------------------------------------------------------------------------------ top-nested

    /// `top-nested [N] of Expr [with others = V] by Agg [asc|desc], ...`: one summarize per
    /// level (by the keys of this and the upper levels), ranked within the upper level's group,
    /// joined to the upper levels' kept rows.
    pub(crate) fn plan_top_nested(&mut self, rel: Rel, clauses: &[ast::TopNestedClause], scope: &Scope, span: Span) -> Result<Rel> {
        let mut keys: Vec<(String, ast::Expr)> = Vec::new();
        let mut aggs: Vec<String> = Vec::new();
        for c in clauses {
            if c.of.names.len() > 1 || c.by.names.len() > 1 {
                return Err(self.unsupported("tuple names in top-nested", c.span));
            }
            let key = match (c.of.names.first(), &c.of.expr.kind) {
                (Some(n), _) => n.name.clone(),
                (None, ExprKind::Ident(i)) => i.name.clone(),
                _ => return Err(self.unsupported("top-nested over an unnamed expression (name it: Name = Expr)", c.of.span)),
            };
            let agg = match c.by.names.first() {
                Some(n) => n.name.clone(),
                None => format!("aggregated_{key}"),
            };
            if keys.iter().any(|(k, _)| k == &key) || aggs.contains(&agg) || aggs.contains(&key) || keys.iter().any(|(k, _)| k == &agg) || key == agg {
                return Err(self.semantic(format!("top-nested produces column '{key}' or '{agg}' twice; name the levels"), c.span));
            }
            keys.push((key, c.of.expr.clone()));
            aggs.push(agg);
        }
        let mut acc: Option<Rel> = None;
        let last = clauses.len().saturating_sub(1);
        for (i, c) in clauses.iter().enumerate() {
            let by: Vec<ast::NamedExpr> = keys[..=i].iter().map(|(k, e)| named(Some(k), e.clone(), c.span)).collect();
            let aggregates = vec![named(Some(&aggs[i]), c.by.expr.clone(), c.by.span)];
            let s = ast::Summarize { hints: vec![], aggregates, by };
            let lvl = self.bind_operator(rel.clone(), &Operator::new(OperatorKind::Summarize(s), c.span), scope)?;
            let parent: Vec<String> = keys[..i].iter().map(|(k, _)| k.clone()).collect();
            let desc = c.desc.unwrap_or(true);
            let (lvl, ranked_all) = match &c.count {
                Some(n) => {
                    use datafusion::functions_window::expr_fn::row_number;
                    let n = self.grouped_const_count(n, scope)?;
                    let part: Vec<DfExpr> = parent.iter().map(|k| lvl.col(k).map(|x| x.expr)).collect::<Result<_>>()?;
                    let mut order = vec![lvl.col(&aggs[i])?.expr.sort(!desc, !desc)];
                    if lvl.schema.get(&keys[i].0).is_some_and(|k| k.ty != KqlType::Dynamic) {
                        order.push(lvl.col(&keys[i].0)?.expr.sort(true, true));
                    }
                    let rn = row_number().partition_by(part).order_by(order).build()?.alias(RN_COL);
                    let plan = lvl.builder().window(vec![rn])?.build()?;
                    let plan = LogicalPlanBuilder::from(plan).filter(col_ref(RN_COL).lt_eq(lit(n as u64)))?.build()?;
                    let kept = self.select(Rel::new(plan, lvl.schema.clone()), &lvl.names())?;
                    (kept, Some(()))
                }
                None => (lvl, None),
            };
            let lvl = match (&c.others, ranked_all) {
                (None, _) => lvl,
                (Some(_), None) => lvl,
                (Some(o), Some(_)) if i != last => {
                    return Err(self.unsupported("top-nested 'with others' on a level that has levels below it", o.span));
                }
                (Some(o), Some(_)) => self.top_nested_others(&rel, lvl, &keys, &aggs[i], &c.by.expr, o, scope, c.span)?,
            };
            acc = Some(match acc {
                None => lvl,
                Some(prev) => {
                    let plan = self.grouped_join(&prev, &lvl, &parent)?;
                    let mut exprs = Vec::new();
                    let mut cols = Vec::new();
                    for col in &prev.schema.columns {
                        exprs.push(qcol("__gl", &col.name).alias(col.name.clone()));
                        cols.push(col.clone());
                    }
                    for col in &lvl.schema.columns {
                        if parent.contains(&col.name) {
                            continue;
                        }
                        exprs.push(qcol("__gr", &col.name).alias(col.name.clone()));
                        cols.push(col.clone());
                    }
                    let plan = super::project(plan, exprs)?;
                    Rel::new(plan, KqlSchema::new(cols))
                }
            });
        }
        let Some(out) = acc else {
            return Err(self.semantic("top-nested needs at least one clause", span));
        };
        // A deterministic order: level by level, aggregate (in the clause's direction), then value.
        let mut order = Vec::new();
        for (i, c) in clauses.iter().enumerate() {
            let desc = c.desc.unwrap_or(true);
            if let Some(o) = &c.others
                && let Some(kc) = out.schema.get(&keys[i].0).cloned()
            {
                // The `with others` row last in its group.
                let ov = self.bind_scalar(o, None, scope)?;
                let ov = if ov.ty == kc.ty { ov } else { crate::functions::lower_cast(ov, kc.ty)? };
                let is_other = datafusion::logical_expr::binary_expr(
                    out.col(&kc.name)?.expr,
                    datafusion::logical_expr::Operator::IsNotDistinctFrom,
                    ov.expr,
                );
                order.push(is_other.sort(true, false));
            }
            order.push(out.col(&aggs[i])?.expr.sort(!desc, !desc));
            if out.schema.get(&keys[i].0).is_some_and(|k| k.ty != KqlType::Dynamic) {
                order.push(out.col(&keys[i].0)?.expr.sort(true, true));
            }
        }
        let plan = out.builder().sort(order)?.build()?;
        Ok(Rel::new(plan, out.schema))
    }

    /// Adds, per upper-level group, the `with others` row: the aggregate over the input rows
    /// whose value did not make the top.
    #[allow(clippy::too_many_arguments)]
    fn top_nested_others(
        &mut self,
        input: &Rel,
        kept: Rel,
        keys: &[(String, ast::Expr)],
        agg: &str,
        agg_expr: &ast::Expr,
        others: &ast::Expr,
        scope: &Scope,
        span: Span,
    ) -> Result<Rel> {
        let n = kept.schema.columns.len();
        let level_keys: Vec<(String, ast::Expr)> = keys[..n - 1].to_vec();
        let key_names: Vec<String> = level_keys.iter().map(|(k, _)| k.clone()).collect();
        // The input with this level's keys as hidden columns, marked when its group was kept.
        let mut tagged = input.clone();
        let mut hidden = Vec::new();
        for (j, (_, e)) in level_keys.iter().enumerate() {
            let h = format!("__kqlg_k{j}");
            let v = self.bind_scalar(e, Some(&tagged), scope)?;
            tagged = self.add_column(tagged, &h, v.expr, v.ty)?;
            hidden.push(h);
        }
        let mut marks = kept.clone();
        let renamed: Vec<DfExpr> = kept
            .schema
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name != agg)
            .map(|(j, c)| Ok(marks.col(&c.name)?.expr.alias(format!("__kqlg_k{j}"))))
            .collect::<Result<_>>()?;
        let mut mcols: Vec<KqlColumn> =
            kept.schema.columns.iter().enumerate().filter(|(_, c)| c.name != agg).map(|(j, c)| KqlColumn::new(format!("__kqlg_k{j}"), c.ty)).collect();
        let mut exprs = renamed;
        exprs.push(lit(true).alias("__kqlg_kept"));
        mcols.push(KqlColumn::new("__kqlg_kept", KqlType::Bool));
        marks = Rel::new(super::project(marks.plan.clone(), exprs)?, KqlSchema::new(mcols));
        let lplan = tagged.builder().alias("__gl")?.build()?;
        let rplan = marks.builder().alias("__gr")?.build()?;
        let lk: Vec<Column> = hidden.iter().map(|k| Column::new(Some("__gl"), k.as_str())).collect();
        let rk: Vec<Column> = hidden.iter().map(|k| Column::new(Some("__gr"), k.as_str())).collect();
        let joined = LogicalPlanBuilder::from(lplan)
            .join_detailed(rplan, JoinType::Left, (lk, rk), None, NullEquality::NullEqualsNull)?
            .filter(qcol("__gr", "__kqlg_kept").is_null())?
            .build()?;
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        for c in &tagged.schema.columns {
            exprs.push(qcol("__gl", &c.name).alias(c.name.clone()));
            cols.push(c.clone());
        }
        let rest = Rel::new(super::project(joined, exprs)?, KqlSchema::new(cols));
        // Aggregate the rest by the upper levels' keys (hidden copies, named back).
        let by: Vec<ast::NamedExpr> = key_names
            .iter()
            .enumerate()
            .take(key_names.len() - 1)
            .map(|(j, k)| named(Some(k), ident(&format!("__kqlg_k{j}"), span), span))
            .collect();
        let s = ast::Summarize { hints: vec![], aggregates: vec![named(Some(agg), agg_expr.clone(), span)], by };
        let mut summed = self.bind_operator(rest, &Operator::new(OperatorKind::Summarize(s), span), scope)?;
        let this_key = &key_names[key_names.len() - 1];
        let kty = kept.schema.get(this_key).map(|c| c.ty).unwrap_or(KqlType::String);
        let ov = self.bind_scalar(others, None, scope)?;
        let ov = if ov.ty == kty { ov } else { crate::functions::lower_cast(ov, kty)? };
        summed = self.add_column(summed, this_key, ov.expr, kty)?;
        let summed = self.select(summed, &kept.names())?;
        let plan = super::union_all(vec![kept.plan, summed.plan])?;
        Ok(Rel::new(plan, kept.schema))
    }

    // ------------------------------------------------------------------------------ top-hitters

    /// `top-hitters N of Col [by Expr]`: exact counts (or sums) per value, the top N.
    pub(crate) fn plan_top_hitters(&mut self, rel: Rel, count: &ast::Expr, of: &ast::Expr, by: Option<&ast::Expr>, scope: &Scope, span: Span) -> Result<Rel> {
        let ExprKind::Ident(col) = &of.kind else {
            return Err(self.semantic("top-hitters: column name expected after 'of'", of.span));
        };
        let n = self.grouped_const_count(count, scope)?;
        let (name, agg) = match by {
            None => (
                format!("approximate_count_{}", col.name),
                ast::Expr::new(ExprKind::Call { name: ast::Ident::new("count", span), args: vec![] }, span),
            ),
            Some(e) => {
                let base = super::ops::result_name(e, &|_| None).unwrap_or_default();
                (
                    format!("approximate_sum_{base}"),
                    ast::Expr::new(ExprKind::Call { name: ast::Ident::new("sum", span), args: vec![ast::Arg::Positional(e.clone())] }, span),
                )
            }
        };
        // Kusto types the sum like the summed expression (an int sum stays int).
        let sum_ty = match by {
            Some(e) => Some(self.bind_scalar(e, Some(&rel), scope)?.ty),
            None => None,
        };
        let s = ast::Summarize { hints: vec![], aggregates: vec![named(Some(&name), agg, span)], by: vec![named(None, of.clone(), span)] };
        let mut out = self.bind_operator(rel, &Operator::new(OperatorKind::Summarize(s), span), scope)?;
        if let Some(t) = sum_ty
            && out.schema.get(&name).is_some_and(|c| c.ty != t)
            && t.is_numeric()
        {
            let v = crate::functions::lower_cast(out.col(&name)?, t)?;
            let names = out.names();
            out = self.add_column(out, &name, v.expr, t)?;
            out = self.select(out, &names)?;
        }
        let mut order = vec![out.col(&name)?.expr.sort(false, false)];
        if out.schema.get(&col.name).is_some_and(|c| c.ty != KqlType::Dynamic) {
            order.push(out.col(&col.name)?.expr.sort(true, true));
        }
        let plan = out.builder().sort(order)?.limit(0, Some(n))?.build()?;
        Ok(Rel::new(plan, out.schema))
    }

    // ------------------------------------------------------------------------------ sample-distinct

    /// `sample-distinct N of Col`: N distinct values (the smallest, for a stable result).
    pub(crate) fn plan_sample_distinct(&mut self, rel: Rel, count: &ast::Expr, of: &ast::Expr, scope: &Scope, span: Span) -> Result<Rel> {
        let ExprKind::Ident(col) = &of.kind else {
            return Err(self.semantic("sample-distinct: column name expected after 'of'", of.span));
        };
        let n = self.grouped_const_count(count, scope)?;
        let Some(c) = rel.schema.get(&col.name).cloned() else {
            return Err(self.semantic(format!("unknown column '{}'", col.name), of.span));
        };
        let e = rel.col(&c.name)?.expr;
        let plan = rel.builder().aggregate(vec![e.clone().alias(c.name.clone())], Vec::<DfExpr>::new())?.build()?;
        let out = Rel::new(plan, KqlSchema::new(vec![c.clone()]));
        let mut b = out.builder();
        if c.ty != KqlType::Dynamic {
            b = b.sort(vec![out.col(&c.name)?.expr.sort(true, true)])?;
        }
        let plan = b.limit(0, Some(n))?.build()?;
        let _ = span;
        Ok(Rel::new(plan, out.schema))
    }
}

/// Writes the partition key `key` (a scalar in a partition subquery with its own source) as the
/// group column: `key` and `toscalar(key)`. Subqueries are left alone: their names are their
/// own rows' columns.
struct KeyRefs<'k>(&'k str);

impl VisitorMut for KeyRefs<'_> {
    fn visit_expr(&mut self, e: &mut ast::Expr) {
        if e.is_query_boundary() {
            return;
        }
        let key = self.0;
        match &mut e.kind {
            ExprKind::Ident(i) if i.name == key => i.name = GROUP_COL.to_string(),
            ExprKind::Call { name, args }
                if name.name == "toscalar" && args.len() == 1 && matches!(&args[0].expr().kind, ExprKind::Ident(i) if i.name == key) =>
            {
                e.kind = ExprKind::Ident(ast::Ident::new(GROUP_COL, e.span));
            }
            _ => visit_mut::walk_expr(self, e),
        }
    }
}

/// A copy of an operator with the partition key written as the group column (see
/// [`KeyRefs`]) in the expressions of the row-wise and grouping operators; the others keep
/// their names.
fn rewrite_key_refs(op: &Operator, key: &str) -> Operator {
    let mut op = op.clone();
    let mut v = KeyRefs(key);
    match &mut op.kind {
        OperatorKind::Where(e) => v.visit_expr(e),
        OperatorKind::Extend(items) | OperatorKind::Project(items) | OperatorKind::Serialize(items) => {
            items.iter_mut().for_each(|it| v.visit_expr(&mut it.expr))
        }
        OperatorKind::Summarize(s) => {
            s.aggregates.iter_mut().for_each(|it| v.visit_expr(&mut it.expr));
            s.by.iter_mut().for_each(|it| v.visit_expr(&mut it.expr));
        }
        OperatorKind::Top { by, .. } => v.visit_expr(&mut by.expr),
        OperatorKind::Sort { by, .. } => by.iter_mut().for_each(|k| v.visit_expr(&mut k.expr)),
        _ => {}
    }
    op
}
