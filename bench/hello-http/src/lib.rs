//! `hello-http`: the guest `scripts/bench-load` runs under `wasmtime serve`.
//!
//! Every request is answered `200` with a fixed small JSON body shaped like
//! a plugboard echo answer. The request body is read to its end first, as a
//! real handler would, so the host does the same I/O as for plugboard.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(Hello);

/// The fixed answer.
const BODY: &[u8] = br#"{"data":{"data":null,"message":"hello"},"durationMs":0.01,"invocationId":"inv_00000000000000000000000000000000","status":"SUCCESS"}"#;

struct Hello;

/// Reads and discards the request body; errors only end the read early.
fn drain(request: IncomingRequest) {
    let Ok(body) = request.consume() else { return };
    if let Ok(stream) = body.stream() {
        // `blocking_read` returns `Err(closed)` at the end of the body.
        while stream.blocking_read(64 << 10).is_ok() {}
    }
}

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        drain(request);
        let headers = Fields::new();
        // `append` only fails for forbidden or invalid names; these are neither.
        let _ = headers.append("content-type", b"application/json");
        let _ = headers.append("content-length", BODY.len().to_string().as_bytes());
        let response = OutgoingResponse::new(headers);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(response_out, Ok(response));
        if let Ok(out) = body.write() {
            // 128 bytes fit in one write; the stream is freshly opened.
            let _ = out.blocking_write_and_flush(BODY);
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
