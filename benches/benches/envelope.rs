//! Envelope throughput vs raw ring AES-256-GCM, and range reads vs a plain file.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "benchmark harness"
)]
#![expect(
    clippy::too_many_lines,
    reason = "one linear benchmark script, read top to bottom"
)]

use std::cell::Cell;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use codekeep::crypto::{
    EncryptionContext, EnvelopeHeader, EnvelopeOpener, RangeSource, SEGMENT_SIZE, SealWriter,
};
use codekeep_bench::{gbps, median_time, summary};
use criterion::{Criterion, Throughput};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

const MIB: usize = 1024 * 1024;
const SEG: usize = SEGMENT_SIZE as usize;
const KEY: [u8; 32] = [0x42; 32];

fn data(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    v
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new().with("aws:codecommit:id", "bench")
}

fn ring_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap())
}

fn nonce(i: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[7..11].copy_from_slice(&i.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn ours_seal(plain: &[u8]) -> u64 {
    let mut w = SealWriter::new(io::sink(), &KEY, b"bench", &ctx()).unwrap();
    for chunk in plain.chunks(MIB) {
        w.write_all(chunk).unwrap();
    }
    let n = w.plaintext_len();
    w.finish().unwrap();
    n
}

/// Ours, zero-copy: the caller's buffer is sealed where it lies, as the peer below does.
fn ours_seal_in_place(buf: &mut [u8]) -> u64 {
    let mut w = SealWriter::new(io::sink(), &KEY, b"bench", &ctx()).unwrap();
    for chunk in buf.chunks_mut(MIB) {
        w.write_in_place(chunk).unwrap();
    }
    let n = w.plaintext_len();
    w.finish().unwrap();
    n
}

/// The peer: ring sealing the same bytes in place, 64 KiB at a time, tags kept aside.
fn ring_seal(buf: &mut [u8], key: &LessSafeKey) {
    for (i, chunk) in buf.chunks_mut(SEG).enumerate() {
        let tag = key
            .seal_in_place_separate_tag(nonce(u32::try_from(i).unwrap()), Aad::empty(), chunk)
            .unwrap();
        let _ = std::hint::black_box(tag);
    }
}

/// A second peer: ring sealing 64 KiB segments copied from borrowed input into one scratch
/// buffer, the least any streaming writer over `&[u8]` must do.
fn ring_seal_copying(plain: &[u8], key: &LessSafeKey, scratch: &mut Vec<u8>) {
    for (i, chunk) in plain.chunks(SEG).enumerate() {
        scratch.clear();
        scratch.extend_from_slice(chunk);
        let tag = key
            .seal_in_place_separate_tag(nonce(u32::try_from(i).unwrap()), Aad::empty(), scratch)
            .unwrap();
        let _ = std::hint::black_box(tag);
    }
}

fn ours_open(sealed: &[u8]) -> u64 {
    let mut src = sealed;
    let header = EnvelopeHeader::read_from(&mut src).unwrap();
    let mut reader = EnvelopeOpener::new(&header, &KEY, &ctx())
        .unwrap()
        .reader(src);
    io::copy(&mut reader, &mut io::sink()).unwrap()
}

/// Ours, zero-copy: authenticated segments are handed out where they were decrypted.
fn ours_open_segments(sealed: &[u8]) -> u64 {
    let mut src = sealed;
    let header = EnvelopeHeader::read_from(&mut src).unwrap();
    let mut reader = EnvelopeOpener::new(&header, &KEY, &ctx())
        .unwrap()
        .reader(src);
    let mut n = 0u64;
    while let Some(segment) = reader.next_segment().unwrap() {
        n += std::hint::black_box(segment).len() as u64;
    }
    n
}

/// The peer: ring opening the same ciphertext segments; each segment is first copied into a
/// scratch buffer, as any reader that cannot destroy its input must.
fn ring_open(sealed_segments: &[u8], key: &LessSafeKey, scratch: &mut Vec<u8>) {
    for (i, seg) in sealed_segments.chunks(SEG + 16).enumerate() {
        scratch.clear();
        scratch.extend_from_slice(seg);
        let plain = key
            .open_in_place(nonce(u32::try_from(i).unwrap()), Aad::empty(), scratch)
            .unwrap();
        let _ = std::hint::black_box(plain);
    }
}

fn ring_sealed_segments(plain: &[u8], key: &LessSafeKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + plain.len() / SEG * 16 + 16);
    for (i, chunk) in plain.chunks(SEG).enumerate() {
        let mut c = chunk.to_vec();
        key.seal_in_place_append_tag(nonce(u32::try_from(i).unwrap()), Aad::empty(), &mut c)
            .unwrap();
        out.extend_from_slice(&c);
    }
    out
}

/// A file that counts the bytes read from it.
struct CountingFile {
    file: std::fs::File,
    read: Cell<u64>,
}

impl RangeSource for CountingFile {
    fn len(&self) -> codekeep::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, offset: u64, len: u64) -> codekeep::Result<Vec<u8>> {
        let mut buf = vec![0u8; usize::try_from(len).unwrap()];
        self.file.read_exact_at(&mut buf, offset)?;
        self.read.set(self.read.get() + len);
        Ok(buf)
    }
}

