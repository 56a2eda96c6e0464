//! The graph operators: `make-graph` followed by `graph-match` or `graph-to-table`, lowered
//! onto joins of the graph's node and edge tables (so row-level security applies to the
//! tables a graph is made from, through the same barriers as any other read).
//!
//! * The nodes: every row of the `with` tables (keyed by their `on` column), then every id
//!   an edge names that no such row has, in the order the edges first name them, with only
//!   the id property (named like the first table's `on` column, or `with_node_id`).
//! * The edges: the input's rows, numbered (the number tells edges apart for the cycle rules).
//! * `graph-match`: each pattern variable's properties become columns of a match row. A fixed
//!   edge joins the edges (turned as its direction says; both ways for `--`) on the node it
//!   starts from, then the nodes on the one it ends at (or filters, for a variable already
//!   bound). A variable-length edge `*min..max` is expanded one edge at a time up to `max`
//!   edges, each path keeping its edges' properties as arrays (`e.p`, `map(e, p)`) and the
//!   values `all`/`any`/`map` compute per edge; `where` conjuncts on that edge alone hold for
//!   each of its edges. `cycles=unique_edges` (the default) keeps matches that use no edge
//!   twice, `none` those that visit no node twice, `all` every match.
//! * `graph-to-table nodes|edges [as Name]`: the node or edge table (ids as
//!   `with_node_id`/`with_source_id`/`with_target_id` are a hash of the node id).

use std::collections::{HashMap, HashSet};

use kustodian_parser::ast::visit::{self, Visitor};
use kustodian_parser::ast::visit_mut::{self, VisitorMut};
use kustodian_parser::ast::{self, BinaryOp, EdgeDirection, ExprKind, OperatorKind, Span};

use super::grouped::ident;
use super::make_series::call;
use super::{Binder, Binding, Rel, Scope};
use crate::error::{PlanError, Result};

const NODES: &str = "__kqlev_gnodes_t";
const EDGES: &str = "__kqlev_gedges_t";
const MATCH: &str = "__kqlev_gmatch";
const STEP: &str = "__kqlev_gstep";
const SIDE: &str = "__kqlev_gside";
/// A node's id in the node table.
const NID: &str = "__kqlev_nid";
/// A node's place in the node table: the `with` tables' rows first, in order, then the ids
/// only edges name, in the order they first do.
const ORD: &str = "__kqlev_nord";
/// An edge's number in the edge table.
const EID: &str = "__kqlev_eid";
const FROM: &str = "__kqlev_from";
/// An edge's source and target node ids (with its partition, under `partitioned-by`).
const SRC: &str = "__kqlev_src";
const DST: &str = "__kqlev_dst";
const TO: &str = "__kqlev_to";
const KEY: &str = "__kqlev_jk";
const CUR: &str = "__kqlev_cur";
/// The longest variable-length edge expanded.
const MAX_HOPS: i64 = 64;

fn q(name: &str) -> String {
    ast::quote_ident(name).into_owned()
}

/// A graph as `make-graph` built it.
pub(crate) struct Graph {
    nodes: Rel,
    edges: Rel,
    /// The node table's property columns (without the id).
    node_props: Vec<String>,
    /// The edge table's property columns (without the number).
    edge_props: Vec<String>,
    /// The edge columns holding the source and the target node ids.
    source: String,
    target: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum VarKind {
    Node,
    Edge,
    /// A variable-length edge.
    Path,
}

struct Var {
    kind: VarKind,
    index: usize,
}

fn prop_col(index: usize, prop: &str) -> String {
    format!("__kqlev_g{index}_{prop}")
}

fn id_col(index: usize) -> String {
    format!("__kqlev_gid{index}")
}

fn path_col(index: usize) -> String {
    format!("__kqlev_gpath{index}")
}

fn inner_col(index: usize) -> String {
    format!("__kqlev_ginner{index}")
}

fn fn_col(k: usize) -> String {
    format!("__kqlev_gf{k}")
}

/// The variables an expression names as `v.p` or as the first argument of a graph function.
fn vars_in(e: &ast::Expr, vars: &HashMap<String, Var>) -> HashSet<String> {
    struct Find<'a> {
        vars: &'a HashMap<String, Var>,
        found: HashSet<String>,
    }
    impl Visitor<'_> for Find<'_> {
        fn visit_expr(&mut self, e: &ast::Expr) {
            match &e.kind {
                ExprKind::Member { expr, .. } => {
                    if let ExprKind::Ident(i) = &expr.kind
                        && self.vars.contains_key(&i.name)
                    {
                        self.found.insert(i.name.clone());
                    }
                }
                ExprKind::Call { name, args } if is_graph_fn(&name.name) => {
                    if let Some((var, _)) = path_fn_target(args)
                        && self.vars.contains_key(&var)
                    {
                        self.found.insert(var);
                    }
                }
                _ => {}
            }
            if !e.is_query_boundary() {
                visit::walk_expr(self, e);
            }
        }
    }
    let mut f = Find { vars, found: HashSet::new() };
    f.visit_expr(e);
    f.found
}

/// The variable a graph function's first argument names, and whether it is `inner_nodes(v)`.
fn path_fn_target(args: &[ast::Arg]) -> Option<(String, bool)> {
    match &args.first()?.expr().kind {
        ExprKind::Ident(i) => Some((i.name.clone(), false)),
        ExprKind::Call { name, args: a } if name.name == "inner_nodes" && a.len() == 1 => match &a[0].expr().kind {
            ExprKind::Ident(i) => Some((i.name.clone(), true)),
            _ => None,
        },
        _ => None,
    }
}

fn is_graph_fn(name: &str) -> bool {
    matches!(name, "all" | "any" | "map" | "node_degree_in" | "node_degree_out" | "labels")
}

/// The conjuncts of a predicate.
fn conjuncts(e: &ast::Expr, out: &mut Vec<ast::Expr>) {
    match &e.kind {
        ExprKind::Binary { op: BinaryOp::And, left, right } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        ExprKind::Paren(inner) if matches!(inner.kind, ExprKind::Binary { op: BinaryOp::And, .. }) => conjuncts(inner, out),
        _ => out.push(e.clone()),
    }
}

