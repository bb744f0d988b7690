use super::{KvError, KvStore, add, parse_integer, ttl_ms};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A store in this process's memory: fast, and gone on restart.
#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<BTreeMap<String, Entry>>,
}

struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

impl MemoryStore {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, Entry>, Instant) -> R) -> R {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Expired entries go lazily, as they are met.
        f(&mut map, now)
    }
}

#[async_trait]
impl KvStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.with(|m, now| m.get(key).filter(|e| e.live(now)).map(|e| e.value.clone())))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        let ttl = ttl.map(ttl_ms).transpose()?.map(Duration::from_millis);
        self.with(|m, now| {
            m.insert(
                key.to_string(),
                Entry {
                    value: value.to_vec(),
                    expires: ttl.map(|t| now + t),
                },
            )
        });
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.with(|m, now| m.remove(key).is_some_and(|e| e.live(now))))
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.with(|m, now| m.get(key).is_some_and(|e| e.live(now))))
    }

    async fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, KvError> {
        Ok(self.with(|m, now| {
            m.range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .filter(|(_, e)| e.live(now))
                .map(|(k, _)| k.clone())
                .take(limit)
                .collect()
        }))
    }

    async fn increment(&self, key: &str, by: i64) -> Result<i64, KvError> {
        self.with(|m, now| {
            let (current, expires) = match m.get(key).filter(|e| e.live(now)) {
                Some(e) => (parse_integer(key, &e.value)?, e.expires),
                None => (0, None),
            };
            let next = add(key, current, by)?;
            m.insert(
                key.to_string(),
                Entry {
                    value: next.to_string().into_bytes(),
                    expires,
                },
            );
            Ok(next)
        })
    }

    async fn compare_and_swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
        Ok(self.with(|m, now| {
            let live = m.get_mut(key).filter(|e| e.live(now));
            match (live, expected) {
                (Some(e), Some(expected)) if e.value == expected => e.value = value.to_vec(),
                (None, None) => {
                    m.insert(
                        key.to_string(),
                        Entry {
                            value: value.to_vec(),
                            expires: None,
                        },
                    );
                }
                _ => return false,
            }
            true
        }))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
