//! Completing a sandbox that was built ahead of its function (`Prepared::build_ahead`): J
//! relays the server's `Assignment` to G with a detached mount tree per bind, and G attaches
//! them at the mount points it left empty, resizes `/tmp`, and hands the program to R (started
//! and unprivileged ahead, waiting for it; see `exec::start_waiting_program`) or, when the
//! program started ahead too, writes it the assignment's message on its descriptor 3.
//!
//! Everything of the sandbox but the function's own binds, `/tmp` size and program was
//! created exactly as for a sandbox started on demand, by the same code; the assignment only
//! adds mounts of the function's files inside the sandbox's private mount namespace.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use crate::error::{Context, JailError};
use crate::sequence::Outcome;
use crate::spawn::{decode_frame, encode_frame, Assignment, Deferred, Frame, JailSpec, ASSIGNED};
use crate::sys::SingleThreaded;

/// J: waits for the assignment on the server's socket, clones the host trees of its binds
/// (J is root on the host; G could not even look them up), hands both to G, and passes G's
/// acknowledgement back to the server.
pub(crate) fn relay(
    server: &mut UnixStream,
    to_g: &mut UnixStream,
    deferred: &Deferred,
) -> Result<(), JailError> {
    let assignment = match decode_frame(server)? {
        Frame::Assign(assignment) => assignment,
        _ => return Err(JailError::Protocol("expected an assignment".to_owned())),
    };
    assignment.validate(deferred)?;
    let trees = crate::mounts::clone_assigned(&assignment.binds)?;
    to_g.write_all(&encode_frame(&Frame::Assign(assignment))?)
        .context(|| "pass the assignment on".to_owned())?;
    for tree in &trees {
        crate::fdpass::send_fd(to_g, std::os::fd::AsFd::as_fd(tree))?;
    }
    drop(trees);
    let mut ack = [0u8; 1];
    to_g.read_exact(&mut ack)
        .context(|| "wait for the sandbox to take its assignment".to_owned())?;
    server.write_all(&[ASSIGNED]).context(|| "acknowledge the assignment".to_owned())
}

/// G, after the pivot: takes the assignment, completes the sandbox, starts or tells the
/// program, and then acts as the sandbox's init. Returns the program's exit code.
pub(crate) fn complete(
    single: &SingleThreaded,
    spec: &JailSpec,
    deferred: &Deferred,
    mut from_j: UnixStream,
) -> Result<Outcome, JailError> {
    if deferred.start_program {
        // The program starts now and blocks reading fd 3 until the assignment comes.
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .context(|| "create the assignment pipe".to_owned())?;
        let program = if deferred.continue_program {
            match crate::sequence::fork_continuing_program(single, spec, read_end)? {
                Some(program) => program,
                None => {
                    // R, about to return into the interpreter: its copies of G's descriptors
                    // were closed with everything above 3, and the numbers may be reused, so
                    // they must not be closed again on the way out.
                    std::mem::forget(write_end);
                    std::mem::forget(from_j);
                    return Ok(Outcome::Continue);
                }
            }
        } else {
            crate::exec::start_program(single, spec, Some(read_end))?
        };
        crate::init::forward_to(program)?;
        let assignment = take(&mut from_j, deferred)?;
        let mut pipe = std::fs::File::from(write_end);
        pipe.write_all(&assignment.message)
            .context(|| "hand the assignment to the program".to_owned())?;
        drop(pipe);
        from_j.write_all(&[ASSIGNED]).context(|| "acknowledge the assignment".to_owned())?;
        drop(from_j);
        return crate::init::reap_until(program).map(Outcome::Exit);
    }
    // R is started and unprivileged before the assignment comes; it waits for its program.
    let (child, waiting) = crate::exec::start_waiting_program(single, spec)?;
    crate::init::forward_to(child)?;
    let assignment = take(&mut from_j, deferred)?;
    let Some(program) = assignment.program else {
        return Err(JailError::Protocol("the assignment has no program".to_owned()));
    };
    waiting.hand_over(&program)?;
    from_j.write_all(&[ASSIGNED]).context(|| "acknowledge the assignment".to_owned())?;
    drop(from_j);
    crate::init::reap_until(child).map(Outcome::Exit)
}

/// Reads the assignment and its trees from J and attaches them.
fn take(from_j: &mut UnixStream, deferred: &Deferred) -> Result<Assignment, JailError> {
    let assignment = match decode_frame(from_j)? {
        Frame::Assign(assignment) => assignment,
        _ => return Err(JailError::Protocol("expected an assignment".to_owned())),
    };
    assignment.validate(deferred)?;
    let trees: Vec<OwnedFd> = assignment
        .binds
        .iter()
        .map(|_| crate::fdpass::recv_fd(from_j))
        .collect::<Result<_, _>>()?;
    crate::mounts::attach_assigned(&assignment.binds, trees)?;
    crate::mounts::resize_tmp(assignment.tmp_size_mb)?;
    Ok(assignment)
}
