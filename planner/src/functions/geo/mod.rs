//! Kusto's geospatial functions (`geo_*`): distances, angles and containment on the sphere,
//! measures and relations of GeoJSON lines and polygons, and the geohash, S2 and H3 grids.
//!
//! Each function takes its documented parameter types (a wrong type is a semantic error, as in
//! Kusto) and is total on values: an invalid coordinate, shape, level or token gives null (the
//! empty string for functions returning a token), never an error, so a geospatial expression
//! cannot fail on a row its caller may not see. Shapes given as the same dynamic value on many
//! rows (a literal polygon) are parsed and validated once per batch.

mod cover;
mod grid;
mod shape;
mod sphere;

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;
use geographiclib_rs::{Geodesic, InverseGeodesic};
use s2::point::Point;
use serde_json::Value as Json;

use super::args::{dynamic_arg, integer, real, typed};
use super::string::string_arg;
use super::udf::{RowFn, RowState, s_bool, s_f64, s_i32, s_str, sv_bool, sv_f64, sv_i64, sv_str};
use super::{FunctionContext, TypedExpr};
use crate::error::{PlanError, Result};
use crate::types::KqlType;
use sphere::{EARTH_RADIUS_M, Polygon};

/// The kinds of parameters the geospatial functions take.
#[derive(Clone, Copy)]
enum P {
    /// A number, as a real.
    R,
    /// An integer (a level, resolution or accuracy).
    I,
    /// A bool.
    B,
    /// A string (a token).
    S,
    /// A dynamic value (a GeoJSON shape).
    D,
}

/// Each function: its parameters (the optional ones last), its result type and row function.
fn signature(name: &str) -> Option<(&'static [P], KqlType, RowFn)> {
    use KqlType::{Bool, Dynamic, Int, Real, String};
    use P::*;
    Some(match name {
        "geo_distance_2points" => (&[R, R, R, R, B], Real, distance_2points),
        "geo_point_in_circle" => (&[R, R, R, R, R], Bool, point_in_circle),
        "geo_angle" => (&[R, R, R, R, R, R], Real, angle),
        "geo_azimuth" => (&[R, R, R, R], Real, azimuth),
        "geo_point_in_polygon" => (&[R, R, D], Bool, point_in_polygon),
        "geo_distance_point_to_line" => (&[R, R, D], Real, distance_point_to_line),
        "geo_distance_point_to_polygon" => (&[R, R, D], Real, distance_point_to_polygon),
        "geo_line_length" => (&[D], Real, line_length),
        "geo_line_centroid" => (&[D], Dynamic, line_centroid),
        "geo_polygon_area" => (&[D], Real, polygon_area),
        "geo_polygon_perimeter" => (&[D], Real, polygon_perimeter),
        "geo_polygon_centroid" => (&[D], Dynamic, polygon_centroid),
        "geo_intersects_2lines" => (&[D, D], Bool, intersects_2lines),
        "geo_intersects_line_with_polygon" => (&[D, D], Bool, intersects_line_with_polygon),
        "geo_intersects_2polygons" => (&[D, D], Bool, intersects_2polygons),
        "geo_point_buffer" => (&[R, R, R, R], Dynamic, point_buffer),
        "geo_point_to_geohash" => (&[R, R, I], String, point_to_geohash),
        "geo_geohash_to_central_point" => (&[S], Dynamic, geohash_to_central_point),
        "geo_geohash_to_polygon" => (&[S], Dynamic, geohash_to_polygon),
        "geo_geohash_neighbors" => (&[S], Dynamic, geohash_neighbors),
        "geo_point_to_s2cell" => (&[R, R, I], String, point_to_s2cell),
        "geo_s2cell_to_central_point" => (&[S], Dynamic, s2cell_to_central_point),
        "geo_s2cell_to_polygon" => (&[S], Dynamic, s2cell_to_polygon),
        "geo_s2cell_neighbors" => (&[S], Dynamic, s2cell_neighbors),
        "geo_point_to_h3cell" => (&[R, R, I], String, point_to_h3cell),
        "geo_h3cell_to_central_point" => (&[S], Dynamic, h3cell_to_central_point),
        "geo_h3cell_to_polygon" => (&[S], Dynamic, h3cell_to_polygon),
        "geo_h3cell_level" => (&[S], Int, h3cell_level),
        "geo_h3cell_children" => (&[S, I], Dynamic, h3cell_children),
        "geo_h3cell_parent" => (&[S, I], String, h3cell_parent),
        "geo_h3cell_neighbors" => (&[S], Dynamic, h3cell_neighbors),
        "geo_h3cell_rings" => (&[S, I], Dynamic, h3cell_rings),
        "geo_line_interpolate_point" => (&[D, R], Dynamic, line_interpolate_point),
        "geo_line_locate_point" => (&[D, R, R], Real, line_locate_point),
        "geo_closest_point_on_line" => (&[R, R, D], Dynamic, closest_point_on_line),
        "geo_closest_point_on_polygon" => (&[R, R, D], Dynamic, closest_point_on_polygon),
        "geo_line_densify" => (&[D, R, B], Dynamic, line_densify),
        "geo_polygon_densify" => (&[D, R, B], Dynamic, polygon_densify),
        "geo_from_wkt" => (&[S], Dynamic, from_wkt),
        "geo_polygon_to_s2cells" => (&[D, I, R], Dynamic, polygon_to_s2cells),
        "geo_line_to_s2cells" => (&[D, I, R], Dynamic, line_to_s2cells),
        "geo_polygon_to_h3cells" => (&[D, I], Dynamic, polygon_to_h3cells),
        "geo_line_simplify" => (&[D, R], Dynamic, line_simplify),
        "geo_intersection_2lines" => (&[D, D], Dynamic, intersection_2lines),
        "geo_intersection_line_with_polygon" => (&[D, D], Dynamic, intersection_line_with_polygon),
        "geo_union_lines_array" => (&[D], Dynamic, union_lines_array),
        "geo_union_polygons_array" => (&[D], Dynamic, union_polygons_array),
        "geo_intersection_2polygons" => (&[D, D], Dynamic, intersection_2polygons),
        "geo_polygon_simplify" => (&[D, R], Dynamic, polygon_simplify),
        _ => return None,
    })
}

