//! Kustodian's logical optimizer driver: one pass of the session's rules
//! (`session::optimizer_rules`), each run only when the plan holds a node it rewrites.
//!
//! DataFusion's `Optimizer::optimize` runs every rule over the whole plan, and before and after
//! the pass checks the plan's invariants and hashes the whole plan to detect a fixed point. For
//! the binder's plans, most rules have nothing to rewrite (no joins, no subqueries, no limits),
//! and one pass is all Kustodian runs, so the hash is never used. This driver applies the same
//! rules in the same order and the same traversal (`ApplyOrder`), skips a rule when the plan
//! has none of the node kinds the rule's `rewrite` matches (see [`Needs`]), and checks once, at
//! the end, that the output schema is the input's (DataFusion's own `assert_expected_schema`).
//! Debug builds also check the plan's invariants before and after, as DataFusion does.
//!
//! A skipped rule is one whose `rewrite` returns its input unchanged for every node of the
//! plan; the gate table ([`Needs::admits`]) lists, per rule, the node kinds its `rewrite`
//! matches on (DataFusion 55's sources). An unknown rule always runs. `simplify_expressions`
//! is also skipped node by node where a node's expressions are all columns and literals
//! ([`node_gate`]). `tests/optimizer_gates.rs` checks over the corpus that plans come out
//! exactly as from DataFusion's optimizer running every rule.

use datafusion::common::Result as DfResult;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan, assert_expected_schema};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use std::sync::Arc;

use crate::security::barrier::SecurityBarrier;

/// What a plan holds, as far as the gates need to know.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    union_or_distinct: bool,
    distinct: bool,
    join: bool,
    filter: bool,
    limit: bool,
    empty_relation: bool,
    subquery: bool,
    barrier: bool,
}

impl Needs {
    /// Walks the plan, its subqueries included, once.
    pub fn of(plan: &LogicalPlan) -> Self {
        let mut n = Needs::default();
        let _ = plan.apply_with_subqueries(|node| {
            match node {
                LogicalPlan::Union(_) => n.union_or_distinct = true,
                LogicalPlan::Distinct(_) => {
                    n.union_or_distinct = true;
                    n.distinct = true;
                }
                LogicalPlan::Join(_) => n.join = true,
                LogicalPlan::Filter(_) => n.filter = true,
                LogicalPlan::Limit(_) => n.limit = true,
                LogicalPlan::EmptyRelation(_) => n.empty_relation = true,
                LogicalPlan::Subquery(_) => n.subquery = true,
                LogicalPlan::Extension(ext) if SecurityBarrier::of(ext.node.as_ref()).is_some() => n.barrier = true,
                _ => {}
            }
            if !n.subquery {
                node.apply_expressions(|e| {
                    if e.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) | Expr::SetComparison(_))))? {
                        n.subquery = true;
                    }
                    Ok(TreeNodeRecursion::Continue)
                })?;
            }
            Ok(TreeNodeRecursion::Continue)
        });
        n
    }

    /// Whether the rule named `rule` may change a plan holding what `self` says.
    pub fn admits(&self, rule: &str) -> bool {
        match rule {
            // Union (flattening, single-input removal) and Distinct-over-Union.
            "optimize_unions" => self.union_or_distinct,
            "replace_distinct_aggregate" => self.distinct,
            // Filter predicates and Projection expressions holding subqueries.
            "decorrelate_predicate_subquery" | "scalar_subquery_to_join" => self.subquery,
            // Joins, and the joins decorrelating a subquery makes earlier in the same pass.
            "extract_equijoin_predicate" => self.join || self.subquery,
            "eliminate_filter" => self.filter,
            "eliminate_limit" | "push_down_limit" => self.limit,
            // Every case needs an empty input, which only an EmptyRelation is.
            "propagate_empty_relation" => self.empty_relation,
            // Filters, and join predicates.
            "push_down_filter" => self.filter || self.join,
            "push_total_filters_into_barrier" => self.barrier && self.filter,
            // simplify_expressions, optimize_projections and any other rule.
            _ => true,
        }
    }
}

/// Per node, whether the rule named `rule` may change that node.
///
/// `simplify_expressions` rewrites only a node's own expressions (its inputs are rewritten
/// when the traversal reaches them), and a column, a literal or an alias of a column is
/// already as simple as it gets: no constant to fold, no operator to rewrite, nothing to
/// canonicalize. Skipping such nodes (scans, renaming projections, sorts by columns, barriers,
/// unions) saves the schema merge and expression-name bookkeeping the rule does per node.
fn node_gate(rule: &str) -> fn(&LogicalPlan) -> bool {
    match rule {
        "simplify_expressions" => |node| {
            let mut simple = true;
            let _ = node.apply_expressions(|e| {
                simple = is_column_or_literal(e);
                Ok(if simple { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
            });
            !simple
        },
        _ => |_| true,
    }
}

fn is_column_or_literal(e: &Expr) -> bool {
    match e {
        Expr::Column(_) | Expr::Literal(..) => true,
        Expr::Alias(a) => is_column_or_literal(&a.expr),
        _ => false,
    }
}

/// One pass of `rules` over `plan`, skipping the rules [`Needs::admits`] rules out. `observer`
/// sees the plan after every rule that ran.
pub fn optimize_with(
    plan: LogicalPlan,
    rules: &[Arc<dyn OptimizerRule + Send + Sync>],
    config: &dyn OptimizerConfig,
    mut observer: impl FnMut(&LogicalPlan, &dyn OptimizerRule),
) -> DfResult<LogicalPlan> {
    #[cfg(debug_assertions)]
    plan.check_invariants(datafusion::logical_expr::InvariantLevel::Executable)?;
    let schema = Arc::clone(plan.schema());
    let mut needs = Needs::of(&plan);
    // No rule adds a subquery: a plan without one can take the plain traversal, which does not
    // look into every expression of every node for subqueries.
    let subqueries = needs.subquery;
    let mut plan = plan;
    for rule in rules {
        if !needs.admits(rule.name()) {
            continue;
        }
        let per_node = node_gate(rule.name());
        let apply = |p: LogicalPlan| if per_node(&p) { rule.rewrite(p, config) } else { Ok(Transformed::no(p)) };
        let out = match (rule.apply_order(), subqueries) {
            (Some(ApplyOrder::TopDown), true) => plan.transform_down_with_subqueries(apply)?,
            (Some(ApplyOrder::TopDown), false) => plan.transform_down(apply)?,
            (Some(ApplyOrder::BottomUp), true) => plan.transform_up_with_subqueries(apply)?,
            (Some(ApplyOrder::BottomUp), false) => plan.transform_up(apply)?,
            (None, _) => rule.rewrite(plan, config)?,
        };
        let Transformed { data, transformed, .. } = out;
        plan = data;
        if transformed {
            needs = Needs::of(&plan);
        }
        observer(&plan, rule.as_ref());
    }
    assert_expected_schema(&schema, &plan)?;
    #[cfg(debug_assertions)]
    plan.check_invariants(datafusion::logical_expr::InvariantLevel::Executable)?;
    Ok(plan)
}
