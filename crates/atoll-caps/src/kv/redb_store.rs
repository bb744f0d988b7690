use super::{KvError, KvStore, add, parse_integer, ttl_ms};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The embedded, on-disk backend: one redb file for every store of an app,
/// each store a table of its own. A write is acknowledged only once redb has
/// committed it durably (fsync), so nothing acknowledged is lost on a crash.
///
/// Values are stored behind an 8-byte expiry (milliseconds since the Unix
/// epoch, 0 for none) so TTLs survive restarts; expired entries read as
/// missing and are overwritten or removed by later writes.
#[derive(Clone)]
pub struct RedbStores {
    db: Arc<Database>,
}

impl RedbStores {
    /// Opens (or creates) the database file, creating its directory. A
    /// file this process already has open is shared, not reopened: redb
    /// locks its file, and during a hot swap the old and new versions of an
    /// app use the same stores at once.
    pub fn open(path: &Path) -> Result<RedbStores, String> {
        static OPEN: Mutex<BTreeMap<PathBuf, Weak<Database>>> = Mutex::new(BTreeMap::new());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let key = std::path::absolute(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, db| db.strong_count() > 0);
        if let Some(db) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(RedbStores { db });
        }
        let db = Arc::new(Database::create(&key).map_err(|e| format!("cannot open {}: {e}", path.display()))?);
        open.insert(key, Arc::downgrade(&db));
        Ok(RedbStores { db })
    }

    pub fn store(&self, name: &str) -> RedbStore {
        RedbStore {
            db: self.db.clone(),
            table: Arc::from(format!("kv:{name}")),
        }
    }
}

pub struct RedbStore {
    db: Arc<Database>,
    table: Arc<str>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn encode(value: &[u8], expires_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&expires_ms.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The value, if the entry has not expired.
fn decode(stored: &[u8], now: u64) -> Option<(&[u8], u64)> {
    let (head, value) = stored.split_at_checked(8)?;
    let expires = u64::from_be_bytes(head.try_into().ok()?);
    (expires == 0 || expires > now).then_some((value, expires))
}

fn backend(e: impl std::fmt::Display) -> KvError {
    KvError::Backend(e.to_string())
}

impl RedbStore {
    /// Runs blocking redb work off the async workers.
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Database, TableDefinition<'_, &str, &[u8]>) -> Result<R, KvError> + Send + 'static,
    ) -> Result<R, KvError> {
        let (db, table) = (self.db.clone(), self.table.clone());
        tokio::task::spawn_blocking(move || f(&db, TableDefinition::new(&table)))
            .await
            .map_err(|e| KvError::Backend(format!("the store's worker failed: {e}")))?
    }

    /// Reads one live entry, on the caller's thread. Unlike a write (which
    /// waits for an fsync) a point read is a walk down the B-tree through
    /// redb's page cache, microseconds; handing it to a blocking thread and
    /// back cost far more than the read (a `kv.get` took 69 µs that way,
    /// README, Performance). `keys`, a scan, still goes to that thread.
    fn read(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = match txn.open_table(TableDefinition::<&str, &[u8]>::new(&self.table)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let now = now_ms();
        Ok(table
            .get(key)
            .map_err(backend)?
            .and_then(|v| decode(v.value(), now).map(|(v, _)| v.to_vec())))
    }
}

#[async_trait]
impl KvStore for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.read(key)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        // `ttl_ms` bounds the TTL, so the sum cannot wrap into the past
        // (which would drop the write the moment it is acknowledged).
        let expires = match ttl {
            Some(t) => now_ms().saturating_add(ttl_ms(t)?),
            None => 0,
        };
        let (key, stored) = (key.to_string(), encode(value, expires));
        self.blocking(move |db, def| {
            let txn = db.begin_write().map_err(backend)?;
            txn.open_table(def)
                .map_err(backend)?
                .insert(key.as_str(), stored.as_slice())
                .map_err(backend)?;
            txn.commit().map_err(backend)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let key = key.to_string();
        self.blocking(move |db, def| {
            let txn = db.begin_write().map_err(backend)?;
            let existed = {
                let mut table = txn.open_table(def).map_err(backend)?;
                let removed = table.remove(key.as_str()).map_err(backend)?;
                removed.is_some_and(|v| decode(v.value(), now_ms()).is_some())
            };
            txn.commit().map_err(backend)?;
            Ok(existed)
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.read(key)?.is_some())
    }

    async fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, KvError> {
        let prefix = prefix.to_string();
        self.blocking(move |db, def| {
            let txn = db.begin_read().map_err(backend)?;
            let table = match txn.open_table(def) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(backend(e)),
            };
            let now = now_ms();
            let mut out = Vec::new();
            for entry in table.range(prefix.as_str()..).map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                if !k.value().starts_with(prefix.as_str()) || out.len() >= limit {
                    break;
                }
                if decode(v.value(), now).is_some() {
                    out.push(k.value().to_string());
                }
            }
            Ok(out)
        })
        .await
    }

    async fn increment(&self, key: &str, by: i64) -> Result<i64, KvError> {
        let key = key.to_string();
        self.blocking(move |db, def| {
            // One write transaction: redb admits one writer at a time, so the
            // read-modify-write is atomic.
            let txn = db.begin_write().map_err(backend)?;
            let next = {
                let mut table = txn.open_table(def).map_err(backend)?;
                let now = now_ms();
                let (current, expires) = match table.get(key.as_str()).map_err(backend)? {
                    Some(v) => match decode(v.value(), now) {
                        Some((value, expires)) => (parse_integer(&key, value)?, expires),
                        None => (0, 0),
                    },
                    None => (0, 0),
                };
                let next = add(&key, current, by)?;
                let stored = encode(next.to_string().as_bytes(), expires);
                table.insert(key.as_str(), stored.as_slice()).map_err(backend)?;
                next
            };
            txn.commit().map_err(backend)?;
            Ok(next)
        })
        .await
    }

    async fn compare_and_swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
        let (key, expected, value) = (key.to_string(), expected.map(<[u8]>::to_vec), value.to_vec());
        self.blocking(move |db, def| {
            // One write transaction, as for `increment`: no other writer
            // runs between the comparison and the write.
            let txn = db.begin_write().map_err(backend)?;
            let swapped = {
                let mut table = txn.open_table(def).map_err(backend)?;
                let now = now_ms();
                let current = table
                    .get(key.as_str())
                    .map_err(backend)?
                    .and_then(|v| decode(v.value(), now).map(|(value, expires)| (value.to_vec(), expires)));
                let expires = match (current, &expected) {
                    (Some((current, expires)), Some(expected)) if current == *expected => Some(expires),
                    (None, None) => Some(0),
                    _ => None,
                };
                if let Some(expires) = expires {
                    let stored = encode(&value, expires);
                    table.insert(key.as_str(), stored.as_slice()).map_err(backend)?;
                }
                expires.is_some()
            };
            if swapped {
                txn.commit().map_err(backend)?;
            } else {
                txn.abort().map_err(backend)?;
            }
            Ok(swapped)
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "redb"
    }
}
