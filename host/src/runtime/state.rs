//! Everything one guest store holds: the (empty) WASI context, the HTTP
//! context and egress hooks, the memory limiter, captured stderr, and the
//! invocation's identity for logs. Also the `host` import implementation.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{HmacAlgorithm, LogField, LogLevel, host_api};
use crate::egress::EgressHooks;

/// Longest log message a guest may write; the rest is cut off so a guest
/// cannot flood the host's log.
const MAX_LOG_MESSAGE: usize = 4096;
/// How much of a guest's stderr is kept (the tail, where panic messages are).
const STDERR_TAIL: usize = 4096;

/// Who is running, for log lines and host imports.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Connector id (`name@version`).
    pub connector: Arc<str>,
    /// Instance id, if the call is for an instance (not `describe`).
    pub instance: Option<Arc<str>>,
    /// Instance config (JSON object).
    pub config: Arc<serde_json::Value>,
    /// Id of this call, echoed in API answers and log lines.
    pub id: Arc<str>,
}

/// The `T` of every guest `Store<T>`.
pub struct GuestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(super) hooks: EgressHooks,
    pub(super) limiter: MemoryLimiter,
    pub(super) stderr: GuestOutput,
    pub(super) invocation: Invocation,
    pub(super) deadline: Instant,
}

impl GuestState {
    /// A state granting nothing but what the arguments say.
    pub fn new(
        invocation: Invocation,
        hooks: EgressHooks,
        memory_cap: u64,
        deadline: Instant,
    ) -> Self {
        let stderr = GuestOutput::default();
        // No args, no env, no preopens, no sockets, no name lookups: WASI
        // imports that toolchains pull in link but grant nothing. stdout is
        // discarded; stderr is kept (tail only) for trap messages.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stderr(stderr.clone())
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks,
            limiter: MemoryLimiter::new(memory_cap),
            stderr,
            invocation,
            deadline,
        }
    }

    /// Readies a warm instance's state for its next call (its hooks are
    /// renewed in place, [`EgressHooks::renew`]).
    pub(super) fn renew(&mut self, invocation: Invocation, deadline: Instant) {
        self.invocation = invocation;
        self.deadline = deadline;
        self.stderr.clear();
    }

    /// Whether the guest left nothing open (streams, bodies, requests).
    pub(super) fn table_is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Raised (as a trap) when a guest asks for more memory than its cap.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: the guest asked for {requested} bytes in total, the cap is {cap}")]
pub struct MemoryLimitExceeded {
    /// Total bytes the guest would have had.
    pub requested: usize,
    /// The cap.
    pub cap: usize,
}

/// Caps the *sum* of all linear memories of a store (wasmtime's built-in
/// limits are per memory, which a component with several memories could
/// multiply).
pub struct MemoryLimiter {
    cap: usize,
    used: usize,
}

impl MemoryLimiter {
    fn new(cap: u64) -> Self {
        Self {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            used: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used.saturating_sub(current).saturating_add(desired);
        if total > self.cap {
            // Trap instead of returning `false`: most guest allocators abort
            // on failure anyway, and a trap carries a typed reason.
            return Err(MemoryLimitExceeded {
                requested: total,
                cap: self.cap,
            }
            .into());
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A stderr sink that accepts everything and keeps the last
/// [`STDERR_TAIL`] bytes (a guest that writes a lot must not fail or grow the
/// host's memory).
#[derive(Clone, Default)]
pub struct GuestOutput {
    tail: Arc<Mutex<VecDeque<u8>>>,
}

impl GuestOutput {
    /// The retained tail as (lossy) UTF-8, trimmed.
    pub fn text(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = tail.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }

    /// Forgets what was captured (a warm instance's next call).
    pub fn clear(&self) {
        self.tail.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn push(&self, bytes: &[u8]) {
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let keep = &bytes[bytes.len().saturating_sub(STDERR_TAIL)..];
        let overflow = (tail.len() + keep.len()).saturating_sub(STDERR_TAIL);
        tail.drain(..overflow);
        tail.extend(keep);
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl host_api::Host for GuestState {
    fn log(&mut self, level: LogLevel, message: String, fields: Vec<LogField>) {
        let message = truncate(&message, MAX_LOG_MESSAGE);
        let fields: String = fields
            .iter()
            .take(32)
            .map(|f| format!(" {}={:?}", truncate(&f.key, 64), truncate(&f.value, 256)))
            .collect();
        let connector = &*self.invocation.connector;
        let instance = self.invocation.instance.as_deref().unwrap_or("-");
        let invocation = &*self.invocation.id;
        // The guest's level maps onto ours; the target marks it as guest output.
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "plugboard::guest", connector, instance, invocation, "{message}{fields}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "plugboard::guest", connector, instance, invocation, "{message}{fields}")
            }
            LogLevel::Info => {
                tracing::info!(target: "plugboard::guest", connector, instance, invocation, "{message}{fields}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "plugboard::guest", connector, instance, invocation, "{message}{fields}")
            }
            LogLevel::Error => {
                tracing::error!(target: "plugboard::guest", connector, instance, invocation, "{message}{fields}")
            }
        }
    }

    fn get_config(&mut self, key: String) -> Option<String> {
        self.invocation.config.get(&key).map(|v| v.to_string())
    }

    fn get_config_all(&mut self) -> String {
        self.invocation.config.to_string()
    }

    fn hmac(
        &mut self,
        algorithm: HmacAlgorithm,
        field: String,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        use hmac::Mac as _;
        // The credentials live with the egress policy, which applies them
        // to requests; here the guest gets a MAC, never the value.
        let Some(key) = self.hooks.credentials().get(&field) else {
            return Err(format!(
                "credential field {field:?} is not set for this instance"
            ));
        };
        let key = key.expose().as_bytes();
        // `new_from_slice` accepts keys of any length for HMAC.
        let mac = match algorithm {
            HmacAlgorithm::Sha256 => hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
                .map(|m| m.chain_update(&data).finalize().into_bytes().to_vec()),
            HmacAlgorithm::Sha1 => hmac::Hmac::<sha1::Sha1>::new_from_slice(key)
                .map(|m| m.chain_update(&data).finalize().into_bytes().to_vec()),
        };
        mac.map_err(|e| format!("hmac: {e}"))
    }

    fn constant_time_eq(&mut self, a: Vec<u8>, b: Vec<u8>) -> bool {
        use subtle::ConstantTimeEq as _;
        a.len() == b.len() && bool::from(a.ct_eq(&b))
    }
}

impl super::bindings::wit::Host for GuestState {}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn limiter_caps_the_sum_of_memories() {
        let mut l = MemoryLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap()); // second memory
        assert!(l.memory_growing(60, 70, None).unwrap()); // grow the first
        let err = l.memory_growing(30, 40, None).unwrap_err();
        assert!(err.downcast_ref::<MemoryLimitExceeded>().is_some());
    }

    #[test]
    fn stderr_keeps_only_the_tail() {
        let out = GuestOutput::default();
        out.push(&vec![b'a'; STDERR_TAIL * 2]);
        out.push(b"panicked at boom");
        let text = out.text();
        assert!(text.ends_with("panicked at boom"));
        assert!(text.len() <= STDERR_TAIL);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
