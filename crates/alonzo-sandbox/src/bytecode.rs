//! Bytecode for a function package's Python modules: compiled at deployment by the function's
//! own interpreter inside a sandbox (no network, the package read-only, bounded memory, time
//! and output), checked here, and installed beside the sources in `__pycache__`, so that a cold
//! start imports bytecode instead of compiling every module of the package from source.
//!
//! The sandbox only reads the package and writes framed `(path, bytes)` records on its stdout;
//! nothing it writes reaches the host's file system except through [`install`], which accepts a
//! record only as the checked-hash `.pyc` of an existing regular `.py` file of the package
//! (see docs/sandbox.md, "Python packages").

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alonzo_jail::cgroup::{CgroupLimits, SandboxCgroup, CPU_PERIOD_US};
use alonzo_jail::JailSpec;

use crate::{rootfs, Manager, SandboxError};

/// Below this many bytes of sources without bytecode, a package is not worth a sandbox: its
/// modules compile in a few milliseconds at a cold start, and the sandbox costs more once.
pub(crate) const MIN_SOURCE_BYTES: u64 = 64 * 1024;

/// How long the compiler may run before it is killed (what it finished is kept).
const COMPILE_TIMEOUT: Duration = Duration::from_secs(60);

/// Memory of the compiling sandbox.
const COMPILE_MEMORY_BYTES: u64 = 1 << 30;

/// The largest single `.pyc` accepted.
const MAX_PYC_BYTES: usize = 64 << 20;

/// Compiles every `.py` file under its argument (`/var/task` or `/opt`) that has no bytecode
/// for this interpreter yet (a file that does not compile, e.g. Python 2 code, is skipped) and
/// writes, per module, `<u32 path length><u32 data length><path relative to the root><pyc>`.
const SCRIPT: &str = r#"import importlib.util, os, py_compile, struct, sys
out = sys.stdout.buffer
root = sys.argv[1]
mode = py_compile.PycInvalidationMode.CHECKED_HASH
for d, dirs, files in os.walk(root):
    dirs[:] = sorted(x for x in dirs if x != "__pycache__")
    for f in sorted(files):
        src = os.path.join(d, f)
        if not f.endswith(".py") or os.path.islink(src) or not os.path.isfile(src):
            continue
        cached = importlib.util.cache_from_source(src)
        if os.path.lexists(cached):
            continue
        try:
            py_compile.compile(src, cfile="/tmp/out.pyc", dfile=src, doraise=True, invalidation_mode=mode)
            with open("/tmp/out.pyc", "rb") as fh:
                data = fh.read()
        except BaseException:
            continue
        rel = os.fsencode(os.path.relpath(cached, root))
        out.write(struct.pack("<II", len(rel), len(data)) + rel + data)
out.flush()
"#;

/// Sources of a package that have no bytecode for one interpreter yet.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Pending {
    /// How many `.py` files.
    pub(crate) files: u64,
    /// Their total size.
    pub(crate) bytes: u64,
}

/// The interpreter's cache tag for runtime id `python3.X` (`cpython-3X`).
pub(crate) fn cache_tag(runtime_id: &str) -> Option<String> {
    let minor = runtime_id.strip_prefix("python3.")?;
    (!minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("cpython-3{minor}"))
}

/// Counts the regular `.py` files under `dir` (symlinks are not followed) whose
/// `__pycache__/<stem>.<tag>.pyc` is missing.
pub(crate) fn pending_sources(dir: &Path, tag: &str) -> std::io::Result<Pending> {
    let mut pending = Pending::default();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let name = entry.file_name();
            if kind.is_dir() && name != "__pycache__" {
                stack.push(entry.path());
            } else if kind.is_file() {
                let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".py")) else {
                    continue;
                };
                let pyc = dir.join("__pycache__").join(format!("{stem}.{tag}.pyc"));
                if std::fs::symlink_metadata(pyc).is_err() {
                    pending.files += 1;
                    pending.bytes += entry.metadata()?.len();
                }
            }
        }
    }
    Ok(pending)
}

