//! `atoll keygen`: a new Ed25519 key pair for signing bundles, written as
//! `<name>.key` (private, mode 0600) and `<name>.pub` (to give to servers
//! that `--trust` it).

use anyhow::Context;
use atoll_bundle::{SecretKey, write_key_pair};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the pair: NAME.key and NAME.pub.
    #[arg(default_value = "atoll-signing")]
    pub name: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = SecretKey::generate().map_err(anyhow::Error::msg)?;
    let (private, public) = write_key_pair(&key, &args.name).context("writing the key pair")?;
    eprintln!(
        "key {}\n  private: {} (sign with `atoll bundle --sign {}`; keep it secret)\n  public:  {} (trust with `atoll serve --trust {}`)",
        key.public().id(),
        private.display(),
        super::shell_quote(&private),
        public.display(),
        super::shell_quote(&public),
    );
    Ok(ExitCode::SUCCESS)
}
