//! KQL's `scan` operator: a logical extension node and a physical exec that run the scan's
//! per-row state machine over the serialized input.
//!
//! The step conditions and assignments are bound (see `bind/scan.rs`) against a *virtual*
//! schema: the input's visible columns, the declared columns (at their defaults), then for
//! every step `k` a copy of those columns holding the values `s_k` recorded in the state the
//! row is checked against. The exec compiles them to physical expressions over that schema and
//! evaluates them on one-row batches, one row of the input at a time.
//!
//! Semantics follow Kusto's documented matching logic: each row is checked against the steps
//! from the last to the first; a row matches `s_k` either by advancing the sequence in the state
//! of `s_{k-1}` (check 1) or by staying in the active sequence of `s_k` / starting a new one at
//! the first step (check 2). The input is read in full (one partition), ordered by a hidden row
//! number the binder adds; with a group column the state machine runs once per group value.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions, new_null_array};
use datafusion::arrow::compute::{cast, concat, concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result as DfResult, ScalarValue, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
    ReplaceChildrenOptions,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};

/// What a step outputs on a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepOutput {
    All,
    Last,
    None,
}

/// One `step`: its condition and the assignments to declared columns (index into `declared`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScanStepSpec {
    pub name: String,
    pub output: StepOutput,
    pub condition: Expr,
    pub assignments: Vec<(usize, Expr)>,
}

/// Everything the exec needs besides its input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScanSpec {
    /// Input columns `0..n_input` are the record's columns (passed through to the output).
    pub n_input: usize,
    /// The input column that orders the rows (a row number).
    pub order_col: usize,
    /// A column whose values split the input into independent scans (`partition` groups).
    pub group_col: Option<usize>,
    /// Default value of every declared column (constant expressions).
    pub defaults: Vec<Expr>,
    pub steps: Vec<ScanStepSpec>,
    /// The schema the conditions and assignments are bound against (see the module docs).
    pub virtual_schema: DFSchemaRef,
    /// Whether the output has the match-id column (after the record's columns).
    pub match_id: bool,
    /// Whether the output ends with the output row number (`Int64`, 0-based, non-null), which
    /// keeps the scan's output order through the operators after it.
    pub emit_order: bool,
}

/// Logical `scan` node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScanNode {
    pub input: LogicalPlan,
    pub spec: ScanSpec,
    schema: DFSchemaRef,
}

impl ScanNode {
    pub fn new(input: LogicalPlan, spec: ScanSpec, schema: DFSchemaRef) -> Self {
        ScanNode { input, spec, schema }
    }

    pub fn plan(input: LogicalPlan, spec: ScanSpec, schema: DFSchemaRef) -> LogicalPlan {
        LogicalPlan::Extension(Extension { node: Arc::new(ScanNode::new(input, spec, schema)) })
    }

    pub fn of(node: &dyn UserDefinedLogicalNode) -> Option<&ScanNode> {
        node.as_any().downcast_ref::<ScanNode>()
    }
}

impl PartialOrd for ScanNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.input.partial_cmp(&other.input) {
            Some(Ordering::Equal) if self != other => None,
            ord => ord,
        }
    }
}

impl UserDefinedLogicalNodeCore for ScanNode {
    fn name(&self) -> &str {
        "KqlScan"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    // The expressions are over the virtual schema, not the input's: they are not exposed to
    // the optimizer (which would coerce or rewrite them against the input).
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let steps: Vec<&str> = self.spec.steps.iter().map(|s| s.name.as_str()).collect();
        write!(f, "KqlScan: steps=[{}]", steps.join(", "))
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, mut inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        match inputs.pop() {
            Some(input) if inputs.is_empty() => Ok(ScanNode::new(input, self.spec.clone(), Arc::clone(&self.schema))),
            _ => internal_err!("KqlScan takes exactly one input"),
        }
    }
}

