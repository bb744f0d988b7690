//! A loaded function's guest, whatever its ABI, and what is left of an
//! invocation once it has answered: the one enum each ABI joins.

use atoll_manifest::Abi;
use atoll_wagi::WagiFunction;
use atoll_wapc::WapcFunction;

/// A function's compiled, pre-linked guest.
#[derive(Clone)]
pub enum Guest {
    /// A waPC guest: operations called through `__guest_call`.
    Wapc(WapcFunction),
    /// A WASI command run as a CGI program (`abi = "wagi"`).
    Wagi(WagiFunction),
}

impl Guest {
    pub fn abi(&self) -> Abi {
        match self {
            Guest::Wapc(_) => Abi::Wapc,
            Guest::Wagi(_) => Abi::Wagi,
        }
    }

    /// SHA-256 of the module, hex.
    pub fn sha256(&self) -> &str {
        match self {
            Guest::Wapc(w) => &w.info.sha256,
            Guest::Wagi(w) => &w.info.sha256,
        }
    }
}

/// A spent instance of either ABI, waiting to be torn down.
pub enum Teardown {
    Wapc(atoll_wapc::Teardown),
    Wagi(atoll_wagi::Teardown),
}
