//! Serialized input in a definite order. KQL's `serialize` (and the window functions that need
//! it: `row_number`, `prev`, `next`, `row_cumsum`...) numbers rows in the order they arrive; a
//! `union` gives its legs in the order they are written. DataFusion merges the partitions of a
//! window's input with `CoalescePartitionsExec`, which interleaves them as they come, so
//! `union A, B | serialize n = row_number()` could number B's rows before A's, differently from
//! run to run. [`serialize_in_order`] replaces that merge, under a window, by
//! [`OrderedPartitionsExec`], which reads the partitions one after another: partition 0 (the
//! first leg), then 1, and so on.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result as DfResult, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
    ReplaceChildrenOptions,
};
use futures::StreamExt;

/// One partition: the input's partitions, each read to its end before the next.
#[derive(Debug)]
pub struct OrderedPartitionsExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl OrderedPartitionsExec {
    fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        OrderedPartitionsExec { input, properties }
    }
}

impl DisplayAs for OrderedPartitionsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "KqlOrderedPartitionsExec")
    }
}

impl ExecutionPlan for OrderedPartitionsExec {
    fn name(&self) -> &str {
        "KqlOrderedPartitionsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = crate::security::barrier::only_child(children, "KqlOrderedPartitionsExec")?;
        Ok(Arc::new(OrderedPartitionsExec::new(input)))
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("KqlOrderedPartitionsExec has one partition, not {partition}");
        }
        let n = self.input.output_partitioning().partition_count();
        let streams = (0..n).map(|p| self.input.execute(p, Arc::clone(&context))).collect::<DfResult<Vec<_>>>()?;
        let schema = self.input.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::iter(streams).flatten())))
    }
}

fn is_window(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<WindowAggExec>().is_some() || plan.downcast_ref::<BoundedWindowAggExec>().is_some()
}

/// Under every window operator, reads the partitions its input merges in order.
pub fn serialize_in_order(plan: Arc<dyn ExecutionPlan>) -> DfResult<Arc<dyn ExecutionPlan>> {
    let out = plan.transform_up(|node| {
        if !is_window(&node) {
            return Ok(Transformed::no(node));
        }
        let children: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
        let mut changed = false;
        let mut new_children = Vec::with_capacity(children.len());
        for c in children {
            match c.downcast_ref::<CoalescePartitionsExec>() {
                Some(coalesce) if coalesce.fetch().is_none() => {
                    changed = true;
                    new_children.push(Arc::new(OrderedPartitionsExec::new(Arc::clone(coalesce.input()))) as Arc<dyn ExecutionPlan>);
                }
                _ => new_children.push(c),
            }
        }
        if !changed {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(node.replace_children(new_children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))?))
    })?;
    Ok(out.data)
}
