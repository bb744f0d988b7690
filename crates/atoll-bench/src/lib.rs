//! Baselines for `bench/http.sh`: see `src/bin/hyper-hello.rs`.