fn and_all(mut items: Vec<ast::Expr>, span: Span) -> Option<ast::Expr> {
    let first = items.pop()?;
    Some(items.into_iter().rev().fold(first, |acc, e| {
        ast::Expr::new(ExprKind::Binary { op: BinaryOp::And, left: Box::new(e), right: Box::new(acc) }, span)
    }))
}

/// A per-edge value computed along a variable-length edge: `map(e, x)`, `all(e, c)`,
/// `any(e, c)` (the value as a long for the latter two).
struct PathFn {
    var: String,
    kind: &'static str,
    expr: ast::Expr,
    inner_nodes: bool,
}

/// Graph functions with their place in [`MatchPlan::path_fns`].
type Indexed<'f> = Vec<(usize, &'f PathFn)>;

/// One sequence of a pattern: its node variables and the edges between them.
type Sequence<'e> = (Vec<String>, Vec<(String, &'e ast::GraphEdge)>);

/// What lowering a `graph-match` keeps as it joins sequence after sequence.
struct MatchPlan {
    vars: HashMap<String, Var>,
    /// Per variable-length edge, the `where` conjuncts each of its edges must meet.
    per_edge: HashMap<String, Vec<ast::Expr>>,
    path_fns: Vec<PathFn>,
    cycles: String,
    /// The node table's columns a node variable takes (properties, degrees when asked).
    node_cols: Vec<String>,
    source: String,
    target: String,
    /// The variables bound so far, and the fixed and variable-length edges joined.
    bound: HashSet<String>,
    fixed_edges: Vec<usize>,
    path_edges: Vec<usize>,
}

impl MatchPlan {
    /// The node table with its columns named for node variable `index`.
    fn node_as(&self, index: usize) -> String {
        let mut cols = vec![format!("{} = {NID}", id_col(index))];
        cols.extend(self.node_cols.iter().map(|p| format!("{} = {}", q(&prop_col(index, p)), q(p))));
        format!("{NODES} | project {}", cols.join(", "))
    }

    /// The edges named `filtered` turned as an edge of the pattern goes (`FROM` to `TO`).
    fn oriented(&self, dir: EdgeDirection, filtered: &str) -> String {
        let (src, dst) = (q(&self.source), q(&self.target));
        let fwd = format!("({filtered} | extend {FROM} = {src}, {TO} = {dst})");
        let bwd = format!("({filtered} | extend {FROM} = {dst}, {TO} = {src})");
        match dir {
            EdgeDirection::Forward => fwd,
            EdgeDirection::Backward => bwd,
            EdgeDirection::Any => format!("(union {fwd}, {bwd})"),
        }
    }
}

impl<'a> Binder<'a> {
    /// Binds a query text the binder wrote (over names `scope` binds), not the request's.
    fn bind_graph_text(&mut self, text: &str, scope: &Scope) -> Result<Rel> {
        let parsed = kustodian_parser::parse(text).map_err(|e| PlanError::Internal(format!("graph lowering wrote invalid KQL ({e}): {text}")))?;
        let ast::Request::Query(query) = parsed else {
            return Err(PlanError::Internal("graph lowering wrote a command".into()));
        };
        self.foreign_text += 1;
        let r = self.bind_statements(&query.statements, &mut scope.clone(), false);
        self.foreign_text -= 1;
        r
    }

    /// Binds `edges | make-graph ...` into the graph's node and edge tables.
    pub(crate) fn bind_make_graph(&mut self, edges: Rel, g: &ast::MakeGraph, scope: &Scope, _span: Span) -> Result<Graph> {
        for c in [&g.source, &g.target] {
            if edges.schema.get(&c.name).is_none() {
                return Err(self.semantic(format!("make-graph: the edges have no column '{}'", c.name), c.span));
            }
        }
        // With `partitioned-by`, a node is known by its partition and its id: one graph per
        // partition, side by side, which the graph operators then read as one.
        let part = g.partitioned_by.as_ref().map(|(c, _)| c);
        if let Some(p) = part
            && edges.schema.get(&p.name).is_none()
        {
            return Err(self.semantic(format!("make-graph: the edges have no partition column '{}'", p.name), p.span));
        }
        let key = |col: &str| match part {
            Some(p) => format!("strcat(tostring({}), '\\u001f', tostring({}))", q(&p.name), q(col)),
            None => q(col),
        };
        let edge_props: Vec<String> = edges.schema.columns.iter().map(|c| c.name.clone()).collect();
        let s = scope.with(EDGES, Binding::Tabular(edges));
        let numbered = self.bind_graph_text(
            &format!("{EDGES} | serialize {EID} = row_number() | extend {SRC} = {}, {DST} = {}", key(&g.source.name), key(&g.target.name)),
            &s,
        )?;
        let numbered = self.materialize(numbered);
        let s = scope.with(EDGES, Binding::Tabular(numbered.clone()));
        let (src, dst) = (q(&g.source.name), q(&g.target.name));
        let part_col = part.map(|p| format!(", __kqlev_p = {}", q(&p.name))).unwrap_or_default();
        // Every id the edges name, in the order they first name it (with the id as written).
        let ids = format!(
            "union ({EDGES} | project {NID} = {SRC}, __kqlev_raw = {src}, __kqlev_o = {EID} * 2{part_col}), \
                   ({EDGES} | project {NID} = {DST}, __kqlev_raw = {dst}, __kqlev_o = {EID} * 2 + 1{part_col}) \
             | summarize arg_min(__kqlev_o, *) by {NID}"
        );
        let part_prop = |name: &str| part.map(|p| format!(", {} = __kqlev_p", q(&p.name))).filter(|_| !name.is_empty()).unwrap_or_default();
        let (nodes, node_props) = if g.nodes.is_empty() {
            let id_name = g.node_id.as_ref().map(|i| i.name.clone());
            let project = match &id_name {
                Some(n) => format!("{} = __kqlev_raw{}, {NID} = {NID}, {ORD} = __kqlev_o", q(n), part_prop(n)),
                None => format!("{NID}, {ORD} = __kqlev_o"),
            };
            let rel = self.bind_graph_text(&format!("{ids} | project {project}"), &s)?;
            (rel, id_name.into_iter().collect())
        } else {
            let mut s2 = s.clone();
            let mut legs = Vec::new();
            let mut props: Vec<String> = Vec::new();
            let mut id_name = None;
            for (i, n) in g.nodes.iter().enumerate() {
                let rel = self.bind_tabular(&n.table, scope)?;
                if rel.schema.get(&n.id.name).is_none() {
                    return Err(self.semantic(format!("make-graph: the nodes have no column '{}'", n.id.name), n.id.span));
                }
                if let Some(p) = part
                    && rel.schema.get(&p.name).is_none()
                {
                    return Err(self.semantic(format!("make-graph: the nodes have no partition column '{}'", p.name), p.span));
                }
                for c in &rel.schema.columns {
                    if !props.contains(&c.name) {
                        props.push(c.name.clone());
                    }
                }
                id_name.get_or_insert_with(|| n.id.name.clone());
                let name = format!("__kqlev_gn{i}");
                legs.push(format!("({name} | extend {NID} = {}, __kqlev_o = {i})", key(&n.id.name)));
                s2 = s2.with(&name, Binding::Tabular(rel));
            }
            let id_name = id_name.unwrap_or_default();
            let listed = format!("union {} | serialize __kqlev_r = row_number()", legs.join(", "));
            // One row per id (the first table's row, then the first row, of one that has it).
            let mut text = format!("{listed} | summarize arg_min(__kqlev_r, *) by {NID} | extend {ORD} = __kqlev_r | project-away __kqlev_r, __kqlev_o");
            // The ids only edges name, after them, with the id property.
            text = format!(
                "union ({text}), ({ids} | where {NID} !in (({listed} | project {NID})) | project {} = __kqlev_raw{}, {NID}, {ORD} = 1000000000000 + __kqlev_o)",
                q(&id_name),
                part_prop(&id_name)
            );
            let rel = self.bind_graph_text(&text, &s2)?;
            // The union gives the columns in its legs' order: the properties as the tables have them.
            let props: Vec<String> = rel.schema.columns.iter().map(|c| c.name.clone()).filter(|c| c != NID && c != ORD).collect();
            (rel, props)
        };
        let nodes = self.materialize(nodes);
        Ok(Graph { nodes, edges: numbered, node_props, edge_props, source: SRC.to_string(), target: DST.to_string() })
    }

