//! The host's side of sandbox networking, set up once per server: the address block the
//! server's sandboxes use (claimed with a lock so concurrent servers never share one), the
//! nftables table that confines them (written here as text, loaded with `nft -f -`, removed at
//! shutdown), and `net.ipv4.ip_forward`.
//!
//! Every sandbox with an external interface has a host-side veth named
//! `az<block:02x><profile:02x><slot:04x>`; the rules match those names, so they are static
//! and nothing changes in the firewall when a sandbox starts or ends. Only the server's own
//! table (`inet alonzo_<block>`) is ever created or deleted; no other table is touched.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Context, JailError};

/// The range all servers' blocks come from, and the size of one server's block.
pub const POOL: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 224, 0, 0), 12);
/// The prefix length of one server's block (4096 sandboxes of a /30 each).
pub const BLOCK_PREFIX: u8 = 18;
/// How many blocks the pool holds (64): servers that can run on one host at once.
pub const BLOCKS: u16 = 1 << (BLOCK_PREFIX - POOL.1);
/// The prefix length of one sandbox's point-to-point subnet.
pub const SLOT_PREFIX: u8 = 30;
/// Where the block locks live.
const LOCK_DIR: &str = "/run/alonzo/net";

/// One server's address block, held (by an exclusive `flock`) for as long as this lives.
#[derive(Debug)]
pub struct Block {
    index: u8,
    _lock: Flock<std::fs::File>,
}

impl Block {
    /// Claims the first block no other live server holds.
    pub fn claim() -> Result<Self, JailError> {
        std::fs::create_dir_all(LOCK_DIR).context(|| format!("create {LOCK_DIR}"))?;
        for index in (0..BLOCKS).filter_map(|i| u8::try_from(i).ok()) {
            let path = Path::new(LOCK_DIR).join(format!("block-{index}.lock"));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .context(|| format!("open {}", path.display()))?;
            if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                return Ok(Self { index, _lock: lock });
            }
        }
        Err(JailError::Protocol(format!("all {BLOCKS} sandbox address blocks are in use")))
    }

    /// The block's number (0 to `BLOCKS` - 1).
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The block's first address.
    pub fn base(&self) -> Ipv4Addr {
        block_base(self.index)
    }
}

/// The first address of block `index`.
pub fn block_base(index: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(POOL.0) + (u32::from(index) << (32 - BLOCK_PREFIX)))
}

/// The number of sandboxes with an external interface one server can run at once.
pub const SLOTS: u16 = 1 << (SLOT_PREFIX - BLOCK_PREFIX);

/// The host and sandbox addresses of slot `slot` of block `block`.
pub fn slot_addresses(block: u8, slot: u16) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(block_base(block)) + (u32::from(slot % SLOTS) << (32 - SLOT_PREFIX));
    (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

/// The host-side interface name of a sandbox.
pub fn interface_name(block: u8, profile: u8, slot: u16) -> String {
    format!("az{block:02x}{profile:02x}{slot:04x}")
}

/// What the server's table must allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallPlan {
    /// The server's block.
    pub block: u8,
    /// Egress of each profile, indexed by the profile number in interface names.
    pub profiles: Vec<Egress>,
    /// DNS resolvers every profile may query (UDP and TCP port 53).
    pub dns: Vec<Ipv4Addr>,
    /// If functions may call the platform: the sandbox connects to its gateway on `port`
    /// and is forwarded to `target`, the server's API listener.
    pub platform: Option<(u16, SocketAddrV4)>,
}

/// A profile's egress: anything outside the host, or only what some rules allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Egress {
    /// Any address that is neither the host nor another sandbox.
    Any,
    /// Only these destinations.
    Only(Vec<EgressRule>),
}

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    /// Network address and prefix length.
    pub cidr: (Ipv4Addr, u8),
    /// `tcp`, `udp`, or `None` for both.
    pub protocol: Option<Protocol>,
    /// Destination ports; empty means every port.
    pub ports: Vec<u16>,
}

