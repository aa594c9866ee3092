//! Log capture of one execution environment: the runtime's stdout and stderr, read line by
//! line, and the platform's `START`/`END`/`REPORT` lines, appended in order to the
//! environment's log stream (one file per stream under `<data>/logs/<log group>/`) and kept
//! in a per-invocation tail for `X-Amz-Log-Type: Tail`.
//!
//! One task owns both pipes and the file, so ordering is by construction: before it writes
//! an invocation's `END`/`REPORT` it drains whatever the runtime had already written.
//!
//! Flood protection: the function's output passes a token bucket (`LogLimits::rate_bytes_per_s`,
//! one second of burst) and a size cap per stream (`LogLimits::max_bytes_per_function`);
//! what exceeds either is read and dropped (the function is never blocked by its logging),
//! and one `LOGS_DROPPED` notice per invocation says how much. Platform lines are always
//! written.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::platform_log::PlatformLog;

/// Longest line kept; the rest of a longer line is cut (a function cannot make us buffer
/// unbounded output).
const MAX_LINE: usize = 256 * 1024;
/// Bytes of each invocation's log kept for `Tail` (Lambda returns the last 4 KB).
const TAIL_BYTES: usize = 4096;
/// Pipe read buffer: large, so that a flood is read (and dropped) in few system calls.
const READ_BUFFER: usize = 64 * 1024;

/// Bounds on function logs, set by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Bytes of output per second one environment may write (with one second of burst).
    pub rate_bytes_per_s: u64,
    /// Bytes one function's log group may hold: one stream never grows past it, and the
    /// sweeper removes a group's oldest streams until the group fits.
    pub max_bytes_per_function: u64,
    /// How often retention and the cap are enforced.
    pub sweep_interval: std::time::Duration,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            rate_bytes_per_s: 1024 * 1024,
            max_bytes_per_function: 1024 * 1024 * 1024,
            sweep_interval: std::time::Duration::from_secs(60),
        }
    }
}

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

/// A log group (`/aws/lambda/name`) as one directory name (`aws-lambda-name`). A name that
/// would be empty or start with a dot (`..`, `.x`) is hex-encoded behind `~` instead, so no
/// group name can reach outside the logs directory.
pub fn group_dir_name(group: &str) -> String {
    let dashed = group.trim_start_matches('/').replace('/', "-");
    if dashed.is_empty() || dashed.starts_with(['.', '~']) {
        let hex: String = group.bytes().map(|b| format!("{b:02x}")).collect();
        return format!("~{hex}");
    }
    dashed
}

/// A stream name as a file name, reversibly: in the platform's names
/// (`2026/11/29/[$LATEST]hex`) the date's three slashes become dashes; any other name
/// (created through `CreateLogStream`) is hex-encoded behind a `~`.
pub(crate) fn stream_file_name(stream: &str) -> String {
    let platform_shaped = stream.len() > 11
        && stream.bytes().enumerate().take(11).all(|(i, b)| match i {
            4 | 7 | 10 => b == b'/',
            _ => b.is_ascii_digit(),
        })
        && !stream[11..].contains('/');
    if platform_shaped {
        return format!("{}.log", stream.replacen('/', "-", 3));
    }
    let hex: String = stream.bytes().map(|b| format!("{b:02x}")).collect();
    format!("~{hex}.log")
}

/// The stream name a file name stands for.
pub(crate) fn stream_name_of(file_name: &str) -> Option<String> {
    let base = file_name.strip_suffix(".log")?;
    if let Some(hex) = base.strip_prefix('~') {
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        return String::from_utf8(bytes?).ok();
    }
    Some(base.replacen('-', "/", 3))
}

/// Spawns the task that owns an environment's output; returns its command channel.
pub(crate) fn spawn(
    stream: &LogStream,
    stdout: std::process::ChildStdout,
    stderr: std::process::ChildStderr,
    limits: LogLimits,
    platform: PlatformLog,
) -> std::io::Result<mpsc::UnboundedSender<LogCommand>> {
    let stdout = tokio::process::ChildStdout::from_std(stdout)?;
    let stderr = tokio::process::ChildStderr::from_std(stderr)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let path = stream.path.clone();
    tokio::spawn(async move {
        // The stream's file is created here, on a blocking thread, not on the cold start's
        // path: creating a file costs an inode allocation, slow on a disk filesystem with
        // many recent deletions. Output and commands wait in their pipes and channel.
        let opened = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
            let written = file.metadata().map_or(0, |m| m.len());
            Ok::<_, std::io::Error>((file, written))
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        let (file, written) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(%error, "cannot create the log stream's file; its output is lost");
                match std::fs::OpenOptions::new().write(true).open("/dev/null") {
                    Ok(null) => (null, 0),
                    Err(_) => return,
                }
            }
        };
        let sink = Sink {
            file: std::io::BufWriter::new(file),
            tail: None,
            written,
            limiter: Limiter::new(limits.rate_bytes_per_s),
            max_bytes: limits.max_bytes_per_function,
            dropped: Dropped::default(),
            platform,
        };
        run(sink, stdout, stderr, rx).await;
    });
    Ok(tx)
}

