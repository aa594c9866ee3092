//! The runtime catalog: which Lambda runtime ids this host can run, and with what.
//!
//! Interpreters are resolved to real paths on the host (never version-manager shims such as
//! pyenv's, which cost ~86 ms per start). Custom runtimes (`provided*`) need nothing from
//! the host: they run the function's own `bootstrap`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a runtime id is started.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// Our embedded Python bootstrap under this interpreter.
    Python(PathBuf),
    /// Our embedded Node.js bootstrap under this `node`.
    Node(PathBuf),
    /// The function's (or a layer's) own `bootstrap` executable.
    Provided,
}

/// Runtime ids available on this host.
#[derive(Debug, Clone, Default)]
pub struct RuntimeCatalog {
    entries: BTreeMap<String, RuntimeKind>,
}

impl RuntimeCatalog {
    /// Probes the host: `python3.9`–`python3.13` as `/usr/bin/python3.X` (or `/usr/local/bin`),
    /// `nodejs18.x`–`nodejs22.x` from the major version of the system `node`, and the
    /// `provided` family.
    pub fn detect() -> Self {
        let mut entries = BTreeMap::new();
        for minor in 9..=13 {
            if let Some(path) = find_executable(&format!("python3.{minor}")) {
                entries.insert(format!("python3.{minor}"), RuntimeKind::Python(path));
            }
        }
        if let Some((major, path)) =
            find_executable("node").and_then(|p| node_major(&p).map(|m| (m, p)))
        {
            if (18..=22).contains(&major) {
                entries.insert(format!("nodejs{major}.x"), RuntimeKind::Node(path));
            }
        }
        for id in ["provided", "provided.al2", "provided.al2023"] {
            entries.insert(id.to_owned(), RuntimeKind::Provided);
        }
        Self { entries }
    }

    /// A catalog with exactly these entries (tests, operator overrides).
    pub fn from_entries(entries: impl IntoIterator<Item = (String, RuntimeKind)>) -> Self {
        Self { entries: entries.into_iter().collect() }
    }

    /// How to start `id`, if this host can.
    pub fn get(&self, id: &str) -> Option<&RuntimeKind> {
        self.entries.get(id)
    }

    /// Every available id, sorted.
    pub fn ids(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// Every entry, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RuntimeKind)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// The real path of `name` in the system directories (not `$PATH`, which may hold shims).
fn find_executable(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/local/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
}

/// Runs `node --version` once and reads the major version.
fn node_major(node: &Path) -> Option<u32> {
    let out = std::process::Command::new(node).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().trim_start_matches('v').split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provided_runtimes_are_always_there() {
        let catalog = RuntimeCatalog::detect();
        for id in ["provided", "provided.al2", "provided.al2023"] {
            assert_eq!(catalog.get(id), Some(&RuntimeKind::Provided));
        }
        assert!(catalog.get("cobol").is_none());
    }

    #[test]
    fn interpreters_are_real_paths() {
        for (_, kind) in RuntimeCatalog::detect().iter() {
            if let RuntimeKind::Python(p) | RuntimeKind::Node(p) = kind {
                assert!(p.is_absolute() && !p.to_string_lossy().contains("shims"), "{p:?}");
            }
        }
    }
}
