//! pkt-line framing (gitprotocol-common): reading requests packet by packet with gix-packetline's
//! decoder, writing responses with its encoder, and side-band multiplexing of a stream.

use std::io::{self, Read, Write};

use gix_packetline::PacketLineRef;
use gix_packetline::blocking_io::encode;

use crate::error::{Error, ErrorKind, Result};

/// The largest pkt-line payload (65520 bytes on the wire, minus the length prefix).
const MAX_PAYLOAD: usize = 65516;
/// Side-band payload: one byte of the packet names the band.
const MAX_BAND_PAYLOAD: usize = MAX_PAYLOAD - 1;

/// One packet of a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    /// A data packet; for text, the trailing newline is removed.
    Data(&'a [u8]),
    /// `0000`.
    Flush,
    /// `0001` (protocol v2 section separator).
    Delimiter,
    /// `0002` (protocol v2 end of a stateless response).
    ResponseEnd,
}

impl Packet<'_> {
    /// The packet as text without its trailing newline, when it is a data packet.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Packet::Data(d) => std::str::from_utf8(d.strip_suffix(b"\n").unwrap_or(d)).ok(),
            _ => None,
        }
    }
}

/// Reads packets from a request stream without reading past the packet it returns, so the
/// stream can be handed on (to the pack that follows push commands).
#[derive(Debug)]
pub(crate) struct PacketReader<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: Read> PacketReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        PacketReader {
            inner,
            buf: vec![0; MAX_PAYLOAD],
        }
    }

    /// The next packet, or `None` at a clean end of the stream (between packets).
    pub(crate) fn read(&mut self) -> Result<Option<Packet<'_>>> {
        let mut hex = [0u8; 4];
        let mut got = 0;
        while got < hex.len() {
            match self.inner.read(hex.get_mut(got..).unwrap_or_default()) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(protocol("the request ends inside a pkt-line length")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let wanted = match gix_packetline::decode::hex_prefix(&hex) {
            Ok(gix_packetline::decode::PacketLineOrWantedSize::Line(line)) => {
                return Ok(Some(match line {
                    PacketLineRef::Flush => Packet::Flush,
                    PacketLineRef::Delimiter => Packet::Delimiter,
                    PacketLineRef::ResponseEnd => Packet::ResponseEnd,
                    PacketLineRef::Data(_) => Packet::Data(&[]),
                }));
            }
            Ok(gix_packetline::decode::PacketLineOrWantedSize::Wanted(n)) => n as usize,
            Err(e) => return Err(protocol(&format!("malformed pkt-line length: {e}"))),
        };
        let body = self
            .buf
            .get_mut(..wanted)
            .ok_or_else(|| protocol("a pkt-line is longer than 65520 bytes"))?;
        self.inner.read_exact(body).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                protocol("the request ends inside a pkt-line")
            } else {
                e.into()
            }
        })?;
        Ok(Some(Packet::Data(body)))
    }

    /// The next packet, where the end of the stream is an error.
    pub(crate) fn require(&mut self) -> Result<Packet<'_>> {
        self.read()?
            .ok_or_else(|| protocol("the request ended early"))
    }

    /// The stream after the last packet read.
    pub(crate) fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Writes a text packet (adds the newline).
pub(crate) fn text(out: &mut dyn Write, line: &str) -> Result<()> {
    encode::text_to_write(line.as_bytes(), out)?;
    Ok(())
}

/// Writes a data packet as is.
pub(crate) fn data(out: &mut dyn Write, bytes: &[u8]) -> Result<()> {
    encode::data_to_write(bytes, out)?;
    Ok(())
}

/// Writes `0000`.
pub(crate) fn flush(out: &mut dyn Write) -> Result<()> {
    encode::flush_to_write(out)?;
    Ok(())
}

/// Writes `0001`.
pub(crate) fn delim(out: &mut dyn Write) -> Result<()> {
    encode::delim_to_write(out)?;
    Ok(())
}

/// Writes an `ERR <message>` packet, which git shows as "remote error".
pub(crate) fn error_line(out: &mut dyn Write, message: &str) -> Result<()> {
    encode::error_to_write(message.as_bytes(), out)?;
    Ok(())
}

/// A writer that frames everything written to it as side-band packets on band 1, and can send
/// progress (band 2) and a fatal error (band 3) in between. Without side-band it writes raw
/// bytes (and drops progress).
pub(crate) struct Sideband<'w> {
    out: &'w mut dyn Write,
    enabled: bool,
    /// False when the client asked for `no-progress` (or `quiet`).
    progress: bool,
    /// Packet payload limit: 65515 for side-band-64k and v2, 999 for old side-band.
    max: usize,
}

impl std::fmt::Debug for Sideband<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sideband")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl<'w> Sideband<'w> {
    pub(crate) fn new(out: &'w mut dyn Write, mode: SidebandMode, progress: bool) -> Self {
        let (enabled, max) = match mode {
            SidebandMode::None => (false, MAX_BAND_PAYLOAD),
            SidebandMode::Small => (true, 999),
            SidebandMode::Large => (true, MAX_BAND_PAYLOAD),
        };
        Sideband {
            out,
            enabled,
            progress: progress && enabled,
            max,
        }
    }

    /// Sends a progress message (band 2), shown by git as `remote: ...`.
    pub(crate) fn progress(&mut self, message: &str) -> Result<()> {
        if self.progress {
            self.band(2, message.as_bytes())?;
        }
        Ok(())
    }

    /// Sends a fatal error on band 3 (git prints it and aborts).
    pub(crate) fn fatal(&mut self, message: &str) -> Result<()> {
        if self.enabled {
            self.band(3, message.as_bytes())
        } else {
            Ok(())
        }
    }

    fn band(&mut self, band: u8, bytes: &[u8]) -> Result<()> {
        let mut packet = Vec::with_capacity(bytes.len().min(self.max) + 1);
        for chunk in bytes.chunks(self.max) {
            packet.clear();
            packet.push(band);
            packet.extend_from_slice(chunk);
            data(self.out, &packet)?;
        }
        Ok(())
    }

    /// The writer underneath (for the flush that ends a response).
    pub(crate) fn inner(&mut self) -> &mut dyn Write {
        self.out
    }
}

impl Write for Sideband<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.enabled {
            return self.out.write(buf);
        }
        let n = buf.len().min(self.max);
        let mut packet = Vec::with_capacity(n + 1);
        packet.push(1);
        packet.extend_from_slice(buf.get(..n).unwrap_or_default());
        encode::data_to_write(&packet, &mut *self.out)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Which side-band framing the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SidebandMode {
    /// None: the pack goes out raw.
    None,
    /// `side-band`: packets of at most 1000 bytes.
    Small,
    /// `side-band-64k` (and every v2 fetch).
    Large,
}

/// A protocol error: the client sent something git's protocol does not allow.
pub(crate) fn protocol(what: &str) -> Error {
    Error::aws(
        ErrorKind::InvalidArgument,
        "GitProtocolError",
        what.to_owned(),
    )
}
