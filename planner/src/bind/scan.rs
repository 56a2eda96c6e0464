//! The `scan` operator: binds the declared columns, the steps' conditions and assignments
//! against a virtual relation (input columns, declared columns, and `step.column` state
//! columns), and plans a [`ScanNode`](crate::scan_exec::ScanNode) over the serialized input.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::{Expr as DfExpr, LogicalPlanBuilder};
use kustodian_parser::ast::visit_mut::{self, VisitorMut};
use kustodian_parser::ast::{self, ExprKind, Span};

use super::sources::param_word;
use super::{Binder, Rel, Scope};
use crate::error::{PlanError, Result};
use crate::functions;
use crate::scan_exec::{ScanNode, ScanSpec, ScanStepSpec, StepOutput};
use crate::types::{KqlColumn, KqlSchema, KqlType};

/// The hidden row number that carries the serialized order into the scan.
const SCAN_RN_COL: &str = "__kql_scan_rn";
/// The hidden output row number that keeps the scan's output order.
const SCAN_ORD_COL: &str = "__kql_scan_ord";

impl<'a> Binder<'a> {
    /// `T | scan ...`.
    pub(crate) fn plan_scan(&mut self, rel: Rel, s: &ast::Scan, scope: &Scope, span: Span) -> Result<Rel> {
        self.plan_scan_grouped(rel, s, scope, span, None)
    }