struct PhysStep {
    output: StepOutput,
    condition: Arc<dyn PhysicalExpr>,
    assignments: Vec<(usize, Arc<dyn PhysicalExpr>)>,
}

impl fmt::Debug for PhysStep {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "step(output={:?})", self.output)
    }
}

#[derive(Debug)]
struct PhysSpec {
    n_input: usize,
    order_col: usize,
    group_col: Option<usize>,
    defaults: Vec<Arc<dyn PhysicalExpr>>,
    steps: Vec<PhysStep>,
    virtual_schema: SchemaRef,
    match_id: bool,
    emit_order: bool,
}

/// Physical `scan`: reads its whole input (one partition), then runs the state machine.
#[derive(Debug)]
pub struct ScanExec {
    input: Arc<dyn ExecutionPlan>,
    spec: Arc<PhysSpec>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl ScanExec {
    fn new(input: Arc<dyn ExecutionPlan>, spec: Arc<PhysSpec>, schema: SchemaRef) -> Self {
        let eq = if spec.emit_order && !schema.fields().is_empty() {
            let idx = schema.fields().len() - 1;
            let col = datafusion::physical_expr::expressions::Column::new(schema.field(idx).name(), idx);
            let opts = datafusion::arrow::compute::SortOptions { descending: false, nulls_first: false };
            let ord = datafusion::physical_expr::PhysicalSortExpr::new(Arc::new(col), opts);
            EquivalenceProperties::new_with_orderings(Arc::clone(&schema), [[ord]])
        } else {
            EquivalenceProperties::new(Arc::clone(&schema))
        };
        let properties = Arc::new(PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        ScanExec { input, spec, schema, properties }
    }
}

impl DisplayAs for ScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "KqlScanExec: steps={}", self.spec.steps.len())
    }
}

impl ExecutionPlan for ScanExec {
    fn name(&self) -> &str {
        "KqlScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        // The expressions are over the virtual schema, not the input's.
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = crate::security::barrier::only_child(children, "KqlScanExec")?;
        Ok(Arc::new(ScanExec::new(input, Arc::clone(&self.spec), Arc::clone(&self.schema))))
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("KqlScanExec has one partition, not {partition}");
        }
        let input = self.input.execute(0, context)?;
        let in_schema = self.input.schema();
        let spec = Arc::clone(&self.spec);
        let schema = Arc::clone(&self.schema);
        let out_schema = Arc::clone(&schema);
        let fut = async move {
            let batches = datafusion::physical_plan::common::collect(input).await?;
            run_scan(&spec, &in_schema, &out_schema, &batches)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::once(fut))))
    }
}

/// Plans [`ScanNode`]s as [`ScanExec`]s.
#[derive(Debug, Default)]
pub struct ScanPlanner;

#[async_trait]
impl ExtensionPlanner for ScanPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(scan) = ScanNode::of(node) else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return internal_err!("KqlScan takes exactly one input");
        };
        let s = &scan.spec;
        let vschema = s.virtual_schema.as_ref();
        let empty = DFSchema::empty();
        let defaults = s.defaults.iter().map(|e| session.create_physical_expr(e.clone(), &empty)).collect::<DfResult<Vec<_>>>()?;
        let mut steps = Vec::with_capacity(s.steps.len());
        for st in &s.steps {
            let condition = session.create_physical_expr(st.condition.clone(), vschema)?;
            let assignments = st
                .assignments
                .iter()
                .map(|(i, e)| Ok((*i, session.create_physical_expr(e.clone(), vschema)?)))
                .collect::<DfResult<Vec<_>>>()?;
            steps.push(PhysStep { output: st.output, condition, assignments });
        }
        let spec = PhysSpec {
            n_input: s.n_input,
            order_col: s.order_col,
            group_col: s.group_col,
            defaults,
            steps,
            virtual_schema: Arc::clone(vschema.inner()),
            match_id: s.match_id,
            emit_order: s.emit_order,
        };
        let schema = Arc::clone(scan.schema.inner());
        Ok(Some(Arc::new(ScanExec::new(Arc::clone(input), Arc::new(spec), schema))))
    }
}

