//! The `kustodian` command line: `init`, `run`, `shell`, `parse`, `explain`, `test`... (see
//! "The command-line contract" in the architecture notes).

mod overhead;
mod lint;
mod parse_cmd;
mod policy_test;
mod progress;
mod render;
mod report;
mod serve;
mod shell;
mod vault;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use datafusion::arrow::record_batch::RecordBatch;
use kustodian_runtime::{
    Cluster, ErrorCode, Explanation, Identity, QueryOutput, QueryStream, RequestOptions,
};

use report::Failure;
use kustodian_runtime::script::{ScriptRequest, split_script};

#[derive(Debug, Parser)]
#[command(
    name = "kustodian",
    version,
    about = "A KQL engine with Kusto's security model, over Apache Arrow"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new empty cluster directory whose first admin is PRINCIPAL.
    Init {
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Principal FQN made AllDatabasesAdmin, e.g. aaduser=alice@contoso.com.
        #[arg(long, value_name = "PRINCIPAL")]
        admin: String,
        /// Double encryption: every extent file also encrypted as a whole, with another key and
        /// cipher, under Parquet's encryption (cannot be changed later).
        #[arg(long)]
        double_encryption: bool,
    },
    /// Run a script: requests separated by blank lines, executed in order.
    Run {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Report each request's elapsed time (stderr; `elapsed_ms` in JSON).
        #[arg(long)]
        timing: bool,
        /// Run the remaining requests after a failure.
        #[arg(long)]
        keep_going: bool,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Interactive shell (reads stdin line by line when it is not a terminal).
    Shell {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Parse without running: print canonical KQL, or the AST as JSON.
    Parse {
        /// Print the AST as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Show the effective query, the policies applied and the plans, without running (with
    /// --analyze: run it and show what it read).
    Explain {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        source: SourceArgs,
        /// Run the query (rows counted, not printed) and show the plan with its metrics: bytes
        /// scanned, row groups and pages skipped. Where a row-level-security policy applies,
        /// only an admin of its table may.
        #[arg(long)]
        analyze: bool,
    },
    /// Measure what row-level security costs a query: run it as --as PRINCIPAL with its
    /// policies and without them (the measurer, --by, must be an admin of those tables).
    Overhead {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Who asks for the measurement (default: the cluster's first admin); must be Table
        /// Admin of every table whose policy is left out of the baseline.
        #[arg(long, value_name = "PRINCIPAL")]
        by: Option<String>,
        /// Timed runs per variant and size, after one warm-up run each.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        runs: u32,
        /// Data sizes to measure at, as percentages of each table's rows (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "100", value_parser = clap::value_parser!(u32).range(1..=100))]
        sizes: Vec<u32>,
        /// Write an SVG chart of median time against data size to FILE.
        #[arg(long, value_name = "FILE")]
        chart: Option<PathBuf>,
        /// Report as a table, or as one JSON object.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Run policy tests: a test directory's setup.kql, then its cases as the principals they
    /// name, each compared with its snapshot (case.snap beside case.kql).
    Test(policy_test::TestArgs),
    /// Check a database's row-level-security policies, role assignments and materialized views
    /// for the mistakes policy authors make (lock-outs, grant-alls, unknown principals,
    /// case-sensitive identity comparisons, overlapping masking legs...).
    Lint(lint::LintArgs),
    /// Serve Kusto's REST API (v1/v2 query, v1 mgmt) with bearer-token authentication,
    /// network rules and an audit log, until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// The playground page on the bundled sample (loopback only): run a query as several
    /// principals side by side, with the effective query and the plan's barriers.
    Playground(serve::PlaygroundArgs),
    /// Manage a local file key vault (customer-managed keys for `.alter cluster policy
    /// encryption`): create, add-key, grant, revoke, delete-key, recover-key, disable, enable.
    Vault(vault::VaultArgs),
    /// Key pairs in a PKCS#11 token (an HSM): add-key, set-pin.
    Hsm(vault::HsmArgs),
    /// Mint a token of the local dev issuer (trusted by `serve` without --config).
    Token(serve::TokenArgs),
    /// Generate the benchmark table T (and UserRegions) as CSV and Parquet, deterministically.
    Gen {
        /// Rows of T.
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Output directory (created if missing): T.parquet, T.csv, UserRegions.csv, ingest.kql.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Random seed; the same seed and row count give the same data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Which data files to write.
        #[arg(long, value_enum, default_value_t = GenFormat::Both)]
        format: GenFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GenFormat {
    Csv,
    Parquet,
    Both,
}

/// Which cluster, database and identity requests run against.
#[derive(Debug, Args)]
struct ClusterArgs {
    /// Cluster directory; without it, an in-memory cluster with the bundled sample database.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Database in scope (default: the cluster's default database).
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
    /// Principal FQN to run as (default: the cluster's first admin).
    #[arg(long = "as", value_name = "PRINCIPAL")]
    principal: Option<String>,
    /// A group the principal is a member of (repeatable).
    #[arg(long = "group", value_name = "GROUP", requires = "principal")]
    groups: Vec<String>,
    /// A request property, e.g. query_force_row_level_security (repeatable; NAME alone means true).
    #[arg(long = "set", value_name = "NAME[=VALUE]", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Plan every query in full, even one that repeats an earlier query of the same caller on
    /// unchanged data (by default its optimized plan is reused).
    #[arg(long)]
    no_plan_cache: bool,
    /// A directory `.ingest into table T ('path')` may read files below (repeatable; default:
    /// the current directory). The cluster directory is never readable this way.
    #[arg(long = "ingest-root", value_name = "DIR")]
    ingest_roots: Vec<PathBuf>,
}

/// Where the script comes from: `-c TEXT`, a file, or `-` for stdin.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct SourceArgs {
    /// The script text.
    #[arg(short = 'c', value_name = "TEXT")]
    command: Option<String>,
    /// A script file, or - for standard input.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

fn parse_property(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg.split_once('=').unwrap_or((arg, "true"));
    if name.trim().is_empty() {
        return Err("a property needs a name: NAME or NAME=VALUE".into());
    }
    Ok((name.trim().to_string(), value.to_string()))
}

impl SourceArgs {
    fn read(&self) -> Result<String, Failure> {
        match (&self.command, &self.file) {
            (Some(text), _) => Ok(text.clone()),
            (None, Some(path)) if path == Path::new("-") => {
                let mut text = String::new();
                io::stdin().read_to_string(&mut text).map_err(|e| {
                    Failure::new(
                        ErrorCode::BadRequest,
                        format!("cannot read standard input: {e}"),
                    )
                })?;
                Ok(text)
            }
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                Failure::new(
                    ErrorCode::BadRequest,
                    format!("cannot read '{}': {e}", path.display()),
                )
            }),
            (None, None) => Err(Failure::new(
                ErrorCode::BadRequest,
                "no script: give -c TEXT, FILE or -",
            )),
        }
    }
}

/// The entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init { data, admin, double_encryption } => init(&data, &admin, double_encryption),
        Command::Run {
            cluster,
            format,
            timing,
            keep_going,
            source,
        } => run(&cluster, &source, Printer::new(format, timing), keep_going),
        // A shell lives long enough for a hot cache to pay off.
        Command::Shell { cluster } => Session::open(&cluster).map(|s| s.with_hot_cache(256 << 20)).and_then(shell::shell),
        Command::Parse { json, source } => source
            .read()
            .and_then(|script| parse_cmd::parse(&script, json)),
        Command::Explain { cluster, source, analyze } => explain(&cluster, &source, analyze),
        Command::Overhead {
            cluster,
            by,
            runs,
            sizes,
            chart,
            format,
            source,
        } => measure_overhead(&cluster, by, runs, &sizes, chart.as_deref(), format, &source),
        Command::Gen {
            rows,
            out,
            seed,
            format,
        } => generate(rows, &out, seed, format),
        Command::Test(args) => policy_test::test(&args),
        Command::Lint(args) => lint::lint(&args),
        Command::Serve(args) => serve::serve(&args).map(|()| true),
        Command::Token(args) => serve::token(&args).map(|()| true),
        Command::Playground(args) => serve::playground(&args).map(|()| true),
        Command::Vault(args) => vault::vault(&args),
        Command::Hsm(args) => vault::hsm(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(failure) => {
            eprint!("{}", failure.to_text());
            ExitCode::FAILURE
        }
    }
}

/// A failure to write output (e.g. a closed pipe): nothing more can be shown.
fn output_failure(e: io::Error) -> Failure {
    Failure::new(ErrorCode::Internal, format!("cannot write output: {e}"))
}

fn init(dir: &Path, admin: &str, double_encryption: bool) -> Result<bool, Failure> {
    Cluster::init_with(dir, admin, double_encryption).map_err(|e| Failure::from(&e))?;
    println!(
        "Initialized cluster in {} with {admin} as AllDatabasesAdmin",
        dir.display()
    );
    Ok(true)
}

/// A cluster, the async runtime that drives it, and the options of the next request.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    cluster: Cluster,
    pub options: RequestOptions,
}

impl Session {
    /// Keeps up to `bytes` of hot extents decoded in memory (a cluster directory).
    fn with_hot_cache(mut self, bytes: u64) -> Session {
        self.cluster = self.cluster.with_hot_cache(bytes);
        self
    }

    fn open(args: &ClusterArgs) -> Result<Session, Failure> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Failure::new(
                    ErrorCode::Internal,
                    format!("cannot start the async runtime: {e}"),
                )
            })?;
        let cluster = match &args.data {
            Some(dir) => Cluster::open(dir),
            None => runtime.block_on(Cluster::sample()),
        }
        .map_err(|e| Failure::from(&e))?
        .with_plan_cache(!args.no_plan_cache);
        let roots = if args.ingest_roots.is_empty() {
            std::env::current_dir().map(|d| vec![d]).unwrap_or_default()
        } else {
            args.ingest_roots.clone()
        };
        let cluster = cluster
            .with_ingestion_roots(&roots)
            .map_err(|e| Failure::from(&e))?
            .with_ingestion_progress(progress::bar());
        let database = args.db.clone().or_else(|| cluster.default_database());
        let identity = args.principal.as_ref().map(|p| Identity {
            principal: p.clone(),
            groups: args.groups.clone(),
            ..Default::default()
        });
        let options = RequestOptions {
            database,
            identity,
            properties: args.properties.clone(),
            ..Default::default()
        };
        Ok(Session {
            runtime,
            cluster,
            options,
        })
    }

    /// Runs one request of `script`; the elapsed time covers the syntax check, planning and
    /// execution.
    fn execute(
        &self,
        script: &str,
        request: &ScriptRequest,
    ) -> (Result<QueryOutput, Failure>, Duration) {
        let start = Instant::now();
        let result = self.start(script, request).and_then(|stream| {
            self.runtime
                .block_on(stream.collect())
                .map_err(|e| Failure::from_runtime(&e, script, request))
        });
        (result, start.elapsed())
    }

    /// Checks one request's syntax, plans it and starts it; its rows come from [`Session::next`].
    fn start(&self, script: &str, request: &ScriptRequest) -> Result<QueryStream, Failure> {
        parse_cmd::check_syntax(script, request)?;
        self.runtime
            .block_on(self.cluster.execute_stream(&request.text, &self.options))
            .map_err(|e| Failure::from_runtime(&e, script, request))
    }

    /// The next batch of a started request's result.
    fn next(
        &self,
        stream: &mut QueryStream,
        script: &str,
        request: &ScriptRequest,
    ) -> Option<Result<RecordBatch, Failure>> {
        self.runtime
            .block_on(stream.next_batch())
            .map(|r| r.map_err(|e| Failure::from_runtime(&e, script, request)))
    }

    fn explain(&self, script: &str, request: &ScriptRequest, analyze: bool) -> Result<Explanation, Failure> {
        parse_cmd::check_syntax(script, request)?;
        let result = if analyze {
            self.runtime.block_on(self.cluster.explain_analyze(&request.text, &self.options))
        } else {
            self.runtime.block_on(self.cluster.explain(&request.text, &self.options))
        };
        result.map_err(|e| Failure::from_runtime(&e, script, request))
    }
}

