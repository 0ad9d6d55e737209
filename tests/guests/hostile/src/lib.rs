//! `hostile`: a connector that misbehaves on purpose, for the sandbox tests.
//!
//! Each method attacks one limit of the host: `spin` the CPU deadline,
//! `allocate` the memory cap, `panic` and `abort` trap handling, `fetch` the
//! egress policy (any URL, method and headers, so tests can also try
//! undeclared hosts, private addresses and header smuggling), `residue` what
//! an earlier guest left in the memory it runs in. The only declared host is
//! the instance config's `allowed` URL.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use plugboard_guest::http::Request;
use plugboard_guest::prelude::*;

/// Instance config.
#[derive(Deserialize, JsonSchema)]
#[allow(dead_code, reason = "only declares the schema")]
struct HostileConfig {
    /// The one host pattern the manifest declares (`{allowed}`), e.g. `http://127.0.0.1:8080`.
    allowed: String,
}

/// Parameters of `allocate`.
#[derive(Deserialize, JsonSchema)]
struct AllocateParams {
    /// How many MiB to allocate and touch.
    mib: u32,
}

/// Parameters of `panic`.
#[derive(Deserialize, JsonSchema)]
struct PanicParams {
    /// The panic message.
    message: String,
}

/// Parameters of `fetch`.
#[derive(Deserialize, JsonSchema)]
struct FetchParams {
    /// Absolute URL to request.
    url: String,
    /// HTTP method, `GET` by default.
    #[serde(default)]
    method: Option<String>,
    /// Extra request headers (tests try `host`, hop-by-hop headers, …).
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    /// Request body, sent as text.
    #[serde(default)]
    body: Option<String>,
    /// Response body cap in bytes (the SDK's default otherwise).
    #[serde(default)]
    max_bytes: Option<u64>,
    /// Send the request this many times (1 by default); the last answer is
    /// returned. Tests use it to hit the per-invocation request cap.
    #[serde(default)]
    repeat: Option<u32>,
    /// Mark the request idempotent (so the host may retry a `POST`).
    #[serde(default)]
    idempotent: bool,
}

/// Result of `fetch`: what came back, whatever the status.
#[derive(Serialize, JsonSchema)]
struct FetchResult {
    status: u16,
    headers: BTreeMap<String, String>,
    /// The body as text.
    body: String,
}

/// The connector.
struct Hostile;

impl Connector for Hostile {
    fn manifest() -> Manifest {
        Manifest::new(
            "hostile",
            env!("CARGO_PKG_VERSION"),
            "Misbehaves on purpose to test the sandbox: loops, memory bombs, panics, aborts, egress.",
        )
        .method::<NoParams, ()>("spin", "Loops forever without I/O.")
        .method::<AllocateParams, Value>("allocate", "Allocates and touches `mib` MiB, 1 MiB at a time.")
        .method::<PanicParams, ()>("panic", "Panics with `message`.")
        .method::<FetchParams, FetchResult>("fetch", "Requests `url` and returns status, headers and body.")
        .method::<NoParams, ()>("abort", "Calls `std::process::abort()`.")
        .method::<NoParams, Value>(
            "residue",
            "Reports what earlier calls left in this guest's memory, then leaves its own marks.",
        )
        .config_schema::<HostileConfig>()
        .host("{allowed}")
    }

    fn invoke(method: &str, params: Params) -> Result<Output> {
        match method {
            "spin" => params.call(|_: NoParams| -> Result<()> { spin() }),
            "allocate" => params.call(|p: AllocateParams| {
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                for i in 0..p.mib {
                    // `vec![x; n]` with a non-zero byte writes every page, so
                    // the memory is really committed, not just reserved.
                    let fill = u8::try_from(i % 251).unwrap_or(1) | 1;
                    blocks.push(std::hint::black_box(vec![fill; 1024 * 1024]));
                }
                let touched: usize = blocks.iter().map(|b| usize::from(b[b.len() - 1])).sum();
                Ok(json!({ "allocated_mib": p.mib, "checksum": std::hint::black_box(touched) }))
            }),
            "panic" => params.call(|p: PanicParams| -> Result<()> { panic!("{}", p.message) }),
            "fetch" => params.call(fetch),
            "abort" => params.call(|_: NoParams| -> Result<()> { std::process::abort() }),
            "residue" => params.call(|_: NoParams| residue()),
            other => Err(Error::unknown_method(other)),
        }
    }
}

