//! Sandboxes built ahead of their function (`Prepared::build_ahead` then `assign`): the
//! assigned binds appear at the deferred mount points, `/tmp` takes the assigned size, the
//! program is the assigned one or, when it started ahead, reads the assignment's message;
//! assignments outside what was deferred are refused.

use alonzo_jail::spawn::{prepare, Assignment, Bind, Deferred, Program};
use alonzo_jail::JailError;

use crate::{finish, python, spec, Case};

pub(crate) const CASES: &[Case] = cases![Sandbox;
    assigned_program_sees_assigned_binds_and_tmp,
    started_program_reads_its_assignment,
    assignment_outside_the_deferred_targets_is_refused,
];

fn task_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("code.txt"), "the function's code").unwrap();
    // The sandbox's user (a mapped uid) must be able to read it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn task_bind(dir: &tempfile::TempDir) -> Bind {
    Bind { source: dir.path().to_owned(), target: "/var/task".to_owned(), writable: false }
}

fn built_ahead(start_program: bool, argv: &[&str]) -> alonzo_jail::Prepared {
    let mut ahead = spec(argv);
    ahead.deferred = Some(Deferred {
        targets: vec!["/var/task".into()],
        start_program,
        continue_program: false,
        copy_shared_pages: false,
    });
    let mut prepared = prepare(&std::env::current_exe().unwrap(), &[]).unwrap();
    prepared.build_ahead(&ahead).unwrap();
    prepared
}

fn assigned_program_sees_assigned_binds_and_tmp() {
    let dir = task_dir();
    // The spec's own program is a placeholder: without start_program it never runs.
    let prepared = built_ahead(false, &["/bin/false"]);
    let code = "import os; print(open('/var/task/code.txt').read()); \
                s = os.statvfs('/tmp'); print(s.f_blocks * s.f_frsize // (1 << 20)); \
                print(os.getcwd(), os.environ['WHO'])";
    let assigned = python(code);
    let jail = prepared
        .assign(&Assignment {
            binds: vec![task_bind(&dir)],
            tmp_size_mb: 24,
            program: Some(Program {
                argv: assigned.argv,
                env: vec![("WHO".into(), "assigned".into())],
                cwd: "/var/task".into(),
            }),
            message: vec![],
        })
        .unwrap();
    let out = finish(jail);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "the function's code\n24\n/var/task assigned\n");
}

fn started_program_reads_its_assignment() {
    let dir = task_dir();
    // The program starts before any function is known; /var/task is still empty then.
    let code = "import os; before = os.listdir('/var/task'); \
                msg = os.read(3, 100).decode(); \
                print(before, msg, os.listdir('/var/task'))";
    let prepared =
        built_ahead(true, &python(code).argv.iter().map(String::as_str).collect::<Vec<_>>());
    // Give it time to start and block on its stdin.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let jail = prepared
        .assign(&Assignment {
            binds: vec![task_bind(&dir)],
            tmp_size_mb: 16,
            program: None,
            message: b"hello".to_vec(),
        })
        .unwrap();
    let out = finish(jail);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "[] hello ['code.txt']\n");
}

fn assignment_outside_the_deferred_targets_is_refused() {
    let dir = task_dir();
    let prepared = built_ahead(false, &["/bin/false"]);
    let mut bind = task_bind(&dir);
    bind.target = "/etc".into();
    let err = prepared
        .assign(&Assignment {
            binds: vec![bind],
            tmp_size_mb: 16,
            program: Some(Program { argv: vec!["/bin/true".into()], env: vec![], cwd: "/".into() }),
            message: vec![],
        })
        .unwrap_err();
    assert!(
        matches!(err, JailError::InvalidSpec(ref m) if m.contains("not a deferred target")),
        "{err}"
    );
    // A started program cannot be replaced.
    let prepared = built_ahead(true, &["/bin/cat"]);
    let err = prepared
        .assign(&Assignment {
            binds: vec![],
            tmp_size_mb: 16,
            program: Some(Program { argv: vec!["/bin/true".into()], env: vec![], cwd: "/".into() }),
            message: vec![],
        })
        .unwrap_err();
    assert!(matches!(err, JailError::InvalidSpec(_)), "{err}");
}
