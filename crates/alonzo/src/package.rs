//! Deployment packages on the client side: a directory zipped the way Lambda expects it, or
//! a ready `.zip` file checked before it is uploaded.
//!
//! Zipping is deterministic, so the same tree always gives the same bytes (and the same
//! `CodeSha256`): entries in byte order of their names, every timestamp 1980-01-01 00:00,
//! modes normalised to `0755` (any execute bit set, as a `bootstrap` needs) or `0644`, and
//! directories `0755`. Symlinks are stored as symlinks (as `zip -y` does) when their target
//! is relative and stays inside the directory; any other symlink is refused, as are sockets,
//! FIFOs and devices. Version-control metadata ([`SKIPPED_DIRS`]) is left out and reported.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Cursor};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// Directory names never packed, at any depth: version-control metadata, which a function
/// has no use for and which can be large. They are listed in [`Package::skipped`].
pub(crate) const SKIPPED_DIRS: &[&str] = &[".git", ".hg", ".svn"];

/// Why a path cannot be deployed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PackageError {
    /// The path does not exist.
    #[error("{}: no such file or directory", .0.display())]
    Missing(PathBuf),
    /// The directory holds no file or symlink (empty directories do not count).
    #[error("{}: nothing to deploy (the directory holds no files)", .0.display())]
    Empty(PathBuf),
    /// A symlink whose target is absolute, outside the directory, or missing.
    #[error("{}: symlink to {}: {reason}", .path.display(), .target.display())]
    BadLink {
        /// The symlink.
        path: PathBuf,
        /// Its target as written.
        target: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A socket, FIFO or device.
    #[error("{}: only files, directories and symlinks can be packaged", .0.display())]
    Special(PathBuf),
    /// A name (or symlink target) that is not UTF-8, which zip entry names must be.
    #[error("{}: names must be UTF-8 to be stored in a zip", .0.display())]
    NotUtf8(PathBuf),
    /// A file given as the package that is not a zip archive.
    #[error("{}: not a zip file ({reason})", .path.display())]
    NotZip {
        /// The file.
        path: PathBuf,
        /// What the zip reader said.
        reason: String,
    },
    /// Reading the tree or the file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The path being read.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// Writing the archive failed (in memory, so not the user's doing).
    #[error("writing the zip: {0}")]
    Zip(#[from] zip::result::ZipError),
}

/// A deployment package ready to upload.
#[derive(Debug)]
pub(crate) struct Package {
    /// The zip archive.
    pub(crate) zip: Vec<u8>,
    /// Files and symlinks in it.
    pub(crate) files: usize,
    /// Directories left out (see [`SKIPPED_DIRS`]), relative to the root, with a trailing `/`.
    pub(crate) skipped: Vec<String>,
    /// Whether it was zipped here (rather than read from a `.zip` file).
    pub(crate) zipped_here: bool,
}

/// Reads `path`: a directory is zipped, a file must be a zip archive and is used as it is.
pub(crate) fn load(path: &Path) -> Result<Package, PackageError> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => PackageError::Missing(path.to_owned()),
        _ => io_error(path)(e),
    })?;
    if meta.is_dir() {
        zip_dir(path)
    } else if meta.is_file() {
        read_zip(path)
    } else {
        Err(PackageError::Special(path.to_owned()))
    }
}

/// Zips the contents of `root` (deterministically; see the module documentation).
pub(crate) fn zip_dir(root: &Path) -> Result<Package, PackageError> {
    let canonical_root = root.canonicalize().map_err(io_error(root))?;
    let mut walk = Walk { root: canonical_root, entries: Vec::new(), skipped: Vec::new() };
    walk.dir(root, "")?;
    let files = walk.entries.iter().filter(|(_, e)| !matches!(e, Entry::Dir)).count();
    if files == 0 {
        return Err(PackageError::Empty(root.to_owned()));
    }
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let base = SimpleFileOptions::default().last_modified_time(DateTime::default());
    for (name, entry) in walk.entries {
        match entry {
            Entry::Dir => writer.add_directory(name, base.unix_permissions(0o755))?,
            Entry::File { path, executable } => {
                let mode = if executable { 0o755 } else { 0o644 };
                let options =
                    base.compression_method(CompressionMethod::Deflated).unix_permissions(mode);
                writer.start_file(name, options)?;
                let mut file = fs::File::open(&path).map_err(io_error(&path))?;
                io::copy(&mut file, &mut writer).map_err(io_error(&path))?;
            }
            Entry::Link { target } => {
                writer.add_symlink(name, target, base.unix_permissions(0o777))?;
            }
        }
    }
    let zip = writer.finish()?.into_inner();
    Ok(Package { zip, files, skipped: walk.skipped, zipped_here: true })
}

