//! The sandbox's network: a loopback interface with the Runtime API listener handed to the
//! server and, when the spec asks for one, an external interface: a veth pair whose host end
//! stays in the host's namespace and whose other end is the sandbox's `eth0`.
//!
//! The work is split between stages of the jail sequence. J, root in the host's network
//! namespace, creates the pair as soon as it has created G in its new namespaces (the peer is
//! created directly in G's network namespace) and addresses the host end, while G hands the
//! Runtime API listener over and builds the filesystem; G, root of the user namespace that
//! owns the new network namespace, then addresses `eth0` and routes through the host end
//! before the program starts.
//! What the sandbox may reach through it is decided by the server's firewall table
//! (`firewall.rs`).

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use nix::unistd::Pid;

use crate::error::{Context, JailError};
use crate::netlink::Netlink;

/// The sandbox's external interface.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JailNetwork {
    /// The name of the host end of the veth pair (1 to 15 bytes of `[a-z0-9]`); a stale
    /// link of that name (from a sandbox whose namespace the kernel has not yet freed) is
    /// replaced.
    pub host_interface: String,
    /// The host end's address, the sandbox's gateway.
    pub host_address: Ipv4Addr,
    /// The sandbox's address on its `eth0`.
    pub sandbox_address: Ipv4Addr,
    /// The prefix length of the point-to-point subnet of both addresses (e.g. 30).
    pub prefix_len: u8,
    /// Sets `route_localnet` on the host end, so that the firewall may forward the sandbox's
    /// calls to the platform's port on the host's loopback.
    pub route_localnet: bool,
}

impl JailNetwork {
    /// Checks the parts the kernel would reject less clearly.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let name = &self.host_interface;
        if name.is_empty()
            || name.len() > 15
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(format!("host interface {name:?} must be 1 to 15 of [a-z0-9]"));
        }
        if !(8..=30).contains(&self.prefix_len) || self.host_address == self.sandbox_address {
            return Err("the veth addresses must be two addresses of one /8../30 subnet".to_owned());
        }
        Ok(())
    }
}

/// J: once `child` said its namespace is ready (`i` on `sync`, see [`prepare_namespace`]),
/// creates the veth pair with its peer (`eth0`) in the network namespace of `child`, keeps the
/// host end from getting IPv6 addresses, addresses it, brings it up, and tells the child (`n`
/// on `sync`).
pub(crate) fn attach_host_side(
    net: &JailNetwork,
    child: Pid,
    sync: &mut UnixStream,
) -> Result<(), JailError> {
    let name = &net.host_interface;
    crate::userns::wait_byte(sync, "wait for the sandbox's network namespace")?;
    let mut netlink = Netlink::open()?;
    match netlink.create_veth(name, "eth0", child.as_raw()) {
        Err(nix::errno::Errno::EEXIST) => {
            // The server hands a name out again only after its previous sandbox exited, so a
            // link still called that is the leftover of a namespace being freed.
            netlink.delete_link(name).context(|| format!("delete the stale link {name}"))?;
            netlink.create_veth(name, "eth0", child.as_raw())
        }
        other => other,
    }
    .context(|| format!("create the veth pair {name}"))?;
    let index = nix::net::if_::if_nametoindex(name.as_str())
        .context(|| format!("find the index of {name}"))?;
    match netlink.set_no_ipv6_addresses(index) {
        // A kernel without IPv6 has nothing to keep off.
        Err(nix::errno::Errno::EAFNOSUPPORT) => Ok(()),
        other => other,
    }
    .context(|| format!("keep IPv6 addresses off {name}"))?;
    if net.route_localnet {
        let path = format!("/proc/sys/net/ipv4/conf/{name}/route_localnet");
        std::fs::write(&path, "1").context(|| format!("write {path}"))?;
    }
    netlink
        .add_address(index, net.host_address, net.prefix_len)
        .context(|| format!("address {name}"))?;
    netlink.set_up(index).context(|| format!("bring {name} up"))?;
    sync.write_all(b"n").context(|| "tell the child its veth pair exists".to_owned())
}

/// G, before J creates the veth pair: turns IPv6 off by default in the sandbox's network
/// namespace, so that `eth0`, created in it afterwards, starts with IPv6 off (the loopback,
/// which already exists, keeps `::1`), and tells J (`i` on `sync`).
///
/// Sandboxes have no IPv6 (docs/network.md), and an interface with it gets a link-local
/// address, its route, duplicate address detection and multicast reports. Writing an
/// interface's own `disable_ipv6` takes the kernel's rtnl lock, and when another sandbox holds
/// it the kernel restarts the write until it is free: in a burst of 300 that spin cost about
/// 0.8 ms of CPU per sandbox on each end. Writing the namespace's default takes no lock. A
/// kernel without IPv6 has nothing to turn off.
pub(crate) fn prepare_namespace(sync: &mut UnixStream) -> Result<(), JailError> {
    let path = "/proc/sys/net/ipv6/conf/default/disable_ipv6";
    match std::fs::write(path, "1") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other.context(|| format!("write {path}")),
    }?;
    sync.write_all(b"i").context(|| "tell J the network namespace is ready".to_owned())
}

/// G: brings `lo` up, binds 127.0.0.1:`port` and sends the listener over `channel`. Runs in
/// G's new network namespace; the listener keeps belonging to that namespace
/// when the server uses it from its own threads.
pub(crate) fn listen_and_hand_over(port: u16, channel: &UnixStream) -> Result<(), JailError> {
    crate::sys::loopback_up().context(|| "bring the loopback interface up".to_owned())?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .context(|| format!("listen on 127.0.0.1:{port}"))?;
    crate::fdpass::send_fd(channel, listener.as_fd())
}

/// G: addresses `eth0` (IPv6 is already off there, see [`prepare_namespace`]), brings it up
/// and routes through the host end.
/// Runs in the sandbox's network namespace, as root of the user namespace that owns it, once
/// J attached the pair.
pub(crate) fn configure_eth0(net: &JailNetwork) -> Result<(), JailError> {
    let mut netlink = Netlink::open()?;
    let index = nix::net::if_::if_nametoindex("eth0").context(|| "find eth0".to_owned())?;
    netlink
        .add_address(index, net.sandbox_address, net.prefix_len)
        .context(|| "address eth0".to_owned())?;
    netlink.set_up(index).context(|| "bring eth0 up".to_owned())?;
    netlink.add_default_route(net.host_address).context(|| "add the default route".to_owned())
}
