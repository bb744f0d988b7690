//! A loaded function's guest, whatever its ABI, and what is left of an
//! invocation once it has answered: the one enum each ABI joins.

use atoll_manifest::Abi;
use atoll_wagi::WagiFunction;
use atoll_wapc::WapcFunction;
use atoll_wasi_http::WasiHttpFunction;

/// A function's compiled, pre-linked guest.
#[derive(Clone)]
pub enum Guest {
    /// A waPC guest: operations called through `__guest_call`.
    Wapc(WapcFunction),
    /// A WASI command run as a CGI program (`abi = "wagi"`).
    Wagi(WagiFunction),
    /// A component exporting `wasi:http/incoming-handler` (`abi = "wasi-http"`).
    WasiHttp(WasiHttpFunction),
}

impl Guest {
    pub fn abi(&self) -> Abi {
        match self {
            Guest::Wapc(_) => Abi::Wapc,
            Guest::Wagi(_) => Abi::Wagi,
            Guest::WasiHttp(_) => Abi::WasiHttp,
        }
    }

    /// SHA-256 of the module, hex.
    pub fn sha256(&self) -> &str {
        match self {
            Guest::Wapc(w) => &w.info.sha256,
            Guest::Wagi(w) => &w.info.sha256,
            Guest::WasiHttp(w) => &w.info.sha256,
        }
    }
}

/// A spent instance of any ABI, waiting to be torn down.
pub enum Teardown {
    Wapc(atoll_wapc::Teardown),
    Wagi(atoll_wagi::Teardown),
    WasiHttp(atoll_wasi_http::Teardown),
}
