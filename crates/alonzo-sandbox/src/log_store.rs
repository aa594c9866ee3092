//! Stored logs: log groups, their streams, and events in time order, for the CloudWatch
//! Logs-compatible API and `alonzo logs`; groups and streams created through that API, their
//! retention (a `.retention` file in the group's directory), and the sweep that enforces
//! retention and the per-function volume cap. The writing side of function output is
//! `logs.rs`; both share its on-disk format (`<logs>/<group dir>/<stream file>.log`, lines
//! `<epoch ms> <text>`).

use std::path::{Path, PathBuf};

use std::io::{Read, Seek, Write};

use crate::logs::{group_dir_name, stream_file_name, stream_name_of, GROUP_NAME_FILE};

/// File in a group's directory holding its retention in days.
const RETENTION_FILE: &str = ".retention";
/// One day, ms.
const DAY_MS: i64 = 86_400_000;

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
    /// Days events are kept; `None` keeps them forever.
    pub retention_days: Option<u32>,
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Stream files deleted.
    pub removed_streams: usize,
    /// Bytes they held.
    pub freed_bytes: u64,
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
                    created_ms: created_ms(&e.path().join(GROUP_NAME_FILE)),
                    stored_bytes: dir_size(&e.path()),
                    retention_days: read_retention(&e.path()),
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

    /// Creates an empty group; `false` if it already exists.
    pub fn create_group(&self, group: &str) -> std::io::Result<bool> {
        if self.has_group(group) {
            return Ok(false);
        }
        let dir = self.group_dir(group);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(GROUP_NAME_FILE), group)?;
        Ok(true)
    }

    /// Sets (`Some`) or removes (`None`) a group's retention.
    pub fn set_retention(&self, group: &str, days: Option<u32>) -> std::io::Result<()> {
        let path = self.group_dir(group).join(RETENTION_FILE);
        match days {
            Some(days) => std::fs::write(path, days.to_string()),
            None => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
    }

    /// Whether a stream exists.
    pub fn has_stream(&self, group: &str, stream: &str) -> bool {
        self.group_dir(group).join(stream_file_name(stream)).exists()
    }

    /// Creates an empty stream in an existing group; `false` if it already exists.
    pub fn create_stream(&self, group: &str, stream: &str) -> std::io::Result<bool> {
        let path = self.group_dir(group).join(stream_file_name(stream));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes one stream.
    pub fn delete_stream(&self, group: &str, stream: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.group_dir(group).join(stream_file_name(stream)))
    }

    /// Appends events (`(epoch ms, message)`) to an existing stream; a message's line breaks
    /// become carriage returns (one event per line on disk).
    pub fn put_events(
        &self,
        group: &str,
        stream: &str,
        events: &[(i64, String)],
    ) -> std::io::Result<()> {
        let path = self.group_dir(group).join(stream_file_name(stream));
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        let mut out = std::io::BufWriter::new(file);
        for (stamp, message) in events {
            writeln!(out, "{stamp} {}", message.replace('\n', "\r"))?;
        }
        out.flush()
    }

    /// Enforces retention and the per-function volume cap once, at `now_ms`: a stream whose
    /// newest event is older than its group's retention is deleted; then, in a group holding
    /// more than `max_group_bytes`, the least recently written streams are deleted until it
    /// fits (the newest stream stays: writers cap each stream on their own).
    pub fn sweep(&self, now_ms: i64, max_group_bytes: u64) -> SweepStats {
        let mut stats = SweepStats::default();
        let Ok(groups) = std::fs::read_dir(&self.root) else { return stats };
        for group in groups.flatten() {
            let dir = group.path();
            if !dir.join(GROUP_NAME_FILE).exists() {
                continue;
            }
            let mut streams: Vec<(std::time::SystemTime, u64, PathBuf)> = Vec::new();
            let retention = read_retention(&dir);
            let entries = std::fs::read_dir(&dir).into_iter().flatten().flatten();
            for entry in entries {
                let path = entry.path();
                if stream_name_of(&entry.file_name().to_string_lossy()).is_none() {
                    continue;
                }
                let Ok(meta) = entry.metadata() else { continue };
                let expired = retention.is_some_and(|days| {
                    let cutoff = now_ms - i64::from(days) * DAY_MS;
                    last_event_ms(&path).is_some_and(|last| last < cutoff)
                });
                if expired {
                    if std::fs::remove_file(&path).is_ok() {
                        stats.removed_streams += 1;
                        stats.freed_bytes += meta.len();
                    }
                    continue;
                }
                let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                streams.push((modified, meta.len(), path));
            }
            let mut total: u64 = streams.iter().map(|s| s.1).sum();
            streams.sort_by_key(|s| s.0);
            let mut oldest_first = streams.into_iter();
            while total > max_group_bytes && oldest_first.len() > 1 {
                let Some((_, len, path)) = oldest_first.next() else { break };
                if std::fs::remove_file(&path).is_ok() {
                    stats.removed_streams += 1;
                    stats.freed_bytes += len;
                    total -= len;
                }
            }
        }
        stats
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

/// A group's retention, from its `.retention` file.
fn read_retention(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(RETENTION_FILE)).ok()?.trim().parse().ok()
}

/// The timestamp of a stream file's last event, read from its end.
fn last_event_ms(path: &Path) -> Option<i64> {
    const TAIL: u64 = 300 * 1024;
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(std::io::SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let last = text.lines().rev().find(|l| !l.is_empty())?;
    last.split_once(' ').map_or(last, |(stamp, _)| stamp).parse().ok()
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

    #[test]
    fn created_streams_round_trip_any_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path());
        assert!(store.create_group("/app/x").unwrap());
        assert!(!store.create_group("/app/x").unwrap());
        for name in ["my-stream-1", "a/b/c/d-e", "2026/11/29/[$LATEST]abc", "~odd"] {
            assert!(store.create_stream("/app/x", name).unwrap(), "{name}");
            assert!(!store.create_stream("/app/x", name).unwrap(), "{name}");
            store.put_events("/app/x", name, &[(5, "line\nbreak".into())]).unwrap();
            let events = store.stream_events("/app/x", name).unwrap();
            assert_eq!(events[0].message, "line\rbreak");
            assert_eq!(events[0].stream, name);
        }
        let mut names: Vec<String> = store.streams("/app/x").into_iter().map(|s| s.name).collect();
        names.sort();
        assert_eq!(names, ["2026/11/29/[$LATEST]abc", "a/b/c/d-e", "my-stream-1", "~odd"]);
    }

    #[test]
    fn sweep_enforces_retention_and_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path());
        let now = 100 * DAY_MS;
        store.create_group("/g").unwrap();
        for (name, stamp) in [("old", now - 3 * DAY_MS), ("new", now)] {
            store.create_stream("/g", name).unwrap();
            store.put_events("/g", name, &[(stamp, "x".repeat(100))]).unwrap();
        }
        assert_eq!(store.sweep(now, u64::MAX).removed_streams, 0, "no retention, no expiry");
        store.set_retention("/g", Some(1)).unwrap();
        assert_eq!(store.groups("/g")[0].retention_days, Some(1));
        let stats = store.sweep(now, u64::MAX);
        assert_eq!(stats.removed_streams, 1);
        assert!(!store.has_stream("/g", "old") && store.has_stream("/g", "new"));
        store.set_retention("/g", None).unwrap();
        assert_eq!(store.groups("/g")[0].retention_days, None);
        // Over the cap: the least recently written stream goes, the newest stays.
        store.create_group("/h").unwrap();
        for name in ["first", "second", "third"] {
            store.create_stream("/h", name).unwrap();
            store.put_events("/h", name, &[(now, "y".repeat(1000))]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(store.sweep(now, 2500).removed_streams, 1);
        assert!(!store.has_stream("/h", "first") && store.has_stream("/h", "third"));
        assert_eq!(store.sweep(now, 10).removed_streams, 1, "the newest stream is never removed");
        assert!(store.has_stream("/h", "third"));
    }
}
