//! Routes that are one component and nothing more are served with their
//! bodies streamed both ways (see `atoll_wasi_http::Streaming`): there is
//! no pipeline state to fill, so nothing needs the whole body at once.

use crate::app::{App, LoadedFunction};
use crate::failure::StepFailure;
use crate::guest::Guest;
use crate::pipeline::Trigger;
use crate::slots::Slot;
use atoll_caps::Invocation;
use atoll_manifest::{ErrorAction, Pipeline, Step};
use atoll_wasi_http::Streaming;
use bytes::Bytes;
use hyper::body::Body;
use std::sync::Arc;

impl App {
    /// The component `pipeline` consists of, if it is a single call of a
    /// wasi-http function that takes the request as it is (no `input`, no
    /// `with`, no `response` entry) and whose failures end the request
    /// (`on_error` left at `return`).
    pub fn streaming_component(&self, pipeline: &Pipeline) -> Option<&Arc<LoadedFunction>> {
        let [Step::Call(call)] = pipeline.steps.as_slice() else {
            return None;
        };
        let direct = pipeline.response.is_none()
            && call.input.is_none()
            && call.with.is_empty()
            && call.on_error.codes.is_empty()
            && call.on_error.other == ErrorAction::Return;
        let f = self.functions.get(&call.function).filter(|_| direct)?;
        matches!(f.guest, Guest::WasiHttp(_)).then_some(f)
    }

    /// Serves `trigger`'s request to the component `f` with `body`
    /// streamed in, returning once the component has set its response,
    /// with the function's concurrency slot (if it has a limit): hold it
    /// until the response body has gone.
    pub async fn serve_component<B>(
        &self,
        f: &LoadedFunction,
        trigger: Trigger,
        body: B,
    ) -> Result<(Streaming, Option<Slot>), StepFailure>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let Guest::WasiHttp(component) = &f.guest else {
            unreachable!("streaming_component returns only components")
        };
        let failed = |error| StepFailure {
            function: f.name.to_string(),
            error,
            requested_status: None,
        };
        // Counted until the response head: the body streams on afterwards.
        let started = std::time::Instant::now();
        let mut inv = Invocation::new(f.name.clone(), trigger.request_id, f.grants.clone(), trigger.request);
        let span = crate::pipeline::exported_span(&mut inv);
        let slot = match f.slot(None).await {
            Ok(slot) => slot,
            Err(error) => {
                crate::pipeline::record(f, "", Some(&error), started, span.as_ref());
                return Err(failed(error));
            }
        };
        let served = component.serve(inv, body, None).await;
        crate::pipeline::record(f, "", served.as_ref().err(), started, span.as_ref());
        Ok((served.map_err(failed)?, slot))
    }
}
