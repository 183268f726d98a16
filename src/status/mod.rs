//! What the module counts, for `wsgi_status`: counters, gauges and two
//! histograms, per worker, in a shared memory zone (`zone.rs`) that every
//! worker writes its own slot of and a `wsgi_status` location reads whole
//! (`report.rs`). Counting is an atomic add on memory no other process
//! writes, from whichever thread counts (event loop, pool threads, the
//! watchdog); no lock. A worker that exits adds its slot to the zone's
//! totals, which outlive reloads as the zone does.

mod report;
pub mod zone;

use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Duration;

pub use report::{render, Format};
use zone::Slot;

/// The counters, in the order of `COUNTER_NAMES`.
#[derive(Clone, Copy)]
pub enum Counter {
    RequestsInline,
    RequestsThreads,
    Responses1xx,
    Responses2xx,
    Responses3xx,
    Responses4xx,
    Responses5xx,
    AppExceptions,
    ReadTimeouts,
    RefusedQueueFull,
    RefusedQueueTimeout,
    ClientAborts,
    RecyclesMaxRequests,
    RecyclesMaxRss,
    RecyclesStuck,
    SentBytes,
    RequestBodyBytes,
    AppImportFailures,
    RequestsAsgi,
}

pub const COUNTERS: usize = 19;

/// The gauges: what a worker has now.
#[derive(Clone, Copy)]
pub enum Gauge {
    InFlight,
    Threads,
    ThreadsBusy,
    QueueLength,
}

pub const GAUGES: usize = 4;

/// The histograms, in seconds.
#[derive(Clone, Copy)]
pub enum Histogram {
    /// How long requests waited for a pool thread.
    QueueWait,
    /// From calling the app to its response's end.
    App,
}

pub const HISTOGRAMS: usize = 2;

/// The histograms' upper bounds, in seconds (and +Inf).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// This worker's slot, once `start_worker` claimed it.
static SLOT: AtomicPtr<Slot> = AtomicPtr::new(std::ptr::null_mut());

fn slot() -> Option<&'static Slot> {
    // SAFETY: the pointer is null or a slot of the shared zone, mapped for
    // the process's whole life.
    unsafe { SLOT.load(Ordering::Relaxed).as_ref() }
}

/// Adds `n` to `counter`. Any thread.
pub fn add(counter: Counter, n: u64) {
    if let Some(slot) = slot() {
        slot.counters[counter as usize].fetch_add(n, Ordering::Relaxed);
    }
}

pub fn count(counter: Counter) {
    add(counter, 1);
}

/// Moves `gauge` by `delta`. Any thread.
pub fn gauge(gauge: Gauge, delta: i64) {
    if let Some(slot) = slot() {
        slot.gauges[gauge as usize].fetch_add(delta as u64, Ordering::Relaxed);
    }
}

/// Counts `d` in `histogram`. Any thread.
pub fn observe(histogram: Histogram, d: Duration) {
    let Some(slot) = slot() else {
        return;
    };
    let h = &slot.histograms[histogram as usize];
    let seconds = d.as_secs_f64();
    let bucket = BUCKETS
        .iter()
        .position(|&b| seconds <= b)
        .unwrap_or(BUCKETS.len());
    h.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    h.sum_us.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
}

/// The worker takes its slot (init_process): `index` is nginx's process
/// slot. What an earlier worker left there (one that crashed) goes to the
/// totals first.
pub fn start_worker(index: usize) {
    if let Some(slot) = zone::claim(index, std::process::id()) {
        SLOT.store(slot as *const Slot as *mut Slot, Ordering::Relaxed);
    }
}

/// The worker exits (exit_process): its counts go to the totals.
pub fn stop_worker() {
    let slot = SLOT.swap(std::ptr::null_mut(), Ordering::Relaxed);
    // SAFETY: as in `slot`.
    if let Some(slot) = unsafe { slot.as_ref() } {
        zone::release(slot);
    }
}

/// A response's status, counted by class.
pub fn response(status: usize) {
    let counter = match status / 100 {
        1 => Counter::Responses1xx,
        2 => Counter::Responses2xx,
        3 => Counter::Responses3xx,
        4 => Counter::Responses4xx,
        _ => Counter::Responses5xx,
    };
    count(counter);
}
