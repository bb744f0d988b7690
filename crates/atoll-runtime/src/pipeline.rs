//! Runs pipelines: steps in order, groups of calls concurrently, with the
//! pipeline's state carrying each call's output to the next.
//!
//! Semantics (Atmo's Directive, tightened):
//! - each call's output goes into the state under its key (`as`, else the
//!   function's name); a call's payload is the trigger's input (request
//!   body, message) unless `input` names a state entry;
//! - a call sees the whole state, or with `with` only its aliases;
//! - group members run concurrently, each in a fresh instance, all seeing
//!   the state as it was when the group started; their outputs are merged
//!   in member order when all have finished; a group's `timeout` is every
//!   member's deadline (a member past it fails with 504);
//! - a failed call's `on_error` decides by status: `return` stops the
//!   pipeline with that failure, `continue` stores the failure as JSON
//!   (`{"error", "status", "function"}`) under the call's key and goes on;
//! - status and headers set by calls that succeed apply to the response,
//!   later ones overriding earlier ones; a failed call's do not;
//! - the result is the `response` entry, else the last step's output.

use crate::app::{App, LoadedFunction};
use crate::failure::StepFailure;
use crate::guest::{Guest, Teardown};
use atoll_caps::links::{LinkCall, LinkTarget};
use atoll_caps::spans::{self, Began};
use atoll_caps::trace::{TraceContext, new_span_id};
use atoll_caps::{HostCallError, Invocation, RequestInfo, ResponseParts, State, StateView};
use atoll_engine::CallError;
use atoll_engine::Lane;
use atoll_manifest::{Call, ErrorAction, Manifest, Pipeline, Step};
use bytes::Bytes;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// What started a pipeline.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub request_id: Arc<str>,
    pub request: Arc<RequestInfo>,
    /// State the pipeline starts with (a schedule's seed).
    pub state: State,
}

impl Trigger {
    pub fn new(request_id: impl Into<Arc<str>>, request: RequestInfo) -> Trigger {
        Trigger {
            request_id: request_id.into(),
            request: Arc::new(request),
            state: State::new(),
        }
    }
}

/// What a pipeline produced: a body or the failure that stopped it, the
/// status and headers its calls set, and its spent instances.
pub struct Outcome {
    pub result: Result<Bytes, StepFailure>,
    pub response: ResponseParts,
    pub spent: Spent,
}

/// Instances a pipeline used. Dropping them resets their memory and returns
/// them to the pool: a trigger should do that once its reply is sent.
#[derive(Default)]
pub struct Spent(Vec<Teardown>);

/// One finished invocation, before its outcome is applied to the pipeline.
pub(crate) struct Done {
    pub(crate) result: Result<Vec<u8>, CallError>,
    pub(crate) parts: ResponseParts,
    /// `None` when no instance was made (the function's slots were full).
    pub(crate) teardown: Option<Teardown>,
}

fn empty_state() -> Arc<State> {
    static EMPTY: OnceLock<Arc<State>> = OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(State::new())).clone()
}

