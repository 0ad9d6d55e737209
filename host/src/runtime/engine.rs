//! The process-wide wasmtime [`Engine`] and its epoch ticker.
//!
//! One engine per process: compiled artifacts are only valid for the engine
//! configuration that produced them, and the pooling allocator reserves its
//! slots once. Every knob below says why it is set.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::Limits;

/// How often the epoch advances. Deadlines are checked at this granularity,
/// and a busy guest yields to the async executor this often.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

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
    // Keeping the first pages of linear memories resident between uses
    // halves the cost of a fresh instance per call (madvise and page faults
    // dominate otherwise): `scripts/bench-load`'s `plugboard-cold`, 11.0-11.5k
    // req/s with 4 MiB kept vs 6.7-7.9k with none. But with it, a Rust
    // guest's whole ~1.1 MiB memory was resident in every slot in use
    // (pmap during a burst: 2,000 fully resident 1 MiB regions in the
    // memory slots): 2,000 concurrent calls on a slow upstream peaked at
    // 2,479 MiB RSS and took 4.6 s, against 493 MiB and 2.1 s with none
    // (`scripts/bench-scale`). With warm instances (the default) a call
    // rarely instantiates, so slots are seldom reused and only the memory
    // cost remains: keep nothing. Without them, keep 4 MiB.
    pool.linear_memory_keep_resident(if limits.warm_instances == 0 {
        4 << 20
    } else {
        0
    });
    pool.table_keep_resident(64 << 10);
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