/// Reads a ready zip file, checking that it is one and is not empty.
pub(crate) fn read_zip(path: &Path) -> Result<Package, PackageError> {
    let zip = fs::read(path).map_err(io_error(path))?;
    let not_zip = |reason: String| PackageError::NotZip { path: path.to_owned(), reason };
    let archive = ZipArchive::new(Cursor::new(&zip[..])).map_err(|e| not_zip(e.to_string()))?;
    let files = archive.len();
    if files == 0 {
        return Err(not_zip("the archive has no entries".to_owned()));
    }
    Ok(Package { zip, files, skipped: Vec::new(), zipped_here: false })
}

/// One entry to write, named relative to the root (directories end in `/`).
enum Entry {
    Dir,
    File { path: PathBuf, executable: bool },
    Link { target: String },
}

/// The state of one directory walk.
struct Walk {
    root: PathBuf,
    entries: Vec<(String, Entry)>,
    skipped: Vec<String>,
}

impl Walk {
    /// Adds the children of `dir` (named `prefix…`), sorted by name, depth first.
    fn dir(&mut self, dir: &Path, prefix: &str) -> Result<(), PackageError> {
        let mut names = fs::read_dir(dir)
            .and_then(|it| it.map(|e| e.map(|e| e.file_name())).collect::<io::Result<Vec<_>>>())
            .map_err(io_error(dir))?;
        names.sort_unstable_by(|a: &OsString, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for os_name in names {
            let path = dir.join(&os_name);
            let name = os_name.to_str().ok_or_else(|| PackageError::NotUtf8(path.clone()))?;
            let rel = format!("{prefix}{name}");
            let meta = fs::symlink_metadata(&path).map_err(io_error(&path))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                if SKIPPED_DIRS.contains(&name) {
                    self.skipped.push(format!("{rel}/"));
                    continue;
                }
                self.entries.push((format!("{rel}/"), Entry::Dir));
                self.dir(&path, &format!("{rel}/"))?;
            } else if kind.is_file() {
                let executable = meta.permissions().mode() & 0o111 != 0;
                self.entries.push((rel, Entry::File { path, executable }));
            } else if kind.is_symlink() {
                let target = self.link_target(&path, &rel)?;
                self.entries.push((rel, Entry::Link { target }));
            } else {
                return Err(PackageError::Special(path));
            }
        }
        Ok(())
    }

