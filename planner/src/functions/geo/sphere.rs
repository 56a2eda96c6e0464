//! Geometry on the sphere, as Kusto's geospatial functions define it: WGS-84 coordinates on a
//! sphere of the radius S2 uses (6371.01 km), edges that are geodesics (great-circle arcs), and
//! polygons whose rings each enclose the smaller of the two regions they divide the sphere into.
//! Kusto's documented outputs are those of the S2 geometry library; the primitives here are the
//! `s2` crate's (robust orientation, edge crossings with S2's vertex rules, l'Huilier areas, true
//! centroids), and loops use S2's containment rule, under which a point on a shared edge or vertex
//! of polygons that tile the sphere is inside exactly one of them.

use s2::edge_crossings::{Crossing, EdgeCrosser, crossing_sign};
use s2::edgeutil::{distance_from_segment, interpolate};
use s2::latlng::LatLng;
use s2::point::{Point, ordered_ccw, point_area, true_centroid};
use s2::predicates::{Direction, robust_sign};
use s2::r3::vector::Vector;

/// The Earth's radius in meters, as S2 (and so Kusto) measures on the sphere.
pub(crate) const EARTH_RADIUS_M: f64 = 6_371_010.0;

/// Whether a longitude and latitude in degrees are a valid coordinate.
pub(crate) fn valid(lng: f64, lat: f64) -> bool {
    lng.is_finite() && lat.is_finite() && (-180.0..=180.0).contains(&lng) && (-90.0..=90.0).contains(&lat)
}

/// The point of a longitude and latitude in degrees (assumed valid).
pub(crate) fn point(lng: f64, lat: f64) -> Point {
    Point::from(LatLng::from_degrees(lat, lng))
}

/// The longitude and latitude in degrees of a point.
pub(crate) fn lng_lat(p: &Point) -> (f64, f64) {
    let ll = LatLng::from(p);
    (ll.lng.deg(), ll.lat.deg())
}

/// The angle between two points, in radians.
pub(crate) fn angle(a: &Point, b: &Point) -> f64 {
    a.0.angle(&b.0).rad()
}

/// Whether two points are antipodal (an edge between them has no unique geodesic).
pub(crate) fn antipodal(a: &Point, b: &Point) -> bool {
    (a.0 + b.0).norm2() < 1e-30
}

/// The distance of `x` to the edge `ab`, in radians.
pub(crate) fn edge_distance(x: &Point, a: &Point, b: &Point) -> f64 {
    distance_from_segment(x, a, b).rad()
}

/// The point at fraction `t` of the edge `ab`.
pub(crate) fn along(t: f64, a: &Point, b: &Point) -> Point {
    interpolate(t, a, b)
}

/// The point of the edge `ab` closest to `x` (S2's `Project`).
pub(crate) fn project(x: &Point, a: &Point, b: &Point) -> Point {
    let n = s2::edge_crossings::robust_cross_prod(a, b).0;
    let p = x.0 - n * (x.0.dot(&n) / n.norm2());
    let ccw = |u: Vector, v: Vector, w: Vector| w.cross(&u).dot(&v) > 0.0;
    if ccw(n, a.0, p) && ccw(p, b.0, n)
        && let Some(q) = normalized(p) {
            return q;
        }
    if (x.0 - a.0).norm2() <= (x.0 - b.0).norm2() { *a } else { *b }
}

/// A point's exact bits: a key under which equal points meet (shared vertices, cut points).
pub(crate) type PointKey = (u64, u64, u64);

pub(crate) fn point_key(p: &Point) -> PointKey {
    (p.0.x.to_bits(), p.0.y.to_bits(), p.0.z.to_bits())
}

/// The unit vector of a non-zero vector, as a point.
pub(crate) fn normalized(v: Vector) -> Option<Point> {
    let n = v.norm();
    (n > 0.0 && n.is_finite()).then(|| Point(v * (1.0 / n)))
}

/// Whether the edges `ab` and `cd` cross or touch (share a point).
pub(crate) fn edges_intersect(a: &Point, b: &Point, c: &Point, d: &Point) -> bool {
    crossing_sign(a, b, c, d) != Crossing::DoNotCross
}

