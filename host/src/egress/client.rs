//! The process-wide outbound HTTP client: pooled connections per upstream,
//! HTTPS with rustls and the webpki roots (plus the operator's extra CAs),
//! HTTP/2 where the upstream offers it, and a connector that resolves names
//! itself and connects only to an address the [`IpPolicy`] accepts.
//!
//! HTTP/2 is negotiated by ALPN, so only over HTTPS; plain `http://`
//! upstreams get HTTP/1.1. Over HTTP/2 all calls to one upstream share one
//! connection: no TCP and TLS handshake per concurrent call, and none of
//! hyper's per-connection buffers and tasks (in a 3,000-call burst over
//! HTTP/1.1 they held 56 MB of the host's 200 MB heap peak, heaptrack in
//! `docs/benchmarks.md`). Calls beyond the
//! upstream's concurrent-stream limit (commonly 100-250) wait for a stream
//! rather than open more connections.
//!
//! Checking at connect time (not before the request) is what closes DNS
//! rebinding: the address that was checked is the address connected to, and
//! a pooled connection keeps that address for its whole life.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::ip::{ForbiddenAddress, IpPolicy};
use crate::config::EgressSettings;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Every address of the host is refused by the IP policy.
    #[error("{host} resolves only to refused addresses: {first}")]
    Forbidden {
        /// The host name as requested.
        host: String,
        /// The first refused address and its range.
        first: ForbiddenAddress,
    },
    /// The name did not resolve.
    #[error("DNS lookup of {host} failed: {message}")]
    Dns {
        /// The host name.
        host: String,
        /// Resolver message.
        message: String,
    },
    /// No TCP connection within the connect timeout.
    #[error("connecting to {host} timed out")]
    Timeout {
        /// The host name.
        host: String,
    },
    /// The TCP connection failed (refused, unreachable, reset).
    #[error("connecting to {addr} failed: {source}")]
    Io {
        /// The address tried last.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The URI has no host.
    #[error("request URI has no host")]
    NoHost,
}

/// A `Service<Uri>` that resolves, checks and connects.
#[derive(Clone)]
pub struct CheckedConnector {
    policy: Arc<IpPolicy>,
    connect_timeout: Duration,
}

impl CheckedConnector {
    /// A connector enforcing `policy`.
    pub fn new(policy: Arc<IpPolicy>, connect_timeout: Duration) -> Self {
        Self {
            policy,
            connect_timeout,
        }
    }

    async fn connect(self, uri: Uri) -> Result<TokioIo<TcpStream>, ConnectError> {
        let host = uri.host().ok_or(ConnectError::NoHost)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let lookup = tokio::time::timeout_at(
                    deadline,
                    tokio::net::lookup_host((host.as_str(), port)),
                )
                .await
                .map(|r| r.map(|addrs| addrs.collect::<Vec<_>>()));
                match lookup {
                    Err(_) => return Err(ConnectError::Timeout { host }),
                    Ok(Err(e)) => {
                        return Err(ConnectError::Dns {
                            host,
                            message: e.to_string(),
                        });
                    }
                    Ok(Ok(addrs)) => addrs,
                }
            }
        };
        let mut first_refusal = None;
        let mut last_error = None;
        for addr in addrs {
            if let Err(refused) = self.policy.check(addr.ip()) {
                first_refusal.get_or_insert(refused);
                continue;
            }
            match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
                Err(_) => return Err(ConnectError::Timeout { host }),
                Ok(Ok(stream)) => {
                    // Small JSON requests: don't wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    return Ok(TokioIo::new(stream));
                }
                Ok(Err(source)) => last_error = Some(ConnectError::Io { addr, source }),
            }
        }
        Err(match (last_error, first_refusal) {
            (Some(e), _) => e,
            (None, Some(first)) => ConnectError::Forbidden { host, first },
            (None, None) => ConnectError::Dns {
                host,
                message: "no addresses".into(),
            },
        })
    }
}

impl tower_service::Service<Uri> for CheckedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

