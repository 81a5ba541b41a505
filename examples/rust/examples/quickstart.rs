//! The codekeep tour (`make demo`): an account and a KMS key, a sealed file, a range read,
//! rotation, a disabled key, and the audit log.
#![expect(clippy::print_stdout, reason = "a demo prints what it does")]
#![expect(
    clippy::indexing_slicing,
    reason = "serde_json indexing yields Null for a missing member, it does not panic"
)]

use std::io::Write;

use codekeep::crypto::EncryptionContext;
use codekeep::{Caller, Keep};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./codekeep-data".to_owned());
    let keep = Keep::open(&dir)?;
    println!(
        "Opened the keep in {dir} (SQLite metadata, local blobs, master key in {dir}/master.key)."
    );

    let account = keep.create_account("demo")?;
    let account_id = account["Id"].as_str().unwrap_or_default().to_owned();
    println!("Created account {account_id}.");
    let kms = keep.client("kms", Caller::account_root(account_id.parse()?))?;
    let key = kms.call("CreateKey", json!({"Description": "demo key"}))?;
    let key_id = key["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("Created KMS key {key_id}.");

    let plain = std::path::Path::new(&dir).join("hello.txt");
    let mut f = std::fs::File::create(&plain)?;
    for i in 0..100_000 {
        writeln!(f, "hello, keep: line {i:06}")?;
    }
    drop(f);
    let sealed_path = std::path::Path::new(&dir).join("hello.sealed");
    let context = EncryptionContext::new().with("purpose", "demo");
    let (_, n) = kms.seal(
        &key_id,
        &context,
        &mut std::fs::File::open(&plain)?,
        std::fs::File::create(&sealed_path)?,
    )?;
    println!(
        "Sealed {n} bytes of {} into {} (AES-256-GCM segments of 64 KiB).",
        plain.display(),
        sealed_path.display()
    );

    let sealed = std::fs::File::open(&sealed_path)?;
    let line = 25 * 54_321;
    let range = kms.open_range(&context, &sealed, line, 25)?;
    println!(
        "Read bytes {line}..{} back without decrypting the rest: {}",
        line + 25,
        String::from_utf8_lossy(&range).trim()
    );

    kms.call("RotateKeyOnDemand", json!({"KeyId": key_id}))?;
    let range = kms.open_range(&context, &sealed, 0, 25)?;
    println!(
        "Rotated the key; data sealed before still opens: {}",
        String::from_utf8_lossy(&range).trim()
    );

    kms.call("DisableKey", json!({"KeyId": key_id}))?;
    match kms.open_range(&context, &sealed, 0, 25) {
        Err(e) => println!(
            "Disabled the key; opening is refused: {}: {}",
            e.code(),
            e.message()
        ),
        Ok(_) => return Err("a disabled key must refuse".into()),
    }

    if let Some(cp) = keep.audit().checkpoint()? {
        println!(
            "Signed an audit checkpoint over record {} with the keep's Ed25519 key.",
            cp.seq
        );
    }
    let report = keep.verify_audit_log()?;
    println!(
        "Verified the audit log: valid={}, {} records, {} signed checkpoints.",
        report.valid, report.records_checked, report.checkpoints_checked
    );
    println!("The last ten events:");
    for event in keep.audit().recent(10)? {
        println!(
            "  {}  {:<30} {}",
            event["eventTime"].as_str().unwrap_or_default(),
            event["eventName"].as_str().unwrap_or_default(),
            event["errorCode"].as_str().unwrap_or("ok")
        );
    }
    Ok(())
}
