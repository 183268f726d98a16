//! One thread's calls into apps as `wsgi_read_timeout` sees them: a
//! `Watch` per thread that runs apps (the event loop, each pool thread),
//! which a call marks on entry and exit with plain stores, so a quick call
//! costs next to nothing. The watchdog (`watchdog.rs`, `watcher.rs`) looks
//! at the watches; what it finds (`Seen::look`) and the reports of a
//! timeout are here, with `ReadTimeout`, the exception raised in the app.
//!
//! - The driver learns of a timeout when the call returns (`leave`), and
//!   ends the response: 504, or an abort once its head is out.
//! - In thread mode the request's hand-off (`OnTimeout`) learns of it at
//!   once, so the event loop answers without waiting for the thread.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;
use pyo3::{create_exception, ffi};

use crate::config::{AppSpec, Interface};
use crate::errlog;
use crate::status::{self, Counter};

create_exception!(
    ngx_wsgi,
    ReadTimeout,
    PyTimeoutError,
    "Raised inside an app whose call took longer than wsgi_read_timeout."
);

/// How long after the timeout a call that did not return counts as stuck.
pub const GRACE: Duration = Duration::from_secs(2);

/// Who else learns of a timeout as it happens: in thread mode, the
/// request's hand-off, which ends the request on the event loop.
pub trait OnTimeout: Send + Sync {
    /// The call timed out; `report` is error_log's text of it, in pieces.
    fn timed_out(&self, report: Vec<String>);
}

/// One thread's calls into apps, as the watchdog sees them.
pub struct Watch {
    /// Odd while the thread is inside a call; entry and exit add one each.
    /// Only the thread itself writes it, with the GIL held.
    pub(super) seq: AtomicU64,
    /// The app and the limit (ms) of the current call, stored before `seq`.
    app: AtomicUsize,
    pub(super) limit_ms: AtomicU64,
    /// The thread's id, as Python and pthreads know it.
    pub(super) thread: AtomicU64,
    pub(super) on_event_loop: bool,
    /// The `seq` of the call the interrupter raised ReadTimeout in.
    pub(super) fired: AtomicU64,
    /// The `seq` of the call the watcher process signalled the worker for.
    pub(super) requested: AtomicU64,
    /// The `seq` of the call whose timeout was reported (to `target` or
    /// into `report`), so that it is reported once.
    reported: AtomicU64,
    /// The report for the driver, when there is no `target`.
    report: Mutex<Option<Vec<String>>>,
    /// The stack a pool thread's call had when it was interrupted, for the
    /// alert if it turns out stuck.
    pub(super) stack: Mutex<Option<String>>,
    pub(super) target: Mutex<Option<Arc<dyn OnTimeout>>>,
    /// The watchdog declared the current call stuck.
    pub(super) stuck: AtomicBool,
}

/// A call that timed out, as its thread learns it.
pub struct Timeout {
    /// error_log's text, if the thread is to write it (inline).
    pub report: Option<Vec<String>>,
}