fn main() {
    // The summary file is started by `authz`, the first bench in name order.
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    let key = ring_key();

    // Seal and open 256 MiB.
    let size = 256 * MIB;
    let plain = data(size);
    let mut sealed = Vec::with_capacity(size + size / SEG * 16 + 256);
    {
        let mut w = SealWriter::new(&mut sealed, &KEY, b"bench", &ctx()).unwrap();
        w.write_all(&plain).unwrap();
        w.finish().unwrap();
    }
    let ring_ct = ring_sealed_segments(&plain, &key);
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Bytes(size as u64));
    let mut owned = plain.clone();
    group.bench_function("seal_in_place/bytes=256MiB/segment=64KiB", |b| {
        b.iter(|| ours_seal_in_place(&mut owned));
    });
    drop(owned);
    group.bench_function("seal/bytes=256MiB/segment=64KiB", |b| {
        b.iter(|| ours_seal(&plain));
    });
    let mut buf = plain.clone();
    group.bench_function("ring_seal_peer/bytes=256MiB/segment=64KiB", |b| {
        b.iter(|| ring_seal(&mut buf, &key));
    });
    group.bench_function("open_segments/bytes=256MiB/segment=64KiB", |b| {
        b.iter(|| ours_open_segments(&sealed));
    });
    group.bench_function("open/bytes=256MiB/segment=64KiB", |b| {
        b.iter(|| ours_open(&sealed));
    });
    let mut scratch = Vec::with_capacity(SEG + 16);
    group.bench_function("ring_open_peer/bytes=256MiB/segment=64KiB", |b| {
        b.iter(|| ring_open(&ring_ct, &key, &mut scratch));
    });
    group.finish();

    let peer = median_time(5, || ring_seal(&mut buf, &key));
    let ours = median_time(5, || {
        ours_seal_in_place(&mut buf);
    });
    summary(
        "envelope_seal_in_place_256MiB_throughput",
        gbps(size as u64, ours),
        gbps(size as u64, peer),
        "GB/s",
    );
    let ours = median_time(5, || {
        ours_seal(&plain);
    });
    summary(
        "envelope_seal_streaming_write_256MiB_throughput",
        gbps(size as u64, ours),
        gbps(size as u64, peer),
        "GB/s",
    );
    let mut seal_scratch = Vec::with_capacity(SEG + 16);
    let peer = median_time(5, || ring_seal_copying(&plain, &key, &mut seal_scratch));
    summary(
        "envelope_seal_streaming_write_256MiB_throughput_vs_ring_copying_into_a_segment_buffer",
        gbps(size as u64, ours),
        gbps(size as u64, peer),
        "GB/s",
    );
    let peer = median_time(5, || ring_open(&ring_ct, &key, &mut scratch));
    let ours = median_time(5, || {
        ours_open_segments(&sealed);
    });
    summary(
        "envelope_open_segments_256MiB_throughput",
        gbps(size as u64, ours),
        gbps(size as u64, peer),
        "GB/s",
    );
    let ours = median_time(5, || {
        ours_open(&sealed);
    });
    summary(
        "envelope_open_streaming_read_256MiB_throughput",
        gbps(size as u64, ours),
        gbps(size as u64, peer),
        "GB/s",
    );
    drop((plain, sealed, ring_ct, buf));

    // A 1 MiB range read from the middle of a 1 GiB sealed blob, vs the same read of a plain file.
    let dir = tempfile::tempdir_in(codekeep_bench::target_dir()).unwrap();
    let chunk = data(64 * MIB);
    let sealed_path = dir.path().join("sealed.bin");
    let plain_path = dir.path().join("plain.bin");
    {
        let mut w = SealWriter::new(
            io::BufWriter::new(std::fs::File::create(&sealed_path).unwrap()),
            &KEY,
            b"bench",
            &ctx(),
        )
        .unwrap();
        let mut p = io::BufWriter::new(std::fs::File::create(&plain_path).unwrap());
        for _ in 0..16 {
            w.write_all(&chunk).unwrap();
            p.write_all(&chunk).unwrap();
        }
        w.finish().unwrap().flush().unwrap();
        p.flush().unwrap();
    }
    let offset = 512 * MIB as u64 + 12_345;
    let sealed_file = CountingFile {
        file: std::fs::File::open(&sealed_path).unwrap(),
        read: Cell::new(0),
    };
    let header = EnvelopeHeader::read_at(&sealed_file).unwrap();
    let opener = EnvelopeOpener::new(&header, &KEY, &ctx()).unwrap();
    let plain_file = std::fs::File::open(&plain_path).unwrap();
    let mut group = c.benchmark_group("range_read");
    group.throughput(Throughput::Bytes(MIB as u64));
    group.bench_function("sealed/blob=1GiB/range=1MiB", |b| {
        b.iter(|| opener.read_range(&sealed_file, offset, MIB as u64).unwrap());
    });
    group.bench_function("plain_file_peer/blob=1GiB/range=1MiB", |b| {
        b.iter(|| {
            let mut buf = vec![0u8; MIB];
            plain_file.read_exact_at(&mut buf, offset).unwrap();
            buf
        });
    });
    group.finish();
    let got = opener.read_range(&sealed_file, offset, MIB as u64).unwrap();
    let mut expect = vec![0u8; MIB];
    plain_file.read_exact_at(&mut expect, offset).unwrap();
    assert_eq!(got, expect, "range read returned wrong bytes");
    sealed_file.read.set(0);
    let fresh = EnvelopeOpener::new(&header, &KEY, &ctx()).unwrap();
    fresh.read_range(&sealed_file, offset, MIB as u64).unwrap();
    let first_read = sealed_file.read.get();
    sealed_file.read.set(0);
    fresh.read_range(&sealed_file, offset, MIB as u64).unwrap();
    let steady_read = sealed_file.read.get();
    #[expect(clippy::cast_precision_loss, reason = "byte counts as figures")]
    {
        summary(
            "range_read_1MiB_of_1GiB_bytes_read_first_read_lower_is_better",
            first_read as f64,
            MIB as f64,
            "bytes",
        );
        summary(
            "range_read_1MiB_of_1GiB_bytes_read_steady_lower_is_better",
            steady_read as f64,
            MIB as f64,
            "bytes",
        );
    }
    let ours = median_time(20, || {
        opener.read_range(&sealed_file, offset, MIB as u64).unwrap();
    });
    let peer = median_time(20, || {
        let mut buf = vec![0u8; MIB];
        plain_file.read_exact_at(&mut buf, offset).unwrap();
    });
    summary(
        "range_read_1MiB_of_1GiB_throughput",
        gbps(MIB as u64, ours),
        gbps(MIB as u64, peer),
        "GB/s",
    );
    c.final_summary();
}
