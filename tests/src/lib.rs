//! Test support: corpus runners and the helpers the request-API tests share.

/// The async runtime the request-API tests drive the cluster with, shared by a test binary.
#[allow(clippy::unwrap_used)]
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap())
}

/// A query result's cells as displayed strings, row by row.
#[allow(clippy::unwrap_used)]
pub fn cells(out: &kustodian_runtime::QueryOutput) -> Vec<Vec<String>> {
    use datafusion::arrow::util::display::array_value_to_string;
    let mut v = Vec::new();
    for b in &out.batches {
        for r in 0..b.num_rows() {
            v.push(b.columns().iter().map(|c| array_value_to_string(c, r).unwrap()).collect());
        }
    }
    v
}

/// One request per `corpus/queries/*.kql` case and principal: the case's text in its database
/// (`// db:` directive, default `ContosoSales`), as the sample admin (no identity) and as the
/// sales person `alice`, whose plans hold row-level security barriers. For the tests that
/// compare how a plan is optimized; cases that fail to bind are the caller's to skip.
pub struct CorpusRequest {
    pub path: std::path::PathBuf,
    pub text: String,
    pub who: Option<&'static str>,
    pub opts: kustodian_runtime::RequestOptions,
}

#[allow(clippy::unwrap_used)]
pub fn corpus_requests_by_principal() -> Vec<CorpusRequest> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/queries");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "kql")).collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let db = text.lines().find_map(|l| l.trim_start().strip_prefix("// db:")).map(|d| d.trim().to_string());
        for who in [None, Some("aaduser=alice@contoso.com")] {
            let opts = kustodian_runtime::RequestOptions {
                database: Some(db.clone().unwrap_or_else(|| "ContosoSales".into())),
                identity: who.map(|p| kustodian_runtime::Identity { principal: p.into(), groups: vec![], ..Default::default() }),
                ..kustodian_runtime::RequestOptions::default()
            };
            out.push(CorpusRequest { path: path.clone(), text: text.clone(), who, opts });
        }
    }
    out
}
