//! The embedded default metadata backend: one SQLite file in WAL mode.
//!
//! Write transactions start with `BEGIN IMMEDIATE`, which takes SQLite's single write lock up
//! front: writers are serialized (across threads and across processes sharing the file), which is
//! serializable by construction. Read transactions are plain `BEGIN` snapshots under WAL.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use super::{MetaBackend, TxnBackend};
use crate::error::{Error, ErrorKind, Result};

/// How long a writer waits for another process's write lock before reporting a conflict.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite metadata store.
#[derive(Debug)]
pub struct SqliteMeta {
    conn: Mutex<Connection>,
}

impl SqliteMeta {
    /// Opens (creating if needed) the database file at `path`.
    ///
    /// # Errors
    /// `Storage` when the file cannot be opened or initialized.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| map_err(&e, "open"))?;
        Self::init(conn, true)
    }

    /// A private in-memory database, gone when dropped.
    ///
    /// # Errors
    /// `Storage` if SQLite cannot allocate it.
    pub fn memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|e| map_err(&e, "open"))?;
        Self::init(conn, false)
    }

    fn init(conn: Connection, wal: bool) -> Result<Self> {
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| map_err(&e, "configure"))?;
        if wal {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| map_err(&e, "configure"))?;
            // NORMAL in WAL mode is durable across process crashes; FULL also across power loss.
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(|e| map_err(&e, "configure"))?;
            // Reads through a memory map skip a copy per page (scans, audit verification).
            conn.pragma_update(None, "mmap_size", 256i64 * 1024 * 1024)
                .map_err(|e| map_err(&e, "configure"))?;
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL) WITHOUT ROWID;",
        )
        .map_err(|e| map_err(&e, "create table"))?;
        Ok(SqliteMeta {
            conn: Mutex::new(conn),
        })
    }
}

impl MetaBackend for SqliteMeta {
    fn begin(&self, write: bool) -> Result<Box<dyn TxnBackend + '_>> {
        // A poisoned lock means a thread panicked mid-transaction; the connection itself is
        // still consistent (SQLite rolled back), so keep using it.
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let begin = if write {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN DEFERRED"
        };
        conn.execute_batch(begin)
            .map_err(|e| map_err(&e, "begin"))?;
        Ok(Box::new(SqliteTxn { conn, open: true }))
    }
}

struct SqliteTxn<'a> {
    conn: MutexGuard<'a, Connection>,
    open: bool,
}

impl TxnBackend for SqliteTxn<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT v FROM kv WHERE k = ?1")
            .map_err(|e| map_err(&e, "get"))?;
        let mut rows = stmt.query(params![key]).map_err(|e| map_err(&e, "get"))?;
        match rows.next().map_err(|e| map_err(&e, "get"))? {
            Some(row) => Ok(Some(row.get(0).map_err(|e| map_err(&e, "get"))?)),
            None => Ok(None),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![key, value]))
            .map_err(|e| map_err(&e, "put"))?;
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM kv WHERE k = ?1")
            .and_then(|mut s| s.execute(params![key]))
            .map_err(|e| map_err(&e, "delete"))?;
        Ok(n > 0)
    }

    fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let sql = if reverse {
            "SELECT k, v FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k DESC LIMIT ?3"
        } else {
            "SELECT k, v FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k ASC LIMIT ?3"
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| map_err(&e, "scan"))?;
        let rows = stmt
            .query_map(params![start, end, limit], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| map_err(&e, "scan"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| map_err(&e, "scan"))
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let result = self
            .conn
            .execute_batch("COMMIT")
            .map_err(|e| map_err(&e, "commit"));
        // A failed COMMIT leaves the transaction open; Drop rolls it back.
        self.open = result.is_err();
        result
    }
}

impl Drop for SqliteTxn<'_> {
    fn drop(&mut self) {
        if self.open {
            // Rolling back cannot meaningfully fail here: if it does, the next BEGIN reports it.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

fn map_err(e: &rusqlite::Error, what: &str) -> Error {
    let busy = matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    );
    let kind = if busy {
        ErrorKind::Conflict
    } else {
        ErrorKind::Storage
    };
    Error::new(kind, format!("sqlite {what} failed: {e}"))
}