/// The length-weighted centroid of the edge `ab` (S2's true centroid of an edge: a vector
/// towards the edge's midpoint whose length is twice the sine of half the edge's angle).
pub(crate) fn edge_centroid(a: &Point, b: &Point) -> Vector {
    let vdiff = a.0 - b.0;
    let vsum = a.0 + b.0;
    let sin2 = vdiff.norm2();
    let cos2 = vsum.norm2();
    if cos2 == 0.0 {
        return Vector::default();
    }
    vsum * (sin2 / cos2).sqrt()
}

/// A closed ring of distinct vertices (the closing vertex not repeated), oriented so that its
/// interior, on its left, is the smaller of the two regions it divides the sphere into.
#[derive(Debug, Clone)]
pub(crate) struct Loop {
    vertices: Vec<Point>,
    /// Whether S2's reference point (`Point::origin`) is inside; containment counts crossings
    /// from it.
    origin_inside: bool,
}

impl Loop {
    /// The loop of the vertices (at least three, distinct, no edge between antipodal vertices),
    /// or `None` if they do not make one.
    pub(crate) fn new(mut vertices: Vec<Point>) -> Option<Loop> {
        let n = vertices.len();
        if n < 3 {
            return None;
        }
        let mut sorted: Vec<PointKey> = vertices.iter().map(point_key).collect();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
        if (0..n).any(|i| antipodal(&vertices[i], &vertices[(i + 1) % n])) {
            return None;
        }
        if signed_area(&vertices) < 0.0 {
            vertices.reverse();
        }
        let mut l = Loop { vertices, origin_inside: false };
        // S2Loop::InitOriginAndBound: vertex 1 is inside exactly when the angle at it turns
        // into the interior; if counting from the origin says otherwise, the origin is inside.
        let v = &l.vertices;
        let v1_inside = ordered_ccw(&Point(v[1].0.ortho()), &v[0], &v[2], &v[1]);
        if v1_inside != l.contains(&v[1]) {
            l.origin_inside = true;
        }
        Some(l)
    }

    pub(crate) fn vertices(&self) -> &[Point] {
        &self.vertices
    }

    /// The edges, closing edge included.
    pub(crate) fn edges(&self) -> impl Iterator<Item = (&Point, &Point)> {
        let v = &self.vertices;
        (0..v.len()).map(move |i| (&v[i], &v[(i + 1) % v.len()]))
    }

    /// Whether the loop contains the point (S2's semi-open rule on edges and vertices).
    pub(crate) fn contains(&self, p: &Point) -> bool {
        let origin = Point::origin();
        let mut inside = self.origin_inside;
        let mut crosser = EdgeCrosser::new(&origin, p);
        for (a, b) in self.edges() {
            inside ^= crosser.edge_or_vertex_crossing(a, b);
        }
        inside
    }

    /// The enclosed area, in steradians.
    pub(crate) fn area(&self) -> f64 {
        signed_area(&self.vertices).max(0.0)
    }

    /// The enclosed region's true centroid times its area (not normalized).
    pub(crate) fn centroid(&self) -> Vector {
        let v = &self.vertices;
        let mut c = Vector::default();
        for i in 1..v.len() - 1 {
            c = c + true_centroid(&v[0], &v[i], &v[i + 1]).0;
        }
        c
    }

    /// The perimeter, in radians.
    pub(crate) fn perimeter(&self) -> f64 {
        self.edges().map(|(a, b)| angle(a, b)).sum()
    }

    /// Whether any edge of this loop crosses an edge of `other` (or, with `other` the loop
    /// itself, whether two non-adjacent edges cross).
    pub(crate) fn crosses(&self, other: &Loop, same: bool) -> bool {
        let n = self.vertices.len();
        for (i, (a, b)) in self.edges().enumerate() {
            for (j, (c, d)) in other.edges().enumerate() {
                if same && (j <= i || j == i + 1 || (i == 0 && j == n - 1)) {
                    continue;
                }
                if crossing_sign(a, b, c, d) == Crossing::Cross {
                    return true;
                }
            }
        }
        false
    }

    /// The distance from `p` to the loop's boundary, in radians.
    pub(crate) fn boundary_distance(&self, p: &Point) -> f64 {
        self.edges().map(|(a, b)| edge_distance(p, a, b)).fold(f64::INFINITY, f64::min)
    }
}

