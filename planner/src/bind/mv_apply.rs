//! `mv-apply`: a subquery applied to each input row's expanded arrays.
//!
//! Lowered as: number the input rows (hidden row id), `mv-expand` with an item index (the
//! order within the row), apply the subquery per row id (see `grouped.rs`), then join the
//! row's other columns back by row id.

use kustodian_parser::ast::{self, Operator, OperatorKind, Span};

use super::grouped::{GROUP_COL, ORD_COL, ident, is_grouping_hidden, qcol};
use super::sources::param_word;
use super::{Binder, Rel, Scope};
use crate::error::Result;
use crate::types::{KqlColumn, KqlSchema, KqlType};

const MV_INDEX: &str = "__kqlg_mvix";

impl<'a> Binder<'a> {
    pub(crate) fn plan_mv_apply(&mut self, rel: Rel, m: &ast::MvApply, scope: &Scope, span: Span) -> Result<Rel> {
        let mut index: Option<String> = None;
        for p in &m.params {
            match p.name.name.to_ascii_lowercase().as_str() {
                "with_itemindex" => index = param_word(&p.value),
                n if n.starts_with("hint.") => {}
                _ => return Err(self.unsupported(format!("the mv-apply parameter '{}'", p.name.name), p.span)),
            }
        }
        if m.items.is_empty() {
            return Err(self.semantic("mv-apply needs a column or expression to expand", span));
        }
        // The expanded items' names: an input column of the same name is replaced.
        let mut expanded: Vec<String> = Vec::new();
        for it in &m.items {
            if it.expr.names.len() > 1 {
                return Err(self.unsupported("tuple names in mv-apply", it.span));
            }
            let name = match it.expr.names.first() {
                Some(n) => Some(n.name.clone()),
                None => super::ops::result_name(&it.expr.expr, &|_| None),
            };
            if let Some(n) = name {
                expanded.push(n);
            }
        }
        let numbered = self.add_row_number(rel.clone(), GROUP_COL)?;
        let outer_names: Vec<String> = rel.names().into_iter().filter(|n| !expanded.contains(n)).collect();
        let mut outer_sel = outer_names.clone();
        outer_sel.push(GROUP_COL.to_string());
        let outer = self.select(numbered.clone(), &outer_sel)?;

        // mv-expand with an item index: the row's order within its sub-table.
        let ix = index.clone().unwrap_or_else(|| MV_INDEX.to_string());
        let mv = ast::MvExpand {
            params: vec![ast::OpParam { name: ast::Ident::new("with_itemindex", span), value: ident(&ix, span), span }],
            items: m.items.clone(),
            limit: m.limit.clone(),
        };
        let ex = self.bind_operator(numbered, &Operator::new(OperatorKind::MvExpand(mv), span), scope)?;
        let Some(ix_col) = ex.schema.columns.last().map(|c| c.name.clone()) else {
            return Err(crate::error::PlanError::Internal("mv-apply: empty expansion".into()));
        };
        let ord = ex.col(&ix_col)?.expr;
        let ex = self.add_column(ex, ORD_COL, ord, KqlType::Long)?;
        let ex = if index.is_none() {
            let keep: Vec<String> = ex.names().into_iter().filter(|n| n != &ix_col).collect();
            self.select(ex, &keep)?
        } else {
            ex
        };

        let sub = self.lower_grouped_ops(ex, &m.on, scope, "mv-apply")?;
        let sub_names: Vec<String> = sub.names().into_iter().filter(|n| !is_grouping_hidden(n)).collect();

        // Output: the input's other columns (the subquery's value when it has the column), then
        // the subquery's other columns.
        let mut order: Vec<String> = outer_names.clone();
        order.extend(sub_names.iter().filter(|n| !outer_names.contains(n)).cloned());
        let joined = if outer_names.iter().all(|n| sub_names.contains(n)) {
            sub
        } else {
            let plan = self.grouped_join(&outer, &sub, &[GROUP_COL.to_string()])?;
            let mut exprs = Vec::new();
            let mut cols = Vec::new();
            for n in &order {
                let (q, c) = match sub.schema.get(n) {
                    Some(c) => ("__gr", c.clone()),
                    None => match outer.schema.get(n) {
                        Some(c) => ("__gl", c.clone()),
                        None => return Err(crate::error::PlanError::Internal(format!("mv-apply: column '{n}' lost"))),
                    },
                };
                exprs.push(qcol(q, n).alias(n.clone()));
                cols.push(c);
            }
            exprs.push(qcol("__gl", GROUP_COL).alias(GROUP_COL));
            cols.push(KqlColumn::new(GROUP_COL, KqlType::Long));
            exprs.push(qcol("__gr", ORD_COL).alias(ORD_COL));
            cols.push(KqlColumn::new(ORD_COL, KqlType::Long));
            let plan = super::project(plan, exprs)?;
            Rel::new(plan, KqlSchema::new(cols))
        };
        let mut sel = order;
        sel.push(GROUP_COL.to_string());
        sel.push(ORD_COL.to_string());
        let joined = self.select(joined, &sel)?;
        self.grouped_finish(joined, true)
    }
}
