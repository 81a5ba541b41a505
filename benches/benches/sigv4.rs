//! SigV4 verifications per second: codekeep's full verification of a signed IAM request
//! (parsing the `Authorization` header, building the canonical request, deriving the signing
//! key, comparing in constant time) against the cryptographic floor of the same check: one
//! SHA-256 of an already-built canonical request and the five HMAC-SHA256 of key derivation and
//! signing, done directly with `ring`. The ratio says how much the bookkeeping around the
//! cryptography costs.
#![expect(clippy::print_stdout, reason = "benchmarks report on stdout")]
#![expect(
    clippy::expect_used,
    reason = "benchmark harness: setup failures stop the run"
)]

use std::hint::black_box;

use codekeep::api::SignedRequest;
use codekeep_bench::{median_time, per_second, summary};
use criterion::Criterion;
use ring::{digest, hmac};

const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const DATE: &str = "20261126T100000Z";
const NOW_MILLIS: i64 = 1_795_687_200_000;
/// Verifications per timed run.
const N: u64 = 20_000;
const BODY: &[u8] = b"Action=ListUsers&Version=2010-05-08&MaxItems=100";

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 15] {
            out.extend(DIGITS.get(usize::from(nibble)).map(|d| char::from(*d)));
        }
    }
    out
}

fn hmac_sign(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// The canonical request and signature of a typical IAM POST, computed here once.
fn signed_request() -> (SignedRequest, String) {
    let payload = hex(digest::digest(&digest::SHA256, BODY).as_ref());
    let canonical = format!(
        "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:{DATE}\n\ncontent-type;host;x-amz-date\n{payload}"
    );
    let signature = signature_of(&canonical);
    let headers = vec![
        (
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        ),
        ("Host".to_owned(), "iam.amazonaws.com".to_owned()),
        ("X-Amz-Date".to_owned(), DATE.to_owned()),
        (
            "Authorization".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEEXAMPLE12/20261126/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={signature}"
            ),
        ),
    ];
    (
        SignedRequest::new("POST", "/", "", headers, BODY.to_vec()),
        canonical,
    )
}

/// The cryptographic floor: hash the canonical request, derive the key, sign.
fn signature_of(canonical: &str) -> String {
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{DATE}\n20261126/us-east-1/iam/aws4_request\n{}",
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let mut key = hmac_sign(&[b"AWS4", SECRET].concat(), b"20261126");
    for part in [&b"us-east-1"[..], b"iam", b"aws4_request"] {
        key = hmac_sign(&key, part);
    }
    hex(&hmac_sign(&key, string_to_sign.as_bytes()))
}

fn main() {
    let (request, canonical) = signed_request();
    request
        .verify(SECRET, "us-east-1", NOW_MILLIS)
        .expect("the request verifies");
    let mut criterion = Criterion::default().configure_from_args();
    criterion.bench_function("sigv4_verify", |b| {
        b.iter(|| request.verify(black_box(SECRET), "us-east-1", NOW_MILLIS));
    });
    criterion.bench_function("sigv4_crypto_floor", |b| {
        b.iter(|| signature_of(black_box(&canonical)));
    });
    let ours = median_time(5, || {
        for _ in 0..N {
            black_box(request.verify(SECRET, "us-east-1", NOW_MILLIS)).ok();
        }
    });
    let floor = median_time(5, || {
        for _ in 0..N {
            black_box(signature_of(&canonical));
        }
    });
    summary(
        "sigv4_verifications_per_s_vs_crypto_floor",
        per_second(N, ours),
        per_second(N, floor),
        "verifications/s",
    );
    println!("sigv4: {N} verifications in {ours:?}");
}