type Https = hyper_rustls::HttpsConnector<CheckedConnector>;

/// The shared, pooled client.
#[derive(Clone)]
pub struct OutboundClient {
    client: Client<Https, WasiBody>,
}

impl OutboundClient {
    /// Builds the client for these settings: `connect_timeout` bounds
    /// resolution + TCP connect, `extra_roots` join the webpki roots,
    /// `http2` offers HTTP/2 to HTTPS upstreams.
    pub fn new(policy: Arc<IpPolicy>, settings: &EgressSettings) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        roots.extend(settings.extra_roots.iter().cloned());
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = CheckedConnector::new(policy, settings.connect_timeout);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let https = if settings.http2 {
            builder.enable_all_versions().wrap_connector(connector)
        } else {
            builder.enable_http1().wrap_connector(connector)
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .build(https);
        Self { client }
    }

    /// Sends a request (absolute URI) and returns the response with its body
    /// mapped to wasi-http's error type.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
    ) -> Result<http::Response<WasiBody>, SendError> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(SendError::from_client)?;
        Ok(response.map(|body| body.map_err(HttpError::from).boxed_unsync()))
    }
}

/// A failed send: the wasi:http code for the guest, and a description for
/// the journal and the API.
#[derive(Debug)]
pub struct SendError {
    /// What the guest sees.
    pub code: HttpError,
    /// What operators see.
    pub detail: String,
    /// Whether the IP policy refused the destination.
    pub refused: bool,
    /// Whether no connection was established, so not a byte of the request
    /// reached the upstream (safe to send again, even a `POST`).
    pub connect_failed: bool,
}

impl SendError {
    fn from_client(e: hyper_util::client::legacy::Error) -> Self {
        let detail = match find::<ConnectError>(&e) {
            Some(c) => c.to_string(),
            None => format!("{e}: {}", find_root(&e)),
        };
        let connect = find::<ConnectError>(&e);
        let refused = matches!(connect, Some(ConnectError::Forbidden { .. }));
        Self {
            code: map_client_error(&e),
            detail,
            refused,
            connect_failed: connect.is_some(),
        }
    }

    /// Whether the TLS handshake refused the upstream's certificate.
    pub fn certificate_refused(&self) -> bool {
        matches!(self.code, HttpError::TlsCertificateError)
    }
}

/// Maps a client failure onto the wasi:http error code the guest will see.
fn map_client_error(e: &hyper_util::client::legacy::Error) -> HttpError {
    if let Some(connect) = find::<ConnectError>(e) {
        return match connect {
            ConnectError::Forbidden { .. } => HttpError::DestinationIpProhibited,
            ConnectError::Dns { .. } => HttpError::DnsError {
                rcode: Some("lookup failed".into()),
                info_code: None,
            },
            ConnectError::Timeout { .. } => HttpError::ConnectionTimeout,
            ConnectError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
                _ => HttpError::DestinationUnavailable,
            },
            ConnectError::NoHost => HttpError::HttpRequestUriInvalid,
        };
    }
    if let Some(h) = find::<hyper::Error>(e) {
        if h.is_incomplete_message() || h.is_closed() {
            return HttpError::ConnectionTerminated;
        }
        return HttpError::HttpProtocolError;
    }
    if matches!(
        find::<rustls::Error>(e),
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
    ) {
        return HttpError::TlsCertificateError;
    }
    if e.is_connect() {
        // Other TLS handshake failures end up here.
        return HttpError::TlsProtocolError;
    }
    HttpError::InternalError(Some(e.to_string()))
}

/// The first error of type `T` in the source chain. An `io::Error`'s
/// `source()` is the source of the error it wraps, skipping that error
/// itself, so the walk steps into the wrapped error instead (its sources
/// follow from there): rustls's error arrives inside tokio-rustls's
/// `io::Error`, which hyper-rustls wraps in another.
fn find<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        current = match err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(wrapped) => Some(wrapped),
            None => err.source(),
        };
    }
    None
}

/// The innermost error's message.
fn find_root(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
