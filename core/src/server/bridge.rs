//! Blocking protocol threads meet async sockets here: the protocol engine reads and writes
//! `std::io`, the front ends move `Bytes` through bounded channels, so a slow peer blocks the
//! engine (back-pressure) instead of growing a buffer.

use std::io::{self, Read, Write};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;

/// Chunks in flight between a socket and the protocol thread, each direction.
pub(super) const CHANNEL_CHUNKS: usize = 8;
/// Bytes gathered before an outgoing chunk is sent.
const OUT_CHUNK: usize = 64 * 1024;

/// Incoming bytes as a blocking reader; end of input when the sender is dropped.
pub(super) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl ChannelReader {
    pub(super) fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            chunk: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len());
        let head = self.chunk.split_to(n);
        out.get_mut(..n)
            .ok_or_else(|| io::Error::other("read buffer"))?
            .copy_from_slice(&head);
        Ok(n)
    }
}

/// Outgoing bytes as a blocking writer. Its first byte fires `started` (HTTP releases the
/// response headers then: until that moment an error can still become a 401/403/404).
pub(super) struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    started: Option<oneshot::Sender<Result<(), Error>>>,
}

impl ChannelWriter {
    /// A writer that first sends `prefix`.
    pub(super) fn new(
        tx: mpsc::Sender<io::Result<Bytes>>,
        prefix: Vec<u8>,
        started: Option<oneshot::Sender<Result<(), Error>>>,
    ) -> Self {
        ChannelWriter {
            tx,
            buf: prefix,
            started,
        }
    }

    fn start(&mut self) {
        if let Some(started) = self.started.take() {
            let _ = started.send(Ok(()));
        }
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        self.start();
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Sends what is buffered: the output is complete.
    pub(super) fn finish(mut self) -> io::Result<()> {
        self.send_buffer()
    }

    /// Ends the output with `error`: before the first byte it goes to whoever waits on
    /// `started`; after it, the stream is cut (the client has been told in-band where the
    /// protocol allows, and must not mistake a cut stream for a complete one).
    pub(super) fn fail(mut self, error: Error) {
        if let Some(started) = self.started.take() {
            let _ = started.send(Err(error));
        } else {
            let _ = self
                .tx
                .blocking_send(Err(io::Error::other(error.message().to_owned())));
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.start();
        self.buf.extend_from_slice(data);
        if self.buf.len() >= OUT_CHUNK {
            self.send_buffer()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}
