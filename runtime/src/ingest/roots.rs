//! Which local files `.ingest into table T ('path')` may read: only files below a configured
//! ingestion root (the CLI's working directory by default; none for a library or server that
//! configures none), never anything in the cluster's own directory (its metadata and the extents
//! of tables the caller may not read), with symbolic links resolved before the check.

use std::path::{Component, Path, PathBuf};

use crate::error::{Result, RuntimeError};

/// The directories ingestion may read below, canonical.
#[derive(Debug, Clone, Default)]
pub struct IngestionRoots {
    roots: Vec<PathBuf>,
}

impl IngestionRoots {
    /// Roots from directories that must exist (they are canonicalized now).
    pub fn new(dirs: &[PathBuf]) -> Result<IngestionRoots> {
        let mut roots = Vec::new();
        for d in dirs {
            let c = d.canonicalize().map_err(|e| {
                RuntimeError::bad_request(format!("ingestion root '{}' is not a readable directory: {e}", d.display()))
            })?;
            if !c.is_dir() {
                return Err(RuntimeError::bad_request(format!("ingestion root '{}' is not a directory", d.display())));
            }
            roots.push(c);
        }
        Ok(IngestionRoots { roots })
    }

    /// The file `source` names, if ingestion may read it. Refused, without touching the file
    /// system, when the path is not below a root as written; then again after resolving
    /// symbolic links, and when it lies in the cluster directory. The error names the rule and
    /// the path as given, never anything read from the file.
    pub fn resolve(&self, source: &str, cluster_dir: Option<&Path>) -> Result<PathBuf> {
        let refuse = |why: &str| {
            RuntimeError::Forbidden(format!(
                "ingestion from '{source}' is not allowed: {why} (local ingestion reads only files below the configured ingestion \
                 roots{}, and never the cluster directory)",
                if self.roots.is_empty() { ", and none is configured".to_string() } else { String::new() }
            ))
        };
        if self.roots.is_empty() {
            return Err(refuse("no ingestion root is configured"));
        }
        let given = Path::new(source);
        let absolute = if given.is_absolute() {
            given.to_path_buf()
        } else {
            std::env::current_dir().map_err(RuntimeError::Io)?.join(given)
        };
        let lexical = normalize(&absolute);
        if !self.roots.iter().any(|r| lexical.starts_with(r)) {
            return Err(refuse("the path is outside every ingestion root"));
        }
        let real = absolute
            .canonicalize()
            .map_err(|e| RuntimeError::bad_request(format!("cannot open ingestion source '{source}': {e}")))?;
        if !self.roots.iter().any(|r| real.starts_with(r)) {
            return Err(refuse("the path leads (through a symbolic link) outside every ingestion root"));
        }
        if let Some(dir) = cluster_dir.and_then(|d| d.canonicalize().ok())
            && real.starts_with(&dir)
        {
            return Err(refuse("the path is inside the cluster directory"));
        }
        Ok(real)
    }
}

/// `a/./b/../c` → `a/c`, without the file system (symbolic links are checked afterwards).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_roots_symlinks_and_the_cluster_directory_are_refused() -> Result<()> {
        let base = tempfile::tempdir()?;
        let root = base.path().join("root");
        let cluster = root.join("cluster");
        std::fs::create_dir_all(&cluster)?;
        std::fs::write(root.join("ok.csv"), "1\n")?;
        std::fs::write(base.path().join("secret.csv"), "s\n")?;
        std::fs::write(cluster.join("metadata.json"), "{}")?;
        #[cfg(unix)]
        std::os::unix::fs::symlink(base.path().join("secret.csv"), root.join("link.csv"))?;
        let roots = IngestionRoots::new(std::slice::from_ref(&root))?;
        let ok = roots.resolve(&root.join("ok.csv").display().to_string(), Some(&cluster))?;
        assert!(ok.ends_with("ok.csv"));
        for bad in [
            base.path().join("secret.csv").display().to_string(),
            format!("{}/../secret.csv", root.display()),
            cluster.join("metadata.json").display().to_string(),
            "/etc/passwd".to_string(),
        ] {
            let e = roots.resolve(&bad, Some(&cluster)).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("is not allowed"), "{bad}: {e}");
        }
        #[cfg(unix)]
        {
            let e = roots.resolve(&root.join("link.csv").display().to_string(), Some(&cluster)).err().map(|e| e.to_string());
            assert!(e.unwrap_or_default().contains("symbolic link"));
        }
        let none = IngestionRoots::default();
        assert!(none.resolve(&root.join("ok.csv").display().to_string(), None).is_err());
        Ok(())
    }
}