    /// `scan` over `rel`; with `grouped = Some((group column, order column))` the scan runs
    /// independently per group value (inside `partition`), ordered by the order column, and
    /// both columns pass through.
    pub(crate) fn plan_scan_grouped(
        &mut self,
        rel: Rel,
        s: &ast::Scan,
        scope: &Scope,
        span: Span,
        grouped: Option<(&str, &str)>,
    ) -> Result<Rel> {
        let mut match_id: Option<String> = None;
        for p in &s.params {
            if p.name.name.eq_ignore_ascii_case("with_match_id") {
                match param_word(&p.value) {
                    Some(w) => match_id = Some(w),
                    None => return Err(self.semantic("with_match_id expects a column name", p.span)),
                }
            } else {
                return Err(self.semantic(format!("unknown scan parameter '{}'", p.name.name), p.span));
            }
        }
        if !s.order_by.is_empty() || !s.partition_by.is_empty() {
            return Err(self.unsupported("scan with 'order by' or 'partition by' (sort or partition the input instead)", span));
        }
        if let Some(st) = s.steps.iter().find(|st| st.optional) {
            return Err(self.unsupported("optional scan steps", st.span));
        }
        for (i, st) in s.steps.iter().enumerate() {
            if s.steps[..i].iter().any(|o| o.name.name == st.name.name) {
                return Err(self.semantic(format!("scan step name '{}' is used more than once", st.name.name), st.name.span));
            }
        }

        // The input: visible columns (unqualified), then the order column when not grouped.
        let visible: Vec<String> = rel.names().into_iter().filter(|n| n != SCAN_RN_COL).collect();
        let (input, order_col, group_col, n_input) = match grouped {
            None => {
                use datafusion::functions_window::expr_fn::row_number;
                let rn = match super::ops::input_ordering(&rel.plan) {
                    Some(order) => {
                        use datafusion::logical_expr::ExprFunctionExt;
                        row_number().order_by(order).build()?
                    }
                    None => row_number(),
                };
                let plan = rel.builder().window(vec![rn.alias(SCAN_RN_COL)])?.build()?;
                let mut cols = rel.schema.columns.clone();
                cols.push(KqlColumn::new(SCAN_RN_COL, KqlType::Long));
                let windowed = Rel::new(plan, KqlSchema::new(cols));
                let mut names = visible.clone();
                names.push(SCAN_RN_COL.to_string());
                let input = self.select(windowed, &names)?;
                let n = visible.len();
                (input, n, None, n)
            }
            Some((g, o)) => {
                let input = self.select(rel, &visible)?;
                let gi = visible.iter().position(|n| n == g).ok_or_else(|| PlanError::Internal("scan: group column missing".into()))?;
                let oi = visible.iter().position(|n| n == o).ok_or_else(|| PlanError::Internal("scan: order column missing".into()))?;
                (input, oi, Some(gi), visible.len())
            }
        };
        let in_fields: Vec<Arc<Field>> = input.plan.schema().fields().iter().take(n_input).cloned().collect();
        let in_cols: Vec<KqlColumn> = input.schema.columns.iter().take(n_input).cloned().collect();

        // Declared columns.
        let mut declared: Vec<KqlColumn> = Vec::new();
        let mut defaults: Vec<DfExpr> = Vec::new();
        for p in &s.declare {
            let ast::ParamType::Scalar(t) = &p.ty else {
                return Err(self.semantic("scan declares scalar columns only", p.span));
            };
            let ty = self.type_name(t)?;
            let name = p.name.name.clone();
            if in_cols.iter().any(|c| c.name == name) || declared.iter().any(|c| c.name == name) {
                return Err(self.semantic(format!("scan declares column '{name}', which already exists"), p.name.span));
            }
            let d = match &p.default {
                Some(e) => {
                    let v = self.bind_scalar(e, None, scope)?;
                    if v.ty == ty { v } else { functions::lower_cast(v, ty)? }
                }
                None => super::scalar::null_of(ty)?,
            };
            if has_subquery(&d.expr) {
                return Err(self.unsupported("subqueries (toscalar, in) in scan declarations", p.span));
            }
            defaults.push(d.expr);
            declared.push(KqlColumn::new(name, ty));
        }
        if let Some(m) = &match_id
            && (in_cols.iter().any(|c| &c.name == m) || declared.iter().any(|c| &c.name == m))
        {
            return Err(self.semantic(format!("with_match_id column '{m}' already exists"), span));
        }

        // The virtual relation the steps are bound against.
        let record: Vec<(KqlColumn, DataType)> = in_cols
            .iter()
            .zip(&in_fields)
            .map(|(c, f)| (c.clone(), f.data_type().clone()))
            .chain(declared.iter().map(|c| (c.clone(), c.ty.arrow_type())))
            .collect();
        let mut vcols: Vec<(String, KqlType, DataType)> = record.iter().map(|(c, dt)| (c.name.clone(), c.ty, dt.clone())).collect();
        let mut step_index: HashMap<String, usize> = HashMap::new();
        for (k, st) in s.steps.iter().enumerate() {
            step_index.insert(st.name.name.clone(), k);
            for (j, (c, dt)) in record.iter().enumerate() {
                vcols.push((state_col(k, j), c.ty, dt.clone()));
            }
        }
        let mut vexprs = Vec::with_capacity(vcols.len());
        for (n, _, dt) in &vcols {
            vexprs.push(DfExpr::Literal(ScalarValue::try_from(dt)?, None).alias(n.clone()));
        }
        let vplan = LogicalPlanBuilder::empty(true).project(vexprs)?.build()?;
        let vschema = KqlSchema::new(vcols.iter().map(|(n, t, _)| KqlColumn::new(n.clone(), *t)).collect());
        let vrel = Rel::new(vplan, vschema);
        let record_names: Vec<String> = record.iter().map(|(c, _)| c.name.clone()).collect();

        let mut steps = Vec::new();
        for st in &s.steps {
            let output = match st.output.as_ref().map(|o| o.name.to_ascii_lowercase()) {
                None => StepOutput::All,
                Some(o) if o == "all" => StepOutput::All,
                Some(o) if o == "last" => StepOutput::Last,
                Some(o) if o == "none" => StepOutput::None,
                Some(o) => return Err(self.semantic(format!("unknown scan step output '{o}'"), st.span)),
            };
            let mut cond = st.condition.clone();
            self.rewrite_state_refs(&mut cond, &step_index, &record_names)?;
            let c = self.bind_scalar(&cond, Some(&vrel), scope)?;
            if has_subquery(&c.expr) {
                return Err(self.unsupported("subqueries (toscalar, in) inside scan steps", st.condition.span));
            }
            let c = match c.ty {
                KqlType::Bool => c,
                KqlType::Dynamic => functions::lower_cast(c, KqlType::Bool)?,
                t => return Err(self.semantic(format!("a scan step condition must be bool, not {t}"), st.condition.span)),
            };
            let mut assignments = Vec::new();
            for (name, e) in &st.assignments {
                let Some(i) = declared.iter().position(|d| d.name == name.name) else {
                    return Err(self.semantic(
                        format!("scan step '{}' assigns '{}', which is not a declared column", st.name.name, name.name),
                        name.span,
                    ));
                };
                let mut e = e.clone();
                self.rewrite_state_refs(&mut e, &step_index, &record_names)?;
                let v = self.bind_scalar(&e, Some(&vrel), scope)?;
                if has_subquery(&v.expr) {
                    return Err(self.unsupported("subqueries (toscalar, in) inside scan steps", e.span));
                }
                let ty = declared[i].ty;
                let v = if v.ty == ty { v } else { functions::lower_cast(v, ty)? };
                assignments.push((i, v.expr));
            }
            steps.push(ScanStepSpec { name: st.name.name.clone(), output, condition: c.expr, assignments });
        }

        // Output: the record's columns, then the match id.
        let mut out_fields: Vec<Arc<Field>> = in_fields.clone();
        out_fields.extend(declared.iter().map(|c| Arc::new(Field::new(c.name.clone(), c.ty.arrow_type(), true))));
        let mut out_cols = in_cols.clone();
        out_cols.extend(declared.iter().cloned());
        if let Some(m) = &match_id {
            out_fields.push(Arc::new(Field::new(m.clone(), DataType::Int64, true)));
            out_cols.push(KqlColumn::new(m.clone(), KqlType::Long));
        }
        let emit_order = grouped.is_none();
        if emit_order {
            out_fields.push(Arc::new(Field::new(SCAN_ORD_COL, DataType::Int64, false)));
            out_cols.push(KqlColumn::new(SCAN_ORD_COL, KqlType::Long));
        }
        let schema = Arc::new(DFSchema::from_unqualified_fields(Fields::from(out_fields), HashMap::new())?);
        let spec = ScanSpec {
            n_input,
            order_col,
            group_col,
            defaults,
            steps,
            virtual_schema: Arc::clone(vrel.plan.schema()),
            match_id: match_id.is_some(),
            emit_order,
        };
        let scanned = Rel::new(ScanNode::plan(input.plan, spec, schema), KqlSchema::new(out_cols));
        if !emit_order {
            return Ok(scanned);
        }
        // Keep the scan's output order for the operators after it, then drop the row number.
        let plan = scanned.builder().sort(vec![scanned.col(SCAN_ORD_COL)?.expr.sort(true, false)])?.build()?;
        let sorted = Rel::new(plan, scanned.schema.clone());
        let keep: Vec<String> = sorted.names().into_iter().filter(|n| n != SCAN_ORD_COL).collect();
        self.select(sorted, &keep)
    }

