//! What a row-level security policy costs: the same query timed as a principal (policies
//! applied) and without the policies, at one or more fractions of the data
//! (`kustodian overhead`).
//!
//! The unfiltered baseline leaves policies out, so it is only run for a measurer who could
//! delete those policies anyway: an admin of every table whose policy the query would apply
//! (Table Admin, Database Admin or AllDatabasesAdmin). The baseline's rows are never returned,
//! only its timings and row count.

use std::time::{Duration, Instant};

use kustodian_planner::AppliedPolicy;

use crate::auth::check;
use crate::cluster::Cluster;
use crate::catalog::Unpoliced;
use crate::request::{RequestOptions, View};
use crate::error::{Result, RuntimeError};

/// What to measure.
#[derive(Debug, Clone)]
pub struct OverheadRequest {
    pub query: String,
    /// The principal whose policies are measured (`--as`, `--group`).
    pub options: RequestOptions,
    /// Who asks for the measurement; required when a policy applies (there is no default).
    pub measurer: Option<crate::Identity>,
    /// Timed runs per variant, after one warm-up run each.
    pub runs: usize,
    /// Fractions of each table's rows to measure at, e.g. [0.25, 0.5, 1.0].
    pub fractions: Vec<f64>,
}

/// Timings of one variant.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Rows the query returned.
    pub rows: usize,
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
}

/// One data size.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub fraction: f64,
    /// Rows of the tables the query reads (each table counted once), at this fraction.
    pub table_rows: u64,
    pub with_policies: Timing,
    pub without_policies: Timing,
}

impl Measurement {
    /// Median with policies over median without.
    pub fn ratio(&self) -> f64 {
        let base = self.without_policies.median.as_secs_f64();
        if base == 0.0 { f64::NAN } else { self.with_policies.median.as_secs_f64() / base }
    }
}

#[derive(Debug, Clone)]
pub struct OverheadReport {
    pub principal: String,
    pub policies: Vec<AppliedPolicy>,
    pub runs: usize,
    pub measurements: Vec<Measurement>,
}

impl Cluster {
    /// Measures `req.query` as the principal with and without the policies it applies.
    pub async fn measure_overhead(&self, req: &OverheadRequest) -> Result<OverheadReport> {
        if req.runs == 0 {
            return Err(RuntimeError::bad_request("--runs must be at least 1"));
        }
        if req.fractions.iter().any(|f| !(*f > 0.0 && *f <= 1.0)) {
            return Err(RuntimeError::bad_request("data fractions must be in (0, 1]"));
        }
        // Plan as the principal: authorizes the principal and tells which policies apply.
        let prepared = self.prepare(&req.query, &req.options).await?;
        let database = self.database_for(&req.options)?;
        let principal = self.request_context(&req.options, &database)?.1.principal.fqn();
        // Never a default measurer: the baseline shows what the policies hide (its timings and
        // row counts), so someone who may see that must ask for it by name.
        if req.measurer.is_none() && !prepared.policies.is_empty() {
            return Err(RuntimeError::bad_request(format!(
                "the baseline without row_level_security policies needs a measurer: give --by PRINCIPAL, a Table Admin of every \
                 table whose policy applies ({})",
                prepared.policies.iter().map(|p| p.table.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let measurer_opts = RequestOptions { identity: req.measurer.clone(), ..req.options.clone() };
        let (measurer, _) = self.request_context(&measurer_opts, &database)?;
        let snap = self.snapshot();
        for policy in &prepared.policies {
            let access = prepared.tables.iter().find(|t| format!("[{}].[{}]", t.database, t.table) == policy.table);
            let Some(t) = access else {
                return Err(RuntimeError::Internal(format!("policy of {} applied to a table the query does not read", policy.table)));
            };
            check(
                crate::auth::allows(&snap.meta, &measurer, &crate::auth::Action::AdminTable(&t.database, &t.table)),
                &measurer,
                &format!(
                    "measure the query without the row_level_security policy of table '{}' in database '{}'",
                    t.table, t.database
                ),
                crate::auth::Needs::TableAdmin,
            )?;
        }
        let mut seen = std::collections::HashSet::new();
        let full_rows: u64 = prepared
            .tables
            .iter()
            .filter(|t| seen.insert((t.database.clone(), t.table.clone())))
            .filter_map(|t| snap.meta.db(&t.database).and_then(|d| d.table(&t.table)))
            .map(|t| t.extents.iter().map(|e| e.rows).sum::<u64>())
            .sum();
        drop(snap);

        let mut measurements = Vec::new();
        for &fraction in &req.fractions {
            let with = View { without_rls: Unpoliced::None, fraction };
            let without = View { without_rls: Unpoliced::All, fraction };
            // One warm-up each, then alternate so drift affects both variants alike.
            self.timed(&req.query, &req.options, &with).await?;
            self.timed(&req.query, &req.options, &without).await?;
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let (mut rows_a, mut rows_b) = (0, 0);
            for _ in 0..req.runs {
                let (r, d) = self.timed(&req.query, &req.options, &with).await?;
                rows_a = r;
                a.push(d);
                let (r, d) = self.timed(&req.query, &req.options, &without).await?;
                rows_b = r;
                b.push(d);
            }
            measurements.push(Measurement {
                fraction,
                table_rows: (full_rows as f64 * fraction).round() as u64,
                with_policies: summarize(rows_a, a),
                without_policies: summarize(rows_b, b),
            });
        }
        Ok(OverheadReport {
            principal,
            policies: prepared.policies,
            runs: req.runs,
            measurements,
        })
    }

    /// Plans and runs a query as `--timing` measures it; returns rows and elapsed time.
    async fn timed(&self, query: &str, opts: &RequestOptions, view: &View) -> Result<(usize, Duration)> {
        let start = Instant::now();
        let prepared = self.prepare_view(query, opts, view.clone()).await?;
        let out = self.run_prepared(&prepared).await?;
        Ok((out.row_count(), start.elapsed()))
    }
}

fn summarize(rows: usize, mut times: Vec<Duration>) -> Timing {
    times.sort();
    let n = times.len();
    let median = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2 };
    Timing { rows, median, min: times[0], max: times[n - 1] }
}
