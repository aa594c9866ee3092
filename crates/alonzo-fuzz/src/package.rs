//! Deployment packages (`alonzo_control::package`): zip inspection and extraction.
//!
//! The input is either raw bytes taken as a zip, or a list of entries (names, kinds, modes,
//! contents, symlink targets, compression) built into a zip, so that the fuzzer reaches the
//! path and symlink rules and not only the zip parser. Properties: `inspect` and `extract`
//! agree (same verdict, same `PackageInfo`); extraction writes nothing outside its root (the
//! root's parent is checked to hold only the root afterwards); every extracted symlink
//! resolves inside the root; a refused package leaves the root empty; an accepted one
//! holds exactly the regular files the archive named, byte for byte.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Component, Path, PathBuf};

use alonzo_control::package::{extract, inspect, PackageLimits};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use crate::input::{sections, text};

/// One entry of a built archive: a section whose first line is `<kind> <octal mode> <name>`
/// (`f`, `F` for deflated, `d` or `l`) and whose rest is the file's contents or the link's
/// target.
#[derive(Debug)]
struct EntrySpec {
    name: String,
    kind: Kind,
    mode: u32,
    deflate: bool,
}

#[derive(Debug)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
}

impl EntrySpec {
    fn parse(section: &[u8]) -> Option<Self> {
        let (head, rest) = match section.iter().position(|b| *b == b'\n') {
            Some(at) => (&section[..at], &section[at + 1..]),
            None => (section, &[][..]),
        };
        let head = text(head);
        let mut words = head.splitn(3, ' ');
        let (kind, mode, name) = (words.next()?, words.next()?, words.next()?.to_owned());
        let mode = u32::from_str_radix(mode, 8).ok()? & 0o777;
        let (kind, deflate) = match kind {
            "f" => (Kind::File(rest.to_vec()), false),
            "F" => (Kind::File(rest.to_vec()), true),
            "d" => (Kind::Dir, false),
            "l" => (Kind::Symlink(text(rest)), false),
            _ => return None,
        };
        Some(Self { name, kind, mode, deflate })
    }
}

/// Small limits, so that the limit paths are reachable with small inputs.
const LIMITS: PackageLimits = PackageLimits {
    max_unzipped_bytes: 64 * 1024,
    max_entries: 64,
    max_ratio: 50,
    ratio_floor_bytes: 1024,
};

/// The fuzz target's body.
pub fn run(data: &[u8]) {
    // A raw archive (as uploaded), or entries to build one from.
    if data.starts_with(b"PK") {
        check(data);
        return;
    }
    let entries: Option<Vec<EntrySpec>> =
        sections(data, 16).into_iter().filter(|s| !s.is_empty()).map(EntrySpec::parse).collect();
    if let Some(bytes) = entries.as_deref().and_then(build) {
        check(&bytes);
    }
}

fn build(entries: &[EntrySpec]) -> Option<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for entry in entries {
        let method =
            if entry.deflate { CompressionMethod::Deflated } else { CompressionMethod::Stored };
        let options =
            SimpleFileOptions::default().compression_method(method).unix_permissions(entry.mode);
        match &entry.kind {
            Kind::File(content) => {
                writer.start_file(entry.name.as_str(), options).ok()?;
                writer.write_all(content).ok()?;
            }
            Kind::Dir => writer.add_directory(entry.name.as_str(), options).ok()?,
            Kind::Symlink(target) => {
                writer.add_symlink(entry.name.as_str(), target.as_str(), options).ok()?;
            }
        }
    }
    writer.finish().ok().map(Cursor::into_inner)
}

/// Inspects and extracts `bytes` and checks every property.
pub fn check(bytes: &[u8]) {
    let inspected = inspect(bytes, &LIMITS);
    let outer = tempfile::tempdir().expect("a temporary directory");
    let root = outer.path().join("root");
    std::fs::create_dir(&root).expect("the extraction root");
    let extracted = extract(bytes, &root, &LIMITS);
    let outside: Vec<PathBuf> = std::fs::read_dir(outer.path())
        .expect("the temporary directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p != &root)
        .collect();
    assert!(outside.is_empty(), "extraction wrote outside its root: {outside:?}");
    match (&inspected, &extracted) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "inspect and extract disagree"),
        (Err(a), Err(b)) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "inspect and extract refuse for different reasons: {a:?} / {b:?}"
        ),
        _ => panic!("inspect and extract disagree: {inspected:?} / {extracted:?}"),
    }
    let tree = walk(&root);
    match extracted {
        Err(_) => assert!(tree.is_empty(), "a refused package left files behind: {tree:?}"),
        Ok(info) => {
            assert!(info.unzipped_bytes <= LIMITS.max_unzipped_bytes);
            for (path, node) in &tree {
                if let Node::Link(target) = node {
                    assert!(inside(&root, path, target), "symlink {path:?} → {target:?} escapes");
                }
            }
            compare_files(bytes, &tree);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// Everything below `root`, by path relative to it, never following symlinks.
fn walk(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("a directory we created").flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(root).expect("below the root").to_path_buf();
            let kind = entry.file_type().expect("a file type");
            let node = if kind.is_symlink() {
                Node::Link(std::fs::read_link(&path).expect("a symlink"))
            } else if kind.is_dir() {
                pending.push(path);
                Node::Dir
            } else {
                Node::File(std::fs::read(&path).expect("a regular file"))
            };
            out.insert(relative, node);
        }
    }
    out
}

/// Whether `target`, read from the directory of the link at `link`, stays within `root`,
/// following the other extracted links (as the kernel would, at most 40 of them).
fn inside(root: &Path, link: &Path, target: &Path) -> bool {
    let mut dir: Vec<String> = link
        .parent()
        .into_iter()
        .flat_map(Path::components)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut hops = 0;
    let mut pending: Vec<String> = Vec::new();
    if !push_target(&mut pending, target) {
        return false;
    }
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "" | "." => {}
            ".." => {
                if dir.pop().is_none() {
                    return false;
                }
            }
            name => {
                dir.push(name.to_owned());
                let here: PathBuf = dir.iter().collect();
                if let Ok(next) = std::fs::read_link(root.join(&here)) {
                    hops += 1;
                    dir.pop();
                    if hops > 40 || !push_target(&mut pending, &next) {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// Queues a relative target's components (last first, so they pop in order).
fn push_target(pending: &mut Vec<String>, target: &Path) -> bool {
    let text = target.to_string_lossy();
    if text.starts_with('/') {
        return false;
    }
    pending.extend(text.split('/').rev().map(str::to_owned));
    true
}

/// Every extracted regular file is a file entry of the archive with the same contents.
fn compare_files(bytes: &[u8], tree: &BTreeMap<PathBuf, Node>) {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("an accepted zip opens");
    for (path, node) in tree {
        let Node::File(content) = node else { continue };
        let name = path.to_string_lossy();
        let found = (0..archive.len()).any(|i| {
            let Ok(mut file) = archive.by_index(i) else { return false };
            let normalised: PathBuf =
                Path::new(file.name()).components().filter(|c| *c != Component::CurDir).collect();
            if normalised.to_string_lossy() != name || file.is_dir() || file.is_symlink() {
                return false;
            }
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut data).is_ok() && &data == content
        });
        assert!(found, "extracted file {name:?} does not match any archive entry");
    }
}
