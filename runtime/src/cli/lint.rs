//! `kustodian lint`: the findings of `kustodian_runtime::lint` as text (code frames with a
//! caret), JSON or SARIF 2.1.0.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use kustodian_parser::ast::Span;
use kustodian_parser::frame::Report;
use kustodian_runtime::lint::{Finding, Known, RULES};
use kustodian_runtime::server::directory::Directory;
use kustodian_runtime::{Cluster, ErrorCode, Identity};
use serde_json::{Value, json};

use super::output_failure;
use super::policy_test::shown;
use super::policy_test::suite::{self, SetupFile};
use super::report::Failure;

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Cluster directory to lint (default: the bundled sample database).
    #[arg(long, value_name = "DIR", conflicts_with = "script")]
    data: Option<PathBuf>,
    /// A schema script to lint instead: its commands run on a new in-memory cluster (with the
    /// `// admin:`, `// database:` and `// include:` directives of a test setup).
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Database to lint (default: the cluster's default database).
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
    /// Who lints: a Database Admin (default: the cluster's first admin, or the script's).
    #[arg(long = "as", value_name = "PRINCIPAL")]
    principal: Option<String>,
    /// A directory of users and groups (the JSON `serve --directory` reads): principals it
    /// knows are not unknown, and its group members are evaluated as members.
    #[arg(long, value_name = "FILE")]
    directory: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = LintFormat::Text)]
    format: LintFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LintFormat {
    Text,
    Json,
    Sarif,
}

/// Where a finding points: a file and the byte span in it, or its own text.
struct Located {
    origin: String,
    /// Set when the origin is a file of the script.
    file: Option<String>,
    text: String,
    span: Span,
}

fn locate(f: &Finding, files: &[SetupFile]) -> Located {
    for file in files {
        if let Some(at) = file.text.find(&f.text) {
            return Located {
                origin: shown(&file.path),
                file: Some(shown(&file.path)),
                text: file.text.clone(),
                span: Span::new(at + f.start, at + f.end),
            };
        }
        // A role assignment or a view, rebuilt as a command: its principal or name as the
        // script wrote it.
        if (f.source == "role assignment" || f.source.starts_with("materialized view "))
            && let Some(principal) = f.text.get(f.start..f.end)
            && let Some(at) = file.text.to_lowercase().find(&principal.to_lowercase())
        {
            return Located {
                origin: shown(&file.path),
                file: Some(shown(&file.path)),
                text: file.text.clone(),
                span: Span::new(at, at + principal.len()),
            };
        }
    }
    Located { origin: format!("<{}>", f.source), file: None, text: f.text.clone(), span: Span::new(f.start, f.end) }
}

pub fn lint(args: &LintArgs) -> Result<bool, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(ErrorCode::Internal, format!("cannot start the async runtime: {e}")))?;
    let mut known = Known::default();
    let mut files = Vec::new();
    let (cluster, by, database) = match (&args.data, &args.script) {
        (Some(dir), _) => {
            let c = Cluster::open(dir).map_err(|e| Failure::from(&e))?;
            let by = args.principal.clone().unwrap_or_else(|| c.admin());
            let db = args.db.clone().or_else(|| c.default_database());
            (c, by, db)
        }
        (None, Some(script)) => {
            let setup = suite::read_setup_file(script)?;
            let c = runtime.block_on(suite::build_cluster(&setup)).map_err(|e| Failure::new(ErrorCode::BadRequest, e))?;
            files = setup.files.clone();
            let by = args.principal.clone().unwrap_or_else(|| setup.admin.clone());
            let db = args.db.clone().or(setup.database.clone()).or_else(|| c.default_database());
            (c, by, db)
        }
        (None, None) => {
            let c = runtime.block_on(Cluster::sample()).map_err(|e| Failure::from(&e))?;
            files = kustodian_runtime::sample::SCRIPTS
                .iter()
                .map(|(path, text)| SetupFile { path: PathBuf::from(path), text: text.to_string() })
                .collect();
            known = Directory::parse(kustodian_runtime::sample::DIRECTORY)
                .map_err(|e| Failure::new(ErrorCode::Internal, format!("the sample's directory: {e}")))?
                .known();
            let by = args.principal.clone().unwrap_or_else(|| kustodian_runtime::sample::SAMPLE_ADMIN.to_string());
            let db = args.db.clone().or_else(|| c.default_database());
            (c, by, db)
        }
    };
    if let Some(path) = &args.directory {
        known = Directory::load(path).map_err(|e| Failure::new(ErrorCode::BadRequest, e.to_string()))?.known();
    }
    let database = database.ok_or_else(|| Failure::new(ErrorCode::BadRequest, "the cluster has no database to lint"))?;
    let findings = runtime.block_on(cluster.lint(&database, &Identity::new(by), &known)).map_err(|e| Failure::from(&e))?;
    let text = match args.format {
        LintFormat::Text => text_report(&findings, &files),
        LintFormat::Json => format!("{}\n", json_report(&findings, &files)),
        LintFormat::Sarif => format!("{:#}\n", sarif(&findings, &files)),
    };
    std::io::stdout().lock().write_all(text.as_bytes()).map_err(output_failure)?;
    Ok(findings.is_empty())
}