/// Lowers a call of a geospatial function (its argument count already checked by the
/// registry): each argument brought to its parameter's type.
pub(super) fn lower_geo(name: &str, args: Vec<TypedExpr>, _: &FunctionContext) -> Result<TypedExpr> {
    let Some((params, ret, f)) = signature(name) else {
        return Err(PlanError::semantic(format!("function '{name}' is not supported by Kustodian")));
    };
    if name == "geo_polygon_to_h3cells" && args.len() > 2 {
        return Err(PlanError::unsupported("geo_polygon_to_h3cells with a buffer radius"));
    }
    if name == "geo_line_locate_point" && args.len() > 3 {
        return Err(PlanError::unsupported("geo_line_locate_point with use_spheroid (distances along the spheroid)"));
    }
    let exprs = args
        .into_iter()
        .zip(params)
        .map(|(a, p)| -> Result<Expr> {
            match p {
                P::R => real(a, name),
                P::I => integer(a, name),
                P::B => {
                    if !matches!(a.ty, KqlType::Bool | KqlType::Dynamic) {
                        return Err(PlanError::semantic(format!("function '{name}' expects a bool argument, got {}", a.ty)));
                    }
                    super::args::to(a, KqlType::Bool)
                }
                P::S => string_arg(a, name),
                P::D => dynamic_arg(a, name),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(typed(name, ret, f, exprs))
}

/// A shape result: GeoJSON text with `type` first, or null.
fn out(j: Option<Json>) -> ScalarValue {
    s_str(j.map(|j| shape::geo_text(&j)))
}

fn num(a: &[ScalarValue], i: usize) -> Option<f64> {
    a.get(i).and_then(sv_f64)
}

/// The point of the coordinate at arguments `i` (longitude) and `i + 1` (latitude), if valid.
fn point_at(a: &[ScalarValue], i: usize) -> Option<Point> {
    let (lng, lat) = (num(a, i)?, num(a, i + 1)?);
    sphere::valid(lng, lat).then(|| sphere::point(lng, lat))
}

fn text(a: &[ScalarValue], i: usize) -> Option<&str> {
    a.get(i).and_then(sv_str)
}

/// The polygons of the GeoJSON at argument `i`, parsed once per batch per distinct value.
fn polygons_at(a: &[ScalarValue], i: usize, st: &mut RowState) -> Option<Arc<Vec<Polygon>>> {
    let t = text(a, i)?;
    st.memo(t, || shape::polygons(&serde_json::from_str::<Json>(t).ok()?))
}

/// The lines of the GeoJSON at argument `i`, parsed once per batch per distinct value.
fn lines_at(a: &[ScalarValue], i: usize, st: &mut RowState) -> Option<Arc<Vec<Vec<Point>>>> {
    let t = text(a, i)?;
    st.memo(t, || shape::lines(&serde_json::from_str::<Json>(t).ok()?))
}

fn distance_2points(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_f64((|| {
        let (p, q) = (point_at(a, 0)?, point_at(a, 2)?);
        if a.len() > 4 && a[4].is_null() {
            return None;
        }
        if a.get(4).and_then(sv_bool) == Some(true) {
            let s12: f64 = Geodesic::wgs84().inverse(num(a, 1)?, num(a, 0)?, num(a, 3)?, num(a, 2)?);
            return s12.is_finite().then_some(s12);
        }
        Some(sphere::angle(&p, &q) * EARTH_RADIUS_M)
    })())
}

fn point_in_circle(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_bool((|| {
        let (p, c, r) = (point_at(a, 0)?, point_at(a, 2)?, num(a, 4)?);
        if !(r > 0.0 && r.is_finite()) {
            return None;
        }
        Some(sphere::angle(&p, &c) * EARTH_RADIUS_M <= r)
    })())
}

/// The azimuth of the geodesic from `p` towards `q`: radians clockwise from true north, in
/// [0, 2π); `None` for equal or antipodal points.
fn bearing(p: &Point, q: &Point) -> Option<f64> {
    if p == q || sphere::antipodal(p, q) {
        return None;
    }
    let ((lng1, lat1), (lng2, lat2)) = (sphere::lng_lat(p), sphere::lng_lat(q));
    let (p1, p2, dl) = (lat1.to_radians(), lat2.to_radians(), (lng2 - lng1).to_radians());
    let t = (dl.sin() * p2.cos()).atan2(p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos());
    Some(t.rem_euclid(std::f64::consts::TAU))
}

fn azimuth(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_f64((|| bearing(&point_at(a, 0)?, &point_at(a, 2)?))())
}

/// The clockwise angle at point 2 from the line towards point 1 to the line towards point 3.
fn angle(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_f64((|| {
        let (p1, p2, p3) = (point_at(a, 0)?, point_at(a, 2)?, point_at(a, 4)?);
        let (back, on) = (bearing(&p2, &p1)?, bearing(&p2, &p3)?);
        Some((on - back).rem_euclid(std::f64::consts::TAU))
    })())
}

fn point_in_polygon(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    s_bool((|| {
        let p = point_at(a, 0)?;
        Some(sphere::polygons_contain(&polygons_at(a, 2, st)?, &p))
    })())
}

fn line_distance(lines: &[Vec<Point>], p: &Point) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.windows(2))
        .map(|w| sphere::edge_distance(p, &w[0], &w[1]))
        .fold(f64::INFINITY, f64::min)
}

fn distance_point_to_line(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    s_f64((|| {
        let p = point_at(a, 0)?;
        Some(line_distance(&lines_at(a, 2, st)?, &p) * EARTH_RADIUS_M)
    })())
}

fn distance_point_to_polygon(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    s_f64((|| {
        let p = point_at(a, 0)?;
        let polys = polygons_at(a, 2, st)?;
        if sphere::polygons_contain(&polys, &p) {
            return Some(0.0);
        }
        let d = polys.iter().map(|q| q.boundary_distance(&p)).fold(f64::INFINITY, f64::min);
        Some(d * EARTH_RADIUS_M)
    })())
}

fn line_length(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    s_f64((|| {
        let lines = lines_at(a, 0, st)?;
        let rad: f64 = lines.iter().flat_map(|l| l.windows(2)).map(|w| sphere::angle(&w[0], &w[1])).sum();
        Some(rad * EARTH_RADIUS_M)
    })())
}

fn line_centroid(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    out((|| {
        let lines = lines_at(a, 0, st)?;
        let c = lines
            .iter()
            .flat_map(|l| l.windows(2))
            .fold(s2::r3::vector::Vector::default(), |c, w| c + sphere::edge_centroid(&w[0], &w[1]));
        // A line of zero length has the centroid of its points.
        let c = if c.norm2() > 0.0 { c } else { lines.iter().flatten().fold(c, |c, p| c + p.0) };
        Some(shape::point_json(&sphere::normalized(c)?))
    })())
}

fn polygon_area(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    s_f64((|| {
        let polys = polygons_at(a, 0, st)?;
        let area = match polys.as_slice() {
            [one] => one.area(),
            many => sphere::boundary_area(&sphere::union_boundary(many)),
        };
        Some(area * EARTH_RADIUS_M * EARTH_RADIUS_M)
    })())
}

fn polygon_perimeter(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    s_f64((|| {
        let polys = polygons_at(a, 0, st)?;
        let length = match polys.as_slice() {
            [one] => one.perimeter(),
            many => sphere::boundary_length(&sphere::union_boundary(many)),
        };
        Some(length * EARTH_RADIUS_M)
    })())
}

fn polygon_centroid(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    out((|| {
        let polys = polygons_at(a, 0, st)?;
        let c = match polys.as_slice() {
            [one] => one.centroid(),
            many => sphere::boundary_centroid(&sphere::union_boundary(many)),
        };
        Some(shape::point_json(&sphere::normalized(c)?))
    })())
}

fn lines_intersect(x: &[Vec<Point>], y: &[Vec<Point>]) -> bool {
    x.iter().flat_map(|l| l.windows(2)).any(|e| {
        y.iter().flat_map(|l| l.windows(2)).any(|f| sphere::edges_intersect(&e[0], &e[1], &f[0], &f[1]))
    })
}

fn intersects_2lines(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    s_bool((|| Some(lines_intersect(&lines_at(a, 0, st)?, &lines_at(a, 1, st)?)))())
}

fn line_meets_polygons(lines: &[Vec<Point>], polys: &[Polygon]) -> bool {
    lines.iter().flatten().any(|p| sphere::polygons_contain(polys, p))
        || lines.iter().flat_map(|l| l.windows(2)).any(|e| {
            polys.iter().flat_map(Polygon::edges).any(|(c, d)| sphere::edges_intersect(&e[0], &e[1], c, d))
        })
}

fn intersects_line_with_polygon(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    s_bool((|| Some(line_meets_polygons(&lines_at(a, 0, st)?, &polygons_at(a, 1, st)?)))())
}

fn intersects_2polygons(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    s_bool((|| {
        let (x, y) = (polygons_at(a, 0, st)?, polygons_at(a, 1, st)?);
        let vertex_in = |p: &[Polygon], q: &[Polygon]| {
            p.iter().flat_map(|r| r.shell.vertices()).any(|v| sphere::polygons_contain(q, v))
        };
        let edges_meet = x.iter().flat_map(Polygon::edges).any(|(a0, a1)| {
            y.iter().flat_map(Polygon::edges).any(|(b0, b1)| sphere::edges_intersect(a0, a1, b0, b1))
        });
        Some(edges_meet || vertex_in(&x, &y) || vertex_in(&y, &x))
    })())
}

/// An optional argument: `read` of the given one, or `default` when the call leaves it out. A
/// null given explicitly is invalid (`None`).
fn arg_or<T>(a: &[ScalarValue], i: usize, default: T, read: impl Fn(&ScalarValue) -> Option<T>) -> Option<T> {
    match a.get(i) {
        None => Some(default),
        Some(v) => read(v),
    }
}

/// A level argument, or the default when the call leaves it out.
fn level(a: &[ScalarValue], i: usize, default: i64) -> Option<i64> {
    arg_or(a, i, default, sv_i64)
}

fn token(t: Option<String>) -> ScalarValue {
    s_str(Some(t.unwrap_or_default()))
}

fn point_to_geohash(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    token((|| grid::geohash(num(a, 0)?, num(a, 1)?, level(a, 2, 5)?))())
}

fn geohash_to_central_point(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(text(a, 0).and_then(grid::geohash_center))
}

fn geohash_to_polygon(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(text(a, 0).and_then(grid::geohash_polygon))
}

fn geohash_neighbors(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(text(a, 0).and_then(grid::geohash_neighbors))
}

fn point_to_s2cell(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    token((|| grid::s2_token(num(a, 0)?, num(a, 1)?, level(a, 2, 11)?))())
}

fn s2cell_to_central_point(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(text(a, 0).and_then(grid::s2_center))
}

fn s2cell_to_polygon(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(text(a, 0).and_then(grid::s2_polygon))
}

fn s2cell_neighbors(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(text(a, 0).and_then(grid::s2_neighbors))
}

fn point_to_h3cell(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    token((|| grid::h3_token(num(a, 0)?, num(a, 1)?, level(a, 2, 6)?))())
}

fn h3cell_to_central_point(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(text(a, 0).and_then(grid::h3_center))
}

fn h3cell_to_polygon(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(text(a, 0).and_then(grid::h3_polygon))
}

fn h3cell_level(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    s_i32(text(a, 0).and_then(grid::h3_level))
}

/// An optional integer argument: `Some(None)` when left out, `None` when given as null.
fn optional_level(a: &[ScalarValue], i: usize) -> Option<Option<i64>> {
    arg_or(a, i, None, |v| sv_i64(v).map(Some))
}

fn h3cell_children(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out((|| grid::h3_children(text(a, 0)?, optional_level(a, 1)?))())
}

fn h3cell_parent(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    token((|| grid::h3_parent(text(a, 0)?, optional_level(a, 1)?))())
}

fn h3cell_neighbors(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(text(a, 0).and_then(grid::h3_neighbors))
}

fn h3cell_rings(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out((|| grid::h3_rings(text(a, 0)?, a.get(1).and_then(sv_i64)?))())
}

/// The closest point to `p` on the lines, with the length along the lines before it.
fn closest_on_lines(lines: &[Vec<Point>], p: &Point) -> Option<(Point, f64)> {
    let mut best: Option<(f64, Point, f64)> = None;
    let mut before = 0.0;
    for w in lines.iter().flat_map(|l| l.windows(2)) {
        let q = sphere::project(p, &w[0], &w[1]);
        let d = sphere::angle(p, &q);
        if best.as_ref().is_none_or(|b| d < b.0) {
            best = Some((d, q, before + sphere::angle(&w[0], &q)));
        }
        before += sphere::angle(&w[0], &w[1]);
    }
    best.map(|(_, q, along)| (q, along))
}

fn line_interpolate_point(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    out((|| {
        let lines = lines_at(a, 0, st)?;
        let [line] = lines.as_slice() else { return None };
        let t = num(a, 1)?;
        if !(0.0..=1.0).contains(&t) {
            return None;
        }
        let lens: Vec<f64> = line.windows(2).map(|w| sphere::angle(&w[0], &w[1])).collect();
        let total: f64 = lens.iter().sum();
        let mut target = t * total;
        for (w, len) in line.windows(2).zip(&lens) {
            if target <= *len || std::ptr::eq(len, lens.last()?) {
                let f = if *len > 0.0 { (target / len).min(1.0) } else { 0.0 };
                return Some(shape::point_json(&sphere::along(f, &w[0], &w[1])));
            }
            target -= len;
        }
        None
    })())
}

fn line_locate_point(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    s_f64((|| {
        let lines = lines_at(a, 0, st)?;
        let [line] = lines.as_slice() else { return None };
        let p = point_at(a, 1)?;
        let total: f64 = line.windows(2).map(|w| sphere::angle(&w[0], &w[1])).sum();
        let (_, along) = closest_on_lines(&lines, &p)?;
        Some(if total > 0.0 { (along / total).clamp(0.0, 1.0) } else { 0.0 })
    })())
}

fn closest_point_on_line(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    out((|| {
        let p = point_at(a, 0)?;
        Some(shape::point_json(&closest_on_lines(&lines_at(a, 2, st)?, &p)?.0))
    })())
}

fn closest_point_on_polygon(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    out((|| {
        let p = point_at(a, 0)?;
        let polys = polygons_at(a, 2, st)?;
        if sphere::polygons_contain(&polys, &p) {
            return Some(shape::pair(num(a, 0)?, num(a, 1)?)).map(|c| shape::geojson("Point", c));
        }
        let mut best: Option<(f64, Point)> = None;
        for (x, y) in polys.iter().flat_map(Polygon::edges) {
            let q = sphere::project(&p, x, y);
            let d = sphere::angle(&p, &q);
            if best.as_ref().is_none_or(|b| d < b.0) {
                best = Some((d, q));
            }
        }
        Some(shape::point_json(&best?.1))
    })())
}

/// Most points a densified shape may have (Kusto's documented limit).
const DENSIFY_MAX_POINTS: usize = 10_485_760;

/// The tolerance argument of the densify functions: meters in [0.1, 10000], default 10.
fn tolerance(a: &[ScalarValue], i: usize) -> Option<f64> {
    let t = arg_or(a, i, 10.0, sv_f64)?;
    (0.1..=10_000.0).contains(&t).then_some(t)
}

/// A planar edge (straight in longitude and latitude) as a chain of geodesic edges that stays
/// within `tol` meters of it: halved while the planar midpoint is farther than `tol` from the
/// geodesic between the ends. Pushes the points after `a`, up to and including `b`.
fn densify_edge(a: (f64, f64), b: (f64, f64), tol: f64, depth: u32, out: &mut Vec<(f64, f64)>) -> Option<()> {
    let m = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
    let (pa, pb, pm) = (sphere::point(a.0, a.1), sphere::point(b.0, b.1), sphere::point(m.0, m.1));
    if depth < 40 && sphere::edge_distance(&pm, &pa, &pb) * EARTH_RADIUS_M > tol {
        densify_edge(a, m, tol, depth + 1, out)?;
        densify_edge(m, b, tol, depth + 1, out)?;
    } else {
        out.push(b);
    }
    (out.len() <= DENSIFY_MAX_POINTS).then_some(())
}

/// The positions of a chain, densified; with `preserve_crossing`, an edge across the
/// antimeridian is kept across it (its far end unwrapped and the results wrapped back).
fn densify_chain(ps: &[(f64, f64)], tol: f64, preserve_crossing: bool) -> Option<Vec<(f64, f64)>> {
    let mut out = vec![*ps.first()?];
    for w in ps.windows(2) {
        let (a, mut b) = (w[0], w[1]);
        if preserve_crossing && (b.0 - a.0).abs() > 180.0 {
            b.0 += if b.0 < a.0 { 360.0 } else { -360.0 };
        }
        let start = out.len();
        densify_edge(a, b, tol, 0, &mut out)?;
        for p in &mut out[start..] {
            if p.0 > 180.0 {
                p.0 -= 360.0;
            } else if p.0 < -180.0 {
                p.0 += 360.0;
            }
        }
    }
    Some(out)
}

fn crossing_flag(a: &[ScalarValue], i: usize) -> Option<bool> {
    arg_or(a, i, false, sv_bool)
}

fn line_densify(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out((|| {
        let j: Json = serde_json::from_str(text(a, 0)?).ok()?;
        let (tol, keep) = (tolerance(a, 1)?, crossing_flag(a, 2)?);
        let lines = shape::line_positions(&j)?;
        let dense = lines.iter().map(|l| densify_chain(l, tol, keep)).collect::<Option<Vec<_>>>()?;
        Some(match dense.as_slice() {
            [one] if j["type"] == "LineString" => shape::geojson("LineString", shape::positions_json(one)),
            many => shape::geojson("MultiLineString", Json::Array(many.iter().map(|l| shape::positions_json(l)).collect())),
        })
    })())
}

fn polygon_densify(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out((|| {
        let j: Json = serde_json::from_str(text(a, 0)?).ok()?;
        let (tol, keep) = (tolerance(a, 1)?, crossing_flag(a, 2)?);
        let polys = shape::polygon_positions(&j)?;
        let dense = polys
            .iter()
            .map(|rings| rings.iter().map(|r| densify_chain(r, tol, keep).map(|d| shape::positions_json(&d))).collect::<Option<Vec<_>>>())
            .collect::<Option<Vec<_>>>()?;
        Some(match dense.as_slice() {
            [one] if j["type"] == "Polygon" => shape::geojson("Polygon", Json::Array(one.clone())),
            many => shape::geojson("MultiPolygon", Json::Array(many.iter().map(|p| Json::Array(p.clone())).collect())),
        })
    })())
}

fn from_wkt(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out(text(a, 0).and_then(shape::from_wkt))
}

/// The level and radius (radians) of a covering call: level in [0, 30] (default 11), radius
/// in meters, at least 0 (default 0).
fn covering_args(a: &[ScalarValue]) -> Option<(u64, f64)> {
    let level = u64::try_from(level(a, 1, 11)?).ok().filter(|l| *l <= 30)?;
    let radius = arg_or(a, 2, 0.0, sv_f64)?;
    (radius >= 0.0 && radius.is_finite()).then_some((level, radius / EARTH_RADIUS_M))
}

fn tokens(t: Vec<String>) -> Json {
    Json::Array(t.into_iter().map(Json::String).collect())
}

fn polygon_to_s2cells(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    out((|| {
        let (level, radius) = covering_args(a)?;
        let polys = polygons_at(a, 0, st)?;
        Some(tokens(cover::covering(&cover::Shape::Polygons(&polys), level, radius)?))
    })())
}

fn line_to_s2cells(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    out((|| {
        let (level, radius) = covering_args(a)?;
        let lines = lines_at(a, 0, st)?;
        Some(tokens(cover::covering(&cover::Shape::Lines(&lines), level, radius)?))
    })())
}

fn polygon_to_h3cells(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out((|| {
        let j: Json = serde_json::from_str(text(a, 0)?).ok()?;
        grid::polygon_h3cells(&shape::polygon_positions(&j)?, level(a, 1, 6)?)
    })())
}

/// The simplify functions' tolerance: meters, at least 0 (default 10), as radians.
fn simplify_tolerance(a: &[ScalarValue], i: usize) -> Option<f64> {
    let t = arg_or(a, i, 10.0, sv_f64)?;
    (t >= 0.0 && t.is_finite()).then_some(t / EARTH_RADIUS_M)
}

/// Douglas-Peucker on the sphere over `pts[lo..=hi]`: marks the vertices farther than `tol`
/// from the geodesic between the kept ends.
fn douglas_peucker(pts: &[Point], lo: usize, hi: usize, tol: f64, keep: &mut [bool]) {
    if hi <= lo + 1 {
        return;
    }
    let (mut far, mut at) = (-1.0f64, lo);
    for i in lo + 1..hi {
        let d = sphere::edge_distance(&pts[i], &pts[lo], &pts[hi]);
        if d > far {
            (far, at) = (d, i);
        }
    }
    if far > tol {
        keep[at] = true;
        douglas_peucker(pts, lo, at, tol, keep);
        douglas_peucker(pts, at, hi, tol, keep);
    }
}

/// Drops kept vertices closer than `tol` to the previous kept one (the chain's ends stay).
fn merge_close(pts: &[Point], idx: Vec<usize>, tol: f64) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(idx.len());
    let last = idx.last().copied();
    for i in idx {
        match out.last() {
            Some(&p) if sphere::angle(&pts[p], &pts[i]) < tol => {
                if Some(i) == last && out.len() > 1 {
                    out.pop();
                    out.push(i);
                }
            }
            _ => out.push(i),
        }
    }
    out
}