impl App {
    /// Runs the pipeline `select` picks, as a trigger should: inline while
    /// its guests are quick, on the engine's slow lane once one runs long or
    /// grows large (see `atoll_engine::lanes`), so guests never hold up the
    /// thread that called this. The instances of a moved pipeline are torn
    /// down on the slow lane too; the returned `spent` is then empty.
    pub async fn run_in_lanes(
        self: &Arc<Self>,
        select: impl for<'a> FnOnce(&'a Manifest) -> &'a Pipeline + Send + 'static,
        trigger: Trigger,
    ) -> Outcome {
        let app = self.clone();
        let run = async move {
            let pipeline = select(&app.manifest);
            app.run(pipeline, &trigger).await
        };
        let lanes = self.engine.lanes();
        let (mut outcome, lane) = lanes.run(run).await;
        if lane == Lane::Slow {
            lanes.drop_on_slow_lane(std::mem::take(&mut outcome.spent));
        }
        outcome
    }

    pub async fn run(self: &Arc<Self>, pipeline: &Pipeline, trigger: &Trigger) -> Outcome {
        let mut response = ResponseParts::default();
        let mut spent = Spent::default();
        let mut state = if trigger.state.is_empty() {
            empty_state()
        } else {
            Arc::new(trigger.state.clone())
        };
        let mut last = Bytes::new();
        let steps = pipeline.steps.len();
        for (i, step) in pipeline.steps.iter().enumerate() {
            // The state after the final step is read only for `response`.
            let keep = pipeline.response.is_some() || i + 1 < steps;
            let calls: &[Call] = match step {
                Step::Call(call) => std::slice::from_ref(call),
                Step::Group(group) => &group.calls,
            };
            let done = match step {
                Step::Call(call) => {
                    vec![
                        self.invoke(call, &state, &trigger.request_id, &trigger.request, None)
                            .await,
                    ]
                }
                Step::Group(group) => {
                    let until = group.timeout.map(|t| Instant::now() + t);
                    self.run_group(calls, &state, trigger, until).await
                }
            };
            for (call, done) in calls.iter().zip(done) {
                match settle(call, done, &mut response, &mut spent) {
                    Ok(out) => {
                        if keep {
                            Arc::make_mut(&mut state).insert(call.key.clone(), out.clone());
                        }
                        last = out;
                    }
                    Err(failure) => {
                        return Outcome {
                            result: Err(failure),
                            response,
                            spent,
                        };
                    }
                }
            }
        }
        let body = match &pipeline.response {
            Some(key) => state.get(key).cloned().unwrap_or_default(),
            None => last,
        };
        Outcome {
            result: Ok(body),
            response,
            spent,
        }
    }

    /// Runs a group's calls at once, each on a task of its own so they can
    /// use every core; returns them in member order.
    async fn run_group(
        self: &Arc<Self>,
        calls: &[Call],
        state: &Arc<State>,
        trigger: &Trigger,
        until: Option<Instant>,
    ) -> Vec<Done> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, call) in calls.iter().enumerate() {
            let (app, call, state) = (self.clone(), call.clone(), state.clone());
            let (id, request) = (trigger.request_id.clone(), trigger.request.clone());
            tasks.spawn(async move { (i, app.invoke(&call, &state, &id, &request, until).await) });
        }
        let mut done: Vec<Option<Done>> = calls.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((i, d)) => done[i] = Some(d),
                // A panic here is a bug in Atoll, not in the guest: re-raise it.
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        done.into_iter().map(|d| d.expect("every member reports")).collect()
    }

    async fn invoke(
        self: &Arc<Self>,
        call: &Call,
        state: &Arc<State>,
        request_id: &Arc<str>,
        request: &Arc<RequestInfo>,
        until: Option<Instant>,
    ) -> Done {
        let f = self
            .functions
            .get(&call.function)
            .expect("pipelines name only declared functions; the manifest checked it");
        let aliases = (!call.with.is_empty()).then(|| Arc::new(call.with.clone()));
        let mut inv = Invocation::new(f.name.clone(), request_id.clone(), f.grants.clone(), request.clone())
            .with_state(StateView::new(state.clone(), aliases));
        if !f.grants.links.is_empty() {
            inv.linker = Some(self.clone());
        }
        let payload = match &call.input {
            Some(key) => state.get(key).cloned().unwrap_or_default(),
            None => request.body.clone(),
        };
        invoke_function(f, inv, &call.op, payload, until).await
    }

    /// Invokes one function outside any pipeline (`atoll call`, tests),
    /// with the trigger's state visible.
    pub async fn call(
        self: &Arc<Self>,
        function: &str,
        op: &str,
        payload: Bytes,
        trigger: &Trigger,
        response: &mut ResponseParts,
        spent: &mut Spent,
    ) -> Result<Bytes, StepFailure> {
        let call = Call {
            function: function.to_string(),
            op: op.to_string(),
            key: function.to_string(),
            with: Vec::new(),
            input: None,
            on_error: Default::default(),
            loc: Default::default(),
        };
        let request = Arc::new(RequestInfo {
            body: payload,
            ..(*trigger.request).clone()
        });
        let state = Arc::new(trigger.state.clone());
        let done = self.invoke(&call, &state, &trigger.request_id, &request, None).await;
        settle(&call, done, response, spent)
    }
}

