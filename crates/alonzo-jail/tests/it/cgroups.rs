//! Sandboxes in real cgroups: memory (OOM kill), pids (fork bomb), CPU quota, the cgroup
//! namespace, kill-all and removal.

use std::time::{Duration, Instant};

use alonzo_jail::cgroup::{CgroupLayout, CgroupLimits, CgroupParent, SandboxCgroup, CPU_PERIOD_US};
use alonzo_jail::spawn::{exit_code, spawn, JailSpec};

use crate::{cgroup_parent, python, run, spec, stdout_of, wait_for_line, Case};

pub(crate) const CASES: &[Case] = cases![Cgroups;
    cgroup_namespace_is_rooted_at_the_sandbox,
    memory_limit_oom_kill_is_detected,
    pids_limit_stops_forking,
    fork_bomb_is_contained_and_kill_all_clears_it,
    cpu_quota_holds,
    cpu_quota_can_be_lowered_with_a_burst,
    kill_all_kills_everything_and_remove_cleans_up,
    kill_all_without_cgroup_kill_uses_a_kill_loop,
    prepared_jail_joins_its_cgroup_before_the_spec_and_then_runs_it,
    changed_limits_are_the_ones_written,
];

const LIMITS: CgroupLimits =
    CgroupLimits { memory_bytes: 256 << 20, cpu_quota_us: 0, pids_max: 256 };

/// A fresh sandbox cgroup, and `spec` set up to join it.
fn in_cgroup(name: &str, limits: CgroupLimits, mut spec: JailSpec) -> (SandboxCgroup, JailSpec) {
    let cgroup = SandboxCgroup::create(cgroup_parent(), name, &limits).unwrap();
    spec.cgroup_procs = cgroup.procs_files();
    (cgroup, spec)
}

fn cgroup_namespace_is_rooted_at_the_sandbox() {
    let (cgroup, spec) =
        in_cgroup("cgns", LIMITS, python("print(open('/proc/self/cgroup').read())"));
    let out = stdout_of(&spec);
    for line in out
        .lines()
        .filter(|l| l.contains(":memory:") || l.contains(":pids:") || l.starts_with("0::"))
    {
        assert!(line.ends_with(":/"), "{line} (all of {out})");
    }
    cgroup.remove();
}

/// `change_limits` writes exactly the limits that differ, and they hold: raised memory lets
/// 200 MiB through, lowered memory kills, an unchanged pids limit stays, a new one applies.
fn changed_limits_are_the_ones_written() {
    let from = CgroupLimits { memory_bytes: 64 << 20, ..LIMITS };
    let cgroup = SandboxCgroup::create(cgroup_parent(), "change", &from).unwrap();
    let memory_file = cgroup
        .procs_files()
        .into_iter()
        .map(|p| p.with_file_name("memory.limit_in_bytes"))
        .chain(cgroup.procs_files().into_iter().map(|p| p.with_file_name("memory.max")))
        .find(|p| p.exists())
        .expect("a memory limit file");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().trim().to_owned();
    assert_eq!(read(&memory_file), (64u64 << 20).to_string());
    // Unchanged: nothing to write (a missing file would fail the write; none is touched).
    cgroup.change_limits(&from, &from).unwrap();
    let to = CgroupLimits { memory_bytes: 300 << 20, pids_max: 32, ..from };
    cgroup.change_limits(&from, &to).unwrap();
    assert_eq!(read(&memory_file), (300u64 << 20).to_string());
    let mut spec = python("x = b'x' * (200 << 20)\nprint('survived')");
    spec.cgroup_procs = cgroup.procs_files();
    let out = run(&spec);
    assert_eq!((out.code, out.stdout.trim()), (0, "survived"), "{}", out.stderr);
    let pids = cgroup
        .procs_files()
        .into_iter()
        .map(|p| p.with_file_name("pids.max"))
        .find(|p| p.exists())
        .expect("a pids.max file");
    assert_eq!(read(&pids), "32");
    let back = CgroupLimits { memory_bytes: 64 << 20, ..to };
    cgroup.change_limits(&to, &back).unwrap();
    let out = run(&spec);
    assert_eq!(out.code, 137, "lowered again, the limit kills: {}", out.stderr);
    cgroup.remove();
}

fn memory_limit_oom_kill_is_detected() {
    let limits = CgroupLimits { memory_bytes: 64 << 20, ..LIMITS };
    let (cgroup, spec) =
        in_cgroup("oom", limits, python("x = b'x' * (200 << 20)\nprint('survived')"));
    let out = run(&spec);
    assert_eq!((out.code, out.stdout.as_str()), (137, ""), "{}", out.stderr);
    assert!(cgroup.oom_killed());
    let peak = cgroup.memory_peak_bytes().unwrap();
    assert!(peak > 32 << 20 && peak <= 64 << 20, "peak {peak}");
    println!("    peak memory {} MiB under a 64 MiB limit", peak >> 20);
    cgroup.remove();
}

