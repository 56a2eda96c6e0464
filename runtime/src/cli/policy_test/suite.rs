//! Test directories: where suites and their cases are, the setup script, and the `//` directive
//! lines of a case file.

use std::path::{Path, PathBuf};

use kustodian_parser::ast::{self, CommandKind, Request, quote_string};
use kustodian_runtime::script::split_script;
use kustodian_runtime::{Cluster, ErrorCode, Identity, RequestOptions};

use crate::cli::report::Failure;

/// The setup script of a suite.
pub const SETUP: &str = "setup.kql";
/// Who runs a setup script unless it names an admin.
pub const DEFAULT_ADMIN: &str = "aaduser=admin@localhost";

/// A test directory: a setup script and the case files below it.
#[derive(Debug)]
pub struct Suite {
    pub dir: PathBuf,
    pub cases: Vec<PathBuf>,
}

/// The suites under `paths` (directories holding a `setup.kql`, found recursively, or case files,
/// whose suite is the nearest directory above them holding one), in path order.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Suite>, Failure> {
    let mut suites: Vec<Suite> = Vec::new();
    let mut add = |dir: PathBuf, case: Option<PathBuf>| -> Result<(), Failure> {
        let cases = match case {
            Some(c) => vec![c],
            None => cases_of(&dir)?,
        };
        match suites.iter_mut().find(|s| s.dir == dir) {
            Some(s) => s.cases.extend(cases),
            None => suites.push(Suite { dir, cases }),
        }
        Ok(())
    };
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read '{}': {e}", path.display())))?;
        if meta.is_file() {
            let dir = path
                .ancestors()
                .skip(1)
                .find(|d| d.join(SETUP).is_file())
                .ok_or_else(|| bad(format!("'{}' is in no test directory: no {SETUP} in a directory above it", path.display())))?;
            if path.file_name().is_some_and(|n| n == SETUP) {
                add(dir.to_path_buf(), None)?;
            } else {
                add(dir.to_path_buf(), Some(path.clone()))?;
            }
            continue;
        }
        let mut dirs = Vec::new();
        find_setups(path, &mut dirs)?;
        if dirs.is_empty() {
            return Err(bad(format!("no test directory under '{}': a test directory holds a {SETUP}", path.display())));
        }
        for d in dirs {
            add(d, None)?;
        }
    }
    for s in &mut suites {
        s.cases.sort();
        s.cases.dedup();
    }
    suites.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(suites)
}

fn bad(message: String) -> Failure {
    Failure::new(ErrorCode::BadRequest, message)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad(format!("cannot read directory '{}': {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

fn find_setups(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Failure> {
    if dir.join(SETUP).is_file() {
        out.push(dir.to_path_buf());
    }
    for entry in sorted_entries(dir)? {
        if entry.is_dir() && !entry.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            find_setups(&entry, out)?;
        }
    }
    Ok(())
}

/// The case files of a suite: every `.kql` file below its directory but the setup, except in
/// subdirectories that are suites of their own.
fn cases_of(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let mut out = Vec::new();
    collect_cases(dir, true, &mut out)?;
    Ok(out)
}

fn collect_cases(dir: &Path, top: bool, out: &mut Vec<PathBuf>) -> Result<(), Failure> {
    if !top && dir.join(SETUP).is_file() {
        return Ok(());
    }
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            collect_cases(&entry, false, out)?;
        } else if entry.extension().is_some_and(|x| x == "kql") && entry.file_name().is_none_or(|n| n != SETUP) {
            out.push(entry);
        }
    }
    Ok(())
}

/// A script file the setup runs: the setup itself or one it includes.
#[derive(Debug, Clone)]
pub struct SetupFile {
    pub path: PathBuf,
    pub text: String,
}

/// What a setup script says about its suite.
#[derive(Debug)]
pub struct Setup {
    pub admin: String,
    pub database: Option<String>,
    /// The included files, then the setup itself, in the order they run.
    pub files: Vec<SetupFile>,
}

/// Reads `setup.kql`'s directives (`// admin:`, `// database:`, `// include:`) and the files it
/// includes.
pub fn read_setup(dir: &Path) -> Result<Setup, Failure> {
    read_setup_file(&dir.join(SETUP))
}

/// Reads a setup script (a test directory's `setup.kql`, or any script `kustodian lint
/// --script` is given) with its directives and the files it includes.
pub fn read_setup_file(path: &Path) -> Result<Setup, Failure> {
    let path = path.to_path_buf();
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let text = read(&path)?;
    let mut setup = Setup { admin: DEFAULT_ADMIN.to_string(), database: None, files: Vec::new() };
    for (n, line) in leading_comments(&text) {
        let Some((key, value)) = directive(line, &SETUP_DIRECTIVES) else { continue };
        match key {
            "admin" => setup.admin = value.to_string(),
            "database" => setup.database = Some(value.to_string()),
            "include" => {
                let p = dir.join(value);
                let text = read(&p).map_err(|f| bad(format!("{}:{n}: {}", path.display(), f.message)))?;
                setup.files.push(SetupFile { path: p, text });
            }
            other => return Err(bad(format!("{}:{n}: unknown setup directive '{other}' (known: admin, database, include)", path.display()))),
        }
    }
    setup.files.push(SetupFile { path, text });
    Ok(setup)
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read '{}': {e}", path.display())))
}

/// The leading `//` lines of a file (1-based line numbers), up to the first other line.
fn leading_comments(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim().is_empty() || l.trim_start().starts_with("//"))
        .filter_map(|(i, l)| l.trim_start().strip_prefix("//").map(|c| (i + 1, c.trim())))
}