/// Applies one call's outcome: its instance to `spent`, its status and
/// headers to `response` if it succeeded, and its failure to `on_error`.
fn settle(call: &Call, done: Done, response: &mut ResponseParts, spent: &mut Spent) -> Result<Bytes, StepFailure> {
    spent.0.extend(done.teardown);
    match done.result {
        Ok(out) => {
            if done.parts.status.is_some() {
                response.status = done.parts.status;
            }
            merge_headers(response, done.parts);
            Ok(Bytes::from(out))
        }
        Err(error) => {
            let failure = StepFailure {
                function: call.function.clone(),
                error,
                requested_status: done.parts.status,
            };
            match call.on_error.action(failure.status()) {
                ErrorAction::Return => Err(failure),
                ErrorAction::Continue => {
                    tracing::debug!(function = %call.function, status = failure.status(), error = %failure.message(), "step failed; continuing");
                    Ok(failure.to_json())
                }
            }
        }
    }
}

/// `set_header` semantics across steps: a later step's header replaces the
/// same name from earlier steps; several values within one step are kept.
fn merge_headers(into: &mut ResponseParts, from: ResponseParts) {
    let names: Vec<_> = from.headers.iter().map(|(n, _)| n.clone()).collect();
    into.headers.retain(|(n, _)| !names.contains(n));
    into.headers.extend(from.headers);
}

/// Runs `op` of one function in a fresh instance: the one place that knows
/// how to reach a function whatever its ABI, and so where its concurrency
/// slot is taken (`crate::slots`). A WAGI program or a wasi:http component
/// has no operations (the manifest refuses one on its steps): `op` is
/// unused.
pub(crate) async fn invoke_function(
    f: &LoadedFunction,
    inv: Invocation,
    op: &str,
    payload: Bytes,
    until: Option<Instant>,
) -> Done {
    let started = Instant::now();
    let mut inv = inv;
    let span = exported_span(&mut inv);
    let _slot = match f.slot(until).await {
        Ok(slot) => slot,
        Err(error) => {
            record(f, op, Some(&error), started, span.as_ref());
            return Done {
                result: Err(error),
                parts: ResponseParts::default(),
                teardown: None,
            };
        }
    };
    let in_use = atoll_metrics::instance_in_use();
    let done = run_guest(f, inv, op, payload, until).await;
    drop(in_use);
    record(f, op, done.result.as_ref().err(), started, span.as_ref());
    done
}

/// The invocation's span, if its trace is exported: its id is chosen
/// before the guest runs, as the parent of the client spans of its
/// outbound requests ([`Invocation::span`]). With export off, one check.
pub(crate) fn exported_span(inv: &mut Invocation) -> Option<ExportedSpan> {
    // Cloned only when exported: the invocation takes `inv`.
    let trace = inv.request.trace.clone().filter(|t| spans::wanted(Some(t)))?;
    let id = new_span_id();
    inv.span = Some(id);
    let parent = inv.parent_span.unwrap_or_else(|| trace.span_id());
    Some(ExportedSpan { trace, id, parent })
}

/// An invocation's span, to be recorded when it ends.
pub(crate) struct ExportedSpan {
    trace: TraceContext,
    id: u64,
    /// The request's span, or a linked call's caller's invocation.
    parent: u64,
}