impl Manager {
    /// Compiles the Python modules of the unpacked package `code_dir`, which functions see at
    /// `mount` (`/var/task` for a function's code, `/opt` for its merged layers), for runtime
    /// `runtime_id` (interpreter `python`) in a sandbox, and installs the bytecode that passes
    /// [`install`]'s checks. Returns how many modules got bytecode; 0 without isolation, with
    /// `--compile-python off`, for a small package, or when the interpreter's magic number is unknown.
    pub async fn compile_python_package(
        &self,
        runtime_id: &str,
        python: &Path,
        code_dir: &Path,
        mount: &str,
    ) -> Result<usize, SandboxError> {
        if !matches!(mount, "/var/task" | "/opt") {
            return Err(SandboxError::Spawn(format!("cannot compile a package at {mount}")));
        }
        let enabled = self.inner.isolation && self.inner.compile_python;
        let Some(parent) = self.inner.cgroups.as_ref().filter(|_| enabled) else {
            return Ok(0);
        };
        let Some(tag) = cache_tag(runtime_id) else { return Ok(0) };
        let Some(magic) = self.inner.files.python_magic(&tag) else { return Ok(0) };
        let began = Instant::now();
        let (dir, t) = (code_dir.to_owned(), tag.clone());
        let pending = tokio::task::spawn_blocking(move || pending_sources(&dir, &t))
            .await
            .map_err(|e| SandboxError::Spawn(e.to_string()))?
            .map_err(SandboxError::io("listing the package's Python files"))?;
        if pending.bytes < MIN_SOURCE_BYTES {
            return Ok(0);
        }
        let id = format!("pyc-{}", uuid::Uuid::new_v4().simple());
        let limits = CgroupLimits {
            memory_bytes: COMPILE_MEMORY_BYTES,
            cpu_quota_us: CPU_PERIOD_US,
            pids_max: 64,
        };
        let cgroup = Arc::new(
            SandboxCgroup::create(parent, &id, &limits)
                .map_err(|e| SandboxError::Spawn(format!("cgroup: {e}")))?,
        );
        let root_dir = self.inner.sandboxes_dir.join(&id);
        let spec = JailSpec {
            root_dir: root_dir.clone(),
            binds: {
                let mut binds = rootfs::common_binds(&self.inner.files);
                binds.push(rootfs::bind(code_dir, mount));
                binds
            },
            tmp_size_mb: 64,
            hostname: "localhost".into(),
            uid_base: self.next_uid_base(),
            run_as_uid: rootfs::SANDBOX_UID,
            run_as_gid: rootfs::SANDBOX_GID,
            cgroup_procs: cgroup.procs_files(),
            argv: vec![
                python.display().to_string(),
                "-I".into(),
                "-S".into(),
                "-W".into(),
                "ignore".into(),
                "-c".into(),
                SCRIPT.into(),
                mount.into(),
            ],
            env: vec![("PATH".into(), "/usr/bin:/bin".into()), ("LANG".into(), "C.UTF-8".into())],
            cwd: mount.into(),
            nofile: 256,
            nproc: 64,
            runtime_api_port: rootfs::RUNTIME_API_PORT,
            deferred: None,
            network: None,
        };
        // The records may be much larger than the sources (bytecode plus constants), never
        // absurdly so.
        let cap = usize::try_from(pending.bytes.saturating_mul(8).saturating_add(1 << 20))
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        let exe = self.inner.exe.clone();
        let result = std::fs::create_dir_all(&root_dir)
            .map_err(SandboxError::io("creating the compiler's sandbox root"));
        let output = match result {
            Ok(()) => {
                let mut run = tokio::task::spawn_blocking(move || run_compiler(&exe, &spec, cap));
                match tokio::time::timeout(COMPILE_TIMEOUT, &mut run).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        tracing::warn!(package = %code_dir.display(), "the Python compiler ran out of time; keeping what it finished");
                        let killer = Arc::clone(&cgroup);
                        let _ = tokio::task::spawn_blocking(move || killer.kill_all()).await;
                        run.await
                    }
                }
                .map_err(|e| SandboxError::Spawn(e.to_string()))
                .and_then(|r| r.map_err(SandboxError::Spawn))
            }
            Err(e) => Err(e),
        };
        let cgroup = Arc::try_unwrap(cgroup).ok();
        let root = root_dir.clone();
        let _ =
            tokio::task::spawn_blocking(move || crate::prepared::tear_down(cgroup, &root)).await;
        let output = output?;
        let dir = code_dir.to_owned();
        let installed = tokio::task::spawn_blocking(move || install(&dir, &tag, magic, &output))
            .await
            .map_err(|e| SandboxError::Spawn(e.to_string()))?;
        tracing::info!(
            package = %code_dir.display(),
            sources = pending.files,
            installed,
            ms = began.elapsed().as_millis() as u64,
            "compiled the package's Python modules"
        );
        Ok(installed)
    }
}

