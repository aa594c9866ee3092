//! Repository hygiene checks, run by `cargo test` so that the test gate enforces them:
//! every Rust file opens with a `//!` paragraph saying what it owns, and `unsafe` appears
//! only in the crate that is allowed it.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    fn sources() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
        let mut files = Vec::new();
        rust_files(&root.join("crates"), &mut files);
        rust_files(&root.join("xtask"), &mut files);
        rust_files(&root.join("bench"), &mut files);
        files
    }

    #[test]
    fn every_module_says_what_it_owns() {
        let missing: Vec<_> = sources()
            .into_iter()
            .filter(|p| !std::fs::read_to_string(p).unwrap().trim_start().starts_with("//!"))
            .collect();
        assert!(missing.is_empty(), "files without a leading //! doc paragraph: {missing:#?}");
    }

    #[test]
    fn unsafe_stays_in_the_jail() {
        let offenders: Vec<_> = sources()
            .into_iter()
            .filter(|p| {
                !p.components().any(|c| c.as_os_str() == "alonzo-jail")
                    && !p.ends_with("xtask/src/tidy.rs")
            })
            .filter(|p| {
                std::fs::read_to_string(p).unwrap().lines().any(|l| {
                    let code = l.split("//").next().unwrap_or("");
                    code.contains("unsafe {")
                        || code.contains("unsafe fn")
                        || code.contains("unsafe impl")
                })
            })
            .collect();
        assert!(offenders.is_empty(), "unsafe outside crates/alonzo-jail: {offenders:#?}");
    }
}
