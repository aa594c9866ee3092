//! Sandbox networking on the server's side: the operator's networks file (networks that
//! `VpcConfig` subnet and security-group ids select, each with a mode and egress rules), which
//! network a function runs in, the address slots of sandboxes with an external interface
//! (allocated without collisions and reclaimed when the sandbox's jail process has exited),
//! and what a sandbox is told about its network (`/etc/resolv.conf`, `AWS_ENDPOINT_URL`).
//! The privileged parts (the firewall table, the veth pairs) are `alonzo_jail`'s.
//! See `docs/network.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};

use alonzo_jail::firewall::{self, Egress, EgressRule, FirewallPlan, Protocol};
use alonzo_jail::JailNetwork;

/// What a sandbox can reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Its own external interface with NAT: outbound connections (to the network's egress
    /// rules, if it is an operator network), nothing inbound.
    #[default]
    Outbound,
    /// Loopback only.
    None,
}

impl NetworkMode {
    /// Parses `outbound` or `none`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "outbound" => Some(Self::Outbound),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// The operator's networks, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks {
    networks: Vec<Network>,
}

/// One operator network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Its name in the file.
    pub name: String,
    /// `outbound` (confined to `egress`) or `none`.
    pub mode: NetworkMode,
    /// The `VpcConfig.SubnetIds` that select it.
    pub subnet_ids: Vec<String>,
    /// The `VpcConfig.SecurityGroupIds` functions in it may name.
    pub security_group_ids: Vec<String>,
    /// The only destinations its sandboxes may reach (besides the DNS resolvers).
    pub egress: Vec<EgressRule>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    networks: BTreeMap<String, NetworkShape>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkShape {
    #[serde(default)]
    mode: NetworkMode,
    subnet_ids: Vec<String>,
    #[serde(default)]
    security_group_ids: Vec<String>,
    #[serde(default)]
    egress: Vec<EgressShape>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EgressShape {
    cidr: String,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    ports: Vec<u16>,
}

/// The most networks a file may define (profile numbers are two hex digits, and 0 is the
/// default network's).
const MAX_NETWORKS: usize = 200;

impl Networks {
    /// Parses and validates a networks file (JSON); every problem is reported.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let shape: FileShape = serde_json::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        if shape.networks.len() > MAX_NETWORKS {
            problems.push(format!("at most {MAX_NETWORKS} networks may be defined"));
        }
        let mut owners: BTreeMap<String, String> = BTreeMap::new();
        let mut networks = Vec::new();
        for (name, net) in shape.networks {
            if net.subnet_ids.is_empty() {
                problems.push(format!("network {name:?}: subnet_ids must not be empty"));
            }
            for id in net.subnet_ids.iter().chain(&net.security_group_ids) {
                if id.is_empty() || id.len() > 1024 {
                    problems.push(format!("network {name:?}: id {id:?} must be 1 to 1024 bytes"));
                }
                if let Some(other) = owners.insert(id.clone(), name.clone()) {
                    problems.push(format!(
                        "id {id:?} is listed by networks {other:?} and {name:?}: each id selects one network"
                    ));
                }
            }
            if net.mode == NetworkMode::None && !net.egress.is_empty() {
                problems.push(format!("network {name:?}: mode none takes no egress rules"));
            }
            let mut egress = Vec::new();
            for rule in &net.egress {
                match parse_rule(rule) {
                    Ok(rule) => egress.push(rule),
                    Err(why) => problems.push(format!("network {name:?}: {why}")),
                }
            }
            networks.push(Network {
                name,
                mode: net.mode,
                subnet_ids: net.subnet_ids,
                security_group_ids: net.security_group_ids,
                egress,
            });
        }
        if problems.is_empty() {
            Ok(Self { networks })
        } else {
            Err(problems)
        }
    }

    /// The network `VpcConfig`'s ids select: `None` without ids (the operator's default
    /// network), the one network all subnets belong to otherwise. The error is the message of
    /// Lambda's `InvalidParameterValueException`.
    pub fn resolve(
        &self,
        subnet_ids: &[String],
        security_group_ids: &[String],
    ) -> Result<Option<&Network>, String> {
        if subnet_ids.is_empty() && security_group_ids.is_empty() {
            return Ok(None);
        }
        let Some(first) = subnet_ids.first() else {
            return Err("VpcConfig needs at least one subnet id with its security groups.".into());
        };
        let network = self.by_subnet(first)?;
        for id in subnet_ids {
            if self.by_subnet(id)?.name != network.name {
                return Err(format!(
                    "Subnets {first} and {id} are in different networks; a function's subnets must be in one network."
                ));
            }
        }
        for id in security_group_ids {
            if !network.security_group_ids.contains(id) {
                return Err(format!(
                    "Error occurred while DescribeSecurityGroups. Security group {id} does not exist in the network of subnet {first}."
                ));
            }
        }
        Ok(Some(network))
    }

    /// Whether any network gives its sandboxes an external interface.
    pub fn any_outbound(&self) -> bool {
        self.networks.iter().any(|n| n.mode == NetworkMode::Outbound)
    }

    /// The network called `name`.
    pub fn get(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.name == name)
    }

    fn by_subnet(&self, id: &str) -> Result<&Network, String> {
        self.networks.iter().find(|n| n.subnet_ids.iter().any(|s| s == id)).ok_or_else(|| {
            format!("Error occurred while DescribeSubnets. Subnet {id} does not exist.")
        })
    }

    fn profile_of(&self, name: &str) -> Option<(u8, &Network)> {
        let idx = self.networks.iter().position(|n| n.name == name)?;
        Some((u8::try_from(idx + 1).ok()?, &self.networks[idx]))
    }
}

