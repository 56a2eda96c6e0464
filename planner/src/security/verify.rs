//! Plan verification, fail closed: every scan of an RLS-protected table sits under that
//! table's security barrier, in the logical plan (bound and optimized) and in the physical plan.
//!
//! Logically, a scan of a protected table must also read through [`ProtectedTable`], which
//! names the table in the physical plan ([`ProtectedScanExec`]); physically, every such scan
//! must have its own table's [`BarrierExec`] as an ancestor, no barrier may be lost, and nothing
//! between a barrier and the scans below it may evaluate a user expression (see
//! [`crate::security::provenance`]).

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

use datafusion::datasource::source_as_provider;

use crate::security::barrier::{BarrierExec, SecurityBarrier, count_logical_barriers, count_physical_barriers};
use crate::security::protected::{ProtectedScanExec, ProtectedTable};
use crate::security::provenance::for_each_guarded_expr;
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
            let marked = source_as_provider(&scan.source).ok().and_then(|p| p.downcast_ref::<ProtectedTable>().map(|t| t.entity().to_string()));
            if protected.contains(&entity) && marked.as_deref() != Some(entity.as_str()) {
                return Err(PlanError::Internal(format!(
                    "plan verification failed: a scan of {entity} under its barrier does not read through the protected provider"
                )));
            }
            if let Some(m) = marked
                && !barriers.contains(&m)
            {
                return Err(PlanError::Internal(format!(
                    "plan verification failed: a protected scan of {m} is not under its row-level-security barrier"
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

/// The physical plan must keep every barrier of the logical plan, and every protected scan must
/// have its own table's barrier as an ancestor.
pub fn verify_physical(logical: &LogicalPlan, physical: &Arc<dyn ExecutionPlan>) -> Result<()> {
    let want = count_logical_barriers(logical);
    let have = count_physical_barriers(physical);
    if have < want {
        return Err(PlanError::Internal(format!(
            "plan verification failed: {want} security barrier(s) planned but {have} in the physical plan"
        )));
    }
    walk_physical(physical, &mut Vec::new())
}

fn walk_physical(plan: &Arc<dyn ExecutionPlan>, barriers: &mut Vec<String>) -> Result<()> {
    let barrier = plan.downcast_ref::<BarrierExec>().map(|b| b.table().to_string());
    if let Some(scan) = plan.downcast_ref::<ProtectedScanExec>()
        && !barriers.iter().any(|b| b == scan.table())
    {
        return Err(PlanError::Internal(format!(
            "plan verification failed: the physical scan of {} is not under its row-level-security barrier",
            scan.table()
        )));
    }
    if let Some(guard) = plan.downcast_ref::<BarrierExec>() {
        for input in plan.children() {
            check_guarded(guard, input)?;
        }
    }
    let pushed = barrier.is_some();
    if let Some(b) = barrier {
        barriers.push(b);
    }
    for child in plan.children() {
        walk_physical(child, barriers)?;
    }
    if pushed {
        barriers.pop();
    }
    Ok(())
}

/// Nothing between a barrier and the scans below it evaluates a user expression: every
/// expression there (down to the next barrier, which answers for its own plan) is one the
/// barrier's plan held when it was built, or a total operator over such (see [`crate::security::provenance::Admitted`]).
fn check_guarded(guard: &BarrierExec, input: &Arc<dyn ExecutionPlan>) -> Result<()> {
    for_each_guarded_expr(input, &|p| p.is::<BarrierExec>(), &mut |e| {
        if guard.admitted().accepts(e) {
            Ok(())
        } else {
            // Not the expression itself: it may hold the policy's literals.
            Err(PlanError::Internal(format!(
                "plan verification failed: an expression that is neither the policy's nor total runs under the row-level-security barrier of {}",
                guard.table()
            )))
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! Each check is handed a deliberately broken plan and must refuse it.
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::catalog::TableProvider;
    use datafusion::common::TableReference;
    use datafusion::datasource::memory::{MemTable, MemorySourceConfig};
    use datafusion::datasource::provider_as_source;
    use datafusion::logical_expr::{LogicalPlanBuilder, col, lit};
    use datafusion::physical_plan::union::UnionExec;

    const T: &str = "[Db].[T]";

    fn mem() -> (Arc<MemTable>, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        (Arc::new(MemTable::try_new(schema, vec![vec![batch.clone()]]).unwrap()), batch)
    }

    fn scan(table: &str, provider: Arc<dyn TableProvider>) -> LogicalPlanBuilder {
        LogicalPlanBuilder::scan(TableReference::partial("Db", table), provider_as_source(provider), None).unwrap()
    }

    fn protected(entity: &str) -> Arc<dyn TableProvider> {
        Arc::new(ProtectedTable::new(entity, mem().0))
    }

    fn message(r: Result<()>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn logical_checks_refuse_broken_plans() {
        let policy = scan("T", protected(T)).filter(col("x").gt(lit(1))).unwrap().build().unwrap();
        let good = LogicalPlanBuilder::from(SecurityBarrier::wrap(T, policy.clone())).filter(col("x").lt(lit(5))).unwrap().build().unwrap();
        verify_logical(&good, &[T.to_string()]).unwrap();

        // A raw scan of the protected table, under its barrier but not through the marker.
        let unmarked = SecurityBarrier::wrap(T, scan("T", mem().0).build().unwrap());
        assert!(message(verify_logical(&unmarked, &[T.to_string()])).contains("protected provider"));
        // The protected scan outside any barrier (as if a rule had lifted it out).
        assert!(message(verify_logical(&policy, &[T.to_string()])).contains("not under"));
        // Under another table's barrier.
        let other = SecurityBarrier::wrap("[Db].[U]", policy.clone());
        assert!(message(verify_logical(&other, &[T.to_string()])).contains("not under"));
        // A marked scan out of its barrier is refused even if the table is not listed.
        assert!(message(verify_logical(&policy, &["[Db].[Other]".to_string()])).contains("not under"));
    }

    #[test]
    fn physical_checks_refuse_broken_plans() {
        let (table, batch) = mem();
        let source = || -> Arc<dyn ExecutionPlan> { MemorySourceConfig::try_new_exec(&[vec![batch.clone()]], table.schema(), None).unwrap() };
        let policy = scan("T", protected(T)).build().unwrap();
        let logical = SecurityBarrier::wrap(T, policy);
        let guarded: Arc<dyn ExecutionPlan> = Arc::new(BarrierExec::new(T, Arc::new(ProtectedScanExec::new(T, source()))));
        verify_physical(&logical, &guarded).unwrap();

        // The barrier is there (the count matches) but a second scan of T escaped it: only the
        // placement check sees it.
        let escaped = UnionExec::try_new(vec![Arc::clone(&guarded), Arc::new(ProtectedScanExec::new(T, source()))]).unwrap();
        assert_eq!(count_physical_barriers(&escaped), count_logical_barriers(&logical));
        assert!(message(verify_physical(&logical, &escaped)).contains("physical scan of [Db].[T] is not under"));
        // Under another table's barrier.
        let wrong: Arc<dyn ExecutionPlan> = Arc::new(BarrierExec::new("[Db].[U]", Arc::new(ProtectedScanExec::new(T, source()))));
        assert!(message(verify_physical(&logical, &wrong)).contains("not under"));
        // A barrier lost altogether.
        let lost: Arc<dyn ExecutionPlan> = Arc::new(ProtectedScanExec::new(T, source()));
        assert!(message(verify_physical(&logical, &lost)).contains("planned but 0"));
    }

    /// Physical rules run after the barrier is planned; whatever they leave between the barrier
    /// and the scan must be the policy's or total.
    #[test]
    fn physical_checks_refuse_user_expressions_under_the_barrier() {
        use datafusion::logical_expr::Operator;
        use datafusion::physical_expr::PhysicalExpr;
        use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
        use datafusion::physical_plan::filter::FilterExec;
        use datafusion::physical_plan::projection::ProjectionExec;
        use datafusion::scalar::ScalarValue;

        let (table, batch) = mem();
        let logical = SecurityBarrier::wrap(T, scan("T", protected(T)).build().unwrap());
        let scan = || -> Arc<dyn ExecutionPlan> {
            Arc::new(ProtectedScanExec::new(T, MemorySourceConfig::try_new_exec(&[vec![batch.clone()]], table.schema(), None).unwrap()))
        };
        let x = || -> Arc<dyn PhysicalExpr> { Arc::new(Column::new("x", 0)) };
        let int = |v: i64| -> Arc<dyn PhysicalExpr> { Arc::new(Literal::new(ScalarValue::Int64(Some(v)))) };
        let bin = |l, op, r| -> Arc<dyn PhysicalExpr> { Arc::new(BinaryExpr::new(l, op, r)) };
        // The policy: `where 100 / x > 1`, which may fail (x = 0), and is the policy's to run.
        let policy_predicate = bin(bin(int(100), Operator::Divide, x()), Operator::Gt, int(1));
        let policy: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(Arc::clone(&policy_predicate), scan()).unwrap());
        let guarded: Arc<dyn ExecutionPlan> = Arc::new(BarrierExec::new(T, Arc::clone(&policy)));
        verify_physical(&logical, &guarded).unwrap();
        let rewritten = |below: Arc<dyn ExecutionPlan>| {
            use datafusion::physical_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
            Arc::clone(&guarded).replace_children(vec![below], ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute)).unwrap()
        };

        // A user's total predicate moved inside (as `pushdown` does): accepted.
        let total = bin(x(), Operator::Lt, int(5));
        let with_total = Arc::new(FilterExec::try_new(Arc::clone(&total), Arc::clone(&policy)).unwrap());
        verify_physical(&logical, &rewritten(with_total)).unwrap();
        // Merged with the policy's own predicate into one filter over the scan: accepted.
        let merged = Arc::new(FilterExec::try_new(bin(Arc::clone(&policy_predicate), Operator::And, total), scan()).unwrap());
        verify_physical(&logical, &rewritten(merged)).unwrap();

        let refused = "neither the policy's nor total runs under the row-level-security barrier of [Db].[T]";
        // A user's predicate that can fail (`10 / x > 2`), below the policy's filter.
        let fallible = bin(bin(int(10), Operator::Divide, x()), Operator::Gt, int(2));
        let below = Arc::new(FilterExec::try_new(Arc::clone(&fallible), scan()).unwrap());
        let pushed = Arc::new(FilterExec::try_new(Arc::clone(&policy_predicate), below).unwrap());
        assert!(message(verify_physical(&logical, &rewritten(pushed))).contains(refused));
        // ... or folded into the policy's predicate with `and`.
        let folded = Arc::new(FilterExec::try_new(bin(Arc::clone(&policy_predicate), Operator::And, fallible), scan()).unwrap());
        assert!(message(verify_physical(&logical, &rewritten(folded))).contains(refused));
        // A projection computing something the policy does not, between the policy and the scan.
        let computed = bin(int(7), Operator::Divide, x());
        let projected = Arc::new(ProjectionExec::try_new(vec![(computed, "x".to_string())], scan()).unwrap());
        let over = Arc::new(FilterExec::try_new(Arc::clone(&policy_predicate), projected).unwrap());
        assert!(message(verify_physical(&logical, &rewritten(over))).contains(refused));
        // A column renumbered by a rule (projection pushdown narrows inputs) is the same column.
        let wide = Arc::new(ProjectionExec::try_new(vec![(x(), "w".to_string()), (x(), "x".to_string())], scan()).unwrap());
        let renumbered = bin(bin(int(100), Operator::Divide, Arc::new(Column::new("x", 1))), Operator::Gt, int(1));
        let narrowed = Arc::new(FilterExec::try_new(renumbered, wide).unwrap());
        verify_physical(&logical, &rewritten(narrowed)).unwrap();
    }
}
