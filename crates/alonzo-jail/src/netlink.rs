//! The few rtnetlink requests the jail needs (create a veth pair with one end in another
//! network namespace, delete a link, bring a link up, keep IPv6 addresses off a link, add an
//! IPv4 address, add a default route), each sent on a
//! `NETLINK_ROUTE` socket of the calling process's network namespace and acknowledged.
//!
//! Why not a crate: the messages are short and fixed, `netlink-packet-route` would bring
//! its own dependency tree (and API churn) into the one crate that must stay small and
//! auditable, and everything here is safe Rust over `nix` sockets.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

use crate::error::{Context, JailError};

const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const IFF_UP: u32 = 1;

/// A `NETLINK_ROUTE` socket bound in the current network namespace.
#[derive(Debug)]
pub(crate) struct Netlink {
    socket: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// Opens the socket; it stays bound to the network namespace it was opened in.
    pub(crate) fn open() -> Result<Self, JailError> {
        let socket = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .context(|| "open a netlink socket".to_owned())?;
        bind(socket.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .context(|| "bind the netlink socket".to_owned())?;
        Ok(Self { socket, seq: 0 })
    }

    /// Creates the veth pair `host_name` (here) and `peer_name` (directly in the network
    /// namespace of process `peer_pid`), both down.
    pub(crate) fn create_veth(
        &mut self,
        host_name: &str,
        peer_name: &str,
        peer_pid: i32,
    ) -> nix::Result<()> {
        // The peer cannot be created up (veth refuses to open an end whose peer is not yet
        // linked); its namespace's owner brings it up.
        let mut peer = ifinfomsg(0, 0);
        attr(&mut peer, IFLA_IFNAME, &c_string(peer_name));
        attr(&mut peer, IFLA_NET_NS_PID, &peer_pid.to_ne_bytes());
        let mut data = Vec::new();
        attr(&mut data, VETH_INFO_PEER | NLA_F_NESTED, &peer);
        let mut info = Vec::new();
        attr(&mut info, IFLA_INFO_KIND, b"veth");
        attr(&mut info, IFLA_INFO_DATA | NLA_F_NESTED, &data);
        let mut body = ifinfomsg(0, 0);
        attr(&mut body, IFLA_IFNAME, &c_string(host_name));
        attr(&mut body, IFLA_LINKINFO | NLA_F_NESTED, &info);
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &body)
    }

    /// Deletes the link called `name` in this namespace.
    pub(crate) fn delete_link(&mut self, name: &str) -> nix::Result<()> {
        let mut body = ifinfomsg(0, 0);
        attr(&mut body, IFLA_IFNAME, &c_string(name));
        self.request(RTM_DELLINK, 0, &body)
    }

    /// Sets the link with index `index` up.
    pub(crate) fn set_up(&mut self, index: u32) -> nix::Result<()> {
        let index = i32::try_from(index).map_err(|_| nix::errno::Errno::EINVAL)?;
        self.request(RTM_NEWLINK, 0, &ifinfomsg(index, IFF_UP))
    }

    /// Sets the IPv6 address generation mode of the link with index `index` to none, so that
    /// it gets no link-local address (nor its routes, duplicate address detection and
    /// reports) when it comes up. Unlike writing its `disable_ipv6`, which retries while
    /// another process holds the kernel's rtnl lock, a request waits for the lock.
    pub(crate) fn set_no_ipv6_addresses(&mut self, index: u32) -> nix::Result<()> {
        let index = i32::try_from(index).map_err(|_| nix::errno::Errno::EINVAL)?;
        let mut inet6 = Vec::new();
        attr(&mut inet6, IFLA_INET6_ADDR_GEN_MODE, &[IN6_ADDR_GEN_MODE_NONE]);
        let mut af_spec = Vec::new();
        let af_inet6 = u16::try_from(libc::AF_INET6).map_err(|_| nix::errno::Errno::EINVAL)?;
        attr(&mut af_spec, af_inet6 | NLA_F_NESTED, &inet6);
        let mut body = ifinfomsg(index, 0);
        attr(&mut body, IFLA_AF_SPEC | NLA_F_NESTED, &af_spec);
        self.request(RTM_NEWLINK, 0, &body)
    }