/// `key: value` where key is one lower-case word: a directive when the key is one of `known`
/// or a likely misspelling of one (then the caller reports it); other comments are prose.
fn directive<'a>(comment: &'a str, known: &[&str]) -> Option<(&'a str, &'a str)> {
    let (key, value) = comment.split_once(':')?;
    let word = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    (word && known.iter().any(|k| strsim::damerau_levenshtein(k, key) <= 2)).then(|| (key, value.trim()))
}

const SETUP_DIRECTIVES: [&str; 3] = ["admin", "database", "include"];
const CASE_DIRECTIVES: [&str; 6] = ["as", "groups", "set", "expect", "database", "order"];

/// Runs the setup's files as its admin on a new in-memory cluster. Relative paths of
/// `.ingest into table T ('path')` are taken from the directory of the file that names them;
/// ingestion may read below those directories only.
pub async fn build_cluster(setup: &Setup) -> Result<Cluster, String> {
    let roots: Vec<PathBuf> = setup.files.iter().filter_map(|f| f.path.parent().map(Path::to_path_buf)).collect();
    let cluster = Cluster::in_memory(&setup.admin, "admin of a kustodian test setup")
        .and_then(|c| c.with_ingestion_roots(&roots))
        .map_err(|e| e.to_string())?;
    let opts = RequestOptions { database: setup.database.clone(), ..Default::default() };
    // `// database: X` creates X unless a request of the setup does (an exported schema script,
    // `.show database X schema as csl script`, does not).
    if let Some(db) = &setup.database {
        let creates = setup.files.iter().flat_map(|f| split_script(&f.text)).any(|r| {
            matches!(kustodian_parser::parse(&r.text), Ok(Request::Command(c))
                if matches!(&c.kind, CommandKind::CreateDatabase { name, .. } if name.name.eq_ignore_ascii_case(db)))
        });
        if !creates {
            cluster
                .execute(&format!(".create database {}", ast::quote_ident(db)), &RequestOptions::default())
                .await
                .map_err(|e| format!("cannot create database '{db}': {e}"))?;
        }
    }
    for file in &setup.files {
        let base = file.path.parent().unwrap_or(Path::new("."));
        for request in split_script(&file.text) {
            let text = with_absolute_sources(&request.text, base);
            // `.create database X` first: the requests after it run in X.
            let opts = match (&opts.database, kustodian_parser::parse(&text)) {
                (None, Ok(Request::Command(c))) if matches!(c.kind, CommandKind::CreateDatabase { .. }) => opts.clone(),
                _ => RequestOptions { database: opts.database.clone().or_else(|| cluster.default_database()), ..opts.clone() },
            };
            cluster.execute(&text, &opts).await.map_err(|e| {
                let (line, column) = line_col(&file.text, request.offset);
                format!("{}:{line}:{column}: setup request failed: error[{}]: {e}", file.path.display(), e.code().as_str())
            })?;
        }
    }
    Ok(cluster)
}

/// `.ingest into table T ('data/x.csv')` with each relative source made absolute from `base`.
fn with_absolute_sources(text: &str, base: &Path) -> String {
    let Ok(Request::Command(cmd)) = kustodian_parser::parse(text) else { return text.to_string() };
    let CommandKind::Ingest { sources, .. } = &cmd.kind else { return text.to_string() };
    let mut out = text.to_string();
    let mut literals: Vec<&ast::Literal> = sources.iter().collect();
    literals.sort_by_key(|l| std::cmp::Reverse(l.span.start));
    for l in literals {
        let ast::LiteralKind::String(path) = &l.kind else { continue };
        if Path::new(path).is_absolute() || path.contains("://") {
            continue;
        }
        let absolute = base.join(path);
        if let Some(range) = out.get(l.span.start..l.span.end).map(|_| l.span.start..l.span.end) {
            out.replace_range(range, &quote_string(&absolute.display().to_string()));
        }
    }
    out
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// What a case expects of one principal's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Rows(usize),
    AtLeast(usize),
    Empty,
    NonEmpty,
    Error(Option<String>),
    Ok,
}

