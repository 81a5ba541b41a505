//! The PostgreSQL metadata backend: one two-column table of byte keys and values.
//!
//! Every transaction runs at `SERIALIZABLE`, so PostgreSQL itself detects the anomalies that
//! SQLite avoids by having a single writer. A transaction that loses (serialization failure,
//! deadlock, or a racing insert of the same key) is reported as `Conflict`, and [`super::Meta`]
//! runs it again. Connections are kept in a small pool so a transaction does not pay for a new
//! connection (and its own runtime thread) every time.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use postgres::error::SqlState;
use postgres::{Client, NoTls, Statement};

use super::{MetaBackend, TxnBackend};
use crate::error::{Error, ErrorKind, Result};

/// How many idle connections are kept; more than this are closed when their transaction ends.
const MAX_IDLE: usize = 8;

/// How often `CREATE TABLE IF NOT EXISTS` is retried after losing a race with another creator.
const CREATE_ATTEMPTS: u32 = 5;

/// PostgreSQL metadata store.
pub struct PostgresMeta {
    config: postgres::Config,
    /// The password from the connection string, kept only to scrub it from error messages.
    password: Option<String>,
    /// The table name, already quoted for SQL.
    table: String,
    pool: Mutex<Vec<Conn>>,
}

impl fmt::Debug for PostgresMeta {
    // By hand: the connection string may hold a password, so only the table is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresMeta")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl PostgresMeta {
    /// Connects with the libpq-style `config` (`host=... user=...` or a `postgresql://` URL)
    /// and stores all metadata in `table`, creating it if needed.
    ///
    /// `table` must be a plain lowercase SQL identifier: `[a-z_][a-z0-9_]{0,62}`. Several
    /// processes may share one table; that is how several keeps share one database.
    ///
    /// # Errors
    /// `InvalidArgument` for a malformed table name or connection string; `Storage` when the
    /// server cannot be reached or the table cannot be created.
    pub fn connect(config: &str, table: &str) -> Result<Self> {
        validate_table(table)?;
        // The parse error is not passed on: its details can quote fragments of the string,
        // and the string may contain the password.
        let parsed: postgres::Config = config
            .parse()
            .map_err(|_| Error::invalid("invalid postgres connection string"))?;
        let password = parsed
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .filter(|p| !p.is_empty());
        let meta = PostgresMeta {
            config: parsed,
            password,
            // Quoted so that names which happen to be keywords (`user`, `order`) still work;
            // validation already rules out anything that would need escaping.
            table: format!("\"{table}\""),
            pool: Mutex::new(Vec::new()),
        };
        let mut client = meta
            .config
            .connect(NoTls)
            .map_err(|e| meta.map_err(&e, "connect"))?;
        meta.create_table(&mut client)?;
        let conn = meta.prepare(client)?;
        meta.release(conn);
        Ok(meta)
    }

    fn create_table(&self, client: &mut Client) -> Result<()> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (k BYTEA PRIMARY KEY, v BYTEA NOT NULL)",
            self.table
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            match client.batch_execute(&sql) {
                Ok(()) => return Ok(()),
                // IF NOT EXISTS is not atomic: two sessions creating the table at once can both
                // pass the check, and the loser fails on the catalog's unique index. The table
                // exists then, so the next attempt is a no-op.
                Err(e)
                    if attempt < CREATE_ATTEMPTS
                        && matches!(
                            e.code(),
                            Some(c) if *c == SqlState::UNIQUE_VIOLATION
                                || *c == SqlState::DUPLICATE_TABLE
                                || *c == SqlState::DUPLICATE_OBJECT
                        ) => {}
                Err(e) => return Err(self.map_err(&e, "create table")),
            }
        }
    }

    /// Prepares the statements once per connection, so each operation is one round trip.
    fn prepare(&self, mut client: Client) -> Result<Conn> {
        let t = &self.table;
        let mut prep = |sql: String| {
            client
                .prepare(&sql)
                .map_err(|e| self.map_err(&e, "prepare"))
        };
        let stmts = Statements {
            get: prep(format!("SELECT v FROM {t} WHERE k = $1"))?,
            put: prep(format!(
                "INSERT INTO {t} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
            ))?,
            delete: prep(format!("DELETE FROM {t} WHERE k = $1"))?,
            scan_asc: prep(format!(
                "SELECT k, v FROM {t} WHERE k >= $1 AND k < $2 ORDER BY k ASC LIMIT $3"
            ))?,
            scan_desc: prep(format!(
                "SELECT k, v FROM {t} WHERE k >= $1 AND k < $2 ORDER BY k DESC LIMIT $3"
            ))?,
        };
        Ok(Conn { client, stmts })
    }

    fn lock_pool(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        // The pool is only a cache of connections; a panic elsewhere cannot leave it
        // inconsistent, so a poisoned lock is still usable.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns a healthy idle connection to the pool (or closes it if the pool is full).
    fn release(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        let mut pool = self.lock_pool();
        if pool.len() < MAX_IDLE {
            pool.push(conn);
        }
    }

    fn map_err(&self, e: &postgres::Error, what: &str) -> Error {
        let kind = if is_conflict(e) {
            ErrorKind::Conflict
        } else {
            ErrorKind::Storage
        };
        let detail = match (e.as_db_error(), std::error::Error::source(e)) {
            (Some(db), _) => format!("{} ({})", db.message(), db.code().code()),
            (None, Some(cause)) => format!("{e}: {cause}"),
            (None, None) => e.to_string(),
        };
        let mut message = format!("postgres {what} failed: {detail}");
        // Defense in depth: no known message contains the password, but if a server or driver
        // ever echoes it, it must not reach logs or API responses.
        if let Some(p) = &self.password {
            message = message.replace(p.as_str(), "<redacted>");
        }
        Error::new(kind, message)
    }
}

