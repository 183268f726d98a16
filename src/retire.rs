//! Retiring the worker, for apps that leak or hang: the worker stops
//! accepting, finishes what it serves and exits, and nginx's master starts
//! a fresh one (it respawns a worker that exits with any status but 2).
//! This is what a graceful quit does, asked for by the worker itself: it
//! sets nginx's `ngx_quit`, which the worker's cycle reads after each turn
//! of its event loop.
//!
//! Asked for by `wsgi_max_requests` and `wsgi_max_rss` after a request
//! ends, and by the watchdog (another thread) when an app is stuck on a
//! pool thread. Without a master process (`master_process off`) nobody
//! would start a fresh worker: quitting would stop the server, so the
//! module only logs.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ngx::ffi::{
    ngx_process, ngx_quit, ngx_uint_t, NGX_LOG_NOTICE, NGX_LOG_WARN, NGX_PROCESS_WORKER,
};

use crate::errlog;
use crate::rss;
use crate::status::{self, Counter};

/// `wsgi_max_requests` and `wsgi_max_rss`, as this worker applies them.
#[derive(Debug, Default, Clone, Copy)]
struct Limits {
    /// `wsgi_max_requests` plus this worker's jitter.
    max_requests: Option<u64>,
    /// The directive's own figures, for the message.
    requests_directive: (u64, u64),
    max_rss: Option<u64>,
}

static LIMITS: OnceLock<Limits> = OnceLock::new();
/// Requests this worker's module served (event loop only; an atomic for
/// a static's sake).
static SERVED: AtomicU64 = AtomicU64::new(0);
/// Another thread asked the event loop to retire the worker.
static ASKED: AtomicBool = AtomicBool::new(false);
static RETIRING: AtomicBool = AtomicBool::new(false);

/// How often, at most, the current RSS is read once the peak is over
/// `wsgi_max_rss` (a file read; the peak is one system call).
const RSS_READ_INTERVAL: Duration = Duration::from_secs(1);
static NEXT_RSS_READ: Mutex<Option<Instant>> = Mutex::new(None);

/// Sets this worker's limits. `max_requests`: the count and its jitter; the
/// worker adds a random 0..=jitter of its own, so that workers started
/// together do not retire together. init_process.
pub fn configure(max_requests: Option<(u64, u64)>, max_rss: Option<u64>) {
    if max_requests.is_none() && max_rss.is_none() {
        return; // request_ended has nothing to do
    }
    let limits = Limits {
        max_requests: max_requests.map(|(count, jitter)| count + random_upto(jitter)),
        requests_directive: max_requests.unwrap_or((0, 0)),
        max_rss,
    };
    let _ = LIMITS.set(limits);
}

fn random_upto(max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish() % (max + 1)
}

/// A request of the module ended: counts it, and retires the worker when
/// it has served `wsgi_max_requests` or its memory is over `wsgi_max_rss`.
/// Event loop.
pub fn request_ended() {
    let Some(limits) = LIMITS.get() else {
        return;
    };
    let served = SERVED.load(Ordering::Relaxed) + 1;
    SERVED.store(served, Ordering::Relaxed);
    if RETIRING.load(Ordering::Relaxed) {
        return;
    }
    if limits.max_requests.is_some_and(|max| served >= max) {
        let (count, jitter) = limits.requests_directive;
        let directive = if jitter > 0 {
            format!("wsgi_max_requests {count} jitter={jitter}")
        } else {
            format!("wsgi_max_requests {count}")
        };
        status::count(Counter::RecyclesMaxRequests);
        now(
            NGX_LOG_NOTICE as _,
            &format!("wsgi: this worker has served {served} requests ({directive})"),
        );
        return;
    }
    if let Some(max) = limits.max_rss {
        if let Some(rss) = rss_over(max) {
            status::count(Counter::RecyclesMaxRss);
            now(
                NGX_LOG_WARN as _,
                &format!(
                    "wsgi: this worker's memory, RSS {}, is over wsgi_max_rss ({})",
                    mib(rss),
                    mib(max)
                ),
            );
        }
    }
}

/// The current RSS when it is over `max`. Cheap while the peak RSS (one
/// getrusage call) is under it; then the current one is read from /proc
/// at most once a second.
fn rss_over(max: u64) -> Option<u64> {
    // SAFETY: getrusage fills the struct it is given.
    let peak_kib = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return None;
        }
        usage.ru_maxrss as u64
    };
    if peak_kib * 1024 < max {
        return None;
    }
    let mut next = NEXT_RSS_READ.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    if next.is_some_and(|at| now < at) {
        return None;
    }
    *next = Some(now + RSS_READ_INTERVAL);
    rss::resident_bytes(None).filter(|&rss| rss >= max)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// What retiring does in this process, for messages.
pub fn consequence() -> &'static str {
    if replaceable() {
        "the worker retires: it finishes what it serves and exits, and nginx starts a fresh one"
    } else {
        "without a master process (master_process off) the worker cannot be replaced"
    }
}

/// Whether a master process will start a fresh worker when this one exits.
pub fn replaceable() -> bool {
    // SAFETY: nginx sets ngx_process once, before init_process; later
    // reads from any thread see that value.
    unsafe { ngx_process == NGX_PROCESS_WORKER as ngx_uint_t }
}

/// Retires the worker now, logging `why` and what follows. Event loop.
pub fn now(level: ngx_uint_t, why: &str) {
    if RETIRING.swap(true, Ordering::Relaxed) {
        return;
    }
    errlog::worker_log(level, &format!("{why}; {}", consequence()));
    quit();
}

/// Another thread asks the event loop to retire the worker; it logs why
/// right after, through `errlog`, whose line wakes the loop, which then
/// calls `act_on_request`.
pub fn ask() {
    ASKED.store(true, Ordering::Release);
}

/// Retires the worker if another thread asked. Event loop, when woken.
pub fn act_on_request() {
    if ASKED.swap(false, Ordering::Acquire) && !RETIRING.swap(true, Ordering::Relaxed) {
        status::count(Counter::RecyclesStuck);
        quit();
    }
}

fn quit() {
    if replaceable() {
        // SAFETY: nginx's own flag, set on the event-loop thread as its
        // signal handler would; the worker's cycle reads it after this turn.
        unsafe { ngx_quit = 1 };
    }
}
