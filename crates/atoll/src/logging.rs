use clap::ValueEnum;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable key=value lines on a terminal, JSON otherwise.
    Auto,
    Text,
    Json,
}

/// Logs go to stderr; `ATOLL_LOG` (or `RUST_LOG`) filters them, e.g.
/// `ATOLL_LOG=atoll=debug`.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = std::env::var("ATOLL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map(EnvFilter::new)
        .unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.compact().init();
    }
}
