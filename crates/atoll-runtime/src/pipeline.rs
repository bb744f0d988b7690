//! Runs a route's steps.

use crate::app::App;
use crate::failure::StepFailure;
use atoll_caps::{Invocation, RequestInfo, ResponseParts};
use atoll_manifest::Step;
use atoll_wapc::Teardown;
use bytes::Bytes;
use std::sync::Arc;

/// What started a pipeline.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub request_id: Arc<str>,
    pub request: Arc<RequestInfo>,
}

/// What a pipeline produced: a body or the step that failed, the status
/// and headers its functions set, and its spent instances.
pub struct Outcome {
    pub result: Result<Bytes, StepFailure>,
    pub response: ResponseParts,
    pub spent: Spent,
}

/// Instances a pipeline used. Dropping them resets their memory and returns
/// them to the pool: a trigger should do that once its reply is sent.
#[derive(Default)]
pub struct Spent(Vec<Teardown>);

impl App {
    /// Runs `steps` in order. Each call gets the request body as its
    /// payload; the last call's output is the result. Status and headers
    /// set by any step apply, later steps overriding earlier ones.
    pub async fn run(&self, steps: &[Step], trigger: &Trigger) -> Outcome {
        let mut response = ResponseParts::default();
        let mut spent = Spent::default();
        let mut result = Ok(Bytes::new());
        for step in steps {
            let payload = trigger.request.body.clone();
            result = self
                .call(&step.function, &step.op, payload, trigger, &mut response, &mut spent)
                .await;
            if result.is_err() {
                break;
            }
        }
        Outcome {
            result,
            response,
            spent,
        }
    }

    /// Invokes one function in a fresh instance; merges what it set on the
    /// response into `response` and hands its instance to `spent`.
    pub async fn call(
        &self,
        function: &str,
        op: &str,
        payload: Bytes,
        trigger: &Trigger,
        response: &mut ResponseParts,
        spent: &mut Spent,
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
        spent.0.push(invoked.teardown);
        if invoked.response.status.is_some() {
            response.status = invoked.response.status;
        }
        merge_headers(response, invoked.response);
        invoked.result.map(Bytes::from).map_err(|error| StepFailure {
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
