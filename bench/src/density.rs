//! The density phase: N idle warm Python environments are created (N parallel calls of a
//! function that sleeps, then idle), the proportional memory (PSS) of every process the
//! server started is summed, and warm invoke latency is measured with them all idle. The
//! figure is memory per idle environment, measured against the server's own before.

use std::net::SocketAddr;

use crate::scenarios::{self, Kind, Op};
use crate::stats::Samples;

/// What the phase measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Density {
    /// Idle environments held.
    pub(crate) n: usize,
    /// PSS of the server and its descendants before and after, KiB.
    pub(crate) pss_before_kib: u64,
    pub(crate) pss_after_kib: u64,
    /// Warm invoke latency of another function with the environments idle.
    pub(crate) warm: Samples,
    /// Calls that failed to get an environment, and the first error.
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
}

impl Density {
    /// Memory per idle environment, MiB.
    pub(crate) fn per_environment_mib(&self) -> f64 {
        (self.pss_after_kib.saturating_sub(self.pss_before_kib)) as f64 / 1024.0 / self.n as f64
    }
}

/// The PSS (KiB) of process `root` and all its descendants (threads are not counted twice).
pub(crate) fn pss_tree_kib(root: u32) -> u64 {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                // The fields after the command name, which may contain spaces.
                if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                    if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok())
                    {
                        parents.push((pid, ppid));
                    }
                }
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// Warm latency of `warm_name` while the environments are idle.
pub(crate) async fn warm_latency(addr: SocketAddr, warm_name: &str) -> anyhow::Result<Samples> {
    let op = Op::Invoke { name: warm_name.into(), kind: Kind::Python };
    scenarios::sequential(addr, &op, 200, 2000).await
}
