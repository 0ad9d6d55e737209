//! The metrics recorded on every call, kept per thread and added up when
//! `/metrics` is rendered.
//!
//! Why not the exporter's own handles: `metrics-exporter-prometheus` keeps
//! one set of atomics per series that every worker writes (each update
//! also bumps a shared generation counter) and pushes every histogram
//! sample into a shared queue that its upkeep drains. With four updates
//! per invoke request (two counters, two histograms), 4.03 % of the host's
//! samples were under them in a DWARF profile (`perf record -F 499
//! --call-graph dwarf`) under `wrk -t2 -c32` against `echo`, the load of
//! `scripts/bench-load`; 1.42 % after this module. Here each thread writes
//! its own cells, which no other thread writes: an update is a plain load
//! and store on a cache line that stays with its core. A scrape reads every thread's cells and
//! adds them up; a thread that exits leaves its counts behind first.
//!
//! Histograms are pre-bucketed (`le` bounds fixed at [`BUCKETS`]) with an
//! exact sum: what Prometheus reads of them is the same as before.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hash as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustc_hash::FxHasher;

use super::BUCKETS;

/// What a family's series count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic count.
    Counter,
    /// Durations, bucketed by [`BUCKETS`], with their sum.
    Histogram,
}

/// A metric name with its help text and label names.
#[derive(Debug)]
pub struct Family {
    /// The metric name (a histogram's samples add `_bucket`, `_sum`, `_count`).
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Counter or histogram.
    pub kind: Kind,
    /// Label names, in the order values are passed.
    pub labels: &'static [&'static str],
}

impl Family {
    /// A family of `kind` named `name`.
    pub const fn new(
        kind: Kind,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            help,
            kind,
            labels,
        }
    }

    /// Cells per series: a counter's value, or a histogram's count per
    /// bucket, its count above the last bound, and its sum in nanoseconds.
    fn width(&self) -> usize {
        match self.kind {
            Kind::Counter => 1,
            Kind::Histogram => BUCKETS.len() + 2,
        }
    }
}

/// One thread's cells of one series. Only that thread writes them (so an
/// update needs no read-modify-write); scrapes read them.
pub struct Cells(Box<[AtomicU64]>);

impl Cells {
    fn new(width: usize) -> Self {
        Self((0..width).map(|_| AtomicU64::new(0)).collect())
    }

    /// Adds `n` to cell `i`. Sound only because one thread writes: a
    /// scrape that reads between the load and the store sees the old
    /// value, as it would have a moment earlier.
    fn add(&self, i: usize, n: u64) {
        let cell = &self.0[i];
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// A counter's `+1`.
    pub fn increment(&self) {
        self.add(0, 1);
    }

    /// A histogram's observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // `le` is inclusive: the first bound at or above the value; past
        // the last bound, the overflow cell.
        self.add(BUCKETS.partition_point(|&b| b < secs), 1);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.add(BUCKETS.len() + 1, nanos);
    }

    fn values(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().map(|c| c.load(Ordering::Relaxed))
    }
}

/// One series: its live cells (one per thread that wrote it) and what
/// exited threads left.
struct Series {
    family: &'static Family,
    labels: Box<[Box<str>]>,
    live: Vec<Arc<Cells>>,
    retired: Vec<u64>,
}

impl Series {
    fn totals(&self) -> Vec<u64> {
        let mut totals = self.retired.clone();
        for cells in &self.live {
            for (t, v) in totals.iter_mut().zip(cells.values()) {
                *t = t.wrapping_add(v);
            }
        }
        totals
    }
}

