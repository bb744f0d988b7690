//! Each capability driven through the whole wiring, with no guest: a
//! manifest and a runtime configuration go into `Services::build`, each
//! function's grants come out of `grants_for`, and operations go through
//! `Invocation::host_call` as a guest's would. What is checked here is the
//! registration itself: that each capability's slice reaches exactly the
//! functions that list it, that its namespace is checked before any
//! operation runs, and that its runtime configuration picks its backend.
//! (Each capability's operations against every backend have their own
//! file: `kv.rs`, `sql.rs`, `outbound_*.rs`.)

use atoll_caps::files::{MemFiles, StaticFiles};
use atoll_caps::{AppFiles, HostCallError, Invocation, RequestInfo, Services};
use atoll_manifest::{Manifest, RuntimeConfigFile};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;

const MANIFEST: &str = r#"
[app]
name = "wiring"

[variables]
greeting = { default = "hello" }
token = { secret = true }

[functions.everything]
source = "x.wasm"
capabilities = ["log", "kv", "vars", "files", "msg"]
kv_stores = ["default", "cache"]
secrets = ["token"]
publish_topics = ["events.>"]

[functions.nothing]
source = "x.wasm"
"#;

const RUNTIME: &str = "[kv.cache]\nbackend = \"memory\"\n[variables]\ntoken = \"s3cret\"\n";

async fn services(dir: &Path) -> Services {
    let manifest = Manifest::parse(MANIFEST, &dir.join("atoll.toml")).unwrap();
    let runtime = RuntimeConfigFile::parse(RUNTIME, &dir.join("runtime.toml")).unwrap();
    let files: Arc<dyn StaticFiles> = Arc::new(MemFiles::new(
        [("a.txt".to_string(), bytes::Bytes::from_static(b"file a"))].into(),
    ));
    let app = AppFiles {
        static_files: Some(files),
        ..AppFiles::default()
    };
    Services::build(&manifest, runtime, dir, |_| None, app).await.unwrap()
}

async fn invocation(services: &Services, function: &str) -> Invocation {
    let manifest = Manifest::parse(MANIFEST, Path::new("atoll.toml")).unwrap();
    let grants = services.grants_for(&manifest.functions[function]).unwrap();
    Invocation::new(function, "r", Arc::new(grants), Arc::new(RequestInfo::default()))
}

async fn call<T: DeserializeOwned>(
    inv: &mut Invocation,
    binding: &str,
    namespace: &str,
    op: &str,
    payload: &(impl Serialize + ?Sized),
) -> Result<T, HostCallError> {
    let bytes = rmp_serde::to_vec_named(payload).unwrap();
    let out = inv.host_call(binding, namespace, op, &bytes).await?;
    let out = if out.is_empty() { vec![0xc0] } else { out };
    Ok(rmp_serde::from_slice(&out).unwrap())
}

#[tokio::test]
async fn every_capability_reaches_the_function_that_lists_it_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let services = services(dir.path()).await;
    let mut all = invocation(&services, "everything").await;

    call::<()>(&mut all, "", "log", "info", "from the wiring test")
        .await
        .unwrap();
    let greeting: Option<String> = call(&mut all, "", "vars", "get", "greeting").await.unwrap();
    assert_eq!(greeting.as_deref(), Some("hello"));
    let token: Option<String> = call(&mut all, "", "vars", "get", "token").await.unwrap();
    assert_eq!(token.as_deref(), Some("s3cret"), "a listed secret is readable");
    let file: Option<serde_bytes::ByteBuf> = call(&mut all, "", "files", "read", "a.txt").await.unwrap();
    assert_eq!(file.unwrap().as_slice(), b"file a");
    #[derive(Serialize)]
    struct Publish<'a> {
        topic: &'a str,
        #[serde(with = "serde_bytes")]
        payload: &'a [u8],
    }
    let pattern = atoll_manifest::TopicPattern::parse("events.*").unwrap();
    let mut sub = services.broker().subscribe(&pattern, "test").await.unwrap();
    call::<()>(
        &mut all,
        "",
        "msg",
        "publish",
        &Publish {
            topic: "events.a",
            payload: b"x",
        },
    )
    .await
    .unwrap();
    assert_eq!(sub.next().await.unwrap().topic, "events.a");

    // kv: the default store is redb in the data directory, `cache` is in
    // memory as the runtime configuration says.
    #[derive(Serialize)]
    struct Set<'a> {
        key: &'a str,
        #[serde(with = "serde_bytes")]
        value: &'a [u8],
    }
    for store in ["", "cache"] {
        call::<()>(&mut all, store, "kv", "set", &Set { key: "k", value: b"v" })
            .await
            .unwrap();
    }
    assert!(
        dir.path().join("kv.redb").exists(),
        "the default store is the embedded file"
    );
    let err = call::<()>(&mut all, "elsewhere", "kv", "get", "k").await.unwrap_err();
    assert!(
        err.to_string().contains("kv store \"elsewhere\" is not granted"),
        "{err}"
    );

    let mut none = invocation(&services, "nothing").await;
    for (namespace, op) in [
        ("log", "info"),
        ("kv", "get"),
        ("vars", "get"),
        ("files", "read"),
        ("msg", "publish"),
    ] {
        let err = call::<()>(&mut none, "", namespace, op, "x").await.unwrap_err();
        assert_eq!(
            err,
            HostCallError::NotGranted {
                namespace: namespace.into(),
                function: "nothing".into()
            },
            "{namespace}"
        );
    }
    // The invocation's own namespaces need no grant.
    let keys: Vec<String> = call(&mut none, "", "state", "keys", &()).await.unwrap();
    assert!(keys.is_empty());
}

#[tokio::test]
async fn a_capabilitys_runtime_configuration_errors_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = Manifest::parse(MANIFEST, &dir.path().join("atoll.toml")).unwrap();
    let runtime =
        RuntimeConfigFile::parse("\n[kv.cache]\nbackend = \"etcd\"\n", &dir.path().join("runtime.toml")).unwrap();
    let err = Services::build(&manifest, runtime, dir.path(), |_| None, AppFiles::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("runtime.toml:3:11: kv.cache.backend: unknown key-value backend \"etcd\""),
        "{err}"
    );
}