    /// `graph-mark-components`: the graph with each node's component number as a property.
    pub(crate) fn mark_components(&mut self, graph: Graph, params: &[ast::OpParam], scope: &Scope, span: Span) -> Result<Graph> {
        let mut strong = false;
        let mut name = "ComponentId".to_string();
        for p in params {
            let v = match &p.value.kind {
                ExprKind::Ident(i) => i.name.clone(),
                ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => s.clone(),
                _ => return Err(self.semantic(format!("graph-mark-components: {} expects a name", p.name.name), p.span)),
            };
            match p.name.name.as_str() {
                "kind" if v == "weak" || v == "strong" => strong = v == "strong",
                "kind" => return Err(self.semantic("graph-mark-components: kind must be weak or strong", p.span)),
                _ => name = v,
            }
        }
        if graph.node_props.contains(&name) {
            return Err(self.semantic(format!("graph-mark-components: the nodes already have a property '{name}'"), span));
        }
        let (src, dst) = (q(&graph.source), q(&graph.target));
        let s = scope.with(NODES, Binding::Tabular(graph.nodes.clone())).with(EDGES, Binding::Tabular(graph.edges.clone()));
        // The nodes numbered in their order; each edge as the pair of its ends' numbers (in a
        // one-element array: `make_list` concatenates the arrays it is given).
        let numbered = self.bind_graph_text(&format!("{NODES} | sort by {ORD} asc | serialize __kqlev_ix = row_number() - 1"), &s)?;
        let numbered = self.materialize(numbered);
        let s = s.with("__kqlev_gnum", Binding::Tabular(numbered));
        let text = format!(
            "let __kqlev_pairs = toscalar({EDGES} | project {KEY} = {src}, __kqlev_b = {dst} \
               | join kind=inner (__kqlev_gnum | project {KEY} = {NID}, __kqlev_a = __kqlev_ix) on {KEY} | project-away {KEY}* \
               | extend {KEY} = __kqlev_b | join kind=inner (__kqlev_gnum | project {KEY} = {NID}, __kqlev_bx = __kqlev_ix) on {KEY} \
               | summarize make_list(pack_array(pack_array(__kqlev_a, __kqlev_bx)))); \
             let __kqlev_n = toscalar(__kqlev_gnum | count); \
             let __kqlev_comp = __kql_graph_components(__kqlev_n, __kqlev_pairs, {strong}); \
             __kqlev_gnum | extend {} = tolong(__kqlev_comp[__kqlev_ix]) | sort by __kqlev_ix asc | project-away __kqlev_ix"
            ,
            q(&name)
        );
        let nodes = self.bind_graph_text(&text, &s)?;
        let nodes = self.materialize(nodes);
        let mut node_props = graph.node_props;
        node_props.push(name);
        Ok(Graph { nodes, node_props, ..graph })
    }

    /// `graph-to-table` over a graph.
    pub(crate) fn plan_graph_to_table(&mut self, graph: Graph, items: &[ast::GraphToTableItem], scope: &Scope, span: Span) -> Result<Rel> {
        let [item] = items else {
            return Err(self.unsupported("graph-to-table with both nodes and edges (two results)", span));
        };
        let mut lead = Vec::new();
        for (k, v) in &item.params {
            let of = match (item.edges, k.name.as_str()) {
                (false, "with_node_id") => NID.to_string(),
                (true, "with_source_id") => FROM.to_string(),
                (true, "with_target_id") => TO.to_string(),
                _ => return Err(self.semantic(format!("graph-to-table: unexpected parameter '{}'", k.name), k.span)),
            };
            lead.push(format!("{} = hash(tostring({of}))", q(&v.name)));
        }
        let s = scope.with(NODES, Binding::Tabular(graph.nodes)).with(EDGES, Binding::Tabular(graph.edges));
        let text = if item.edges {
            let mut cols = lead;
            cols.extend(graph.edge_props.iter().map(|p| q(p)));
            format!("{EDGES} | sort by {EID} asc | extend {FROM} = {}, {TO} = {} | project {}", q(&graph.source), q(&graph.target), cols.join(", "))
        } else {
            let mut cols = lead;
            cols.extend(graph.node_props.iter().map(|p| q(p)));
            format!("{NODES} | sort by {ORD} asc | project {}", cols.join(", "))
        };
        self.bind_graph_text(&text, &s)
    }

