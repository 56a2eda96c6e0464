//! `evaluate` plugins whose output schema follows from their arguments, lowered onto the
//! binder's own operators (so the barrier and every check apply to them unchanged):
//! - `rolling_percentile(value, p, index, bin_size, bins_per_window [, dims...])`: per bin of
//!   the index (and dimensions) that has rows, the percentile of the values in that bin and the
//!   `bins_per_window - 1` bins before it;
//! - `sliding_window_counts(id, timeline, start, end, lookback, bin [, dims...])`: per bin from
//!   `start` to `end`, the count and distinct count of ids in the lookback window ending with
//!   that bin;
//! - `activity_counts_metrics(id, timeline, start, end, step [, dims...])`: per window, the
//!   count, the distinct ids, the ids new since `start` and the distinct ids so far (each id's
//!   first window found with `lookup`, the running total with `row_cumsum`);
//! - `rows_near(condition, n [, after])`: the rows within `n` rows before (and `after`, default
//!   `n`, rows after) a row where the condition holds, in the input's order (the numbered
//!   input is materialized, so it is read once and numbered once);
//! - `schema_merge([PreserveOrder])`: `getschema` tables merged into one schema
//!   (`functions/schema_merge.rs`), as `getschema` rows;
//! - `ipv4_lookup`/`ipv6_lookup(table, source_key, lookup_key [, extra keys...]
//!   [, return_unmatched])`: each row joined with the lookup rows whose IP range holds its
//!   address (and whose extra keys are equal), unmatched rows kept with nulls when asked, in the
//!   input's order;
//! - `narrow()`: each row's columns as rows of (`Row`, `Column`, `Value` as a string);
//! - `active_users_count(id, timeline, start, end, lookback, period, active_periods, bin
//!   [, dims...])`: per bin, the distinct ids with an appearance in it at which they had been
//!   seen in at least `active_periods` distinct periods of the lookback window ending there
//!   (earlier appearances, before `start` too, count toward the window; the window excludes its
//!   start), bins without any left out.
//!
//! Both send each row to every window it belongs to (`mv-expand` over the window offsets) and
//! aggregate per window. Other plugins are refused by name; `pivot` and `bag_unpack`, whose
//! columns come from the data, and the ones that need services Kustodian does not have among
//! them.

use kustodian_parser::ast::{self, BinaryOp, ExprKind, LiteralKind, OperatorKind, Span};

use super::grouped::{ident, named};
use super::make_series::{bin, call, lit, long_of, pipe};
use super::{Binder, Binding, Rel, Scope};
use crate::error::Result;

const INPUT: &str = "__kql_ev_input";
const BIN: &str = "__kql_ev_bin";
const OFFSET: &str = "__kql_ev_k";
const WINDOW: &str = "__kql_ev_window";
const OWN: &str = "__kql_ev_own";
const ROWS: &str = "__kql_ev_rows";
const FIRST: &str = "__kql_ev_first";
const PER_ID: &str = "__kql_ev_per_id";
// Not `__kql_`-prefixed: `serialize` drops the columns named so (its own working columns).
const ROW: &str = "__kqlev_row";
const NUMBERED: &str = "__kql_ev_numbered";
const ROWS_LIST: &str = "__kql_ev_rows";
const MERGED: &str = "__kql_ev_merged";
const ENTRY: &str = "__kql_ev_entry";
const LOOKUP: &str = "__kql_ev_lookup";
const MATCHED: &str = "__kql_ev_matched";
// A constant join key (not `__kql_`-prefixed, which the join's column handling hides).
const ALL: &str = "__kqlev_all";
const SEEN: &str = "__kqlev_seen";
const PERIODS: &str = "__kqlev_periods";

/// A column reference argument's name.
fn column_name(e: &ast::Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Ident(i) => Some(&i.name),
        _ => None,
    }
}

