//! The sandbox's network: only a loopback interface, brought up in the new network namespace,
//! and the Runtime API listener bound there and handed to the server.

use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use crate::error::{Context, JailError};

/// Brings `lo` up, binds 127.0.0.1:`port` and sends the listener over `channel`. Runs in C,
/// after it unshared the network namespace; the listener keeps belonging to that namespace
/// when the server uses it from its own threads.
pub(crate) fn listen_and_hand_over(port: u16, channel: &UnixStream) -> Result<(), JailError> {
    crate::sys::loopback_up().context(|| "bring the loopback interface up".to_owned())?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .context(|| format!("listen on 127.0.0.1:{port}"))?;
    crate::fdpass::send_fd(channel, listener.as_fd())
}
