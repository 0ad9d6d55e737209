//! `loadgen`: the measuring tools behind `scripts/bench-scale` (things `wrk`
//! cannot do).
//!
//! - `slow-upstream [--listen 127.0.0.1:0] [--delay-ms 1000]
//!   [--tls-listen 127.0.0.1:0 --cert-out FILE]`: a loopback
//!   HTTP server that answers every request `200 {"ok":true}` after the
//!   delay; `GET /__stats` answers at once with the number of requests served,
//!   the most that were in flight together and the wall-clock times of the
//!   first and last request and the last answer since `GET /__stats/reset`.
//!   With `--tls-listen` it also serves HTTPS there, HTTP/2 and HTTP/1.1 by
//!   ALPN like a platform's API, with a fresh self-signed certificate for
//!   127.0.0.1 written to `--cert-out` (PEM, for the host's
//!   `--egress-ca-file`); both listeners share the counters. Its HTTP/2
//!   allows 100,000 concurrent streams per connection, so a burst is not
//!   queued behind a stream limit (platforms allow about 100-250).
//! - `burst --url URL --body JSON [--token-file F] [--calls 10000] [--http2 STREAMS]
//!   [--connect-parallel 200] [--settle-ms 500] [--timeout-s 30]
//!   [--watch-pid PID [--rss-abort-mib N]] [--upstream URL]`: opens the keep-alive connections first (not
//!   timed: a client pool): one HTTP/1.1 connection per call, or with
//!   `--http2` one HTTP/2 connection (prior knowledge) per STREAMS calls.
//!   Then it sends all the calls (`POST`) at once and times them all: wall time from the first send to the last answer, latency
//!   percentiles, statuses, and the peak RSS of `--watch-pid`. With
//!   `--rss-abort-mib`, the watched process is killed (SIGKILL) as soon as
//!   its RSS passes N MiB: a guard for a shared machine, reported as a
//!   failure. It also reports the CPU time the watched process, each
//!   `--cpu-pid LABEL=PID` and itself used during the timed phase, when
//!   10/50/90 % of the calls had answered, and, with `--upstream` (a
//!   `slow-upstream`), when the first and last request reached it and when
//!   it sent its last answer: whether calls wait in front of the upstream
//!   or behind it.
//! - `restart --token-file F --call 'LABEL PATH BODY' [--call …] [--repeat 5]
//!   -- CMD ARGS…`: starts the host command, waits for its `listening on
//!   http://…` line, then invokes each call in order (a `POST` of BODY to
//!   PATH), timing each from the spawn; reads `/healthz` for the compiled and
//!   deserialized counts; stops the host with SIGTERM. Repeats.
//!
//! Each command prints human-readable lines and ends with `RESULT k=v …`
//! lines the scripts parse. Any failure exits non-zero with a message.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1 as client_http1;
use hyper::client::conn::http2 as client_http2;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::server::conn::http1 as server_http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

type Error = String;

// ---------------------------------------------------------------- arguments

/// `--name value` flags (repeatable) and the words after `--`.
struct Args {
    flags: Vec<(String, String)>,
    rest: Vec<String>,
}

impl Args {
    fn parse(words: &[String], known: &[&str]) -> Result<Self, Error> {
        let mut flags = Vec::new();
        let mut iter = words.iter();
        let mut rest = Vec::new();
        while let Some(word) = iter.next() {
            if word == "--" {
                rest = iter.cloned().collect();
                break;
            }
            let Some(name) = word.strip_prefix("--") else {
                return Err(format!("unexpected argument {word:?}"));
            };
            if !known.contains(&name) {
                return Err(format!("unknown flag --{name} (known: --{})", known.join(", --")));
            }
            let value = iter.next().ok_or_else(|| format!("--{name} needs a value"))?;
            flags.push((name.to_owned(), value.clone()));
        }
        Ok(Self { flags, rest })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn required(&self, name: &str) -> Result<&str, Error> {
        self.get(name).ok_or_else(|| format!("--{name} is required"))
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| format!("--{name} {v:?}: {e}")),
        }
    }
}

fn read_token(args: &Args) -> Result<Option<String>, Error> {
    args.get("token-file")
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|t| t.trim().to_owned())
                .map_err(|e| format!("cannot read the token file {path}: {e}"))
        })
        .transpose()
}

