//! How busy the machine is apart from the bench: the share of all cores' time spent busy
//! (`/proc/stat`) over a short sample, taken while neither the bench nor its server runs.
//! The machine is shared, so this is reported next to the figures as their noise level.

use std::time::Duration;

/// Busy share of all cores (0.0..=1.0) over `sample`, or `None` where `/proc/stat` cannot
/// be read.
pub(crate) fn busy_share(sample: Duration) -> Option<f64> {
    let (busy0, total0) = cpu_times()?;
    std::thread::sleep(sample);
    let (busy1, total1) = cpu_times()?;
    let total = total1.checked_sub(total0)?;
    (total > 0).then(|| busy1.saturating_sub(busy0) as f64 / total as f64)
}

/// CPU time all cores have spent busy since boot, in ms (every process and kernel thread:
/// the cost of a phase whose work is spread over many processes).
pub(crate) fn busy_cpu_ms() -> Option<f64> {
    let (busy, _) = cpu_times()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(busy as f64 * 1000.0 / ticks as f64)
}

/// `(busy, total)` jiffies of the aggregate `cpu` line; idle and iowait are not busy.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_line(stat.lines().next()?)
}

fn parse_cpu_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let values: Vec<u64> = fields.take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let total: u64 = values.iter().sum();
    let idle = values.get(3)? + values.get(4)?;
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_line;

    #[test]
    fn busy_excludes_idle_and_iowait() {
        assert_eq!(parse_cpu_line("cpu  10 0 5 80 5 0 0 0 0 0"), Some((15, 100)));
        assert_eq!(parse_cpu_line("cpu0 10 0 5 80 5 0 0 0 0 0"), None);
    }
}
