//! `make-series`: aggregates per bin of an axis, as arrays.
//!
//! Lowered in three steps over the operators the binder already has:
//! 1. the rows in range (`from <= axis < to`, or `start <= axis <= stop` for `in range(...)`),
//!    each with the position of its bin: `tolong(round(bin(axis - anchor, step) / step))`,
//!    where the anchor is `from` (Kusto's `bin_at`) or zero (`bin`, for the alternate syntax
//!    and when `from` is absent);
//! 2. `summarize` the aggregates by the group keys and the position, then per group the list
//!    of `[position, value1, value2...]` and the first and last positions;
//! 3. per group, the first position and the count of bins (from `from`/`to` when given, else
//!    the group's own first and last bins, as Kusto does per series), then each aggregate's
//!    array with the default where a bin has no rows, and the axis array.
//!
//! The output is the group keys, the aggregates' arrays and the axis array named as the axis.

use kustodian_parser::ast::{self, BinaryOp, ExprKind, LiteralKind, Operator, OperatorKind, Span};

use super::grouped::{ident, named};
use super::sources::param_word;
use super::{Binder, Binding, Rel, Scope};
use crate::error::Result;
use crate::functions::{self, TypedExpr};
use crate::types::{KqlColumn, KqlSchema, KqlType};

const INPUT: &str = "__kql_ms_input";
const POS: &str = "__kql_ms_pos";
const PAIRS: &str = "__kql_ms_pairs";
const LO: &str = "__kql_ms_lo";
const HI: &str = "__kql_ms_hi";
const START: &str = "__kql_ms_start";
const COUNT: &str = "__kql_ms_n";

pub(super) fn bin(op: BinaryOp, l: ast::Expr, r: ast::Expr, span: Span) -> ast::Expr {
    ast::Expr::new(ExprKind::Binary { op, left: Box::new(l), right: Box::new(r) }, span)
}

pub(super) fn call(name: &str, args: Vec<ast::Expr>, span: Span) -> ast::Expr {
    ast::Expr::new(ExprKind::Call { name: ast::Ident::new(name, span), args: args.into_iter().map(ast::Arg::Positional).collect() }, span)
}

pub(super) fn lit(kind: LiteralKind, span: Span) -> ast::Expr {
    ast::Expr::new(ExprKind::Literal(ast::Literal::new(kind, span)), span)
}

pub(super) fn pipe(input: ast::Expr, kind: OperatorKind, span: Span) -> ast::Expr {
    ast::Expr::new(ExprKind::Pipe { input: Box::new(input), op: Box::new(Operator::new(kind, span)) }, span)
}

/// `tolong(f(e))`; `floor` is `bin(e, 1)` (KQL's `floor` takes a bin size).
pub(super) fn long_of(f: &str, e: ast::Expr, span: Span) -> ast::Expr {
    let inner = if f == "floor" { call("bin", vec![e, lit(LiteralKind::Long(1), span)], span) } else { call(f, vec![e], span) };
    call("tolong", vec![inner], span)
}