/// `host:port` and path-and-query of an `http://` URL.
fn split_url(url: &str) -> Result<(String, String), Error> {
    let uri: Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("only http:// URLs are supported, got {url:?}"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("URL {url:?} has no host"))?
        .to_string();
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    Ok((authority, path))
}

// ------------------------------------------------------------ HTTP client

/// A connection's request handle: HTTP/1.1 (one request at a time) or
/// HTTP/2 with prior knowledge (many streams; the handle is cloned per
/// request).
enum Sender {
    Http1(client_http1::SendRequest<Full<Bytes>>),
    Http2(client_http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    /// Another handle on the same HTTP/2 connection (HTTP/1.1 handles are
    /// not shared).
    fn share(&self) -> Option<Self> {
        match self {
            Self::Http1(_) => None,
            Self::Http2(sender) => Some(Self::Http2(sender.clone())),
        }
    }
}

/// One keep-alive connection, HTTP/1.1 or HTTP/2 with prior knowledge (no
/// TLS); its driver runs on a task.
async fn connect(authority: &str, http2: bool) -> Result<Sender, Error> {
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect to {authority}: {e}"))?;
    let stream = TokioIo::new(stream);
    let handshake = |e: hyper::Error| format!("HTTP handshake with {authority}: {e}");
    if http2 {
        let (sender, connection) = client_http2::Builder::new(TokioExecutor::new())
            .handshake(stream)
            .await
            .map_err(handshake)?;
        tokio::spawn(connection);
        Ok(Sender::Http2(sender))
    } else {
        let (sender, connection) = client_http1::handshake(stream).await.map_err(handshake)?;
        tokio::spawn(connection);
        Ok(Sender::Http1(sender))
    }
}

/// A `POST` of `body` to `path`, for `sender`'s protocol: HTTP/1.1 names the
/// authority in a Host header, HTTP/2 in the URI (`:authority`).
fn post(sender: &Sender, authority: &str, path: &str, token: Option<&str>, body: &str) -> Result<Request<Full<Bytes>>, Error> {
    let mut request = Request::builder().method(Method::POST).header(CONTENT_TYPE, "application/json");
    request = match sender {
        Sender::Http1(_) => request.uri(path).header(HOST, authority),
        Sender::Http2(_) => request.uri(format!("http://{authority}{path}")),
    };
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    request
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| format!("building the request: {e}"))
}

