//! What a sandbox sees: the host paths bound into it, the files Alonzo provides
//! (`/var/runtime` bootstraps, a minimal `/etc`), the program to start for each runtime, and
//! Lambda's environment variables.

use std::path::{Path, PathBuf};

use alonzo_jail::Bind;

use crate::runtimes::RuntimeKind;
use crate::FunctionSpec;

/// The Python runtime's program: a stub that imports [`PYTHON_RUNTIME`].
const PYTHON_BOOTSTRAP: &str = include_str!("../../../runtimes/python/bootstrap.py");
/// Our own implementation of Lambda's Python runtime, a module so that its bytecode is
/// compiled once per interpreter ([`RuntimeFiles::compile_python`]), not at every start.
const PYTHON_RUNTIME: &str = include_str!("../../../runtimes/python/alonzo_bootstrap.py");
/// The Node.js bootstrap.
const NODE_BOOTSTRAP: &str = include_str!("../../../runtimes/nodejs/bootstrap.mjs");
/// Modules a Node.js runtime started ahead loads once while it waits (`warmUp`).
const NODE_WARM_UP_CJS: &str = include_str!("../../../runtimes/nodejs/warm-up.cjs");
const NODE_WARM_UP_MJS: &str = include_str!("../../../runtimes/nodejs/warm-up.mjs");

/// Port of the Runtime API inside every sandbox (its own network namespace).
pub(crate) const RUNTIME_API_PORT: u16 = 9001;
/// Lambda's sandbox user and group ids.
pub(crate) const SANDBOX_UID: u32 = 993;
pub(crate) const SANDBOX_GID: u32 = 990;

/// Files shared by all sandboxes, written once at start-up under `<data>/runtime`.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeFiles {
    python: PathBuf,
    nodejs: PathBuf,
    etc: PathBuf,
    empty: PathBuf,
}

impl RuntimeFiles {
    /// Writes the bootstraps and the sandbox's `/etc` files.
    pub(crate) fn install(dir: &Path, dns: &[std::net::Ipv4Addr]) -> std::io::Result<Self> {
        let files = Self {
            python: dir.join("python"),
            nodejs: dir.join("nodejs"),
            etc: dir.join("etc"),
            empty: dir.join("empty"),
        };
        for d in [&files.python, &files.nodejs, &files.etc, &files.empty] {
            std::fs::create_dir_all(d)?;
        }
        write_if_changed(&files.python.join("bootstrap.py"), PYTHON_BOOTSTRAP)?;
        write_if_changed(&files.python.join("alonzo_bootstrap.py"), PYTHON_RUNTIME)?;
        write_if_changed(&files.nodejs.join("bootstrap.mjs"), NODE_BOOTSTRAP)?;
        write_if_changed(&files.nodejs.join("warm-up.cjs"), NODE_WARM_UP_CJS)?;
        write_if_changed(&files.nodejs.join("warm-up.mjs"), NODE_WARM_UP_MJS)?;
        write_if_changed(
            &files.etc.join("passwd"),
            "root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n",
        )?;
        write_if_changed(
            &files.etc.join("group"),
            "root:x:0:\nsbx_user1051:x:990:\nnogroup:x:65534:\n",
        )?;
        write_if_changed(&files.etc.join("hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost\n")?;
        write_if_changed(
            &files.etc.join("nsswitch.conf"),
            "passwd: files\ngroup: files\nhosts: files dns\n",
        )?;
        write_if_changed(&files.etc.join("resolv.conf"), &crate::network::resolv_conf(dns))?;
        Ok(files)
    }
}

impl RuntimeFiles {
    /// The directory mounted at `/var/runtime` for Python runtimes.
    pub(crate) fn python_dir(&self) -> &Path {
        &self.python
    }