fn parse_rule(rule: &EgressShape) -> Result<EgressRule, String> {
    let cidr = parse_cidr(&rule.cidr)?;
    let protocol = match rule.protocol.as_deref() {
        None | Some("all") => None,
        Some("tcp") => Some(Protocol::Tcp),
        Some("udp") => Some(Protocol::Udp),
        Some(other) => return Err(format!("protocol {other:?} is not tcp, udp or all")),
    };
    if rule.ports.contains(&0) {
        return Err("port 0 is not a port".to_owned());
    }
    Ok(EgressRule { cidr, protocol, ports: rule.ports.clone() })
}

/// Parses `a.b.c.d/n` (IPv4, host bits clear).
pub fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8), String> {
    let bad = || format!("{text:?} is not an IPv4 CIDR such as 198.51.100.0/24");
    let (addr, len) = text.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(bad)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    if u32::from(addr) & !mask != 0 {
        return Err(format!("{text:?} has host bits set"));
    }
    Ok((addr, len))
}

/// The server's networking settings.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// The mode of functions without `VpcConfig`.
    pub default_mode: NetworkMode,
    /// The operator's networks.
    pub networks: Networks,
    /// The resolvers in every sandbox's `/etc/resolv.conf`, and the only DNS servers any
    /// sandbox with an external interface may query.
    pub dns: Vec<Ipv4Addr>,
    /// Whether and how functions may call the platform's API.
    pub platform: Option<PlatformAccess>,
}

/// Function-to-platform calls: the sandbox's gateway forwards `target.port()` to `target`.
#[derive(Debug, Clone)]
pub struct PlatformAccess {
    /// The server's API listener.
    pub target: SocketAddrV4,
    /// The access key id and secret given to functions as `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`, if the operator passes credentials on.
    pub credentials: Option<(String, String)>,
}

/// The server's live networking: its address block, firewall table and slots.
#[derive(Debug)]
pub struct Networking {
    settings: NetworkSettings,
    block: firewall::Block,
    installed: Mutex<Option<firewall::Installed>>,
    slots: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    used: BTreeSet<u16>,
    next: u16,
}

/// A sandbox's slot; freed when dropped (after its jail process has exited).
#[derive(Debug)]
pub(crate) struct SlotGuard {
    networking: Arc<Networking>,
    slot: u16,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Ok(mut slots) = self.networking.slots.lock() {
            slots.used.remove(&self.slot);
        }
    }
}

