//! Plan verification: every scan of an RLS-protected table must sit under that table's
//! security barrier, in the logical plan (after optimization) and the physical plan. Fails
//! closed.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

use crate::barrier::{SecurityBarrier, count_logical_barriers, count_physical_barriers};
use crate::error::{PlanError, Result};

/// Checks that no scan of a table in `protected` (entity names `[db].[T]`) escapes its barrier.
pub fn verify_logical(plan: &LogicalPlan, protected: &[String]) -> Result<()> {
    if protected.is_empty() {
        return Ok(());
    }
    walk(plan, protected, &mut Vec::new())
}

fn walk(plan: &LogicalPlan, protected: &[String], barriers: &mut Vec<String>) -> Result<()> {
    let mut pushed = false;
    match plan {
        LogicalPlan::Extension(ext) => {
            if let Some(b) = SecurityBarrier::of(ext.node.as_ref()) {
                barriers.push(b.table.clone());
                pushed = true;
            }
        }
        LogicalPlan::TableScan(scan) => {
            let entity = match (scan.table_name.schema(), scan.table_name.table()) {
                (Some(db), t) => format!("[{db}].[{t}]"),
                (None, t) => t.to_string(),
            };
            if protected.contains(&entity) && !barriers.contains(&entity) {
                return Err(PlanError::Internal(format!(
                    "plan verification failed: a scan of {entity} is not under its row-level-security barrier"
                )));
            }
        }
        _ => {}
    }
    // Subqueries (IN, scalar, EXISTS) hold plans too.
    let mut res = Ok(());
    let _ = plan.apply_subqueries(|sub| {
        if let Err(e) = walk(sub, protected, barriers) {
            res = Err(e);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    res?;
    for input in plan.inputs() {
        walk(input, protected, barriers)?;
    }
    if pushed {
        barriers.pop();
    }
    Ok(())
}

/// The physical plan must keep every barrier of the logical plan.
pub fn verify_physical(logical: &LogicalPlan, physical: &Arc<dyn ExecutionPlan>) -> Result<()> {
    let want = count_logical_barriers(logical);
    let have = count_physical_barriers(physical);
    if have < want {
        return Err(PlanError::Internal(format!(
            "plan verification failed: {want} security barrier(s) planned but {have} in the physical plan"
        )));
    }
    Ok(())
}
