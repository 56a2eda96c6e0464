//! `kustodian test`: policy tests with snapshots, in the manner of `opa test` and insta.
//!
//! A test directory holds `setup.kql` (the schema, principals, policies and sample rows, as
//! Kusto commands, run as the setup's admin on a new in-memory cluster) and case files: KQL
//! whose leading `//` directives say who runs it (`// as:`, `// groups:`), with which request
//! properties (`// set:`) and what must come out (`// expect:`). Each case's snapshot
//! (`case.snap` beside `case.kql`) holds the effective query, the policies applied and every
//! principal's result side by side; a run that differs fails with a diff, and `--accept`
//! writes what it got.

mod coverage;
mod snapshot;
pub mod suite;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use kustodian_runtime::{Cluster, ErrorCode, Identity, RequestOptions};

use super::render;
use super::report::Failure;
use snapshot::RunRecord;
use suite::{Case, Run, Suite};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test directories (each holding a setup.kql; searched recursively) or case files.
    /// Default: the current directory.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Write the snapshots of new and changed cases instead of failing them (expectations
    /// still fail).
    #[arg(long)]
    accept: bool,
    /// Run only the cases whose path (relative to their test directory) contains TEXT.
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Also write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Report, for each policy, the cases and principals that exercised it and which way each
    /// branch that depends on identity went; list the branches no case took both ways.
    #[arg(long)]
    coverage: bool,
    /// Colour the diffs.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Pass,
    /// Its snapshot was written (new or changed) under `--accept`.
    Accepted,
    /// Why it failed, and the diff against its snapshot.
    Fail { reasons: Vec<String>, diff: String },
}

struct CaseReport {
    name: String,
    status: Status,
    elapsed: std::time::Duration,
}

/// One principal's run of a case that applied a policy: coverage probes it again.
pub struct Exercise {
    pub case: String,
    pub run: Run,
    pub database: String,
}

/// Runs `kustodian test`; true when every case passed.
pub fn test(args: &TestArgs) -> Result<bool, Failure> {
    let paths = if args.paths.is_empty() { vec![PathBuf::from(".")] } else { args.paths.clone() };
    let suites = suite::discover(&paths)?;
    let color = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(ErrorCode::Internal, format!("cannot start the async runtime: {e}")))?;
    let mut out = std::io::stdout().lock();
    let mut junit = quick_junit::Report::new("kustodian test");
    let (mut passed, mut failed, mut accepted) = (0, 0, 0);
    for s in &suites {
        let mut suite_junit = quick_junit::TestSuite::new(shown(&s.dir));
        let reports = runtime.block_on(run_suite(s, args, color, &mut out))?;
        for r in &reports {
            match &r.status {
                Status::Pass => passed += 1,
                Status::Accepted => accepted += 1,
                Status::Fail { .. } => failed += 1,
            }
            suite_junit.add_test_case(junit_case(&s.dir, r));
        }
        junit.add_test_suite(suite_junit);
    }
    let total = passed + failed + accepted;
    let _ = writeln!(
        out,
        "\n{total} case{} in {} test director{}: {passed} passed, {failed} failed{}",
        if total == 1 { "" } else { "s" },
        suites.len(),
        if suites.len() == 1 { "y" } else { "ies" },
        if accepted > 0 { format!(", {accepted} snapshot{} written", if accepted == 1 { "" } else { "s" }) } else { String::new() }
    );
    if let Some(path) = &args.junit {
        let xml = junit.to_string().map_err(|e| Failure::new(ErrorCode::Internal, format!("cannot write JUnit XML: {e}")))?;
        std::fs::write(path, xml)
            .map_err(|e| Failure::new(ErrorCode::BadRequest, format!("cannot write '{}': {e}", path.display())))?;
    }
    if total == 0 {
        let _ = writeln!(out, "no case ran{}", args.filter.as_ref().map(|f| format!(" (--filter '{f}')")).unwrap_or_default());
        return Ok(false);
    }
    Ok(failed == 0)
}

/// A path as the user would type it: relative to the working directory when below it.
pub fn shown(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    match cwd.as_deref().and_then(|c| abs.strip_prefix(c).ok()) {
        Some(rel) if rel.as_os_str().is_empty() => ".".into(),
        Some(rel) => rel.display().to_string(),
        None => path.display().to_string(),
    }
}

fn junit_case(dir: &Path, r: &CaseReport) -> quick_junit::TestCase {
    use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus};
    let status = match &r.status {
        Status::Pass | Status::Accepted => TestCaseStatus::success(),
        Status::Fail { reasons, diff } => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(reasons.first().cloned().unwrap_or_default());
            let mut text = reasons.join("\n");
            if !diff.is_empty() {
                text.push_str("\n\n");
                text.push_str(diff);
            }
            s.set_description(text);
            s
        }
    };
    let mut case = TestCase::new(r.name.clone(), status);
    case.set_classname(shown(dir)).set_time(r.elapsed);
    case
}