/// One invocation in the metrics, and as a span of its trace if spans are
/// exported: its function, ABI, outcome and time.
pub(crate) fn record(
    f: &LoadedFunction,
    op: &str,
    error: Option<&CallError>,
    started: Instant,
    span: Option<&ExportedSpan>,
) {
    use atoll_engine::Failure;
    use atoll_metrics::InvocationOutcome as O;
    let outcome = match error {
        None => O::Ok,
        Some(CallError::Guest { .. }) => O::Error,
        Some(CallError::Failed { failure, .. }) => match failure {
            Failure::Timeout => O::Timeout,
            Failure::OutOfMemory { .. } => O::OutOfMemory,
            Failure::AtCapacity | Failure::Busy { .. } => O::NoCapacity,
            _ => O::Trap,
        },
    };
    let elapsed = started.elapsed();
    atoll_metrics::invocation(&f.app, &f.name, f.guest.abi().as_str(), outcome, elapsed);
    // Callers pass a span only when it is exported.
    if let Some(span) = span {
        spans::record(invocation_span(f, op, outcome, error, elapsed, span));
    }
}

/// An invocation as an internal span, the child of the request's (or the
/// run's) span: a pipeline's steps show as its children, in order, and a
/// linked call as the child of its caller's invocation.
fn invocation_span(
    f: &LoadedFunction,
    op: &str,
    outcome: atoll_metrics::InvocationOutcome,
    error: Option<&CallError>,
    elapsed: std::time::Duration,
    exported: &ExportedSpan,
) -> spans::Span {
    let name = format!("invoke {}", f.name);
    let mut span = Began::ago(elapsed).until_now(&exported.trace, exported.id, spans::SpanKind::Internal, name);
    span.parent = Some((exported.parent, false));
    span.attributes.push(("atoll.app", f.app.clone().into()));
    span.attributes.push(("atoll.function", f.name.clone().into()));
    span.attributes.push(("atoll.abi", f.guest.abi().as_str().into()));
    if !op.is_empty() {
        span.attributes.push(("atoll.op", op.to_string().into()));
    }
    span.attributes.push(("atoll.outcome", outcome.label().into()));
    span.error = error.map(|e| e.to_string());
    span
}

async fn run_guest(f: &LoadedFunction, inv: Invocation, op: &str, payload: Bytes, until: Option<Instant>) -> Done {
    match &f.guest {
        Guest::Wapc(wapc) => {
            let invoked = wapc.invoke_until(inv, op, payload, until).await;
            Done {
                result: invoked.result,
                parts: invoked.response,
                teardown: Some(Teardown::Wapc(invoked.teardown)),
            }
        }
        Guest::Wagi(wagi) => {
            let invoked = wagi.invoke(inv, payload, until).await;
            Done {
                result: invoked.result,
                parts: invoked.response,
                teardown: Some(Teardown::Wagi(invoked.teardown)),
            }
        }
        Guest::WasiHttp(component) => {
            let invoked = component.invoke(inv, payload, until).await;
            Done {
                result: invoked.result,
                parts: invoked.response,
                teardown: Some(Teardown::WasiHttp(invoked.teardown)),
            }
        }
    }
}

/// Linked calls (`links` in the manifest): the callee runs in a fresh
/// instance with its own grants and limits, within the caller's deadline,
/// and is torn down before its output goes back to the caller.
#[async_trait::async_trait]
impl LinkTarget for App {
    async fn run_linked(
        &self,
        function: &str,
        call: Arc<LinkCall>,
        from: &Invocation,
        payload: Bytes,
        until: Option<Instant>,
    ) -> Result<Vec<u8>, HostCallError> {
        let f = self
            .functions
            .get(function)
            .ok_or_else(|| HostCallError::Failed(format!("linked function \"{function}\" is not part of this app")))?;
        let op = call.operation.clone();
        let mut inv = Invocation::new(
            f.name.clone(),
            from.request_id.clone(),
            f.grants.clone(),
            from.request.clone(),
        );
        inv.link = Some(call);
        inv.parent_span = from.span;
        if !f.grants.links.is_empty() {
            inv.linker = from.linker.clone();
        }
        let done = invoke_function(f, inv, &op, payload, until).await;
        drop(done.teardown);
        done.result
            .map_err(|e| HostCallError::Failed(format!("linked function \"{function}\" failed: {e}")))
    }
}