/// A token bucket of output bytes: `rate` per second, at most one second's worth saved.
struct Limiter {
    rate: u64,
    tokens: f64,
    last: std::time::Instant,
}

impl Limiter {
    fn new(rate: u64) -> Self {
        Self { rate, tokens: rate as f64, last: std::time::Instant::now() }
    }

    /// Takes `n` bytes' worth of tokens if there are enough.
    fn take(&mut self, n: usize) -> bool {
        let now = std::time::Instant::now();
        let rate = self.rate as f64;
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(rate);
        self.last = now;
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }
}

/// Output dropped since the last notice.
#[derive(Default)]
struct Dropped {
    lines: u64,
    bytes: u64,
    capped: bool,
}

struct Sink {
    file: std::io::BufWriter<std::fs::File>,
    tail: Option<Vec<u8>>,
    /// Bytes in the stream file.
    written: u64,
    limiter: Limiter,
    max_bytes: u64,
    dropped: Dropped,
    platform: PlatformLog,
}

impl Sink {
    /// A line of the function's output: written if the rate and the cap allow it.
    fn output(&mut self, text: &[u8]) {
        let cost = text.len() + 16;
        let over_cap = self.written + cost as u64 > self.max_bytes;
        if over_cap || !self.limiter.take(cost) {
            self.dropped.lines += 1;
            self.dropped.bytes += text.len() as u64 + 1;
            self.dropped.capped |= over_cap;
            return;
        }
        let text = String::from_utf8_lossy(text);
        self.line(text.trim_end_matches(['\n', '\r']));
    }

    /// Writes the notice of dropped output, if any was dropped.
    fn report_dropped(&mut self) {
        if self.dropped.lines == 0 {
            return;
        }
        let reason = if self.dropped.capped {
            format!("the function's log volume cap ({} bytes) is reached", self.max_bytes)
        } else {
            format!("over the rate limit of {} bytes/s", self.limiter.rate)
        };
        let Dropped { lines, bytes, .. } = std::mem::take(&mut self.dropped);
        if let Some(notice) = self.platform.logs_dropped(lines, bytes, &reason) {
            self.line(&notice);
        }
    }

    /// A line written unconditionally (platform records).
    fn line(&mut self, text: &str) {
        let stamp = chrono::Utc::now().timestamp_millis();
        let _ = writeln!(self.file, "{stamp} {text}");
        self.written += text.len() as u64 + 15;
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
    mut sink: Sink,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::process::ChildStderr,
    mut commands: mpsc::UnboundedReceiver<LogCommand>,
) {
    let mut out = tokio::io::BufReader::with_capacity(READ_BUFFER, stdout);
    let mut err = tokio::io::BufReader::with_capacity(READ_BUFFER, stderr);
    let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    // Between an invocation's `BeginTail` and its `Finish` (while it has a tail), platform
    // lines (its `START`) wait in the buffer for the function's first output or the
    // invocation's last lines: a warm invocation then costs one write to the file, not two,
    // and none between its event and its response (the `START` line used to be written alone
    // there). The function's output is written as soon as it is read, as are all lines
    // outside invocations.
    let mut output_waiting = false;
    loop {
        // Commands first: `BeginTail` and `START` are sent before the event reaches the
        // runtime, so when both a command and output are waiting, the command came first
        // (polled in random order, the invocation's first lines could miss its tail).
        tokio::select! {
            biased;
            cmd = commands.recv() => match cmd {
                None => break,
                Some(LogCommand::Platform(line)) => sink.line(&line),
                Some(LogCommand::BeginTail) => sink.tail = Some(Vec::new()),
                Some(LogCommand::Finish { lines, reply }) => {
                    // The runtime wrote its output before answering, but the reactor may not
                    // have seen the pipes become readable yet: what it has not read is read
                    // here straight from the pipes.
                    if out_open {
                        out_open = drain(&mut sink, &mut out, &mut out_buf).await;
                    }
                    if err_open {
                        err_open = drain(&mut sink, &mut err, &mut err_buf).await;
                    }
                    sink.report_dropped();
                    for line in &lines {
                        sink.line(line);
                    }
                    let _ = sink.file.flush();
                    let _ = reply.send(sink.take_tail());
                }
            },
            n = read_line(&mut out, &mut out_buf), if out_open => {
                out_open = emit(&mut sink, &mut out_buf, n);
                output_waiting = true;
            }
            n = read_line(&mut err, &mut err_buf), if err_open => {
                err_open = emit(&mut sink, &mut err_buf, n);
                output_waiting = true;
            }
        }
        if !sink.file.buffer().is_empty()
            && commands.is_empty()
            && (output_waiting || sink.tail.is_none())
        {
            let _ = sink.file.flush();
            output_waiting = false;
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
                sink.output(buf);
                buf.clear();
            }
            false
        }
        Ok(_) => {
            if buf.ends_with(b"\n") || buf.len() >= MAX_LINE {
                let end = buf.len().min(MAX_LINE);
                sink.output(&buf[..end]);
                buf.clear();
            }
            true
        }
    }
}