    /// `graph-match` over a graph.
    /// `shortest` makes it `graph-shortest-paths` (`Some(true)` for `output=all`).
    pub(crate) fn plan_graph_match(&mut self, graph: Graph, m: &ast::GraphMatch, shortest: Option<bool>, scope: &Scope, span: Span) -> Result<Rel> {
        // A shortest path visits no node twice.
        let mut cycles = if shortest.is_some() { "none" } else { "unique_edges" }.to_string();
        if shortest.is_some() {
            let [pat] = m.patterns.as_slice() else {
                return Err(self.semantic("graph-shortest-paths takes one sequence", span));
            };
            if !pat.edges.iter().any(|e| e.range.is_some()) {
                return Err(self.semantic("graph-shortest-paths needs a variable-length edge", pat.span));
            }
        }
        for p in m.params.iter().filter(|_| shortest.is_none()) {
            let v = match &p.value.kind {
                ExprKind::Ident(i) => i.name.clone(),
                ExprKind::Literal(ast::Literal { kind: ast::LiteralKind::String(s), .. }) => s.clone(),
                _ => String::new(),
            };
            if !matches!(v.as_str(), "all" | "none" | "unique_edges") {
                return Err(self.semantic("graph-match: cycles must be all, none or unique_edges", p.span));
            }
            cycles = v;
        }
        if m.project.is_empty() {
            return Err(self.semantic("graph-match needs a project clause", span));
        }
        // The pattern's variables, named or not.
        let mut vars: HashMap<String, Var> = HashMap::new();
        let mut anon = 0;
        let mut seqs: Vec<Sequence<'_>> = Vec::new();
        for pat in &m.patterns {
            let mut nodes = Vec::new();
            for n in &pat.nodes {
                let name = match n {
                    Some(i) => i.name.clone(),
                    None => {
                        anon += 1;
                        format!("__kqlev_anon{anon}")
                    }
                };
                let index = vars.len();
                match vars.get(&name) {
                    Some(v) if v.kind != VarKind::Node => return Err(self.semantic(format!("graph-match: '{name}' names an edge and a node"), pat.span)),
                    Some(_) => {}
                    None => {
                        vars.insert(name.clone(), Var { kind: VarKind::Node, index });
                    }
                }
                nodes.push(name);
            }
            let mut edges = Vec::new();
            for e in &pat.edges {
                let name = match &e.name {
                    Some(i) => i.name.clone(),
                    None => {
                        anon += 1;
                        format!("__kqlev_anon{anon}")
                    }
                };
                if vars.contains_key(&name) {
                    return Err(self.semantic(format!("graph-match: the edge variable '{name}' is used twice"), e.span));
                }
                if let Some((lo, hi)) = e.range
                    && (lo < 0 || hi < lo || hi > MAX_HOPS)
                {
                    return Err(self.semantic(format!("graph-match: a variable-length edge needs 0 <= min <= max <= {MAX_HOPS}"), e.span));
                }
                let index = vars.len();
                vars.insert(name.clone(), Var { kind: if e.range.is_some() { VarKind::Path } else { VarKind::Edge }, index });
                edges.push((name, e));
            }
            seqs.push((nodes, edges));
        }

        // The `where` conjuncts on one variable-length edge alone hold for each of its edges.
        let mut per_edge: HashMap<String, Vec<ast::Expr>> = HashMap::new();
        let mut rest = Vec::new();
        if let Some(p) = &m.predicate {
            let mut cs = Vec::new();
            conjuncts(p, &mut cs);
            for c in cs {
                let used = vars_in(&c, &vars);
                if has_graph_fn(&c) {
                    rest.push(c);
                    continue;
                }
                let paths: Vec<&String> = used.iter().filter(|v| vars[*v].kind == VarKind::Path).collect();
                match paths.as_slice() {
                    [] => rest.push(c),
                    [one] if used.len() == 1 && !has_graph_fn(&c) => per_edge.entry((*one).clone()).or_default().push(c),
                    _ => return Err(self.unsupported("a graph-match condition relating a variable-length edge to other variables", c.span)),
                }
            }
        }
        // The graph functions over variable-length edges, computed per edge as paths grow.
        let mut path_fns: Vec<PathFn> = Vec::new();
        let mut exprs: Vec<ast::Expr> = rest.clone();
        exprs.extend(m.project.iter().map(|n| n.expr.clone()));
        for e in &exprs {
            collect_path_fns(e, &vars, &mut path_fns);
        }

        let node_deg = exprs.iter().any(|e| uses_fn(e, "node_degree_in") || uses_fn(e, "node_degree_out"));
        let mut s = scope.with(NODES, Binding::Tabular(graph.nodes.clone())).with(EDGES, Binding::Tabular(graph.edges.clone()));
        if node_deg {
            let (src, dst) = (q(&graph.source), q(&graph.target));
            let text = format!(
                "{NODES} | join kind=leftouter ({EDGES} | summarize __kqlev_dout = count() by {NID} = {src}) on {NID} | project-away {NID}1 \
                 | join kind=leftouter ({EDGES} | summarize __kqlev_din = count() by {NID} = {dst}) on {NID} | project-away {NID}1 \
                 | extend __kqlev_dout = coalesce(__kqlev_dout, 0), __kqlev_din = coalesce(__kqlev_din, 0)"
            );
            let rel = self.bind_graph_text(&text, &s)?;
            s = s.with(NODES, Binding::Tabular(rel));
        }
        let mut node_cols: Vec<String> = graph.node_props.clone();
        if node_deg {
            node_cols.extend(["__kqlev_din".to_string(), "__kqlev_dout".to_string()]);
        }
        let mut plan = MatchPlan {
            vars,
            per_edge,
            path_fns,
            cycles,
            node_cols,
            source: graph.source.clone(),
            target: graph.target.clone(),
            bound: HashSet::new(),
            fixed_edges: Vec::new(),
            path_edges: Vec::new(),
        };
        let mut current: Option<Rel> = None;
        let mut pending: Vec<Sequence<'_>> = seqs;
        while !pending.is_empty() {
            // The next sequence that touches what is plan.bound (the first one first).
            let pos = if current.is_none() { 0 } else { pending.iter().position(|(ns, _)| ns.iter().any(|n| plan.bound.contains(n))).ok_or_else(|| self.unsupported("a graph-match pattern of sequences that share no node", span))? };
            let (mut nodes, mut edges) = pending.remove(pos);
            if current.is_some() && !plan.bound.contains(&nodes[0]) {
                // Start from its plan.bound end: read it backwards.
                let k = nodes.iter().position(|n| plan.bound.contains(n)).unwrap_or(0);
                if k != nodes.len() - 1 && k != 0 {
                    // Split at the plan.bound node: two sequences starting there.
                    let right_nodes = nodes[k..].to_vec();
                    let right_edges = edges[k..].to_vec();
                    pending.insert(0, (right_nodes, right_edges));
                    nodes.truncate(k + 1);
                    edges.truncate(k);
                }
                nodes.reverse();
                edges.reverse();
                // Reversed edges run the other way.
                let flipped: Vec<(String, ast::GraphEdge)> = edges
                    .iter()
                    .map(|(n, e)| {
                        let mut e2 = (*e).clone();
                        e2.direction = match e.direction {
                            EdgeDirection::Forward => EdgeDirection::Backward,
                            EdgeDirection::Backward => EdgeDirection::Forward,
                            EdgeDirection::Any => EdgeDirection::Any,
                        };
                        (n.clone(), e2)
                    })
                    .collect();
                let flipped: Vec<(String, &ast::GraphEdge)> = flipped.iter().map(|(n, e)| (n.clone(), e)).collect();
                let rel = self.match_sequence(&mut plan, current.take(), &nodes, &flipped, &s)?;
                current = Some(rel);
                continue;
            }
            let rel = self.match_sequence(&mut plan, current.take(), &nodes, &edges, &s)?;
            current = Some(rel);
        }
        let Some(mut rel) = current else {
            return Err(self.semantic("graph-match needs a pattern", span));
        };
        // The cycle rules over the whole match.
        let check = match plan.cycles.as_str() {
            "unique_edges" if plan.fixed_edges.len() + plan.path_edges.len() > 1 => {
                let mut parts: Vec<String> = Vec::new();
                if !plan.fixed_edges.is_empty() {
                    parts.push(format!("pack_array({})", plan.fixed_edges.iter().map(|i| format!("__kqlev_geid{i}")).collect::<Vec<_>>().join(", ")));
                }
                parts.extend(plan.path_edges.iter().map(|i| path_col(*i)));
                Some(parts)
            }
            "none" => {
                let mut parts: Vec<String> = Vec::new();
                let mut ids: Vec<usize> = plan.vars.values().filter(|v| v.kind == VarKind::Node).map(|v| v.index).collect();
                ids.sort();
                parts.push(format!("pack_array({})", ids.iter().map(|i| id_col(*i)).collect::<Vec<_>>().join(", ")));
                parts.extend(plan.path_edges.iter().map(|i| inner_col(*i)));
                Some(parts)
            }
            _ => None,
        };
        if let Some(parts) = check {
            let all = if parts.len() == 1 { parts[0].clone() } else { format!("array_concat({})", parts.join(", ")) };
            let text = format!("{MATCH} | where array_length(set_union({all}, dynamic([]))) == array_length({all})");
            rel = self.bind_graph_text(&text, &scope.with(MATCH, Binding::Tabular(rel)))?;
        }
        // The user's conditions and columns over the match's columns.
        let node_cols_set: HashSet<String> = plan.node_cols.iter().cloned().collect();
        let edge_cols: HashSet<String> = graph.edge_props.iter().cloned().collect();
        let rewrite = |b: &Binder<'_>, e: &ast::Expr| -> Result<ast::Expr> { rewrite_refs(b, e, &plan.vars, &node_cols_set, &edge_cols, &plan.path_fns) };
        if let Some(pred) = and_all(rest.iter().map(|c| rewrite(self, c)).collect::<Result<Vec<_>>>()?, span) {
            rel = self.bind_operator(rel, &ast::Operator::new(OperatorKind::Where(pred), span), scope)?;
        }
        if let Some(all) = shortest {
            // Per pair of ends, the shortest matches: all of them, or any one.
            let pat = &m.patterns[0];
            let end_index = |n: &Option<ast::Ident>, k: usize| -> usize {
                let name = n.as_ref().map(|i| i.name.clone()).unwrap_or_default();
                plan.vars.get(&name).map(|v| v.index).unwrap_or(k)
            };
            let (first, last) = (end_index(&pat.nodes[0], 0), end_index(&pat.nodes[pat.nodes.len() - 1], 0));
            let mut len: Vec<String> = vec![plan.fixed_edges.len().to_string()];
            len.extend(plan.path_edges.iter().map(|i| format!("array_length({})", path_col(*i))));
            let (a, b) = (id_col(first), id_col(last));
            let text = if all {
                format!(
                    "{MATCH} | extend __kqlev_len = {} | join kind=inner ({MATCH} | extend __kqlev_len = {} | summarize __kqlev_min = min(__kqlev_len) by {a}, {b}) on {a}, {b} \
                     | where __kqlev_len == __kqlev_min | project-away {a}1, {b}1, __kqlev_min",
                    len.join(" + "),
                    len.join(" + ")
                )
            } else {
                // Ties go to the path whose edges come first in the edge table (deterministic).
                let mut ids: Vec<String> = Vec::new();
                if !plan.fixed_edges.is_empty() {
                    ids.push(format!("pack_array({})", plan.fixed_edges.iter().map(|i| format!("__kqlev_geid{i}")).collect::<Vec<_>>().join(", ")));
                }
                ids.extend(plan.path_edges.iter().map(|i| path_col(*i)));
                let ids = if ids.len() == 1 { ids[0].clone() } else { format!("array_concat({})", ids.join(", ")) };
                format!(
                    "{MATCH} | extend __kqlev_len = strcat(tostring(1000000 + {}), '|', tostring({ids})) | summarize arg_min(__kqlev_len, *) by {a}, {b}",
                    len.join(" + ")
                )
            };
            rel = self.bind_graph_text(&text, &scope.with(MATCH, Binding::Tabular(rel)))?;
        }
        let mut items = Vec::new();
        for n in &m.project {
            let mut item = n.clone();
            if item.names.is_empty() {
                let name = match &n.expr.kind {
                    ExprKind::Member { expr, name } => match &expr.kind {
                        ExprKind::Ident(v) => Some(format!("{}_{}", v.name, name.name)),
                        _ => None,
                    },
                    ExprKind::Call { name, .. } if is_graph_fn(&name.name) => Some(name.name.clone()),
                    _ => None,
                };
                if let Some(name) = name {
                    item.names = vec![ast::Ident::new(name, n.span)];
                }
            }
            item.expr = rewrite(self, &n.expr)?;
            items.push(item);
        }
        self.bind_operator(rel, &ast::Operator::new(OperatorKind::Project(items), span), scope)
    }

