//! `kustodian test --coverage`: which cases and principals exercised each policy, and which way
//! each of its identity-dependent branches went (see `kustodian_runtime::coverage`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use kustodian_runtime::coverage::{Outcome, PolicyBranches};
use kustodian_runtime::{Cluster, Identity, RequestOptions};

use super::Exercise;
use super::suite::{Setup, line_col};

/// Where a branch's text is: `file:line:column` in the setup files when its source (the
/// policy's text, a function's body) appears there as written; else in the source itself.
fn location(setup: &Setup, policy: &PolicyBranches, source: usize, offset: usize) -> String {
    let Some(src) = policy.sources.get(source) else { return String::new() };
    for file in &setup.files {
        if let Some(at) = file.text.find(&src.text) {
            let (line, column) = line_col(&file.text, at + offset);
            return format!("{}:{line}:{column}", super::shown(&file.path));
        }
    }
    let (line, column) = line_col(&src.text, offset);
    format!("<{} of {}>:{line}:{column}", src.name, policy.entity)
}

/// The coverage report of one suite.
pub async fn report(cluster: &Cluster, setup: &Setup, by: &Identity, exercises: &BTreeMap<String, Vec<Exercise>>) -> String {
    let mut s = String::from("\ncoverage of row_level_security policies:\n");
    let databases: BTreeSet<String> = exercises.values().flatten().map(|e| e.database.clone()).collect();
    let databases: BTreeSet<String> =
        if databases.is_empty() { cluster.default_database().into_iter().collect() } else { databases };
    let mut uncovered = Vec::new();
    let (mut total, mut covered) = (0, 0);
    for db in &databases {
        let policies = match cluster.policy_branches(db, by) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(s, "  database {db}: cannot analyse its policies: {e}");
                continue;
            }
        };
        for policy in &policies {
            let runs = exercises.get(&policy.entity).map(Vec::as_slice).unwrap_or_default();
            let _ = writeln!(s, "  {}{}", policy.entity, if policy.enabled { "" } else { " (disabled)" });
            if runs.is_empty() {
                let _ = writeln!(s, "    exercised by no case");
            } else {
                let mut by_case: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
                for e in runs {
                    by_case.entry(&e.case).or_default().insert(e.run.label());
                }
                let cases: Vec<String> =
                    by_case.iter().map(|(c, who)| format!("{c} ({})", who.iter().cloned().collect::<Vec<_>>().join(", "))).collect();
                let _ = writeln!(s, "    exercised by {}", cases.join("; "));
            }
            for n in &policy.not_analysed {
                let _ = writeln!(s, "    not analysed: {n}");
            }
            // Each distinct principal (with its request properties) once.
            let mut distinct: Vec<&Exercise> = Vec::new();
            for e in runs {
                if !distinct.iter().any(|d| d.run.label() == e.run.label() && d.database == e.database) {
                    distinct.push(e);
                }
            }
            for branch in &policy.branches {
                total += 1;
                let (mut yes, mut no, mut failed) = (BTreeSet::new(), BTreeSet::new(), Vec::new());
                for e in &distinct {
                    let opts = RequestOptions {
                        database: Some(e.database.clone()),
                        identity: Some(e.run.identity.clone()),
                        properties: e.run.properties.clone(),
                        ..Default::default()
                    };
                    match cluster.probe_branch(policy, branch, &opts, by).await {
                        Ok(Outcome { made_true, made_false }) => {
                            if made_true {
                                yes.insert(e.run.label());
                            }
                            if made_false {
                                no.insert(e.run.label());
                            }
                        }
                        Err(err) => failed.push(format!("{}: {err}", e.run.label())),
                    }
                }
                let (t, f) = branch.kind.outcomes();
                let at = location(setup, policy, branch.source, branch.start);
                let text = one_line(branch.text(policy));
                let mark = if !yes.is_empty() && !no.is_empty() { "ok" } else { "--" };
                let _ = writeln!(s, "    [{mark}] {at}  {} `{text}`", branch.kind.describe());
                let list = |set: &BTreeSet<String>| if set.is_empty() { "nobody".to_string() } else { set.iter().cloned().collect::<Vec<_>>().join(", ") };
                let _ = writeln!(s, "         {t}: {}; {f}: {}", list(&yes), list(&no));
                for fail in &failed {
                    let _ = writeln!(s, "         not evaluated as {fail}");
                }
                if !yes.is_empty() && !no.is_empty() {
                    covered += 1;
                } else {
                    let missing = match (yes.is_empty(), no.is_empty()) {
                        (true, true) => format!("never evaluated ({t} / {f})"),
                        (true, false) => format!("never {t}"),
                        _ => format!("never {f}"),
                    };
                    uncovered.push(format!("{at}: {} `{text}` of the policy of {}: {missing}", branch.kind.describe(), policy.entity));
                }
            }
        }
    }
    let _ = writeln!(s, "  {covered} of {total} branches taken both ways");
    if !uncovered.is_empty() {
        let _ = writeln!(s, "uncovered branches:");
        for u in uncovered {
            let _ = writeln!(s, "  {u}");
        }
    }
    s
}

/// A branch's text on one line, shortened for the report.
fn one_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 90 { format!("{}…", flat.chars().take(89).collect::<String>()) } else { flat }
}