/// Consumes whatever output is already waiting in a pipe, without blocking for more: first
/// what the buffered reader holds or can read at once, then what is still in the pipe, read
/// directly from the reader's own (non-blocking) descriptor, which does not depend on the
/// reactor having polled it. Returns whether the pipe is still open.
async fn drain<P: tokio::io::AsyncRead + std::os::fd::AsFd + Unpin>(
    sink: &mut Sink,
    reader: &mut tokio::io::BufReader<P>,
    buf: &mut Vec<u8>,
) -> bool {
    loop {
        let next = tokio::time::timeout(std::time::Duration::ZERO, read_line(reader, buf)).await;
        match next {
            Ok(read) => {
                if !emit(sink, buf, read) {
                    return false;
                }
            }
            Err(_) => break,
        }
    }
    // Usually nothing is left (the read says EAGAIN at once): a small stack buffer, not a
    // heap allocation per invocation.
    let mut chunk = [0u8; 8192];
    loop {
        let n = match alonzo_jail::read_now(reader.get_ref().as_fd(), &mut chunk) {
            Ok(0) => {
                emit(sink, buf, Ok(0));
                return false;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        };
        for piece in chunk[..n].split_inclusive(|&b| b == b'\n') {
            buf.extend_from_slice(piece);
            emit(sink, buf, Ok(piece.len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(path: &Path, rate: u64, max_bytes: u64) -> Sink {
        let file = std::fs::File::create(path).unwrap();
        let spec = crate::FunctionSpec::sample();
        Sink {
            file: std::io::BufWriter::new(file),
            tail: None,
            written: 0,
            limiter: Limiter::new(rate),
            max_bytes,
            dropped: Dropped::default(),
            platform: PlatformLog::new(&spec),
        }
    }

    #[test]
    fn a_flood_is_dropped_past_the_rate_with_one_notice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let mut sink = sink(&path, 1000, 1 << 20);
        for _ in 0..100 {
            sink.output(&[b'x'; 84]);
        }
        sink.report_dropped();
        sink.report_dropped();
        sink.file.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let kept = text.lines().filter(|l| l.ends_with('x')).count();
        assert_eq!(kept, 10, "one second of burst at 1000 bytes/s");
        let notices: Vec<&str> = text.lines().filter(|l| l.contains("LOGS_DROPPED")).collect();
        assert_eq!(notices.len(), 1);
        assert!(notices[0].ends_with(
            "LOGS_DROPPED Dropped 90 lines (7650 bytes) of function output: over the rate limit of 1000 bytes/s"
        ));
    }

    #[test]
    fn a_stream_stops_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let mut sink = sink(&path, u64::MAX / 2, 1000);
        for _ in 0..100 {
            sink.output(&[b'y'; 84]);
        }
        sink.report_dropped();
        sink.file.flush().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("log volume cap (1000 bytes) is reached"), "{text}");
        assert!(len <= 1000 + 200, "{len}");
    }

    #[test]
    fn group_names_stay_inside_the_logs_directory() {
        assert_eq!(group_dir_name("/aws/lambda/f"), "aws-lambda-f");
        for name in ["..", ".", "/..", "/", "", "./x", "~x"] {
            let dir = group_dir_name(name);
            assert!(
                dir.starts_with('~') && !dir.contains('/') && !dir.contains('.'),
                "{name:?} → {dir}"
            );
        }
    }

    #[test]
    fn stream_names_map_to_file_names_reversibly() {
        for name in
            ["2026/11/29/[$LATEST]0123abcd", "2026/11/29/[3]x", "my-stream", "a/b", "~x", ""]
        {
            let file = stream_file_name(name);
            assert!(!file.contains('/'), "{file}");
            assert_eq!(stream_name_of(&file).as_deref(), Some(name), "{file}");
        }
        assert_eq!(stream_file_name("2026/11/29/[$LATEST]ab"), "2026-11-29-[$LATEST]ab.log");
    }

    /// A shell that writes `out N` and `err N` to its two pipes for each line `N` it reads,
    /// with a log task on its pipes.
    fn echoing_runtime(
        dir: &Path,
    ) -> (std::process::Child, std::process::ChildStdin, mpsc::UnboundedSender<LogCommand>) {
        use std::process::{Command, Stdio};
        let stream = LogStream::create(dir, "/aws/lambda/t", "$LATEST").unwrap();
        let mut child = Command::new("sh")
            .args(["-c", "while read n; do echo out $n; echo err $n >&2; done"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let spec = crate::FunctionSpec::sample();
        let logs =
            spawn(&stream, stdout, stderr, LogLimits::default(), PlatformLog::new(&spec)).unwrap();
        (child, stdin, logs)
    }

    /// One invocation: its tail, from `BeginTail` to `Finish`, once the runtime has written.
    async fn invocation(
        logs: &mpsc::UnboundedSender<LogCommand>,
        stdin: &mut std::process::ChildStdin,
        n: u32,
    ) -> String {
        use std::io::Write as _;
        logs.send(LogCommand::BeginTail).unwrap();
        logs.send(LogCommand::Platform(format!("START {n}"))).unwrap();
        writeln!(stdin, "{n}").unwrap();
        // Blocking this thread, the runtime's only one: the child writes, nobody reads.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (reply, tail) = oneshot::channel();
        logs.send(LogCommand::Finish { lines: vec![format!("END {n}")], reply }).unwrap();
        tail.await.unwrap()
    }

    fn assert_tail(tail: &str, n: u32) {
        let mut lines: Vec<&str> = tail.lines().collect();
        // Two pipes: the order between them is not defined.
        if lines.len() == 4 {
            lines[1..3].sort_unstable();
        }
        let expected =
            [format!("START {n}"), format!("err {n}"), format!("out {n}"), format!("END {n}")];
        assert_eq!(lines, expected, "invocation {n}: {tail:?}");
    }

    /// An invocation's output is in its tail, between its `START` and `END`, when the log
    /// task runs only after the reactor has reported the output (it lags behind: commands
    /// and output are both waiting when it looks).
    #[tokio::test(flavor = "current_thread")]
    async fn output_is_in_the_tail_when_the_log_task_lags() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..8 {
            // The task's first step opens the stream's file on a blocking thread; meanwhile
            // the reactor reports both pipes readable.
            let (mut child, mut stdin, logs) = echoing_runtime(dir.path());
            assert_tail(&invocation(&logs, &mut stdin, n).await, n);
            drop(stdin);
            child.wait().unwrap();
        }
    }

    /// What an invocation logs reaches the stream's file (with its `START` line) while the
    /// invocation still runs, not only with its last lines.
    #[tokio::test(flavor = "current_thread")]
    async fn output_reaches_the_file_while_the_invocation_runs() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let (mut child, mut stdin, logs) = echoing_runtime(dir.path());
        logs.send(LogCommand::BeginTail).unwrap();
        logs.send(LogCommand::Platform("START 7".into())).unwrap();
        writeln!(stdin, "7").unwrap();
        let group = dir.path().join(group_dir_name("/aws/lambda/t"));
        let read = || {
            std::fs::read_dir(&group)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                        .collect::<String>()
                })
                .unwrap_or_default()
        };
        let began = std::time::Instant::now();
        loop {
            let text = read();
            if ["START 7", "out 7", "err 7"].iter().all(|line| text.contains(line)) {
                break;
            }
            assert!(
                began.elapsed() < std::time::Duration::from_secs(5),
                "the running invocation's lines never reached the file: {text:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let (reply, tail) = oneshot::channel();
        logs.send(LogCommand::Finish { lines: vec!["END 7".into()], reply }).unwrap();
        assert_tail(&tail.await.unwrap(), 7);
        let text = read();
        assert!(text.contains("END 7"), "{text:?}");
        drop(stdin);
        child.wait().unwrap();
    }

    /// An invocation's output is in its tail when the reactor has not reported it yet.
    #[tokio::test(flavor = "current_thread")]
    async fn output_is_in_the_tail_before_the_reactor_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, mut stdin, logs) = echoing_runtime(dir.path());
        for n in 0..4 {
            // The log task is idle, its pipes registered with the reactor.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert_tail(&invocation(&logs, &mut stdin, n).await, n);
        }
        drop(stdin);
        child.wait().unwrap();
    }
}
