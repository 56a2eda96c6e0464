//! GeoJSON (RFC 7946) shapes as Kusto's geospatial functions read and write them: points,
//! lines and multilines, polygons and multipolygons, with Kusto's validity rules (coordinates in
//! range, lines of at least two points, rings closed with at least four entries and distinct
//! vertices, rings that do not cross). Anything that breaks a rule reads as `None`, which the
//! functions turn into null, as Kusto does.

use s2::point::Point;
use serde_json::{Map, Value as Json};

use super::sphere::{Loop, Polygon, antipodal, lng_lat, point, valid};

/// A `[longitude, latitude]` position (an altitude after them is allowed and ignored).
fn position(j: &Json) -> Option<(f64, f64)> {
    let a = j.as_array()?;
    if !(2..=3).contains(&a.len()) {
        return None;
    }
    let (lng, lat) = (a[0].as_f64()?, a[1].as_f64()?);
    valid(lng, lat).then_some((lng, lat))
}

fn positions(j: &Json) -> Option<Vec<(f64, f64)>> {
    j.as_array()?.iter().map(position).collect()
}

/// The `coordinates` of a GeoJSON object of the given type.
fn coordinates<'a>(j: &'a Json, ty: &str) -> Option<&'a Json> {
    let o = j.as_object()?;
    (o.get("type")?.as_str()? == ty).then_some(())?;
    o.get("coordinates")
}

fn type_of(j: &Json) -> Option<&str> {
    j.as_object()?.get("type")?.as_str()
}

/// A line: at least two positions, no edge between antipodal points.
fn line(j: &Json) -> Option<Vec<Point>> {
    let ps = positions(j)?;
    if ps.len() < 2 {
        return None;
    }
    let pts: Vec<Point> = ps.iter().map(|&(x, y)| point(x, y)).collect();
    if pts.windows(2).any(|w| antipodal(&w[0], &w[1])) {
        return None;
    }
    Some(pts)
}

/// The lines of a LineString or MultiLineString.
pub(crate) fn lines(j: &Json) -> Option<Vec<Vec<Point>>> {
    match type_of(j)? {
        "LineString" => Some(vec![line(coordinates(j, "LineString")?)?]),
        "MultiLineString" => {
            let ls = coordinates(j, "MultiLineString")?.as_array()?;
            if ls.is_empty() {
                return None;
            }
            ls.iter().map(line).collect()
        }
        _ => None,
    }
}

/// A linear ring: closed (first position equals last), at least four entries.
fn ring(j: &Json) -> Option<Loop> {
    let mut ps = positions(j)?;
    if ps.len() < 4 || ps.first() != ps.last() {
        return None;
    }
    ps.pop();
    Loop::new(ps.iter().map(|&(x, y)| point(x, y)).collect())
}

/// A polygon's rings: the shell, then the holes.
fn polygon(j: &Json) -> Option<Polygon> {
    let rings = j.as_array()?;
    let (shell, holes) = rings.split_first()?;
    let shell = ring(shell)?;
    let holes = holes.iter().map(ring).collect::<Option<Vec<_>>>()?;
    Polygon::new(shell, holes)
}

/// The polygons of a Polygon or MultiPolygon.
pub(crate) fn polygons(j: &Json) -> Option<Vec<Polygon>> {
    match type_of(j)? {
        "Polygon" => Some(vec![polygon(coordinates(j, "Polygon")?)?]),
        "MultiPolygon" => {
            let ps = coordinates(j, "MultiPolygon")?.as_array()?;
            if ps.is_empty() {
                return None;
            }
            ps.iter().map(polygon).collect()
        }
        _ => None,
    }
}

/// A `[longitude, latitude]` JSON position of a point.
pub(crate) fn position_json(p: &Point) -> Json {
    let (lng, lat) = lng_lat(p);
    pair(lng, lat)
}

/// A `[longitude, latitude]` JSON position.
pub(crate) fn pair(lng: f64, lat: f64) -> Json {
    Json::Array(vec![num(lng), num(lat)])
}

/// A coordinate as a JSON number: whole numbers without a fraction, as Kusto writes them.
pub(crate) fn num(x: f64) -> Json {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        return Json::from(x as i64);
    }
    serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
}

/// GeoJSON text with each object's `type` first, as Kusto writes shapes.
pub(crate) fn geo_text(j: &Json) -> String {
    let mut s = String::new();
    write_geo(j, &mut s);
    s
}

fn write_geo(j: &Json, s: &mut String) {
    match j {
        Json::Object(m) => {
            s.push('{');
            let keys = m.keys().filter(|k| *k == "type").chain(m.keys().filter(|k| *k != "type"));
            for (i, k) in keys.enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&Json::String(k.clone()).to_string());
                s.push(':');
                write_geo(&m[k], s);
            }
            s.push('}');
        }
        Json::Array(a) => {
            s.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                write_geo(x, s);
            }
            s.push(']');
        }
        other => s.push_str(&other.to_string()),
    }
}