    /// The target of the symlink at `path` (entry `rel`), if it is relative, stays inside the
    /// root both as written (which is what it will mean in `/var/task`) and as resolved on
    /// this machine, and exists.
    fn link_target(&self, path: &Path, rel: &str) -> Result<String, PackageError> {
        let target = fs::read_link(path).map_err(io_error(path))?;
        let bad = |reason| PackageError::BadLink {
            path: path.to_owned(),
            target: target.clone(),
            reason,
        };
        let text = target.to_str().ok_or_else(|| PackageError::NotUtf8(path.to_owned()))?;
        if target.is_absolute() {
            return Err(bad("absolute targets do not survive packaging; use a relative one"));
        }
        // Lexically, from the link's own directory inside the package.
        let mut depth = rel.matches('/').count();
        for component in target.components() {
            match component {
                Component::ParentDir if depth == 0 => {
                    return Err(bad("it points outside the directory"))
                }
                Component::ParentDir => depth -= 1,
                Component::Normal(_) => depth += 1,
                _ => {}
            }
        }
        match path.canonicalize() {
            Ok(resolved) if resolved.starts_with(&self.root) => Ok(text.to_owned()),
            Ok(_) => Err(bad("it points outside the directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(bad("the target does not exist")),
            Err(e) => Err(io_error(path)(e)),
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Io { path: path.to_owned(), source }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::symlink;

    use super::*;

    fn write(path: &Path, text: &str, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A small tree: a handler, an executable bootstrap, a nested module, an in-tree
    /// symlink, an empty directory and a `.git` directory.
    fn sample_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join("lambda_function.py"), "def lambda_handler(e, c):\n    return 1\n", 0o600);
        write(&root.join("bootstrap"), "#!/bin/sh\necho hi\n", 0o700);
        write(&root.join("lib/util.py"), "X = 1\n", 0o644);
        write(&root.join(".git/HEAD"), "ref: refs/heads/main\n", 0o644);
        fs::create_dir(root.join("empty")).unwrap();
        symlink("lib/util.py", root.join("util.py")).unwrap();
        dir
    }

    fn entries(zip: &[u8]) -> Vec<(String, u32, String)> {
        let mut archive = ZipArchive::new(Cursor::new(zip)).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut file = archive.by_index(i).unwrap();
                let mut body = String::new();
                file.read_to_string(&mut body).unwrap();
                (file.name().to_owned(), file.unix_mode().unwrap(), body)
            })
            .collect()
    }

    #[test]
    fn zipping_is_deterministic() {
        let tree = sample_tree();
        let first = zip_dir(tree.path()).unwrap();
        // A later modification time and a different umask-style mode change nothing.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let handler = tree.path().join("lambda_function.py");
        write(&handler, "def lambda_handler(e, c):\n    return 1\n", 0o644);
        let second = zip_dir(tree.path()).unwrap();
        assert_eq!(first.zip, second.zip);
        // And another copy of the same tree elsewhere gives the same bytes.
        assert_eq!(zip_dir(sample_tree().path()).unwrap().zip, first.zip);
    }

    #[test]
    fn entries_are_sorted_with_modes_and_links_kept() {
        let tree = sample_tree();
        let package = zip_dir(tree.path()).unwrap();
        assert_eq!(package.files, 4);
        assert_eq!(package.skipped, vec![".git/".to_owned()]);
        let got = entries(&package.zip);
        let names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["bootstrap", "empty/", "lambda_function.py", "lib/", "lib/util.py", "util.py"]
        );
        let mode = |name: &str| got.iter().find(|(n, _, _)| n == name).unwrap().1;
        assert_eq!(mode("bootstrap"), 0o100_755, "the execute bit survives");
        assert_eq!(mode("lambda_function.py"), 0o100_644);
        assert_eq!(mode("lib/"), 0o040_755);
        assert_eq!(mode("util.py") & 0o170_000, 0o120_000, "stored as a symlink");
        assert_eq!(got.last().unwrap().2, "lib/util.py", "a symlink's body is its target");
    }

    #[test]
    fn symlinks_leaving_the_directory_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        write(&outside.path().join("secret"), "s", 0o644);
        for target in [
            outside.path().join("secret"),
            PathBuf::from("../secret"),
            PathBuf::from("lib/../../x"),
            PathBuf::from("missing"),
        ] {
            let tree = sample_tree();
            symlink(&target, tree.path().join("link")).unwrap();
            let err = zip_dir(tree.path()).unwrap_err();
            assert!(matches!(err, PackageError::BadLink { .. }), "{target:?}: {err}");
        }
        // A link into a subdirectory of the tree is fine, even through `..`.
        let tree = sample_tree();
        symlink("../lambda_function.py", tree.path().join("lib/handler.py")).unwrap();
        zip_dir(tree.path()).unwrap();
    }

    #[test]
    fn bad_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(&dir.path().join("nope")), Err(PackageError::Missing(_))));
        fs::create_dir(dir.path().join("only-dirs")).unwrap();
        fs::create_dir(dir.path().join("only-dirs/sub")).unwrap();
        assert!(matches!(load(&dir.path().join("only-dirs")), Err(PackageError::Empty(_))));
        write(&dir.path().join("notes.txt"), "hello", 0o644);
        let err = load(&dir.path().join("notes.txt")).unwrap_err();
        assert!(matches!(err, PackageError::NotZip { .. }), "{err}");
    }

    #[test]
    fn a_zip_file_is_used_as_it_is() {
        let tree = sample_tree();
        let zipped = zip_dir(tree.path()).unwrap().zip;
        let elsewhere = tempfile::tempdir().unwrap();
        let file = elsewhere.path().join("package.zip");
        fs::write(&file, &zipped).unwrap();
        let package = load(&file).unwrap();
        assert_eq!(package.zip, zipped);
        assert!(!package.zipped_here);
    }
}