impl MetaBackend for PostgresMeta {
    fn begin(&self, write: bool) -> Result<Box<dyn TxnBackend + '_>> {
        let begin = if write {
            "BEGIN ISOLATION LEVEL SERIALIZABLE"
        } else {
            "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY"
        };
        // Pooled connections may have died while idle (server restart, idle timeout); those
        // are discarded and the next one tried, ending with a fresh connection.
        loop {
            let pooled = self.lock_pool().pop();
            let Some(mut conn) = pooled else { break };
            match conn.client.batch_execute(begin) {
                Ok(()) => return Ok(Box::new(PgTxn::new(self, conn))),
                Err(e) if e.as_db_error().is_some() => return Err(self.map_err(&e, "begin")),
                Err(_) => {}
            }
        }
        let client = self
            .config
            .connect(NoTls)
            .map_err(|e| self.map_err(&e, "connect"))?;
        let mut conn = self.prepare(client)?;
        conn.client
            .batch_execute(begin)
            .map_err(|e| self.map_err(&e, "begin"))?;
        Ok(Box::new(PgTxn::new(self, conn)))
    }
}

/// A connection with its prepared statements (which belong to that connection only).
struct Conn {
    client: Client,
    stmts: Statements,
}

struct Statements {
    get: Statement,
    put: Statement,
    delete: Statement,
    scan_asc: Statement,
    scan_desc: Statement,
}

struct PgTxn<'a> {
    meta: &'a PostgresMeta,
    /// Always `Some` until drop, which hands it back to the pool.
    conn: Option<Conn>,
    /// True until COMMIT succeeds or PostgreSQL has ended the transaction; Drop rolls back an
    /// open transaction.
    open: bool,
    /// The kind of the first statement that failed. PostgreSQL aborts the whole transaction
    /// then, and a later COMMIT would quietly roll back while reporting success, so commit
    /// must refuse instead.
    failed: Option<ErrorKind>,
}

impl<'a> PgTxn<'a> {
    fn new(meta: &'a PostgresMeta, conn: Conn) -> Self {
        PgTxn {
            meta,
            conn: Some(conn),
            open: true,
            failed: None,
        }
    }

    /// Runs one statement, remembering a failure for [`TxnBackend::commit`].
    fn exec<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Conn) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| Error::internal("postgres transaction has no connection"))?;
        f(conn).map_err(|e| {
            let err = self.meta.map_err(&e, what);
            self.failed.get_or_insert(err.kind());
            err
        })
    }
}

impl TxnBackend for PgTxn<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.exec("get", |c| {
            match c.client.query_opt(&c.stmts.get, &[&key])? {
                Some(row) => Ok(Some(row.try_get(0)?)),
                None => Ok(None),
            }
        })
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.exec("put", |c| {
            c.client.execute(&c.stmts.put, &[&key, &value]).map(drop)
        })
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        self.exec("delete", |c| {
            c.client.execute(&c.stmts.delete, &[&key]).map(|n| n > 0)
        })
    }

    fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.exec("scan", |c| {
            let stmt = if reverse {
                &c.stmts.scan_desc
            } else {
                &c.stmts.scan_asc
            };
            let rows = c.client.query(stmt, &[&start, &end, &limit])?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if let Some(kind) = self.failed {
            // Keep the kind, so a transaction whose statement lost a conflict is retried.
            return Err(Error::new(
                kind,
                "postgres commit refused: an earlier statement in the transaction failed",
            ));
        }
        let meta = self.meta;
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| Error::internal("postgres transaction has no connection"))?;
        // Serializable conflicts are often detected only here, at COMMIT; they map to
        // `Conflict` like any other.
        match conn.client.batch_execute("COMMIT") {
            Ok(()) => {
                self.open = false;
                Ok(())
            }
            Err(e) => {
                // A COMMIT the server answered with an error has already ended the
                // transaction; a ROLLBACK now would only draw a warning. Any other failure
                // leaves the state unknown, so `open` stays set and Drop's ROLLBACK either
                // cleans up or fails and discards the connection.
                if e.as_db_error().is_some() {
                    self.open = false;
                }
                Err(meta.map_err(&e, "commit"))
            }
        }
    }
}

impl Drop for PgTxn<'_> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        // If ROLLBACK fails the connection is in an unknown state: drop it rather than hand
        // it to the next transaction.
        if self.open && conn.client.batch_execute("ROLLBACK").is_err() {
            return;
        }
        self.meta.release(conn);
    }
}

fn is_conflict(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            // Two transactions inserting the same new key: the loser sees the unique index
            // before the serializable check, but retrying is just as right.
            || *c == SqlState::UNIQUE_VIOLATION
    )
}

/// Only `[a-z_][a-z0-9_]{0,62}`: the name is spliced into SQL, and 63 bytes is PostgreSQL's
/// identifier limit (longer names would be silently truncated and could collide).
fn validate_table(table: &str) -> Result<()> {
    let mut bytes = table.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if first_ok && rest_ok && table.len() <= 63 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "`{table}` is not a valid table name"
        )))
    }
}