    /// Compiles the Python runtime module to bytecode for `python`, in the bootstrap
    /// directory's `__pycache__` where that interpreter's import system looks for it (named
    /// with its version's cache tag). Compiling its 900 lines took about 15 ms of every cold
    /// start; sandboxes cannot write the cache themselves (`/var/runtime` is read-only).
    /// The bytecode records a hash of the source (`CHECKED_HASH`), so an interpreter never
    /// runs bytecode of another version of the file: it compiles the source instead.
    pub(crate) fn compile_python(&self, python: &Path) -> std::io::Result<()> {
        const SCRIPT: &str = "import py_compile, sys\n\
            py_compile.compile(sys.argv[1], dfile='/var/runtime/alonzo_bootstrap.py', \
            doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)\n";
        let out = std::process::Command::new(python)
            .args(["-I", "-S", "-c", SCRIPT])
            .arg(self.python.join("alonzo_bootstrap.py"))
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "{} exited with {}: {}",
                python.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Whether the runtime module's bytecode for runtime `id` (`python3.X`, cache tag
    /// `cpython-3X`) is at least as new as its source: the source is only rewritten when it
    /// changed, so a server restarted without an upgrade compiles nothing.
    pub(crate) fn python_bytecode_current(&self, id: &str) -> bool {
        let Some(minor) = id.strip_prefix("python3.") else { return false };
        let pyc = self.python.join(format!("__pycache__/alonzo_bootstrap.cpython-3{minor}.pyc"));
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        match (modified(&pyc), modified(&self.python.join("alonzo_bootstrap.py"))) {
            (Some(compiled), Some(source)) => compiled >= source,
            _ => false,
        }
    }

    /// The magic number of the interpreter with cache tag `tag` (`cpython-311`), from the
    /// header of the runtime module's bytecode that interpreter compiled at start-up.
    pub(crate) fn python_magic(&self, tag: &str) -> Option<[u8; 4]> {
        let pyc = self.python.join(format!("__pycache__/alonzo_bootstrap.{tag}.pyc"));
        let mut magic = [0u8; 4];
        std::io::Read::read_exact(&mut std::fs::File::open(pyc).ok()?, &mut magic).ok()?;
        Some(magic)
    }

    /// The host directory mounted at `/var/runtime` for `spec`'s runtime.
    pub(crate) fn runtime_dir(&self, spec: &FunctionSpec) -> &Path {
        match spec.runtime_kind {
            RuntimeKind::Python(_) => &self.python,
            RuntimeKind::Node(_) => &self.nodejs,
            RuntimeKind::Provided => &self.empty,
        }
    }
}

fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// A read-only bind of host `source` at `target` inside the sandbox.
pub(crate) fn bind(source: impl Into<PathBuf>, target: &str) -> Bind {
    Bind { source: source.into(), target: target.to_owned(), writable: false }
}

/// The read-only binds of a sandbox for `spec`.
pub(crate) fn binds(files: &RuntimeFiles, spec: &FunctionSpec) -> Vec<Bind> {
    let mut out = common_binds(files);
    out.extend(function_binds(files, spec, true));
    out
}

/// The sandbox paths a sandbox built ahead leaves for its function: the function's code and
/// layers, and also the runtime unless the runtime started ahead.
pub(crate) fn deferred_targets(runtime_started: bool) -> Vec<String> {
    let mut out = vec!["/var/task".to_owned(), "/opt".to_owned()];
    if !runtime_started {
        out.insert(0, "/var/runtime".to_owned());
    }
    out
}

/// The binds of `spec`'s own files: its runtime's bootstrap (`with_runtime`), code and layers.
pub(crate) fn function_binds(
    files: &RuntimeFiles,
    spec: &FunctionSpec,
    with_runtime: bool,
) -> Vec<Bind> {
    let mut out = Vec::new();
    if with_runtime {
        out.push(bind(files.runtime_dir(spec), "/var/runtime"));
    }
    out.push(bind(&spec.code_dir, "/var/task"));
    out.push(bind(spec.opt_dir.as_ref().unwrap_or(&files.empty), "/opt"));
    out
}

/// The binds every sandbox has: the host's system directories and Alonzo's `/etc` files.
pub(crate) fn common_binds(files: &RuntimeFiles) -> Vec<Bind> {
    let mut out = Vec::new();
    for dir in ["/usr", "/lib", "/lib64", "/bin", "/sbin"] {
        if Path::new(dir).exists() {
            out.push(bind(dir, dir));
        }
    }
    for file in ["/etc/ld.so.cache", "/etc/localtime", "/etc/mime.types"] {
        if Path::new(file).is_file() {
            out.push(bind(file, file));
        }
    }
    for dir in ["/etc/ssl", "/etc/alternatives", "/etc/ca-certificates"] {
        if Path::new(dir).is_dir() {
            out.push(bind(dir, dir));
        }
    }
    for name in ["passwd", "group", "hosts", "nsswitch.conf", "resolv.conf"] {
        out.push(bind(files.etc.join(name), &format!("/etc/{name}")));
    }
    out
}

/// The bootstrap directory of `kind`, for a runtime started ahead.
pub(crate) fn runtime_dir_bind(files: &RuntimeFiles, kind: &RuntimeKind) -> Bind {
    match kind {
        RuntimeKind::Python(_) => bind(&files.python, "/var/runtime"),
        RuntimeKind::Node(_) => bind(&files.nodejs, "/var/runtime"),
        RuntimeKind::Provided => bind(&files.empty, "/var/runtime"),
    }
}

/// The program of a managed runtime (Python or Node.js); `None` for custom runtimes.
pub(crate) fn runtime_argv(kind: &RuntimeKind) -> Option<Vec<String>> {
    match kind {
        RuntimeKind::Python(python) => Some(python_argv(python)),
        RuntimeKind::Node(node) => {
            Some(vec![node.display().to_string(), "/var/runtime/bootstrap.mjs".into()])
        }
        RuntimeKind::Provided => None,
    }
}

/// The program of a Python runtime.
fn python_argv(python: &Path) -> Vec<String> {
    // -S: no `site` (the host's site-packages and their .pth hooks are not part of the
    // runtime; on some hosts they cost tens of milliseconds per cold start).
    vec![python.display().to_string(), "-S".into(), "/var/runtime/bootstrap.py".into()]
}

/// The environment a managed runtime starts with before it knows its function: exactly the
/// defaults [`environment`] gives every function of that runtime, and the descriptor on which
/// the bootstrap reads its function's environment first (the jail puts the pipe there).
pub(crate) fn started_environment(kind: &RuntimeKind) -> Vec<(String, String)> {
    let mut env = base_environment(
        matches!(kind, RuntimeKind::Python(_)),
        matches!(kind, RuntimeKind::Node(_)),
    );
    env.push(("_RUNTIME_ASSIGNMENT_FD".into(), "3".into()));
    env
}

/// Variables the interpreter, Node.js, OpenSSL or the C library read when the process starts
/// (locale, time zone, dynamic loader, allocator, the runtimes' own start-up options): a
/// function that sets one of them needs a runtime started with its environment, not one
/// started ahead.
pub(crate) fn affects_process_start(key: &str) -> bool {
    ["PYTHON", "NODE_", "UV_", "OPENSSL_", "LD_", "LC_", "MALLOC_"]
        .iter()
        .any(|p| key.starts_with(p))
        || ["LANG", "LANGUAGE", "TZ", "GLIBC_TUNABLES", "AWS_LAMBDA_EXEC_WRAPPER"].contains(&key)
}

/// The assignment message for a runtime started ahead: the working directory, then each
/// `KEY=VALUE` of the environment, NUL-terminated, and an empty entry at the end (neither
/// can contain NUL; the jail checks).
pub(crate) fn assignment_message(cwd: &str, env: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(cwd.as_bytes());
    out.push(0);
    for (k, v) in env {
        out.extend_from_slice(format!("{k}={v}").as_bytes());
        out.push(0);
    }
    out.push(0);
    out
}

/// The program the sandbox starts.
pub(crate) fn argv(spec: &FunctionSpec) -> Vec<String> {
    match &spec.runtime_kind {
        // -S: no `site` (the host's site-packages and their .pth hooks are not part of the
        // runtime; on some hosts they cost tens of milliseconds per cold start).
        RuntimeKind::Python(python) => python_argv(python),
        RuntimeKind::Node(_) => runtime_argv(&spec.runtime_kind).unwrap_or_default(),
        RuntimeKind::Provided => {
            let bootstrap = if spec.code_dir.join("bootstrap").exists() {
                "/var/task/bootstrap"
            } else {
                "/opt/bootstrap"
            };
            vec![bootstrap.into()]
        }
    }
}

/// The defaults every function of a runtime starts with, before its own variables.
fn base_environment(python: bool, node: bool) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin:/opt/bin".into()),
        (
            "LD_LIBRARY_PATH".into(),
            "/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib".into(),
        ),
        ("LANG".into(), "en_US.UTF-8".into()),
        ("TZ".into(), ":UTC".into()),
    ];
    if python {
        env.push(("PYTHONPATH".into(), "/var/runtime".into()));
    }
    if node {
        env.push((
            "NODE_PATH".into(),
            "/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task".into(),
        ));
    }
    env
}

