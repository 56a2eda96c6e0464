//! The three grid systems of Kusto's geospatial functions: geohash, S2 cells and H3 cells. A
//! point goes to a cell token, a token to its central point, its polygon and its neighbours, and
//! for H3 to its parent, children and rings. Invalid input (a coordinate out of range, a level
//! out of the documented range, a malformed token) gives the empty string for a token and null
//! for anything else, as documented.
//!
//! S2 is the `s2` crate and H3 the `h3o` crate. Geohash is written here: it is bit interleaving
//! over halved intervals, and Kusto supports 18 characters (90 bits), where the geohash crate
//! stops at 12.

use std::str::FromStr;

use h3o::{CellIndex, LatLng as H3LatLng, Resolution};
use s2::cell::Cell;
use s2::cellid::CellID;
use s2::latlng::LatLng;
use s2::point::Point;
use serde_json::Value as Json;

use super::shape::{geojson, pair, position_json, ring_polygon_json};
use super::sphere::valid;

const BASE32: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// The geohash of a coordinate with `len` characters (1 to 18), or `None`.
pub(crate) fn geohash(lng: f64, lat: f64, len: i64) -> Option<String> {
    if !valid(lng, lat) || !(1..=18).contains(&len) {
        return None;
    }
    let (mut lng_lo, mut lng_hi, mut lat_lo, mut lat_hi) = (-180.0f64, 180.0f64, -90.0f64, 90.0f64);
    let mut even = true;
    let mut out = String::with_capacity(len as usize);
    for _ in 0..len {
        let mut ch = 0usize;
        for _ in 0..5 {
            ch <<= 1;
            if even {
                let mid = (lng_lo + lng_hi) / 2.0;
                if lng >= mid {
                    ch |= 1;
                    lng_lo = mid;
                } else {
                    lng_hi = mid;
                }
            } else {
                let mid = (lat_lo + lat_hi) / 2.0;
                if lat >= mid {
                    ch |= 1;
                    lat_lo = mid;
                } else {
                    lat_hi = mid;
                }
            }
            even = !even;
        }
        out.push(BASE32[ch] as char);
    }
    Some(out)
}

/// The rectangle of a geohash: (min longitude, min latitude, max longitude, max latitude).
fn geohash_rect(h: &str) -> Option<(f64, f64, f64, f64)> {
    if !(1..=18).contains(&h.len()) {
        return None;
    }
    let (mut lng_lo, mut lng_hi, mut lat_lo, mut lat_hi) = (-180.0f64, 180.0f64, -90.0f64, 90.0f64);
    let mut even = true;
    for c in h.bytes() {
        let v = BASE32.iter().position(|&b| b == c)?;
        for bit in (0..5).rev() {
            let on = v >> bit & 1 == 1;
            if even {
                let mid = (lng_lo + lng_hi) / 2.0;
                if on { lng_lo = mid } else { lng_hi = mid }
            } else {
                let mid = (lat_lo + lat_hi) / 2.0;
                if on { lat_lo = mid } else { lat_hi = mid }
            }
            even = !even;
        }
    }
    Some((lng_lo, lat_lo, lng_hi, lat_hi))
}

pub(crate) fn geohash_center(h: &str) -> Option<Json> {
    let (x0, y0, x1, y1) = geohash_rect(h)?;
    Some(geojson("Point", pair((x0 + x1) / 2.0, (y0 + y1) / 2.0)))
}

pub(crate) fn geohash_polygon(h: &str) -> Option<Json> {
    let (x0, y0, x1, y1) = geohash_rect(h)?;
    Some(ring_polygon_json(&[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]))
}

