//! The options of OTLP span export on `atoll serve` (the export itself is
//! `atoll_caps::spans::otlp`), and the service the spans are of.

use atoll_caps::spans::otlp::{self, Exporting, Service};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct OtlpOptions {
    /// Export spans to this OpenTelemetry collector: OTLP over HTTP with
    /// protobuf, to URL/v1/traces (e.g. http://localhost:4318). Off unless
    /// given, or OTEL_EXPORTER_OTLP_ENDPOINT is set.
    #[arg(long, value_name = "URL", env = "ATOLL_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// A header sent with every export, e.g. 'authorization=Bearer x'
    /// (repeatable); OTEL_EXPORTER_OTLP_HEADERS adds more.
    #[arg(long, value_name = "NAME=VALUE", value_parser = otlp::parse_header)]
    pub otlp_header: Vec<(String, String)>,
}

/// Starts exporting if an endpoint is configured; `None` if export is off.
pub fn start(options: &OtlpOptions, service: Service) -> anyhow::Result<Option<Exporting>> {
    if !otlp::configured(options.otlp_endpoint.as_deref()) {
        return Ok(None);
    }
    let config = otlp::Config {
        endpoint: options.otlp_endpoint.clone(),
        headers: options.otlp_header.clone(),
    };
    otlp::start(&config, service).map(Some).map_err(|e| anyhow::anyhow!(e))
}