/// Prints request results in one format, keeping the separators between them.
pub struct Printer {
    pub format: Format,
    pub timing: bool,
    printed: bool,
}

impl Printer {
    pub fn new(format: Format, timing: bool) -> Self {
        Printer {
            format,
            timing,
            printed: false,
        }
    }

    /// Prints one request's result (stdout) or failure (stderr, or stdout in JSON mode).
    pub fn print(
        &mut self,
        result: &Result<QueryOutput, Failure>,
        elapsed: Duration,
    ) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        let mut stderr = io::stderr().lock();
        let timed = self.timing.then_some(elapsed);
        match (self.format, result) {
            (Format::Json, Ok(output)) => {
                stdout.write_all(render::json_result(output, timed).as_bytes())?
            }
            (Format::Json, Err(failure)) => {
                stdout.write_all(render::json_error(failure, timed).as_bytes())?
            }
            (Format::Table | Format::Csv, Ok(output)) => {
                if self.printed {
                    stdout.write_all(b"\n")?;
                }
                let text = if self.format == Format::Table {
                    render::table(output)
                } else {
                    render::csv(output)
                };
                stdout.write_all(text.as_bytes())?;
                self.printed = true;
            }
            (Format::Table | Format::Csv, Err(failure)) => {
                stdout.flush()?;
                stderr.write_all(failure.to_text().as_bytes())?;
            }
        }
        stdout.flush()?;
        if let Some(elapsed) = timed
            && self.format != Format::Json
        {
            stderr.write_all(render::elapsed_text(elapsed).as_bytes())?;
        }
        Ok(())
    }
}