/// Initialised data: part of the component's memory image.
static mut PATTERN: [u8; 8192] = [0xA5; 8192];
/// Zero-initialised data (`.bss`): after the image, zero in a new instance.
static CALLS: AtomicU32 = AtomicU32::new(0);
/// Where `residue` grew its page, once it has (0: not yet in this instance).
static GROWN_AT: AtomicU32 = AtomicU32::new(0);

/// Reads three marks an earlier guest in the same memory would have left, in
/// each kind of memory a pool slot holds: initialised data (the image), zeroed
/// data, and a page grown at run time. Then leaves the marks itself. A new
/// instance must report `{"calls": 0, "imageIntact": true, "grownZero": true}`
/// whatever ran in its slot before.
#[allow(
    unsafe_code,
    reason = "reads what is left in raw guest memory, on purpose"
)]
fn residue() -> Result<Value> {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: a guest runs one call at a time on one thread; nothing else
    // holds a reference to `PATTERN`.
    let pattern = unsafe { &mut *std::ptr::addr_of_mut!(PATTERN) };
    let image_intact = pattern.iter().all(|&b| std::hint::black_box(b) == 0xA5);
    pattern.fill(0x5A);
    std::hint::black_box(&pattern);
    // A page grown outside the allocator (the allocator grows past it, so
    // nothing else writes there). In a new instance it is the first page after
    // the initial memory, at the same address every time.
    let mut at = GROWN_AT.load(Ordering::Relaxed);
    if at == 0 {
        let old_pages = grow_one_page();
        if old_pages == usize::MAX {
            return Err(Error::permanent("memory.grow failed"));
        }
        at = u32::try_from(old_pages * 65536).map_err(|_| Error::permanent("memory too big"))?;
        GROWN_AT.store(at, Ordering::Relaxed);
    }
    let page = at as usize as *mut u8;
    // SAFETY: `page` starts a 64 KiB page this function grew and owns.
    let grown = unsafe { std::slice::from_raw_parts_mut(page, 65536) };
    let grown_zero = grown.iter().all(|&b| std::hint::black_box(b) == 0);
    grown.fill(0xFF);
    std::hint::black_box(&grown);
    Ok(
        json!({ "calls": calls, "imageIntact": image_intact, "grownZero": grown_zero, "grownAt": at }),
    )
}

/// Grows linear memory by one page: the old size in pages, or `usize::MAX`.
#[cfg(target_arch = "wasm32")]
fn grow_one_page() -> usize {
    core::arch::wasm32::memory_grow(0, 1)
}

/// Native builds (workspace checks) have no linear memory to grow.
#[cfg(not(target_arch = "wasm32"))]
fn grow_one_page() -> usize {
    usize::MAX
}

/// Burns CPU until the host interrupts it.
fn spin() -> Result<()> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// The `fetch` method: transport errors propagate as the SDK maps them.
fn fetch(p: FetchParams) -> Result<FetchResult> {
    let repeat = p.repeat.unwrap_or(1).max(1);
    for _ in 1..repeat {
        fetch_once(&p)?;
    }
    fetch_once(&p)
}

fn fetch_once(p: &FetchParams) -> Result<FetchResult> {
    let method = p.method.clone().unwrap_or_else(|| "GET".to_owned());
    let mut req = Request::new(method, p.url.clone());
    for (name, value) in p.headers.iter().flatten() {
        req = req.header(name.clone(), value.clone());
    }
    if let Some(body) = &p.body {
        req = req.body(body.clone());
    }
    if p.idempotent {
        req = req.idempotent();
    }
    if let Some(max) = p.max_bytes {
        req = req.max_response_bytes(usize::try_from(max).unwrap_or(usize::MAX));
    }
    let response = req.send()?;
    let mut headers = BTreeMap::new();
    for (name, value) in &response.headers {
        headers.insert(name.clone(), value.clone());
    }
    Ok(FetchResult {
        status: response.status,
        headers,
        body: response.text(),
    })
}

plugboard_guest::export_connector!(Hostile);