/// The signed area of the ring (positive when its left side is the smaller region), in
/// steradians: the fan of signed triangles from the first vertex, brought into (-2π, 2π].
fn signed_area(v: &[Point]) -> f64 {
    let mut sum = 0.0;
    for i in 1..v.len() - 1 {
        let a = point_area(&v[0], &v[i], &v[i + 1]);
        sum += match robust_sign(&v[0], &v[i], &v[i + 1]) {
            Direction::CounterClockwise => a,
            Direction::Clockwise => -a,
            Direction::Indeterminate => 0.0,
        };
    }
    let full = 4.0 * std::f64::consts::PI;
    if sum > full / 2.0 {
        sum -= full;
    } else if sum <= -full / 2.0 {
        sum += full;
    }
    sum
}

/// A polygon: a shell and the holes cut from it.
#[derive(Debug, Clone)]
pub(crate) struct Polygon {
    pub(crate) shell: Loop,
    pub(crate) holes: Vec<Loop>,
}

impl Polygon {
    /// The polygon of the rings, if valid: rings that make loops and do not cross themselves or
    /// each other.
    pub(crate) fn new(shell: Loop, holes: Vec<Loop>) -> Option<Polygon> {
        let all: Vec<&Loop> = std::iter::once(&shell).chain(holes.iter()).collect();
        for (i, a) in all.iter().enumerate() {
            if a.crosses(a, true) {
                return None;
            }
            for b in &all[i + 1..] {
                if a.crosses(b, false) {
                    return None;
                }
            }
        }
        Some(Polygon { shell, holes })
    }

    pub(crate) fn loops(&self) -> impl Iterator<Item = &Loop> {
        std::iter::once(&self.shell).chain(self.holes.iter())
    }

    pub(crate) fn contains(&self, p: &Point) -> bool {
        self.shell.contains(p) && !self.holes.iter().any(|h| h.contains(p))
    }

    pub(crate) fn area(&self) -> f64 {
        (self.shell.area() - self.holes.iter().map(Loop::area).sum::<f64>()).max(0.0)
    }

    pub(crate) fn centroid(&self) -> Vector {
        self.holes.iter().fold(self.shell.centroid(), |c, h| c - h.centroid())
    }

    pub(crate) fn perimeter(&self) -> f64 {
        self.loops().map(Loop::perimeter).sum()
    }

    pub(crate) fn boundary_distance(&self, p: &Point) -> f64 {
        self.loops().map(|l| l.boundary_distance(p)).fold(f64::INFINITY, f64::min)
    }

    pub(crate) fn edges(&self) -> impl Iterator<Item = (&Point, &Point)> {
        self.loops().flat_map(Loop::edges)
    }
}

/// Whether the point is inside any of the polygons.
pub(crate) fn polygons_contain(polys: &[Polygon], p: &Point) -> bool {
    polys.iter().any(|q| q.contains(p))
}

/// A longitude/latitude box around a polygon's shell (with a margin for edges bulging along
/// great circles), used to skip polygon pairs that cannot meet; a shell crossing the antimeridian
/// or near a pole gets the whole sphere.
fn bounds(p: &Polygon) -> (f64, f64, f64, f64) {
    let ll: Vec<(f64, f64)> = p.shell.vertices.iter().map(lng_lat).collect();
    let (mut x0, mut y0, mut x1, mut y1) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    for &(x, y) in &ll {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x1 - x0 > 180.0 || y1 > 80.0 || y0 < -80.0 {
        return (-180.0, -90.0, 180.0, 90.0);
    }
    let m = 0.01 + (x1 - x0).max(y1 - y0) * 0.01;
    (x0 - m, y0 - m, x1 + m, y1 + m)
}

fn boxes_meet(a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)) -> bool {
    a.0 <= b.2 && b.0 <= a.2 && a.1 <= b.3 && b.1 <= a.3
}

