//! Tabular operators (what follows `|`): one [`OperatorKind`] variant per operator.

use serde::Serialize;

use super::{ColumnDecl, Expr, Ident, NamedExpr, OpParam, Param, Property, Span};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operator {
    pub kind: OperatorKind,
    pub span: Span,
}

impl Operator {
    pub fn new(kind: OperatorKind, span: Span) -> Self {
        Operator { kind, span }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum OperatorKind {
    /// `where pred` / `filter pred`
    Where(Expr),
    /// `project a, x = expr, (a, b) = expr`
    Project(Vec<NamedExpr>),
    /// `project-away a, b*`: [`ExprKind::Ident`](super::ExprKind::Ident) or
    /// [`ExprKind::Wildcard`](super::ExprKind::Wildcard) items.
    ProjectAway(Vec<Expr>),
    /// `project-keep a, b*`
    ProjectKeep(Vec<Expr>),
    /// `project-by-names "a", dynamic(["b"]), "c*", column_names_of(T)`: constant names,
    /// arrays of names and wildcard patterns, in order.
    ProjectByNames(Vec<Expr>),
    /// `project-rename new = old, ...`
    ProjectRename(Vec<RenameItem>),
    /// `project-reorder a asc, b* desc`
    ProjectReorder(Vec<ReorderItem>),
    /// `extend x = expr, expr`
    Extend(Vec<NamedExpr>),
    Summarize(Summarize),
    /// `count`
    Count,
    /// `count as Name`
    CountAs(Ident),
    /// `take n` / `limit n`
    Take(Expr),
    /// `top n by expr [asc|desc] [nulls first|last]`
    Top {
        count: Expr,
        by: SortKey,
    },
    TopNested(Vec<TopNestedClause>),
    /// `top-hitters n of expr [by expr]`
    TopHitters {
        count: Expr,
        of: Expr,
        by: Option<Expr>,
    },
    /// `sort by ...` / `order by ...`
    Sort {
        params: Vec<OpParam>,
        by: Vec<SortKey>,
    },
    /// `distinct *` (one [`ExprKind::Star`](super::ExprKind::Star) item) or `distinct a, x = b`
    Distinct {
        params: Vec<OpParam>,
        columns: Vec<NamedExpr>,
    },
    Join(Join),
    /// `lookup [kind=leftouter|inner] right on keys` (same parts as `join`).
    Lookup(Join),
    Union(Union),
    /// `as [hint.materialized=true] Name`
    As {
        params: Vec<OpParam>,
        name: Ident,
    },
    Getschema,
    MvExpand(MvExpand),
    MvApply(MvApply),
    Parse(Parse),
    /// `parse-kv expr as (a:string, ...) [with (pair_delimiter=',', ...)]`
    ParseKv {
        expr: Expr,
        columns: Vec<ColumnDecl>,
        with: Vec<Property>,
    },
    Evaluate(Evaluate),
    MakeSeries(MakeSeries),
    /// `serialize [x = row_number(), ...]`
    Serialize(Vec<NamedExpr>),
    /// `sample n`
    Sample(Expr),
    /// `sample-distinct n of expr`
    SampleDistinct {
        count: Expr,
        of: Expr,
    },
    Search(Search),
    Find(Find),
    /// `render chart [with (prop = value, ...)]`; the legacy form `render chart kind=stacked`
    /// is kept as properties too (`legacy` is then true).
    Render {
        chart: Ident,
        with: Vec<Property>,
        legacy: bool,
    },
    /// `invoke f(args)`: the call expression.
    Invoke(Expr),
    /// `fork (ops) (ops)` / `fork a = (ops) ...`
    Fork(Vec<ForkBranch>),
    /// `facet by a, b [with (ops) | with op]`
    Facet {
        by: Vec<Ident>,
        with: Vec<Operator>,
    },
    Partition(Partition),
    Scan(Scan),
    /// `reduce [kind=source] by expr [with threshold=.., characters=..]`
    Reduce {
        params: Vec<OpParam>,
        by: Expr,
        with: Vec<Property>,
    },
    /// `consume [decodeblocks=true]`
    Consume(Vec<OpParam>),
    MakeGraph(MakeGraph),
    GraphMatch(GraphMatch),
    /// `graph-shortest-paths [output=any|all] pattern [where ...] project ...`
    GraphShortestPaths(GraphMatch),
    /// `graph-mark-components [kind=weak|strong] [with_component_id=name]`
    GraphMarkComponents(Vec<OpParam>),
    GraphToTable(Vec<GraphToTableItem>),
}

/// `make-graph source --> target [with nodes on id [, nodes2 on id2]] [with_node_id=name]`
/// `[partitioned-by column (graph operators)]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MakeGraph {
    pub source: Ident,
    pub target: Ident,
    pub nodes: Vec<GraphNodes>,
    /// `with_node_id=name`: the property the node id is given under.
    pub node_id: Option<Ident>,
    /// `partitioned-by column (operators)`: one graph per value, the operators on each.
    pub partitioned_by: Option<(Ident, Vec<Operator>)>,
}

/// `nodes on id` in `make-graph ... with`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphNodes {
    pub table: Expr,
    pub id: Ident,
}

