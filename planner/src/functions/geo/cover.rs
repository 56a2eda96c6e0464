//! Coverings of shapes by S2 cells of one level (`geo_polygon_to_s2cells`,
//! `geo_line_to_s2cells`): every cell of the level that meets the shape, or comes within a
//! radius of it, found by descending from the six face cells into the children of the cells
//! that meet it. Tokens come out in cell-id order, as an S2 cell union lists them. A covering
//! that would pass Kusto's limit of 65536 cells is abandoned (null), and so is the descent as
//! soon as a level holds more cells than that.

use s2::cell::Cell;
use s2::cellid::CellID;
use s2::point::Point;

use super::sphere::{self, Polygon};

/// Most cells a covering may have.
pub(crate) const MAX_CELLS: usize = 65_536;

/// A shape to cover: polygons (their interiors and boundaries) or lines.
pub(crate) enum Shape<'a> {
    Polygons(&'a [Polygon]),
    Lines(&'a [Vec<Point>]),
}

impl Shape<'_> {
    fn edges(&self) -> Vec<(Point, Point)> {
        match self {
            Shape::Polygons(ps) => ps.iter().flat_map(Polygon::edges).map(|(a, b)| (*a, *b)).collect(),
            Shape::Lines(ls) => ls.iter().flat_map(|l| l.windows(2)).map(|w| (w[0], w[1])).collect(),
        }
    }

    fn vertices(&self) -> Vec<Point> {
        match self {
            Shape::Polygons(ps) => ps.iter().flat_map(|p| p.loops().flat_map(|l| l.vertices().iter().copied())).collect(),
            Shape::Lines(ls) => ls.iter().flatten().copied().collect(),
        }
    }

    fn contains(&self, p: &Point) -> bool {
        match self {
            Shape::Polygons(ps) => sphere::polygons_contain(ps, p),
            Shape::Lines(_) => false,
        }
    }
}

/// Whether the cell comes within `radius` (radians; 0 for meeting) of the shape.
fn near(cell: &Cell, shape: &Shape, edges: &[(Point, Point)], vertices: &[Point], radius: f64) -> bool {
    let cv = cell.vertices();
    let cell_edges = [(cv[0], cv[1]), (cv[1], cv[2]), (cv[2], cv[3]), (cv[3], cv[0])];
    if cv.iter().any(|v| shape.contains(v)) || vertices.iter().any(|v| cell.contains_point(v)) {
        return true;
    }
    if edges.iter().any(|(a, b)| cell_edges.iter().any(|(c, d)| sphere::edges_intersect(a, b, c, d))) {
        return true;
    }
    if radius <= 0.0 {
        return false;
    }
    // Disjoint geodesic edges are nearest at an end of one of them.
    cv.iter().any(|v| edges.iter().any(|(a, b)| sphere::edge_distance(v, a, b) <= radius))
        || vertices.iter().any(|v| cell_edges.iter().any(|(c, d)| sphere::edge_distance(v, c, d) <= radius))
}

/// The tokens of the level-`level` cells within `radius` radians of the shape, or `None` past
/// the cell limit.
pub(crate) fn covering(shape: &Shape, level: u64, radius: f64) -> Option<Vec<String>> {
    let (edges, vertices) = (shape.edges(), shape.vertices());
    let mut cells: Vec<CellID> = (0..6).map(CellID::from_face).collect();
    for _ in 0..=level {
        let kept: Vec<CellID> = cells.into_iter().filter(|id| near(&Cell::from(id), shape, &edges, &vertices, radius)).collect();
        if kept.len() > MAX_CELLS {
            return None;
        }
        if kept.first().is_none_or(|c| c.level() == level) {
            cells = kept;
            break;
        }
        cells = kept.iter().flat_map(|c| c.children()).collect();
    }
    cells.sort_unstable_by_key(|c| c.0);
    Some(cells.iter().map(CellID::to_token).collect())
}
