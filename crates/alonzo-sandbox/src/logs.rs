//! Log capture of one execution environment: the runtime's stdout and stderr, read line by
//! line, and the platform's `START`/`END`/`REPORT` lines, appended in order to the
//! environment's log stream (one file per stream under `<data>/logs/<log group>/`) and kept
//! in a per-invocation tail for `X-Amz-Log-Type: Tail`.
//!
//! One task owns both pipes and the file, so ordering is by construction: before it writes
//! an invocation's `END`/`REPORT` it drains whatever the runtime had already written.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};

/// Longest line kept; the rest of a longer line is cut (a function cannot make us buffer
/// unbounded output).
const MAX_LINE: usize = 256 * 1024;
/// Bytes of each invocation's log kept for `Tail` (Lambda returns the last 4 KB).
const TAIL_BYTES: usize = 4096;

/// Commands from the environment driver to its log task.
#[derive(Debug)]
pub(crate) enum LogCommand {
    /// A platform line (`START`, `INIT_START`…), written after the output read so far.
    Platform(String),
    /// Starts collecting a tail for a new invocation.
    BeginTail,
    /// Drains pending output, writes the closing platform lines, and hands back the tail.
    Finish { lines: Vec<String>, reply: oneshot::Sender<String> },
}

/// Where an environment's log stream is stored.
#[derive(Debug, Clone)]
pub struct LogStream {
    /// File of the stream.
    pub path: PathBuf,
    /// `YYYY/MM/DD/[version]<32 hex>`.
    pub name: String,
}

impl LogStream {
    /// A new stream for an environment of `version` in log group `group` under `logs_root`.
    pub fn create(logs_root: &Path, group: &str, version: &str) -> std::io::Result<Self> {
        let name = format!(
            "{}/[{version}]{}",
            chrono::Utc::now().format("%Y/%m/%d"),
            uuid::Uuid::new_v4().simple()
        );
        let dir = logs_root.join(group_dir_name(group));
        if !dir.exists() {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(GROUP_NAME_FILE), group)?;
        }
        Ok(Self { path: dir.join(stream_file_name(&name)), name })
    }
}

/// File in a group's directory holding the group's real name.
pub(crate) const GROUP_NAME_FILE: &str = ".group";

/// A log group (`/aws/lambda/name`) as one directory name.
pub fn group_dir_name(group: &str) -> String {
    group.trim_start_matches('/').replace('/', "-")
}

/// A stream name (`2026/11/29/[$LATEST]hex`) as a file name, reversibly: the date's three
/// slashes become dashes.
pub(crate) fn stream_file_name(stream: &str) -> String {
    format!("{}.log", stream.replacen('/', "-", 3))
}

/// The stream name a file name stands for.
pub(crate) fn stream_name_of(file_name: &str) -> Option<String> {
    let base = file_name.strip_suffix(".log")?;
    Some(base.replacen('-', "/", 3))
}

/// Spawns the task that owns an environment's output; returns its command channel.
pub(crate) fn spawn(
    stream: &LogStream,
    stdout: std::process::ChildStdout,
    stderr: std::process::ChildStderr,
) -> std::io::Result<mpsc::UnboundedSender<LogCommand>> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&stream.path)?;
    let stdout = tokio::process::ChildStdout::from_std(stdout)?;
    let stderr = tokio::process::ChildStderr::from_std(stderr)?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(file, stdout, stderr, rx));
    Ok(tx)
}

struct Sink {
    file: std::io::BufWriter<std::fs::File>,
    tail: Option<Vec<u8>>,
}

impl Sink {
    fn line(&mut self, text: &str) {
        let stamp = chrono::Utc::now().timestamp_millis();
        let _ = writeln!(self.file, "{stamp} {text}");
        if let Some(tail) = &mut self.tail {
            tail.extend_from_slice(text.as_bytes());
            tail.push(b'\n');
            if tail.len() > TAIL_BYTES * 4 {
                let cut = tail.len() - TAIL_BYTES;
                tail.drain(..cut);
            }
        }
    }

    fn take_tail(&mut self) -> String {
        let tail = self.tail.take().unwrap_or_default();
        let start = tail.len().saturating_sub(TAIL_BYTES);
        String::from_utf8_lossy(&tail[start..]).into_owned()
    }
}

async fn run(
    file: std::fs::File,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::process::ChildStderr,
    mut commands: mpsc::UnboundedReceiver<LogCommand>,
) {
    let mut sink = Sink { file: std::io::BufWriter::new(file), tail: None };
    let mut out = tokio::io::BufReader::new(stdout);
    let mut err = tokio::io::BufReader::new(stderr);
    let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    loop {
        tokio::select! {
            n = read_line(&mut out, &mut out_buf), if out_open => {
                out_open = emit(&mut sink, &mut out_buf, n);
            }
            n = read_line(&mut err, &mut err_buf), if err_open => {
                err_open = emit(&mut sink, &mut err_buf, n);
            }
            cmd = commands.recv() => match cmd {
                None => break,
                Some(LogCommand::Platform(line)) => sink.line(&line),
                Some(LogCommand::BeginTail) => sink.tail = Some(Vec::new()),
                Some(LogCommand::Finish { lines, reply }) => {
                    // The runtime wrote its output before answering, but the reactor may not
                    // have seen the pipes become readable yet: a short sleep lets it poll.
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    drain(&mut sink, &mut out, &mut out_buf).await;
                    drain(&mut sink, &mut err, &mut err_buf).await;
                    for line in &lines {
                        sink.line(line);
                    }
                    let _ = sink.file.flush();
                    let _ = reply.send(sink.take_tail());
                }
            },
        }
        if !sink.file.buffer().is_empty() && commands.is_empty() {
            let _ = sink.file.flush();
        }
    }
    let _ = sink.file.flush();
}

/// Reads one line (up to `MAX_LINE`) into `buf`; the byte count, 0 at end of file.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let n = reader.read_until(b'\n', buf).await?;
    Ok(n)
}

/// Writes a completed line; returns whether the pipe is still open.
fn emit(sink: &mut Sink, buf: &mut Vec<u8>, read: std::io::Result<usize>) -> bool {
    match read {
        Ok(0) | Err(_) => {
            if !buf.is_empty() {
                sink.line(&String::from_utf8_lossy(buf));
                buf.clear();
            }
            false
        }
        Ok(_) => {
            if buf.ends_with(b"\n") || buf.len() >= MAX_LINE {
                let end = buf.len().min(MAX_LINE);
                let text = String::from_utf8_lossy(&buf[..end]);
                sink.line(text.trim_end_matches(['\n', '\r']));
                buf.clear();
            }
            true
        }
    }
}

/// Consumes whatever output is already waiting in a pipe, without blocking for more.
async fn drain<R: tokio::io::AsyncBufRead + Unpin>(
    sink: &mut Sink,
    reader: &mut R,
    buf: &mut Vec<u8>,
) {
    loop {
        let next = tokio::time::timeout(std::time::Duration::ZERO, read_line(reader, buf)).await;
        match next {
            Ok(read) => {
                if !emit(sink, buf, read) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}