// ------------------------------------------------------------------------------ execution

/// One record of the state: the row's columns then the declared columns, as one-row arrays.
type Record = Vec<ArrayRef>;

/// An active sequence: its match id and the records of steps `0..=k` (for the state of `s_k`).
#[derive(Clone)]
struct Seq {
    id: i64,
    records: Vec<Record>,
}

/// One output row: input row index (for the output order), the record and its match id.
type Out = (usize, Record, i64);

struct Machine {
    states: Vec<Option<Seq>>,
    /// `output=last`: the latest match of a step, output when its series ends.
    pending: Vec<Option<Out>>,
    next_id: i64,
}

impl Machine {
    fn new(n: usize) -> Self {
        Machine { states: vec![None; n], pending: vec![None; n], next_id: 0 }
    }

    fn flush(&mut self, k: usize, out: &mut Vec<Out>) {
        if let Some(p) = self.pending[k].take() {
            out.push(p);
        }
    }
}

struct Ctx<'a> {
    spec: &'a PhysSpec,
    /// Declared columns at their defaults.
    defaults: Record,
    /// A step record nothing matched yet: null columns, declared defaults.
    empty_record: Record,
}

fn conform(a: ArrayRef, dt: &DataType) -> DfResult<ArrayRef> {
    if a.data_type() == dt {
        Ok(a)
    } else {
        Ok(cast(&a, dt)?)
    }
}

impl Ctx<'_> {
    fn eval(&self, e: &Arc<dyn PhysicalExpr>, row: &[ArrayRef], state: Option<&Seq>) -> DfResult<ArrayRef> {
        let nsteps = self.spec.steps.len();
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.spec.virtual_schema.fields().len());
        cols.extend(row.iter().cloned());
        cols.extend(self.defaults.iter().cloned());
        for j in 0..nsteps {
            let rec = state.and_then(|s| s.records.get(j)).unwrap_or(&self.empty_record);
            cols.extend(rec.iter().cloned());
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.spec.virtual_schema), cols)?;
        e.evaluate(&batch)?.into_array(1)
    }

    fn condition(&self, k: usize, row: &[ArrayRef], state: Option<&Seq>) -> DfResult<bool> {
        let v = self.eval(&self.spec.steps[k].condition, row, state)?;
        let v = conform(v, &DataType::Boolean)?;
        let Some(b) = v.as_any().downcast_ref::<BooleanArray>() else {
            return internal_err!("scan condition is not boolean");
        };
        Ok(b.len() == 1 && b.is_valid(0) && b.value(0))
    }

    /// The row extended with the declared columns: the step's assignments, else defaults.
    fn extend(&self, k: usize, row: &[ArrayRef], state: Option<&Seq>) -> DfResult<Record> {
        let mut rec: Record = row.to_vec();
        let mut decl = self.defaults.clone();
        for (i, e) in &self.spec.steps[k].assignments {
            let v = self.eval(e, row, state)?;
            let dt = self.spec.virtual_schema.field(self.spec.n_input + i).data_type();
            decl[*i] = conform(v, dt)?;
        }
        rec.extend(decl);
        Ok(rec)
    }

    fn emit(&self, m: &mut Machine, k: usize, o: Out, out: &mut Vec<Out>) {
        match self.spec.steps[k].output {
            StepOutput::All => out.push(o),
            StepOutput::Last => m.pending[k] = Some(o),
            StepOutput::None => {}
        }
    }

    fn step_row(&self, m: &mut Machine, i: usize, row: &[ArrayRef], out: &mut Vec<Out>) -> DfResult<()> {
        let n = self.spec.steps.len();
        for k in (0..n).rev() {
            // Check 1: the row advances the sequence in the state of the previous step.
            if k > 0 && m.states[k - 1].is_some() && self.condition(k, row, m.states[k - 1].as_ref())? {
                let ext = self.extend(k, row, m.states[k - 1].as_ref())?;
                let Some(mut seq) = m.states[k - 1].take() else { continue };
                m.flush(k - 1, out);
                m.flush(k, out);
                seq.records.truncate(k);
                seq.records.push(ext.clone());
                let id = seq.id;
                m.states[k] = Some(seq);
                self.emit(m, k, (i, ext, id), out);
                continue;
            }
            // Check 2: the row stays in the active sequence of this step, or starts one.
            if (m.states[k].is_some() || k == 0) && self.condition(k, row, m.states[k].as_ref())? {
                let ext = self.extend(k, row, m.states[k].as_ref())?;
                let id = match m.states[k].as_mut() {
                    Some(seq) => {
                        seq.records.truncate(k);
                        seq.records.push(ext.clone());
                        seq.id
                    }
                    None => {
                        let id = m.next_id;
                        m.next_id += 1;
                        m.states[0] = Some(Seq { id, records: vec![ext.clone()] });
                        id
                    }
                };
                self.emit(m, k, (i, ext, id), out);
            }
        }
        Ok(())
    }
}