    /// Extends `current` (none: start from the first node) with one sequence of a pattern.
    fn match_sequence(&mut self, plan: &mut MatchPlan, current: Option<Rel>, nodes: &[String], edges: &[(String, &ast::GraphEdge)], s: &Scope) -> Result<Rel> {
        let mut rel = match current {
            Some(r) => r,
            None => {
                let v = &plan.vars[&nodes[0]];
                plan.bound.insert(nodes[0].clone());
                self.bind_graph_text(&plan.node_as(v.index), s)?
            }
        };
        for (k, (ename, edge)) in edges.iter().enumerate() {
            let from = &plan.vars[&nodes[k]];
            let to_name = &nodes[k + 1];
            let ev = &plan.vars[ename];
            let span = edge.span;
            let sm = s.with(MATCH, Binding::Tabular(rel));
            // The edges this edge may take: all, or those its own conditions keep.
            let edges_name = format!("__kqlev_ge{}", ev.index);
            let mut edges_rel = self.bind_graph_text(EDGES, &sm)?;
            if let Some(conds) = plan.per_edge.get(ename) {
                let strip = |e: &ast::Expr| strip_var(e, ename);
                if let Some(pred) = and_all(conds.iter().map(strip).collect(), span) {
                    edges_rel = self.bind_operator(edges_rel, &ast::Operator::new(OperatorKind::Where(pred), span), s)?;
                }
            }
            // The per-edge values of graph functions on this edge.
            let fns: Indexed<'_> = plan.path_fns.iter().enumerate().filter(|(_, f)| f.var == *ename).collect();
            if fns.iter().any(|(_, f)| f.inner_nodes) && edge.range.is_none() {
                return Err(self.semantic("graph-match: inner_nodes() takes a variable-length edge", span));
            }
            let (node_fns, fns): (Indexed<'_>, Indexed<'_>) = fns.into_iter().partition(|(_, f)| f.inner_nodes);
            if !fns.is_empty() {
                let items = fns
                    .iter()
                    .map(|(i, f)| {
                        let e = strip_var(&f.expr, ename);
                        let e = if f.kind == "map" { e } else { call("tolong", vec![e], span) };
                        ast::NamedExpr { names: vec![ast::Ident::new(fn_col(*i), span)], expr: e, span }
                    })
                    .collect();
                edges_rel = self.bind_operator(edges_rel, &ast::Operator::new(OperatorKind::Extend(items), span), s)?;
            }
            let sm = sm.with(&edges_name, Binding::Tabular(edges_rel));
            let turned = plan.oriented(edge.direction, &edges_name);
            let props: Vec<String> = self.graph_edge_props(&sm, &edges_name)?;
            let mut rel2 = match edge.range {
                None => {
                    plan.fixed_edges.push(ev.index);
                    let mut cols = vec![format!("{KEY} = {FROM}"), TO.to_string(), format!("__kqlev_geid{} = {EID}", ev.index)];
                    cols.extend(props.iter().map(|p| format!("{} = {}", q(&prop_col(ev.index, p)), q(p))));
                    let text = format!(
                        "{MATCH} | extend {KEY} = {} | join kind=inner ({turned} | project {}) on {KEY} | project-away {KEY}*",
                        id_col(from.index),
                        cols.join(", ")
                    );
                    self.bind_graph_text(&text, &sm)?
                }
                Some((lo, hi)) => {
                    plan.path_edges.push(ev.index);
                    let (path, inner) = (path_col(ev.index), inner_col(ev.index));
                    let mut init = vec![format!("{CUR} = {}", id_col(from.index)), format!("{path} = dynamic([])"), format!("{inner} = dynamic([])")];
                    init.extend(props.iter().map(|p| format!("{} = dynamic([])", q(&prop_col(ev.index, p)))));
                    init.extend(fns.iter().chain(node_fns.iter()).map(|(i, _)| format!("{} = dynamic([])", fn_col(*i))));
                    let mut step = self.bind_graph_text(&format!("{MATCH} | extend {}", init.join(", ")), &sm)?;
                    let mut legs: Vec<Rel> = Vec::new();
                    if lo == 0 {
                        legs.push(step.clone());
                    }
                    let mut side_cols = vec![format!("{KEY} = {FROM}"), format!("__kqlev_sto = {TO}"), format!("__kqlev_seid = {EID}")];
                    side_cols.extend(props.iter().map(|p| format!("{} = {}", q(&format!("__kqlev_sp_{p}")), q(p))));
                    side_cols.extend(fns.iter().map(|(i, _)| format!("__kqlev_sf{i} = {}", fn_col(*i))));
                    // The values computed on the node each edge reaches (`inner_nodes`).
                    let mut side_text = format!("{turned} | project {}", side_cols.join(", "));
                    let mut sm = sm.clone();
                    if !node_fns.is_empty() {
                        let items = node_fns
                            .iter()
                            .map(|(i, f)| {
                                let e = node_local(&f.expr);
                                let e = if f.kind == "map" { e } else { call("tolong", vec![e], span) };
                                ast::NamedExpr { names: vec![ast::Ident::new(format!("__kqlev_sf{i}"), span)], expr: e, span }
                            })
                            .collect();
                        let nodes_rel = self.bind_graph_text(NODES, &sm)?;
                        let nodes_rel = self.bind_operator(nodes_rel, &ast::Operator::new(OperatorKind::Extend(items), span), s)?;
                        let cols: Vec<String> = std::iter::once(format!("__kqlev_sto = {NID}")).chain(node_fns.iter().map(|(i, _)| format!("__kqlev_sf{i}"))).collect();
                        sm = sm.with("__kqlev_gnf", Binding::Tabular(nodes_rel));
                        side_text = format!("{side_text} | join kind=inner (__kqlev_gnf | project {}) on __kqlev_sto | project-away __kqlev_sto1", cols.join(", "));
                    }
                    let mut appends = vec![
                        format!("{path} = array_concat({path}, pack_array(__kqlev_seid))"),
                        format!("{inner} = array_concat({inner}, pack_array(__kqlev_sto))"),
                        format!("{CUR} = __kqlev_sto"),
                    ];
                    appends.extend(props.iter().map(|p| {
                        let c = q(&prop_col(ev.index, p));
                        format!("{c} = array_concat({c}, pack_array({}))", q(&format!("__kqlev_sp_{p}")))
                    }));
                    appends.extend(fns.iter().chain(node_fns.iter()).map(|(i, _)| format!("{0} = array_concat({0}, pack_array(__kqlev_sf{i}))", fn_col(*i))));
                    let prune = match plan.cycles.as_str() {
                        "unique_edges" => format!("| where array_index_of({path}, __kqlev_seid) < 0"),
                        "none" => format!("| where array_index_of({inner}, __kqlev_sto) < 0 and __kqlev_sto != {}", id_col(from.index)),
                        _ => String::new(),
                    };
                    for hop in 1..=hi {
                        let ss = sm.with(STEP, Binding::Tabular(step)).with(SIDE, Binding::Tabular(self.bind_graph_text(&side_text, &sm)?));
                        let text = format!(
                            "{STEP} | extend {KEY} = {CUR} | join kind=inner {SIDE} on {KEY} {prune} | extend {} | project-away {KEY}*, __kqlev_sto, __kqlev_seid, __kqlev_sp_*, __kqlev_sf*",
                            appends.join(", ")
                        );
                        // Each path length is read again by the next hop and by the union of
                        // lengths: computed once.
                        step = self.bind_graph_text(&text, &ss)?;
                        step = self.materialize(step);
                        if hop >= lo {
                            legs.push(step.clone());
                        }
                    }
                    // All path lengths; the inner nodes are the path's nodes but its last.
                    let mut s2 = sm.clone();
                    let mut names = Vec::new();
                    for (i, l) in legs.into_iter().enumerate() {
                        let n = format!("__kqlev_leg{i}");
                        s2 = s2.with(&n, Binding::Tabular(l));
                        names.push(n);
                    }
                    // (A path of one edge has no inner node: `array_slice(x, 0, -1)` would keep it.)
                    let trim = |c: &str| format!("{c} = iff(array_length({c}) <= 1, dynamic([]), array_slice({c}, 0, array_length({c}) - 2))");
                    let mut trims = vec![trim(&inner)];
                    trims.extend(node_fns.iter().map(|(i, _)| trim(&fn_col(*i))));
                    let text = format!("union {} | extend {TO} = {CUR}, {} | project-away {CUR}", names.join(", "), trims.join(", "));
                    self.bind_graph_text(&text, &s2)?
                }
            };
            // The node it ends at: joined, or checked when already plan.bound.
            let tv = &plan.vars[to_name];
            let sm = s.with(MATCH, Binding::Tabular(rel2));
            rel2 = if plan.bound.contains(to_name) {
                self.bind_graph_text(&format!("{MATCH} | where {TO} == {} | project-away {TO}", id_col(tv.index)), &sm)?
            } else {
                plan.bound.insert(to_name.clone());
                let text = format!("{MATCH} | extend {KEY} = {TO} | join kind=inner ({} | extend {KEY} = {}) on {KEY} | project-away {KEY}*, {TO}", plan.node_as(tv.index), id_col(tv.index));
                self.bind_graph_text(&text, &sm)?
            };
            rel = rel2;
        }
        Ok(rel)
    }

