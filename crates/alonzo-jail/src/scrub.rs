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

/// How far below the caller's frame the stack is cleared: the jail stages' deepest calls
/// (opening host paths, decoding the spec) stay well within it. Nothing but the stack can be
/// mapped there: the kernel keeps a gap of 256 pages (1 MiB) below a stack mapping free of
/// other mappings, and a range over that gap is simply not mapped.
const CLEARED: usize = 1024 * 1024;
/// The part right below the caller's frame that is overwritten instead of discarded, so that
/// the frames of the discarding call itself are never in the range it discards.
const OVERWRITTEN: usize = 16 * 1024;

/// Clears the stack below the caller's frame, where the jail stages' deeper calls left their
/// locals: the pages further down are discarded (`MADV_DONTNEED`: they read as zeroes from
/// then on), and the 16 KiB nearest the frame are overwritten with zeroes. Discarding costs
/// no copy of the pages a launcher's copy shares with the launcher, where overwriting 256 KiB
/// copied 64 of them in every runtime.
#[inline(never)]
pub(crate) fn stack_below() {
    discard_far_stack();
    overwrite_near_stack();
}

#[inline(never)]
fn discard_far_stack() {
    let here = std::hint::black_box(0u8);
    let page = crate::sys::page_size();
    // A page-aligned end at least 8 KiB below this frame, where nothing of this call's own
    // frames (this one's locals, the system call's) can be.
    let end = (std::ptr::addr_of!(here) as usize & !(page - 1)) - 2 * page;
    let start = end.saturating_sub(CLEARED - OVERWRITTEN);
    // SAFETY: [start, end) lies below every live frame of this thread (this is the deepest
    // call, and `end` is two pages below its locals), so no live object is there; what was
    // there belongs to calls that have returned. Nothing else can be mapped there (see
    // CLEARED).
    unsafe { crate::sys::discard_unused_stack(start, end - start) };
}

/// Writes zeroes over the part of the stack that `discard_far_stack` left: its frame is at
/// the same depth as that call's, and its array covers the pages between the caller's frame
/// and the discarded range.
#[inline(never)]
fn overwrite_near_stack() {
    let mut area = [0u8; OVERWRITTEN];
    std::hint::black_box(&mut area);
}
