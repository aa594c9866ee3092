//! Deployment-package (`.zip`) validation and safe extraction.
//!
//! This module owns everything Alonzo does with the contents of a Lambda
//! deployment package, which arrives from an untrusted client. [`inspect`]
//! validates an archive without touching the filesystem; [`extract`] unpacks it
//! into an empty directory (a sandbox's `/var/task`). Both apply the same rules
//! before any byte is written: the archive must parse, every entry path must stay
//! inside the root (no `..`, absolute paths, drive letters, backslashes or NUL
//! bytes), no path may be claimed twice or pass through a file or symlink, and
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

/// Splits an entry name into safe components, or `None` if it could escape the root.
fn entry_path(name: &str) -> Option<Vec<String>> {
    if name.contains(['\0', '\\']) || name.starts_with('/') || has_drive_prefix(name) {
        return None;
    }
    let mut components = Vec::new();
    for component in name.split('/') {
        match component {
            "" | "." => {}
            ".." => return None,
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
mod tests {
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
        let starts: Vec<usize> = bytes
            .windows(from.len())
            .enumerate()
            .filter(|(_, w)| *w == from)
            .map(|(i, _)| i)
            .collect();
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
        assert_eq!(
            info,
            PackageInfo { entries: 5, unzipped_bytes: bytes, has_root_bootstrap: true }
        );
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
        let err = extract(&files(&[("../evil", b"x")]), dest.path(), &PackageLimits::default())
            .unwrap_err();
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
        let compressed = ZipArchive::new(Cursor::new(&zip[..]))
            .unwrap()
            .by_index_raw(0)
            .unwrap()
            .compressed_size();
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
}