impl<'a> Binder<'a> {
    pub(crate) fn plan_evaluate(&mut self, rel: Rel, ev: &ast::Evaluate, scope: &Scope, span: Span) -> Result<Rel> {
        let ExprKind::Call { name, args } = &ev.call.kind else {
            return Err(self.semantic("evaluate expects a plugin call", ev.call.span));
        };
        for p in &ev.params {
            if !p.name.name.to_ascii_lowercase().starts_with("hint.") {
                return Err(self.semantic(format!("unknown evaluate parameter '{}'", p.name.name), p.span));
            }
        }
        let raw = args;
        let args: Vec<&ast::Expr> = args.iter().map(ast::Arg::expr).collect();
        let lower = name.name.to_ascii_lowercase();
        let out = match lower.as_str() {
            "rolling_percentile" => self.plan_rolling_percentile(rel, &args, scope, ev.call.span),
            "sliding_window_counts" => self.plan_sliding_window_counts(rel, &args, scope, ev.call.span),
            "activity_counts_metrics" => self.plan_activity_counts_metrics(rel, &args, scope, ev.call.span),
            "rows_near" => self.plan_rows_near(rel, &args, scope, ev.call.span),
            "schema_merge" => self.plan_schema_merge(rel, &args, scope, ev.call.span),
            "ipv4_lookup" => self.plan_ip_lookup("ipv4_lookup", "ipv4_is_in_range", rel, raw, scope, ev.call.span),
            "narrow" => self.plan_narrow(rel, &args, scope, ev.call.span),
            "active_users_count" => self.plan_active_users_count(rel, &args, scope, ev.call.span),
            "ipv6_lookup" => self.plan_ip_lookup("ipv6_lookup", "ipv6_is_in_range", rel, raw, scope, ev.call.span),
            "bag_unpack" => self.plan_bag_unpack(rel, raw, ev.schema.as_ref(), scope, ev.call.span),
            "pivot" => self.plan_pivot(rel, raw, ev.schema.as_ref(), scope, ev.call.span),
            _ => Err(self.unsupported(format!("the '{}' plugin (evaluate {})", name.name, name.name), span)),
        }?;
        if ev.schema.is_some() && !matches!(lower.as_str(), "bag_unpack" | "pivot") {
            return Err(self.semantic(format!("evaluate {}: only bag_unpack and pivot take an output schema here", name.name), ev.call.span));
        }
        Ok(out)
    }

    /// The column names among `args` (the plugin's column and dimension arguments).
    fn column_args(&self, plugin: &str, args: &[&ast::Expr]) -> Result<Vec<String>> {
        args.iter()
            .map(|a| {
                column_name(a)
                    .map(str::to_string)
                    .ok_or_else(|| self.semantic(format!("{plugin}: expected a column name"), a.span))
            })
            .collect()
    }