/// Runs the compiler sandbox to its end and returns at most `cap` bytes of its stdout.
fn run_compiler(exe: &Path, spec: &JailSpec, cap: usize) -> Result<Vec<u8>, String> {
    let mut jail = alonzo_jail::spawn(exe, spec).map_err(|e| e.to_string())?;
    drop(jail.runtime_api);
    let mut stderr = jail.stderr;
    // Drained on its own thread so that a chatty compiler never blocks on a full pipe.
    let errors = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut stderr).take(4096).read_to_end(&mut kept);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        kept
    });
    let mut out = Vec::new();
    let read = (&mut jail.stdout).take(cap as u64).read_to_end(&mut out);
    // Past the cap the rest is discarded, so that the compiler can finish and exit.
    let _ = std::io::copy(&mut jail.stdout, &mut std::io::sink());
    let status = jail.child.wait();
    let errors = errors.join().unwrap_or_default();
    if let Err(e) = read {
        return Err(format!("reading the compiler's output: {e}"));
    }
    if !matches!(status, Ok(s) if s.success()) {
        tracing::debug!(
            ?status,
            stderr = %String::from_utf8_lossy(&errors),
            "the Python compiler did not finish cleanly; keeping its complete records"
        );
    }
    Ok(out)
}

/// Installs each complete record of `output` that is the checked-hash bytecode (`magic`,
/// flags 3) of an existing regular `<dir>/<stem>.py` of the package at
/// `<dir>/__pycache__/<stem>.<tag>.pyc`, where nothing exists yet; no path component may be a
/// symlink. Each file is written under a temporary name and renamed, so a runtime importing
/// concurrently never reads half of one. Returns how many were installed.
pub(crate) fn install(code_dir: &Path, tag: &str, magic: [u8; 4], output: &[u8]) -> usize {
    let mut installed = 0;
    let mut rest = output;
    while rest.len() >= 8 {
        let path_len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let data_len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let Some(record) = rest.get(8..8usize.saturating_add(path_len).saturating_add(data_len))
        else {
            break; // cut short: the compiler was killed or hit the cap
        };
        rest = &rest[8 + path_len + data_len..];
        let (path, data) = record.split_at(path_len);
        match checked_target(code_dir, tag, magic, path, data) {
            Ok(target) => match write_new(&target, data) {
                Ok(()) => installed += 1,
                Err(e) => {
                    tracing::debug!(target = %target.display(), error = %e, "bytecode not installed")
                }
            },
            Err(why) => {
                tracing::debug!(path = %String::from_utf8_lossy(path), why, "bytecode refused");
            }
        }
    }
    installed
}

/// Where the record `path`/`data` may be installed, or why not.
fn checked_target(
    code_dir: &Path,
    tag: &str,
    magic: [u8; 4],
    path: &[u8],
    data: &[u8],
) -> Result<PathBuf, &'static str> {
    if data.len() < 16 || data.len() > MAX_PYC_BYTES {
        return Err("size");
    }
    if data[..4] != magic {
        return Err("magic number of another interpreter");
    }
    if u32::from_le_bytes([data[4], data[5], data[6], data[7]]) != 0b11 {
        return Err("not checked-hash bytecode");
    }
    let path = std::str::from_utf8(path).map_err(|_| "path is not UTF-8")?;
    let rel = Path::new(path);
    let plain: PathBuf = rel.components().collect();
    if !rel.components().all(|c| matches!(c, Component::Normal(_)))
        || plain.as_os_str() != rel.as_os_str()
    {
        return Err("path is not plain and relative");
    }
    let name = rel.file_name().and_then(|n| n.to_str()).ok_or("no file name")?;
    let stem = name
        .strip_suffix(".pyc")
        .and_then(|n| n.strip_suffix(tag))
        .and_then(|n| n.strip_suffix('.'))
        .filter(|s| !s.is_empty())
        .ok_or("not this interpreter's bytecode name")?;
    let cache_dir = rel.parent().ok_or("no directory")?;
    if cache_dir.file_name() != Some("__pycache__".as_ref()) {
        return Err("not in __pycache__");
    }
    let source_dir = cache_dir.parent().unwrap_or(Path::new(""));
    // Every directory from the package root down to the source's must be a real directory.
    let mut walked = code_dir.to_owned();
    for part in source_dir.components() {
        walked.push(part);
        match std::fs::symlink_metadata(&walked) {
            Ok(meta) if meta.is_dir() => {}
            _ => return Err("source directory is missing or a symlink"),
        }
    }
    match std::fs::symlink_metadata(walked.join(format!("{stem}.py"))) {
        Ok(meta) if meta.is_file() => {}
        _ => return Err("no regular source file"),
    }
    let cache = walked.join("__pycache__");
    match std::fs::symlink_metadata(&cache) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err("__pycache__ is not a directory"),
        Err(_) => std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&cache)
            .or_else(
                |e| if e.kind() == std::io::ErrorKind::AlreadyExists { Ok(()) } else { Err(e) },
            )
            .map_err(|_| "cannot create __pycache__")?,
    }
    Ok(cache.join(name))
}

