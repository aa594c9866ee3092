//! Overwriting host details in memory that a program continuing the launcher's interpreter
//! inherits: that process never went through an `execve`, so whatever the jail stages kept in
//! their heap and on their stack (the spec's host paths above all) would be readable in its
//! own memory. Buffers that held them are zeroed before they are freed, the spec's host paths
//! once they are no longer needed, and the stack below R's frame before it returns.

use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Zeroes `buf` and frees it.
pub(crate) fn bytes(mut buf: Vec<u8>) {
    buf.fill(0);
    // The zeroing must not be optimised away as a dead store before the free.
    std::hint::black_box(&buf);
}

/// Zeroes the bytes of `path` and leaves it empty.
pub(crate) fn path(path: &mut PathBuf) {
    bytes(std::mem::take(path).into_os_string().into_vec());
}

/// The spec's host paths (the root directory, the bind sources, the cgroup files), which
/// nothing needs once the sandbox's root is built and entered.
pub(crate) fn host_paths(spec: &mut crate::spawn::JailSpec) {
    path(&mut spec.root_dir);
    spec.binds.iter_mut().for_each(|bind| path(&mut bind.source));
    spec.cgroup_procs.iter_mut().for_each(path);
}

/// Overwrites the 256 KiB of stack below the caller's frame, where the jail stages' deeper
/// calls (opening host paths, decoding the spec) left their locals.
#[inline(never)]
pub(crate) fn stack_below() {
    let mut area = [0u8; 256 * 1024];
    std::hint::black_box(&mut area);
}
