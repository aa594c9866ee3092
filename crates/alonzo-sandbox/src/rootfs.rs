//! What a sandbox sees: the host paths bound into it, the files Alonzo provides
//! (`/var/runtime` bootstraps, a minimal `/etc`), the program to start for each runtime, and
//! Lambda's environment variables.

use std::path::{Path, PathBuf};

use alonzo_jail::Bind;

use crate::runtimes::RuntimeKind;
use crate::FunctionSpec;

/// The Python bootstrap (our own implementation of Lambda's Python runtime).
const PYTHON_BOOTSTRAP: &str = include_str!("../../../runtimes/python/bootstrap.py");
/// The Node.js bootstrap.
const NODE_BOOTSTRAP: &str = include_str!("../../../runtimes/nodejs/bootstrap.mjs");

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
    pub(crate) fn install(dir: &Path) -> std::io::Result<Self> {
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
        write_if_changed(&files.nodejs.join("bootstrap.mjs"), NODE_BOOTSTRAP)?;
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
        Ok(files)
    }
}

impl RuntimeFiles {
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

fn bind(source: impl Into<PathBuf>, target: &str) -> Bind {
    Bind { source: source.into(), target: target.to_owned(), writable: false }
}

/// The read-only binds of a sandbox for `spec`.
pub(crate) fn binds(files: &RuntimeFiles, spec: &FunctionSpec) -> Vec<Bind> {
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
    for name in ["passwd", "group", "hosts", "nsswitch.conf"] {
        out.push(bind(files.etc.join(name), &format!("/etc/{name}")));
    }
    out.push(bind(files.runtime_dir(spec), "/var/runtime"));
    out.push(bind(&spec.code_dir, "/var/task"));
    out.push(bind(spec.opt_dir.as_ref().unwrap_or(&files.empty), "/opt"));
    out
}

/// The program the sandbox starts.
pub(crate) fn argv(spec: &FunctionSpec) -> Vec<String> {
    match &spec.runtime_kind {
        // -S: no `site` (the host's site-packages and their .pth hooks are not part of the
        // runtime; on some hosts they cost tens of milliseconds per cold start).
        RuntimeKind::Python(python) => {
            vec![python.display().to_string(), "-S".into(), "/var/runtime/bootstrap.py".into()]
        }
        RuntimeKind::Node(node) => {
            vec![node.display().to_string(), "/var/runtime/bootstrap.mjs".into()]
        }
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

/// Lambda's environment for the function: reserved variables, defaults the function may
/// override, then the function's own variables.
pub(crate) fn environment(
    spec: &FunctionSpec,
    log_stream: &str,
    init_type: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin:/opt/bin".into()),
        (
            "LD_LIBRARY_PATH".into(),
            "/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib".into(),
        ),
        ("LANG".into(), "en_US.UTF-8".into()),
        ("TZ".into(), ":UTC".into()),
    ];
    if matches!(spec.runtime_kind, RuntimeKind::Python(_)) {
        env.push(("PYTHONPATH".into(), "/var/runtime".into()));
    }
    if matches!(spec.runtime_kind, RuntimeKind::Node(_)) {
        env.push((
            "NODE_PATH".into(),
            "/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task".into(),
        ));
    }
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