/// What a new sandbox gets: its interface, its extra environment, the slot it holds.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub(crate) jail: Option<JailNetwork>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) slot: Option<SlotGuard>,
}

/// The attachment of a new sandbox of a function in `network` (`None`: the default network),
/// or none at all when the server runs without networking.
pub(crate) fn attach_for(
    manager: &crate::Manager,
    network: Option<&str>,
) -> Result<Attachment, String> {
    match &manager.inner.networking {
        Some(networking) => networking.attach(network),
        None => Ok(Attachment { jail: None, env: Vec::new(), slot: None }),
    }
}

impl Networking {
    /// Claims an address block and installs the firewall table. Runs once, at start-up.
    pub fn start(settings: NetworkSettings) -> Result<Arc<Self>, alonzo_jail::JailError> {
        let block = firewall::Block::claim()?;
        let networking = Self {
            settings,
            block,
            installed: Mutex::new(None),
            slots: Mutex::new(Slots::default()),
        };
        let installed = firewall::install(&networking.plan())?;
        if let Ok(mut slot) = networking.installed.lock() {
            *slot = Some(installed);
        }
        Ok(Arc::new(networking))
    }

    /// The firewall the settings call for.
    pub fn plan(&self) -> FirewallPlan {
        let mut profiles = vec![Egress::Any];
        for network in &self.settings.networks.networks {
            profiles.push(Egress::Only(match network.mode {
                NetworkMode::Outbound => network.egress.clone(),
                NetworkMode::None => Vec::new(),
            }));
        }
        FirewallPlan {
            block: self.block.index(),
            profiles,
            dns: self.settings.dns.clone(),
            platform: self.settings.platform.as_ref().map(|p| (p.target.port(), p.target)),
        }
    }

    /// The DNS resolvers of `/etc/resolv.conf`.
    pub fn dns(&self) -> &[Ipv4Addr] {
        &self.settings.dns
    }

    /// Deletes the firewall table (shutdown). Idempotent.
    pub fn stop(&self) {
        let installed = self.installed.lock().ok().and_then(|mut i| i.take());
        if let Some(installed) = installed {
            if let Err(e) = installed.remove() {
                tracing::warn!(error = %e, "cannot remove the sandbox firewall table");
            }
        }
    }

    /// The interface, environment and slot of a new sandbox of a function in `network`
    /// (`None`: the default network). The error says why the function cannot run.
    pub(crate) fn attach(self: &Arc<Self>, network: Option<&str>) -> Result<Attachment, String> {
        let (profile, mode) = match network {
            None => (0, self.settings.default_mode),
            Some(name) => {
                let (profile, net) = self
                    .settings
                    .networks
                    .profile_of(name)
                    .ok_or_else(|| format!("network {name:?} is no longer defined"))?;
                (profile, net.mode)
            }
        };
        if mode == NetworkMode::None {
            return Ok(Attachment { jail: None, env: Vec::new(), slot: None });
        }
        let slot = self.take_slot().ok_or("every sandbox address slot is in use")?;
        let block = self.block.index();
        let (host_address, sandbox_address) = firewall::slot_addresses(block, slot);
        let mut env = Vec::new();
        let route_localnet = if let Some(platform) = &self.settings.platform {
            env.push((
                "AWS_ENDPOINT_URL".to_owned(),
                format!("http://{host_address}:{}", platform.target.port()),
            ));
            if let Some((key, secret)) = &platform.credentials {
                env.push(("AWS_ACCESS_KEY_ID".to_owned(), key.clone()));
                env.push(("AWS_SECRET_ACCESS_KEY".to_owned(), secret.clone()));
            }
            platform.target.ip().is_loopback()
        } else {
            false
        };
        let jail = JailNetwork {
            host_interface: firewall::interface_name(block, profile, slot),
            host_address,
            sandbox_address,
            prefix_len: firewall::SLOT_PREFIX,
            route_localnet,
        };
        Ok(Attachment {
            jail: Some(jail),
            env,
            slot: Some(SlotGuard { networking: Arc::clone(self), slot }),
        })
    }