/// The indices of a line's vertices kept by simplification; `None` when the line collapses.
fn simplify_line(pts: &[Point], tol: f64) -> Option<Vec<usize>> {
    let n = pts.len();
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[n - 1] = true;
    douglas_peucker(pts, 0, n - 1, tol, &mut keep);
    let idx = merge_close(pts, (0..n).filter(|&i| keep[i]).collect(), tol);
    (idx.len() >= 2 && sphere::angle(&pts[idx[0]], &pts[idx[idx.len() - 1]]) >= tol).then_some(idx)
}

/// The indices of a ring's vertices (closing vertex left out) kept by simplification, anchored
/// at the first vertex and the vertex farthest from it; `None` when the ring collapses.
fn simplify_ring(pts: &[Point], tol: f64) -> Option<Vec<usize>> {
    let n = pts.len();
    let far = (1..n).max_by(|&i, &j| sphere::angle(&pts[0], &pts[i]).total_cmp(&sphere::angle(&pts[0], &pts[j])))?;
    let mut closed: Vec<Point> = pts.to_vec();
    closed.push(pts[0]);
    let mut keep = vec![false; n + 1];
    keep[0] = true;
    keep[far] = true;
    keep[n] = true;
    douglas_peucker(&closed, 0, far, tol, &mut keep);
    douglas_peucker(&closed, far, n, tol, &mut keep);
    let idx = merge_close(&closed, (0..=n).filter(|&i| keep[i]).collect(), tol);
    let ring: Vec<usize> = idx.into_iter().filter(|&i| i < n).collect();
    if ring.len() < 3 {
        return None;
    }
    let lp = sphere::Loop::new(ring.iter().map(|&i| pts[i]).collect())?;
    (lp.area() > 0.0).then_some(ring)
}