/// Lambda's environment for the function: reserved variables, defaults the function may
/// override, then the function's own variables.
pub(crate) fn environment(
    spec: &FunctionSpec,
    log_stream: &str,
    init_type: &str,
    network_env: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env = base_environment(
        matches!(spec.runtime_kind, RuntimeKind::Python(_)),
        matches!(spec.runtime_kind, RuntimeKind::Node(_)),
    );
    // The platform's endpoint and credentials, which the function's own variables may
    // override.
    env.extend(network_env.iter().cloned());
    for (k, v) in &spec.environment {
        env.retain(|(key, _)| key != k);
        env.push((k.clone(), v.clone()));
    }
    let reserved = [
        ("_HANDLER", spec.handler.clone()),
        ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{RUNTIME_API_PORT}")),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
        ("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", spec.version.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", spec.log_group.clone()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", init_type.to_owned()),
        ("AWS_REGION", spec.region.clone()),
        ("AWS_DEFAULT_REGION", spec.region.clone()),
        ("AWS_LAMBDA_LOG_FORMAT", spec.log_format.clone()),
    ];
    for (k, v) in reserved {
        env.retain(|(key, _)| key != k);
        env.push((k.to_owned(), v));
    }
    if let Some(level) = &spec.application_log_level {
        env.retain(|(key, _)| key != "AWS_LAMBDA_LOG_LEVEL");
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), level.clone()));
    }
    if !spec.runtime.starts_with("provided") {
        env.push(("AWS_EXECUTION_ENV".into(), format!("AWS_Lambda_{}", spec.runtime)));
    }
    env
}