/// The event loop's watch: this static, or, with the watcher process, a
/// copy in memory shared with it.
static EVENT_LOOP_WATCH: Watch = Watch::new(true);
static EVENT_LOOP: AtomicPtr<Watch> = AtomicPtr::new(std::ptr::null_mut());
/// The apps' names, by index, for error_log.
static APP_NAMES: OnceLock<Vec<String>> = OnceLock::new();
/// Calls declared stuck that have not returned.
static STUCK: AtomicUsize = AtomicUsize::new(0);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Watch {
    pub(super) const fn new(on_event_loop: bool) -> Watch {
        Watch {
            seq: AtomicU64::new(0),
            app: AtomicUsize::new(0),
            limit_ms: AtomicU64::new(0),
            thread: AtomicU64::new(0),
            on_event_loop,
            fired: AtomicU64::new(0),
            requested: AtomicU64::new(0),
            reported: AtomicU64::new(0),
            report: Mutex::new(None),
            stack: Mutex::new(None),
            target: Mutex::new(None),
            stuck: AtomicBool::new(false),
        }
    }

    /// The calling thread enters a call into `app`, limited to `limit_ms`.
    #[inline(always)]
    pub fn enter(&self, app: usize, limit_ms: u64) {
        self.app.store(app, Ordering::Relaxed);
        self.limit_ms.store(limit_ms, Ordering::Relaxed);
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Release);
    }

    /// The call returned; true if it timed out meanwhile (then `timeout`
    /// says how).
    #[inline(always)]
    pub fn leave(&self) -> bool {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Release);
        self.fired.load(Ordering::Acquire) == seq
    }

    /// The thread waits, inside a call, for what is not the app's time
    /// (`wsgi.input` waiting for the client's body, which
    /// `client_body_timeout` governs): the call stops counting. False, and
    /// nothing changes, on another thread than the watch's (an app's own
    /// thread reading the input), outside a call, or when the call timed
    /// out already. With the GIL held, as `resume` after the wait.
    pub fn pause(&self) -> bool {
        if self.thread.load(Ordering::Relaxed) != Watch::current_thread() {
            return false;
        }
        let seq = self.seq.load(Ordering::Relaxed);
        if !in_call(seq) || self.fired.load(Ordering::Acquire) == seq {
            return false;
        }
        self.seq.store(seq + 1, Ordering::Release);
        true
    }

    /// After a `pause` that said true: the call counts again, afresh.
    pub fn resume(&self) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Release);
    }

    /// After a `leave` that said the call timed out: the timeout, for the
    /// driver.
    #[cold]
    pub fn timeout(&self, _py: Python<'_>) -> Timeout {
        // ReadTimeout stays pending if no Python instruction ran after it
        // was raised: it must not surface in this thread's next call.
        // SAFETY: the GIL is held (`_py`); a null exception clears.
        unsafe { ffi::PyThreadState_SetAsyncExc(self.thread_id(), std::ptr::null_mut()) };
        if self.stuck.swap(false, Ordering::Relaxed) {
            STUCK.fetch_sub(1, Ordering::Relaxed);
        }
        Timeout {
            report: lock(&self.report).take(),
        }
    }

    /// In thread mode: who learns of a timeout at once (None after the
    /// request).
    pub fn set_target(&self, target: Option<Arc<dyn OnTimeout>>) {
        *lock(&self.target) = target;
    }

    pub(super) fn current_thread() -> u64 {
        // SAFETY: pthread_self has no preconditions. CPython's thread ids
        // (threading.get_ident) are pthread_self() on POSIX.
        unsafe { libc::pthread_self() as u64 }
    }

    /// The thread's id as pyo3 declares PyThreadState_SetAsyncExc's
    /// (CPython's is unsigned; the bits are the same).
    pub(super) fn thread_id(&self) -> std::ffi::c_long {
        self.thread.load(Ordering::Relaxed) as std::ffi::c_long
    }

    fn app_name(&self) -> &'static str {
        APP_NAMES
            .get()
            .and_then(|names| names.get(self.app.load(Ordering::Relaxed)))
            .map_or("?", String::as_str)
    }

    /// The watcher process signalled the worker, and Python runs the
    /// handler on the event loop, in `frame`: if that is inside the call
    /// the watcher found past its limit, the timeout is recorded and
    /// ReadTimeout raised there (the GIL is held: this is Python code).
    pub(super) fn on_signal(
        &self,
        py: Python<'_>,
        frame: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let seq = self.seq.load(Ordering::Acquire);
        if !in_call(seq)
            || self.requested.load(Ordering::Acquire) != seq
            || self.fired.load(Ordering::Acquire) == seq
        {
            return Ok(()); // the call ended meanwhile
        }
        // (No copy for `stack`: a stuck event loop's stack is faulthandler's.)
        let stack = frame.and_then(|frame| format_stack(py, frame).ok());
        self.fired.store(seq, Ordering::Release);
        self.report_timeout(seq, stack.as_deref());
        Err(ReadTimeout::new_err(format!(
            "the call took longer than wsgi_read_timeout ({} ms)",
            self.limit_ms.load(Ordering::Relaxed)
        )))
    }

    /// How error_log says that call `seq` is stuck; `what` happens next.
    pub(super) fn stuck_heading(&self, what: &str) -> String {
        format!(
            "wsgi: app \"{}\" is stuck: its call has not returned {} s after wsgi_read_timeout ({} ms) interrupted it; {what}",
            self.app_name(),
            GRACE.as_secs(),
            self.limit_ms.load(Ordering::Relaxed)
        )
    }

    /// Reports the timeout of call `seq` once: to the target, or for the
    /// driver. `stack`: None when it could not be taken.
    pub(super) fn report_timeout(&self, seq: u64, stack: Option<&str>) {
        if self.reported.swap(seq, Ordering::AcqRel) == seq {
            return;
        }
        status::count(Counter::ReadTimeouts);
        let heading = format!(
            "wsgi: app \"{}\" did not return within wsgi_read_timeout ({} ms): ReadTimeout is raised in it",
            self.app_name(),
            self.limit_ms.load(Ordering::Relaxed)
        );
        let report = match stack {
            Some(stack) => errlog::pieces(&format!("{heading}; the stack of the call"), stack),
            None => vec![format!(
                "{heading}; its stack is not available (the GIL is held, by C code)"
            )],
        };
        let target = lock(&self.target).clone();
        match target {
            Some(target) => target.timed_out(report),
            None => *lock(&self.report) = Some(report),
        }
    }
}

/// The event loop's watch (inline apps).
pub fn event_loop() -> &'static Watch {
    let shared = EVENT_LOOP.load(Ordering::Acquire);
    if shared.is_null() {
        return &EVENT_LOOP_WATCH;
    }
    // SAFETY: set once, to a Watch in a mapping that is never unmapped.
    unsafe { &*shared }
}

/// Names the apps for error_log, and after them (at `asyncio_loop(apps)`)
/// the ASGI apps together, whose tasks a step of the asyncio loop runs. At
/// the worker's start.
pub(super) fn set_app_names(apps: &[AppSpec]) {
    let mut names: Vec<String> = apps.iter().map(AppSpec::display).collect();
    let asgi: Vec<String> = apps
        .iter()
        .filter(|a| a.interface == Interface::Asgi)
        .map(AppSpec::display)
        .collect();
    names.push(asgi.join("\" or \""));
    let _ = APP_NAMES.set(names);
}

