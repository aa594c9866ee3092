//! Development mode without isolation (`alonzo serve --insecure-no-isolation`): the runtime
//! is a plain child process in its own process group, with its Runtime API on an ephemeral
//! host loopback port and its code at its host path. Nothing confines it: it sees the host
//! and other functions, and memory limits and OOM detection do not apply.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::rootfs::{self, RuntimeFiles};
use crate::{FunctionSpec, SandboxError};

/// A started runtime process.
pub(crate) struct Spawned {
    pub(crate) child: alonzo_jail::JailProcess,
    pub(crate) stdout: std::process::ChildStdout,
    pub(crate) stderr: std::process::ChildStderr,
    pub(crate) runtime_api: std::net::TcpListener,
    /// The sandbox's network address slot, held until the process has exited.
    pub(crate) slot: Option<crate::network::SlotGuard>,
}

/// Starts the runtime for `spec` as a child process.
pub(crate) fn spawn(
    files: &RuntimeFiles,
    spec: &FunctionSpec,
    log_stream: &str,
    init_type: &str,
) -> Result<Spawned, SandboxError> {
    let runtime_api = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(SandboxError::io("binding the Runtime API"))?;
    let port =
        runtime_api.local_addr().map_err(SandboxError::io("reading the Runtime API port"))?.port();
    let mut env = rootfs::environment(spec, log_stream, init_type, &[]);
    let runtime_dir = files.runtime_dir(spec);
    for (key, value) in &mut env {
        match key.as_str() {
            "AWS_LAMBDA_RUNTIME_API" => *value = format!("127.0.0.1:{port}"),
            "LAMBDA_TASK_ROOT" => *value = spec.code_dir.display().to_string(),
            "LAMBDA_RUNTIME_DIR" => *value = runtime_dir.display().to_string(),
            _ => {}
        }
    }
    let mut argv = rootfs::argv(spec);
    for arg in &mut argv {
        if let Some(rest) = arg.strip_prefix("/var/runtime/") {
            *arg = runtime_dir.join(rest).display().to_string();
        } else if let Some(rest) = arg.strip_prefix("/var/task/") {
            *arg = spec.code_dir.join(rest).display().to_string();
        }
    }
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(env)
        .current_dir(&spec.code_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(SandboxError::io("starting the runtime"))?;
    let stdout = child.stdout.take().ok_or_else(|| SandboxError::Spawn("no stdout pipe".into()))?;
    let stderr = child.stderr.take().ok_or_else(|| SandboxError::Spawn("no stderr pipe".into()))?;
    Ok(Spawned { child: child.into(), stdout, stderr, runtime_api, slot: None })
}
