//! Tests of the package module.

use super::*;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

type Writer = ZipWriter<Cursor<Vec<u8>>>;

const LOCAL_HEADER_SIG: &[u8; 4] = b"PK\x03\x04";

/// Builds a zip in memory with whatever `add` writes into it.
fn build(add: impl FnOnce(&mut Writer) -> zip::result::ZipResult<()>) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    add(&mut writer).unwrap();
    writer.finish().unwrap().into_inner()
}

fn options(mode: u32) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(mode)
}

fn file(writer: &mut Writer, name: &str, data: &[u8], mode: u32) -> zip::result::ZipResult<()> {
    writer.start_file(name, options(mode))?;
    writer.write_all(data)?;
    Ok(())
}

fn files(entries: &[(&str, &[u8])]) -> Vec<u8> {
    build(|w| entries.iter().try_for_each(|(name, data)| file(w, name, data, 0o644)))
}

fn link(writer: &mut Writer, name: &str, target: &str) -> zip::result::ZipResult<()> {
    writer.add_symlink(name, target, SimpleFileOptions::default())
}

fn small_limits(max_unzipped_bytes: u64) -> PackageLimits {
    PackageLimits { max_unzipped_bytes, ..PackageLimits::default() }
}

/// Overwrites the declared uncompressed size in every local and central header.
fn lie_about_size(bytes: &mut [u8], size: u32) {
    patch_headers(bytes, size, 22, 24);
}

/// Overwrites the declared compressed size in every local and central header.
fn lie_about_compressed_size(bytes: &mut [u8], size: u32) {
    patch_headers(bytes, size, 18, 20);
}

/// Writes `value` at the given offsets of every local and central header.
fn patch_headers(bytes: &mut [u8], value: u32, local: usize, central: usize) {
    let size = value;
    for (sig, offset) in [(LOCAL_HEADER_SIG, local), (CENTRAL_HEADER_SIG, central)] {
        let starts: Vec<usize> =
            bytes.windows(4).enumerate().filter(|(_, w)| w == sig).map(|(i, _)| i).collect();
        for start in starts {
            bytes[start + offset..start + offset + 4].copy_from_slice(&size.to_le_bytes());
        }
    }
}

/// Replaces every occurrence of `from` with the equally long `to`.
fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let starts: Vec<usize> =
        bytes.windows(from.len()).enumerate().filter(|(_, w)| *w == from).map(|(i, _)| i).collect();
    assert!(!starts.is_empty(), "pattern not found");
    for start in starts {
        bytes[start..start + to.len()].copy_from_slice(to);
    }
}