fn line_simplify(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out((|| {
        let j: Json = serde_json::from_str(text(a, 0)?).ok()?;
        let tol = simplify_tolerance(a, 1)?;
        let lines = shape::line_positions(&j)?;
        let kept: Vec<Json> = lines
            .iter()
            .filter_map(|l| {
                let pts: Vec<Point> = l.iter().map(|&(x, y)| sphere::point(x, y)).collect();
                let idx = simplify_line(&pts, tol)?;
                Some(shape::positions_json(&idx.iter().map(|&i| l[i]).collect::<Vec<_>>()))
            })
            .collect();
        match kept.len() {
            0 => None,
            1 => Some(shape::geojson("LineString", kept.into_iter().next()?)),
            _ => Some(shape::geojson("MultiLineString", Json::Array(kept))),
        }
    })())
}

/// A simplified polygon's rings as JSON, `None` when its shell collapses (collapsed holes are
/// dropped).
fn simplify_polygon(rings: &[Vec<(f64, f64)>], tol: f64) -> Option<Json> {
    let mut out = Vec::new();
    for (k, r) in rings.iter().enumerate() {
        let open = &r[..r.len() - 1];
        let pts: Vec<Point> = open.iter().map(|&(x, y)| sphere::point(x, y)).collect();
        match simplify_ring(&pts, tol) {
            Some(idx) => {
                let mut ps: Vec<(f64, f64)> = idx.iter().map(|&i| open[i]).collect();
                ps.push(ps[0]);
                out.push(shape::positions_json(&ps));
            }
            None if k == 0 => return None,
            None => {}
        }
    }
    Some(Json::Array(out))
}

