//! Where the expressions under a security barrier come from.
//!
//! Between a barrier and its table's scan only two kinds of expression may run: the policy's
//! own, and *total* ones (a column compared with a literal, `in` a list, null tests, and
//! `and`/`or`/`not` of those: see `pushdown`), which can neither fail nor produce output on a
//! hidden row. Anything else there is a user expression that some rule moved below the
//! barrier, where its errors would reveal hidden rows.
//!
//! The barrier's physical planner records the expressions of the plan it wraps, as the
//! verified logical plan made them ([`Admitted::capture`]); physical rules run after that. The
//! verifier then accepts an expression under the barrier only if it is one of those (or part of
//! one), or a total operator over accepted operands ([`Admitted::accepts`]). Physical rules
//! renumber columns (projection pushdown narrows the inputs), so columns compare by name.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, DynamicFilterPhysicalExpr, InListExpr, IsNotNullExpr, IsNullExpr, Literal, NotExpr,
};
use datafusion::physical_plan::ExecutionPlan;

/// The expressions a barrier's plan held when it was planned, and every part of them, with
/// columns by name.
#[derive(Debug, Default)]
pub struct Admitted {
    exprs: HashSet<Arc<dyn PhysicalExpr>>,
}

impl Admitted {
    /// Records every expression of `plan` and its descendants, not looking below a node for
    /// which `stop` holds (a nested barrier answers for its own plan).
    pub fn capture(plan: &Arc<dyn ExecutionPlan>, stop: &dyn Fn(&Arc<dyn ExecutionPlan>) -> bool) -> Self {
        let mut exprs = HashSet::new();
        let _ = for_each_guarded_expr(plan, stop, &mut |root| -> Result<(), ()> {
            let _ = by_name(root).apply(|e| {
                exprs.insert(Arc::clone(e));
                Ok(TreeNodeRecursion::Continue)
            });
            Ok(())
        });
        Admitted { exprs }
    }

    /// Whether `expr` may run under the barrier: recorded, or total over accepted operands.
    pub fn accepts(&self, expr: &Arc<dyn PhysicalExpr>) -> bool {
        self.accepts_named(&by_name(expr))
    }

    fn accepts_named(&self, expr: &Arc<dyn PhysicalExpr>) -> bool {
        self.exprs.contains(expr) || (is_total_operator(expr) && expr.children().iter().all(|c| self.accepts_named(c)))
    }
}

/// Calls `f` with the expressions of `plan` and of its descendants, not entering a node for
/// which `stop` holds (neither its own expressions nor those below it). Stops at `f`'s first
/// error.
pub fn for_each_guarded_expr<E, F>(plan: &Arc<dyn ExecutionPlan>, stop: &dyn Fn(&Arc<dyn ExecutionPlan>) -> bool, f: &mut F) -> Result<(), E>
where
    F: FnMut(&Arc<dyn PhysicalExpr>) -> Result<(), E>,
{
    if stop(plan) {
        return Ok(());
    }
    let mut failed = None;
    let _ = plan.apply_expressions(&mut |e| match f(e) {
        Ok(()) => Ok(TreeNodeRecursion::Continue),
        Err(err) => {
            failed = Some(err);
            Ok(TreeNodeRecursion::Stop)
        }
    });
    if let Some(err) = failed {
        return Err(err);
    }
    for child in plan.children() {
        for_each_guarded_expr(child, stop, f)?;
    }
    Ok(())
}

/// `expr` with every column's index set to 0: columns compare by name.
fn by_name(expr: &Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
    Arc::clone(expr)
        .transform_up(|e| {
            Ok(match e.downcast_ref::<Column>() {
                Some(c) if c.index() != 0 => Transformed::yes(Arc::new(Column::new(c.name(), 0)) as Arc<dyn PhysicalExpr>),
                _ => Transformed::no(e),
            })
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| Arc::clone(expr))
}

/// Operators that cannot fail and observe nothing but their operands' values: columns,
/// literals, comparisons, `and`/`or`/`not`, null tests, `in` a list, and the filters DataFusion
/// derives at run time from a join's or a top-k's own input (bounds and membership tests).
fn is_total_operator(expr: &Arc<dyn PhysicalExpr>) -> bool {
    if let Some(b) = expr.downcast_ref::<BinaryExpr>() {
        return matches!(b.op(), Operator::And | Operator::Or) || is_comparison(b.op());
    }
    expr.is::<Column>()
        || expr.is::<Literal>()
        || expr.is::<NotExpr>()
        || expr.is::<IsNullExpr>()
        || expr.is::<IsNotNullExpr>()
        || expr.is::<InListExpr>()
        || expr.is::<DynamicFilterPhysicalExpr>()
}

/// The comparison operators, which cannot fail on operands of one type (the logical check,
/// `pushdown::is_total`, and the physical one share this list).
pub fn is_comparison(op: &Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    )
}