/// The uncompressed size the zip crate reports for the first entry.
fn declared_size(zip: &[u8]) -> u64 {
    ZipArchive::new(Cursor::new(zip)).unwrap().by_index_raw(0).unwrap().size()
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn is_empty_dir(path: &Path) -> bool {
    fs::read_dir(path).unwrap().next().is_none()
}

fn assert_unsafe_path(zip: &[u8], expected: &str) {
    match inspect(zip, &PackageLimits::default()) {
        Err(PackageError::UnsafePath { entry }) => assert_eq!(entry, expected),
        other => panic!("expected UnsafePath for {expected:?}, got {other:?}"),
    }
    let dest = tempfile::tempdir().unwrap();
    let err = extract(zip, dest.path(), &PackageLimits::default()).unwrap_err();
    assert!(matches!(err, PackageError::UnsafePath { .. }), "{err:?}");
    assert!(is_empty_dir(dest.path()));
}

fn assert_unsafe_symlink(zip: &[u8], expected: &str) {
    match inspect(zip, &PackageLimits::default()) {
        Err(PackageError::UnsafeSymlink { entry }) => assert_eq!(entry, expected),
        other => panic!("expected UnsafeSymlink for {expected:?}, got {other:?}"),
    }
    let dest = tempfile::tempdir().unwrap();
    let err = extract(zip, dest.path(), &PackageLimits::default()).unwrap_err();
    assert!(matches!(err, PackageError::UnsafeSymlink { .. }), "{err:?}");
    assert!(is_empty_dir(dest.path()));
}

const BOOTSTRAP: &[u8] = b"#!/bin/sh\necho hi\n";
const HANDLER: &[u8] = b"def handler(e, c):\n    return e\n";

fn valid_package() -> Vec<u8> {
    build(|w| {
        file(w, "bootstrap", BOOTSTRAP, 0o755)?;
        w.add_directory("lib/", options(0o700))?;
        file(w, "lib/handler.py", HANDLER, 0o600)?;
        file(w, "lib/deep/nested/data.json", b"{}", 0o644)?;
        file(w, "bin/tool", b"\x7fELF", 0o4775)?;
        Ok(())
    })
}

#[test]
fn valid_package_is_inspected() {
    let info = inspect(&valid_package(), &PackageLimits::default()).unwrap();
    let bytes = (BOOTSTRAP.len() + HANDLER.len() + 2 + 4) as u64;
    assert_eq!(info, PackageInfo { entries: 5, unzipped_bytes: bytes, has_root_bootstrap: true });
}

#[test]
fn valid_package_is_extracted_with_modes() {
    let dest = tempfile::tempdir().unwrap();
    let root = dest.path();
    let info = extract(&valid_package(), root, &PackageLimits::default()).unwrap();
    assert_eq!(info, inspect(&valid_package(), &PackageLimits::default()).unwrap());
    assert_eq!(fs::read(root.join("bootstrap")).unwrap(), BOOTSTRAP);
    assert_eq!(fs::read(root.join("lib/handler.py")).unwrap(), HANDLER);
    assert_eq!(fs::read(root.join("lib/deep/nested/data.json")).unwrap(), b"{}");
    assert_eq!(mode_of(&root.join("bootstrap")), 0o755);
    assert_eq!(mode_of(&root.join("lib/handler.py")), 0o644);
    assert_eq!(mode_of(&root.join("lib/deep/nested/data.json")), 0o644);
    assert_eq!(mode_of(&root.join("bin/tool")), 0o755, "setuid must be dropped");
    for dir in ["lib", "lib/deep", "lib/deep/nested", "bin"] {
        assert_eq!(mode_of(&root.join(dir)), 0o755, "{dir}");
    }
}

#[test]
fn bootstrap_must_be_a_root_file() {
    let nested = files(&[("bin/bootstrap", b"x")]);
    assert!(!inspect(&nested, &PackageLimits::default()).unwrap().has_root_bootstrap);
    let dir = build(|w| w.add_directory("bootstrap/", options(0o755)));
    assert!(!inspect(&dir, &PackageLimits::default()).unwrap().has_root_bootstrap);
    let dotted = files(&[("./bootstrap", b"x")]);
    assert!(inspect(&dotted, &PackageLimits::default()).unwrap().has_root_bootstrap);
    let linked = build(|w| link(w, "bootstrap", "bin/run"));
    assert!(inspect(&linked, &PackageLimits::default()).unwrap().has_root_bootstrap);
}

#[test]
fn empty_zip_is_valid() {
    let zip = build(|_| Ok(()));
    let expected = PackageInfo { entries: 0, unzipped_bytes: 0, has_root_bootstrap: false };
    assert_eq!(inspect(&zip, &PackageLimits::default()).unwrap(), expected);
    let dest = tempfile::tempdir().unwrap();
    assert_eq!(extract(&zip, dest.path(), &PackageLimits::default()).unwrap(), expected);
    assert!(is_empty_dir(dest.path()));
}

#[test]
fn root_directory_entry_is_ignored() {
    let zip = build(|w| {
        w.add_directory("./", options(0o755))?;
        file(w, "./index.js", b"x", 0o644)
    });
    let info = inspect(&zip, &PackageLimits::default()).unwrap();
    assert_eq!(info.entries, 2);
    assert_eq!(info.unzipped_bytes, 1);
}

#[test]
fn garbage_is_not_a_zip() {
    for bytes in [&b""[..], b"definitely not a zip file", &[0u8; 4096]] {
        let err = inspect(bytes, &PackageLimits::default()).unwrap_err();
        assert!(matches!(err, PackageError::NotAZip(_)), "{err:?}");
    }
    let err = inspect(b"garbage", &PackageLimits::default()).unwrap_err();
    let expected =
        "Could not unzip uploaded file. Please check your file, then try to upload again.";
    assert_eq!(err.to_string(), expected);
}

#[test]
fn truncated_zip_is_not_a_zip() {
    let zip = valid_package();
    for len in [zip.len() / 2, zip.len() - 10] {
        let err = inspect(&zip[..len], &PackageLimits::default()).unwrap_err();
        assert!(matches!(err, PackageError::NotAZip(_)), "{len}: {err:?}");
    }
}

#[test]
fn corrupt_entry_data_is_not_a_zip() {
    let mut zip = build(|w| {
        w.start_file(
            "a.txt",
            SimpleFileOptions::default().compression_method(CompressionMethod::Stored),
        )?;
        Ok(w.write_all(b"hello hello hello")?)
    });
    replace_all(&mut zip, b"hello hello hello", b"HELLO hello hello");
    let err = inspect(&zip, &PackageLimits::default()).unwrap_err();
    assert!(matches!(err, PackageError::NotAZip(_)), "{err:?}");
    let dest = tempfile::tempdir().unwrap();
    let err = extract(&zip, dest.path(), &PackageLimits::default()).unwrap_err();
    assert!(matches!(err, PackageError::NotAZip(_)), "{err:?}");
    assert!(is_empty_dir(dest.path()), "partial output must be removed");
}

#[test]
fn escaping_paths_are_rejected() {
    for name in [
        "../evil",
        "/abs",
        "a/../../x",
        "a/../b",
        "..",
        "C:\\x",
        "..\\evil",
        "a\\..\\..\\x",
        "C:/x",
        "c:x",
    ] {
        assert_unsafe_path(&files(&[("ok.txt", b"fine"), (name, b"x")]), name);
    }
}

#[test]
fn nul_in_name_is_rejected() {
    let zip = files(&[("a\0b", b"x")]);
    assert_unsafe_path(&zip, "a\\u{0}b");
}

#[test]
fn unsafe_path_message_names_only_the_entry() {
    let dest = tempfile::tempdir().unwrap();
    let err =
        extract(&files(&[("../evil", b"x")]), dest.path(), &PackageLimits::default()).unwrap_err();
    assert_eq!(err.to_string(), "Invalid zip entry path: ../evil");
    assert!(!err.to_string().contains(&*dest.path().to_string_lossy()));
}

#[test]
fn absolute_symlink_is_rejected() {
    assert_unsafe_symlink(&build(|w| link(w, "passwd", "/etc/passwd")), "passwd");
}

#[test]
fn climbing_symlink_is_rejected() {
    let zip = build(|w| {
        file(w, "sub/file", b"x", 0o644)?;
        link(w, "sub/link", "../../x")
    });
    assert_unsafe_symlink(&zip, "sub/link");
}

#[test]
fn contained_symlink_is_extracted() {
    let zip = build(|w| {
        file(w, "ok", b"target", 0o644)?;
        link(w, "sub/link", "../ok")?;
        link(w, "sub/up", "..")
    });
    let info = inspect(&zip, &PackageLimits::default()).unwrap();
    assert_eq!(info.unzipped_bytes, 6 + 5 + 2);
    let dest = tempfile::tempdir().unwrap();
    extract(&zip, dest.path(), &PackageLimits::default()).unwrap();
    let link_path = dest.path().join("sub/link");
    assert!(fs::symlink_metadata(&link_path).unwrap().file_type().is_symlink());
    assert_eq!(fs::read_link(&link_path).unwrap(), Path::new("../ok"));
    assert_eq!(fs::read(&link_path).unwrap(), b"target");
}

#[test]
fn symlink_chain_escape_is_rejected() {
    // `here -> .` and `out -> here/..` both look contained on their own, but
    // the kernel resolves `here/..` to the root's parent.
    let zip = build(|w| {
        link(w, "here", ".")?;
        link(w, "out", "here/..")
    });
    assert_unsafe_symlink(&zip, "out");
    let contained = build(|w| {
        link(w, "here", "sub")?;
        link(w, "back", "here/..")
    });
    assert!(inspect(&contained, &PackageLimits::default()).is_ok());
}

#[test]
fn symlink_loop_is_rejected() {
    let zip = build(|w| {
        link(w, "a", "b")?;
        link(w, "b", "a")
    });
    assert!(matches!(
        inspect(&zip, &PackageLimits::default()),
        Err(PackageError::UnsafeSymlink { .. })
    ));
}

#[test]
fn writing_through_outside_symlink_is_rejected() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_string_lossy().into_owned();
    let zip = build(|w| {
        link(w, "a", &target)?;
        file(w, "a/passwd", b"pwned", 0o644)
    });
    let dest = tempfile::tempdir().unwrap();
    assert!(extract(&zip, dest.path(), &PackageLimits::default()).is_err());
    assert!(is_empty_dir(outside.path()));
    assert!(is_empty_dir(dest.path()));
}

