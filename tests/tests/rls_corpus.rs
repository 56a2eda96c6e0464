//! RLS corpus: every `corpus/rls/*.kql` case runs as each principal named in its `// as:`
//! directives (at least two), and one insta snapshot per case records, for each principal, the
//! effective query (policies substituted), the policies applied, and the result or error.
//!
//! Directives (leading `//` lines): `// as: FQN[; GROUP...]` (one per principal),
//! `// set: NAME[=VALUE]` (request properties).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kustodian_tests::rt;
use std::path::Path;

use kustodian_runtime::{Cluster, Identity, QueryOutput, RequestOptions};

fn render(out: &QueryOutput) -> String {
    use datafusion::arrow::util::display::array_value_to_string;
    let mut s = format!("{}\n", out.schema.to_kql());
    for b in &out.batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b.columns().iter().map(|c| array_value_to_string(c, r).unwrap()).collect();
            s.push_str(&cells.join(" | "));
            s.push('\n');
        }
    }
    s
}

struct Case {
    principals: Vec<Identity>,
    properties: Vec<(String, String)>,
    text: String,
}

fn parse_case(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap();
    let mut principals = Vec::new();
    let mut properties = Vec::new();
    for line in text.lines() {
        let Some(d) = line.trim().strip_prefix("//") else { break };
        let d = d.trim();
        if let Some(rest) = d.strip_prefix("as:") {
            let mut parts = rest.split(';').map(str::trim).filter(|p| !p.is_empty());
            let principal = parts.next().unwrap().to_string();
            let groups = parts.map(str::to_string).collect();
            principals.push(Identity { principal, groups, ..Default::default() });
        } else if let Some(rest) = d.strip_prefix("set:") {
            let rest = rest.trim();
            let (k, v) = rest.split_once('=').unwrap_or((rest, "true"));
            properties.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Case { principals, properties, text }
}

/// Every case as every principal over the sample with its tables on disk: the same effective
/// query, policies and answer as in memory.
#[test]
fn rls_corpus_on_disk() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/rls");
    let memory = rt().block_on(Cluster::sample()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let disk = rt().block_on(Cluster::sample_in(&tmp.path().join("sample"))).unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "kql") {
            continue;
        }
        let case = parse_case(&path);
        for id in &case.principals {
            let opts = RequestOptions {
                database: Some("ContosoSales".into()),
                identity: Some(id.clone()),
                properties: case.properties.clone(),
                ..Default::default()
            };
            let run = |c: &Cluster| match rt().block_on(c.execute(&case.text, &opts)) {
                Ok(out) => render(&out),
                Err(e) => format!("error[{}]: {e}", e.code().as_str()),
            };
            let plan = |c: &Cluster| rt().block_on(c.explain(&case.text, &opts)).map(|e| (e.effective_kql, e.policies)).map_err(|e| e.to_string());
            assert_eq!(run(&memory), run(&disk), "{} as {}", path.display(), id.principal);
            assert_eq!(plan(&memory), plan(&disk), "{} as {}", path.display(), id.principal);
            n += 1;
        }
    }
    assert!(n >= 40, "only {n} runs");
}

#[test]
fn rls_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/rls");
    let n = std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "kql")).count();
    assert!(n >= 20, "expected at least 20 RLS cases in {}, found {n}", dir.display());
    let cluster = rt().block_on(Cluster::sample()).unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir.join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        insta::glob!("../../corpus/rls", "*.kql", |path| {
            let case = parse_case(path);
            assert!(case.principals.len() >= 2, "{}: an RLS case runs as at least two principals", path.display());
            let mut snap = String::new();
            let mut outputs = Vec::new();
            for id in &case.principals {
                let opts = RequestOptions {
                    database: Some("ContosoSales".into()),
                    identity: Some(id.clone()),
                    properties: case.properties.clone(),
                    ..Default::default()
                };
                snap.push_str(&format!("=== as {}{} ===\n", id.principal, id.groups.iter().map(|g| format!(" +{g}")).collect::<String>()));
                match rt().block_on(cluster.explain(&case.text, &opts)) {
                    Ok(ex) => {
                        snap.push_str(&format!("effective query:\n{}\npolicies:\n", ex.effective_kql));
                        for p in &ex.policies {
                            snap.push_str(&format!("  {p}\n"));
                        }
                    }
                    Err(e) => snap.push_str(&format!("explain: error[{}]: {e}\n", e.code().as_str())),
                }
                let result = rt().block_on(cluster.execute(&case.text, &opts));
                match &result {
                    Ok(out) => snap.push_str(&format!("result:\n{}", render(out))),
                    Err(e) => {
                        let msg = e.to_string();
                        // An error shown to a restricted principal never carries row data.
                        assert!(
                            !msg.contains("aaduser=bob") || id.principal.contains("bob"),
                            "{}: error reveals another principal's data: {msg}",
                            path.display()
                        );
                        snap.push_str(&format!("result: error[{}]: {msg}\n", e.code().as_str()));
                    }
                }
                outputs.push(result.map(|o| render(&o)).map_err(|e| e.to_string()));
                snap.push('\n');
            }
            insta::with_settings!({ description => case.text.trim_end() }, {
                insta::assert_snapshot!("rls", snap);
            });
        });
    });
}