/// A transport protocol of an egress rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl FirewallPlan {
    /// The table's name.
    pub fn table(&self) -> String {
        format!("alonzo_{}", self.block)
    }

    /// The nft script that replaces the server's table (atomically: `nft -f` applies a script
    /// as one transaction).
    pub fn script(&self) -> String {
        let table = self.table();
        let all = format!("az{:02x}*", self.block);
        let block = format!("{}/{BLOCK_PREFIX}", block_base(self.block));
        let mut s = format!("table inet {table} {{}}\ndelete table inet {table}\n");
        let _ = writeln!(s, "table inet {table} {{");
        // Calls to the platform: the gateway's port goes to the API listener, which may be on
        // the host's loopback (hence route_localnet on the host ends).
        s.push_str(
            "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n",
        );
        if let Some((port, target)) = self.platform {
            let _ = writeln!(
                s,
                "    iifname \"{all}\" fib daddr type local tcp dport {port} dnat ip to {target}"
            );
        }
        s.push_str("  }\n");
        s.push_str("  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
        let _ = writeln!(s, "    ip saddr {block} oifname != \"az*\" masquerade");
        s.push_str("  }\n");
        // Nothing from a sandbox reaches the host itself, except the forwarded platform port.
        s.push_str("  chain input {\n    type filter hook input priority filter; policy accept;\n");
        if let Some((_, target)) = self.platform {
            let _ = writeln!(
                s,
                "    iifname \"{all}\" ct status dnat ip daddr {} tcp dport {} accept",
                target.ip(),
                target.port()
            );
        }
        let _ = writeln!(s, "    iifname \"{all}\" drop");
        s.push_str("  }\n");
        // The host starts no connection into a sandbox; it only answers.
        s.push_str(
            "  chain output {\n    type filter hook output priority filter; policy accept;\n",
        );
        let _ = writeln!(s, "    oifname \"{all}\" ct state established,related accept");
        let _ = writeln!(s, "    oifname \"{all}\" drop");
        s.push_str("  }\n");
        s.push_str(
            "  chain forward {\n    type filter hook forward priority filter; policy accept;\n",
        );
        // Nothing connects in: only answers reach a sandbox (this also keeps sandboxes apart).
        let _ = writeln!(s, "    oifname \"{all}\" ct state established,related accept");
        let _ = writeln!(s, "    oifname \"{all}\" drop");
        // No sandbox of another server either, and no spoofed source address.
        let _ = writeln!(s, "    iifname \"{all}\" oifname \"az*\" drop");
        let _ = writeln!(s, "    iifname \"{all}\" fib saddr . iif oif missing drop");
        let _ = writeln!(s, "    iifname \"{all}\" ct state established,related accept");
        if !self.dns.is_empty() {
            let dns = join(self.dns.iter());
            let _ = writeln!(
                s,
                "    iifname \"{all}\" ip daddr {{ {dns} }} meta l4proto {{ tcp, udp }} th dport 53 accept"
            );
        }
        for (profile, egress) in self.profiles.iter().enumerate() {
            let name = format!("az{:02x}{profile:02x}*", self.block);
            match egress {
                Egress::Any => {
                    let _ = writeln!(s, "    iifname \"{name}\" accept");
                }
                Egress::Only(rules) => {
                    for rule in rules {
                        let _ = writeln!(s, "    iifname \"{name}\" {} accept", rule.matcher());
                    }
                }
            }
        }
        let _ = writeln!(s, "    iifname \"{all}\" drop");
        s.push_str("  }\n}\n");
        s
    }
}