/// `graph-match [cycles=c] pattern [, pattern] [where predicate] [project columns]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphMatch {
    pub params: Vec<OpParam>,
    pub patterns: Vec<GraphPattern>,
    pub predicate: Option<Expr>,
    pub project: Vec<NamedExpr>,
}

/// `(a)-[e]->(b)<-[f*1..3]-()`: nodes and the edges between them (one fewer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphPattern {
    pub nodes: Vec<Option<Ident>>,
    pub edges: Vec<GraphEdge>,
    pub span: Span,
}

/// One edge of a pattern: `-[name]->`, `<-[name]-`, `-[name]-`, `-->`, `-[name*min..max]->`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphEdge {
    pub name: Option<Ident>,
    pub direction: EdgeDirection,
    /// `*min..max`: a variable-length edge.
    pub range: Option<(i64, i64)>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EdgeDirection {
    /// `-->`, `-[e]->`
    Forward,
    /// `<--`, `<-[e]-`
    Backward,
    /// `--`, `-[e]-`
    Any,
}

/// `nodes [as N] [with_node_id=c]` or `edges [as E] [with_source_id=c] [with_target_id=c]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphToTableItem {
    pub edges: bool,
    pub alias: Option<Ident>,
    pub params: Vec<(Ident, Ident)>,
    pub span: Span,
}

/// `new = old` in `project-rename`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenameItem {
    pub new: Ident,
    pub old: Ident,
    pub span: Span,
}

/// `pattern [asc|desc|granny-asc|granny-desc]` in `project-reorder`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReorderItem {
    /// [`ExprKind::Ident`](super::ExprKind::Ident) or [`ExprKind::Wildcard`](super::ExprKind::Wildcard).
    pub column: Expr,
    pub order: Option<ReorderOrder>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReorderOrder {
    Asc,
    Desc,
    GrannyAsc,
    GrannyDesc,
}

/// `summarize [hints] [aggregates] [by keys]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summarize {
    /// `hint.strategy=shuffle`, `hint.shufflekey=k`, `hint.num_partitions=n`.
    pub hints: Vec<OpParam>,
    pub aggregates: Vec<NamedExpr>,
    pub by: Vec<NamedExpr>,
}

/// `expr [asc|desc] [nulls first|last]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SortKey {
    pub expr: Expr,
    /// `Some(true)` for `desc`, `Some(false)` for `asc`, `None` when not written
    /// (Kusto's default is descending).
    pub desc: Option<bool>,
    /// `Some(true)` for `nulls first`, `Some(false)` for `nulls last`.
    pub nulls_first: Option<bool>,
    pub span: Span,
}

/// `top-nested [n] of expr [with others = expr] by [name =] agg [asc|desc]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopNestedClause {
    pub count: Option<Expr>,
    pub of: NamedExpr,
    pub others: Option<Expr>,
    pub by: NamedExpr,
    pub desc: Option<bool>,
    pub span: Span,
}

/// `join [kind=..] [hints] right on conditions` (also used for `lookup`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Join {
    /// `kind=...`, `hint.strategy=...`, `hint.remote=...`, `hint.shufflekey=...`.
    pub params: Vec<OpParam>,
    /// The right side: a table expression, usually [`ExprKind::Paren`](super::ExprKind::Paren).
    pub right: Box<Expr>,
    /// Conditions as written: column names (`a`) and `$left.x == $right.y` expressions,
    /// possibly combined with `and`. Empty for a `join` written without `on` (Kusto then
    /// joins on the columns the two sides have in common); `lookup` always has conditions.
    pub on: Vec<Expr>,
}

/// `union [params] tables` (as operator and as source).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Union {
    /// `kind=inner|outer`, `withsource=Col`, `isfuzzy=true`, hints.
    pub params: Vec<OpParam>,
    /// Table references: names, wildcards (`T*`), calls, `database('x').T`, `(subquery)`.
    pub tables: Vec<Expr>,
}

