//! Replays every file of every target's committed corpus (`fuzz/corpus/<target>/`: realistic
//! seeds and the inputs of crashes that were fixed) through the target's body, on stable.

use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

#[test]
fn every_target_has_a_seed_corpus_and_passes_it() {
    let mut failures = Vec::new();
    for (name, body) in crate::TARGETS {
        let dir = corpus_dir(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: empty corpus in {}", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(|| body(&data)).is_err() {
                failures.push(format!("{name}: {}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "inputs that fail their target's properties: {failures:#?}");
}

#[test]
fn unknown_targets_are_refused() {
    assert!(!crate::run("no-such-target", b""));
}