/// Every series any thread has written, in first-use order.
static REGISTRY: Mutex<Vec<Series>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Series>> {
    // Every change leaves the list consistent; a panic while holding the
    // lock does not invalidate it.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// This thread's cells, by a hash of families and labels; each bucket
/// compares them. FxHash: labels are bounded and not chosen by callers
/// (see the parent module), so a keyed hash buys nothing.
#[derive(Default)]
struct Local {
    by_hash: RefCell<HashMap<u64, Vec<Own>, BuildHasherDefault<FxHasher>>>,
}

/// Families recorded together, the label values they were recorded with,
/// and this thread's cells of each family's series.
type Own = (Box<[&'static Family]>, Box<[Box<str>]>, Box<[Arc<Cells>]>);

impl Drop for Local {
    /// The thread is exiting: its counts move to their series' `retired`,
    /// and its cells leave the registry.
    fn drop(&mut self) {
        let mut registry = registry();
        let owned = self.by_hash.get_mut().drain().flat_map(|(_, b)| b);
        for cells in owned.flat_map(|(_, _, cells)| cells) {
            let Some(series) = registry
                .iter_mut()
                .find(|s| s.live.iter().any(|c| Arc::ptr_eq(c, &cells)))
            else {
                continue;
            };
            for (r, v) in series.retired.iter_mut().zip(cells.values()) {
                *r = r.wrapping_add(v);
            }
            series.live.retain(|c| !Arc::ptr_eq(c, &cells));
        }
    }
}

thread_local! {
    static LOCAL: Local = Local::default();
}

/// Runs `f` on this thread's cells of each of `families` (in that
/// order) for the label values `labels`, registered the first time this
/// thread writes them. Each family takes as many values as it has label
/// names, from the front: a call's counter by connector, method and code
/// and its duration by connector and method are one lookup. Does nothing
/// while the thread is exiting.
pub fn with(families: &[&'static Family], labels: &[&str], f: impl FnOnce(&[Arc<Cells>])) {
    debug_assert!(families.iter().all(|fam| fam.labels.len() <= labels.len()));
    let mut hasher = FxHasher::default();
    for family in families {
        family.name.hash(&mut hasher);
    }
    labels.hash(&mut hasher);
    let hash = hasher.finish();
    let _ = LOCAL.try_with(|local| {
        let mut map = local.by_hash.borrow_mut();
        let bucket = map.entry(hash).or_default();
        let same = |(seen_families, seen, _): &&Own| {
            seen_families.len() == families.len()
                && seen_families
                    .iter()
                    .zip(families)
                    .all(|(a, b)| std::ptr::eq(*a, *b))
                && seen.iter().map(|s| &**s).eq(labels.iter().copied())
        };
        match bucket.iter().find(same) {
            Some((_, _, cells)) => f(cells),
            None => {
                let key: Box<[Box<str>]> = labels.iter().map(|&l| Box::from(l)).collect();
                let cells: Box<[Arc<Cells>]> = families
                    .iter()
                    .map(|family| Arc::new(Cells::new(family.width())))
                    .collect();
                f(&cells);
                for (family, cells) in families.iter().zip(&cells) {
                    register(family, &key[..family.labels.len()], cells.clone());
                }
                bucket.push((families.into(), key, cells));
            }
        }
    });
}

fn register(family: &'static Family, labels: &[Box<str>], cells: Arc<Cells>) {
    let mut registry = registry();
    match registry
        .iter_mut()
        .find(|s| std::ptr::eq(s.family, family) && *s.labels == *labels)
    {
        Some(series) => series.live.push(cells),
        None => registry.push(Series {
            family,
            labels: labels.into(),
            live: vec![cells],
            retired: vec![0; family.width()],
        }),
    }
}

/// The exposition text (format 0.0.4) of `families`, in that order, with
/// every thread's counts added up. Families nothing wrote are left out.
pub fn render(families: &[&'static Family]) -> String {
    let registry = registry();
    let mut out = String::new();
    for &family in families {
        let mut series = registry
            .iter()
            .filter(|s| std::ptr::eq(s.family, family))
            .peekable();
        if series.peek().is_none() {
            continue;
        }
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {kind}", family.name);
        for s in series {
            let totals = s.totals();
            let labels = labels(family.labels, &s.labels);
            match family.kind {
                Kind::Counter => {
                    let _ = writeln!(out, "{}{} {}", family.name, braced(&labels), totals[0]);
                }
                Kind::Histogram => histogram(&mut out, family.name, &labels, &totals),
            }
        }
        out.push('\n');
    }
    out
}

/// `name="value",…`, values escaped as the text format asks.
fn labels(names: &[&str], values: &[Box<str>]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// A histogram's `_bucket` (cumulative), `_sum` and `_count` lines. The
/// count is the buckets' total, so it always equals the `+Inf` bucket even
/// while threads write.
fn histogram(out: &mut String, name: &str, labels: &str, totals: &[u64]) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0u64;
    for (bound, n) in BUCKETS.iter().zip(totals) {
        cumulative += n;
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
        );
    }
    cumulative += totals[BUCKETS.len()];
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
    );
    let sum = totals[BUCKETS.len() + 1] as f64 / 1e9;
    let labels = braced(labels);
    let _ = writeln!(out, "{name}_sum{labels} {sum}");
    let _ = writeln!(out, "{name}_count{labels} {cumulative}");
}

/// `{labels}`, or nothing for a series without labels.
fn braced(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Families of their own: the registry is process-wide, and other tests
    // in this binary record the host's families.
    static CALLS: Family = Family::new(
        Kind::Counter,
        "test_sharded_calls_total",
        "Calls",
        &["method", "code"],
    );
    static TIMES: Family = Family::new(
        Kind::Histogram,
        "test_sharded_seconds",
        "Times",
        &["method"],
    );
    static UNUSED: Family = Family::new(
        Kind::Counter,
        "test_sharded_unused_total",
        "Never written",
        &[],
    );

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    }

    #[test]
    fn threads_counts_add_up_including_those_of_exited_threads() {
        let record = |n: u64| {
            for _ in 0..n {
                with(&[&CALLS], &["echo", "SUCCESS"], |c| c[0].increment());
            }
            // TIMES takes the first value; both are one series per thread.
            with(&[&CALLS, &TIMES], &["echo", "TIMEOUT"], |c| {
                c[0].increment();
                c[1].observe(Duration::from_micros(300));
            });
            with(&[&TIMES], &["echo"], |c| {
                c[0].observe(Duration::from_secs(61))
            });
        };
        // One thread exits before the scrape, one is still alive at it.
        std::thread::spawn(move || record(3)).join().unwrap();
        let (scraped, done) = std::sync::mpsc::channel();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let alive = std::thread::spawn(move || {
            record(2);
            scraped.send(()).unwrap();
            wait.recv().unwrap();
        });
        done.recv().unwrap();
        record(1);
        let text = render(&[&UNUSED, &CALLS, &TIMES]);
        go.send(()).unwrap();
        alive.join().unwrap();

        assert!(!text.contains("test_sharded_unused_total"), "{text}");
        assert!(text.contains("# TYPE test_sharded_calls_total counter\n"));
        assert!(text.contains("# TYPE test_sharded_seconds histogram\n"));
        let calls = "test_sharded_calls_total{method=\"echo\",code=";
        assert!(
            text.contains(&format!("{calls}\"SUCCESS\"}} 6\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{calls}\"TIMEOUT\"}} 3\n")),
            "{text}"
        );
        let bucket = |le: &str| {
            let prefix = format!("test_sharded_seconds_bucket{{method=\"echo\",le=\"{le}\"}} ");
            line(&text, &prefix)[prefix.len()..].parse::<u64>().unwrap()
        };
        // 300 µs is above 0.00025 and at most 0.0005; 61 s is above 60.
        assert_eq!(bucket("0.00025"), 0);
        assert_eq!(bucket("0.0005"), 3);
        assert_eq!(bucket("60"), 3);
        assert_eq!(bucket("+Inf"), 6);
        assert_eq!(
            line(&text, "test_sharded_seconds_count{"),
            "test_sharded_seconds_count{method=\"echo\"} 6"
        );
        assert_eq!(
            line(&text, "test_sharded_seconds_sum{"),
            "test_sharded_seconds_sum{method=\"echo\"} 183.0009"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&["a", "b"], &["x\"y".into(), "back\\slash\nline".into()]),
            "a=\"x\\\"y\",b=\"back\\\\slash\\nline\""
        );
        assert_eq!(labels(&[], &[]), "");
    }

    #[test]
    fn a_series_without_labels_has_no_braces() {
        static BARE: Family =
            Family::new(Kind::Histogram, "test_sharded_bare_seconds", "Bare", &[]);
        with(&[&BARE], &[], |c| c[0].observe(Duration::from_millis(2)));
        let text = render(&[&BARE]);
        assert!(
            text.contains("\ntest_sharded_bare_seconds_bucket{le=\"0.0025\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("\ntest_sharded_bare_seconds_sum 0.002\n"),
            "{text}"
        );
        assert!(
            text.contains("\ntest_sharded_bare_seconds_count 1\n"),
            "{text}"
        );
    }
}