impl<'a> Binder<'a> {
    pub(crate) fn plan_make_series(&mut self, rel: Rel, m: &ast::MakeSeries, scope: &Scope, span: Span) -> Result<Rel> {
        let mut nonempty = false;
        for p in &m.params {
            match p.name.name.to_ascii_lowercase().as_str() {
                "kind" if param_word(&p.value).is_some_and(|w| w.eq_ignore_ascii_case("nonempty")) => nonempty = true,
                n if n.starts_with("hint.") => {}
                _ => return Err(self.unsupported(format!("the make-series parameter '{}'", p.name.name), p.span)),
            }
        }
        let axis = self.bind_scalar(&m.on, Some(&rel), scope)?;
        let axis_name = match &m.on.kind {
            ExprKind::Ident(i) => i.name.clone(),
            _ => return Err(self.semantic("make-series: the axis after 'on' must be a column", m.on.span)),
        };
        let (from, to, step, inclusive) = match &m.range {
            ast::MakeSeriesRange::FromToStep { from, to, step } => (from.as_ref(), to.as_ref(), step, false),
            ast::MakeSeriesRange::InRange { start, stop, step } => (Some(start), Some(stop), step, true),
        };
        let step_t = self.bind_scalar(step, None, scope)?;
        let numeric_axis = axis.ty.is_numeric();
        match (axis.ty, step_t.ty) {
            (KqlType::Datetime | KqlType::Timespan, KqlType::Timespan) => {}
            (_, s) if numeric_axis && s.is_numeric() => {}
            (KqlType::Datetime | KqlType::Timespan, s) => {
                return Err(self.semantic(format!("make-series: the step of a {} axis must be a timespan, got {s}", axis.ty), step.span));
            }
            (a, _) if !numeric_axis => {
                return Err(self.semantic(format!("make-series: the axis must be a datetime, timespan or number, got {a}"), m.on.span));
            }
            (_, s) => return Err(self.semantic(format!("make-series: the step of a numeric axis must be a number, got {s}"), step.span)),
        }
        let positive = match super::scalar::const_value(&step_t) {
            Some(datafusion::common::ScalarValue::DurationNanosecond(Some(v)) | datafusion::common::ScalarValue::Int64(Some(v))) => v > 0,
            Some(datafusion::common::ScalarValue::Int32(Some(v))) => v > 0,
            Some(datafusion::common::ScalarValue::Float64(Some(v))) => v > 0.0,
            _ => false,
        };
        if !positive {
            return Err(self.semantic("make-series: the step must be a positive constant", step.span));
        }
        // An integer axis stepped by integers stays integer; otherwise numbers are reals.
        let integer_axis = matches!(axis.ty, KqlType::Int | KqlType::Long) && matches!(step_t.ty, KqlType::Int | KqlType::Long);
        let zero = match axis.ty {
            KqlType::Datetime => lit(LiteralKind::Datetime("1970-01-01".into()), span),
            KqlType::Timespan => lit(LiteralKind::Timespan(0), span),
            _ if integer_axis => lit(LiteralKind::Long(0), span),
            _ => lit(LiteralKind::Real(0.0), span),
        };
        // `bin_at` anchors the bins at `from`; the alternate syntax and a missing `from` use `bin`.
        let anchor = match from {
            Some(f) if !inclusive => f.clone(),
            _ => zero,
        };
        let on = m.on.clone();

        // 1. The rows in range, with their bin positions.
        let mut q = ident(INPUT, span);
        let mut range = Vec::new();
        if let Some(f) = from {
            range.push(bin(BinaryOp::GtEq, on.clone(), f.clone(), span));
        }
        if let Some(t) = to {
            range.push(bin(if inclusive { BinaryOp::LtEq } else { BinaryOp::Lt }, on.clone(), t.clone(), span));
        }
        if let Some(pred) = range.into_iter().reduce(|a, b| bin(BinaryOp::And, a, b, span)) {
            q = pipe(q, OperatorKind::Where(pred), span);
        }
        let offset = bin(BinaryOp::Sub, on.clone(), anchor.clone(), span);
        let pos = long_of("round", bin(BinaryOp::Div, call("bin", vec![offset, step.clone()], span), step.clone(), span), span);
        q = pipe(q, OperatorKind::Extend(vec![named(Some(POS), pos, span)]), span);

        // 2. The aggregates per group and bin.
        let mut by = m.by.clone();
        by.push(named(Some(POS), ident(POS, span), span));
        let aggregates: Vec<ast::NamedExpr> = m.aggregates.iter().map(|a| a.expr.clone()).collect();
        q = pipe(q, OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates, by }), span);
        let scope2 = scope.with(INPUT, Binding::Tabular(rel));
        let binned = self.bind_tabular(&q, &scope2)?;
        let nkeys = m.by.len();
        let keys: Vec<KqlColumn> = binned.schema.columns.iter().take(nkeys).cloned().collect();
        let aggs: Vec<KqlColumn> = binned.schema.columns.iter().skip(nkeys + 1).cloned().collect();
        for (a, c) in m.aggregates.iter().zip(&aggs) {
            if !c.ty.is_numeric() {
                return Err(self.semantic(format!("make-series: the aggregation '{}' must return a number, got {}", c.name, c.ty), a.span));
            }
        }
        // Per group: the bins as `[position, values...]` (collected with make_list_with_nulls,
        // which keeps each array whole where make_list concatenates them), the first and the
        // last.
        let mut entry = vec![ident(POS, span)];
        entry.extend(aggs.iter().map(|c| ident(&c.name, span)));
        let per_group = vec![
            named(Some(PAIRS), call("make_list_with_nulls", vec![call("pack_array", entry, span)], span), span),
            named(Some(LO), call("min", vec![ident(POS, span)], span), span),
            named(Some(HI), call("max", vec![ident(POS, span)], span), span),
        ];
        let key_refs: Vec<ast::NamedExpr> = keys.iter().map(|k| named(None, ident(&k.name, span), span)).collect();
        let mut q = pipe(ident(INPUT, span), OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates: per_group, by: key_refs }), span);
        // Without group keys the summarize gives a row even for no input; that row is the
        // series of defaults only with `kind=nonempty`.
        if !nonempty {
            q = pipe(q, OperatorKind::Where(call("isnotnull", vec![ident(HI, span)], span)), span);
        }

        // 3. Each series' first position and length. `(x - anchor) / step` in reals (two
        // integers would divide as integers).
        let ratio = |x: &ast::Expr| {
            let diff = bin(BinaryOp::Sub, x.clone(), anchor.clone(), span);
            let diff = if numeric_axis { call("toreal", vec![diff], span) } else { diff };
            bin(BinaryOp::Div, diff, step.clone(), span)
        };
        let start = match (from, inclusive) {
            (Some(_), false) => lit(LiteralKind::Long(0), span),
            (Some(s), true) => long_of("floor", ratio(s), span),
            (None, _) => ident(LO, span),
        };
        let count = match (to, inclusive) {
            (Some(t), false) => bin(
                BinaryOp::Sub,
                long_of("ceiling", ratio(t), span),
                ident(START, span),
                span,
            ),
            (Some(t), true) => bin(
                BinaryOp::Add,
                bin(
                    BinaryOp::Sub,
                    long_of("floor", ratio(t), span),
                    ident(START, span),
                    span,
                ),
                lit(LiteralKind::Long(1), span),
                span,
            ),
            (None, _) => bin(BinaryOp::Add, bin(BinaryOp::Sub, ident(HI, span), ident(START, span), span), lit(LiteralKind::Long(1), span), span),
        };
        q = pipe(q, OperatorKind::Extend(vec![named(Some(START), start, span)]), span);
        q = pipe(q, OperatorKind::Extend(vec![named(Some(COUNT), count, span)]), span);
        let scope3 = scope.with(INPUT, Binding::Tabular(binned));
        let grouped = self.bind_tabular(&q, &scope3)?;

        // The arrays.
        let mut exprs = Vec::new();
        let mut cols = Vec::new();
        for k in &keys {
            exprs.push(grouped.col(&k.name)?.expr.alias(k.name.clone()));
            cols.push(k.clone());
        }
        let (pairs, first, n) = (grouped.col(PAIRS)?.expr, grouped.col(START)?.expr, grouped.col(COUNT)?.expr);
        for (i, (a, c)) in m.aggregates.iter().zip(&aggs).enumerate() {
            let default = match &a.default {
                Some(d) => self.bind_scalar(d, None, scope)?,
                None => TypedExpr::new(datafusion::logical_expr::lit(0i64), KqlType::Long),
            };
            let default = functions::lower_cast(functions::lower_cast(default, c.ty)?, KqlType::Dynamic)?;
            let index = i64::try_from(i + 1).unwrap_or(i64::MAX);
            let series = functions::series_fill(pairs.clone(), index, first.clone(), n.clone(), default.expr);
            exprs.push(series.expr.alias(c.name.clone()));
            cols.push(KqlColumn::new(c.name.clone(), KqlType::Dynamic));
        }
        let axis_ty = match axis.ty {
            KqlType::Datetime | KqlType::Timespan => axis.ty,
            _ if integer_axis => KqlType::Long,
            _ => KqlType::Real,
        };
        let anchor_t = functions::lower_cast(self.bind_scalar(&anchor, None, scope)?, axis_ty)?;
        let step_t = if matches!(axis_ty, KqlType::Datetime | KqlType::Timespan) { step_t } else { functions::lower_cast(step_t, axis_ty)? };
        let axis_values = functions::series_axis(anchor_t.expr, step_t.expr, first, n);
        exprs.push(axis_values.expr.alias(axis_name.clone()));
        cols.push(KqlColumn::new(axis_name, KqlType::Dynamic));
        let plan = super::project(grouped.plan.clone(), exprs)?;
        Ok(Rel::new(plan, KqlSchema::new(cols)))
    }
}