/// The neighbouring geohashes, in Kusto's order (south-west, north-west, south-east, north,
/// west, north-east, east, south); longitudes wrap around the antimeridian and there are no
/// neighbours beyond a pole.
pub(crate) fn geohash_neighbors(h: &str) -> Option<Json> {
    let (x0, y0, x1, y1) = geohash_rect(h)?;
    let (w, ht) = (x1 - x0, y1 - y0);
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let len = h.len() as i64;
    let mut out = Vec::new();
    for (dx, dy) in [(-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (0.0, 1.0), (-1.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, -1.0)] {
        let y = cy + dy * ht;
        if !(-90.0..=90.0).contains(&y) {
            continue;
        }
        let mut x = cx + dx * w;
        if x > 180.0 {
            x -= 360.0;
        } else if x < -180.0 {
            x += 360.0;
        }
        if let Some(n) = geohash(x, y, len)
            && n != h && !out.contains(&Json::String(n.clone())) {
                out.push(Json::String(n));
            }
    }
    Some(Json::Array(out))
}

/// The S2 cell token of a coordinate at `level` (0 to 30).
pub(crate) fn s2_token(lng: f64, lat: f64, level: i64) -> Option<String> {
    if !valid(lng, lat) || !(0..=30).contains(&level) {
        return None;
    }
    let id = CellID::from(LatLng::from_degrees(lat, lng)).parent(level as u64);
    Some(id.to_token())
}

/// The cell of an S2 token (1 to 16 hex digits naming a valid cell).
fn s2_cell(token: &str) -> Option<CellID> {
    if !(1..=16).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = CellID::from_token(token);
    id.is_valid().then_some(id)
}

pub(crate) fn s2_center(token: &str) -> Option<Json> {
    let id = s2_cell(token)?;
    Some(geojson("Point", position_json(&Point::from(id))))
}

pub(crate) fn s2_polygon(token: &str) -> Option<Json> {
    let cell = Cell::from(s2_cell(token)?);
    let vs: Vec<(f64, f64)> = cell
        .vertices()
        .iter()
        .map(|p| {
            let ll = LatLng::from(p);
            (ll.lng.deg(), ll.lat.deg())
        })
        .collect();
    Some(ring_polygon_json(&vs))
}

/// The S2 cells around a cell at its level: edge and vertex neighbours, in S2's order.
pub(crate) fn s2_neighbors(token: &str) -> Option<Json> {
    let id = s2_cell(token)?;
    let ns = id.all_neighbors(id.level());
    Some(Json::Array(ns.iter().map(|n| Json::String(n.to_token())).collect()))
}

/// The H3 cell token of a coordinate at `resolution` (0 to 15).
pub(crate) fn h3_token(lng: f64, lat: f64, resolution: i64) -> Option<String> {
    if !valid(lng, lat) {
        return None;
    }
    let res = Resolution::try_from(u8::try_from(resolution).ok()?).ok()?;
    let ll = H3LatLng::new(lat, lng).ok()?;
    Some(ll.to_cell(res).to_string())
}

fn h3_cell(token: &str) -> Option<CellIndex> {
    if token.is_empty() || token.len() > 16 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    CellIndex::from_str(token).ok()
}

fn h3_json(c: CellIndex) -> Json {
    Json::String(c.to_string())
}

pub(crate) fn h3_center(token: &str) -> Option<Json> {
    let ll = H3LatLng::from(h3_cell(token)?);
    Some(geojson("Point", pair(ll.lng(), ll.lat())))
}

pub(crate) fn h3_polygon(token: &str) -> Option<Json> {
    let b = h3_cell(token)?.boundary();
    let vs: Vec<(f64, f64)> = b.iter().map(|ll| (ll.lng(), ll.lat())).collect();
    Some(ring_polygon_json(&vs))
}

pub(crate) fn h3_level(token: &str) -> Option<i32> {
    Some(i32::from(u8::from(h3_cell(token)?.resolution())))
}

/// The children at `resolution` (default: the next one), at most five levels down.
pub(crate) fn h3_children(token: &str, resolution: Option<i64>) -> Option<Json> {
    let c = h3_cell(token)?;
    let own = i64::from(u8::from(c.resolution()));
    let r = resolution.unwrap_or(own + 1);
    if r < own || r - own > 5 || !(1..=15).contains(&r) {
        return None;
    }
    let res = Resolution::try_from(u8::try_from(r).ok()?).ok()?;
    let mut kids: Vec<CellIndex> = c.children(res).collect();
    kids.sort_unstable();
    Some(Json::Array(kids.into_iter().map(h3_json).collect()))
}

/// The parent at `resolution` (default: the previous one).
pub(crate) fn h3_parent(token: &str, resolution: Option<i64>) -> Option<String> {
    let c = h3_cell(token)?;
    let own = i64::from(u8::from(c.resolution()));
    let r = resolution.unwrap_or(own - 1);
    if r > own || !(0..=14).contains(&r) {
        return None;
    }
    let res = Resolution::try_from(u8::try_from(r).ok()?).ok()?;
    Some(c.parent(res)?.to_string())
}

/// The cells at grid distance 1, in H3's k-ring order.
pub(crate) fn h3_neighbors(token: &str) -> Option<Json> {
    let c = h3_cell(token)?;
    let disk: Vec<CellIndex> = c.grid_disk(1);
    Some(Json::Array(disk.into_iter().filter(|n| *n != c).map(h3_json).collect()))
}

/// The rings around a cell up to grid distance `k` (0 to 142, as H3 allows): ring 0 is the cell
/// itself, then each ring's cells in H3's order.
pub(crate) fn h3_rings(token: &str, k: i64) -> Option<Json> {
    let c = h3_cell(token)?;
    let k = u32::try_from(k).ok().filter(|k| *k <= 142)?;
    let dist: Vec<(CellIndex, u32)> = c.grid_disk_distances(k);
    let mut rings: Vec<Vec<Json>> = vec![Vec::new(); k as usize + 1];
    for (cell, d) in dist {
        rings.get_mut(d as usize)?.push(h3_json(cell));
    }
    Some(Json::Array(rings.into_iter().map(Json::Array).collect()))
}

/// Most cells `geo_polygon_to_h3cells` may give (Kusto's documented limit).
const MAX_H3_CELLS: usize = 61_680;

/// The H3 cells at `resolution` whose centres lie inside the polygons, whose edges are straight
/// lines in longitude and latitude here (H3's polygon-to-cells, as the reference says).
pub(crate) fn polygon_h3cells(polys: &[Vec<Vec<(f64, f64)>>], resolution: i64) -> Option<Json> {
    use h3o::geom::{ContainmentMode, TilerBuilder};
    let res = Resolution::try_from(u8::try_from(resolution).ok()?).ok()?;
    let mut tiler = TilerBuilder::new(res).containment_mode(ContainmentMode::ContainsCentroid).build();
    for rings in polys {
        let ring = |r: &Vec<(f64, f64)>| ::geo::LineString::from(r.clone());
        let (shell, holes) = rings.split_first()?;
        tiler.add(::geo::Polygon::new(ring(shell), holes.iter().map(ring).collect())).ok()?;
    }
    if tiler.coverage_size_hint() > 16 * MAX_H3_CELLS {
        return None;
    }
    let mut cells: Vec<CellIndex> = Vec::new();
    for c in tiler.into_coverage() {
        cells.push(c);
        if cells.len() > MAX_H3_CELLS {
            return None;
        }
    }
    Some(Json::Array(cells.into_iter().map(h3_json).collect()))
}