fn polygon_simplify(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out((|| {
        let j: Json = serde_json::from_str(text(a, 0)?).ok()?;
        let tol = simplify_tolerance(a, 1)?;
        let kept: Vec<Json> = shape::polygon_positions(&j)?.iter().filter_map(|p| simplify_polygon(p, tol)).collect();
        match kept.len() {
            0 => None,
            1 => Some(shape::geojson("Polygon", kept.into_iter().next()?)),
            _ => Some(shape::geojson("MultiPolygon", Json::Array(kept))),
        }
    })())
}


/// An empty GeoJSON geometry collection (an empty intersection).
fn empty_collection() -> Json {
    let mut m = serde_json::Map::new();
    m.insert("type".into(), Json::String("GeometryCollection".into()));
    m.insert("geometries".into(), Json::Array(Vec::new()));
    Json::Object(m)
}

/// A vertex of a result chain: the point, and its position as written when it is an input
/// vertex (so outputs repeat input coordinates exactly).
type Vertex = (Point, Option<(f64, f64)>);

fn vertex_json(v: &Vertex) -> Json {
    match v.1 {
        Some((x, y)) => shape::pair(x, y),
        None => shape::position_json(&v.0),
    }
}

/// Chains as a LineString, a MultiLineString, or an empty collection.
fn chains_json(chains: &[Vec<Vertex>]) -> Json {
    let line = |c: &Vec<Vertex>| Json::Array(c.iter().map(vertex_json).collect());
    match chains {
        [] => empty_collection(),
        [one] => shape::geojson("LineString", line(one)),
        many => shape::geojson("MultiLineString", Json::Array(many.iter().map(line).collect())),
    }
}

