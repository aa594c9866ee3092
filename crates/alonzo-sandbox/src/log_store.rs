//! Reading stored logs: log groups, their streams, and events in time order, for the
//! CloudWatch Logs-compatible API and `alonzo logs`. The writing side is `logs.rs`; both
//! share its on-disk format (`<logs>/<group dir>/<stream file>.log`, lines `<epoch ms> <text>`).

use std::path::{Path, PathBuf};

use crate::logs::{group_dir_name, stream_file_name, stream_name_of, GROUP_NAME_FILE};

/// Most events one query returns.
pub const MAX_EVENTS: usize = 10_000;

/// A stored log group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroupInfo {
    /// Name, e.g. `/aws/lambda/f`.
    pub name: String,
    /// Creation time, epoch ms.
    pub created_ms: i64,
    /// Bytes stored.
    pub stored_bytes: u64,
}

/// A stored log stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStreamInfo {
    /// Name, e.g. `2026/11/29/[$LATEST]hex`.
    pub name: String,
    /// Creation time, epoch ms.
    pub created_ms: i64,
    /// First and last event times, epoch ms.
    pub first_event_ms: Option<i64>,
    /// Last event time.
    pub last_event_ms: Option<i64>,
    /// Bytes stored.
    pub stored_bytes: u64,
}

/// One log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Stream it belongs to.
    pub stream: String,
    /// Epoch ms.
    pub timestamp_ms: i64,
    /// Text.
    pub message: String,
    /// Stable id: `<stream>:<line index>`.
    pub event_id: String,
}

/// Read access to the logs directory.
#[derive(Debug, Clone)]
pub struct LogStore {
    root: PathBuf,
}

impl LogStore {
    /// Reads logs under `root` (`<data>/logs`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Every group whose name starts with `prefix`, sorted by name.
    pub fn groups(&self, prefix: &str) -> Vec<LogGroupInfo> {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Vec::new() };
        let mut out: Vec<LogGroupInfo> = entries
            .flatten()
            .filter_map(|e| {
                let name = std::fs::read_to_string(e.path().join(GROUP_NAME_FILE)).ok()?;
                name.starts_with(prefix).then(|| LogGroupInfo {
                    created_ms: created_ms(&e.path()),
                    stored_bytes: dir_size(&e.path()),
                    name,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Whether a group exists.
    pub fn has_group(&self, group: &str) -> bool {
        self.group_dir(group).join(GROUP_NAME_FILE).exists()
    }

    /// Deletes a group and all its streams.
    pub fn delete_group(&self, group: &str) -> std::io::Result<()> {
        std::fs::remove_dir_all(self.group_dir(group))
    }

    /// The streams of a group, oldest first.
    pub fn streams(&self, group: &str) -> Vec<LogStreamInfo> {
        let Ok(entries) = std::fs::read_dir(self.group_dir(group)) else { return Vec::new() };
        let mut out: Vec<LogStreamInfo> = entries
            .flatten()
            .filter_map(|e| {
                let name = stream_name_of(&e.file_name().to_string_lossy())?;
                let events = read_file(&e.path(), &name);
                Some(LogStreamInfo {
                    created_ms: created_ms(&e.path()),
                    first_event_ms: events.first().map(|ev| ev.timestamp_ms),
                    last_event_ms: events.last().map(|ev| ev.timestamp_ms),
                    stored_bytes: e.metadata().map_or(0, |m| m.len()),
                    name,
                })
            })
            .collect();
        out.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then_with(|| a.name.cmp(&b.name)));
        out
    }

    /// The events of one stream.
    pub fn stream_events(&self, group: &str, stream: &str) -> Option<Vec<LogEvent>> {
        let path = self.group_dir(group).join(stream_file_name(stream));
        path.exists().then(|| read_file(&path, stream))
    }

    /// Events of the given streams (all when empty) in `[start, end)`, in time order.
    pub fn events(
        &self,
        group: &str,
        streams: &[String],
        start_ms: Option<i64>,
        end_ms: Option<i64>,
    ) -> Vec<LogEvent> {
        let mut out: Vec<LogEvent> = self
            .streams(group)
            .into_iter()
            .filter(|s| streams.is_empty() || streams.contains(&s.name))
            .flat_map(|s| self.stream_events(group, &s.name).unwrap_or_default())
            .filter(|e| {
                start_ms.is_none_or(|t| e.timestamp_ms >= t)
                    && end_ms.is_none_or(|t| e.timestamp_ms < t)
            })
            .collect();
        out.sort_by(|a, b| {
            a.timestamp_ms.cmp(&b.timestamp_ms).then_with(|| a.event_id.cmp(&b.event_id))
        });
        out
    }

    fn group_dir(&self, group: &str) -> PathBuf {
        self.root.join(group_dir_name(group))
    }
}

fn read_file(path: &Path, stream: &str) -> Vec<LogEvent> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .enumerate()
        .filter_map(|(idx, line)| {
            let (stamp, message) = line.split_once(' ')?;
            Some(LogEvent {
                stream: stream.to_owned(),
                timestamp_ms: stamp.parse().ok()?,
                message: message.to_owned(),
                event_id: format!("{stream}:{idx:010}"),
            })
        })
        .collect()
}

fn created_ms(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path).map_or(0, |entries| {
        entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::LogStream;

    #[test]
    fn groups_streams_and_events_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let stream = LogStream::create(dir.path(), "/aws/lambda/my-fn", "$LATEST").unwrap();
        std::fs::write(
            &stream.path,
            "1000 START RequestId: a\n1001 hello world\n1002 END RequestId: a\n",
        )
        .unwrap();
        let store = LogStore::new(dir.path());
        assert_eq!(
            store.groups("/aws/lambda/").iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["/aws/lambda/my-fn"]
        );
        assert!(store.groups("/other").is_empty());
        let streams = store.streams("/aws/lambda/my-fn");
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].name, stream.name);
        assert_eq!(streams[0].first_event_ms, Some(1000));
        let events = store.events("/aws/lambda/my-fn", &[], Some(1001), None);
        assert_eq!(
            events.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["hello world", "END RequestId: a"]
        );
        store.delete_group("/aws/lambda/my-fn").unwrap();
        assert!(!store.has_group("/aws/lambda/my-fn"));
    }
}