/// Writes `data` at `target` through a temporary file and a rename that never replaces.
fn write_new(target: &Path, data: &[u8]) -> std::io::Result<()> {
    if std::fs::symlink_metadata(target).is_ok() {
        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".alonzo-{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(data));
    let renamed = written.and_then(|()| {
        // A hard link fails if the target exists (rename would replace it).
        std::fs::hard_link(&tmp, target)
    });
    let _ = std::fs::remove_file(&tmp);
    renamed
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = [0xa7, 0x0d, 0x0d, 0x0a];
    const TAG: &str = "cpython-311";

    fn pyc(flags: u32) -> Vec<u8> {
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&flags.to_le_bytes());
        data.extend_from_slice(&[7u8; 8]);
        data.extend_from_slice(b"code");
        data
    }

    fn record(path: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (path.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn package() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg/sub")).unwrap();
        std::fs::write(dir.path().join("index.py"), "x = 1\n").unwrap();
        std::fs::write(dir.path().join("pkg/mod.py"), "y = 2\n").unwrap();
        std::fs::write(dir.path().join("pkg/sub/deep.py"), "z = 3\n").unwrap();
        dir
    }

    #[test]
    fn cache_tags_follow_the_runtime_id() {
        assert_eq!(cache_tag("python3.11").as_deref(), Some("cpython-311"));
        assert_eq!(cache_tag("python3.9").as_deref(), Some("cpython-39"));
        assert_eq!(cache_tag("nodejs20.x"), None);
        assert_eq!(cache_tag("python3.x"), None);
        assert_eq!(cache_tag("python3."), None);
    }

    #[test]
    fn valid_records_are_installed_beside_their_sources() {
        let dir = package();
        let mut out = record("__pycache__/index.cpython-311.pyc", &pyc(3));
        out.extend(record("pkg/sub/__pycache__/deep.cpython-311.pyc", &pyc(3)));
        assert_eq!(install(dir.path(), TAG, MAGIC, &out), 2);
        let installed = std::fs::read(dir.path().join("pkg/sub/__pycache__/deep.cpython-311.pyc"));
        assert_eq!(installed.unwrap(), pyc(3));
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("__pycache__")).unwrap().collect();
        assert_eq!(left.len(), 1);
        assert_eq!(pending_sources(dir.path(), TAG).unwrap(), Pending { files: 1, bytes: 6 });
    }

    #[test]
    fn bad_records_are_refused_and_change_nothing() {
        let dir = package();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("evil.py"), "e = 1\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let bad = [
            record("../__pycache__/index.cpython-311.pyc", &pyc(3)),
            record("/etc/__pycache__/index.cpython-311.pyc", &pyc(3)),
            record("__pycache__/index.cpython-312.pyc", &pyc(3)),
            record("__pycache__/missing.cpython-311.pyc", &pyc(3)),
            record("__pycache__/index.cpython-311.pyc", &pyc(0)),
            record("__pycache__/index.cpython-311.pyc", &[0u8; 20]),
            record("__pycache__/index.cpython-311.pyc", &MAGIC),
            record("pkg/mod.cpython-311.pyc", &pyc(3)),
            record("link/__pycache__/evil.cpython-311.pyc", &pyc(3)),
            record("pkg/./__pycache__/mod.cpython-311.pyc", &pyc(3)),
            record("pkg//__pycache__/mod.cpython-311.pyc", &pyc(3)),
        ];
        for out in &bad {
            assert_eq!(
                install(dir.path(), TAG, MAGIC, out),
                0,
                "{:?}",
                String::from_utf8_lossy(out)
            );
        }
        assert!(!dir.path().join("__pycache__").exists());
        assert!(!outside.path().join("__pycache__").exists());
        // A truncated stream installs its complete records only.
        let mut out = record("__pycache__/index.cpython-311.pyc", &pyc(3));
        let second = record("pkg/__pycache__/mod.cpython-311.pyc", &pyc(3));
        out.extend_from_slice(&second[..second.len() - 1]);
        assert_eq!(install(dir.path(), TAG, MAGIC, &out), 1);
        assert!(!dir.path().join("pkg/__pycache__/mod.cpython-311.pyc").exists());
    }

    #[test]
    fn existing_bytecode_is_never_replaced() {
        let dir = package();
        std::fs::create_dir(dir.path().join("__pycache__")).unwrap();
        std::fs::write(dir.path().join("__pycache__/index.cpython-311.pyc"), b"shipped").unwrap();
        let out = record("__pycache__/index.cpython-311.pyc", &pyc(3));
        assert_eq!(install(dir.path(), TAG, MAGIC, &out), 0);
        let kept = std::fs::read(dir.path().join("__pycache__/index.cpython-311.pyc")).unwrap();
        assert_eq!(kept, b"shipped");
        // A symlinked __pycache__ is not written through.
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("pkg/__pycache__")).unwrap();
        let out = record("pkg/__pycache__/mod.cpython-311.pyc", &pyc(3));
        assert_eq!(install(dir.path(), TAG, MAGIC, &out), 0);
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