/// Appends the piece `from -> to` to the chains, extending the last chain when it ends at
/// `from`.
fn push_piece(chains: &mut Vec<Vec<Vertex>>, from: Vertex, to: Vertex) {
    if let Some(last) = chains.last_mut()
        && last.last().is_some_and(|v| v.0 == from.0)
    {
        last.push(to);
        return;
    }
    chains.push(vec![from, to]);
}

/// The parts of the lines inside the polygons (boundaries included), in the lines' order.
fn clip_lines(lines: &[Vec<(f64, f64)>], polys: &[Polygon]) -> Vec<Vec<Vertex>> {
    let mut chains: Vec<Vec<Vertex>> = Vec::new();
    for l in lines {
        let mut prev_piece_end: Option<Point> = None;
        for w in l.windows(2) {
            let (a, b) = (sphere::point(w[0].0, w[0].1), sphere::point(w[1].0, w[1].1));
            let mut cuts: Vec<(f64, Point)> = polys
                .iter()
                .flat_map(Polygon::edges)
                .filter(|(c, d)| s2::edge_crossings::crossing_sign(&a, &b, c, d) == s2::edge_crossings::Crossing::Cross)
                .map(|(c, d)| {
                    let x = s2::edge_crossings::get_intersection(&a, &b, c, d);
                    (sphere::angle(&a, &x), x)
                })
                .collect();
            cuts.sort_by(|x, y| x.0.total_cmp(&y.0));
            let mut prev: Vertex = (a, Some(w[0]));
            let stops = cuts.into_iter().map(|(_, x)| (x, None)).chain(std::iter::once((b, Some(w[1]))));
            for stop in stops {
                if stop.0 == prev.0 {
                    continue;
                }
                let inside = sphere::normalized(prev.0.0 + stop.0.0).is_some_and(|m| sphere::polygons_contain(polys, &m));
                if inside {
                    if prev_piece_end != Some(prev.0) {
                        chains.push(vec![prev]);
                    }
                    if let Some(last) = chains.last_mut() {
                        last.push(stop);
                    }
                    prev_piece_end = Some(stop.0);
                }
                prev = stop;
            }
        }
    }
    chains
}

fn intersection_line_with_polygon(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    out((|| {
        let j: Json = serde_json::from_str(text(a, 0)?).ok()?;
        let lines = shape::line_positions(&j)?;
        let polys = polygons_at(a, 1, st)?;
        Some(chains_json(&clip_lines(&lines, &polys)))
    })())
}

/// Whether `p` lies on the great circle of the edge `ab` (within rounding).
fn on_circle(p: &Point, a: &Point, b: &Point) -> bool {
    let n = s2::edge_crossings::robust_cross_prod(a, b).0;
    let nn = n.norm();
    nn > 0.0 && (p.0.dot(&n) / nn).abs() < 1e-14
}

/// The intersection of two line sets: the stretches they share and the points where they
/// cross or touch.
fn intersection_2lines(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out((|| {
        let (j1, j2): (Json, Json) = (serde_json::from_str(text(a, 0)?).ok()?, serde_json::from_str(text(a, 1)?).ok()?);
        let (l1, l2) = (shape::line_positions(&j1)?, shape::line_positions(&j2)?);
        let pts = |l: &Vec<(f64, f64)>| -> Vec<Vertex> { l.iter().map(|&(x, y)| (sphere::point(x, y), Some((x, y)))).collect() };
        let (v1, v2): (Vec<Vec<Vertex>>, Vec<Vec<Vertex>>) = (l1.iter().map(pts).collect(), l2.iter().map(pts).collect());
        let mut chains: Vec<Vec<Vertex>> = Vec::new();
        let mut points: Vec<Vertex> = Vec::new();
        for e in v1.iter().flat_map(|l| l.windows(2)) {
            let (a0, a1) = (&e[0], &e[1]);
            let len = sphere::angle(&a0.0, &a1.0);
            for f in v2.iter().flat_map(|l| l.windows(2)) {
                let (b0, b1) = (&f[0], &f[1]);
                if on_circle(&b0.0, &a0.0, &a1.0) && on_circle(&b1.0, &a0.0, &a1.0) {
                    // Collinear: the overlap of the two stretches along `a0 -> a1`.
                    let pos = |v: &Vertex| {
                        let d = sphere::angle(&a0.0, &v.0);
                        if sphere::angle(&v.0, &a1.0) > len && d < sphere::angle(&v.0, &a1.0) { -d } else { d }
                    };
                    let mut ends = vec![(0.0, *a0), (len, *a1), (pos(b0), *b0), (pos(b1), *b1)];
                    let (lo, hi) = (pos(b0).min(pos(b1)).max(0.0), pos(b0).max(pos(b1)).min(len));
                    if hi > lo {
                        ends.retain(|(t, _)| *t >= lo && *t <= hi);
                        ends.sort_by(|x, y| x.0.total_cmp(&y.0));
                        ends.dedup_by(|x, y| x.1.0 == y.1.0);
                        if let (Some(s), Some(t)) = (ends.first(), ends.last()) {
                            push_piece(&mut chains, s.1, t.1);
                        }
                        continue;
                    }
                }
                match s2::edge_crossings::crossing_sign(&a0.0, &a1.0, &b0.0, &b1.0) {
                    s2::edge_crossings::Crossing::Cross => {
                        points.push((s2::edge_crossings::get_intersection(&a0.0, &a1.0, &b0.0, &b1.0), None));
                    }
                    s2::edge_crossings::Crossing::MaybeCross => {
                        if let Some(v) = [a0, a1].into_iter().find(|v| v.0 == b0.0 || v.0 == b1.0) {
                            points.push(*v);
                        }
                    }
                    s2::edge_crossings::Crossing::DoNotCross => {}
                }
            }
        }
        // Points on a shared stretch are part of it.
        points.retain(|p| {
            !chains.iter().any(|c| c.windows(2).any(|w| sphere::edge_distance(&p.0, &w[0].0, &w[1].0) < 1e-15))
        });
        points.dedup_by(|x, y| x.0 == y.0);
        let mut seen: Vec<Point> = Vec::new();
        points.retain(|p| {
            let new = !seen.contains(&p.0);
            seen.push(p.0);
            new
        });
        let point_json = |p: &Vertex| shape::geojson("Point", vertex_json(p));
        Some(match (points.as_slice(), chains.is_empty()) {
            ([], true) => empty_collection(),
            ([], false) => chains_json(&chains),
            ([p], true) => point_json(p),
            (ps, true) => shape::geojson("MultiPoint", Json::Array(ps.iter().map(vertex_json).collect())),
            (ps, false) => {
                let mut geoms: Vec<Json> = ps.iter().map(point_json).collect();
                geoms.push(chains_json(&chains));
                let mut m = serde_json::Map::new();
                m.insert("type".into(), Json::String("GeometryCollection".into()));
                m.insert("geometries".into(), Json::Array(geoms));
                Json::Object(m)
            }
        })
    })())
}

