//! Passing file descriptors over a Unix stream socket (`SCM_RIGHTS`), always with a payload
//! so that the receiver can tell a message from end-of-stream: one descriptor with a byte
//! (`send_fd`/`recv_fd`), or a few with a short message (the launcher's requests and replies).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr};

use crate::error::{Context, JailError};

/// Sends `fd` over `sock`. The receiver gets its own descriptor for the same open file; the
/// sender's copy stays open until the sender closes it.
pub fn send_fd(sock: &UnixStream, fd: BorrowedFd<'_>) -> Result<(), JailError> {
    send_fds(sock, b"F", &[fd])
}

/// Sends `payload` (at least one byte) with `fds` over `sock` in one message.
pub(crate) fn send_fds(
    sock: &UnixStream,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), JailError> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let iov = [IoSlice::new(payload)];
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None)
        .context(|| "send file descriptors".to_owned())?;
    Ok(())
}

/// The most descriptors one message of [`recv_fds`] takes.
pub(crate) const MAX_FDS: usize = 3;

/// Receives one message of up to `max_bytes` and at most `MAX_FDS` descriptors (all
/// close-on-exec). An empty payload means the peer closed the socket.
pub(crate) fn recv_fds(
    sock: &UnixStream,
    max_bytes: usize,
) -> Result<(Vec<u8>, Vec<OwnedFd>), JailError> {
    let mut payload = vec![0u8; max_bytes];
    let mut iov = [IoSliceMut::new(&mut payload)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context(|| "receive file descriptors".to_owned())?;
    let mut received: Vec<OwnedFd> = Vec::new();
    // The descriptors are adopted before anything can fail, so none of them leaks.
    for cmsg in
        msg.cmsgs().context(|| "receive file descriptors (truncated control data)".to_owned())?
    {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel has just installed this descriptor in our table for this
                // message; nothing else knows its number, so we are its only owner.
                received.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let bytes = msg.bytes;
    payload.truncate(bytes);
    Ok((payload, received))
}

/// Receives one descriptor sent by [`send_fd`]. The new descriptor is close-on-exec. Fails
/// with `JailError::Protocol` if the peer closed the socket without sending one.
pub fn recv_fd(sock: &UnixStream) -> Result<OwnedFd, JailError> {
    let (payload, received) = recv_fds(sock, 1)?;
    if payload.is_empty() {
        return Err(JailError::Protocol(
            "the jail process closed the socket without sending the listener".to_owned(),
        ));
    }
    let mut received = received.into_iter();
    match (received.next(), received.next()) {
        (Some(fd), None) => Ok(fd),
        _ => Err(JailError::Protocol("expected exactly one file descriptor".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn a_passed_descriptor_refers_to_the_same_file() {
        let (left, right) = UnixStream::pair().unwrap();
        let (mut pipe_in, mut pipe_out) = UnixStream::pair().unwrap();
        send_fd(&left, pipe_in.as_fd()).unwrap();
        let got = UnixStream::from(recv_fd(&right).unwrap());
        (&got).write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        pipe_out.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        pipe_in.flush().unwrap();
    }

    #[test]
    fn end_of_stream_is_a_protocol_error() {
        let (left, right) = UnixStream::pair().unwrap();
        drop(left);
        assert!(matches!(recv_fd(&right), Err(JailError::Protocol(_))));
    }
}
