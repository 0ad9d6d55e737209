//! The process-wide wasmtime [`Engine`] and its epoch ticker.
//!
//! One engine per process: compiled artifacts are only valid for the engine
//! configuration that produced them, and the pooling allocator reserves its
//! slots once. Every knob below says why it is set.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::Limits;

/// How often the epoch advances. Deadlines are checked at this granularity,
/// and a busy guest yields to the async executor this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Whether wasmtime can use Linux's `PAGEMAP_SCAN` ioctl (kernel 6.7+) here.
///
/// With it, a freed pool slot is reset by copying back only the pages the
/// guest wrote, up to the keep-resident size, and those pages stay mapped.
/// Without it the slot is reset with `madvise(MADV_DONTNEED)`, which flushes
/// the TLB of every core running a host thread, and the next instance in the
/// slot faults its pages in again; or, with keep-resident set, by `memset`
/// over the whole kept range, which makes all of it resident whether the
/// guest touched it or not.
fn pagemap_scan() -> bool {
    PoolingAllocationConfig::is_pagemap_scan_available()
}

/// How much of a freed linear memory slot is reset in place rather than
/// decommitted.
///
/// With the scan, `Limits::pool_keep_resident_bytes` (1 MiB by default).
/// Measured with the `languages` bench (`fresh`, 2026-11-25): 256 KiB, 1 MiB
/// and 4 MiB reset a Rust guest equally (~12 µs per fresh call); a JS guest
/// writes more per call and took 517, 432-477 and 420 µs. Each slot a call
/// has used keeps up to this much resident after the call: 1 MiB is the
/// smallest size measured that brought JS within 3-14 % of 4 MiB (256 KiB:
/// 23 % slower).
fn memory_keep_resident(limits: &Limits, pagemap_scan: bool) -> usize {
    if pagemap_scan {
        // Only written pages are reset and kept, so this costs what guests
        // really touched, in place of a `madvise` and the page faults after
        // it (or a `memset` over 4 MiB) per fresh instance. A Rust `echo`
        // instantiated and called fresh: 27.0 µs released with `madvise`,
        // 32.4 µs with 4 MiB `memset`, 12.2-14.0 µs in place; JS 724 / 989 /
        // 432-477 µs; Python 1.31 / 1.47 / 0.95-1.08 ms (`languages` bench,
        // `fresh`); `scripts/bench-load`'s `plugboard-cold` (4 MiB `memset`
        // before) 17.2k → 35.1k req/s. The price is memory a burst
        // leaves behind: after 10,000 concurrent calls of a Rust guest the host
        // kept 1,084-1,177 MiB instead of 662-712 (about 40 KiB per slot used).
        limits.pool_keep_resident_bytes
    } else if limits.warm_instances == 0 {
        // Keeping the first pages resident with `memset` halves the cost of a
        // fresh instance per call: `plugboard-cold`, 11.0-11.5k req/s with
        // 4 MiB kept vs 6.7-7.9k with none.
        4 << 20
    } else {
        // With warm instances (the default) a call rarely instantiates, and
        // `memset` made a Rust guest's whole ~1.1 MiB memory resident in every
        // slot in use: 2,000 concurrent calls on a slow upstream peaked at
        // 2,479 MiB RSS and took 4.6 s, against 493 MiB and 2.1 s with none
        // (`scripts/bench-scale`).
        0
    }
}

/// `--eager-instance-init`: a fresh guest instance gets its data segments by
/// copy and its function tables filled at instantiation.
///
/// By default wasmtime maps a module's memory image copy-on-write and fills
/// table entries on first use. In a slot no instance used before, the guest
/// then reads a page first (mapped read-only: the image's page, or the
/// kernel's zero page for a table) and writes it later. That write replaces
/// a present page-table entry, which flushes the TLB of the other core with
/// an interrupt while it runs another host thread. In the first 10,000-call
/// burst of the `rest` guest on a fresh host, page faults were 33 % of the
/// host's CPU samples (865 of 2,632) and 324 were in those flushes (`perf
/// record -g -p <host>`, fat LTO, e016502).
///
/// Both knobs, because each alone leaves the other source of such faults
/// and showed no gain (docs/benchmarks.md, before LTO). Together, on that
/// burst (`BENCH_HOST_FLAGS=--eager-instance-init scripts/bench-scale`,
/// `BENCH_HTTP2=100`, one round each, alternated with the default,
/// 2026-11-25): all answered in 2,484 and 2,403 ms against 2,907 and 3,110,
/// at 290-296 instead of 337-371 µs of host CPU per call; peak RSS 1,107 and
/// 1,110 MiB against 1,037 and 1,063, because more calls are alive at once
/// (up to 8,777 held by the upstream against 6,663).
///
/// Off by default: a copy costs each fresh instance of a large guest its
/// whole image, where the mapping shares the pages it never writes
/// (JavaScript and Python components carry their interpreter's initialized
/// heap; the ones here are 13 and 19 MB), and filling tables up front
/// costs each fresh instance of a guest with a large table. In process, one
/// call at a time (`BENCH_EAGER_INIT=1 cargo bench --bench languages --
/// fresh`, against the same run without it), a fresh instance + `echo` took
/// JavaScript 397 µs → 2.05 ms, Python 1.02 → 4.17 ms, Rust 11.3 → 16.3 µs,
/// C 13.7 → 13.2 µs. Warm instances pay neither.
fn eager_instance_init(config: &mut Config) {
    config.memory_init_cow(false);
    config.table_lazy_init(false);
}