impl Expect {
    fn parse(text: &str) -> Option<Expect> {
        let words: Vec<&str> = text.split_whitespace().collect();
        Some(match words.as_slice() {
            ["rows", n] => Expect::Rows(n.parse().ok()?),
            ["rows", ">=", n] => Expect::AtLeast(n.parse().ok()?),
            ["empty"] => Expect::Empty,
            ["nonempty"] => Expect::NonEmpty,
            ["ok"] => Expect::Ok,
            ["error"] => Expect::Error(None),
            ["error", code] => Expect::Error(Some((*code).to_string())),
            _ => return None,
        })
    }

    /// Why a run does not meet this expectation, if it does not.
    pub fn check(&self, outcome: &Result<usize, (String, String)>) -> Option<String> {
        match (self, outcome) {
            (Expect::Error(None), Err(_)) | (Expect::Ok, Ok(_)) => None,
            (Expect::Error(Some(code)), Err((c, _))) if c.eq_ignore_ascii_case(code) => None,
            (Expect::Error(Some(code)), Err((c, m))) => Some(format!("expected error {code}, got error {c}: {m}")),
            (Expect::Error(_), Ok(n)) => Some(format!("expected an error, got {n} rows")),
            (_, Err((c, m))) => Some(format!("expected {}, got error {c}: {m}", self.describe())),
            (Expect::Rows(want), Ok(n)) => (want != n).then(|| format!("expected {want} rows, got {n}")),
            (Expect::AtLeast(want), Ok(n)) => (n < want).then(|| format!("expected at least {want} rows, got {n}")),
            (Expect::Empty, Ok(n)) => (*n != 0).then(|| format!("expected no rows, got {n}")),
            (Expect::NonEmpty, Ok(n)) => (*n == 0).then(|| "expected rows, got none".to_string()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Expect::Rows(n) => format!("{n} rows"),
            Expect::AtLeast(n) => format!("at least {n} rows"),
            Expect::Empty => "no rows".into(),
            Expect::NonEmpty => "rows".into(),
            Expect::Ok => "success".into(),
            Expect::Error(Some(c)) => format!("error {c}"),
            Expect::Error(None) => "an error".into(),
        }
    }
}

/// One principal of a case: who, the request properties, what is expected.
#[derive(Debug, Clone)]
pub struct Run {
    pub identity: Identity,
    pub properties: Vec<(String, String)>,
    pub expect: Vec<Expect>,
}

impl Run {
    /// `aaduser=x +aadgroup=g`: how reports name the run.
    pub fn label(&self) -> String {
        let mut s = self.identity.principal.clone();
        for g in &self.identity.groups {
            s.push_str(" +");
            s.push_str(g);
        }
        for (k, v) in &self.properties {
            s.push_str(&format!(" [{k}={v}]"));
        }
        s
    }
}

/// A case file: its query and the principals it runs as.
#[derive(Debug)]
pub struct Case {
    pub runs: Vec<Run>,
    pub database: Option<String>,
    /// Keep the engine's row order in the snapshot (by default rows are sorted).
    pub keep_order: bool,
}

/// Reads a case's directives. Before the first `// as:` they apply to every principal; after
/// one, to that principal. Without `// as:` the case runs as the setup's admin.
pub fn parse_case(path: &Path, text: &str, admin: &str) -> Result<Case, String> {
    let mut shared_props = Vec::new();
    let mut shared_expect = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut database = None;
    let mut keep_order = false;
    let here = |n: usize| format!("{}:{n}", path.display());
    for (n, line) in leading_comments(text) {
        let Some((key, value)) = directive(line, &CASE_DIRECTIVES) else { continue };
        match key {
            "as" => {
                let mut parts = value.split(';').map(str::trim).filter(|p| !p.is_empty());
                let principal = parts.next().ok_or_else(|| format!("{}: `// as:` needs a principal FQN", here(n)))?.to_string();
                let groups = parts.map(str::to_string).collect();
                runs.push(Run { identity: Identity { principal, groups, ..Default::default() }, properties: Vec::new(), expect: Vec::new() });
            }
            "groups" => {
                let run = runs.last_mut().ok_or_else(|| format!("{}: `// groups:` belongs to the `// as:` line above it, and there is none", here(n)))?;
                run.identity.groups.extend(value.split([',', ';']).map(str::trim).filter(|g| !g.is_empty()).map(str::to_string));
            }
            "set" => {
                let (k, v) = value.split_once('=').unwrap_or((value, "true"));
                if k.trim().is_empty() {
                    return Err(format!("{}: `// set:` needs NAME[=VALUE]", here(n)));
                }
                let prop = (k.trim().to_string(), v.trim().to_string());
                match runs.last_mut() {
                    Some(run) => run.properties.push(prop),
                    None => shared_props.push(prop),
                }
            }
            "expect" => {
                let e = Expect::parse(value).ok_or_else(|| {
                    format!("{}: cannot read `// expect: {value}` (rows N | rows >= N | empty | nonempty | ok | error [CODE])", here(n))
                })?;
                match runs.last_mut() {
                    Some(run) => run.expect.push(e),
                    None => shared_expect.push(e),
                }
            }
            "database" => database = Some(value.to_string()),
            "order" => match value {
                "keep" => keep_order = true,
                "sorted" => keep_order = false,
                _ => return Err(format!("{}: `// order:` is keep or sorted", here(n))),
            },
            other => {
                return Err(format!("{}: unknown directive '{other}' (known: as, groups, set, expect, database, order)", here(n)));
            }
        }
    }
    if runs.is_empty() {
        runs.push(Run { identity: Identity::new(admin), properties: Vec::new(), expect: Vec::new() });
    }
    for run in &mut runs {
        let mut props = shared_props.clone();
        props.append(&mut run.properties);
        run.properties = props;
        let mut expect = shared_expect.clone();
        expect.append(&mut run.expect);
        run.expect = expect;
    }
    Ok(Case { runs, database, keep_order })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn directives_scope_to_the_principal_above_them() {
        let text = "// Sales of the caller.\n// set: query_now=2024-01-01\n// expect: nonempty\n// as: aaduser=a@x.com\n// expect: rows 3\n// as: aaduser=b@x.com; aadgroup=g1\n// groups: aadgroup=g2, aadgroup=g3\n// set: x=1\n// expect: error Forbidden\nT | count\n";
        let case = parse_case(Path::new("c.kql"), text, "aaduser=admin").unwrap();
        assert_eq!(case.runs.len(), 2);
        assert_eq!(case.runs[0].identity.principal, "aaduser=a@x.com");
        assert_eq!(case.runs[0].expect, [Expect::NonEmpty, Expect::Rows(3)]);
        assert_eq!(case.runs[0].properties, [("query_now".to_string(), "2024-01-01".to_string())]);
        assert_eq!(case.runs[1].identity.groups, ["aadgroup=g1", "aadgroup=g2", "aadgroup=g3"]);
        assert_eq!(case.runs[1].properties.len(), 2);
        assert_eq!(case.runs[1].expect, [Expect::NonEmpty, Expect::Error(Some("Forbidden".into()))]);
        assert_eq!(case.runs[1].label(), "aaduser=b@x.com +aadgroup=g1 +aadgroup=g2 +aadgroup=g3 [query_now=2024-01-01] [x=1]");
    }

    #[test]
    fn bad_directives_are_errors_with_their_line() {
        for (text, want) in [
            ("// expext: rows 3\nT", "c.kql:1: unknown directive 'expext'"),
            ("// groups: g\nT", "c.kql:1: `// groups:` belongs"),
            ("// as: a\n// expect: rows three\nT", "c.kql:2: cannot read `// expect: rows three`"),
        ] {
            let e = parse_case(Path::new("c.kql"), text, "admin").unwrap_err();
            assert!(e.starts_with(want), "{e}");
        }
        // Prose comments are not directives; neither are lines after the query starts.
        let case = parse_case(Path::new("c.kql"), "// Note: own rows only\n// request_block_row_level_security: refused\nT\n// as: x\n", "aaduser=admin").unwrap();
        assert_eq!(case.runs[0].identity.principal, "aaduser=admin");
    }

    #[test]
    fn expectations() {
        assert_eq!(Expect::Rows(2).check(&Ok(2)), None);
        assert!(Expect::Rows(2).check(&Ok(3)).unwrap().contains("expected 2 rows, got 3"));
        assert!(Expect::Empty.check(&Err(("Forbidden".into(), "no".into()))).unwrap().contains("got error Forbidden"));
        assert_eq!(Expect::Error(Some("forbidden".into())).check(&Err(("Forbidden".into(), String::new()))), None);
        assert!(Expect::Error(None).check(&Ok(0)).is_some());
    }

    #[test]
    fn relative_ingestion_sources_become_absolute() {
        let t = with_absolute_sources(".ingest into table T ('data/x.csv', '/abs/y.csv') with (format='csv')", Path::new("/suite"));
        assert_eq!(t, ".ingest into table T (\"/suite/data/x.csv\", '/abs/y.csv') with (format='csv')");
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