fn pids_limit_stops_forking() {
    let limits = CgroupLimits { pids_max: 32, ..LIMITS };
    let (cgroup, spec) = in_cgroup(
        "pids",
        limits,
        python(
            "import os, time\n\
             n = 0\n\
             try:\n\
             \x20   while n < 1000:\n\
             \x20       if os.fork() == 0:\n\
             \x20           time.sleep(60)\n\
             \x20           os._exit(0)\n\
             \x20       n += 1\n\
             except BlockingIOError:\n\
             \x20   print('EAGAIN after', n)",
        ),
    );
    let out = stdout_of(&spec);
    // 32 minus the jail's two processes (J and G) and the program itself.
    assert_eq!(out.trim(), "EAGAIN after 29");
    assert!(!cgroup.oom_killed());
    // The program's exit ended pid 1 of the sandbox, and with it every sleeping child.
    assert!(cgroup.pids().is_empty());
    cgroup.remove();
}

/// A program that stays alive while a shell fork bomb below it keeps refilling whatever
/// pids.max allows (a bomb whose forks fail dies out by itself otherwise).
fn bomb() -> JailSpec {
    python(
        "import subprocess, time\n\
         subprocess.Popen(['/bin/sh', '-c', 'b() { while :; do b & done; }; b'], stderr=subprocess.DEVNULL)\n\
         print('ready', flush=True)\n\
         time.sleep(1000)",
    )
}

