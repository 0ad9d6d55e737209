//! A component upload: the file streamed from disk as the request body,
//! with a progress bar of the bytes sent that turns into a "compiling…"
//! spinner once the last byte is out (the host compiles before it
//! answers). Nothing is drawn unless stderr is a terminal.

use std::io::IsTerminal as _;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Frame, SizeHint};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncRead, ReadBuf};

use super::error::{CliError, CliResult};

/// Bytes read from disk per frame.
const CHUNK: usize = 64 * 1024;

/// A file on its way to the server.
pub struct Upload {
    file: tokio::fs::File,
    len: u64,
    sent: u64,
    progress: ProgressBar,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("len", &self.len)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// Opens `path`; a file that cannot be opened is a usage error.
    pub async fn open(path: &Path, show_progress: bool) -> CliResult<Self> {
        let cannot =
            |e: std::io::Error| CliError::usage(format!("cannot read {}: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(cannot)?;
        let meta = file.metadata().await.map_err(cannot)?;
        if !meta.is_file() {
            return Err(CliError::usage(format!("{} is not a file", path.display())));
        }
        let len = meta.len();
        let progress = if show_progress && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(
                    "uploading {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        Ok(Self {
            file,
            len,
            sent: 0,
            progress,
        })
    }

    /// Size of the file, sent as `content-length`.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// A handle to the progress display, to clear it once answered.
    pub fn progress(&self) -> ProgressBar {
        self.progress.clone()
    }

    /// The upload as a request body.
    pub fn boxed(self) -> BoxBody<Bytes, std::io::Error> {
        BodyExt::boxed(self)
    }

    /// All bytes are out: the host is compiling now.
    fn compiling(&self) {
        self.progress.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        self.progress.set_message("compiling…");
        self.progress.enable_steady_tick(Duration::from_millis(100));
    }
}

impl hyper::body::Body for Upload {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.sent >= self.len {
            return Poll::Ready(None);
        }
        let want = CHUNK.min(usize::try_from(self.len - self.sent).unwrap_or(CHUNK));
        let mut buf = BytesMut::zeroed(want);
        let mut read = ReadBuf::new(&mut buf);
        match Pin::new(&mut self.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    // The file shrank under us: content-length would lie.
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file got shorter while uploading",
                    ))));
                }
                buf.truncate(n);
                self.sent += n as u64;
                self.progress.set_position(self.sent);
                if self.sent >= self.len {
                    self.compiling();
                }
                Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.sent)
    }
}