/// What a step of the asyncio loop enters its watch as: the ASGI apps.
pub fn asyncio_loop(apps: &[AppSpec]) -> usize {
    apps.len()
}

/// Calls declared stuck that have not returned: the threads making them
/// may never come back.
pub fn stuck_calls() -> usize {
    STUCK.load(Ordering::Relaxed)
}

/// The watchdog declares call `seq` of `watch` stuck, if it still runs.
pub(super) fn declare_stuck(watch: &Watch, seq: u64) -> bool {
    if watch.seq.load(Ordering::Acquire) != seq {
        return false;
    }
    watch.stuck.store(true, Ordering::Relaxed);
    STUCK.fetch_add(1, Ordering::Relaxed);
    true
}

/// Moves the event loop's watch to fresh memory that `fork` shares: the
/// watcher process reads the calls the worker makes there. At the
/// worker's start, before any request.
pub(super) fn share_event_loop_watch() -> Result<&'static Watch, String> {
    let size = std::mem::size_of::<Watch>();
    // SAFETY: a fresh anonymous mapping, checked, big enough and aligned
    // (a page) for a Watch, which is written there before any use and
    // never unmapped.
    unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if page == libc::MAP_FAILED {
            return Err(format!("mmap failed: {}", std::io::Error::last_os_error()));
        }
        let watch = page.cast::<Watch>();
        watch.write(Watch::new(true));
        (*watch)
            .thread
            .store(Watch::current_thread(), Ordering::Relaxed);
        EVENT_LOOP.store(watch, Ordering::Release);
        Ok(&*watch)
    }
}

/// What a watchdog knows of one watch's current call.
#[derive(Clone, Copy, Default)]
pub(super) struct Seen {
    seq: u64,
    since: Option<Instant>,
    phase: Phase,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Running,
    Interrupted,
    Stuck,
}

/// What a look at a watch found.
pub(super) enum Found {
    /// Call `seq` is past its limit: interrupt it.
    Due(u64),
    /// Call `seq` did not return GRACE after it was interrupted.
    Stuck(u64),
}

impl Seen {
    /// Looks at `watch` at `now`, once per tick.
    pub(super) fn look(&mut self, watch: &Watch, now: Instant) -> Option<Found> {
        let seq = watch.seq.load(Ordering::Acquire);
        if !in_call(seq) {
            return None;
        }
        if self.seq != seq {
            *self = Seen {
                seq,
                since: Some(now),
                phase: Phase::Running,
            };
        }
        let limit = Duration::from_millis(watch.limit_ms.load(Ordering::Relaxed));
        let elapsed = now.duration_since(self.since.unwrap_or(now));
        if self.phase == Phase::Running && elapsed >= limit {
            self.phase = Phase::Interrupted;
            return Some(Found::Due(seq));
        }
        if self.phase == Phase::Interrupted && elapsed >= limit + GRACE {
            self.phase = Phase::Stuck;
            return Some(Found::Stuck(seq));
        }
        None
    }
}

/// The stack that ends in `frame`.
pub(super) fn format_stack(py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<String> {
    let lines: Vec<String> = py
        .import("traceback")?
        .call_method1("format_stack", (frame,))?
        .extract()?;
    Ok(lines.concat())
}

/// Whether a watch's `seq` says its thread is inside a call (odd).
fn in_call(seq: u64) -> bool {
    seq & 1 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a watchdog finds as a call runs past its limit and GRACE.
    #[test]
    fn a_call_is_due_then_stuck_and_a_new_call_starts_afresh() {
        let watch = Watch::new(false);
        let mut seen = Seen::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert!(seen.look(&watch, t0).is_none(), "no call");

        watch.enter(0, 100);
        assert!(seen.look(&watch, t0).is_none(), "the call starts");
        assert!(seen.look(&watch, t0 + ms(99)).is_none());
        assert!(matches!(
            seen.look(&watch, t0 + ms(100)),
            Some(Found::Due(1))
        ));
        assert!(seen.look(&watch, t0 + ms(150)).is_none(), "due once");
        let stuck_at = t0 + ms(100) + GRACE;
        assert!(seen.look(&watch, stuck_at - ms(1)).is_none());
        assert!(matches!(seen.look(&watch, stuck_at), Some(Found::Stuck(1))));
        assert!(
            seen.look(&watch, stuck_at + ms(500)).is_none(),
            "stuck once"
        );

        // The call returns (its thread leaves), and the next one is new.
        watch.seq.store(2, Ordering::Release);
        assert!(seen.look(&watch, stuck_at + ms(600)).is_none());
        watch.enter(0, 100);
        let t1 = stuck_at + ms(700);
        assert!(
            seen.look(&watch, t1).is_none(),
            "a fresh call is not due at once"
        );
        assert!(matches!(
            seen.look(&watch, t1 + ms(100)),
            Some(Found::Due(3))
        ));
    }
}
