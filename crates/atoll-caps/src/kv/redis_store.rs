use super::{KvError, KvStore, ttl_ms};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::Mutex;

/// A store on a Redis server, under the key prefix `<prefix>:<store>:`.
///
/// The connection is made on first use rather than at load, so an app
/// starts even while Redis is down; calls fail with "backend unavailable"
/// until it is back, and Redis's connection manager reconnects by itself
/// after an outage.
pub struct RedisStore {
    client: redis::Client,
    manager: Mutex<Option<ConnectionManager>>,
    prefix: String,
}

/// Bounds on how long one call may wait for Redis.
const TIMEOUT: Duration = Duration::from_secs(2);

impl RedisStore {
    /// `prefix` is usually `atoll:<app>`; the store's name is appended.
    pub fn new(url: &str, prefix: &str, store: &str) -> Result<RedisStore, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("invalid Redis URL \"{}\": {e}", atoll_manifest::without_password(url)))?;
        Ok(RedisStore {
            client,
            manager: Mutex::new(None),
            prefix: format!("{prefix}:{store}:"),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, KvError> {
        let mut slot = self.manager.lock().await;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let m = self
            .client
            .get_connection_manager_with_config(config)
            .await
            .map_err(unavailable)?;
        *slot = Some(m.clone());
        Ok(m)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd, key: &str) -> Result<T, KvError> {
        let mut conn = self.conn().await?;
        cmd.query_async(&mut conn).await.map_err(|e| classify(e, key))
    }
}

fn unavailable(e: redis::RedisError) -> KvError {
    KvError::Unavailable(e.to_string())
}

fn classify(e: redis::RedisError, key: &str) -> KvError {
    if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() || e.is_connection_dropped() {
        return KvError::Unavailable(e.to_string());
    }
    let text = e.to_string();
    if text.contains("not an integer") {
        KvError::NotInteger(key.to_string())
    } else if text.contains("overflow") {
        KvError::Overflow(key.to_string())
    } else {
        KvError::Backend(text)
    }
}

/// Escapes Redis glob metacharacters so a prefix matches literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl KvStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.run(redis::cmd("GET").arg(self.key(key)), key).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_ms(ttl)?);
        }
        self.run::<()>(&cmd, key).await
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.run::<i64>(redis::cmd("DEL").arg(self.key(key)), key).await? > 0)
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.run::<i64>(redis::cmd("EXISTS").arg(self.key(key)), key).await? > 0)
    }

    async fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, KvError> {
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let mut conn = self.conn().await?;
        let mut cursor: u64 = 0;
        // SCAN hands keys back in hash order, so the first `limit` in
        // lexicographic order (what the other backends return) are known
        // only once the scan is over. Keeping just the smallest `limit` seen
        // so far bounds the memory; stopping the scan early would return
        // whichever keys came first instead.
        let mut smallest: BTreeSet<String> = BTreeSet::new();
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| classify(e, prefix))?;
            for k in batch {
                if let Some(rest) = k.strip_prefix(self.prefix.as_bytes()) {
                    smallest.insert(String::from_utf8_lossy(rest).into_owned());
                    if smallest.len() > limit {
                        smallest.pop_last();
                    }
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        Ok(smallest.into_iter().collect())
    }

    async fn increment(&self, key: &str, by: i64) -> Result<i64, KvError> {
        self.run(redis::cmd("INCRBY").arg(self.key(key)).arg(by), key).await
    }

    /// A Lua script, not WATCH/MULTI/EXEC: the store's connection is one
    /// multiplexed connection shared by every request, and WATCH belongs
    /// to the connection, so another request's EXEC or UNWATCH on it would
    /// silently drop or end this one's watch. A script runs atomically on
    /// the server in one round trip, whatever else shares the connection.
    /// Sent whole with EVAL (a few hundred bytes) rather than by digest, so
    /// a restarted Redis that forgot its script cache needs no retry path.
    async fn compare_and_swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError> {
        const SCRIPT: &str = r"
            local current = redis.call('GET', KEYS[1])
            if ARGV[1] == '1' then
                if current ~= ARGV[2] then return 0 end
            elseif current then
                return 0
            end
            redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
            return 1
        ";
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT).arg(1).arg(self.key(key));
        match expected {
            Some(expected) => cmd.arg("1").arg(expected),
            None => cmd.arg("0").arg(""),
        };
        cmd.arg(value);
        Ok(self.run::<i64>(&cmd, key).await? == 1)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_metacharacters_are_escaped() {
        assert_eq!(super::glob_escape("a*b?c[d]e\\"), "a\\*b\\?c\\[d\\]e\\\\");
    }
}