/// `mv-expand [params] items [limit n]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MvExpand {
    /// `kind=bag|array`, `bagexpansion=...`, `with_itemindex=Name`.
    pub params: Vec<OpParam>,
    pub items: Vec<MvExpandItem>,
    pub limit: Option<Expr>,
}

/// `[name =] expr [to typeof(type)]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MvExpandItem {
    pub expr: NamedExpr,
    pub to_type: Option<Ident>,
    pub span: Span,
}

/// `mv-apply [params] items [limit n] [id_column] on (subquery)`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MvApply {
    pub params: Vec<OpParam>,
    pub items: Vec<MvExpandItem>,
    pub limit: Option<Expr>,
    /// The operators applied to each row's sub-table (`on (summarize ...)`).
    pub on: Vec<Operator>,
}

/// `parse [kind=..] [flags=..] expr with pattern` / `parse-where ...`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parse {
    /// `parse-where` rather than `parse`.
    pub is_where: bool,
    pub params: Vec<OpParam>,
    pub expr: Expr,
    pub pattern: Vec<ParsePatternItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ParsePatternItem {
    /// `*`
    Star(Span),
    /// A string constant to match.
    Literal(super::Literal),
    /// `name` or `name:type`
    Column { name: Ident, ty: Option<Ident> },
}

/// `evaluate [hints] plugin(args) [: (output schema)]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluate {
    pub params: Vec<OpParam>,
    /// The plugin call ([`ExprKind::Call`](super::ExprKind::Call)).
    pub call: Expr,
    /// The declared output schema (`: (*, name:type, ...)`), for plugins whose columns would
    /// otherwise come from the data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<super::Schema>,
}

/// `make-series [params] aggs on axis [from a] [to b] step s [by keys]` or
/// `... on axis in range(a, b, s) [by keys]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MakeSeries {
    pub params: Vec<OpParam>,
    pub aggregates: Vec<MakeSeriesAgg>,
    pub on: Expr,
    pub range: MakeSeriesRange,
    pub by: Vec<NamedExpr>,
}

/// `[name =] agg [default = value]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MakeSeriesAgg {
    pub expr: NamedExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum MakeSeriesRange {
    FromToStep {
        from: Option<Expr>,
        to: Option<Expr>,
        step: Expr,
    },
    /// `in range(start, stop, step)`
    InRange { start: Expr, stop: Expr, step: Expr },
}

/// `search [kind=..] [in (tables)] predicate`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Search {
    pub params: Vec<OpParam>,
    /// Empty when no `in (...)` clause was written.
    pub tables: Vec<Expr>,
    /// The predicate: `"x"`, `Col: "x"` (a [`BinaryOp::Colon`](super::BinaryOp::Colon)),
    /// `* has "x"`, any boolean expression.
    pub predicate: Expr,
}

/// `find [withsource=..] [in (tables)] where pred [project cols | project-smart]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Find {
    pub params: Vec<OpParam>,
    pub tables: Vec<Expr>,
    pub predicate: Expr,
    pub project: Option<FindProject>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum FindProject {
    /// `project a, b, pack_all()`
    Columns(Vec<Expr>),
    /// `project-smart`
    Smart,
}

/// A `fork` branch: `[name =] (operators)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForkBranch {
    pub name: Option<Ident>,
    pub ops: Vec<Operator>,
    pub span: Span,
}

/// `partition [params] by column (operators)` or `partition [params] by column { expr }`.
/// `{ operators }` (a braced body starting with an operator, e.g. `{ as T | ... }`) is
/// read as [`PartitionBody::Operators`] and printed in parentheses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Partition {
    pub params: Vec<OpParam>,
    pub by: Expr,
    pub body: PartitionBody,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PartitionBody {
    /// `(top 3 by x | ...)`: operators applied to each partition.
    Operators(Vec<Operator>),
    /// `{ T | ... }`: a tabular expression evaluated per partition.
    Expr(Box<Expr>),
}

/// `scan [with_match_id=..] [order by ..] [partition by ..] [declare (..)] with (steps)`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scan {
    pub params: Vec<OpParam>,
    pub order_by: Vec<SortKey>,
    pub partition_by: Vec<Expr>,
    pub declare: Vec<Param>,
    pub steps: Vec<ScanStep>,
}

/// `step name [optional] [output=all|last|none]: condition [=> col = expr, ...];`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanStep {
    pub name: Ident,
    pub optional: bool,
    pub output: Option<Ident>,
    pub condition: Expr,
    pub assignments: Vec<(Ident, Expr)>,
    pub span: Span,
}