    /// The property columns of the edges bound as `name` (their own, not the lowering's).
    fn graph_edge_props(&mut self, s: &Scope, name: &str) -> Result<Vec<String>> {
        let rel = self.bind_graph_text(name, s)?;
        Ok(rel.schema.columns.iter().map(|c| c.name.clone()).filter(|c| c != EID && !c.starts_with("__kqlev_")).collect())
    }
}

fn has_graph_fn(e: &ast::Expr) -> bool {
    ["all", "any", "map", "node_degree_in", "node_degree_out", "inner_nodes"].iter().any(|f| uses_fn(e, f))
}

fn uses_fn(e: &ast::Expr, f: &str) -> bool {
    struct Find<'a>(&'a str, bool);
    impl Visitor<'_> for Find<'_> {
        fn visit_expr(&mut self, e: &ast::Expr) {
            if let ExprKind::Call { name, .. } = &e.kind
                && name.name == self.0
            {
                self.1 = true;
            }
            if !e.is_query_boundary() {
                visit::walk_expr(self, e);
            }
        }
    }
    let mut v = Find(f, false);
    v.visit_expr(e);
    v.1
}

/// An expression over the node an edge reaches: `node_degree_in()`/`node_degree_out()` of it.
fn node_local(e: &ast::Expr) -> ast::Expr {
    struct Local;
    impl VisitorMut for Local {
        fn visit_expr(&mut self, e: &mut ast::Expr) {
            if let ExprKind::Call { name, args } = &e.kind
                && args.is_empty()
                && matches!(name.name.as_str(), "node_degree_in" | "node_degree_out")
            {
                let col = if name.name == "node_degree_in" { "__kqlev_din" } else { "__kqlev_dout" };
                e.kind = ExprKind::Ident(ast::Ident::new(col, e.span));
                return;
            }
            if !e.is_query_boundary() {
                visit_mut::walk_expr(self, e);
            }
        }
    }
    let mut out = e.clone();
    Local.visit_expr(&mut out);
    out
}

