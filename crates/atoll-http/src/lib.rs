//! The HTTP trigger: serves an app's `[[routes]]` on hyper (HTTP/1.1 and
//! HTTP/2), one fresh instance per step of every request.
//!
//! Besides the app's routes it answers `/-/health` and `/-/ready`, puts an
//! `x-request-id` on every response, refuses bodies over the route's limit
//! with 413, sheds load beyond its concurrency limit with 503, maps guest
//! failures to JSON errors (500, 504 on deadline), logs one structured line
//! per request, and drains in-flight requests on shutdown. With an admin
//! token configured, `PUT /-/bundle` deploys a new version of the app, and
//! `/-/apps` lists, deploys and removes apps one by one when the server
//! hosts several, each at its mount (`[app] base` and `hosts`).
//! `GET /-/metrics` answers in the Prometheus text format, here or on an
//! address of its own ([`serve_metrics`]).

mod apps_admin;
mod body;
mod budget;
mod handler;
mod metrics_listener;
mod router;
mod server;
mod streamed_request;
mod timed_io;
mod tls;

pub use metrics_listener::serve_metrics;
pub use router::{Lookup, Router};
pub use server::{Admin, HttpConfig, HttpServer, Refused, clash};
pub use tls::server_config as tls_config;