impl Printer {
    /// Runs one request and prints its result. CSV and JSON rows are written batch by batch
    /// as the engine produces them; a pretty table needs every row for its column widths.
    /// Returns whether the request succeeded.
    pub fn run_request(
        &mut self,
        session: &Session,
        script: &str,
        request: &ScriptRequest,
    ) -> io::Result<bool> {
        if self.format == Format::Table {
            let (result, elapsed) = session.execute(script, request);
            self.print(&result, elapsed)?;
            return Ok(result.is_ok());
        }
        let start = Instant::now();
        let mut stream = match session.start(script, request) {
            Ok(stream) => stream,
            Err(failure) => {
                self.print(&Err(failure), start.elapsed())?;
                return Ok(false);
            }
        };
        // Nothing is written before the first batch: a request that fails as it starts
        // prints as a plain error.
        let first = match session.next(&mut stream, script, request) {
            Some(Err(failure)) => {
                self.print(&Err(failure), start.elapsed())?;
                return Ok(false);
            }
            Some(Ok(batch)) => Some(batch),
            None => None,
        };
        let cols = render::columns(&stream.schema, first.as_ref());
        let types = render::types_of(&cols);
        let mut out = io::BufWriter::new(io::stdout().lock());
        let mut first_row = true;
        let format = self.format;
        let mut write = |out: &mut io::BufWriter<io::StdoutLock>, batch: &RecordBatch| {
            let text = match format {
                Format::Json => render::json_rows(batch, &types, &mut first_row),
                _ => render::csv_rows(batch, &types),
            };
            out.write_all(text.as_bytes())?;
            out.flush()
        };
        if self.format == Format::Json {
            out.write_all(render::json_head(&cols).as_bytes())?;
        } else {
            if self.printed {
                out.write_all(b"\n")?;
            }
            out.write_all(render::csv_header(&cols).as_bytes())?;
        }
        self.printed = true;
        let mut failure = None;
        if let Some(batch) = &first {
            write(&mut out, batch)?;
        }
        while let Some(next) = session.next(&mut stream, script, request) {
            match next {
                Ok(batch) => write(&mut out, &batch)?,
                Err(f) => {
                    failure = Some(f);
                    break;
                }
            }
        }
        let timed = self.timing.then(|| start.elapsed());
        if self.format == Format::Json {
            out.write_all(render::json_tail(failure.as_ref(), timed).as_bytes())?;
            out.flush()?;
        } else {
            out.flush()?;
            drop(out);
            let mut stderr = io::stderr().lock();
            if let Some(f) = &failure {
                stderr.write_all(f.to_text().as_bytes())?;
            }
            if let Some(elapsed) = timed {
                stderr.write_all(render::elapsed_text(elapsed).as_bytes())?;
            }
        }
        Ok(failure.is_none())
    }
}

