//! Spawn latency, measured and printed: from calling `spawn` to the program's first byte on
//! stdout, for a trivial program, without and with a sandbox cgroup. Only a gross regression
//! fails the test; the figures are for reading (build with `--release` for meaningful ones).

use std::io::Read;
use std::time::{Duration, Instant};

use alonzo_jail::cgroup::{CgroupLimits, SandboxCgroup, CPU_PERIOD_US};
use alonzo_jail::spawn::{exit_code, spawn, JailSpec};

use crate::{cgroup_parent, spec, Case, Needs};

pub(crate) const CASES: &[Case] = &[
    ("spawn_latency_without_cgroups", Needs::Sandbox, spawn_latency_without_cgroups),
    ("spawn_latency_with_cgroups", Needs::Cgroups, spawn_latency_with_cgroups),
    ("spawn_latency_with_a_veth", Needs::Sandbox, spawn_latency_with_a_veth),
];

const RUNS: usize = 20;

/// One run: (time until `spawn` returned, time until the first byte of stdout).
fn measure(spec: &JailSpec) -> (Duration, Duration) {
    let started = Instant::now();
    let mut jail = spawn(&std::env::current_exe().unwrap(), spec).unwrap();
    let returned = started.elapsed();
    let mut byte = [0u8; 1];
    assert_eq!(jail.stdout.read(&mut byte).unwrap(), 1);
    let first_output = started.elapsed();
    assert_eq!(exit_code(jail.child.wait().unwrap()), 0);
    (returned, first_output)
}

fn report(what: &str, mut samples: Vec<(Duration, Duration)>) -> Duration {
    let mut returned: Vec<Duration> = samples.iter().map(|s| s.0).collect();
    samples.sort_by_key(|s| s.1);
    returned.sort();
    let output: Vec<Duration> = samples.iter().map(|s| s.1).collect();
    let pct = |v: &[Duration], p: usize| v[(v.len() - 1) * p / 100];
    println!(
        "    {what}: first output median {:.2?} (min {:.2?}, p90 {:.2?}); spawn() returned after median {:.2?}",
        pct(&output, 50),
        output[0],
        pct(&output, 90),
        pct(&returned, 50),
    );
    pct(&output, 50)
}

fn spawn_latency_without_cgroups() {
    let spec = spec(&["/usr/bin/echo", "hi"]);
    measure(&spec);
    let samples = (0..RUNS).map(|_| measure(&spec)).collect();
    let median = report(&format!("{RUNS} spawns of echo, no cgroup"), samples);
    assert!(median < Duration::from_millis(250), "median spawn latency {median:?}");
}

fn spawn_latency_with_cgroups() {
    let limits =
        CgroupLimits { memory_bytes: 128 << 20, cpu_quota_us: CPU_PERIOD_US, pids_max: 64 };
    let mut create = Vec::new();
    let mut samples = Vec::new();
    let mut peaks = Vec::new();
    for run in 0..RUNS {
        let started = Instant::now();
        let cgroup =
            SandboxCgroup::create(cgroup_parent(), &format!("lat-{run}"), &limits).unwrap();
        create.push(started.elapsed());
        let mut spec = spec(&["/usr/bin/echo", "hi"]);
        spec.cgroup_procs = cgroup.procs_files();
        samples.push(measure(&spec));
        peaks.push(cgroup.memory_peak_bytes().unwrap_or(0));
        cgroup.remove();
    }
    create.sort();
    peaks.sort_unstable();
    println!(
        "    memory charged to a sandbox running echo: median peak {} KiB",
        peaks[RUNS / 2] >> 10
    );
    let fresh = report(&format!("{RUNS} spawns of echo, each in a fresh cgroup"), samples);
    // Moving a process into a cgroup can wait for an RCU grace period when no migration
    // happened recently (platform-facts.md): measure spawns after an idle gap too.
    let mut idle_samples = Vec::new();
    for run in 0..10 {
        let cgroup =
            SandboxCgroup::create(cgroup_parent(), &format!("idle-{run}"), &limits).unwrap();
        let mut spec = spec(&["/usr/bin/echo", "hi"]);
        spec.cgroup_procs = cgroup.procs_files();
        std::thread::sleep(Duration::from_millis(100));
        idle_samples.push(measure(&spec));
        cgroup.remove();
    }
    report("10 spawns of echo in a fresh cgroup after 100 ms idle", idle_samples);
    println!("    creating a sandbox cgroup: median {:.2?}", create[RUNS / 2]);
    assert!(fresh < Duration::from_millis(250), "median spawn latency {fresh:?}");
}

/// The cost of a sandbox's external interface: spawns with and without one, interleaved so that
/// load on the machine affects both alike.
fn spawn_latency_with_a_veth() {
    let plain = spec(&["/usr/bin/echo", "hi"]);
    measure(&plain);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        // A pause lets the kernel free the previous sandbox's namespace (and veth) first, as
        // between the cold starts of a server; back to back, that teardown holds the RTNL lock
        // the next veth needs and adds several milliseconds.
        std::thread::sleep(Duration::from_millis(30));
        without.push(measure(&plain));
        std::thread::sleep(Duration::from_millis(30));
        let mut networked = plain.clone();
        let slot = u16::try_from(run).expect("RUNS is small");
        networked.network = Some(crate::isolation::test_network(
            &format!("alzjl{}x{run}", std::process::id() % 10_000),
            slot,
        ));
        with.push(measure(&networked));
    }
    let returned = |samples: &[(Duration, Duration)]| {
        let mut v: Vec<Duration> = samples.iter().map(|s| s.0).collect();
        v.sort();
        v[v.len() / 2]
    };
    let added = returned(&with).saturating_sub(returned(&without));
    report(&format!("{RUNS} spawns of echo, loopback only"), without);
    let veth = report(&format!("{RUNS} spawns of echo, with a veth pair"), with);
    println!("    added to spawn() by the veth pair: {added:.2?} (difference of the medians)");
    assert!(veth < Duration::from_millis(250), "median spawn latency with a veth {veth:?}");
}
