//! One sequence of key-value operations, run against every backend (memory,
//! redb, and a real redis-server started by the test) through
//! `Invocation::host_call`, as a guest makes them. The rules written beside
//! the `KvStore` trait in `src/kv/mod.rs` are checked here: whatever the
//! backend, every step must give the same answer, so a backend that drifts
//! from the others fails this file. A new rule gets a step in `exercise`.

use atoll_caps::kv::{KvError, KvStore, MAX_TTL_MS, MemoryStore, RedbStores, RedisStore};
use atoll_caps::{Grants, HostCallError, Invocation, RequestInfo};
use atoll_manifest::Capability;
use atoll_testkit::RedisServer;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The two stores a function is granted, and the invocation that reaches them.
struct Kv {
    inv: Invocation,
    store: Arc<dyn KvStore>,
}

#[derive(Serialize)]
struct Set<'a> {
    key: &'a str,
    #[serde(with = "serde_bytes")]
    value: &'a [u8],
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl_ms: Option<u64>,
}

#[derive(Serialize)]
struct Keys<'a> {
    prefix: &'a str,
    limit: usize,
}

#[derive(Serialize)]
struct Increment<'a> {
    key: &'a str,
    by: i64,
}

impl Kv {
    fn new(default: Arc<dyn KvStore>, other: Arc<dyn KvStore>) -> Kv {
        let mut grants = Grants::with_capabilities([Capability::Kv]);
        grants.kv.stores.insert("default".into(), default.clone());
        grants.kv.stores.insert("other".into(), other);
        Kv {
            inv: Invocation::new("kv-test", "req-1", Arc::new(grants), Arc::new(RequestInfo::default())),
            store: default,
        }
    }

    async fn call<T: DeserializeOwned>(
        &mut self,
        binding: &str,
        op: &str,
        payload: &impl Serialize,
    ) -> Result<T, HostCallError> {
        let payload = rmp_serde::to_vec_named(payload).unwrap();
        let out = self.inv.host_call(binding, "kv", op, &payload).await?;
        Ok(rmp_serde::from_slice(&out).unwrap_or_else(|e| panic!("kv {op} answered undecodable bytes: {e}")))
    }

    async fn get_in(&mut self, binding: &str, key: &str) -> Option<Vec<u8>> {
        self.call::<Option<serde_bytes::ByteBuf>>(binding, "get", &key)
            .await
            .unwrap()
            .map(|b| b.into_vec())
    }