    /// Adds `addr/prefix_len` to the link with index `index`.
    pub(crate) fn add_address(
        &mut self,
        index: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> nix::Result<()> {
        // struct ifaddrmsg: family, prefixlen, flags, scope (universe), index.
        let mut body = vec![libc_family(), prefix_len, 0, 0];
        body.extend_from_slice(&index.to_ne_bytes());
        attr(&mut body, IFA_LOCAL, &addr.octets());
        attr(&mut body, IFA_ADDRESS, &addr.octets());
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &body)
    }

    /// Adds the default route through `gateway` to the main table.
    pub(crate) fn add_default_route(&mut self, gateway: Ipv4Addr) -> nix::Result<()> {
        // struct rtmsg: family, dst_len 0 (default), src_len, tos, table main (254),
        // protocol boot (3), scope universe (0), type unicast (1), flags.
        let mut body = vec![libc_family(), 0, 0, 0, 254, 3, 0, 1];
        body.extend_from_slice(&0u32.to_ne_bytes());
        attr(&mut body, RTA_GATEWAY, &gateway.octets());
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &body)
    }

    /// Sends one request and waits for its acknowledgement (or error).
    fn request(&mut self, kind: u16, flags: u16, body: &[u8]) -> nix::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let len = u32::try_from(16 + body.len()).map_err(|_| nix::errno::Errno::E2BIG)?;
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // To the kernel (port 0); the socket is not connected.
        sendto(self.socket.as_raw_fd(), &msg, &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
        let mut buf = [0u8; 4096];
        loop {
            let n = recv(self.socket.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            if let Some(result) = parse_ack(&buf[..n], self.seq) {
                return result;
            }
        }
    }
}

/// Finds the acknowledgement of `seq` in a received datagram: `Some(Ok)` for an ack,
/// `Some(Err)` for an error, `None` if the datagram holds neither.
fn parse_ack(buf: &[u8], seq: u32) -> Option<nix::Result<()>> {
    let mut rest = buf;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        let msg_seq = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
        if len < 16 || len > rest.len() {
            return None;
        }
        if kind == NLMSG_ERROR && msg_seq == seq && len >= 20 {
            let code = i32::from_ne_bytes(rest[16..20].try_into().ok()?);
            return Some(if code == 0 {
                Ok(())
            } else {
                Err(nix::errno::Errno::from_raw(code.saturating_neg()))
            });
        }
        rest = &rest[align(len).min(rest.len())..];
    }
    None
}

/// `struct ifinfomsg` for an unspecified family: index, flags, and the change mask (the same
/// bits as `flags`, so only those are touched).
fn ifinfomsg(index: i32, flags: u32) -> Vec<u8> {
    let mut out = vec![0u8, 0, 0, 0];
    out.extend_from_slice(&index.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out
}

/// Appends one attribute (`struct rtattr` and the payload, padded to 4 bytes).
fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = u16::try_from(4 + payload.len()).expect("netlink attributes here are tiny");
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align(out.len()), 0);
}

fn c_string(name: &str) -> Vec<u8> {
    let mut out = name.as_bytes().to_vec();
    out.push(0);
    out
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn libc_family() -> u8 {
    u8::try_from(libc::AF_INET).expect("AF_INET fits in a byte")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let mut out = Vec::new();
        attr(&mut out, IFLA_IFNAME, &c_string("eth0"));
        assert_eq!(out.len(), 12);
        assert_eq!(u16::from_ne_bytes([out[0], out[1]]), 9);
        assert_eq!(&out[4..9], b"eth0\0");
    }

    #[test]
    fn acks_and_errors_are_told_apart() {
        let mut msg = Vec::new();
        msg.extend_from_slice(&36u32.to_ne_bytes());
        msg.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&7u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&(-17i32).to_ne_bytes());
        msg.resize(36, 0);
        assert_eq!(parse_ack(&msg, 7), Some(Err(nix::errno::Errno::EEXIST)));
        assert_eq!(parse_ack(&msg, 8), None);
        msg[16..20].copy_from_slice(&0i32.to_ne_bytes());
        assert_eq!(parse_ack(&msg, 7), Some(Ok(())));
    }
}