/// `v.p` as the bare property `p` (a condition on one edge of a variable-length edge).
fn strip_var(e: &ast::Expr, var: &str) -> ast::Expr {
    struct Strip<'a>(&'a str);
    impl VisitorMut for Strip<'_> {
        fn visit_expr(&mut self, e: &mut ast::Expr) {
            if let ExprKind::Member { expr, name } = &e.kind
                && matches!(&expr.kind, ExprKind::Ident(i) if i.name == self.0)
            {
                e.kind = ExprKind::Ident(name.clone());
                return;
            }
            if !e.is_query_boundary() {
                visit_mut::walk_expr(self, e);
            }
        }
    }
    let mut out = e.clone();
    Strip(var).visit_expr(&mut out);
    out
}

/// The `all`/`any`/`map` calls over variable-length edges in `e`, in order.
fn collect_path_fns(e: &ast::Expr, vars: &HashMap<String, Var>, out: &mut Vec<PathFn>) {
    struct Collect<'a> {
        vars: &'a HashMap<String, Var>,
        out: &'a mut Vec<PathFn>,
    }
    impl Visitor<'_> for Collect<'_> {
        fn visit_expr(&mut self, e: &ast::Expr) {
            if let ExprKind::Call { name, args } = &e.kind
                && matches!(name.name.as_str(), "all" | "any" | "map")
                && args.len() == 2
                && let Some((var, inner_nodes)) = path_fn_target(args)
                && self.vars.get(&var).is_some_and(|v| v.kind == VarKind::Path)
            {
                let kind = match name.name.as_str() {
                    "all" => "all",
                    "any" => "any",
                    _ => "map",
                };
                self.out.push(PathFn { var, kind, expr: args[1].expr().clone(), inner_nodes });
                return;
            }
            if !e.is_query_boundary() {
                visit::walk_expr(self, e);
            }
        }
    }
    Collect { vars, out }.visit_expr(e);
}

