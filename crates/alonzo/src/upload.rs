//! The client's request body, which can report how much of itself has been sent, and the
//! progress bar that `alonzo deploy` draws from it.

use std::convert::Infallible;
use std::io::IsTerminal;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use indicatif::{ProgressBar, ProgressStyle};

/// Called with the number of body bytes handed to the connection so far.
pub(crate) type OnProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// Bodies are handed over in slices of this size when someone watches their progress, so
/// that the count advances as the connection takes them (hyper asks for the next slice only
/// once it has room to write it).
const SLICE_BYTES: usize = 64 * 1024;

/// Uploads smaller than this finish too quickly for a bar to say anything.
pub(crate) const BAR_THRESHOLD: u64 = 1 << 20;

/// A request body held in memory, sent whole, or in slices when it reports progress.
pub(crate) struct UploadBody {
    data: Bytes,
    sent: usize,
    on_progress: Option<OnProgress>,
}

impl std::fmt::Debug for UploadBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadBody")
            .field("len", &self.data.len())
            .field("sent", &self.sent)
            .field("reports_progress", &self.on_progress.is_some())
            .finish()
    }
}

impl UploadBody {
    /// A body of `data`.
    pub(crate) fn new(data: impl Into<Bytes>) -> Self {
        Self { data: data.into(), sent: 0, on_progress: None }
    }

    /// The same body, calling `on_progress` after each slice is handed over.
    pub(crate) fn with_progress(mut self, on_progress: Option<OnProgress>) -> Self {
        self.on_progress = on_progress;
        self
    }

    /// All the bytes (what the signature covers).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.sent
    }
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.remaining() == 0 {
            return Poll::Ready(None);
        }
        let slice = if this.on_progress.is_some() { SLICE_BYTES } else { this.remaining() };
        let end = this.sent + slice.min(this.remaining());
        let frame = Frame::data(this.data.slice(this.sent..end));
        this.sent = end;
        if let Some(on_progress) = &this.on_progress {
            on_progress(end as u64);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining() as u64)
    }
}

/// A bar on standard error for an upload of `total` bytes, when standard error is a terminal
/// and the upload is at least [`BAR_THRESHOLD`]; `None` otherwise (callers print plain status
/// lines instead).
pub(crate) fn progress_bar(total: u64, message: &str) -> Option<ProgressBar> {
    if total < BAR_THRESHOLD || !std::io::stderr().is_terminal() {
        return None;
    }
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {percent}% {binary_bytes_per_sec}",
    )
    .expect("static template is valid")
    .progress_chars("=> ");
    Some(ProgressBar::new(total).with_style(style).with_message(message.to_owned()))
}

/// The callback that moves `bar`.
pub(crate) fn bar_callback(bar: &ProgressBar) -> OnProgress {
    let bar = bar.clone();
    Arc::new(move |sent| bar.set_position(sent))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn slices_report_progress_up_to_the_total() {
        let data = vec![7u8; SLICE_BYTES * 2 + 10];
        let seen = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(AtomicU64::new(0));
        let (s, c) = (seen.clone(), calls.clone());
        let body = UploadBody::new(data.clone()).with_progress(Some(Arc::new(move |n| {
            s.store(n, Ordering::SeqCst);
            c.fetch_add(1, Ordering::SeqCst);
        })));
        assert_eq!(body.size_hint().exact(), Some(data.len() as u64));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, data);
        assert_eq!(seen.load(Ordering::SeqCst), data.len() as u64);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn without_progress_the_body_is_one_frame() {
        let mut body = UploadBody::new(vec![1u8; SLICE_BYTES * 3]);
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.data_ref().unwrap().len(), SLICE_BYTES * 3);
        assert!(body.is_end_stream());
    }
}
