//! `atoll`: serve, call, check and build WebAssembly function apps.
//!
//! A thin shell over the library crates: parsing arguments, setting up
//! logging, and turning errors into messages and exit codes.

mod commands;
mod logging;
mod options;
mod otlp;
mod process;
mod readiness;
mod supervisor;
mod watch;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "atoll",
    version,
    about = "Serve WebAssembly functions described by an atoll.toml manifest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a function (and an app, if there is none) from a template.
    New(commands::new::Args),
    /// Serve an app over HTTP.
    Serve(commands::serve::Args),
    /// Invoke one function of an app locally, without a server.
    Call(commands::call::Args),
    /// Validate an app: its manifest, and that every module loads.
    Check(commands::check::Args),
    /// Run every function's build command.
    Build(commands::build::Args),
    /// Pack an app into one .atoll file.
    Bundle(commands::bundle::Args),
    /// Make an Ed25519 key pair for signing bundles (NAME.key, NAME.pub).
    Keygen(commands::keygen::Args),
    /// Show what a bundle (or app directory) holds and what each function is granted.
    Inspect(commands::inspect::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    process::return_large_blocks_to_the_kernel();
    if matches!(cli.command, Command::Inspect(_)) {
        process::end_quietly_on_a_closed_pipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::New(args) => commands::new::run(args).await,
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Call(args) => commands::call::run(args).await,
            Command::Check(args) => commands::check::run(args).await,
            Command::Build(args) => commands::build::run(args).await,
            Command::Bundle(args) => commands::bundle::run(args).await,
            Command::Inspect(args) => commands::inspect::run(args).await,
            Command::Keygen(args) => commands::keygen::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) if e.is::<commands::Reported>() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
