//! Metadata (SQLite, and PostgreSQL when `CODEKEEP_TEST_POSTGRES` names a server) and the
//! audit log. Peers: the same statements issued directly through rusqlite / postgres.
#![expect(clippy::print_stdout, reason = "benchmarks report on stdout")]
#![expect(clippy::unwrap_used, reason = "benchmark harness")]
#![expect(
    clippy::too_many_lines,
    reason = "one linear benchmark script, read top to bottom"
)]

use std::sync::Arc;
use std::time::Instant;

use codekeep::store::{Key, Meta, SqliteMeta};
use codekeep_bench::{median_time, per_second, summary};
use criterion::Criterion;
use serde_json::json;

const OPS: u64 = 300;

fn cas_put(meta: &Meta, key: &Key) {
    meta.txn(|t| {
        let cur = t.get(key)?;
        let n = cur
            .as_deref()
            .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
        t.compare_and_set(key, cur.as_deref(), Some(&(n + 1).to_be_bytes()))?;
        Ok(())
    })
    .unwrap();
}

fn point_read(meta: &Meta, key: &Key) {
    meta.read(|t| t.get(key)).unwrap();
}

fn raw_sqlite(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL) WITHOUT ROWID").unwrap();
    conn
}

fn raw_sqlite_cas(conn: &rusqlite::Connection, key: &[u8]) {
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let cur: Option<Vec<u8>> = conn
        .prepare_cached("SELECT v FROM kv WHERE k = ?1")
        .unwrap()
        .query_row([key], |r| r.get(0))
        .ok();
    let n = cur
        .as_deref()
        .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
    conn.prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")
        .unwrap()
        .execute(rusqlite::params![key, (n + 1).to_be_bytes().as_slice()])
        .unwrap();
    conn.execute_batch("COMMIT").unwrap();
}

fn raw_sqlite_read(conn: &rusqlite::Connection, key: &[u8]) {
    let v: Option<Vec<u8>> = conn
        .prepare_cached("SELECT v FROM kv WHERE k = ?1")
        .unwrap()
        .query_row([key], |r| r.get(0))
        .ok();
    std::hint::black_box(v);
}

fn rate(ops: u64, f: impl FnMut()) -> f64 {
    let mut f = f;
    per_second(
        ops,
        median_time(3, || {
            for _ in 0..ops {
                f();
            }
        }),
    )
}

fn main() {
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    let dir = tempfile::tempdir_in(codekeep_bench::target_dir()).unwrap();

    // SQLite.
    let meta = Meta::new(SqliteMeta::open(&dir.path().join("ours.db")).unwrap());
    let key = Key::new("bench").push("counter");
    let raw = raw_sqlite(&dir.path().join("raw.db"));
    let raw_key = key.as_bytes().to_vec();
    let mut group = c.benchmark_group("metadata");
    group.bench_function("sqlite/cas_put", |b| b.iter(|| cas_put(&meta, &key)));
    group.bench_function("sqlite/point_read", |b| b.iter(|| point_read(&meta, &key)));
    group.bench_function("sqlite_raw_peer/cas_put", |b| {
        b.iter(|| raw_sqlite_cas(&raw, &raw_key));
    });
    group.bench_function("sqlite_raw_peer/point_read", |b| {
        b.iter(|| raw_sqlite_read(&raw, &raw_key));
    });
    group.finish();
    summary(
        "metadata_sqlite_cas_puts_per_s",
        rate(OPS, || cas_put(&meta, &key)),
        rate(OPS, || raw_sqlite_cas(&raw, &raw_key)),
        "ops/s",
    );
    summary(
        "metadata_sqlite_point_reads_per_s",
        rate(20 * OPS, || point_read(&meta, &key)),
        rate(20 * OPS, || raw_sqlite_read(&raw, &raw_key)),
        "ops/s",
    );

    // PostgreSQL, when a server is given.
    if let Ok(cfg) = std::env::var("CODEKEEP_TEST_POSTGRES") {
        let table = format!("bench_{}", std::process::id());
        let meta = Meta::new(codekeep::store::PostgresMeta::connect(&cfg, &table).unwrap());
        let mut raw = postgres::Client::connect(&cfg, postgres::NoTls).unwrap();
        raw.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table}_raw (k BYTEA PRIMARY KEY, v BYTEA NOT NULL)"
        ))
        .unwrap();
        let mut raw_cas = || {
            let mut tx = raw
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::Serializable)
                .start()
                .unwrap();
            let cur: Option<Vec<u8>> = tx
                .query_opt(
                    &format!("SELECT v FROM {table}_raw WHERE k = $1"),
                    &[&raw_key],
                )
                .unwrap()
                .map(|r| r.get(0));
            let n = cur
                .as_deref()
                .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
            tx.execute(&format!("INSERT INTO {table}_raw (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"), &[&raw_key, &(n + 1).to_be_bytes().to_vec()]).unwrap();
            tx.commit().unwrap();
        };
        let ours = rate(OPS, || cas_put(&meta, &key));
        let peer = rate(OPS, &mut raw_cas);
        summary("metadata_postgres_cas_puts_per_s", ours, peer, "ops/s");
        let mut raw_read = || {
            let v: Option<Vec<u8>> = raw
                .query_opt(
                    &format!("SELECT v FROM {table}_raw WHERE k = $1"),
                    &[&raw_key],
                )
                .unwrap()
                .map(|r| r.get(0));
            std::hint::black_box(v);
        };
        let ours = rate(5 * OPS, || point_read(&meta, &key));
        let peer = rate(5 * OPS, &mut raw_read);
        summary("metadata_postgres_point_reads_per_s", ours, peer, "ops/s");
    } else {
        println!("PostgreSQL not running (CODEKEEP_TEST_POSTGRES unset): its figures are skipped");
    }

    // The audit log: appends in batches of 1000, then verification.
    let keep = codekeep::Keep::builder()
        .meta(Meta::new(
            SqliteMeta::open(&dir.path().join("audit.db")).unwrap(),
        ))
        .key_provider(Arc::new(
            codekeep::crypto::MasterKeyProvider::from_raw(&[7u8; 32]).unwrap(),
        ))
        .build()
        .unwrap();
    let event = json!({
        "eventSource": "codecommit.amazonaws.com", "eventName": "GitPush", "awsRegion": "us-east-1",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::111122223333:user/dev", "accountId": "111122223333", "userName": "dev"},
        "requestParameters": {"repositoryName": "app", "references": [{"ref": "refs/heads/main"}]},
        "sourceIPAddress": "127.0.0.1", "userAgent": "git/2.47.3", "readOnly": false, "recipientAccountId": "111122223333",
    });
    let batch: Vec<_> = (0..1000).map(|_| event.clone()).collect();
    let mut group = c.benchmark_group("audit");
    group.throughput(criterion::Throughput::Elements(1000));
    group.bench_function("append/batch=1000", |b| {
        b.iter(|| keep.audit().append_events(&batch).unwrap());
    });
    group.finish();
    let batches = 50u64;
    let start = Instant::now();
    for _ in 0..batches {
        keep.audit().append_events(&batch).unwrap();
    }
    let appended = per_second(batches * 1000, start.elapsed());
    summary(
        "audit_appended_records_per_s_vs_goal",
        appended,
        50_000.0,
        "records/s",
    );
    let mut checked = 0;
    let verify = median_time(3, || {
        let report = keep.verify_audit_log().unwrap();
        assert!(report.valid);
        checked = report.records_checked;
    });
    summary(
        "audit_verified_records_per_s_vs_goal",
        per_second(checked, verify),
        1_000_000.0,
        "records/s",
    );
    c.final_summary();
}
