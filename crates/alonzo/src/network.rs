//! The network settings of `alonzo serve`: `--network-mode`, `--networks`, `--dns` and
//! `--function-platform-access` validated before anything is bound, and the start of the
//! sandboxes' networking (address block, firewall table) once the API port is known.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::Arc;

use alonzo_sandbox::network::{NetworkMode, NetworkSettings, Networking, Networks, PlatformAccess};
use anyhow::Context;

use crate::serve::ConfigError;

/// The validated network settings.
#[derive(Debug, Clone)]
pub(crate) struct NetworkConfig {
    pub(crate) default_mode: NetworkMode,
    pub(crate) networks: Networks,
    pub(crate) dns: Vec<Ipv4Addr>,
    pub(crate) platform: PlatformChoice,
}

/// What `--function-platform-access` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlatformChoice {
    Off,
    Endpoint,
    Credentials,
}

/// Checks the flags and reads the networks file; nothing is created.
pub(crate) fn validate(
    mode: &str,
    networks: Option<&Path>,
    dns: Option<&str>,
    platform: &str,
) -> Result<NetworkConfig, ConfigError> {
    let default_mode = NetworkMode::parse(mode).ok_or_else(|| {
        ConfigError(format!("--network-mode/ALONZO_NETWORK_MODE {mode:?} is not outbound or none"))
    })?;
    let networks = match networks {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!(
                    "--networks/ALONZO_NETWORKS: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            Networks::parse(&text).map_err(|problems| {
                ConfigError(format!(
                    "--networks/ALONZO_NETWORKS {}: {}",
                    path.display(),
                    problems.join("; ")
                ))
            })?
        }
        None => Networks::default(),
    };
    let dns = match dns {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Ipv4Addr>().map_err(|_| {
                    ConfigError(format!("--dns/ALONZO_DNS: {s:?} is not an IPv4 address"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => host_resolvers(),
    };
    let platform = match platform {
        "off" => PlatformChoice::Off,
        "endpoint" => PlatformChoice::Endpoint,
        "credentials" => PlatformChoice::Credentials,
        other => {
            return Err(ConfigError(format!(
                "--function-platform-access/ALONZO_FUNCTION_PLATFORM_ACCESS {other:?} is not off, endpoint or credentials"
            )))
        }
    };
    Ok(NetworkConfig { default_mode, networks, dns, platform })
}

/// The host's non-loopback IPv4 resolvers (a loopback resolver, such as systemd-resolved's
/// stub, is not reachable from a sandbox).
fn host_resolvers() -> Vec<Ipv4Addr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|addr| addr.trim().parse::<Ipv4Addr>().ok())
        .filter(|addr| !addr.is_loopback())
        .collect()
}

/// Claims the server's address block and installs its firewall table; `None` when no sandbox
/// can have an external interface (`--network-mode none` and no `outbound` network), which
/// needs neither nftables nor any change to the host.
pub(crate) fn start(
    config: &NetworkConfig,
    api: SocketAddr,
    keys: &HashMap<String, String>,
) -> anyhow::Result<Option<Arc<Networking>>> {
    if config.default_mode == NetworkMode::None && !config.networks.any_outbound() {
        tracing::info!("sandboxes have loopback only (--network-mode none)");
        return Ok(None);
    }
    let platform = match config.platform {
        PlatformChoice::Off => None,
        choice => {
            let SocketAddr::V4(listen) = api else {
                anyhow::bail!("--function-platform-access needs an IPv4 --listen address");
            };
            let ip = if listen.ip().is_unspecified() { Ipv4Addr::LOCALHOST } else { *listen.ip() };
            let credentials = (choice == PlatformChoice::Credentials)
                .then(|| keys.iter().next().map(|(k, v)| (k.clone(), v.clone())))
                .flatten();
            Some(PlatformAccess { target: SocketAddrV4::new(ip, listen.port()), credentials })
        }
    };
    let settings = NetworkSettings {
        default_mode: config.default_mode,
        networks: config.networks.clone(),
        dns: config.dns.clone(),
        platform,
    };
    let networking = Networking::start(settings).context(
        "setting up sandbox networking (needs root and nftables' `nft`; see docs/network.md)",
    )?;
    tracing::info!(plan = ?networking.plan(), "sandbox networking ready");
    Ok(Some(networking))
}
