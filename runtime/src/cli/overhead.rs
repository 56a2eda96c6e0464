//! `kustodian overhead`: the report of what row-level security costs a query, and its chart.

use std::path::Path;
use std::time::Duration;

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use kustodian_runtime::overhead::{Measurement, OverheadReport};
use plotters::prelude::*;
use serde_json::json;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.3}", ms(d))
}

/// The report as text: the principal, the policies, and one table row per variant and size.
pub fn text(report: &OverheadReport) -> String {
    let mut out = format!("principal: {}\n", report.principal);
    if report.policies.is_empty() {
        out.push_str("policies:  none apply to this query for this principal\n");
    } else {
        for (i, p) in report.policies.iter().enumerate() {
            let label = if i == 0 { "policies:" } else { "" };
            let forced = if p.forced { " (disabled; forced by query_force_row_level_security)" } else { "" };
            out.push_str(&format!("{label:<10} RowLevelSecurity on {}{forced}: {}\n", p.table, p.query));
        }
    }
    out.push_str(&format!(
        "runs:      {} timed runs per variant after one warm-up; times cover planning and execution\n",
        report.runs
    ));
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(["data", "table rows", "variant", "rows", "median ms", "min ms", "max ms", "overhead"]);
    for m in &report.measurements {
        let data = format!("{:.0}%", m.fraction * 100.0);
        for (variant, t, ratio) in [
            ("with policies", &m.with_policies, format!("{:.3}x", m.ratio())),
            ("without policies", &m.without_policies, String::new()),
        ] {
            table.add_row(vec![
                Cell::new(&data),
                Cell::new(m.table_rows).set_alignment(CellAlignment::Right),
                Cell::new(variant),
                Cell::new(t.rows).set_alignment(CellAlignment::Right),
                Cell::new(fmt_ms(t.median)).set_alignment(CellAlignment::Right),
                Cell::new(fmt_ms(t.min)).set_alignment(CellAlignment::Right),
                Cell::new(fmt_ms(t.max)).set_alignment(CellAlignment::Right),
                Cell::new(ratio).set_alignment(CellAlignment::Right),
            ]);
        }
    }
    out.push_str(&table.to_string());
    out.push('\n');
    out
}

/// The report as one JSON object.
pub fn json(report: &OverheadReport) -> String {
    let timing = |t: &kustodian_runtime::overhead::Timing| {
        json!({"rows": t.rows, "median_ms": ms(t.median), "min_ms": ms(t.min), "max_ms": ms(t.max)})
    };
    let value = json!({
        "principal": report.principal,
        "policies": report.policies.iter().map(|p| json!({"table": p.table, "query": p.query, "forced": p.forced})).collect::<Vec<_>>(),
        "runs": report.runs,
        "measurements": report.measurements.iter().map(|m: &Measurement| json!({
            "fraction": m.fraction,
            "table_rows": m.table_rows,
            "with_policies": timing(&m.with_policies),
            "without_policies": timing(&m.without_policies),
            "ratio": m.ratio(),
        })).collect::<Vec<_>>(),
    });
    format!("{value}\n")
}

/// Writes an SVG chart of median time against table rows, with and without policies.
pub fn chart(report: &OverheadReport, path: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot draw the chart '{}': {e}", path.display());
    let points = |f: fn(&Measurement) -> Duration| -> Vec<(f64, f64)> {
        report.measurements.iter().map(|m| (m.table_rows as f64, ms(f(m)))).collect()
    };
    let with = points(|m| m.with_policies.median);
    let without = points(|m| m.without_policies.median);
    let max_x = with.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_y = with.iter().chain(&without).map(|p| p.1).fold(0.001, f64::max) * 1.15;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("RLS overhead for {}", report.principal), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_x * 1.05, 0.0..max_y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("rows in the tables read")
        .y_desc("median ms (plan + execute)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    for (label, data, color) in [("with policies", with, RED), ("without policies", without, BLUE)] {
        chart
            .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(data.into_iter().map(|p| Circle::new(p, 4, color.filled()))).map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
