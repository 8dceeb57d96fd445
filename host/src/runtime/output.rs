//! Guest stdout and stderr, captured in memory and bounded. Writes past the bound are accepted
//! and counted, not stored, so a chatty fixer neither fills memory nor fails on a closed pipe.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    dropped: u64,
}

#[derive(Debug, Clone)]
pub struct BoundedOutput {
    buffer: Arc<Mutex<Buffer>>,
    max_bytes: usize,
}

impl BoundedOutput {
    pub fn new(max_bytes: usize) -> BoundedOutput {
        BoundedOutput {
            buffer: Arc::new(Mutex::new(Buffer::default())),
            max_bytes,
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.max_bytes.saturating_sub(b.kept.len());
        let keep = room.min(bytes.len());
        b.kept.extend_from_slice(&bytes[..keep]);
        b.dropped += (bytes.len() - keep) as u64;
    }

    /// What was kept (lossy UTF-8) and how many bytes were dropped.
    pub fn contents(&self) -> (String, u64) {
        let b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        (String::from_utf8_lossy(&b.kept).into_owned(), b.dropped)
    }
}

impl AsyncWrite for BoundedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for BoundedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_bound_and_counts_the_rest() {
        let out = BoundedOutput::new(4);
        out.write_bytes(b"abc");
        out.write_bytes(b"defgh");
        assert_eq!(out.contents(), ("abcd".to_string(), 4));
    }
}
