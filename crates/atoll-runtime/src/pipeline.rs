//! Runs a route's steps.

use crate::app::App;
use crate::failure::StepFailure;
use atoll_caps::{Invocation, RequestInfo, ResponseParts};
use atoll_manifest::Step;
use bytes::Bytes;
use std::sync::Arc;

/// What started a pipeline.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub request_id: Arc<str>,
    pub request: Arc<RequestInfo>,
}

/// What a pipeline produced: a body or the step that failed, plus the
/// status and headers its functions set.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<Bytes, StepFailure>,
    pub response: ResponseParts,
}

impl App {
    /// Runs `steps` in order. Each call gets the request body as its
    /// payload; the last call's output is the result. Status and headers
    /// set by any step apply, later steps overriding earlier ones.
    pub async fn run(&self, steps: &[Step], trigger: &Trigger) -> Outcome {
        let mut response = ResponseParts::default();
        let mut last = Bytes::new();
        for step in steps {
            match self
                .call(
                    &step.function,
                    &step.op,
                    trigger.request.body.clone(),
                    trigger,
                    &mut response,
                )
                .await
            {
                Ok(out) => last = out,
                Err(failure) => {
                    return Outcome {
                        result: Err(failure),
                        response,
                    };
                }
            }
        }
        Outcome {
            result: Ok(last),
            response,
        }
    }

    /// Invokes one function in a fresh instance; merges what it set on the
    /// response into `response`.
    pub async fn call(
        &self,
        function: &str,
        op: &str,
        payload: Bytes,
        trigger: &Trigger,
        response: &mut ResponseParts,
    ) -> Result<Bytes, StepFailure> {
        let f = self
            .functions
            .get(function)
            .expect("steps name only declared functions; the manifest checked it");
        let inv = Invocation::new(
            f.name.clone(),
            trigger.request_id.clone(),
            f.grants.clone(),
            trigger.request.clone(),
        );
        let invoked = f.wapc.invoke(inv, op, payload).await;
        self.reaper.defer(invoked.teardown);
        if invoked.response.status.is_some() {
            response.status = invoked.response.status;
        }
        merge_headers(response, invoked.response);
        invoked
            .result
            .map(Bytes::from)
            .map_err(|error| StepFailure {
                function: function.to_string(),
                error,
                requested_status: response.status,
            })
    }
}

/// `set_header` semantics across steps: a later step's header replaces the
/// same name from earlier steps; several values within one step are kept.
fn merge_headers(into: &mut ResponseParts, from: ResponseParts) {
    let names: Vec<_> = from.headers.iter().map(|(n, _)| n.clone()).collect();
    into.headers.retain(|(n, _)| !names.contains(n));
    into.headers.extend(from.headers);
}
