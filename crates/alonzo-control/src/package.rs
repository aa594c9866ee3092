//! Deployment-package (`.zip`) validation and safe extraction.
//!
//! This module owns everything Alonzo does with the contents of a Lambda
//! deployment package, which arrives from an untrusted client. [`inspect`]
//! validates an archive without touching the filesystem; [`extract`] unpacks it
//! into an empty directory (a sandbox's `/var/task`). Both apply the same rules
//! before any byte is written: the archive must parse, every entry path must stay
//! inside the root (no `..`, absolute paths, drive letters, backslashes or NUL
//! bytes) and be creatable (components of at most 255 bytes, names of at most
//! 3072), no path may be claimed twice or pass through a file or symlink, and
//! every symlink must resolve inside the root (following the archive's other
//! symlinks). Both then decompress every entry and count the bytes actually
//! produced, so zip headers that lie about sizes cannot get past the
//! uncompressed-size and compression-ratio (zip bomb) limits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zip::result::ZipError;
use zip::ZipArchive;

/// Longest symlink target accepted (Linux `PATH_MAX` less the terminating NUL).
const MAX_LINK_TARGET: u64 = 4095;
/// Longest file name (one path component) Linux file systems accept (`NAME_MAX`).
const MAX_NAME_BYTES: usize = 255;
/// Longest entry name accepted: Linux's `PATH_MAX` (4096) less room for the directory the
/// package is extracted into (`<data>/tasks/<sha256>/`).
const MAX_PATH_BYTES: usize = 3072;
/// Symlinks followed while resolving one target before it counts as a loop (as Linux).
const MAX_LINK_HOPS: usize = 40;
/// Signature and fixed length of a central-directory file header.
const CENTRAL_HEADER_SIG: &[u8; 4] = b"PK\x01\x02";
const CENTRAL_HEADER_LEN: usize = 46;
/// Entry names longer than this are shortened in error messages.
const MAX_DISPLAY_CHARS: usize = 256;
const COPY_BUFFER_BYTES: usize = 64 * 1024;
const DIR_MODE: u32 = 0o755;
const EXECUTABLE_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

type Archive<'a> = ZipArchive<Cursor<&'a [u8]>>;

/// Limits applied to a deployment package by [`inspect`] and [`extract`].
#[derive(Debug, Clone, Copy)]
pub struct PackageLimits {
    /// Largest total of uncompressed bytes (file contents and symlink targets) accepted.
    pub max_unzipped_bytes: u64,
    /// Largest number of entries (files, directories and symlinks) accepted.
    pub max_entries: usize,
    /// Largest uncompressed:compressed ratio accepted for one entry above `ratio_floor_bytes`.
    pub max_ratio: u64,
    /// Entries of at most this many uncompressed bytes are exempt from the ratio check.
    pub ratio_floor_bytes: u64,
}

impl Default for PackageLimits {
    /// AWS Lambda's 250 MiB unzipped quota, 20 000 entries, 1000:1 above 1 MiB.
    fn default() -> Self {
        Self {
            max_unzipped_bytes: 262_144_000,
            max_entries: 20_000,
            max_ratio: 1000,
            ratio_floor_bytes: 1024 * 1024,
        }
    }
}

/// What a valid package contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    /// Number of entries in the archive, directories included.
    pub entries: usize,
    /// Uncompressed bytes actually produced: file contents plus symlink targets.
    pub unzipped_bytes: u64,
    /// Whether a file or symlink named exactly `bootstrap` sits at the root (custom runtimes).
    pub has_root_bootstrap: bool,
}