async fn run_suite(s: &Suite, args: &TestArgs, color: bool, out: &mut impl Write) -> Result<Vec<CaseReport>, Failure> {
    let name_of = |case: &Path| case.strip_prefix(&s.dir).unwrap_or(case).display().to_string();
    let cases: Vec<&PathBuf> =
        s.cases.iter().filter(|c| args.filter.as_ref().is_none_or(|f| name_of(c).contains(f.as_str()))).collect();
    let _ = writeln!(out, "{} ({} case{})", shown(&s.dir), cases.len(), if cases.len() == 1 { "" } else { "s" });
    let setup = suite::read_setup(&s.dir)?;
    let cluster = match suite::build_cluster(&setup).await {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(out, "  setup failed: {e}");
            return Ok(cases
                .iter()
                .map(|c| CaseReport {
                    name: name_of(c),
                    status: Status::Fail { reasons: vec![format!("setup failed: {e}")], diff: String::new() },
                    elapsed: std::time::Duration::ZERO,
                })
                .collect());
        }
    };
    let database = setup.database.clone().or_else(|| cluster.default_database()).unwrap_or_default();
    let mut reports = Vec::new();
    let mut exercises: BTreeMap<String, Vec<Exercise>> = BTreeMap::new();
    for path in cases {
        let name = name_of(path);
        let start = Instant::now();
        let status = match run_case(&cluster, path, &name, &setup.admin, &database, args.accept, color, &mut exercises).await {
            Ok(status) => status,
            Err(reason) => Status::Fail { reasons: vec![reason], diff: String::new() },
        };
        print_status(out, &name, &status);
        reports.push(CaseReport { name, status, elapsed: start.elapsed() });
    }
    if args.coverage {
        let text = coverage::report(&cluster, &setup, &Identity::new(setup.admin.clone()), &exercises).await;
        let _ = write!(out, "{text}");
    }
    Ok(reports)
}

fn print_status(out: &mut impl Write, name: &str, status: &Status) {
    match status {
        Status::Pass => {
            let _ = writeln!(out, "  PASS      {name}");
        }
        Status::Accepted => {
            let _ = writeln!(out, "  ACCEPTED  {name} (snapshot written)");
        }
        Status::Fail { reasons, diff } => {
            let _ = writeln!(out, "  FAIL      {name}");
            for r in reasons {
                let _ = writeln!(out, "    {r}");
            }
            if !diff.is_empty() {
                let _ = writeln!(out, "    snapshot differs (- snapshot, + this run; --accept to keep this run):");
                for line in diff.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_case(
    cluster: &Cluster,
    path: &Path,
    name: &str,
    admin: &str,
    database: &str,
    accept: bool,
    color: bool,
    exercises: &mut BTreeMap<String, Vec<Exercise>>,
) -> Result<Status, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
    let case: Case = suite::parse_case(path, &text, admin)?;
    let query = text.trim_end();
    let database = case.database.clone().unwrap_or_else(|| database.to_string());
    let mut records = Vec::new();
    let mut reasons = Vec::new();
    for run in &case.runs {
        let opts = RequestOptions {
            database: Some(database.clone()),
            identity: Some(run.identity.clone()),
            properties: run.properties.clone(),
            ..Default::default()
        };
        let plan = match cluster.explain(query, &opts).await {
            Ok(ex) => {
                for p in &ex.applied {
                    exercises.entry(p.table.clone()).or_default().push(Exercise {
                        case: name.to_string(),
                        run: run.clone(),
                        database: database.clone(),
                    });
                }
                Ok((ex.effective_kql, ex.policies))
            }
            Err(e) => Err(format!("error[{}]: {e}", e.code().as_str())),
        };
        let (result, outcome) = match cluster.execute(query, &opts).await {
            Ok(output) => {
                let (cols, mut rows) = render::text_rows(&output);
                if !case.keep_order {
                    rows.sort();
                }
                let n = rows.len();
                (Ok(render::table_of(&cols, rows)), Ok(n))
            }
            Err(e) => {
                let code = e.code().as_str().to_string();
                (Err(format!("error[{code}]: {e}")), Err((code, e.to_string())))
            }
        };
        for expect in &run.expect {
            if let Some(why) = expect.check(&outcome) {
                reasons.push(format!("as {}: {why}", run.label()));
            }
        }
        records.push(RunRecord { label: run.label(), plan, result });
    }
    let snap = snapshot::render(query, &records);
    let snap_path = path.with_extension("snap");
    let old = std::fs::read_to_string(&snap_path).ok();
    if old.as_deref() == Some(snap.as_str()) {
        return Ok(if reasons.is_empty() { Status::Pass } else { Status::Fail { reasons, diff: String::new() } });
    }
    if accept {
        std::fs::write(&snap_path, &snap).map_err(|e| format!("cannot write '{}': {e}", snap_path.display()))?;
        return Ok(if reasons.is_empty() { Status::Accepted } else { Status::Fail { reasons, diff: String::new() } });
    }
    if old.is_none() {
        reasons.push(format!("no snapshot yet ({}): run with --accept to write it", shown(&snap_path)));
    }
    let diff = snapshot::diff(old.as_deref().unwrap_or(""), &snap, color);
    Ok(Status::Fail { reasons, diff })
}