/// `e` over the match's columns: `v.p` as the variable's column, the graph functions as what
/// they compute (in the order [`collect_path_fns`] found them).
fn rewrite_refs(
    b: &Binder<'_>,
    e: &ast::Expr,
    vars: &HashMap<String, Var>,
    node_cols: &HashSet<String>,
    edge_cols: &HashSet<String>,
    path_fns: &[PathFn],
) -> Result<ast::Expr> {
    struct Rewrite<'a, 'b> {
        b: &'a Binder<'b>,
        vars: &'a HashMap<String, Var>,
        node_cols: &'a HashSet<String>,
        edge_cols: &'a HashSet<String>,
        path_fns: &'a [PathFn],
        err: Option<PlanError>,
    }
    impl VisitorMut for Rewrite<'_, '_> {
        fn visit_expr(&mut self, e: &mut ast::Expr) {
            let span = e.span;
            match &e.kind {
                ExprKind::Member { expr, name } => {
                    if let ExprKind::Ident(v) = &expr.kind
                        && let Some(var) = self.vars.get(&v.name)
                    {
                        let known = match var.kind {
                            VarKind::Node => self.node_cols.contains(&name.name),
                            _ => self.edge_cols.contains(&name.name),
                        };
                        if !known {
                            self.err.get_or_insert(self.b.semantic(format!("graph-match: '{}' has no property '{}'", v.name, name.name), span));
                            return;
                        }
                        e.kind = ExprKind::Ident(ast::Ident::new(prop_col(var.index, &name.name), span));
                        return;
                    }
                }
                ExprKind::Call { name, args } if matches!(name.name.as_str(), "all" | "any" | "map") && args.len() == 2 => {
                    if let Some((var, inner)) = path_fn_target(args)
                        && self.vars.get(&var).is_some_and(|v| v.kind == VarKind::Path)
                    {
                        // The array `collect_path_fns` planned for this call (identical calls share one).
                        let found = self.path_fns.iter().position(|f| {
                            f.var == var && f.inner_nodes == inner && f.kind == name.name && f.expr == *args[1].expr()
                        });
                        let Some(i) = found else {
                            self.err.get_or_insert(PlanError::Internal(format!("graph-match: {}() over '{var}' was not planned", name.name)));
                            return;
                        };
                        let f = &self.path_fns[i];
                        let col = ident(&fn_col(i), span);
                        let sum = call("coalesce", vec![call("array_sum", vec![col.clone()], span), ast::Expr::new(ExprKind::Literal(ast::Literal::new(ast::LiteralKind::Long(0), span)), span)], span);
                        e.kind = match f.kind {
                            "map" => col.kind,
                            "all" => ExprKind::Binary { op: BinaryOp::Eq, left: Box::new(sum), right: Box::new(call("array_length", vec![col], span)) },
                            _ => ExprKind::Binary {
                                op: BinaryOp::Gt,
                                left: Box::new(sum),
                                right: Box::new(ast::Expr::new(ExprKind::Literal(ast::Literal::new(ast::LiteralKind::Long(0), span)), span)),
                            },
                        };
                        return;
                    }
                    self.err.get_or_insert(self.b.semantic(format!("graph-match: {}() takes a variable-length edge", name.name), span));
                    return;
                }
                ExprKind::Call { name, args } if matches!(name.name.as_str(), "node_degree_in" | "node_degree_out") => {
                    let col = if name.name == "node_degree_in" { "__kqlev_din" } else { "__kqlev_dout" };
                    match args.first().map(|a| &a.expr().kind) {
                        Some(ExprKind::Ident(i)) if self.vars.get(&i.name).is_some_and(|v| v.kind == VarKind::Node) => {
                            e.kind = ExprKind::Ident(ast::Ident::new(prop_col(self.vars[&i.name].index, col), span));
                        }
                        _ => {
                            self.err.get_or_insert(self.b.semantic(format!("graph-match: {}() takes a node variable", name.name), span));
                        }
                    }
                    return;
                }
                ExprKind::Ident(i) if self.vars.contains_key(&i.name) => {
                    self.err.get_or_insert(self.b.semantic(format!("graph-match: '{}' is a pattern variable: name one of its properties ({}.name)", i.name, i.name), span));
                    return;
                }
                _ => {}
            }
            if !e.is_query_boundary() {
                visit_mut::walk_expr(self, e);
            }
        }
    }
    let mut out = e.clone();
    let mut r = Rewrite { b, vars, node_cols, edge_cols, path_fns, err: None };
    r.visit_expr(&mut out);
    match r.err {
        Some(err) => Err(err),
        None => Ok(out),
    }
}