/// The union of an array of lines: their edges, each shared edge once, chained into lines.
fn union_lines_array(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out((|| {
        let arr: Json = serde_json::from_str(text(a, 0)?).ok()?;
        let mut edges: Vec<(Vertex, Vertex)> = Vec::new();
        let key = sphere::point_key;
        let mut seen = std::collections::HashSet::new();
        for item in arr.as_array()? {
            for l in shape::line_positions(item)? {
                for w in l.windows(2) {
                    let (p, q) = (sphere::point(w[0].0, w[0].1), sphere::point(w[1].0, w[1].1));
                    if p == q {
                        continue;
                    }
                    let (kp, kq) = (key(&p), key(&q));
                    let k = if kp <= kq { (kp, kq) } else { (kq, kp) };
                    if seen.insert(k) {
                        edges.push(((p, Some(w[0])), (q, Some(w[1]))));
                    }
                }
            }
        }
        if edges.is_empty() {
            return None;
        }
        // Chain edges through vertices where exactly two edges meet.
        let mut degree: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
        for (p, q) in &edges {
            *degree.entry(key(&p.0)).or_default() += 1;
            *degree.entry(key(&q.0)).or_default() += 1;
        }
        let mut used = vec![false; edges.len()];
        let mut chains: Vec<Vec<Vertex>> = Vec::new();
        for start in 0..edges.len() {
            if used[start] {
                continue;
            }
            used[start] = true;
            let mut chain: std::collections::VecDeque<Vertex> = [edges[start].0, edges[start].1].into();
            for forward in [true, false] {
                loop {
                    let end = if forward { chain.back() } else { chain.front() };
                    let Some(end) = end.map(|v| v.0) else { break };
                    if degree.get(&key(&end)) != Some(&2) {
                        break;
                    }
                    let next = (0..edges.len()).find(|&i| !used[i] && (edges[i].0.0 == end || edges[i].1.0 == end));
                    let Some(i) = next else { break };
                    used[i] = true;
                    let other = if edges[i].0.0 == end { edges[i].1 } else { edges[i].0 };
                    if forward {
                        chain.push_back(other);
                    } else {
                        chain.push_front(other);
                    }
                }
            }
            chains.push(chain.into_iter().collect());
        }
        Some(chains_json(&chains))
    })())
}

/// The union of an array of polygons and multipolygons: the rings of the union's boundary,
/// holes under the shells that contain them, input coordinates kept as written.
fn union_polygons_array(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out((|| {
        let arr: Json = serde_json::from_str(text(a, 0)?).ok()?;
        let items: Vec<&Json> = arr.as_array()?.iter().collect();
        let mut polys: Vec<Polygon> = Vec::new();
        for item in &items {
            polys.extend(shape::polygons(item)?);
        }
        if polys.is_empty() {
            return None;
        }
        let written = written_positions(&items)?;
        Some(polygons_json(rings_json(&sphere::union_boundary(&polys), &written)))
    })())
}

/// Rings chained from boundary edges as GeoJSON polygons (holes under the shells holding them),
/// vertices written as `written` has them when they are input vertices.
fn rings_json(edges: &[(Point, Point)], written: &Written) -> Vec<Json> {
    let key = sphere::point_key;
    let rings = sphere::chain_rings(edges);
    let (shells, holes): (Vec<Vec<Point>>, Vec<Vec<Point>>) = rings.into_iter().partition(|r| sphere::is_shell(r));
    let ring_json = |r: &[Point]| {
        let mut ps: Vec<Json> = r
            .iter()
            .map(|p| match written.get(&key(p)) {
                Some(&(x, y)) => shape::pair(x, y),
                None => shape::position_json(p),
            })
            .collect();
        ps.push(ps[0].clone());
        Json::Array(ps)
    };
    let mut polys: Vec<Vec<Json>> = shells.iter().map(|s| vec![ring_json(s)]).collect();
    for h in &holes {
        let owner = shells.iter().position(|s| sphere::Loop::new(s.clone()).is_some_and(|l| h.iter().any(|v| l.contains(v))));
        if let Some(i) = owner {
            polys[i].push(ring_json(h));
        }
    }
    polys.into_iter().map(Json::Array).collect()
}

/// Input positions as written, by the bits of their point.
type Written = std::collections::HashMap<sphere::PointKey, (f64, f64)>;

/// The input positions of shapes (validated by the caller), by point.
fn written_positions(items: &[&Json]) -> Option<Written> {
    let mut written = std::collections::HashMap::new();
    for item in items {
        for rings in shape::written_polygon_positions(item)? {
            for &(x, y) in rings.iter().flatten() {
                let p = sphere::point(x, y);
                written.entry(sphere::point_key(&p)).or_insert((x, y));
            }
        }
    }
    Some(written)
}

/// Polygons as one GeoJSON shape: none is an empty collection.
fn polygons_json(polys: Vec<Json>) -> Json {
    match polys.len() {
        0 => empty_collection(),
        1 => shape::geojson("Polygon", polys.into_iter().next().unwrap_or_default()),
        _ => shape::geojson("MultiPolygon", Json::Array(polys)),
    }
}