/// Sends `request` and reads the whole answer.
async fn exchange(sender: &mut Sender, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), Error> {
    let closed = |e: hyper::Error| format!("connection closed before sending: {e}");
    let response = match sender {
        Sender::Http1(sender) => {
            sender.ready().await.map_err(closed)?;
            sender.send_request(request).await
        }
        Sender::Http2(sender) => {
            sender.ready().await.map_err(closed)?;
            sender.send_request(request).await
        }
    }
    .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// The `error.code` of a plugboard error answer, else the start of the body.
fn error_label(status: StatusCode, body: &[u8]) -> String {
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/code").and_then(|c| c.as_str()).map(str::to_owned));
    match code {
        Some(code) => format!("{} {code}", status.as_u16()),
        None => format!(
            "{} {}",
            status.as_u16(),
            String::from_utf8_lossy(&body[..body.len().min(120)])
        ),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------- slow upstream

struct UpstreamStats {
    served: AtomicU64,
    in_flight: AtomicI64,
    max_in_flight: AtomicI64,
    /// Wall-clock milliseconds (Unix epoch) of the first and last request
    /// to arrive and the last answer handed to hyper since the last
    /// `/__stats/reset`: where a burst's calls spend their time is then
    /// visible from outside the host (before the upstream, in it, after it).
    first_arrival: AtomicU64,
    last_arrival: AtomicU64,
    last_answer: AtomicU64,
}

impl Default for UpstreamStats {
    fn default() -> Self {
        Self {
            served: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            max_in_flight: AtomicI64::new(0),
            first_arrival: AtomicU64::new(u64::MAX),
            last_arrival: AtomicU64::new(0),
            last_answer: AtomicU64::new(0),
        }
    }
}

/// Milliseconds since the Unix epoch: comparable between this process's
/// commands, unlike `Instant`.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn json_response(body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A loopback listener with a deep accept queue: thousands of connections
/// arrive within milliseconds, and a dropped SYN costs a 1 s retransmit (the
/// kernel caps the queue at net.core.somaxconn).
fn bind_deep(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket.set_reuseaddr(true).map_err(|e| format!("SO_REUSEADDR: {e}"))?;
    socket.bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    socket.listen(65_535).map_err(|e| format!("listen: {e}"))
}

/// The next connection; an accept error (out of file descriptors) is
/// reported and retried after 10 ms.
async fn accept(listener: &tokio::net::TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(e) => {
                eprintln!("slow-upstream: accept failed: {e} (raise `ulimit -n`?)");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn slow_upstream(args: &Args) -> Result<(), Error> {
    let listen: SocketAddr = args
        .get("listen")
        .unwrap_or("127.0.0.1:0")
        .parse()
        .map_err(|e| format!("--listen: {e}"))?;
    let delay = Duration::from_millis(args.number("delay-ms", 1000u64)?);
    let listener = bind_deep(listen)?;
    let bound = listener.local_addr().map_err(|e| format!("local_addr: {e}"))?;
    let stats = Arc::new(UpstreamStats::default());
    if let Some(tls_listen) = args.get("tls-listen") {
        let cert_out = args.required("cert-out")?;
        let tls_listen: SocketAddr = tls_listen.parse().map_err(|e| format!("--tls-listen: {e}"))?;
        let (acceptor, pem) = tls_acceptor()?;
        std::fs::write(cert_out, pem).map_err(|e| format!("writing {cert_out}: {e}"))?;
        let tls_listener = bind_deep(tls_listen)?;
        let tls_bound = tls_listener.local_addr().map_err(|e| format!("local_addr: {e}"))?;
        println!("slow-upstream listening on https://{tls_bound} (HTTP/2 and HTTP/1.1, certificate in {cert_out})");
        tokio::spawn(serve_tls(tls_listener, acceptor, stats.clone(), delay));
    }
    println!("slow-upstream listening on http://{bound} (delay {} ms)", delay.as_millis());
    loop {
        let stream = accept(&listener).await;
        let service = upstream_service(stats.clone(), delay);
        tokio::spawn(async move {
            let _ = server_http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The slow upstream's answers: the stats endpoints at once, anything else
/// `200 {"ok":true}` after `delay`.
fn upstream_service(
    stats: Arc<UpstreamStats>,
    delay: Duration,
) -> impl hyper::service::Service<Request<hyper::body::Incoming>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone + Send + 'static {
    service_fn(move |request: Request<hyper::body::Incoming>| {
        let stats = stats.clone();
        async move {
            if request.uri().path() == "/__stats/reset" {
                stats.first_arrival.store(u64::MAX, Ordering::Relaxed);
                stats.last_arrival.store(0, Ordering::Relaxed);
                stats.last_answer.store(0, Ordering::Relaxed);
                return Ok::<_, Infallible>(json_response("{}".to_owned()));
            }
            if request.uri().path() == "/__stats" {
                let body = format!(
                    r#"{{"served":{},"inFlight":{},"maxInFlight":{},"firstArrivalUnixMs":{},"lastArrivalUnixMs":{},"lastAnswerUnixMs":{}}}"#,
                    stats.served.load(Ordering::Relaxed),
                    stats.in_flight.load(Ordering::Relaxed),
                    stats.max_in_flight.load(Ordering::Relaxed),
                    stats.first_arrival.load(Ordering::Relaxed),
                    stats.last_arrival.load(Ordering::Relaxed),
                    stats.last_answer.load(Ordering::Relaxed),
                );
                return Ok::<_, Infallible>(json_response(body));
            }
            let arrived = unix_ms();
            stats.first_arrival.fetch_min(arrived, Ordering::Relaxed);
            stats.last_arrival.fetch_max(arrived, Ordering::Relaxed);
            let now = stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            stats.max_in_flight.fetch_max(now, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            stats.served.fetch_add(1, Ordering::Relaxed);
            stats.last_answer.fetch_max(unix_ms(), Ordering::Relaxed);
            Ok(json_response(r#"{"ok":true}"#.to_owned()))
        }
    })
}

/// A TLS acceptor with a fresh self-signed certificate for 127.0.0.1 that
/// offers HTTP/2 and HTTP/1.1; and the certificate as PEM.
fn tls_acceptor() -> Result<(tokio_rustls::TlsAcceptor, String), Error> {
    use tokio_rustls::rustls;
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).map_err(|e| format!("certificate: {e}"))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(|e| format!("TLS config: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(config)), certified.cert.pem()))
}

/// Serves the slow upstream over TLS: HTTP/2 or HTTP/1.1, as the client's
/// ALPN asks.
async fn serve_tls(listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor, stats: Arc<UpstreamStats>, delay: Duration) {
    loop {
        let stream = accept(&listener).await;
        let (acceptor, service) = (acceptor.clone(), upstream_service(stats.clone(), delay));
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(e) => {
                    eprintln!("slow-upstream (TLS): handshake failed: {e}");
                    return;
                }
            };
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(100_000);
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

// ------------------------------------------------------------------ burst

/// `VmHWM` and `VmRSS` of a process, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// CPU time (user + system) a process has used so far, from
/// `/proc/PID/stat` (clock ticks of 10 ms on Linux).
fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may itself hold spaces; utime and
    // stime are fields 14 and 15 of the whole line.
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10)
}

struct Outcome {
    sent: Duration,
    done: Duration,
    result: Result<StatusCode, String>,
}

async fn burst(args: &Args) -> Result<(), Error> {
    let (authority, path) = split_url(args.required("url")?)?;
    let body: Arc<str> = Arc::from(args.required("body")?);
    let token: Option<Arc<str>> = read_token(args)?.map(Arc::from);
    let calls: usize = args.number("calls", 10_000usize)?;
    // With `--http2 STREAMS`, calls share HTTP/2 connections, STREAMS each
    // (the host allows 200 concurrent streams per connection).
    let http2: Option<usize> = args.get("http2").map(str::parse).transpose().map_err(|e| format!("--http2: {e}"))?;
    if http2 == Some(0) {
        return Err("--http2 must be positive".into());
    }
    let connections = http2.map_or(calls, |streams| calls.div_ceil(streams));
    let parallel: usize = args.number("connect-parallel", 200usize)?;
    let settle = Duration::from_millis(args.number("settle-ms", 500u64)?);
    let timeout = Duration::from_secs(args.number("timeout-s", 30u64)?);
    let watch: Option<u32> = args.get("watch-pid").map(str::parse).transpose().map_err(|e| format!("--watch-pid: {e}"))?;
    // The slow upstream's address, for its timeline of this burst.
    let upstream: Option<String> = args.get("upstream").map(|url| split_url(url).map(|(authority, _)| authority)).transpose()?;
    let rss_abort_kib: Option<u64> = args
        .get("rss-abort-mib")
        .map(str::parse::<u64>)
        .transpose()
        .map_err(|e| format!("--rss-abort-mib: {e}"))?
        .map(|mib| mib * 1024);
    if calls == 0 || parallel == 0 {
        return Err("--calls and --connect-parallel must be positive".into());
    }

    // Phase 1, not timed: the client's connection pool.
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(parallel));
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let gate = gate.clone();
        let authority = authority.clone();
        connecting.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            connect(&authority, http2.is_some()).await
        });
    }
    let mut senders = Vec::with_capacity(connections);
    let mut failures = 0usize;
    let mut first_failure = None;
    while let Some(joined) = connecting.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(sender) => senders.push(sender),
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_failure {
        return Err(format!(
            "{failures} of {connections} connections failed, first: {e} \
             (too many open files? this process and the host need `ulimit -n` above {connections})"
        ));
    }
    let protocol = if http2.is_some() { "HTTP/2" } else { "HTTP/1.1" };
    println!("opened {connections} {protocol} connections in {} ms", ms(started.elapsed()));
    // Let the server accept the tail of the queue before the clock starts.
    tokio::time::sleep(settle).await;

    let stop = Arc::new(AtomicBool::new(false));
    let aborted = Arc::new(AtomicBool::new(false));
    let sampler = watch.map(|pid| {
        let (stop, aborted) = (stop.clone(), aborted.clone());
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Some((_, rss)) = memory_kib(pid) {
                    peak = peak.max(rss);
                    if rss_abort_kib.is_some_and(|cap| rss > cap) && !aborted.swap(true, Ordering::Relaxed) {
                        eprintln!("loadgen burst: process {pid} passed {} MiB RSS: killing it", rss / 1024);
                        let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    });
    let rss_before = watch.and_then(memory_kib);
    // Who spent the two cores during the timed phase: the host, the
    // `--cpu-pid` processes (the upstream) and this load generator.
    let mut cpu_pids: Vec<(String, u32)> = watch.map(|pid| ("host".to_owned(), pid)).into_iter().collect();
    for spec in args.all("cpu-pid") {
        let (label, pid) = spec.split_once('=').ok_or_else(|| format!("--cpu-pid wants LABEL=PID, got {spec:?}"))?;
        cpu_pids.push((label.to_owned(), pid.parse().map_err(|e| format!("--cpu-pid {spec}: {e}"))?));
    }
    cpu_pids.push(("loadgen".to_owned(), std::process::id()));
    let cpu_before: Vec<Option<u64>> = cpu_pids.iter().map(|(_, pid)| cpu_ms(*pid)).collect();

    // One sender per call: each HTTP/1.1 connection carries one call; an
    // HTTP/2 connection's handle is shared by its streams.
    let per_call: Vec<Sender> = match http2 {
        None => senders,
        Some(_) => (0..calls)
            .map(|i| senders[i % senders.len()].share())
            .collect::<Option<_>>()
            .ok_or("an HTTP/1.1 connection cannot carry several calls")?,
    };

    if let Some(upstream) = &upstream {
        get_json(upstream, "/__stats/reset").await?;
    }

    // Phase 2, timed: all calls at once.
    let start_unix_ms = unix_ms();
    let start = Instant::now();
    let mut firing = tokio::task::JoinSet::new();
    for mut sender in per_call {
        let (authority, path, body, token) = (authority.clone(), path.clone(), body.clone(), token.clone());
        firing.spawn(async move {
            let sent = start.elapsed();
            let result = match post(&sender, &authority, &path, token.as_deref(), &body) {
                Err(e) => Err(e),
                Ok(request) => match tokio::time::timeout(timeout, exchange(&mut sender, request)).await {
                    Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
                    Ok(Err(e)) => Err(e),
                    Ok(Ok((status, _))) if status == StatusCode::OK => Ok(status),
                    Ok(Ok((status, answer))) => Err(error_label(status, &answer)),
                },
            };
            Outcome { sent, done: start.elapsed(), result }
        });
    }
    let mut outcomes = Vec::with_capacity(calls);
    while let Some(joined) = firing.join_next().await {
        outcomes.push(joined.map_err(|e| format!("a request task failed: {e}"))?);
    }
    let wall = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak_sampled = match sampler {
        Some(task) => Some(task.await.map_err(|e| e.to_string())?),
        None => None,
    };
    let memory_after = watch.and_then(memory_kib);
    let cpu_used: Vec<String> = cpu_pids
        .iter()
        .zip(&cpu_before)
        .filter_map(|((label, pid), before)| Some(format!("cpu_{label}_ms={}", cpu_ms(*pid)?.saturating_sub((*before)?))))
        .collect();
    let aborted = aborted.load(Ordering::Relaxed);

    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.done.saturating_sub(o.sent)).collect();
    latencies.sort_unstable();
    let last_send = outcomes.iter().map(|o| o.sent).max().unwrap_or_default();
    let ok = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for outcome in &outcomes {
        if let Err(e) = &outcome.result {
            *errors.entry(e.clone()).or_default() += 1;
        }
    }
    println!(
        "{ok}/{calls} succeeded; all answered {} ms after the first send (last send at {} ms); \
         latency p50 {} ms, p99 {} ms, max {} ms",
        ms(wall),
        ms(last_send),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&latencies, 100.0)),
    );
    for (error, count) in &errors {
        println!("  {count} × {error}");
    }
    let mut answered: Vec<Duration> = outcomes.iter().map(|o| o.done).collect();
    answered.sort_unstable();
    println!(
        "answered by: 10% {} ms, 50% {} ms, 90% {} ms",
        ms(percentile(&answered, 10.0)),
        ms(percentile(&answered, 50.0)),
        ms(percentile(&answered, 90.0)),
    );
    if let Some(upstream) = &upstream {
        let stats = get_json(upstream, "/__stats").await?;
        let at = |field: &str| {
            stats[field]
                .as_u64()
                .filter(|&t| t != 0 && t != u64::MAX)
                .map_or("-".to_owned(), |t| format!("{}", i128::from(t) - i128::from(start_unix_ms)))
        };
        println!(
            "upstream (ms after the first send, wall clock): first request at {}, last request at {}, last answer at {}; at most {} held at once",
            at("firstArrivalUnixMs"),
            at("lastArrivalUnixMs"),
            at("lastAnswerUnixMs"),
            stats["maxInFlight"]
        );
    }
    if aborted {
        println!(
            "ABORTED: the host passed --rss-abort-mib {} MiB and was killed; the answers above are not a measurement",
            rss_abort_kib.unwrap_or(0) / 1024
        );
    }
    let (hwm, rss_after) = memory_after.unwrap_or((0, 0));
    if watch.is_some() {
        println!(
            "host memory: VmHWM {} MiB, VmRSS before {} MiB, sampled peak {} MiB, after {} MiB",
            hwm / 1024,
            rss_before.map_or(0, |m| m.1) / 1024,
            peak_sampled.unwrap_or(0) / 1024,
            rss_after / 1024
        );
    }
    println!("CPU during the timed phase (ms): {}", cpu_used.join(" "));
    println!(
        "RESULT {} calls={calls} connections={connections} ok={ok} failed={} wall_ms={} last_send_ms={} p50_ms={} p99_ms={} max_ms={} vmhwm_kib={hwm} rss_peak_sampled_kib={} aborted={aborted}",
        cpu_used.join(" "),
        calls - ok,
        ms(wall),
        ms(last_send),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&latencies, 100.0)),
        peak_sampled.unwrap_or(0),
    );
    Ok(())
}

// ---------------------------------------------------------------- restart

struct Call {
    label: String,
    path: String,
    body: String,
}

fn parse_call(spec: &str) -> Result<Call, Error> {
    let mut parts = spec.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(label), Some(path), Some(body)) if !label.is_empty() && path.starts_with('/') => Ok(Call {
            label: label.to_owned(),
            path: path.to_owned(),
            body: body.to_owned(),
        }),
        _ => Err(format!("--call {spec:?}: expected 'LABEL /path JSON-BODY'")),
    }
}

/// Sends SIGTERM and waits up to 10 s, then kills.
async fn stop_child(child: &mut tokio::process::Child) -> Result<(), Error> {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(status) => {
            status.map_err(|e| format!("waiting for the host: {e}"))?;
            Ok(())
        }
        Err(_) => {
            let _ = child.kill().await;
            Err("the host did not stop within 10 s of SIGTERM; killed it".into())
        }
    }
}

/// `GET path` on `authority` over a fresh HTTP/1.1 connection, as JSON.
async fn get_json(authority: &str, path: &str) -> Result<serde_json::Value, Error> {
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect to {authority}: {e}"))?;
    let (mut sender, connection) = client_http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::get(path)
        .header(HOST, authority)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("{path}: {e}"))?;
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("{path} is not JSON: {e}"))
}