fn fork_bomb_is_contained_and_kill_all_clears_it() {
    let limits = CgroupLimits { pids_max: 64, cpu_quota_us: CPU_PERIOD_US / 2, ..LIMITS };
    let (cgroup, spec) = in_cgroup("bomb", limits, bomb());
    let mut jail = spawn(&std::env::current_exe().unwrap(), &spec).unwrap();
    assert_eq!(wait_for_line(&mut jail.stdout), "ready\n");
    // Sample the population for a second: the bomb keeps pushing against pids.max (its
    // shells die when a fork fails and others refill), never past it.
    let mut most = 0;
    for _ in 0..100 {
        most = most.max(cgroup.pids().len());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!((32..=64).contains(&most), "at most {most} processes under pids.max 64");
    let count = cgroup.pids().len();
    // The host can still start processes.
    assert!(std::process::Command::new("/bin/true").status().unwrap().success());
    let started = Instant::now();
    cgroup.kill_all();
    println!("    at most {most} processes; {count} killed in {:.1?}", started.elapsed());
    assert!(cgroup.pids().is_empty());
    assert_eq!(exit_code(jail.child.wait().unwrap()), 137);
    cgroup.try_remove().unwrap();
}

fn cpu_quota_holds() {
    let limits = CgroupLimits { cpu_quota_us: CPU_PERIOD_US / 5, ..LIMITS };
    let (cgroup, spec) = in_cgroup(
        "cpu",
        limits,
        python(
            "import time\n\
             end = time.monotonic() + 0.5\n\
             while time.monotonic() < end: pass\n\
             print(time.process_time())",
        ),
    );
    let cpu: f64 = stdout_of(&spec).trim().parse().unwrap();
    // 0.2 of a core for 0.5 s of wall time is 0.1 s, give or take a period and start-up.
    assert!(cpu < 0.2, "used {cpu} s of CPU in 0.5 s under a 20% quota");
    println!("    {cpu:.3} s of CPU in 0.5 s under a 20% quota");
    cgroup.remove();
}

fn cpu_quota_can_be_lowered_with_a_burst() {
    // What an environment does after init: one core, then 128 MB's share with an equal burst;
    // lowering twice proves the burst is cleared before the quota changes.
    let limits = CgroupLimits { cpu_quota_us: CPU_PERIOD_US, ..LIMITS };
    let cgroup = SandboxCgroup::create(cgroup_parent(), "burst", &limits).unwrap();
    let dirs: Vec<_> =
        cgroup.procs_files().iter().map(|f| f.parent().unwrap().to_owned()).collect();
    let read = |file: &str| {
        dirs.iter()
            .map(|d| d.join(file))
            .find(|p| p.exists())
            .map(|p| std::fs::read_to_string(p).unwrap().trim().to_owned())
    };
    for quota in [10_000, 1_447] {
        cgroup.set_cpu_quota(quota).unwrap();
        match read("cpu.cfs_quota_us") {
            Some(v1) => {
                assert_eq!(v1, quota.to_string());
                if let Some(burst) = read("cpu.cfs_burst_us") {
                    assert_eq!(burst, quota.to_string());
                }
            }
            None => {
                assert_eq!(read("cpu.max").unwrap(), format!("{quota} {CPU_PERIOD_US}"));
                if let Some(burst) = read("cpu.max.burst") {
                    assert_eq!(burst, quota.to_string());
                }
            }
        }
    }
    cgroup.remove();
}

fn kill_all_kills_everything_and_remove_cleans_up() {
    let (cgroup, spec) = in_cgroup(
        "killall",
        LIMITS,
        spec(&["/bin/sh", "-c", "sleep 1000 & sleep 1000 & echo ready; wait"]),
    );
    let dirs: Vec<_> =
        cgroup.procs_files().iter().map(|f| f.parent().unwrap().to_owned()).collect();
    let mut jail = spawn(&std::env::current_exe().unwrap(), &spec).unwrap();
    assert_eq!(wait_for_line(&mut jail.stdout), "ready\n");
    // J, G, the shell and two sleeps.
    assert_eq!(cgroup.pids().len(), 5);
    cgroup.kill_all();
    assert!(cgroup.pids().is_empty());
    assert_eq!(exit_code(jail.child.wait().unwrap()), 137);
    assert!(crate::reaches_eof(jail.stdout, Duration::from_secs(1)));
    cgroup.try_remove().unwrap();
    assert!(dirs.iter().all(|d| !d.exists()), "left behind: {dirs:?}");
}

fn kill_all_without_cgroup_kill_uses_a_kill_loop() {
    // Without a v2 directory (a v1 host with no unified tree) kill_all cannot use cgroup.kill.
    // Recreate that situation by hiding this host's unified tree from the layout.
    let CgroupLayout::V1 { controllers, .. } = CgroupLayout::detect().unwrap() else {
        println!("    pure v2 host: cgroup.kill always exists, nothing to test");
        return;
    };
    let layout = CgroupLayout::V1 { controllers, unified: None };
    let parent =
        CgroupParent::create(&layout, &format!("it-{}-v1only", std::process::id())).unwrap();
    let limits = CgroupLimits { pids_max: 64, ..LIMITS };
    let cgroup = SandboxCgroup::create(&parent, "loop", &limits).unwrap();
    assert_eq!(cgroup.procs_files().len(), 3, "memory, cpu and pids only");
    let mut spec = bomb();
    spec.cgroup_procs = cgroup.procs_files();
    let mut jail = spawn(&std::env::current_exe().unwrap(), &spec).unwrap();
    assert_eq!(wait_for_line(&mut jail.stdout), "ready\n");
    std::thread::sleep(Duration::from_millis(300));
    let count = cgroup.pids().len();
    let started = Instant::now();
    cgroup.kill_all();
    println!("    {count} processes killed by the kill loop in {:.1?}", started.elapsed());
    assert!(cgroup.pids().is_empty());
    assert_eq!(exit_code(jail.child.wait().unwrap()), 137);
    cgroup.try_remove().unwrap();
    parent.try_remove().unwrap();
}

/// `prepare` starts the jail process and moves it into its cgroup at once; `launch` later
/// hands over the spec (its own `cgroup_procs` ignored) and the program runs inside that
/// cgroup, under limits changed after the join.
fn prepared_jail_joins_its_cgroup_before_the_spec_and_then_runs_it() {
    let cgroup = SandboxCgroup::create(cgroup_parent(), "prepared", &LIMITS).unwrap();
    let mut prepared =
        alonzo_jail::prepare(&std::env::current_exe().unwrap(), &cgroup.procs_files()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cgroup.pids().is_empty() {
        assert!(Instant::now() < deadline, "the prepared jail never joined its cgroup");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(prepared.is_alive());
    assert_eq!(cgroup.pids().len(), 1, "only the waiting jail process, nothing of a program");
    cgroup.set_limits(&CgroupLimits { memory_bytes: 64 << 20, ..LIMITS }).unwrap();
    let mut spec = python("x = b'x' * (200 << 20)\nprint('survived')");
    spec.cgroup_procs = Vec::new();
    let jail = prepared.launch(&spec).unwrap();
    let mut child = jail.child;
    let status = child.wait().unwrap();
    assert_eq!(exit_code(status), 137, "the new 64 MiB limit applies to the program");
    assert!(cgroup.oom_killed());
    cgroup.remove();

    // A prepared jail that is dropped unused is killed.
    let cgroup = SandboxCgroup::create(cgroup_parent(), "prepared-unused", &LIMITS).unwrap();
    let prepared =
        alonzo_jail::prepare(&std::env::current_exe().unwrap(), &cgroup.procs_files()).unwrap();
    drop(prepared);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cgroup.pids().is_empty() {
        assert!(Instant::now() < deadline, "the dropped jail is still running");
        std::thread::sleep(Duration::from_millis(5));
    }
    cgroup.remove();
}
