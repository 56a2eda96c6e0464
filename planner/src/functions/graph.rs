//! Connected components of a graph given as a node count and an array of `[from, to]` node
//! indexes, for `graph-mark-components` (`crate::bind::graph`): weak components (edges taken
//! both ways, a union-find) or strong ones (Tarjan's algorithm, iterative). Components are
//! numbered from 0 in the order of their first node.

use datafusion::common::ScalarValue;
use serde_json::Value as Json;

use super::args::{to, typed};
use super::json::{array_of, out};
use super::udf::{RowState, sv_bool, sv_i64};
use super::{FunctionContext, TypedExpr};
use crate::error::Result;
use crate::types::KqlType;

/// `__kql_graph_components(nodes, edges, strong)`: per node index, its component's number.
pub(super) fn lower_components(_: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let mut it = args.into_iter();
    let (Some(n), Some(edges), Some(strong)) = (it.next(), it.next(), it.next()) else {
        return Err(crate::error::PlanError::Internal("__kql_graph_components takes three arguments".into()));
    };
    Ok(typed(
        "__kql_graph_components",
        KqlType::Dynamic,
        components_row,
        vec![to(n, KqlType::Long)?, to(edges, KqlType::Dynamic)?, to(strong, KqlType::Bool)?],
    ))
}

fn components_row(args: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    let n = args.first().and_then(sv_i64).unwrap_or(0).max(0) as usize;
    let strong = args.get(2).and_then(sv_bool).unwrap_or(false);
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut pairs = Vec::new();
    for e in args.get(1).and_then(array_of).unwrap_or_default() {
        let ends = match &e {
            Json::Array(p) if p.len() == 2 => (p[0].as_u64(), p[1].as_u64()),
            _ => (None, None),
        };
        if let (Some(a), Some(b)) = ends
            && (a as usize) < n
            && (b as usize) < n
        {
            adj[a as usize].push(b as usize);
            pairs.push((a as usize, b as usize));
        }
    }
    let raw = if strong { strong_components(&adj) } else { weak_components(n, &pairs) };
    // Renumbered in the order of each component's first node.
    let mut number = std::collections::HashMap::new();
    let ids: Vec<Json> = raw
        .iter()
        .map(|c| {
            let next = number.len();
            Json::from(*number.entry(*c).or_insert(next) as i64)
        })
        .collect();
    out(Some(Json::Array(ids)))
}

fn weak_components(n: usize, pairs: &[(usize, usize)]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for &(a, b) in pairs {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    (0..n).map(|x| find(&mut parent, x)).collect()
}

/// Tarjan's strongly connected components without recursion: per node, the id of its
/// component (any distinct number per component).
fn strong_components(adj: &[Vec<usize>]) -> Vec<usize> {
    let n = adj.len();
    const UNSEEN: usize = usize::MAX;
    let (mut index, mut low, mut comp) = (vec![UNSEEN; n], vec![0; n], vec![UNSEEN; n]);
    let (mut on_stack, mut stack) = (vec![false; n], Vec::new());
    let (mut next, mut comps) = (0, 0);
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        // (node, position in its adjacency list)
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut pos)) = work.last_mut() {
            if *pos == 0 && index[v] == UNSEEN {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = adj[v].get(*pos) {
                *pos += 1;
                if index[w] == UNSEEN {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = comps;
                    if w == v {
                        break;
                    }
                }
                comps += 1;
            }
        }
    }
    comp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_strong_components() {
        // 0 -> 1 -> 2 -> 0 (a cycle), 2 -> 3, 4 alone.
        let adj = vec![vec![1], vec![2], vec![0, 3], vec![], vec![]];
        let pairs = [(0, 1), (1, 2), (2, 0), (2, 3)];
        let weak = weak_components(5, &pairs);
        assert_eq!(weak[0], weak[3]);
        assert_ne!(weak[0], weak[4]);
        let strong = strong_components(&adj);
        assert_eq!(strong[0], strong[1]);
        assert_eq!(strong[1], strong[2]);
        assert_ne!(strong[2], strong[3]);
        assert_ne!(strong[3], strong[4]);
    }
}