impl EgressRule {
    fn matcher(&self) -> String {
        let mut m = format!("ip daddr {}/{}", self.cidr.0, self.cidr.1);
        let proto = match self.protocol {
            Some(Protocol::Tcp) => "tcp",
            Some(Protocol::Udp) => "udp",
            None => "{ tcp, udp }",
        };
        if self.ports.is_empty() {
            if self.protocol.is_some() {
                let _ = write!(m, " meta l4proto {proto}");
            }
        } else {
            let _ = write!(m, " meta l4proto {proto} th dport {{ {} }}", join(self.ports.iter()));
        }
        m
    }
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// The server's table, installed; [`Installed::remove`] deletes it.
#[derive(Debug)]
pub struct Installed {
    table: String,
    nft: PathBuf,
}

/// Loads the plan's table (replacing a stale one of the same name, left by a server that
/// died) and turns on IPv4 forwarding, which masquerading the sandboxes' traffic needs.
pub fn install(plan: &FirewallPlan) -> Result<Installed, JailError> {
    let nft = PathBuf::from("nft");
    run_nft(&nft, &["-f", "-"], Some(&plan.script()))?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .context(|| "enable net.ipv4.ip_forward".to_owned())?;
    Ok(Installed { table: plan.table(), nft })
}

impl Installed {
    /// Deletes the table; sandboxes still running lose their egress (the server is stopping).
    pub fn remove(self) -> Result<(), JailError> {
        run_nft(&self.nft, &["delete", "table", "inet", &self.table], None)
    }
}

fn run_nft(nft: &Path, args: &[&str], stdin: Option<&str>) -> Result<(), JailError> {
    let step = || format!("run {} {}", nft.display(), args.join(" "));
    let mut child = Command::new(nft)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context(step)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).context(step)?;
    }
    let out = child.wait_with_output().context(step)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(JailError::Io {
            step: step(),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_disjoint_point_to_point_subnets_of_the_block() {
        assert_eq!(block_base(0), Ipv4Addr::new(10, 224, 0, 0));
        assert_eq!(BLOCKS, 64);
        assert_eq!(SLOTS, 4096);
        // The last block ends where the /12 pool does.
        assert_eq!(block_base(63), Ipv4Addr::new(10, 239, 192, 0));
        assert_eq!(
            slot_addresses(63, SLOTS - 1),
            (Ipv4Addr::new(10, 239, 255, 253), Ipv4Addr::new(10, 239, 255, 254))
        );
        assert_eq!(
            slot_addresses(1, 0),
            (Ipv4Addr::new(10, 224, 64, 1), Ipv4Addr::new(10, 224, 64, 2))
        );
        assert_eq!(
            slot_addresses(1, 4095),
            (Ipv4Addr::new(10, 224, 127, 253), Ipv4Addr::new(10, 224, 127, 254))
        );
        assert_eq!(interface_name(63, 3, 4095), "az3f030fff");
        assert!(interface_name(255, 255, u16::MAX).len() <= 15);
    }

    #[test]
    fn the_script_replaces_only_its_own_table() {
        let plan = FirewallPlan {
            block: 2,
            profiles: vec![
                Egress::Any,
                Egress::Only(vec![
                    EgressRule {
                        cidr: (Ipv4Addr::new(198, 51, 100, 0), 24),
                        protocol: Some(Protocol::Tcp),
                        ports: vec![80, 443],
                    },
                    EgressRule {
                        cidr: (Ipv4Addr::new(203, 0, 113, 7), 32),
                        protocol: None,
                        ports: vec![],
                    },
                ]),
            ],
            dns: vec![Ipv4Addr::new(198, 51, 100, 2)],
            platform: Some((9000, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9000))),
        };
        let script = plan.script();
        assert!(script.starts_with("table inet alonzo_2 {}\ndelete table inet alonzo_2\n"));
        for line in [
            "iifname \"az02*\" fib daddr type local tcp dport 9000 dnat ip to 127.0.0.1:9000",
            "ip saddr 10.224.128.0/18 oifname != \"az*\" masquerade",
            "iifname \"az02*\" ct status dnat ip daddr 127.0.0.1 tcp dport 9000 accept",
            "oifname \"az02*\" drop",
            "iifname \"az0200*\" accept",
            "iifname \"az0201*\" ip daddr 198.51.100.0/24 meta l4proto tcp th dport { 80, 443 } accept",
            "iifname \"az0201*\" ip daddr 203.0.113.7/32 accept",
            "ip daddr { 198.51.100.2 } meta l4proto { tcp, udp } th dport 53 accept",
        ] {
            assert!(script.contains(line), "{line:?} missing from\n{script}");
        }
        assert!(script.trim_end().ends_with("iifname \"az02*\" drop\n  }\n}"));
        assert_eq!(script.matches("table inet").count(), 3);
    }
}