/// The edge `ab` cut where it crosses the given edges, as its pieces from `a` to `b`. Each
/// crossing edge comes with whether `ab` goes first in computing the crossing point: two
/// boundaries cutting each other compute every point with the same edge first, so both are cut
/// at the very same point and their pieces chain.
fn cut<'e>(a: &Point, b: &Point, crossing: impl Iterator<Item = (&'e (Point, Point), bool)>) -> Vec<(Point, Point)> {
    let mut cuts: Vec<(f64, Point)> = Vec::new();
    for ((c, d), ab_first) in crossing {
        if crossing_sign(a, b, c, d) == Crossing::Cross {
            let x = if ab_first {
                s2::edge_crossings::get_intersection(a, b, c, d)
            } else {
                s2::edge_crossings::get_intersection(c, d, a, b)
            };
            cuts.push((angle(a, &x), x));
        }
    }
    cuts.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut prev = *a;
    for x in cuts.into_iter().map(|c| c.1).chain(std::iter::once(*b)) {
        if x != prev {
            pieces.push((prev, x));
            prev = x;
        }
    }
    pieces
}

/// The boundary of the union of the polygons, as directed edges with the union's interior on
/// their left: every ring's edges (holes reversed), cut where they cross another polygon's
/// edges, keeping the pieces outside every other polygon. Edges two polygons share in opposite
/// directions are inside the union and dropped; a shared edge in the same direction is kept
/// once. The pieces need not be chained into rings to measure the union: its area, centroid
/// and perimeter are sums over its boundary.
pub(crate) fn union_boundary(polys: &[Polygon]) -> Vec<(Point, Point)> {
    let edges_of = |q: &Polygon| -> Vec<(Point, Point)> {
        let mut es: Vec<(Point, Point)> = q.shell.edges().map(|(a, b)| (*a, *b)).collect();
        for h in &q.holes {
            es.extend(h.edges().map(|(a, b)| (*b, *a)));
        }
        es
    };
    let all: Vec<Vec<(Point, Point)>> = polys.iter().map(edges_of).collect();
    if polys.len() < 2 {
        return all.into_iter().flatten().collect();
    }
    let boxes: Vec<_> = polys.iter().map(bounds).collect();
    let key = point_key;
    let mut owners: std::collections::HashMap<_, Vec<usize>> = std::collections::HashMap::new();
    for (i, es) in all.iter().enumerate() {
        for (a, b) in es {
            owners.entry((key(a), key(b))).or_default().push(i);
        }
    }
    let none: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    for (i, es) in all.iter().enumerate() {
        let others: Vec<usize> = (0..polys.len()).filter(|&j| j != i && boxes_meet(boxes[i], boxes[j])).collect();
        for (a, b) in es {
            let same = owners.get(&(key(a), key(b))).unwrap_or(&none);
            let reverse = owners.get(&(key(b), key(a))).unwrap_or(&none);
            if reverse.iter().any(|&j| j != i) || same.iter().any(|&j| j < i) {
                continue;
            }
            // Polygons sharing this very edge decided above; the rest decide by containment.
            let judges: Vec<usize> = others.iter().copied().filter(|j| !same.contains(j) && !reverse.contains(j)).collect();
            let crossed = others.iter().flat_map(|&j| all[j].iter().map(move |e| (e, i < j)));
            for (from, to) in cut(a, b, crossed) {
                let inside_other = normalized(from.0 + to.0).is_some_and(|m| judges.iter().any(|&j| polys[j].contains(&m)));
                if !inside_other {
                    out.push((from, to));
                }
            }
        }
    }
    out
}

/// The area (steradians) enclosed by directed boundary edges (interior on the left): the fan of
/// signed triangles from a boundary vertex.
pub(crate) fn boundary_area(edges: &[(Point, Point)]) -> f64 {
    let Some((o, _)) = edges.first() else { return 0.0 };
    let mut sum = 0.0;
    for (p, q) in edges {
        let a = point_area(o, p, q);
        sum += match robust_sign(o, p, q) {
            Direction::CounterClockwise => a,
            Direction::Clockwise => -a,
            Direction::Indeterminate => 0.0,
        };
    }
    sum.rem_euclid(4.0 * std::f64::consts::PI)
}

/// The true centroid times the area of the region enclosed by directed boundary edges.
pub(crate) fn boundary_centroid(edges: &[(Point, Point)]) -> Vector {
    let Some((o, _)) = edges.first() else { return Vector::default() };
    edges.iter().fold(Vector::default(), |c, (p, q)| c + true_centroid(o, p, q).0)
}