/// Why a package was refused. Messages name archive entries only, never host paths.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The bytes are not a readable zip archive (bad structure, bad CRC, unsupported
    /// compression method, encrypted entry).
    #[error("Could not unzip uploaded file. Please check your file, then try to upload again.")]
    NotAZip(#[source] ZipError),
    /// The uncompressed contents exceed [`PackageLimits::max_unzipped_bytes`].
    #[error("Unzipped size must be smaller than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// An entry path escapes the root, is malformed, or collides with another entry.
    #[error("Invalid zip entry path: {entry}")]
    UnsafePath {
        /// The entry name as stored in the archive (control characters escaped).
        entry: String,
    },
    /// A symlink entry whose target is absolute, escapes the root, or loops.
    #[error("Invalid symbolic link in zip entry: {entry}")]
    UnsafeSymlink {
        /// The symlink entry's name (control characters escaped).
        entry: String,
    },
    /// The archive has more than [`PackageLimits::max_entries`] entries.
    #[error("Zip file must contain at most {limit} entries")]
    TooManyEntries {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// An entry decompresses beyond [`PackageLimits::max_ratio`] (a zip bomb).
    #[error("Zip entry exceeds the allowed compression ratio: {entry}")]
    CompressionRatio {
        /// The offending entry's name (control characters escaped).
        entry: String,
    },
    /// Writing the extracted package failed (or the destination was not empty).
    #[error("io error during extraction")]
    Io(#[from] io::Error),
}

/// Validates a package without writing anything.
///
/// Every entry is decompressed in full and its real bytes counted against
/// `limits`, so archives whose headers understate sizes are caught too.
///
/// # Errors
///
/// Any [`PackageError`] except `Io`: the first rule the archive breaks.
pub fn inspect(zip_bytes: &[u8], limits: &PackageLimits) -> Result<PackageInfo, PackageError> {
    let mut archive = open_archive(zip_bytes)?;
    let plan = Plan::build(&mut archive, zip_bytes, limits)?;
    unpack(&mut archive, &plan, limits, None)
}

/// Extracts a package into `dest`, which must exist and be empty.
///
/// All structural checks run before anything is written. Directories get mode
/// 0755; files get 0755 if any executable bit is set in the entry's unix mode,
/// else 0644; symlinks are recreated only when they resolve inside `dest`.
/// Nothing is ever written through a symlink, and written bytes are counted
/// against `limits`. On error, whatever was extracted is removed again.
///
/// # Errors
///
/// The same errors as [`inspect`], plus [`PackageError::Io`] when `dest` is
/// missing, not empty, or cannot be written.
pub fn extract(
    zip_bytes: &[u8],
    dest: &Path,
    limits: &PackageLimits,
) -> Result<PackageInfo, PackageError> {
    ensure_empty_dir(dest)?;
    let result = open_archive(zip_bytes).and_then(|mut archive| {
        let plan = Plan::build(&mut archive, zip_bytes, limits)?;
        unpack(&mut archive, &plan, limits, Some(dest))
    });
    if result.is_err() {
        clear_dir(dest);
    }
    result
}

/// What an entry becomes once extracted.
#[derive(Debug)]
enum Kind {
    Dir,
    File { executable: bool },
    Symlink { target: String },
}

impl Kind {
    fn node(&self) -> Node {
        match self {
            Kind::Dir => Node::Dir,
            Kind::File { .. } => Node::File,
            Kind::Symlink { .. } => Node::Symlink,
        }
    }
}

/// A node of the tree the archive would produce once extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File,
    Symlink,
}

/// One archive entry that passed the path checks.
#[derive(Debug)]
struct Entry {
    index: usize,
    /// Normalised path components below the root (never empty).
    path: Vec<String>,
    kind: Kind,
    /// Entry name for error messages.
    name: String,
    compressed: u64,
}

impl Entry {
    fn path_error(&self) -> PackageError {
        PackageError::UnsafePath { entry: self.name.clone() }
    }
}

/// The validated layout of an archive, built from metadata and symlink targets only.
#[derive(Debug, Default)]
struct Plan {
    entries: Vec<Entry>,
    total: usize,
    tree: HashMap<Vec<String>, Node>,
    has_root_bootstrap: bool,
}

impl Plan {
    /// Runs every check that needs no file contents.
    fn build(
        archive: &mut Archive<'_>,
        zip_bytes: &[u8],
        limits: &PackageLimits,
    ) -> Result<Self, PackageError> {
        let total = archive.len();
        if total > limits.max_entries {
            return Err(PackageError::TooManyEntries { limit: limits.max_entries });
        }
        if let Some(name) = duplicate_name(zip_bytes, archive.central_directory_start(), total) {
            return Err(unsafe_path(&name));
        }
        let mut plan = Plan { total, ..Plan::default() };
        let mut declared = 0;
        for index in 0..total {
            if let Some(entry) = read_entry(archive, index, limits, &mut declared)? {
                plan.add(entry)?;
            }
        }
        plan.check_symlinks()?;
        Ok(plan)
    }

    /// Records an entry, refusing duplicates and paths that pass through a non-directory.
    fn add(&mut self, entry: Entry) -> Result<(), PackageError> {
        for depth in 1..entry.path.len() {
            match self.tree.get(&entry.path[..depth]) {
                None => {
                    self.tree.insert(entry.path[..depth].to_vec(), Node::Dir);
                }
                Some(Node::Dir) => {}
                Some(_) => return Err(entry.path_error()),
            }
        }
        let node = entry.kind.node();
        match self.tree.get(entry.path.as_slice()) {
            None => {
                self.tree.insert(entry.path.clone(), node);
            }
            Some(Node::Dir) if node == Node::Dir => {}
            Some(_) => return Err(entry.path_error()),
        }
        if node != Node::Dir && entry.path == ["bootstrap"] {
            self.has_root_bootstrap = true;
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Checks that every symlink resolves inside the root, following the others.
    fn check_symlinks(&self) -> Result<(), PackageError> {
        let links: HashMap<&[String], &str> = self
            .entries
            .iter()
            .filter_map(|entry| match &entry.kind {
                Kind::Symlink { target } => Some((entry.path.as_slice(), target.as_str())),
                _ => None,
            })
            .collect();
        for entry in &self.entries {
            if let Kind::Symlink { target } = &entry.kind {
                if !resolves_inside(&entry.path, target, &links) {
                    return Err(PackageError::UnsafeSymlink { entry: entry.name.clone() });
                }
            }
        }
        Ok(())
    }

    fn info(&self, unzipped_bytes: u64) -> PackageInfo {
        PackageInfo {
            entries: self.total,
            unzipped_bytes,
            has_root_bootstrap: self.has_root_bootstrap,
        }
    }
}

fn open_archive(zip_bytes: &[u8]) -> Result<Archive<'_>, PackageError> {
    ZipArchive::new(Cursor::new(zip_bytes)).map_err(PackageError::NotAZip)
}

/// Reads one entry's metadata (and symlink target); `None` for a bare root directory entry.
fn read_entry(
    archive: &mut Archive<'_>,
    index: usize,
    limits: &PackageLimits,
    declared: &mut u64,
) -> Result<Option<Entry>, PackageError> {
    let (mut entry, declared_size) = read_metadata(archive, index)?;
    if entry.path.is_empty() {
        return match entry.kind {
            Kind::Dir => Ok(None),
            _ => Err(entry.path_error()),
        };
    }
    match entry.kind {
        Kind::File { .. } => {
            *declared = declared.saturating_add(declared_size);
            check_total(*declared, limits)?;
            check_ratio(declared_size, &entry, limits)?;
        }
        Kind::Symlink { .. } => {
            entry.kind = Kind::Symlink { target: read_link_target(archive, &entry)? };
        }
        Kind::Dir => {}
    }
    Ok(Some(entry))
}

/// Builds an [`Entry`] from the central directory; symlink targets are left empty.
fn read_metadata(archive: &mut Archive<'_>, index: usize) -> Result<(Entry, u64), PackageError> {
    let directory_start = archive.central_directory_start();
    let file = archive.by_index_raw(index).map_err(PackageError::NotAZip)?;
    if file.encrypted() {
        let reason = "encrypted entries are not supported";
        return Err(PackageError::NotAZip(ZipError::UnsupportedArchive(reason)));
    }
    check_data_bounds(file.data_start(), file.compressed_size(), directory_start)?;
    let path = if file.name_raw().contains(&0) { None } else { entry_path(file.name()) };
    let path = path.ok_or_else(|| unsafe_path(file.name()))?;
    let name = display_name(file.name());
    let kind = if file.is_dir() {
        Kind::Dir
    } else if file.is_symlink() {
        Kind::Symlink { target: String::new() }
    } else {
        Kind::File { executable: file.unix_mode().is_some_and(|mode| mode & 0o111 != 0) }
    };
    let entry = Entry { index, path, kind, name, compressed: file.compressed_size() };
    Ok((entry, file.size()))
}

/// Refuses an entry whose compressed data would run into the central directory:
/// an overstated compressed size would otherwise loosen the ratio check.
fn check_data_bounds(
    start: u64,
    compressed: u64,
    directory_start: u64,
) -> Result<(), PackageError> {
    if start.saturating_add(compressed) > directory_start {
        let reason = "entry data overlaps the central directory";
        return Err(PackageError::NotAZip(ZipError::InvalidArchive(reason.into())));
    }
    Ok(())
}

/// Splits an entry name into safe components, or `None` if it could escape the root or
/// could not be created (a component longer than [`MAX_NAME_BYTES`], a name longer than
/// [`MAX_PATH_BYTES`]), so that [`inspect`] never accepts what [`extract`] cannot write.
fn entry_path(name: &str) -> Option<Vec<String>> {
    if name.contains(['\0', '\\'])
        || name.starts_with('/')
        || has_drive_prefix(name)
        || name.len() > MAX_PATH_BYTES
    {
        return None;
    }
    let mut components = Vec::new();
    for component in name.split('/') {
        match component {
            "" | "." => {}
            ".." => return None,
            long if long.len() > MAX_NAME_BYTES => return None,
            normal => components.push(normal.to_owned()),
        }
    }
    Some(components)
}

/// Whether a name starts like a Windows drive path (`C:`).
fn has_drive_prefix(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Reads a symlink entry's target, refusing over-long and non-UTF-8 targets.
fn read_link_target(archive: &mut Archive<'_>, entry: &Entry) -> Result<String, PackageError> {
    let file = archive.by_index(entry.index).map_err(PackageError::NotAZip)?;
    let mut target = Vec::new();
    file.take(MAX_LINK_TARGET + 1).read_to_end(&mut target).map_err(corrupt)?;
    let unsafe_link = || PackageError::UnsafeSymlink { entry: entry.name.clone() };
    if target.len() as u64 > MAX_LINK_TARGET {
        return Err(unsafe_link());
    }
    String::from_utf8(target).map_err(|_| unsafe_link())
}

/// Resolves `target` from the directory holding `link`, expanding the archive's
/// other symlinks on the way, and reports whether it never climbs above the root.
fn resolves_inside(link: &[String], target: &str, links: &HashMap<&[String], &str>) -> bool {
    let Some((_, parent)) = link.split_last() else { return false };
    let mut dir = parent.to_vec();
    let mut pending = VecDeque::new();
    let mut hops = 0;
    if !push_target(&mut pending, target) {
        return false;
    }
    while let Some(component) = pending.pop_front() {
        match component {
            "" | "." => {}
            ".." => {
                if dir.pop().is_none() {
                    return false;
                }
            }
            name => {
                dir.push(name.to_owned());
                if let Some(next) = links.get(dir.as_slice()) {
                    hops += 1;
                    if hops > MAX_LINK_HOPS || !push_target(&mut pending, next) {
                        return false;
                    }
                    dir.pop();
                }
            }
        }
    }
    true
}

/// Queues a relative target's components in front of `pending`; false if not relative.
fn push_target<'a>(pending: &mut VecDeque<&'a str>, target: &'a str) -> bool {
    if target.is_empty() || target.starts_with('/') || target.contains(['\0', '\\']) {
        return false;
    }
    for component in target.split('/').rev() {
        pending.push_front(component);
    }
    true
}

/// Walks the raw central directory for a name stored twice (the zip crate keeps
/// only one entry per name, so such archives would otherwise pass unnoticed).
fn duplicate_name(zip_bytes: &[u8], start: u64, entries: usize) -> Option<String> {
    let mut seen = HashSet::new();
    let mut pos = usize::try_from(start).ok()?;
    for _ in 0..=entries {
        let header = zip_bytes.get(pos..pos.checked_add(CENTRAL_HEADER_LEN)?)?;
        if !header.starts_with(CENTRAL_HEADER_SIG) {
            return None;
        }
        let field = |at: usize| usize::from(u16::from_le_bytes([header[at], header[at + 1]]));
        let name_end = pos + CENTRAL_HEADER_LEN + field(28);
        let name = zip_bytes.get(pos + CENTRAL_HEADER_LEN..name_end)?;
        if !seen.insert(name) {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
        pos = name_end + field(30) + field(32);
    }
    None
}

/// Streams every entry's contents through the limits, into `dest` or nowhere.
fn unpack(
    archive: &mut Archive<'_>,
    plan: &Plan,
    limits: &PackageLimits,
    dest: Option<&Path>,
) -> Result<PackageInfo, PackageError> {
    let mut budget = Budget { used: 0, limits: *limits };
    for entry in &plan.entries {
        match dest {
            Some(dest) => write_entry(archive, entry, dest, &mut budget)?,
            None => count_entry(archive, entry, &mut budget)?,
        }
    }
    Ok(plan.info(budget.used))
}

fn count_entry(
    archive: &mut Archive<'_>,
    entry: &Entry,
    budget: &mut Budget,
) -> Result<(), PackageError> {
    match &entry.kind {
        Kind::Dir => Ok(()),
        Kind::Symlink { target } => budget.charge(target.len() as u64),
        Kind::File { .. } => {
            let mut file = archive.by_index(entry.index).map_err(PackageError::NotAZip)?;
            budget.copy(&mut file, &mut io::sink(), entry)
        }
    }
}

fn write_entry(
    archive: &mut Archive<'_>,
    entry: &Entry,
    dest: &Path,
    budget: &mut Budget,
) -> Result<(), PackageError> {
    let Some((_, parent)) = entry.path.split_last() else { return Ok(()) };
    match &entry.kind {
        Kind::Dir => make_dirs(dest, &entry.path, entry),
        Kind::File { executable } => {
            make_dirs(dest, parent, entry)?;
            write_file(archive, entry, &join(dest, &entry.path), *executable, budget)
        }
        Kind::Symlink { target } => {
            budget.charge(target.len() as u64)?;
            make_dirs(dest, parent, entry)?;
            Ok(std::os::unix::fs::symlink(target, join(dest, &entry.path))?)
        }
    }
}

/// Creates a regular file that must not exist yet (`O_EXCL` never follows a symlink).
fn write_file(
    archive: &mut Archive<'_>,
    entry: &Entry,
    path: &Path,
    executable: bool,
    budget: &mut Budget,
) -> Result<(), PackageError> {
    let mut out = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    let mut file = archive.by_index(entry.index).map_err(PackageError::NotAZip)?;
    budget.copy(&mut file, &mut out, entry)?;
    let mode = if executable { EXECUTABLE_MODE } else { FILE_MODE };
    out.set_permissions(Permissions::from_mode(mode))?;
    Ok(())
}

/// Creates `components` below `dest` one level at a time, refusing to pass
/// through anything that is not a real directory (symlinks included).
fn make_dirs(dest: &Path, components: &[String], entry: &Entry) -> Result<(), PackageError> {
    let mut path = dest.to_path_buf();
    for component in components {
        path.push(component);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(entry.path_error()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new().mode(DIR_MODE).create(&path)?;
                fs::set_permissions(&path, Permissions::from_mode(DIR_MODE))?;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

fn join(dest: &Path, components: &[String]) -> PathBuf {
    let mut path = dest.to_path_buf();
    path.extend(components);
    path
}

/// Running total of uncompressed bytes against the limits.
#[derive(Debug)]
struct Budget {
    used: u64,
    limits: PackageLimits,
}

impl Budget {
    fn charge(&mut self, bytes: u64) -> Result<(), PackageError> {
        self.used = self.used.saturating_add(bytes);
        check_total(self.used, &self.limits)
    }

    /// Copies one entry's decompressed bytes, stopping as soon as a limit is passed.
    fn copy(
        &mut self,
        reader: &mut impl Read,
        out: &mut impl Write,
        entry: &Entry,
    ) -> Result<(), PackageError> {
        let mut buf = vec![0; COPY_BUFFER_BYTES];
        let mut entry_bytes = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(corrupt(err)),
            };
            entry_bytes += n as u64;
            self.charge(n as u64)?;
            check_ratio(entry_bytes, entry, &self.limits)?;
            out.write_all(&buf[..n])?;
        }
    }
}

fn check_total(bytes: u64, limits: &PackageLimits) -> Result<(), PackageError> {
    if bytes > limits.max_unzipped_bytes {
        return Err(PackageError::TooLarge { limit: limits.max_unzipped_bytes });
    }
    Ok(())
}

fn check_ratio(bytes: u64, entry: &Entry, limits: &PackageLimits) -> Result<(), PackageError> {
    if bytes > limits.ratio_floor_bytes && bytes > entry.compressed.saturating_mul(limits.max_ratio)
    {
        return Err(PackageError::CompressionRatio { entry: entry.name.clone() });
    }
    Ok(())
}

/// A read error while decompressing means the archive is corrupt.
fn corrupt(err: io::Error) -> PackageError {
    PackageError::NotAZip(ZipError::Io(err))
}

fn unsafe_path(name: &str) -> PackageError {
    PackageError::UnsafePath { entry: display_name(name) }
}

/// An entry name fit for an error message: control characters escaped, length capped.
fn display_name(name: &str) -> String {
    let mut shown = String::new();
    for (count, c) in name.chars().enumerate() {
        if count == MAX_DISPLAY_CHARS {
            shown.push_str("...");
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

fn ensure_empty_dir(dest: &Path) -> Result<(), PackageError> {
    if fs::read_dir(dest)?.next().is_some() {
        let err = io::Error::new(io::ErrorKind::AlreadyExists, "destination is not empty");
        return Err(err.into());
    }
    Ok(())
}

/// Best-effort removal of everything below `dest` (which was empty before extraction).
fn clear_dir(dest: &Path) {
    let Ok(children) = fs::read_dir(dest) else { return };
    for child in children.flatten() {
        let is_dir = child.file_type().is_ok_and(|kind| kind.is_dir());
        let _ =
            if is_dir { fs::remove_dir_all(child.path()) } else { fs::remove_file(child.path()) };
    }
}

#[cfg(test)]
mod tests;