fn text_report(findings: &[Finding], files: &[SetupFile]) -> String {
    let mut out = String::new();
    for f in findings {
        let at = locate(f, files);
        let code = format!("{} {}", f.rule.code, f.rule.name);
        let frame = Report { code: Some(&code), message: &f.message, span: at.span, label: f.rule.summary }.render(&at.origin, &at.text);
        let mut text = frame.text;
        if let Some(rest) = text.strip_prefix("error") {
            text = format!("{}{rest}", f.rule.severity.as_str());
        }
        out.push_str(&text);
        out.push_str(&format!("  = why: {}\n\n", f.rule.why));
    }
    let errors = findings.iter().filter(|f| f.rule.severity == kustodian_runtime::lint::Severity::Error).count();
    if findings.is_empty() {
        out.push_str("no findings\n");
    } else {
        out.push_str(&format!(
            "{} finding{}: {errors} error{}, {} warning{}\n",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" },
            if errors == 1 { "" } else { "s" },
            findings.len() - errors,
            if findings.len() - errors == 1 { "" } else { "s" }
        ));
    }
    out
}

/// 1-based line and column of the start and end of a located span.
fn positions(at: &Located) -> (usize, usize, usize, usize) {
    let (l1, c1) = suite::line_col(&at.text, at.span.start);
    let (l2, c2) = suite::line_col(&at.text, at.span.end);
    (l1, c1, l2, c2)
}

fn json_report(findings: &[Finding], files: &[SetupFile]) -> Value {
    let items: Vec<Value> = findings
        .iter()
        .map(|f| {
            let at = locate(f, files);
            let (line, column, end_line, end_column) = positions(&at);
            json!({
                "code": f.rule.code,
                "rule": f.rule.name,
                "severity": f.rule.severity.as_str(),
                "message": f.message,
                "why": f.rule.why,
                "source": f.source,
                "file": at.file,
                "line": line,
                "column": column,
                "end_line": end_line,
                "end_column": end_column,
                "text": at.text.get(at.span.start..at.span.end).unwrap_or(""),
            })
        })
        .collect();
    json!({ "findings": items })
}

/// SARIF 2.1.0, as code-scanning tools read it.
fn sarif(findings: &[Finding], files: &[SetupFile]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.code,
                "name": r.name,
                "shortDescription": { "text": r.summary },
                "fullDescription": { "text": r.why },
                "defaultConfiguration": { "level": r.severity.as_str() },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let at = locate(f, files);
            let (line, column, end_line, end_column) = positions(&at);
            let region = json!({
                "startLine": line, "startColumn": column, "endLine": end_line, "endColumn": end_column,
                "snippet": { "text": at.text.get(at.span.start..at.span.end).unwrap_or("") },
            });
            let location = match &at.file {
                Some(file) => json!({ "physicalLocation": { "artifactLocation": { "uri": file }, "region": region } }),
                None => json!({ "logicalLocations": [{ "fullyQualifiedName": f.source, "kind": "object" }], "message": { "text": format!("{}:{line}:{column}", f.source) } }),
            };
            json!({
                "ruleId": f.rule.code,
                "ruleIndex": RULES.iter().position(|r| r.code == f.rule.code),
                "level": f.rule.severity.as_str(),
                "message": { "text": f.message },
                "locations": [location],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": { "name": "kustodian lint", "rules": rules } },
            "results": results,
        }],
    })
}
