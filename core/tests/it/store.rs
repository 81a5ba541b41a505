use std::io::Write;

use codekeep::store::{BlobStore, Key, LocalBlobStore, MemoryBlobStore, Meta, SqliteMeta};
use codekeep::{Error, ErrorKind};

/// The metadata conformance suite every backend must pass.
pub fn meta_conformance(meta: &Meta) {
    let k = |s: &str| Key::new("conf").push(s);
    meta.txn(|t| {
        for name in ["a", "b", "c", "d"] {
            t.put(&k(name), name.as_bytes())?;
        }
        Ok(())
    })
    .unwrap();
    meta.read(|t| {
        assert_eq!(t.get(&k("b"))?, Some(b"b".to_vec()));
        assert_eq!(t.get(&k("zz"))?, None);
        let all = t.scan_prefix(&Key::new("conf"), None, 10)?;
        assert_eq!(
            all.iter()
                .map(|(k, _)| k.last().unwrap())
                .collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
        let page = t.scan_prefix(&Key::new("conf"), Some(&k("b")), 1)?;
        assert_eq!(page[0].1, b"c");
        let rev = t.scan_prefix_rev(&Key::new("conf"), None, 2)?;
        assert_eq!(
            rev.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            [b"d".to_vec(), b"c".to_vec()]
        );
        Ok(())
    })
    .unwrap();
    // Compare-and-set.
    meta.txn(|t| {
        assert!(!t.compare_and_set(&k("a"), Some(b"wrong"), Some(b"x"))?);
        assert!(t.compare_and_set(&k("a"), Some(b"a"), Some(b"x"))?);
        assert!(t.compare_and_set(&k("new"), None, Some(b"n"))?);
        assert!(!t.compare_and_set(&k("new"), None, Some(b"n2"))?);
        assert!(t.compare_and_set(&k("d"), Some(b"d"), None)?);
        Ok(())
    })
    .unwrap();
    meta.read(|t| {
        assert_eq!(t.get(&k("a"))?, Some(b"x".to_vec()));
        assert_eq!(t.get(&k("d"))?, None);
        Ok(())
    })
    .unwrap();
    // A failed transaction leaves nothing behind, outbox events included.
    let before = meta.outbox_read("conformance", 100).unwrap().len();
    let err = meta
        .txn(|t| {
            t.put(&k("rolled-back"), b"1")?;
            t.append_event(
                0,
                "test",
                "Rolled Back",
                "111122223333",
                vec![],
                serde_json::json!({}),
            )?;
            Err::<(), _>(Error::invalid("boom"))
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    meta.read(|t| {
        assert_eq!(t.get(&k("rolled-back"))?, None);
        Ok(())
    })
    .unwrap();
    assert_eq!(meta.outbox_read("conformance", 100).unwrap().len(), before);
    // Outbox order and acknowledgement.
    for i in 0..3 {
        meta.txn(|t| {
            t.append_event(
                i,
                "test",
                "Committed",
                "111122223333",
                vec![],
                serde_json::json!({"i": i}),
            )
        })
        .unwrap();
    }
    let events = meta.outbox_read("conformance", 100).unwrap();
    assert_eq!(events.len(), before + 3);
    let tail: Vec<_> = events
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(|e| e.detail["i"].as_i64().unwrap())
        .collect();
    assert_eq!(tail, [0, 1, 2]);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let first = events.last().unwrap().clone();
    meta.outbox_ack("conformance", events[events.len() - 2].seq)
        .unwrap();
    let rest = meta.outbox_read("conformance", 100).unwrap();
    assert_eq!(rest, vec![first]);
    assert_eq!(
        meta.outbox_read("other-consumer", 100).unwrap().len(),
        events.len()
    );
    // Writes in a read-only transaction are refused.
    assert!(meta.read(|t| t.put(&k("ro"), b"1")).is_err());
}

/// Concurrent compare-and-set increments from `threads` metas: no update may be lost.
pub fn concurrent_increments(metas: Vec<Meta>, per_thread: u64) -> u64 {
    let counter = Key::new("conf").push("counter");
    let handles: Vec<_> = metas
        .into_iter()
        .map(|meta| {
            let counter = counter.clone();
            std::thread::spawn(move || increment(&meta, &counter, per_thread))
        })
        .collect();
    let n = handles.len() as u64;
    for h in handles {
        h.join().unwrap();
    }
    n * per_thread
}

fn increment(meta: &Meta, counter: &Key, times: u64) {
    for _ in 0..times {
        meta.txn(|t| {
            let cur = t.get(counter)?;
            let n = cur
                .as_deref()
                .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
            assert!(t.compare_and_set(counter, cur.as_deref(), Some(&(n + 1).to_be_bytes()))?);
            Ok(())
        })
        .unwrap();
    }
}

fn read_counter(meta: &Meta) -> u64 {
    meta.read(|t| {
        Ok(t.get(&Key::new("conf").push("counter"))?
            .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap())))
    })
    .unwrap()
}

/// The blob conformance suite every backend must pass.
pub fn blob_conformance(store: &dyn BlobStore, prefix: &str) {
    let key = format!("{prefix}/conf/blob-1");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut w = store.writer(&key).unwrap();
    for chunk in data.chunks(100_000) {
        w.write_all(chunk).unwrap();
    }
    // Not visible before finish.
    assert_eq!(store.size(&key).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(w.finish().unwrap(), data.len() as u64);
    assert_eq!(store.size(&key).unwrap(), data.len() as u64);
    assert_eq!(
        store.read_range(&key, 1_000_000, 10).unwrap(),
        &data[1_000_000..1_000_010]
    );
    assert_eq!(store.read_range(&key, 0, 0).unwrap(), b"");
    assert_eq!(
        store
            .read_range(&key, data.len() as u64 - 5, 10)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(store.get(&key).unwrap(), data);
    // Immutable: a second write of the same key is refused.
    let again = store.put(&key, b"other");
    assert_eq!(again.unwrap_err().kind(), ErrorKind::AlreadyExists);
    // An abandoned writer leaves nothing.
    let abandoned = format!("{prefix}/conf/abandoned");
    {
        let mut w = store.writer(&abandoned).unwrap();
        w.write_all(b"half").unwrap();
    }
    assert_eq!(
        store.size(&abandoned).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    store
        .put(&format!("{prefix}/conf/blob-2"), b"small")
        .unwrap();
    store.put(&format!("{prefix}/other/x"), b"x").unwrap();
    assert_eq!(
        store.list(&format!("{prefix}/conf/")).unwrap(),
        vec![key.clone(), format!("{prefix}/conf/blob-2")]
    );
    store.delete(&key).unwrap();
    store.delete(&key).unwrap();
    assert_eq!(
        store.read_range(&key, 0, 1).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.writer("../escape").err().unwrap().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn sqlite_file_conforms() {
    let dir = tempfile::tempdir().unwrap();
    meta_conformance(&Meta::new(
        SqliteMeta::open(&dir.path().join("m.db")).unwrap(),
    ));
}

#[test]
fn sqlite_memory_conforms() {
    meta_conformance(&Meta::new(SqliteMeta::memory().unwrap()));
}

#[test]
fn sqlite_threads_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let metas = (0..4)
        .map(|_| Meta::new(SqliteMeta::open(&path).unwrap()))
        .collect();
    let expected = concurrent_increments(metas, 50);
    assert_eq!(
        read_counter(&Meta::new(SqliteMeta::open(&path).unwrap())),
        expected
    );
}

/// Run by `sqlite_processes_lose_no_update` in child processes.
#[test]
#[ignore = "helper run in a child process"]
fn sqlite_child_increments() {
    let path = std::env::var("CODEKEEP_CHILD_DB").unwrap();
    increment(
        &Meta::new(SqliteMeta::open(std::path::Path::new(&path)).unwrap()),
        &Key::new("conf").push("counter"),
        100,
    );
}

#[test]
fn sqlite_processes_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    Meta::new(SqliteMeta::open(&path).unwrap());
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "store::sqlite_child_increments",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env("CODEKEEP_CHILD_DB", &path)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(
        read_counter(&Meta::new(SqliteMeta::open(&path).unwrap())),
        200
    );
}

#[test]
fn local_blobs_conform() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobStore::open(dir.path()).unwrap();
    blob_conformance(&store, "t");
    assert!(
        std::fs::read_dir(dir.path().join(".tmp"))
            .unwrap()
            .next()
            .is_none(),
        "temporary files left behind"
    );
}

#[test]
fn memory_blobs_conform() {
    blob_conformance(&MemoryBlobStore::new(), "t");
}

/// True when `make test` promised the external servers; then a missing one is a failure.
#[cfg_attr(
    not(any(feature = "postgres", feature = "s3")),
    expect(dead_code, reason = "used only with the postgres or s3 features")
)]
fn servers_required() -> bool {
    std::env::var("CODEKEEP_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;

    use super::*;
    use codekeep::store::PostgresMeta;

    fn config() -> Option<String> {
        let c = std::env::var("CODEKEEP_TEST_POSTGRES").ok();
        assert!(
            c.is_some() || !super::servers_required(),
            "CODEKEEP_TEST_POSTGRES is not set"
        );
        if c.is_none() {
            eprintln!("skipped: set CODEKEEP_TEST_POSTGRES to run the PostgreSQL suite");
        }
        c
    }

    fn table() -> String {
        format!("kv_{}", codekeep_test_suffix())
    }

    #[test]
    fn postgres_conforms() {
        let Some(cfg) = config() else { return };
        meta_conformance(&Meta::new(PostgresMeta::connect(&cfg, &table()).unwrap()));
    }

    #[test]
    fn two_keeps_on_postgres_lose_no_update() {
        let Some(cfg) = config() else { return };
        let table = table();
        let metas: Vec<Meta> = (0..2)
            .map(|_| Meta::new(PostgresMeta::connect(&cfg, &table).unwrap()))
            .collect();
        // Two keeps on one database: both see each other's keys and accounts.
        let keeps: Vec<codekeep::Keep> = metas
            .iter()
            .map(|m| {
                codekeep::Keep::builder()
                    .meta(m.clone())
                    .key_provider(Arc::new(
                        codekeep::crypto::MasterKeyProvider::from_raw(&[9u8; 32]).unwrap(),
                    ))
                    .build()
                    .unwrap()
            })
            .collect();
        let id = keeps[0].create_account("shared").unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            keeps[1].describe_account(&id.parse().unwrap()).unwrap()["Name"],
            "shared"
        );
        let expected = concurrent_increments(metas.clone(), 40);
        assert_eq!(read_counter(&metas[0]), expected);
        assert!(keeps[1].verify_audit_log().unwrap().valid);
    }
}

#[cfg(feature = "s3")]
mod s3 {
    use super::*;
    use codekeep::store::{S3BlobStore, S3Config};

    #[test]
    fn s3_conforms() {
        let endpoint = std::env::var("CODEKEEP_TEST_S3_ENDPOINT").ok();
        assert!(
            endpoint.is_some() || !super::servers_required(),
            "CODEKEEP_TEST_S3_ENDPOINT is not set"
        );
        let Some(endpoint) = endpoint else {
            eprintln!("skipped: set CODEKEEP_TEST_S3_ENDPOINT to run the S3 suite");
            return;
        };
        let bucket =
            std::env::var("CODEKEEP_TEST_S3_BUCKET").unwrap_or_else(|_| "codekeep-test".to_owned());
        let config = S3Config::new(&bucket, "us-east-1", "testing", "testing")
            .with_endpoint(&endpoint)
            .with_allow_http(true);
        let store = S3BlobStore::new(config).unwrap();
        blob_conformance(&store, &format!("run-{}", codekeep_test_suffix()));
        // Large enough to take the multipart path.
        let key = format!("big-{}/blob", codekeep_test_suffix());
        let data = vec![7u8; 20 * 1024 * 1024 + 3];
        let mut w = store.writer(&key).unwrap();
        w.write_all(&data).unwrap();
        w.finish().unwrap();
        assert_eq!(store.size(&key).unwrap(), data.len() as u64);
        assert_eq!(
            store.read_range(&key, 20 * 1024 * 1024, 3).unwrap(),
            [7, 7, 7]
        );
    }
}

/// A suffix that keeps concurrent test runs apart.
#[cfg_attr(
    not(any(feature = "postgres", feature = "s3")),
    expect(dead_code, reason = "used only with the postgres or s3 features")
)]
fn codekeep_test_suffix() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