fn run(
    args: &ClusterArgs,
    source: &SourceArgs,
    mut printer: Printer,
    keep_going: bool,
) -> Result<bool, Failure> {
    let script = source.read()?;
    let session = Session::open(args)?;
    let mut all_ok = true;
    for request in split_script(&script) {
        let ok = printer
            .run_request(&session, &script, &request)
            .map_err(output_failure)?;
        if !ok {
            all_ok = false;
            if !keep_going {
                break;
            }
        }
    }
    Ok(all_ok)
}

fn measure_overhead(
    args: &ClusterArgs,
    by: Option<String>,
    runs: u32,
    sizes: &[u32],
    chart: Option<&Path>,
    format: Format,
    source: &SourceArgs,
) -> Result<bool, Failure> {
    if args.principal.is_none() {
        return Err(Failure::new(
            ErrorCode::BadRequest,
            "overhead measures a principal's policies: give --as PRINCIPAL",
        ));
    }
    if format == Format::Csv {
        return Err(Failure::new(
            ErrorCode::BadRequest,
            "overhead reports as --format table or json",
        ));
    }
    let script = source.read()?;
    let requests = split_script(&script);
    let [request] = requests.as_slice() else {
        return Err(Failure::new(
            ErrorCode::BadRequest,
            format!("overhead measures one query; the script has {} requests", requests.len()),
        ));
    };
    parse_cmd::check_syntax(&script, request)?;
    let session = Session::open(args)?;
    let mut fractions: Vec<f64> = sizes.iter().map(|p| f64::from(*p) / 100.0).collect();
    fractions.sort_by(f64::total_cmp);
    fractions.dedup();
    let req = kustodian_runtime::overhead::OverheadRequest {
        query: request.text.clone(),
        options: session.options.clone(),
        measurer: by.map(|principal| Identity {
            principal,
            groups: Vec::new(),
            ..Default::default()
        }),
        runs: runs as usize,
        fractions,
    };
    let report = session
        .runtime
        .block_on(session.cluster.measure_overhead(&req))
        .map_err(|e| Failure::from_runtime(&e, &script, request))?;
    let text = match format {
        Format::Json => overhead::json(&report),
        _ => overhead::text(&report),
    };
    io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(output_failure)?;
    if let Some(path) = chart {
        overhead::chart(&report, path).map_err(|m| Failure::new(ErrorCode::Internal, m))?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(true)
}

fn generate(rows: u64, out: &Path, seed: u64, format: GenFormat) -> Result<bool, Failure> {
    let formats = kustodian_runtime::datagen::Formats {
        csv: format != GenFormat::Parquet,
        parquet: format != GenFormat::Csv,
    };
    let generated = kustodian_runtime::datagen::generate(out, rows, seed, formats)
        .map_err(|e| Failure::from(&e))?;
    for f in &generated.files {
        println!("wrote {}", f.display());
    }
    println!(
        "wrote {} (run it in a database to create and load the tables)",
        generated.script.display()
    );
    Ok(true)
}

fn explain(args: &ClusterArgs, source: &SourceArgs, analyze: bool) -> Result<bool, Failure> {
    let script = source.read()?;
    let session = Session::open(args)?;
    let mut stdout = io::stdout().lock();
    for (i, request) in split_script(&script).iter().enumerate() {
        let explanation = session.explain(&script, request, analyze)?;
        if i > 0 {
            stdout.write_all(b"\n").map_err(output_failure)?;
        }
        stdout
            .write_all(render::explanation(&explanation).as_bytes())
            .map_err(output_failure)?;
    }
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn properties() {
        assert_eq!(
            parse_property("query_force_row_level_security"),
            Ok(("query_force_row_level_security".into(), "true".into()))
        );
        assert_eq!(parse_property("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_property("a="), Ok(("a".into(), String::new())));
        assert!(parse_property("=x").is_err());
    }

    #[test]
    fn run_arguments() {
        let cli = Cli::try_parse_from([
            "kustodian",
            "run",
            "--db",
            "Sales",
            "--as",
            "aaduser=a@b.c",
            "--group",
            "g1",
            "--group",
            "g2",
            "--set",
            "x",
            "--format",
            "json",
            "--timing",
            "--keep-going",
            "-c",
            "print 1",
        ])
        .unwrap();
        let Command::Run {
            cluster,
            format,
            timing,
            keep_going,
            source,
        } = cli.command
        else {
            panic!("not run")
        };
        assert_eq!(cluster.groups, ["g1", "g2"]);
        assert_eq!(cluster.properties, [("x".to_string(), "true".to_string())]);
        assert_eq!((format, timing, keep_going), (Format::Json, true, true));
        assert_eq!(source.command.as_deref(), Some("print 1"));
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["kustodian", "run"][..],
            &["kustodian", "run", "-c", "x", "file.kql"],
            &["kustodian", "run", "--group", "g", "-c", "x"],
            &["kustodian", "run", "--format", "xml", "-c", "x"],
            &["kustodian", "init", "--data", "d"],
            &["kustodian", "parse"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
