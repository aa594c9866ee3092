//! What a program inside sees: its identity, processes, filesystem, devices and network.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use alonzo_jail::spawn::{spawn, Bind};

use crate::{python, stdout_of, Case, UID_BASE};

pub(crate) const CASES: &[Case] = cases![Sandbox;
    identity_is_the_unprivileged_lambda_user,
    the_program_is_pid_2_under_a_tiny_init,
    hostname_is_set,
    host_processes_are_invisible,
    root_is_read_only,
    tmp_is_writable_up_to_its_size,
    task_bind_is_read_only,
    writable_bind_writes_as_the_mapped_uid,
    file_and_nested_binds_like_alonzo_sandbox,
    host_paths_below_private_directories_work,
    host_directories_and_sys_are_invisible,
    dev_is_minimal_and_works,
    network_has_only_loopback,
    external_interface_is_configured_and_removed_with_the_sandbox,
    runtime_api_listener_reaches_the_program,
    seccomp_filter_is_installed_and_blocks_namespaces,
];

fn identity_is_the_unprivileged_lambda_user() {
    let out = stdout_of(&python(
        "import os\n\
         status = dict(l.split(':\\t') for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n\
         print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups())\n\
         print(status['CapEff'], status['CapPrm'], status['CapAmb'], status['NoNewPrivs'])\n\
         print(open('/proc/self/uid_map').read().split())",
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "993 993 990 990 []");
    assert_eq!(lines[1], "0000000000000000 0000000000000000 0000000000000000 1");
    assert_eq!(lines[2], format!("['0', '{UID_BASE}', '65536']"));
}

fn the_program_is_pid_2_under_a_tiny_init() {
    let out = stdout_of(&python(
        "import os\nprint(os.getpid(), os.getppid(), open('/proc/1/cmdline').read().split('\\0')[1])",
    ));
    // pid 1 is the jail's init (the re-executed test binary, argv[1] == "__jail").
    assert_eq!(out.trim(), "2 1 __jail");
}

fn hostname_is_set() {
    assert_eq!(
        stdout_of(&python("import socket; print(socket.gethostname())")).trim(),
        "sandbox-it"
    );
}

fn host_processes_are_invisible() {
    let out = stdout_of(&python(
        "import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))",
    ));
    assert_eq!(out.trim(), "[1, 2]");
}

fn root_is_read_only() {
    let out = stdout_of(&python(
        "import errno\n\
         for path in ['/new-file', '/usr/new-file']:\n\
         \x20   try:\n\
         \x20       open(path, 'w')\n\
         \x20       print('writable', path)\n\
         \x20   except OSError as e:\n\
         \x20       print(errno.errorcode[e.errno], path)",
    ));
    assert_eq!(out, "EROFS /new-file\nEROFS /usr/new-file\n");
}

fn tmp_is_writable_up_to_its_size() {
    let mut spec = python(
        "import errno\n\
         total = 0\n\
         with open('/tmp/fill', 'wb', buffering=0) as f:\n\
         \x20   try:\n\
         \x20       while True:\n\
         \x20           total += f.write(b'x' * 65536)\n\
         \x20   except OSError as e:\n\
         \x20       print(errno.errorcode[e.errno], total)",
    );
    spec.tmp_size_mb = 4;
    let out = stdout_of(&spec);
    let (err, total) = out.trim().split_once(' ').unwrap();
    assert_eq!(err, "ENOSPC");
    let total: u64 = total.parse().unwrap();
    assert!(
        ((4 << 20) - (64 << 10)..=(4 << 20)).contains(&total),
        "wrote {total} bytes into a 4 MiB /tmp"
    );
}

fn task_bind_is_read_only() {
    let code = tempfile::tempdir().unwrap();
    std::fs::set_permissions(code.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(code.path().join("handler.py"), "HANDLER = 1\n").unwrap();
    let mut spec = python(
        "import os, errno\n\
         print(os.getcwd(), open('handler.py').read().strip())\n\
         try:\n\
         \x20   open('new.py', 'w')\n\
         except OSError as e:\n\
         \x20   print(errno.errorcode[e.errno])",
    );
    spec.binds.push(Bind {
        source: code.path().to_owned(),
        target: "/var/task".to_owned(),
        writable: false,
    });
    spec.cwd = "/var/task".to_owned();
    assert_eq!(stdout_of(&spec), "/var/task HANDLER = 1\nEROFS\n");
    assert!(!code.path().join("new.py").exists());
}

fn writable_bind_writes_as_the_mapped_uid() {
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut spec = python("open('/mnt/data/out', 'w').write('hello')");
    spec.binds.push(Bind {
        source: data.path().to_owned(),
        target: "/mnt/data".to_owned(),
        writable: true,
    });
    stdout_of(&spec);
    let written = data.path().join("out");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "hello");
    let meta = std::fs::metadata(&written).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (UID_BASE + 993, UID_BASE + 990));
}