#[test]
fn writing_through_any_symlink_is_rejected() {
    let link_first = build(|w| {
        link(w, "a", "sub")?;
        file(w, "a/file", b"x", 0o644)
    });
    assert_unsafe_path(&link_first, "a/file");
    let file_first = build(|w| {
        file(w, "a/file", b"x", 0o644)?;
        link(w, "a", "sub")
    });
    assert_unsafe_path(&file_first, "a");
}

#[test]
fn writer_never_follows_symlinks_already_in_dest() {
    // Defence in depth below the plan: even if a symlink were present in the
    // destination, neither directory creation nor file creation follows it.
    let zip = files(&[("a/passwd", b"pwned"), ("f", b"pwned")]);
    let (outside, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::os::unix::fs::symlink(outside.path(), dest.path().join("a")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("f"), dest.path().join("f")).unwrap();
    let limits = PackageLimits::default();
    let mut archive = open_archive(&zip).unwrap();
    let plan = Plan::build(&mut archive, &zip, &limits).unwrap();
    let mut budget = Budget { used: 0, limits };
    for entry in &plan.entries {
        let result = write_entry(&mut archive, entry, dest.path(), &mut budget);
        assert!(result.is_err(), "{}", entry.name);
    }
    assert!(is_empty_dir(outside.path()));
}

#[test]
fn total_size_over_limit_is_rejected() {
    let zip = files(&[("a", &[1; 600]), ("b", &[2; 600])]);
    let err = inspect(&zip, &small_limits(1000)).unwrap_err();
    assert!(matches!(err, PackageError::TooLarge { limit: 1000 }), "{err:?}");
    assert_eq!(err.to_string(), "Unzipped size must be smaller than 1000 bytes");
    let dest = tempfile::tempdir().unwrap();
    assert!(matches!(
        extract(&zip, dest.path(), &small_limits(1000)),
        Err(PackageError::TooLarge { .. })
    ));
    assert!(is_empty_dir(dest.path()));
    assert_eq!(inspect(&zip, &small_limits(1200)).unwrap().unzipped_bytes, 1200);
}

#[test]
fn symlink_targets_count_towards_size() {
    let zip = build(|w| {
        file(w, "a", &[1; 10], 0o644)?;
        link(w, "l", "a")
    });
    assert!(inspect(&zip, &small_limits(11)).is_ok());
    assert!(matches!(inspect(&zip, &small_limits(10)), Err(PackageError::TooLarge { .. })));
}

fn zeros_zip(bytes: usize) -> Vec<u8> {
    files(&[("zeros.bin", &vec![0; bytes])])
}

#[test]
fn compression_bomb_is_rejected_by_default_ratio() {
    let size = 20 << 20;
    let zip = zeros_zip(size);
    assert!(size / zip.len() > 1000, "precondition: deflate ratio above 1000:1");
    let err = inspect(&zip, &PackageLimits::default()).unwrap_err();
    assert!(
        matches!(&err, PackageError::CompressionRatio { entry } if entry == "zeros.bin"),
        "{err:?}"
    );
    let relaxed = PackageLimits { max_ratio: 5000, ..PackageLimits::default() };
    assert_eq!(inspect(&zip, &relaxed).unwrap().unzipped_bytes, size as u64);
    let dest = tempfile::tempdir().unwrap();
    assert_eq!(extract(&zip, dest.path(), &relaxed).unwrap().unzipped_bytes, size as u64);
    assert_eq!(fs::metadata(dest.path().join("zeros.bin")).unwrap().len(), size as u64);
}

#[test]
fn small_entries_are_exempt_from_ratio() {
    let zip = zeros_zip(1 << 20);
    let compressed =
        ZipArchive::new(Cursor::new(&zip[..])).unwrap().by_index_raw(0).unwrap().compressed_size();
    assert!((1 << 20) / compressed > 1000, "precondition: deflate ratio above 1000:1");
    assert!(inspect(&zip, &PackageLimits::default()).is_ok());
}

#[test]
fn understated_size_is_caught_while_reading() {
    let mut zip = files(&[("big", &vec![7; 200_000])]);
    lie_about_size(&mut zip, 10);
    assert_eq!(declared_size(&zip), 10, "precondition: the header lies");
    let honest = PackageLimits { max_ratio: u64::MAX, ..PackageLimits::default() };
    assert_eq!(inspect(&zip, &honest).unwrap().unzipped_bytes, 200_000);
    let limits = PackageLimits {
        max_unzipped_bytes: 100_000,
        max_ratio: u64::MAX,
        ..PackageLimits::default()
    };
    let err = inspect(&zip, &limits).unwrap_err();
    assert!(matches!(err, PackageError::TooLarge { limit: 100_000 }), "{err:?}");
    let dest = tempfile::tempdir().unwrap();
    let err = extract(&zip, dest.path(), &limits).unwrap_err();
    assert!(matches!(err, PackageError::TooLarge { .. }), "{err:?}");
    assert!(is_empty_dir(dest.path()));
}

#[test]
fn understated_size_bomb_is_caught_while_reading() {
    let mut zip = zeros_zip(20 << 20);
    lie_about_size(&mut zip, 10);
    assert_eq!(declared_size(&zip), 10, "precondition: the header lies");
    let err = inspect(&zip, &PackageLimits::default()).unwrap_err();
    assert!(matches!(err, PackageError::CompressionRatio { .. }), "{err:?}");
    let dest = tempfile::tempdir().unwrap();
    let err = extract(&zip, dest.path(), &PackageLimits::default()).unwrap_err();
    assert!(matches!(err, PackageError::CompressionRatio { .. }), "{err:?}");
    assert!(is_empty_dir(dest.path()));
}

#[test]
fn overstated_compressed_size_is_not_a_zip() {
    let mut zip = zeros_zip(20 << 20);
    lie_about_compressed_size(&mut zip, 100_000_000);
    lie_about_size(&mut zip, 10);
    let err = inspect(&zip, &PackageLimits::default()).unwrap_err();
    assert!(matches!(err, PackageError::NotAZip(_)), "{err:?}");
}

#[test]
fn too_many_entries_are_rejected() {
    let names: Vec<String> = (0..6).map(|i| format!("f{i}")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    let zip = files(&entries);
    let limits = PackageLimits { max_entries: 5, ..PackageLimits::default() };
    assert!(matches!(inspect(&zip, &limits), Err(PackageError::TooManyEntries { limit: 5 })));
    let limits = PackageLimits { max_entries: 6, ..PackageLimits::default() };
    assert_eq!(inspect(&zip, &limits).unwrap().entries, 6);
}

#[test]
fn duplicate_entries_are_rejected() {
    let mut zip = files(&[("a.txt", b"first"), ("b.txt", b"second")]);
    replace_all(&mut zip, b"b.txt", b"a.txt");
    let archive = ZipArchive::new(Cursor::new(&zip[..])).unwrap();
    assert_eq!(archive.len(), 1, "the zip crate silently keeps one of the two");
    assert_unsafe_path(&zip, "a.txt");
}

#[test]
fn equivalent_or_conflicting_paths_are_rejected() {
    assert_unsafe_path(&files(&[("a.txt", b"1"), ("./a.txt", b"2")]), "./a.txt");
    assert_unsafe_path(&files(&[("d/a", b"1"), ("d//a", b"2")]), "d//a");
    assert_unsafe_path(&files(&[("x", b"1"), ("x/y", b"2")]), "x/y");
    assert_unsafe_path(&files(&[("x/y", b"1"), ("x", b"2")]), "x");
    let dirs = build(|w| {
        w.add_directory("d/", options(0o755))?;
        file(w, "d/f", b"1", 0o644)?;
        w.add_directory("./d/", options(0o755))
    });
    assert!(inspect(&dirs, &PackageLimits::default()).is_ok());
}

#[test]
fn extract_requires_an_empty_destination() {
    let dest = tempfile::tempdir().unwrap();
    fs::write(dest.path().join("existing"), b"keep").unwrap();
    let err = extract(&valid_package(), dest.path(), &PackageLimits::default()).unwrap_err();
    assert!(matches!(err, PackageError::Io(_)), "{err:?}");
    assert_eq!(fs::read(dest.path().join("existing")).unwrap(), b"keep");
}

/// Found by the `package` fuzz target: `inspect` accepted a name with a component longer
/// than `NAME_MAX`, which `extract` then failed to create (`ENAMETOOLONG`).
#[test]
fn names_that_cannot_be_created_are_rejected() {
    let shown = |name: &str| format!("{}...", &name[..256]);
    let long = format!("dir/{}", "x".repeat(256));
    assert_unsafe_path(&files(&[(&long, b"data")]), &shown(&long));
    let deep = vec!["d".repeat(255); 13].join("/");
    assert_unsafe_path(&files(&[(&deep, b"data")]), &shown(&deep));
    let fits = files(&[(&"y".repeat(255), b"data")]);
    assert!(inspect(&fits, &PackageLimits::default()).is_ok());
    let dest = tempfile::tempdir().unwrap();
    extract(&fits, dest.path(), &PackageLimits::default()).unwrap();
}