    /// Replaces `step.column` references with the virtual state columns (outside subqueries
    /// and lambdas, where a step's name means nothing).
    fn rewrite_state_refs(&self, e: &mut ast::Expr, steps: &HashMap<String, usize>, cols: &[String]) -> Result<()> {
        let mut v = StateRefs { steps, cols, unknown: None };
        v.visit_expr(e);
        match v.unknown {
            Some((step, column, span)) => Err(self.semantic(format!("scan step '{step}' has no column '{column}'"), span)),
            None => Ok(()),
        }
    }
}

/// Writes `step.column` as the virtual state column of the step's value of the column; the
/// first reference to a column the steps do not have is kept in `unknown` and ends the walk.
struct StateRefs<'a> {
    steps: &'a HashMap<String, usize>,
    cols: &'a [String],
    unknown: Option<(String, String, Span)>,
}

impl VisitorMut for StateRefs<'_> {
    fn visit_expr(&mut self, e: &mut ast::Expr) {
        if self.unknown.is_some() || e.is_query_boundary() {
            return;
        }
        if let ExprKind::Member { expr, name } = &e.kind
            && let ExprKind::Ident(step) = &expr.kind
            && let Some(k) = self.steps.get(&step.name)
        {
            match self.cols.iter().position(|c| c == &name.name) {
                Some(j) => e.kind = ExprKind::Ident(ast::Ident::new(state_col(*k, j), e.span)),
                None => self.unknown = Some((step.name.clone(), name.name.clone(), e.span)),
            }
            return;
        }
        visit_mut::walk_expr(self, e);
    }
}

/// Whether an expression holds a subquery (the scan evaluates its steps row by row, without
/// a plan for subqueries).
fn has_subquery(e: &DfExpr) -> bool {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = false;
    let _ = e.apply(|x| {
        if matches!(x, DfExpr::ScalarSubquery(_) | DfExpr::InSubquery(_) | DfExpr::Exists(_) | DfExpr::SetComparison(_)) {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The virtual column of step `k`'s value of record column `j`.
fn state_col(k: usize, j: usize) -> String {
    format!("__kql_scan_s{k}_c{j}")
}

