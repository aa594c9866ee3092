//! TEMPORARY STUB: the real jail crate is being written; this only lets dependants compile.
#![allow(missing_docs, missing_debug_implementations, clippy::missing_errors_doc)]
use std::path::{Path, PathBuf};

pub mod spawn {
    use super::*;
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct JailSpec {
        pub root_dir: PathBuf, pub binds: Vec<Bind>, pub tmp_size_mb: u64, pub hostname: String,
        pub uid_base: u32, pub run_as_uid: u32, pub run_as_gid: u32, pub cgroup_procs: Vec<PathBuf>,
        pub argv: Vec<String>, pub env: Vec<(String, String)>, pub cwd: String, pub nofile: u64, pub nproc: u64,
        pub runtime_api_port: u16,
    }
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct Bind { pub source: PathBuf, pub target: String, pub writable: bool }
    pub struct Jail { pub child: std::process::Child, pub stdout: std::process::ChildStdout, pub stderr: std::process::ChildStderr, pub runtime_api: std::net::TcpListener }
    #[derive(Debug, thiserror::Error)]
    #[error("jail")]
    pub struct JailError;
    pub fn spawn(_exe: &Path, _spec: &JailSpec) -> Result<Jail, JailError> { Err(JailError) }
    pub fn main_if_jail() {}
}
pub mod cgroup {
    use super::*;
    #[derive(Debug)]
    pub enum CgroupLayout { V2 { root: PathBuf } }
    #[derive(Debug, thiserror::Error)]
    #[error("cgroup")]
    pub struct CgroupError;
    impl CgroupLayout { pub fn detect() -> Result<Self, CgroupError> { Err(CgroupError) } }
    pub struct CgroupLimits { pub memory_bytes: u64, pub cpu_quota_us: u64, pub pids_max: u64 }
    #[derive(Debug)]
    pub struct CgroupParent;
    impl CgroupParent { pub fn create(_l: &CgroupLayout, _n: &str) -> Result<Self, CgroupError> { Err(CgroupError) } pub fn remove(&self) {} }
    #[derive(Debug)]
    pub struct SandboxCgroup;
    impl SandboxCgroup {
        pub fn create(_p: &CgroupParent, _id: &str, _l: &CgroupLimits) -> Result<Self, CgroupError> { Err(CgroupError) }
        pub fn procs_files(&self) -> Vec<PathBuf> { vec![] }
        pub fn memory_peak_bytes(&self) -> Option<u64> { None }
        pub fn oom_killed(&self) -> bool { false }
        pub fn kill_all(&self) {}
        pub fn remove(self) {}
    }
}
pub use spawn::{main_if_jail, spawn, Bind, Jail, JailError, JailSpec};