fn file_and_nested_binds_like_alonzo_sandbox() {
    // Files and directories bound side by side below one created directory (/etc), as the
    // sandbox crate does for ld.so.cache, ssl and its own passwd.
    let etc = tempfile::tempdir().unwrap();
    std::fs::set_permissions(etc.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(etc.path().join("passwd"), "sbx_user1051:x:993:990::/tmp:/sbin/nologin\n")
        .unwrap();
    let mut spec = python(
        "import os, pwd\n\
         print(sorted(os.listdir('/etc')), pwd.getpwuid(os.getuid()).pw_name)\n\
         print(os.path.getsize('/etc/ld.so.cache') > 0, os.path.isdir('/etc/ssl'))",
    );
    for (source, target) in [
        ("/etc/ld.so.cache".into(), "/etc/ld.so.cache"),
        ("/etc/ssl".into(), "/etc/ssl"),
        (etc.path().join("passwd"), "/etc/passwd"),
    ] {
        spec.binds.push(Bind { source, target: target.to_owned(), writable: false });
    }
    assert_eq!(stdout_of(&spec), "['ld.so.cache', 'passwd', 'ssl'] sbx_user1051\nTrue True\n");
}

fn host_paths_below_private_directories_work() {
    // A server's data directory is often not world-searchable (0700); the sandbox's mapped
    // root could not traverse it, so the jail opens these paths before entering the user
    // namespace.
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let root = private.path().join("sandboxes/one");
    let code = private.path().join("functions/f/code");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&code).unwrap();
    std::fs::set_permissions(&code, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(code.join("app.py"), "x = 1\n").unwrap();
    let mut spec = python("print(open('/var/task/app.py').read().strip())");
    spec.root_dir = root;
    spec.binds.push(Bind { source: code, target: "/var/task".to_owned(), writable: false });
    assert_eq!(stdout_of(&spec), "x = 1\n");
}

fn host_directories_and_sys_are_invisible() {
    let out = stdout_of(&python(
        "import os\n\
         print(sorted(os.listdir('/')))\n\
         print([p for p in ['/sys', '/root', '/home', '/work', '/etc', '/var', '/run'] if os.path.exists(p)])",
    ));
    assert_eq!(out, "['bin', 'dev', 'lib', 'lib64', 'proc', 'sbin', 'tmp', 'usr']\n[]\n");
}

fn dev_is_minimal_and_works() {
    let out = stdout_of(&python(
        "import os\n\
         print(sorted(os.listdir('/dev')))\n\
         open('/dev/null', 'w').write('x')\n\
         print(len(open('/dev/urandom', 'rb').read(16)), open('/dev/zero', 'rb').read(2))\n\
         open('/dev/shm/x', 'w').write('x')\n\
         print(os.readlink('/dev/fd'), os.readlink('/proc/self/fd/0'))",
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "['fd', 'full', 'null', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'urandom', 'zero']"
    );
    assert_eq!(lines[1], "16 b'\\x00\\x00'");
    assert_eq!(lines[2], "/proc/self/fd /dev/null");
}

fn network_has_only_loopback() {
    // A listener of the host's loopback is not reachable from the sandbox's.
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    let out = stdout_of(&python(&format!(
        "import socket\n\
         print([l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]])\n\
         try:\n\
         \x20   socket.create_connection(('127.0.0.1', {port}), timeout=2)\n\
         \x20   print('reached the host')\n\
         except OSError as e:\n\
         \x20   print(type(e).__name__)"
    )));
    assert_eq!(out, "['lo']\nConnectionRefusedError\n");
}

/// A veth for the sandbox with `name` and the addresses of slot `slot` of the last block
/// (servers claim blocks from the first).
pub(crate) fn test_network(name: &str, slot: u16) -> alonzo_jail::JailNetwork {
    let last = u8::try_from(alonzo_jail::firewall::BLOCKS - 1).unwrap();
    let (host_address, sandbox_address) = alonzo_jail::firewall::slot_addresses(last, slot);
    alonzo_jail::JailNetwork {
        host_interface: name.to_owned(),
        host_address,
        sandbox_address,
        prefix_len: alonzo_jail::firewall::SLOT_PREFIX,
        route_localnet: false,
    }
}

fn external_interface_is_configured_and_removed_with_the_sandbox() {
    let name = format!("alzjt{}", std::process::id() % 100_000);
    let net = test_network(&name, 1000);
    let mut spec = python(
        "import socket, sys\n\
         print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]))\n\
         for line in open('/proc/net/route').read().splitlines()[1:]:\n\
         \x20   f = line.split()\n\
         \x20   if f[1] == '00000000': print(f[0], socket.inet_ntoa(bytes.fromhex(f[2])[::-1]))\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.connect(('198.51.100.2', 9))\n\
         print(s.getsockname()[0])\n\
         sys.stdout.flush()\n\
         __import__('time').sleep(0.5)",
    );
    spec.network = Some(net.clone());
    let jail = spawn(&std::env::current_exe().unwrap(), &spec).unwrap();
    // The host end exists while the sandbox runs (J may still be attaching it when spawn()
    // returns)...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while nix::net::if_::if_nametoindex(name.as_str()).is_err() {
        assert!(std::time::Instant::now() < deadline, "no host end {name}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = crate::finish(jail);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("['eth0', 'lo']\neth0 {}\n{}\n", net.host_address, net.sandbox_address)
    );
    // ...and goes away with the sandbox's namespace (the kernel frees it asynchronously).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while nix::net::if_::if_nametoindex(name.as_str()).is_ok() {
        assert!(std::time::Instant::now() < deadline, "{name} outlived its sandbox");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn runtime_api_listener_reaches_the_program() {
    let spec = python(
        "import socket\n\
         s = socket.create_connection(('127.0.0.1', 9001))\n\
         s.sendall(b'next?')\n\
         print(s.recv(100).decode())",
    );
    let jail = spawn(&std::env::current_exe().unwrap(), &spec).unwrap();
    // Accept with a deadline, so a program that never connects fails the test instead of
    // hanging it.
    jail.runtime_api.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut conn, peer) = loop {
        match jail.runtime_api.accept() {
            Ok(accepted) => break accepted,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(std::time::Instant::now() < deadline, "the program never connected");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(err) => panic!("accept: {err}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    assert!(peer.ip().is_loopback());
    let mut request = [0u8; 5];
    conn.read_exact(&mut request).unwrap();
    assert_eq!(&request, b"next?");
    conn.write_all(b"event-1").unwrap();
    drop(conn);
    let out = crate::finish(jail);
    assert_eq!((out.code, out.stdout.as_str()), (0, "event-1\n"), "{}", out.stderr);
}

fn seccomp_filter_is_installed_and_blocks_namespaces() {
    // Seccomp mode 2 (filter) with three filters; unshare and mount answer EPERM (for unshare not
    // for want of capabilities: a nested user namespace needs none), clone3 ENOSYS, and an
    // ordinary fork still works.
    let out = stdout_of(&python(
        "import ctypes, os\n\
         status = dict(l.split(':\\t') for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n\
         print(status['Seccomp'], status['Seccomp_filters'])\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         for nr, args in ((272, (0x10000000,)), (165, (0, 0, 0, 0, 0)), (435, (0, 0))):\n\
         \x20   r = libc.syscall(nr, *args)\n\
         \x20   print(r, os.strerror(ctypes.get_errno()))\n\
         pid = os.fork()\n\
         if pid == 0: os._exit(7)\n\
         print(os.waitpid(pid, 0)[1] >> 8)",
    ));
    assert_eq!(
        out,
        "2 3\n-1 Operation not permitted\n-1 Operation not permitted\n-1 Function not implemented\n7\n"
    );
}