    fn plan_rolling_percentile(&mut self, rel: Rel, args: &[&ast::Expr], scope: &Scope, span: Span) -> Result<Rel> {
        const P: &str = "rolling_percentile";
        if args.len() < 5 {
            return Err(self.semantic(format!("{P} expects at least 5 arguments, got {}", args.len()), span));
        }
        let cols = self.column_args(P, &[args[0], args[2]])?;
        let dims = self.column_args(P, &args[5..])?;
        let (value, index) = (&cols[0], &cols[1]);
        let pct_text = match &args[1].kind {
            ExprKind::Literal(l) => match &l.kind {
                LiteralKind::Long(v) => v.to_string(),
                LiteralKind::Real(v) => crate::functions::format_real(*v),
                _ => return Err(self.semantic(format!("{P}: the percentile must be a constant number"), args[1].span)),
            },
            _ => return Err(self.semantic(format!("{P}: the percentile must be a constant number"), args[1].span)),
        };
        let window = match &args[4].kind {
            ExprKind::Literal(ast::Literal { kind: LiteralKind::Long(w), .. }) if *w >= 1 && *w <= 1000 => *w,
            _ => return Err(self.semantic(format!("{P}: BinsPerWindow must be a constant integer from 1 to 1000"), args[4].span)),
        };
        let bin_size = args[3].clone();
        let out_name = format!("rolling_{window}_percentile_{value}_{pct_text}");
        let mut q = ident(INPUT, span);
        q = pipe(q, OperatorKind::Extend(vec![named(Some(BIN), call("bin", vec![ident(index, span), bin_size.clone()], span), span)]), span);
        q = self.expand_windows(q, lit(LiteralKind::Long(window), span), bin_size, span);
        let mut by = vec![named(Some(index), ident(WINDOW, span), span)];
        by.extend(dims.iter().map(|d| named(None, ident(d, span), span)));
        let aggregates = vec![
            named(Some(&out_name), call("percentile", vec![ident(value, span), args[1].clone()], span), span),
            // Windows are reported for the bins that have rows: those a row reached at offset 0.
            named(Some(OWN), call("countif", vec![bin(BinaryOp::Eq, ident(OFFSET, span), lit(LiteralKind::Long(0), span), span)], span), span),
        ];
        q = pipe(q, OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates, by }), span);
        q = pipe(q, OperatorKind::Where(bin(BinaryOp::Gt, ident(OWN, span), lit(LiteralKind::Long(0), span), span)), span);
        q = pipe(q, OperatorKind::ProjectAway(vec![ident(OWN, span)]), span);
        q = pipe(q, OperatorKind::Sort { params: Vec::new(), by: sort_keys(&dims, index, span) }, span);
        self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(rel)))
    }

    fn plan_sliding_window_counts(&mut self, rel: Rel, args: &[&ast::Expr], scope: &Scope, span: Span) -> Result<Rel> {
        const P: &str = "sliding_window_counts";
        if args.len() < 6 {
            return Err(self.semantic(format!("{P} expects at least 6 arguments, got {}", args.len()), span));
        }
        let cols = self.column_args(P, &[args[0], args[1]])?;
        let dims = self.column_args(P, &args[6..])?;
        let (id, timeline) = (&cols[0], &cols[1]);
        let (start, end, lookback, step) = (args[2].clone(), args[3].clone(), args[4].clone(), args[5].clone());
        if let ExprKind::Literal(ast::Literal { kind: LiteralKind::String(s), .. }) = &step.kind {
            return Err(self.unsupported(format!("{P} with a calendar bin ('{s}')"), step.span));
        }
        let mut q = ident(INPUT, span);
        let binned = call("bin_at", vec![ident(timeline, span), step.clone(), start.clone()], span);
        q = pipe(q, OperatorKind::Extend(vec![named(Some(BIN), binned, span)]), span);
        // The window holds the lookback rounded down to whole bins (at least the bin itself).
        let bins = call("max_of", vec![long_of("floor", bin(BinaryOp::Div, lookback, step.clone(), span), span), lit(LiteralKind::Long(1), span)], span);
        q = self.expand_windows(q, bins, step, span);
        let in_range = bin(
            BinaryOp::And,
            bin(BinaryOp::GtEq, ident(WINDOW, span), start, span),
            bin(BinaryOp::LtEq, ident(WINDOW, span), end, span),
            span,
        );
        q = pipe(q, OperatorKind::Where(in_range), span);
        let mut by = vec![named(Some(timeline), ident(WINDOW, span), span)];
        by.extend(dims.iter().map(|d| named(None, ident(d, span), span)));
        let aggregates = vec![
            named(Some("Count"), call("count", Vec::new(), span), span),
            named(Some("Dcount"), call("dcount", vec![ident(id, span)], span), span),
        ];
        q = pipe(q, OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates, by }), span);
        q = pipe(q, OperatorKind::Sort { params: Vec::new(), by: sort_keys(&dims, timeline, span) }, span);
        self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(rel)))
    }

    fn plan_activity_counts_metrics(&mut self, rel: Rel, args: &[&ast::Expr], scope: &Scope, span: Span) -> Result<Rel> {
        const P: &str = "activity_counts_metrics";
        if args.len() < 5 {
            return Err(self.semantic(format!("{P} expects at least 5 arguments, got {}", args.len()), span));
        }
        let cols = self.column_args(P, &[args[0], args[1]])?;
        let dims = self.column_args(P, &args[5..])?;
        let (id, timeline) = (&cols[0], &cols[1]);
        let (start, end, step) = (args[2].clone(), args[3].clone(), args[4].clone());
        if let ExprKind::Literal(ast::Literal { kind: LiteralKind::String(s), .. }) = &step.kind {
            return Err(self.unsupported(format!("{P} with a calendar step ('{s}')"), step.span));
        }
        // Each id's rows per window of the analysis period.
        let mut q = ident(INPUT, span);
        let binned = call("bin_at", vec![ident(timeline, span), step, start.clone()], span);
        q = pipe(q, OperatorKind::Extend(vec![named(Some(BIN), binned, span)]), span);
        let in_range = bin(
            BinaryOp::And,
            bin(BinaryOp::GtEq, ident(BIN, span), start, span),
            bin(BinaryOp::LtEq, ident(BIN, span), end, span),
            span,
        );
        q = pipe(q, OperatorKind::Where(in_range), span);
        let mut keys: Vec<ast::NamedExpr> = vec![named(None, ident(id, span), span)];
        keys.extend(dims.iter().map(|d| named(None, ident(d, span), span)));
        let mut by = keys.clone();
        by.push(named(None, ident(BIN, span), span));
        let rows = vec![named(Some(ROWS), call("count", Vec::new(), span), span)];
        q = pipe(q, OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates: rows, by }), span);
        let per_id = self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(rel)))?;
        // Its first window, looked up by id and dimensions.
        let first = vec![named(Some(FIRST), call("min", vec![ident(BIN, span)], span), span)];
        let firsts = pipe(ident(PER_ID, span), OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates: first, by: keys.clone() }), span);
        let on: Vec<ast::Expr> = keys.iter().map(|k| k.expr.clone()).collect();
        let paren = ast::Expr::new(ExprKind::Paren(Box::new(firsts)), span);
        let mut q = pipe(ident(PER_ID, span), OperatorKind::Lookup(ast::Join { params: Vec::new(), right: Box::new(paren), on }), span);
        let mut by = vec![named(Some(timeline), ident(BIN, span), span)];
        by.extend(dims.iter().map(|d| named(None, ident(d, span), span)));
        let is_first = bin(BinaryOp::Eq, ident(BIN, span), ident(FIRST, span), span);
        let aggregates = vec![
            named(Some("count"), call("sum", vec![ident(ROWS, span)], span), span),
            named(Some("dcount"), call("count", Vec::new(), span), span),
            named(Some("new_dcount"), call("countif", vec![is_first], span), span),
        ];
        q = pipe(q, OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates, by }), span);
        q = pipe(q, OperatorKind::Sort { params: Vec::new(), by: sort_keys(&dims, timeline, span) }, span);
        // The running total restarts with each combination of dimensions.
        let restart = dims
            .iter()
            .map(|d| bin(BinaryOp::NotEq, ident(d, span), call("prev", vec![ident(d, span)], span), span))
            .reduce(|a, b| bin(BinaryOp::Or, a, b, span));
        let mut cumsum_args = vec![ident("new_dcount", span)];
        cumsum_args.extend(restart);
        q = pipe(q, OperatorKind::Extend(vec![named(Some("aggregated_dcount"), call("row_cumsum", cumsum_args, span), span)]), span);
        self.bind_tabular(&q, &scope.with(PER_ID, Binding::Tabular(per_id)))
    }

    fn plan_rows_near(&mut self, rel: Rel, args: &[&ast::Expr], scope: &Scope, span: Span) -> Result<Rel> {
        const P: &str = "rows_near";
        if !(2..=3).contains(&args.len()) {
            return Err(self.semantic(format!("{P} expects 2 or 3 arguments, got {}", args.len()), span));
        }
        let count = |a: &ast::Expr| match &a.kind {
            ExprKind::Literal(ast::Literal { kind: LiteralKind::Long(n), .. }) if (0..=1_000_000).contains(n) => Some(*n),
            _ => None,
        };
        let before = count(args[1]).ok_or_else(|| self.semantic(format!("{P}: NumRows must be a constant integer, at least 0"), args[1].span))?;
        let after = match args.get(2) {
            Some(a) => count(a).ok_or_else(|| self.semantic(format!("{P}: RowsAfter must be a constant integer, at least 0"), a.span))?,
            None => before,
        };
        let columns: Vec<String> = rel.schema.columns.iter().map(|c| c.name.clone()).collect();
        let numbered = self.numbered_once(rel, scope, span)?;
        // The row numbers near a match: each match's number plus -before..after.
        let mut near = pipe(ident(NUMBERED, span), OperatorKind::Where(args[0].clone()), span);
        let offsets = call(
            "range",
            vec![lit(LiteralKind::Long(-before), span), lit(LiteralKind::Long(after), span)],
            span,
        );
        let item = ast::MvExpandItem { expr: named(Some(OFFSET), offsets, span), to_type: Some(ast::Ident::new("long", span)), span };
        near = pipe(near, OperatorKind::MvExpand(ast::MvExpand { params: Vec::new(), items: vec![item], limit: None }), span);
        near = pipe(near, OperatorKind::Project(vec![named(Some(WINDOW), bin(BinaryOp::Add, ident(ROW, span), ident(OFFSET, span), span), span)]), span);
        let is_near = ast::Expr::new(
            ExprKind::In { expr: Box::new(ident(ROW, span)), negated: false, case_insensitive: false, list: vec![near] },
            span,
        );
        let mut q = pipe(ident(NUMBERED, span), OperatorKind::Where(is_near), span);
        q = pipe(q, OperatorKind::Sort { params: Vec::new(), by: sort_keys(&[], ROW, span) }, span);
        q = pipe(q, OperatorKind::Project(columns.iter().map(|c| named(None, ident(c, span), span)).collect()), span);
        self.bind_tabular(&q, &scope.with(NUMBERED, Binding::Tabular(numbered)))
    }

    fn plan_schema_merge(&mut self, rel: Rel, args: &[&ast::Expr], scope: &Scope, span: Span) -> Result<Rel> {
        const P: &str = "schema_merge";
        let preserve = match args {
            [] => true,
            [a] => match &a.kind {
                ExprKind::Literal(ast::Literal { kind: LiteralKind::Bool(b), .. }) => *b,
                _ => return Err(self.semantic(format!("{P}: PreserveOrder must be a constant bool"), a.span)),
            },
            _ => return Err(self.semantic(format!("{P} expects at most 1 argument, got {}", args.len()), span)),
        };
        const COLUMNS: [&str; 4] = ["ColumnName", "ColumnOrdinal", "DataType", "ColumnType"];
        if let Some(missing) = COLUMNS.iter().find(|c| !rel.schema.columns.iter().any(|x| x.name == **c)) {
            return Err(self.semantic(format!("{P} expects getschema's columns; '{missing}' is missing"), span));
        }
        // Every schema row with its number in the input's order, as one list (the merge sorts
        // it back by number: a list's order across partitions is not the input's).
        let mut fields = vec![ident(ROW, span)];
        fields.extend(COLUMNS.iter().map(|c| ident(c, span)));
        let entry = call("pack_array", fields, span);
        let rows = vec![named(Some(ROWS_LIST), call("make_list_with_nulls", vec![entry], span), span)];
        let numbered = pipe(ident(INPUT, span), OperatorKind::Serialize(vec![named(Some(ROW), call("row_number", Vec::new(), span), span)]), span);
        let q = pipe(numbered, OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates: rows, by: Vec::new() }), span);
        let listed = self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(rel)))?;
        let merged = crate::functions::schema_merge_call(listed.col(ROWS_LIST)?.expr, preserve);
        let plan = datafusion::logical_expr::LogicalPlanBuilder::from(listed.plan).project(vec![merged.expr.alias(MERGED)])?.build()?;
        let merged = Rel::new(plan, crate::types::KqlSchema::new(vec![crate::types::KqlColumn::new(MERGED, crate::types::KqlType::Dynamic)]));
        // Back to rows.
        let item = ast::MvExpandItem { expr: named(Some(ENTRY), ident(MERGED, span), span), to_type: None, span };
        let mut q = pipe(ident(INPUT, span), OperatorKind::MvExpand(ast::MvExpand { params: Vec::new(), items: vec![item], limit: None }), span);
        let field = |i: i64, f: &str| {
            let at = ast::Expr::new(ExprKind::Index { expr: Box::new(ident(ENTRY, span)), index: Box::new(lit(LiteralKind::Long(i), span)) }, span);
            call(f, vec![at], span)
        };
        q = pipe(
            q,
            OperatorKind::Project(vec![
                named(Some(COLUMNS[0]), field(0, "tostring"), span),
                named(Some(COLUMNS[1]), field(1, "toint"), span),
                named(Some(COLUMNS[2]), field(2, "tostring"), span),
                named(Some(COLUMNS[3]), field(3, "tostring"), span),
            ]),
            span,
        );
        self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(merged)))
    }

    /// `ipv4_lookup` and `ipv6_lookup` (`in_range` is the range test of their address family).
    fn plan_ip_lookup(&mut self, plugin: &str, in_range: &str, rel: Rel, raw: &[ast::Arg], scope: &Scope, span: Span) -> Result<Rel> {
        let p = plugin;
        let mut unmatched = false;
        let mut positional: Vec<&ast::Expr> = Vec::new();
        for a in raw {
            match a {
                ast::Arg::Named { name, value } if name.name.eq_ignore_ascii_case("return_unmatched") => match &value.kind {
                    ExprKind::Literal(ast::Literal { kind: LiteralKind::Bool(b), .. }) => unmatched = *b,
                    _ => return Err(self.semantic(format!("{p}: return_unmatched must be a constant bool"), value.span)),
                },
                ast::Arg::Named { name, .. } => return Err(self.semantic(format!("{p}: unknown argument '{}'", name.name), name.span)),
                ast::Arg::Positional(e) => positional.push(e),
            }
        }
        if let Some(ExprKind::Literal(ast::Literal { kind: LiteralKind::Bool(b), .. })) = positional.last().map(|e| &e.kind) {
            unmatched = *b;
            positional.pop();
        }
        if positional.len() < 3 {
            return Err(self.semantic(format!("{p} expects a lookup table, a source key and a lookup key"), span));
        }
        let keys = self.column_args(p, &positional[1..])?;
        let (source_key, lookup_key, extras) = (&keys[0], &keys[1], &keys[2..]);
        let lookup = self.bind_tabular(positional[0], scope)?;
        let lookup_columns: Vec<String> = lookup.schema.columns.iter().map(|c| c.name.clone()).collect();
        let source_columns: Vec<String> = rel.schema.columns.iter().map(|c| c.name.clone()).collect();
        for (k, cols, side) in [(lookup_key, &lookup_columns, "lookup table")].into_iter().chain(extras.iter().map(|e| (e, &lookup_columns, "lookup table"))) {
            if !cols.contains(k) {
                return Err(self.semantic(format!("{p}: the {side} has no column '{k}'"), span));
            }
        }
        // Numbered, so matched and unmatched rows come out in the input's order.
        let numbered = self.numbered_once(rel, scope, span)?;
        let scope2 = scope.with(NUMBERED, Binding::Tabular(numbered)).with(LOOKUP, Binding::Tabular(lookup));
        // Every input row against every lookup row with equal extra keys, kept where the range
        // holds the address; the lookup's columns other than the extra keys after the input's
        // (a name both have comes from the lookup with the join's suffix).
        let one = |q: ast::Expr| pipe(q, OperatorKind::Extend(vec![named(Some(ALL), lit(LiteralKind::Long(1), span), span)]), span);
        let right = ast::Expr::new(ExprKind::Paren(Box::new(one(ident(LOOKUP, span)))), span);
        let mut on = vec![ident(ALL, span)];
        on.extend(extras.iter().map(|e| ident(e, span)));
        let kind = ast::OpParam { name: ast::Ident::new("kind", span), value: ident("inner", span), span };
        let mut matched = pipe(one(ident(NUMBERED, span)), OperatorKind::Join(ast::Join { params: vec![kind], right: Box::new(right), on }), span);
        let renamed = |c: &str| if source_columns.iter().any(|s| s == c) || c == ROW { format!("{c}1") } else { c.to_string() };
        matched = pipe(matched, OperatorKind::Where(call(in_range, vec![ident(source_key, span), ident(&renamed(lookup_key), span)], span)), span);
        let mut out: Vec<ast::NamedExpr> = vec![named(None, ident(ROW, span), span)];
        out.extend(source_columns.iter().map(|c| named(None, ident(c, span), span)));
        out.extend(lookup_columns.iter().filter(|c| !extras.contains(c)).map(|c| named(None, ident(&renamed(c), span), span)));
        matched = pipe(matched, OperatorKind::Project(out), span);
        let mut q = if unmatched {
            let matched_rows = pipe(ident(MATCHED, span), OperatorKind::Project(vec![named(None, ident(ROW, span), span)]), span);
            let missing = ast::Expr::new(
                ExprKind::In { expr: Box::new(ident(ROW, span)), negated: true, case_insensitive: false, list: vec![matched_rows] },
                span,
            );
            let rest = ast::Expr::new(ExprKind::Paren(Box::new(pipe(ident(NUMBERED, span), OperatorKind::Where(missing), span))), span);
            pipe(ident(MATCHED, span), OperatorKind::Union(ast::Union { params: Vec::new(), tables: vec![rest] }), span)
        } else {
            ident(MATCHED, span)
        };
        q = pipe(q, OperatorKind::Sort { params: Vec::new(), by: sort_keys(&[], ROW, span) }, span);
        q = pipe(q, OperatorKind::ProjectAway(vec![ident(ROW, span)]), span);
        let matched = self.bind_tabular(&matched, &scope2)?;
        self.bind_tabular(&q, &scope2.with(MATCHED, Binding::Tabular(matched)))
    }

    fn plan_narrow(&mut self, rel: Rel, args: &[&ast::Expr], scope: &Scope, span: Span) -> Result<Rel> {
        if !args.is_empty() {
            return Err(self.semantic(format!("narrow takes no arguments, got {}", args.len()), span));
        }
        let pairs: Vec<ast::Expr> = rel
            .schema
            .columns
            .iter()
            .map(|c| call("pack_array", vec![lit(LiteralKind::String(c.name.clone()), span), call("tostring", vec![ident(&c.name, span)], span)], span))
            .collect();
        let row = bin(BinaryOp::Sub, call("row_number", Vec::new(), span), lit(LiteralKind::Long(1), span), span);
        let mut q = pipe(ident(INPUT, span), OperatorKind::Serialize(vec![named(Some(ROW), row, span)]), span);
        q = pipe(q, OperatorKind::Project(vec![named(None, ident(ROW, span), span), named(Some(ENTRY), call("pack_array", pairs, span), span)]), span);
        let item = ast::MvExpandItem { expr: named(None, ident(ENTRY, span), span), to_type: None, span };
        q = pipe(q, OperatorKind::MvExpand(ast::MvExpand { params: Vec::new(), items: vec![item], limit: None }), span);
        let field = |i: i64| {
            let at = ast::Expr::new(ExprKind::Index { expr: Box::new(ident(ENTRY, span)), index: Box::new(lit(LiteralKind::Long(i), span)) }, span);
            call("tostring", vec![at], span)
        };
        q = pipe(
            q,
            OperatorKind::Project(vec![
                named(Some("Row"), ident(ROW, span), span),
                named(Some("Column"), field(0), span),
                named(Some("Value"), field(1), span),
            ]),
            span,
        );
        self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(rel)))
    }

    fn plan_active_users_count(&mut self, rel: Rel, args: &[&ast::Expr], scope: &Scope, span: Span) -> Result<Rel> {
        const P: &str = "active_users_count";
        if args.len() < 8 {
            return Err(self.semantic(format!("{P} expects at least 8 arguments, got {}", args.len()), span));
        }
        let cols = self.column_args(P, &[args[0], args[1]])?;
        let dims = self.column_args(P, &args[8..])?;
        let (id, timeline) = (&cols[0], &cols[1]);
        let (start, end, lookback, period, active, step) =
            (args[2].clone(), args[3].clone(), args[4].clone(), args[5].clone(), args[6].clone(), args[7].clone());
        if let ExprKind::Literal(ast::Literal { kind: LiteralKind::String(s), .. }) = &step.kind {
            return Err(self.unsupported(format!("{P} with a calendar bin ('{s}')"), step.span));
        }
        let keyed = |extra: Option<ast::NamedExpr>| {
            let mut items = vec![named(None, ident(id, span), span)];
            items.extend(extra);
            items.extend(dims.iter().map(|d| named(None, ident(d, span), span)));
            items
        };
        let binned = call("bin_at", vec![ident(timeline, span), step.clone(), start.clone()], span);
        // The appearances of the analysis period, each with every appearance of the same id
        // (and dimensions) in the lookback window ending at it.
        let in_range = bin(
            BinaryOp::And,
            bin(BinaryOp::GtEq, ident(timeline, span), start.clone(), span),
            bin(BinaryOp::LtEq, binned.clone(), end, span),
            span,
        );
        let mut q = pipe(ident(INPUT, span), OperatorKind::Where(in_range), span);
        q = pipe(q, OperatorKind::Project(keyed(Some(named(None, ident(timeline, span), span)))), span);
        let seen = pipe(ident(INPUT, span), OperatorKind::Project(keyed(Some(named(Some(SEEN), ident(timeline, span), span)))), span);
        let on: Vec<ast::Expr> = keyed(None).into_iter().map(|k| k.expr).collect();
        let kind = ast::OpParam { name: ast::Ident::new("kind", span), value: ident("inner", span), span };
        let right = ast::Expr::new(ExprKind::Paren(Box::new(seen)), span);
        q = pipe(q, OperatorKind::Join(ast::Join { params: vec![kind], right: Box::new(right), on }), span);
        let window = bin(
            BinaryOp::And,
            bin(BinaryOp::Gt, ident(SEEN, span), bin(BinaryOp::Sub, ident(timeline, span), lookback, span), span),
            bin(BinaryOp::LtEq, ident(SEEN, span), ident(timeline, span), span),
            span,
        );
        q = pipe(q, OperatorKind::Where(window), span);
        let periods = vec![named(Some(PERIODS), call("dcount", vec![call("bin", vec![ident(SEEN, span), period], span)], span), span)];
        q = pipe(q, OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates: periods, by: keyed(Some(named(None, ident(timeline, span), span))) }), span);
        q = pipe(q, OperatorKind::Where(bin(BinaryOp::GtEq, ident(PERIODS, span), active, span)), span);
        let mut by = vec![named(Some(timeline), binned, span)];
        by.extend(dims.iter().map(|d| named(None, ident(d, span), span)));
        let count = vec![named(Some("dcount"), call("dcount", vec![ident(id, span)], span), span)];
        q = pipe(q, OperatorKind::Summarize(ast::Summarize { hints: Vec::new(), aggregates: count, by }), span);
        q = pipe(q, OperatorKind::Sort { params: Vec::new(), by: sort_keys(&dims, timeline, span) }, span);
        self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(rel)))
    }

    /// The input with its rows numbered (`ROW`) in its order, materialized: every reader sees
    /// the same numbers, and the input is read once.
    fn numbered_once(&mut self, rel: Rel, scope: &Scope, span: Span) -> Result<Rel> {
        let q = pipe(ident(INPUT, span), OperatorKind::Serialize(vec![named(Some(ROW), call("row_number", Vec::new(), span), span)]), span);
        let numbered = self.bind_tabular(&q, &scope.with(INPUT, Binding::Tabular(rel)))?;
        Ok(self.materialize(numbered))
    }

    /// Each row once per window it belongs to: offsets `0..bins` of `step` after its bin
    /// (`WINDOW` is the window's last bin, `OFFSET` the row's offset in it).
    fn expand_windows(&mut self, q: ast::Expr, bins: ast::Expr, step: ast::Expr, span: Span) -> ast::Expr {
        let offsets = call("range", vec![lit(LiteralKind::Long(0), span), bin(BinaryOp::Sub, bins, lit(LiteralKind::Long(1), span), span)], span);
        let item = ast::MvExpandItem { expr: named(Some(OFFSET), offsets, span), to_type: Some(ast::Ident::new("long", span)), span };
        let q = pipe(q, OperatorKind::MvExpand(ast::MvExpand { params: Vec::new(), items: vec![item], limit: None }), span);
        let window = bin(BinaryOp::Add, ident(BIN, span), bin(BinaryOp::Mul, ident(OFFSET, span), step, span), span);
        pipe(q, OperatorKind::Extend(vec![named(Some(WINDOW), window, span)]), span)
    }
}

/// `dims asc, axis asc`: the plugins' rows by dimension, then along the axis.
fn sort_keys(dims: &[String], axis: &str, span: Span) -> Vec<ast::SortKey> {
    dims.iter()
        .map(String::as_str)
        .chain(std::iter::once(axis))
        .map(|c| ast::SortKey { expr: ident(c, span), desc: Some(false), nulls_first: None, span })
        .collect()
}
