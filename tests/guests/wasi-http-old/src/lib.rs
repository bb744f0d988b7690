//! The smallest wasi:http component, against WASI 0.2.0's interfaces: it
//! answers with the request's path. Atoll provides 0.2.12 of each
//! interface; a 0.2.0 component must load and run unchanged.

use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasi::http::proxy::export!(Component);

struct Component;

impl wasi::exports::http::incoming_handler::Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let text = format!(
            "hello from wasi:http 0.2.0 at {}",
            request.path_with_query().unwrap_or_default()
        );
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().unwrap();
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().unwrap();
        stream.blocking_write_and_flush(text.as_bytes()).unwrap();
        drop(stream);
        OutgoingBody::finish(body, None).unwrap();
    }
}