/// The positions of a LineString, as written (validated as [`lines`] does).
pub(crate) fn line_positions(j: &Json) -> Option<Vec<Vec<(f64, f64)>>> {
    lines(j)?;
    match type_of(j)? {
        "LineString" => Some(vec![positions(coordinates(j, "LineString")?)?]),
        _ => coordinates(j, "MultiLineString")?.as_array()?.iter().map(positions).collect(),
    }
}

/// The positions of each ring (shell first) of each polygon.
pub(crate) type PolygonPositions = Vec<Vec<Vec<(f64, f64)>>>;

/// The rings' positions of a Polygon or MultiPolygon, as written (validated as [`polygons`]).
pub(crate) fn polygon_positions(j: &Json) -> Option<PolygonPositions> {
    polygons(j)?;
    written_polygon_positions(j)
}

/// The rings' positions of a Polygon or MultiPolygon already validated, as written.
pub(crate) fn written_polygon_positions(j: &Json) -> Option<PolygonPositions> {
    let rings = |p: &Json| -> Option<Vec<Vec<(f64, f64)>>> { p.as_array()?.iter().map(positions).collect() };
    match type_of(j)? {
        "Polygon" => Some(vec![rings(coordinates(j, "Polygon")?)?]),
        _ => coordinates(j, "MultiPolygon")?.as_array()?.iter().map(rings).collect(),
    }
}

/// JSON positions.
pub(crate) fn positions_json(ps: &[(f64, f64)]) -> Json {
    Json::Array(ps.iter().map(|&(x, y)| pair(x, y)).collect())
}

/// The GeoJSON of a WKT text (Kusto's `geo_from_wkt`), or `None` if it is not valid WKT or
/// has an empty part.
pub(crate) fn from_wkt(text: &str) -> Option<Json> {
    use std::str::FromStr;
    use wkt::Wkt;
    fn coord(c: &wkt::types::Coord<f64>) -> Json {
        pair(c.x, c.y)
    }
    fn line(l: &wkt::types::LineString<f64>) -> Option<Json> {
        let cs = l.coords();
        (!cs.is_empty()).then(|| Json::Array(cs.iter().map(coord).collect()))
    }
    fn poly(p: &wkt::types::Polygon<f64>) -> Option<Json> {
        let rs = p.rings();
        if rs.is_empty() {
            return None;
        }
        rs.iter().map(line).collect::<Option<Vec<_>>>().map(Json::Array)
    }
    fn shape(w: &Wkt<f64>) -> Option<Json> {
        Some(match w {
            Wkt::Point(p) => geojson("Point", coord(p.coord()?)),
            Wkt::LineString(l) => geojson("LineString", line(l)?),
            Wkt::Polygon(p) => geojson("Polygon", poly(p)?),
            Wkt::MultiPoint(m) => {
                let ps = m.points().iter().map(|p| p.coord().map(coord)).collect::<Option<Vec<_>>>()?;
                geojson("MultiPoint", Json::Array(ps))
            }
            Wkt::MultiLineString(m) => {
                geojson("MultiLineString", Json::Array(m.line_strings().iter().map(line).collect::<Option<Vec<_>>>()?))
            }
            Wkt::MultiPolygon(m) => geojson("MultiPolygon", Json::Array(m.polygons().iter().map(poly).collect::<Option<Vec<_>>>()?)),
            Wkt::GeometryCollection(g) => {
                let mut o = Map::new();
                o.insert("type".into(), Json::String("GeometryCollection".into()));
                o.insert("geometries".into(), Json::Array(g.geometries().iter().map(shape).collect::<Option<Vec<_>>>()?));
                Json::Object(o)
            }
        })
    }
    shape(&Wkt::<f64>::from_str(text.trim()).ok()?)
}


/// A GeoJSON object `{"type": ty, "coordinates": c}`.
pub(crate) fn geojson(ty: &str, coordinates: Json) -> Json {
    let mut m = Map::new();
    m.insert("type".into(), Json::String(ty.into()));
    m.insert("coordinates".into(), coordinates);
    Json::Object(m)
}

/// A GeoJSON Point.
pub(crate) fn point_json(p: &Point) -> Json {
    geojson("Point", position_json(p))
}

/// A GeoJSON Polygon of one ring given by its vertices (closed here).
pub(crate) fn ring_polygon_json(vertices: &[(f64, f64)]) -> Json {
    let mut ring: Vec<Json> = vertices.iter().map(|&(x, y)| pair(x, y)).collect();
    if let Some(first) = ring.first().cloned() {
        ring.push(first);
    }
    geojson("Polygon", Json::Array(vec![Json::Array(ring)]))
}