/// The length (radians) of directed boundary edges.
pub(crate) fn boundary_length(edges: &[(Point, Point)]) -> f64 {
    edges.iter().map(|(p, q)| angle(p, q)).sum()
}

/// The closed rings made by chaining directed boundary edges end to start, in the order their
/// first edge comes in `edges`. Each ring's vertices are listed once (not closed).
pub(crate) fn chain_rings(edges: &[(Point, Point)]) -> Vec<Vec<Point>> {
    let key = point_key;
    let mut from: std::collections::HashMap<_, Vec<usize>> = std::collections::HashMap::new();
    for (i, (p, _)) in edges.iter().enumerate() {
        from.entry(key(p)).or_default().push(i);
    }
    let mut used = vec![false; edges.len()];
    let mut rings = Vec::new();
    for start in 0..edges.len() {
        if used[start] {
            continue;
        }
        let mut ring = Vec::new();
        let mut at = start;
        loop {
            used[at] = true;
            ring.push(edges[at].0);
            let end = edges[at].1;
            if end == edges[start].0 {
                break;
            }
            match from.get(&key(&end)).and_then(|next| next.iter().copied().find(|&n| !used[n])) {
                Some(n) => at = n,
                None => break,
            }
        }
        if ring.len() >= 3 {
            rings.push(ring);
        }
    }
    rings
}

/// Whether a ring, as chained from boundary edges (interior on the left), encloses its region
/// counterclockwise (a shell) rather than leaving it outside (a hole).
pub(crate) fn is_shell(ring: &[Point]) -> bool {
    signed_area(ring) > 0.0
}

/// The directed boundary edges of polygons (holes reversed: interior on the left).
fn boundary_edges(polys: &[Polygon]) -> Vec<(Point, Point)> {
    let mut es = Vec::new();
    for q in polys {
        es.extend(q.shell.edges().map(|(a, b)| (*a, *b)));
        for h in &q.holes {
            es.extend(h.edges().map(|(a, b)| (*b, *a)));
        }
    }
    es
}

/// The boundary of the intersection of two polygon sets: each set's boundary cut where it
/// crosses the other's, keeping the pieces inside the other set. An edge both boundaries have
/// in the same direction is kept once; in opposite directions (regions that only touch), it is
/// dropped.
pub(crate) fn intersection_boundary(a: &[Polygon], b: &[Polygon]) -> Vec<(Point, Point)> {
    let (ea, eb) = (union_boundary_or_edges(a), union_boundary_or_edges(b));
    let key = point_key;
    let set = |es: &[(Point, Point)]| es.iter().map(|(p, q)| (key(p), key(q))).collect::<std::collections::HashSet<_>>();
    let (sa, sb) = (set(&ea), set(&eb));
    let mut out = Vec::new();
    for (first, (mine, theirs, their_set, their_polys)) in [(true, (&ea, &eb, &sb, b)), (false, (&eb, &ea, &sa, a))] {
        for (p, q) in mine.iter() {
            let (kp, kq) = (key(p), key(q));
            if their_set.contains(&(kq, kp)) || (!first && their_set.contains(&(kp, kq))) {
                continue;
            }
            if first && their_set.contains(&(kp, kq)) {
                out.push((*p, *q));
                continue;
            }
            for (from, to) in cut(p, q, theirs.iter().map(|e| (e, first))) {
                if normalized(from.0 + to.0).is_some_and(|m| polygons_contain(their_polys, &m)) {
                    out.push((from, to));
                }
            }
        }
    }
    out
}

/// A polygon set's boundary: its union's when it has several polygons.
fn union_boundary_or_edges(polys: &[Polygon]) -> Vec<(Point, Point)> {
    if polys.len() > 1 { union_boundary(polys) } else { boundary_edges(polys) }
}

/// The vertices of `a` that lie on the boundary of `b` or are vertices of it: where the two
/// touch.
pub(crate) fn touching_vertices(a: &[Polygon], b: &[Polygon]) -> Vec<Point> {
    let eb = boundary_edges(b);
    let mut out: Vec<Point> = Vec::new();
    for q in a {
        for v in q.loops().flat_map(|l| l.vertices().iter()) {
            if eb.iter().any(|(c, d)| c == v || d == v || edge_distance(v, c, d) < 1e-15) && !out.contains(v) {
                out.push(*v);
            }
        }
    }
    out
}
