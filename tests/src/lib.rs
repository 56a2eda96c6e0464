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