/// Builds the engine for these limits.
pub fn build(limits: &Limits) -> Result<Engine> {
    let mut config = Config::new();
    // Interrupt guests by epoch rather than fuel: costs ~nothing per
    // instruction and bounds wall-clock time, which is what operators set.
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    // Guests recursing deeply get a clean stack-overflow trap well before the
    // host's own fiber stack runs out.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(2 << 20);
    // Compile once, run many times: spend compile time on speed.
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);

    let mut pool = PoolingAllocationConfig::default();
    let instances = limits.max_instances;
    // A component instance has a handful of core instances (the guest, the
    // WASI adapter, shims); JS/Python components have more and bigger ones.
    pool.total_component_instances(instances);
    // Every call in flight runs on a fiber stack of its own; wasmtime's
    // default of 1,000 would cap concurrency below `max_instances`
    // ("maximum concurrent limit of 1000 for fibers reached").
    pool.total_stacks(instances);
    pool.total_core_instances(instances.saturating_mul(4));
    pool.total_memories(instances.saturating_mul(2));
    pool.total_tables(instances.saturating_mul(4));
    pool.max_core_instances_per_component(50);
    pool.max_memories_per_component(10);
    pool.max_tables_per_component(20);
    pool.max_component_instance_size(1 << 20);
    pool.max_core_instance_size(1 << 20);
    // One linear memory may be as big as the whole per-instance cap; the
    // store's limiter enforces the cap on the *sum* of memories.
    pool.max_memory_size(usize::try_from(limits.max_memory_bytes)?);
    let pagemap = pagemap_scan();
    if pagemap {
        pool.pagemap_scan(Enabled::Yes);
    }
    let keep_resident = memory_keep_resident(limits, pagemap);
    pool.linear_memory_keep_resident(keep_resident);
    pool.table_keep_resident(64 << 10);
    tracing::info!(
        pagemap_scan = pagemap,
        memory_keep_resident = keep_resident,
        "freed guest memory slots are {}",
        match (pagemap, keep_resident) {
            (_, 0) => "released with madvise",
            (true, _) => "reset in place (only the pages a guest wrote)",
            (false, _) => "reset with memset over the kept range (PAGEMAP_SCAN needs Linux 6.7+)",
        }
    );
    if limits.eager_instance_init {
        eager_instance_init(&mut config);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(Engine::new(&config)?)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on one thread, until
/// dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread.
    pub fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("plugboard-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(warm_instances: u32) -> Limits {
        Limits {
            warm_instances,
            ..Limits::default()
        }
    }

    #[test]
    fn pagemap_keeps_the_configured_bound_with_and_without_warm_instances() {
        for warm in [0, 256] {
            let mut l = limits(warm);
            assert_eq!(memory_keep_resident(&l, true), 1 << 20, "default");
            l.pool_keep_resident_bytes = 0;
            assert_eq!(memory_keep_resident(&l, true), 0, "0 releases all");
        }
    }

    #[test]
    fn without_pagemap_only_a_host_without_warm_instances_keeps_pages() {
        // `memset` over the kept range would make it all resident in every
        // slot a burst uses.
        assert_eq!(memory_keep_resident(&limits(256), false), 0);
        assert_eq!(memory_keep_resident(&limits(0), false), 4 << 20);
    }

    #[test]
    fn the_engine_builds_with_eager_instance_init() {
        let l = Limits {
            eager_instance_init: true,
            ..Limits::default()
        };
        build(&l).expect("engine");
    }

    #[test]
    fn the_engine_builds_whether_or_not_the_kernel_can_scan() {
        // `pagemap_scan(Enabled::Yes)` makes `Engine::new` fail where the
        // ioctl is missing, so it is only asked for where it was found.
        build(&limits(256)).expect("engine");
    }
}