    /// The next free slot after the last one handed out (so a freed slot, whose interface
    /// the kernel may still be deleting, is reused as late as possible).
    fn take_slot(&self) -> Option<u16> {
        let mut slots = self.slots.lock().ok()?;
        for step in 0..firewall::SLOTS {
            let slot = (slots.next + step) % firewall::SLOTS;
            if slots.used.insert(slot) {
                slots.next = (slot + 1) % firewall::SLOTS;
                return Some(slot);
            }
        }
        None
    }
}

/// The text of the sandboxes' `/etc/resolv.conf`.
pub(crate) fn resolv_conf(dns: &[Ipv4Addr]) -> String {
    let mut text = String::new();
    for server in dns {
        text.push_str(&format!("nameserver {server}\n"));
    }
    text.push_str("options timeout:2 attempts:2\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"networks": {
        "db": {"subnet_ids": ["subnet-db1", "subnet-db2"], "security_group_ids": ["sg-db"],
               "egress": [{"cidr": "198.51.100.0/24", "protocol": "tcp", "ports": [5432]}]},
        "isolated": {"mode": "none", "subnet_ids": ["subnet-iso"]}
    }}"#;

    #[test]
    fn vpc_ids_select_one_network() {
        let networks = Networks::parse(FILE).unwrap();
        assert_eq!(networks.resolve(&[], &[]).unwrap(), None);
        let db = networks.resolve(&["subnet-db2".into()], &["sg-db".into()]).unwrap().unwrap();
        assert_eq!(db.name, "db");
        assert_eq!(db.egress[0].ports, vec![5432]);
        let iso = networks.resolve(&["subnet-iso".into()], &[]).unwrap().unwrap();
        assert_eq!(iso.mode, NetworkMode::None);
        for (subnets, groups, expected) in [
            (vec!["subnet-nope"], vec![], "Subnet subnet-nope does not exist"),
            (vec!["subnet-db1", "subnet-iso"], vec![], "different networks"),
            (vec!["subnet-db1"], vec!["sg-web"], "Security group sg-web"),
            (vec![], vec!["sg-db"], "at least one subnet"),
        ] {
            let subnets: Vec<String> = subnets.into_iter().map(Into::into).collect();
            let groups: Vec<String> = groups.into_iter().map(Into::into).collect();
            let err = networks.resolve(&subnets, &groups).unwrap_err();
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
        }
    }

    #[test]
    fn every_problem_of_a_file_is_reported() {
        let problems = Networks::parse(
            r#"{"networks": {
                "a": {"subnet_ids": ["s1"], "egress": [{"cidr": "10.0.0.1/8"}, {"cidr": "x"}]},
                "b": {"subnet_ids": ["s1"], "mode": "none", "egress": [{"cidr": "10.0.0.0/8", "protocol": "icmp", "ports": [0]}]},
                "c": {"subnet_ids": []}
            }}"#,
        )
        .unwrap_err();
        let all = problems.join("\n");
        for expected in [
            "host bits",
            "not an IPv4 CIDR",
            "listed by networks",
            "mode none takes no egress",
            "icmp",
            "subnet_ids must not be empty",
        ] {
            assert!(all.contains(expected), "{all}\nlacks {expected:?}");
        }
        assert!(Networks::parse(r#"{"networks": {}, "extra": 1}"#).is_err());
        assert!(Networks::parse(r#"{"networks": {"a": {"subnet_ids": ["s"], "mode": "open"}}}"#)
            .is_err());
    }

    #[test]
    fn cidrs_are_checked() {
        assert_eq!(parse_cidr("0.0.0.0/0").unwrap(), (Ipv4Addr::UNSPECIFIED, 0));
        assert_eq!(parse_cidr("198.51.100.7/32").unwrap().1, 32);
        assert!(parse_cidr("198.51.100.0/33").is_err());
        assert!(parse_cidr("198.51.100.0").is_err());
    }

    #[test]
    fn resolv_conf_lists_the_resolvers() {
        let text = resolv_conf(&[Ipv4Addr::new(198, 51, 100, 2)]);
        assert!(text.starts_with("nameserver 198.51.100.2\n"));
    }
}