fn run_scan(spec: &PhysSpec, in_schema: &SchemaRef, out_schema: &SchemaRef, batches: &[RecordBatch]) -> DfResult<RecordBatch> {
    let one_row = RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &RecordBatchOptions::new().with_row_count(Some(1)))?;
    let n_decl = spec.defaults.len();
    let mut defaults = Vec::with_capacity(n_decl);
    for (i, d) in spec.defaults.iter().enumerate() {
        let v = d.evaluate(&one_row)?.into_array(1)?;
        defaults.push(conform(v, spec.virtual_schema.field(spec.n_input + i).data_type())?);
    }
    let mut empty_record: Record = (0..spec.n_input).map(|c| new_null_array(spec.virtual_schema.field(c).data_type(), 1)).collect();
    empty_record.extend(defaults.iter().cloned());
    let ctx = Ctx { spec, defaults, empty_record };

    let batch = concat_batches(in_schema, batches)?;
    let mut out: Vec<Out> = Vec::new();
    if batch.num_rows() > 0 {
        let order = sort_to_indices(batch.column(spec.order_col), None, None)?;
        let batch = take_record_batch(&batch, &order)?;
        let nsteps = spec.steps.len();
        let mut machines: HashMap<ScalarValue, Machine> = HashMap::new();
        let mut single = Machine::new(nsteps);
        for i in 0..batch.num_rows() {
            let row: Record = (0..spec.n_input).map(|c| batch.column(c).slice(i, 1)).collect();
            let m = match spec.group_col {
                Some(g) => {
                    let key = ScalarValue::try_from_array(batch.column(g), i)?;
                    machines.entry(key).or_insert_with(|| Machine::new(nsteps))
                }
                None => &mut single,
            };
            ctx.step_row(m, i, &row, &mut out)?;
        }
        let mut rest: Vec<&mut Machine> = machines.values_mut().collect();
        rest.push(&mut single);
        for m in rest {
            for k in 0..nsteps {
                m.flush(k, &mut out);
            }
        }
    }
    out.sort_by_key(|o| o.0);
    if out.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::clone(out_schema)));
    }
    let width = spec.n_input + n_decl;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(width + 1);
    for c in 0..width {
        let parts: Vec<&dyn Array> = out.iter().map(|o| o.1[c].as_ref()).collect();
        let col = concat(&parts)?;
        columns.push(conform(col, out_schema.field(c).data_type())?);
    }
    if spec.match_id {
        columns.push(Arc::new(out.iter().map(|o| Some(o.2)).collect::<Int64Array>()));
    }
    if spec.emit_order {
        columns.push(Arc::new((0..out.len() as i64).map(Some).collect::<Int64Array>()));
    }
    RecordBatch::try_new(Arc::clone(out_schema), columns).map_err(DataFusionError::from)
}