async fn restart(args: &Args) -> Result<(), Error> {
    let token = read_token(args)?.ok_or("--token-file is required")?;
    let calls = args
        .all("call")
        .into_iter()
        .map(parse_call)
        .collect::<Result<Vec<_>, _>>()?;
    if calls.is_empty() {
        return Err("give at least one --call".into());
    }
    let repeat: usize = args.number("repeat", 5usize)?;
    let deadline = Duration::from_secs(args.number("deadline-s", 30u64)?);
    let (program, program_args) = args
        .rest
        .split_first()
        .ok_or("give the host command after `--`")?;

    for round in 1..=repeat {
        let spawned = Instant::now();
        let mut child = tokio::process::Command::new(program)
            .args(program_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let authority = loop {
            let line = tokio::time::timeout_at((spawned + deadline).into(), lines.next_line())
                .await
                .map_err(|_| format!("the host printed no `listening on` line within {} s", deadline.as_secs()))?
                .map_err(|e| format!("reading the host's stdout: {e}"))?
                .ok_or("the host exited before listening (its log is above)")?;
            if let Some(url) = line.split("listening on ").nth(1) {
                break split_url(url.trim())?.0;
            }
        };
        let listening = spawned.elapsed();
        // Keep draining stdout so the host never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let mut timings = vec![("listening".to_owned(), listening)];
        for call in &calls {
            let (status, answer) = loop {
                let attempt = async {
                    let mut sender = connect(&authority, false).await?;
                    let request = post(&sender, &authority, &call.path, Some(&token), &call.body)?;
                    exchange(&mut sender, request).await
                };
                match attempt.await {
                    Ok(answer) => break answer,
                    // The listener is bound before the line is printed, so a
                    // refused connection would be a host bug; retry briefly to
                    // report it as a timing rather than a crash.
                    Err(e) if spawned.elapsed() < deadline => {
                        eprintln!("restart {round}: {}: {e}; retrying", call.label);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(e) => return Err(format!("{}: {e}", call.label)),
                }
            };
            if status != StatusCode::OK {
                let _ = stop_child(&mut child).await;
                return Err(format!(
                    "restart {round}: {} answered {} ({}): {}",
                    call.label,
                    status,
                    error_label(status, &answer),
                    String::from_utf8_lossy(&answer[..answer.len().min(300)])
                ));
            }
            timings.push((call.label.clone(), spawned.elapsed()));
        }
        let health = get_json(&authority, "/healthz").await?;
        let runtime = health.get("runtime").cloned().unwrap_or_default();
        let count = |k: &str| runtime.get(k).and_then(|v| v.as_u64()).unwrap_or(u64::MAX);
        let memory = child.id().and_then(memory_kib).map_or(0, |m| m.1);
        stop_child(&mut child).await?;

        let mut line = format!("RESULT round={round}");
        for (label, at) in &timings {
            line.push_str(&format!(" {label}_ms={}", ms(*at)));
        }
        line.push_str(&format!(
            " compiled={} deserialized={} artifact_rejected={} rss_kib={memory}",
            count("compiled"),
            count("deserialized"),
            count("artifactRejected")
        ));
        println!(
            "restart {round}: {}; compiled {} deserialized {}",
            timings
                .iter()
                .map(|(l, at)| format!("{l} at {} ms", ms(*at)))
                .collect::<Vec<_>>()
                .join(", "),
            count("compiled"),
            count("deserialized")
        );
        println!("{line}");
    }
    Ok(())
}

// ------------------------------------------------------------------- main

/// Resolves on SIGINT or SIGTERM, naming the signal.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        // Without handlers the default action (exit) applies; never resolve.
        _ => std::future::pending().await,
    }
}

const USAGE: &str = "usage: loadgen slow-upstream|burst|restart [flags] (see the doc comment in bench/loadgen/src/main.rs)";

fn main() -> ExitCode {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = words.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let known: &[&str] = match command.as_str() {
        "slow-upstream" => &["listen", "delay-ms", "tls-listen", "cert-out"],
        "burst" => &[
            "url",
            "body",
            "token-file",
            "calls",
            "http2",
            "cpu-pid",
            "connect-parallel",
            "settle-ms",
            "timeout-s",
            "watch-pid",
            "rss-abort-mib",
            "upstream",
        ],
        "restart" => &["token-file", "call", "repeat", "deadline-s"],
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let args = match Args::parse(rest, known) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("loadgen {command}: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let work = async {
            match command.as_str() {
                "slow-upstream" => slow_upstream(&args).await,
                "burst" => burst(&args).await,
                _ => restart(&args).await,
            }
        };
        // On SIGINT/SIGTERM, return instead of dying in place: dropping the
        // work drops a host `restart` started, which kills it
        // (`kill_on_drop`), so no host outlives an interrupted script.
        tokio::select! {
            result = work => result,
            signal = interrupted() => Err(format!("interrupted by {signal}")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