    async fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.get_in("", key).await
    }

    async fn set_ttl(&mut self, key: &str, value: &str, ttl_ms: Option<u64>) -> Result<(), HostCallError> {
        let set = Set {
            key,
            value: value.as_bytes(),
            ttl_ms,
        };
        self.call::<()>("", "set", &set).await
    }

    async fn set(&mut self, key: &str, value: &str) {
        self.set_ttl(key, value, None).await.unwrap();
    }

    async fn exists(&mut self, key: &str) -> bool {
        self.call("", "exists", &key).await.unwrap()
    }

    async fn delete(&mut self, key: &str) -> bool {
        self.call("", "delete", &key).await.unwrap()
    }

    async fn keys(&mut self, prefix: &str, limit: usize) -> Vec<String> {
        self.call("", "keys", &Keys { prefix, limit }).await.unwrap()
    }

    async fn increment(&mut self, key: &str, by: i64) -> Result<i64, HostCallError> {
        self.call("", "increment", &Increment { key, by }).await
    }

    /// Waits, within a generous bound, for `key` to expire.
    async fn until_gone(&mut self, key: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.get(key).await.is_some() {
            assert!(Instant::now() < deadline, "\"{key}\" never expired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn text(v: &str) -> Option<Vec<u8>> {
    Some(v.as_bytes().to_vec())
}

/// The same sequence, with the same answers, whatever the backend.
async fn exercise(kv: &mut Kv) {
    // Plain reads and writes.
    assert_eq!(kv.get("a").await, None);
    kv.set("a", "1").await;
    assert_eq!(kv.get("a").await, text("1"));
    assert!(kv.exists("a").await);
    assert_eq!(kv.increment("a", 41).await.unwrap(), 42);
    assert_eq!(kv.get("a").await, text("42"), "increment stores decimal text");
    assert_eq!(
        kv.increment("fresh", -3).await.unwrap(),
        -3,
        "a missing key counts as 0"
    );

    // Only canonical decimal text counts, the text increment itself writes
    // (what Redis's INCRBY accepts); a refused increment changes nothing.
    for stored in [
        "hello",
        " 5",
        "5 ",
        "5\n",
        "+5",
        "05",
        "00",
        "-0",
        "",
        "1e3",
        "9223372036854775808",
    ] {
        kv.set("n", stored).await;
        let err = kv.increment("n", 1).await.unwrap_err().to_string();
        assert!(err.contains("is not a decimal integer"), "{stored:?}: {err}");
        assert_eq!(kv.get("n").await, text(stored), "{stored:?} was left as it was");
    }
    for canonical in ["0", "-5", "9223372036854775807", "-9223372036854775808"] {
        kv.set("n", canonical).await;
        assert_eq!(kv.increment("n", 0).await.unwrap().to_string(), canonical);
    }

    // The i64 range is the limit, in both directions, on every backend.
    kv.set("big", &i64::MAX.to_string()).await;
    let err = kv.increment("big", 1).await.unwrap_err().to_string();
    assert!(err.contains("would overflow"), "{err}");
    assert_eq!(kv.get("big").await, text(&i64::MAX.to_string()));
    kv.set("small", &i64::MIN.to_string()).await;
    let err = kv.increment("small", -1).await.unwrap_err().to_string();
    assert!(err.contains("would overflow"), "{err}");
    let err = kv.increment("small", i64::MIN).await.unwrap_err().to_string();
    assert!(err.contains("would overflow"), "{err}");
    assert_eq!(kv.increment("zero", i64::MIN).await.unwrap(), i64::MIN);
    assert_eq!(kv.increment("zero", i64::MAX).await.unwrap(), -1);

    // keys: the first `limit` in byte order, however the backend stores them.
    for key in ["user:2", "user:1", "user:10", "other:1"] {
        kv.set(key, "x").await;
    }
    assert_eq!(kv.keys("user:", 1000).await, ["user:1", "user:10", "user:2"]);
    for key in ["ord:z", "ord:é", "ord:a", "ord:Z"] {
        kv.set(key, "x").await;
    }
    assert_eq!(kv.keys("ord:", 1000).await, ["ord:Z", "ord:a", "ord:z", "ord:é"]);
    for i in (0..30).rev() {
        kv.set(&format!("many:{i:02}"), "x").await;
    }
    assert_eq!(
        kv.keys("many:", 5).await,
        ["many:00", "many:01", "many:02", "many:03", "many:04"]
    );
    assert_eq!(kv.keys("many:", 0).await, Vec::<String>::new());
    assert_eq!(kv.keys("many:", 1000).await.len(), 30);
    // A prefix is literal text, never a pattern.
    kv.set("g*[x", "x").await;
    kv.set("gx", "x").await;
    assert_eq!(kv.keys("g*[", 1000).await, ["g*[x"]);

    assert!(kv.delete("user:1").await);
    assert!(!kv.delete("user:1").await);
    assert!(!kv.exists("user:1").await);

    // Stores are isolated from each other.
    assert_eq!(kv.get_in("other", "a").await, None);
    let set = Set {
        key: "a",
        value: b"mine",
        ttl_ms: None,
    };
    kv.call::<()>("other", "set", &set).await.unwrap();
    assert_eq!(kv.get("a").await, text("42"));
    assert_eq!(kv.get_in("other", "a").await, text("mine"));

    // The longest TTL is accepted, and the write it acknowledged is there.
    kv.set_ttl("long", "kept", Some(MAX_TTL_MS)).await.unwrap();
    assert_eq!(kv.get("long").await, text("kept"));
    assert!(kv.exists("long").await);
    assert_eq!(kv.keys("lon", 1).await, ["long"]);
    assert_eq!(kv.increment("long-n", 1).await.unwrap(), 1);
    // Anything longer is refused, naming the limit, and writes nothing.
    for ttl_ms in [MAX_TTL_MS + 1, i64::MAX as u64, u64::MAX - 1, u64::MAX] {
        let err = kv.set_ttl("long", "replaced", Some(ttl_ms)).await.unwrap_err();
        assert!(matches!(err, HostCallError::BadPayload(_)), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("ttl_ms") && err.contains(&format!("maximum of {MAX_TTL_MS} ms (100 years)")),
            "{err}"
        );
        assert_eq!(kv.get("long").await, text("kept"), "a refused set changes nothing");
        assert!(kv.set_ttl("huge", "v", Some(ttl_ms)).await.is_err());
        assert_eq!(kv.get("huge").await, None);
    }
    let err = kv.set_ttl("zero", "v", Some(0)).await.unwrap_err();
    assert!(err.to_string().contains("ttl_ms must be greater than 0"), "{err}");

    // The same rule holds for callers of the trait itself.
    let store = kv.store.clone();
    let backend = store.backend();
    store
        .set("direct", b"v", Some(Duration::from_millis(MAX_TTL_MS)))
        .await
        .unwrap();
    for ttl in [
        Duration::from_millis(MAX_TTL_MS) + Duration::from_nanos(1),
        Duration::from_millis(u64::MAX),
        Duration::MAX,
    ] {
        let err = store.set("direct", b"w", Some(ttl)).await.unwrap_err();
        assert!(matches!(err, KvError::TtlTooLong(_)), "{backend}: {err:?}");
    }
    assert_eq!(store.get("direct").await.unwrap(), Some(b"v".to_vec()));
    // A sub-millisecond TTL is a (short) TTL, not "none" or "already gone".
    store.set("tiny", b"v", Some(Duration::from_nanos(1))).await.unwrap();
    kv.until_gone("tiny").await;

    // TTLs expire; a plain set clears an earlier TTL. "witness" is set
    // after "kept" had its TTL, so once it is gone that TTL would be too.
    kv.set_ttl("t", "soon", Some(150)).await.unwrap();
    kv.set_ttl("kept", "v", Some(150)).await.unwrap();
    kv.set("kept", "v").await;
    kv.set_ttl("witness", "v", Some(150)).await.unwrap();
    assert_eq!(kv.get("t").await, text("soon"));
    kv.until_gone("t").await;
    kv.until_gone("witness").await;
    assert!(!kv.exists("t").await);
    assert_eq!(kv.get("kept").await, text("v"));
    assert_eq!(
        kv.increment("t", 2).await.unwrap(),
        2,
        "an expired counter starts again"
    );

    // Concurrent increments are atomic.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.increment("count", 1).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(kv.get("count").await, text("20"));

    // Compare-and-swap: writes only over exactly the value expected.
    store.set("cas", b"v1", None).await.unwrap();
    assert!(store.compare_and_swap("cas", Some(b"v1"), b"v2").await.unwrap());
    assert_eq!(kv.get("cas").await, text("v2"));
    // A conflict (the value moved on since it was read) writes nothing.
    assert!(!store.compare_and_swap("cas", Some(b"v1"), b"v3").await.unwrap());
    assert!(
        !store.compare_and_swap("cas", None, b"v3").await.unwrap(),
        "the key is there"
    );
    assert!(
        !store.compare_and_swap("cas", Some(b"v2 "), b"v3").await.unwrap(),
        "values compare exactly"
    );
    assert!(!store.compare_and_swap("cas", Some(b""), b"v3").await.unwrap());
    assert_eq!(kv.get("cas").await, text("v2"));
    // An absent key: only an expectation of absence creates it, once.
    assert!(!store.compare_and_swap("cas-new", Some(b""), b"x").await.unwrap());
    assert_eq!(kv.get("cas-new").await, None);
    assert!(store.compare_and_swap("cas-new", None, b"first").await.unwrap());
    assert!(!store.compare_and_swap("cas-new", None, b"second").await.unwrap());
    assert_eq!(kv.get("cas-new").await, text("first"));
    // An empty value is a value, not absence.
    store.set("cas-empty", b"", None).await.unwrap();
    assert!(!store.compare_and_swap("cas-empty", None, b"x").await.unwrap());
    assert!(store.compare_and_swap("cas-empty", Some(b""), b"x").await.unwrap());
    assert_eq!(kv.get("cas-empty").await, text("x"));
    // A swap keeps the TTL (the key still expires); an expired key is absent.
    kv.set_ttl("cas-ttl", "old", Some(150)).await.unwrap();
    assert!(store.compare_and_swap("cas-ttl", Some(b"old"), b"new").await.unwrap());
    assert_eq!(kv.get("cas-ttl").await, text("new"));
    kv.until_gone("cas-ttl").await;
    assert!(!store.compare_and_swap("cas-ttl", Some(b"new"), b"newer").await.unwrap());
    assert!(store.compare_and_swap("cas-ttl", None, b"again").await.unwrap());
    assert_eq!(kv.get("cas-ttl").await, text("again"));

    // Concurrent read-then-swap loops lose no update: each swap either
    // lands on the value its task read or fails and rereads.
    store.set("cas-count", b"0", None).await.unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..5 {
                    loop {
                        let read = store.get("cas-count").await.unwrap().unwrap();
                        let n: u32 = std::str::from_utf8(&read).unwrap().parse().unwrap();
                        let next = (n + 1).to_string();
                        if store
                            .compare_and_swap("cas-count", Some(&read), next.as_bytes())
                            .await
                            .unwrap()
                        {
                            break;
                        }
                        conflicts += 1;
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(kv.get("cas-count").await, text("50"), "{backend}");
}

#[tokio::test]
async fn memory_backend() {
    let mut kv = Kv::new(Arc::new(MemoryStore::default()), Arc::new(MemoryStore::default()));
    exercise(&mut kv).await;
}

#[tokio::test]
async fn redb_backend() {
    let dir = tempfile::tempdir().unwrap();
    let stores = RedbStores::open(&dir.path().join("kv.redb")).unwrap();
    let mut kv = Kv::new(Arc::new(stores.store("default")), Arc::new(stores.store("other")));
    exercise(&mut kv).await;
}

#[tokio::test]
async fn redis_backend() {
    let redis = RedisServer::start();
    let store = |name| Arc::new(RedisStore::new(&redis.url(), "atoll:kv-test", name).unwrap());
    let mut kv = Kv::new(store("default"), store("other"));
    exercise(&mut kv).await;
}