fn intersection_2polygons(a: &[ScalarValue], st: &mut RowState) -> ScalarValue {
    out((|| {
        let (ja, jb): (Json, Json) = (serde_json::from_str(text(a, 0)?).ok()?, serde_json::from_str(text(a, 1)?).ok()?);
        let (pa, pb) = (polygons_at(a, 0, st)?, polygons_at(a, 1, st)?);
        let written = written_positions(&[&ja, &jb])?;
        let edges = sphere::intersection_boundary(&pa, &pb);
        let polys = rings_json(&edges, &written);
        // Where the shapes only touch, the intersection is those points.
        let on_rings = |v: &Point| edges.iter().any(|(p, q)| p == v || q == v);
        let points: Vec<Json> = sphere::touching_vertices(&pa, &pb)
            .into_iter()
            .filter(|v| !on_rings(v))
            .map(|v| {
                match written.get(&sphere::point_key(&v)) {
                    Some(&(x, y)) => shape::pair(x, y),
                    None => shape::position_json(&v),
                }
            })
            .collect();
        Some(match (points.len(), polys.is_empty()) {
            (0, _) => polygons_json(polys),
            (1, true) => shape::geojson("Point", points.into_iter().next()?),
            (_, true) => shape::geojson("MultiPoint", Json::Array(points)),
            (_, false) => {
                let mut geoms: Vec<Json> = points.into_iter().map(|p| shape::geojson("Point", p)).collect();
                geoms.push(polygons_json(polys));
                let mut m = serde_json::Map::new();
                m.insert("type".into(), Json::String("GeometryCollection".into()));
                m.insert("geometries".into(), Json::Array(geoms));
                Json::Object(m)
            }
        })
    })())
}

/// A circle of `radius` meters around a point as a polygon: a regular polygon inscribed in the
/// circle with as few vertices as keep its edges within `tolerance` meters of the circle
/// (default 10; below a millionth of the radius is invalid, above the radius it is the radius).
fn point_buffer(a: &[ScalarValue], _: &mut RowState) -> ScalarValue {
    out((|| {
        let center = point_at(a, 0)?;
        let radius = num(a, 2)?;
        let tolerance = arg_or(a, 3, 10.0, sv_f64)?;
        let max_radius = std::f64::consts::PI * EARTH_RADIUS_M / 2.0;
        if !(radius > 0.0 && radius <= max_radius && tolerance.is_finite() && tolerance >= radius * 1e-6) {
            return None;
        }
        let tolerance = tolerance.min(radius);
        // An inscribed regular polygon of n vertices is within r (1 - cos(pi / n)) of the circle.
        let n = (std::f64::consts::PI / (1.0 - tolerance / radius).acos()).ceil().clamp(4.0, 65_536.0) as usize;
        let mut ring: Vec<(f64, f64)> =
            s2::point::regular_points(&center, s2::s1::Angle::from(s2::s1::Rad(radius / EARTH_RADIUS_M)), n).iter().map(sphere::lng_lat).collect();
        // Counterclockwise, as GeoJSON shells are.
        let lp = sphere::Loop::new(ring.iter().map(|&(x, y)| sphere::point(x, y)).collect())?;
        if lp.vertices().first().map(sphere::lng_lat) != ring.first().copied() {
            ring.reverse();
        }
        Some(shape::ring_polygon_json(&ring))
    })())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn polys(j: &str) -> Vec<Polygon> {
        shape::polygons(&serde_json::from_str(j).unwrap()).unwrap()
    }

    #[test]
    fn a_ring_is_the_smaller_region_whichever_way_it_turns() {
        let ccw = polys(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}"#);
        let cw = polys(r#"{"type":"Polygon","coordinates":[[[0,0],[0,1],[1,1],[1,0],[0,0]]]}"#);
        assert!((ccw[0].area() - cw[0].area()).abs() < 1e-15);
        assert!(ccw[0].area() < 1e-3);
        let inside = sphere::point(0.5, 0.5);
        let outside = sphere::point(2.0, 0.5);
        assert!(ccw[0].contains(&inside) && cw[0].contains(&inside));
        assert!(!ccw[0].contains(&outside) && !cw[0].contains(&outside));
    }

    #[test]
    fn invalid_rings_are_refused() {
        for bad in [
            // a repeated vertex
            r#"{"type":"Polygon","coordinates":[[[0,0],[10,10],[10,10],[0,0]]]}"#,
            // not closed
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}"#,
            // a bow tie: two edges cross
            r#"{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}"#,
            // a coordinate out of range
            r#"{"type":"Polygon","coordinates":[[[0,0],[200,0],[1,1],[0,0]]]}"#,
        ] {
            assert!(shape::polygons(&serde_json::from_str(bad).unwrap()).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_union_of_two_squares_sharing_an_edge_has_no_inner_edge() {
        let two = polys(
            r#"{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,1],[0,0]]],[[[1,0],[2,0],[2,1],[1,1],[1,0]]]]}"#,
        );
        let one = polys(r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[2,0],[2,1],[1,1],[0,1],[0,0]]]}"#);
        let b = sphere::union_boundary(&two);
        assert!((sphere::boundary_area(&b) - one[0].area()).abs() < 1e-15);
        assert!((sphere::boundary_length(&b) - one[0].perimeter()).abs() < 1e-12);
        // Overlapping copies of one square: the union is the square.
        let same = polys(
            r#"{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,1],[0,0]]],[[[0,0],[1,0],[1,1],[0,1],[0,0]]]]}"#,
        );
        let b = sphere::union_boundary(&same);
        assert!((sphere::boundary_area(&b) - same[0].area()).abs() < 1e-15);
    }

    #[test]
    fn geohash_goes_to_eighteen_characters_and_back() {
        let h = grid::geohash(139.806115, 35.554128, 18).unwrap();
        assert_eq!(h.len(), 18);
        assert!(h.starts_with("xn76m27ty9g4"));
        assert!(grid::geohash(1.0, 1.0, 19).is_none());
        assert!(grid::geohash(1.0, 1.0, 0).is_none());
        let c = grid::geohash_center(&h).unwrap();
        let (x, y) = (c["coordinates"][0].as_f64().unwrap(), c["coordinates"][1].as_f64().unwrap());
        assert!((x - 139.806115).abs() < 1e-6 && (y - 35.554128).abs() < 1e-6);
        assert!(grid::geohash_center("sunnya").is_none());
    }

    #[test]
    fn geojson_text_puts_the_type_first() {
        let j = shape::geojson("Point", shape::pair(1.0, 2.5));
        assert_eq!(shape::geo_text(&j), r#"{"type":"Point","coordinates":[1,2.5]}"#);
    }
}
