//! `native-echo`: the native baseline of `scripts/bench-load`.
//!
//! It answers `POST /v1/instances/{id}/methods/echo` the way plugboard does
//! for its `echo` connector, minus everything that makes plugboard plugboard
//! (token check, instance lookup, schema validation, the sandbox): read the
//! body (capped like the host's `--max-request-kib` default), parse
//! `{"parameters": {"message": "…", "data": …}}`, and answer
//! `{"status":"SUCCESS","data":{…},"invocationId":"inv_…","durationMs":n}`
//! with the same keys, the same key order and the same kind of id. So the
//! ratio plugboard/native is what the host's own work costs on top of HTTP
//! and JSON.
//!
//! Usage: `native-echo [--listen 127.0.0.1:0]`; prints
//! `native-echo listening on http://ADDR` once it accepts connections.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Same cap as the host's default `--max-request-kib` (4 MiB).
const MAX_BODY: usize = 4 << 20;

/// The invocation request body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeRequest {
    parameters: EchoParams,
}

/// Parameters of `echo`, as the connector's schema has them.
#[derive(Deserialize)]
struct EchoParams {
    message: String,
    #[serde(default)]
    data: Value,
}

/// Result of `echo`; fields in the order plugboard prints them.
#[derive(Serialize)]
struct EchoResult {
    data: Value,
    message: String,
}

/// The success answer; fields in the order plugboard prints them.
#[derive(Serialize)]
struct InvokeResponse {
    data: EchoResult,
    #[serde(rename = "durationMs")]
    duration_ms: f64,
    #[serde(rename = "invocationId")]
    invocation_id: String,
    status: &'static str,
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "status": "ERROR",
        "error": {"code": code, "message": message},
    });
    json_response(status, body.to_string().into_bytes())
}

/// Whether `path` is `/v1/instances/{id}/methods/echo` with a non-empty id.
fn is_echo_path(path: &str) -> bool {
    path.strip_prefix("/v1/instances/")
        .and_then(|rest| rest.strip_suffix("/methods/echo"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/healthz" {
        return Ok(json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec()));
    }
    if !is_echo_path(request.uri().path()) {
        return Ok(error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route"));
    }
    if request.method() != Method::POST {
        return Ok(error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "POST only"));
    }
    let started = Instant::now();
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "body too large"));
        }
    };
    let parsed: InvokeRequest = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", &e.to_string())),
    };
    let answer = InvokeResponse {
        data: EchoResult {
            data: parsed.parameters.data,
            message: parsed.parameters.message,
        },
        // Plugboard reports milliseconds with microsecond resolution.
        duration_ms: (started.elapsed().as_micros() as f64) / 1000.0,
        invocation_id: format!("inv_{}", uuid::Uuid::new_v4().simple()),
        status: "SUCCESS",
    };
    match serde_json::to_vec(&answer) {
        Ok(bytes) => Ok(json_response(StatusCode::OK, bytes)),
        Err(e) => Ok(error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", &e.to_string())),
    }
}

fn listen_arg() -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "-h" | "--help" => {
                println!("usage: native-echo [--listen 127.0.0.1:0]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    listen
        .parse()
        .map_err(|e| format!("bad --listen {listen:?}: {e}"))
}

#[tokio::main]
async fn main() {
    let addr = match listen_arg() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("native-echo: {e}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("native-echo: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let bound = listener.local_addr().expect("a bound listener has an address");
    println!("native-echo listening on http://{bound}");
    // The bench script waits for this line; make sure it leaves the pipe.
    let _ = std::io::stdout().flush();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of fds and the like: say so and keep serving.
                eprintln!("native-echo: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // No TCP_NODELAY: plugboard's `axum::serve` leaves it off too, and
        // both write a whole response at once.
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
