//! Every host call a guest can make, with a payload from the input: the
//! first bytes pick the namespace, the operation and the binding, the rest
//! is the payload. Every capability is granted, backed by nothing outside a
//! temporary directory (memory key-value store, static files there, the
//! in-process broker, outbound HTTP with an empty allowlist, so no request
//! leaves). The host must answer or refuse, never panic.

#![no_main]

use atoll_caps::files::DirFiles;
use atoll_caps::http::OutboundHttp;
use atoll_caps::kv::MemoryStore;
use atoll_caps::msg::InProcessBroker;
use atoll_caps::{Grants, HostCallError, Invocation, NAMESPACES, RequestInfo};
use atoll_manifest::{Capability, HttpSettings, TopicPattern};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

struct Host {
    runtime: tokio::runtime::Runtime,
    grants: Arc<Grants>,
    /// Every namespace with its operations, as the host lists them.
    ops: Vec<(&'static str, Vec<String>)>,
    _dir: tempfile::TempDir,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("static");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("index.html"), "<h1>hi</h1>").unwrap();

        let mut grants = Grants::with_capabilities(Capability::ALL.iter().copied());
        grants.kv.insert("default".into(), Arc::new(MemoryStore::default()));
        grants.http = Some(OutboundHttp::new(Vec::new(), Vec::new(), HttpSettings::default()).unwrap());
        grants.files = Some(Arc::new(DirFiles::open(&root).unwrap()));
        grants.broker = Some(Arc::new(InProcessBroker::new()));
        grants.publish_topics = vec![TopicPattern::parse("events.>").unwrap()];
        let grants = Arc::new(grants);

        let ops = NAMESPACES
            .iter()
            .map(|&ns| {
                let mut inv = Invocation::new("fuzz", "req", grants.clone(), Arc::new(RequestInfo::default()));
                match runtime.block_on(inv.host_call("", ns, "\u{1}", b"")) {
                    Err(HostCallError::UnknownOperation { known, .. }) => {
                        (ns, known.split(", ").map(str::to_string).collect())
                    }
                    other => panic!("{ns} did not list its operations: {other:?}"),
                }
            })
            .collect();
        drop(_entered);
        Host {
            runtime,
            grants,
            ops,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [ns, op, binding, payload @ ..] = data else {
        return;
    };
    let host = host();
    let (namespace, ops) = &host.ops[*ns as usize % host.ops.len()];
    let op = &ops[*op as usize % ops.len()];
    let binding = if binding % 2 == 0 { "" } else { "other" };
    let mut inv = Invocation::new("fuzz", "req", host.grants.clone(), Arc::new(RequestInfo::default()));
    if let Err(e) = host.runtime.block_on(inv.host_call(binding, namespace, op, payload)) {
        assert!(!e.to_string().is_empty());
    }
});
