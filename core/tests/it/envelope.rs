use std::io::{Read, Write};

use codekeep::ErrorKind;
use codekeep::crypto::{EncryptionContext, EnvelopeHeader, EnvelopeOpener, open_bytes};
use serde_json::json;

use crate::keep_with_account;

fn ctx(repo: &str) -> EncryptionContext {
    EncryptionContext::new().with("aws:codecommit:id", repo)
}

#[test]
fn sealed_files_never_contain_the_plaintext_and_open_by_range() {
    let (_keep, _account, kms) = keep_with_account("kms");
    let key = kms.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let marker = b"PLAINTEXT-MARKER-0123456789";
    let mut plain = Vec::new();
    for i in 0..20_000u32 {
        plain.extend_from_slice(marker);
        plain.extend_from_slice(&i.to_be_bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealed.bin");
    let file = std::fs::File::create(&path).unwrap();
    let (_, n) = kms
        .seal(&key, &ctx("r1"), &mut plain.as_slice(), file)
        .unwrap();
    assert_eq!(n, plain.len() as u64);
    let sealed = std::fs::read(&path).unwrap();
    assert!(
        !sealed.windows(marker.len()).any(|w| w == marker),
        "plaintext found in sealed output"
    );

    let file = std::fs::File::open(&path).unwrap();
    let range = kms.open_range(&ctx("r1"), &file, 300_000, 100_000).unwrap();
    assert_eq!(range, &plain[300_000..400_000]);
    let mut all = Vec::new();
    kms.open_reader(&ctx("r1"), std::fs::File::open(&path).unwrap())
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(all, plain);

    // Another repository's context, truncation, appended bytes: typed errors, never garbage.
    assert_eq!(
        kms.open_range(&ctx("r2"), &file, 0, 10).unwrap_err().code(),
        "InvalidCiphertextException"
    );
    let truncated = sealed[..sealed.len() - 100].to_vec();
    let mut out = Vec::new();
    let err = kms
        .open_reader(&ctx("r1"), truncated.as_slice())
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    let mut longer = sealed.clone();
    longer.extend_from_slice(b"x");
    assert_eq!(
        kms.open_range(&ctx("r1"), &longer, 0, 10)
            .unwrap_err()
            .kind(),
        ErrorKind::IntegrityFailure
    );
}

#[test]
fn disabled_and_rotated_keys() {
    let (_keep, _account, kms) = keep_with_account("kms");
    let key = kms.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (sealed, _) = kms
        .seal(&key, &ctx("r"), &mut &b"before rotation"[..], Vec::new())
        .unwrap();
    kms.call("RotateKeyOnDemand", json!({"KeyId": key}))
        .unwrap();
    assert_eq!(kms.open_range(&ctx("r"), &sealed, 0, 6).unwrap(), b"before");
    kms.call("DisableKey", json!({"KeyId": key})).unwrap();
    assert_eq!(
        kms.open_range(&ctx("r"), &sealed, 0, 6).unwrap_err().code(),
        "DisabledException"
    );
    assert_eq!(
        kms.seal_writer(&key, &ctx("r"), Vec::new())
            .unwrap_err()
            .code(),
        "DisabledException"
    );
}

#[test]
fn streaming_writer_handles_odd_chunking() {
    let (_keep, _account, kms) = keep_with_account("kms");
    let key = kms.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let plain: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut w = kms.seal_writer(&key, &ctx("r"), Vec::new()).unwrap();
    let mut rest = plain.as_slice();
    let mut step = 1usize;
    while !rest.is_empty() {
        let take = step.min(rest.len());
        w.write_all(&rest[..take]).unwrap();
        rest = &rest[take..];
        step = step * 3 + 1;
    }
    let sealed = w.finish().unwrap();
    assert_eq!(
        kms.open_range(&ctx("r"), &sealed, 0, plain.len() as u64)
            .unwrap(),
        plain
    );
    assert_eq!(
        kms.open_range(&ctx("r"), &sealed, 65_530, 20).unwrap(),
        &plain[65_530..65_550]
    );
}

/// Frozen vectors: envelopes sealed by v0.1.0 must open forever.
#[test]
fn frozen_vectors_open() {
    let text = include_str!("../vectors/envelope_v1.txt");
    let mut count = 0;
    let mut fields = std::collections::HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if line.trim().is_empty() {
            if !fields.is_empty() {
                check_vector(&fields);
                count += 1;
                fields.clear();
            }
            continue;
        }
        let (k, v) = line.split_once(" = ").unwrap();
        fields.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    if !fields.is_empty() {
        check_vector(&fields);
        count += 1;
    }
    assert!(count >= 3, "expected at least 3 vectors, found {count}");
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn check_vector(f: &std::collections::HashMap<String, String>) {
    let key = unhex(&f["DataKey"]);
    let mut context = EncryptionContext::new();
    if !f["Context"].is_empty() {
        for pair in f["Context"].split(',') {
            let (k, v) = pair.split_once('=').unwrap();
            context = context.with(k, v);
        }
    }
    let sealed = unhex(&f["Sealed"]);
    let plain = unhex(&f["Plaintext"]);
    assert_eq!(open_bytes(&key, &context, &sealed).unwrap(), plain);
    let header = EnvelopeHeader::read_at(&sealed).unwrap();
    assert_eq!(header.key_ref(), unhex(&f["KeyRef"]).as_slice());
    let opener = EnvelopeOpener::new(&header, &key, &context).unwrap();
    assert_eq!(
        opener.plaintext_len(sealed.len() as u64).unwrap(),
        plain.len() as u64
    );
}

/// Prints fresh vectors; run by hand once, and only for a new format version.
#[test]
#[ignore = "generates docs vectors; the committed file is frozen"]
fn print_vectors() {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for (i, (n, context)) in [
        (0usize, ""),
        (33, "aws:codecommit:id=repo-1"),
        (70_000, "a=1,b=2"),
    ]
    .into_iter()
    .enumerate()
    {
        let key: Vec<u8> = (0..32u8)
            .map(|b| b.wrapping_mul(7).wrapping_add(i as u8))
            .collect();
        let plain: Vec<u8> = (0..n).map(|x| (x % 251) as u8).collect();
        let mut c = EncryptionContext::new();
        if !context.is_empty() {
            for pair in context.split(',') {
                let (k, v) = pair.split_once('=').unwrap();
                c = c.with(k, v);
            }
        }
        let key_ref = format!("key-ref-{i}").into_bytes();
        let sealed = codekeep::crypto::seal_bytes(&key, &key_ref, &c, &plain).unwrap();
        println!(
            "DataKey = {}\nContext = {context}\nKeyRef = {}\nPlaintext = {}\nSealed = {}\n",
            hex(&key),
            hex(&key_ref),
            hex(&plain),
            hex(&sealed)
        );
    }
}
