//! `wsgi_read_timeout`'s watchdog: it looks at every thread's `Watch`
//! (`watch.rs`) once per tick and interrupts a call past its limit.
//!
//! In a worker with thread pools it is a thread, with a second one, the
//! interrupter, which takes the GIL to interrupt a pool thread's call: it
//! records the thread's Python stack, for error_log, and raises
//! `ReadTimeout` in it (`PyThreadState_SetAsyncExc`: at its next Python
//! instruction). The watchdog itself never waits for the GIL, so a call
//! that holds it (C code that does not release it) cannot stop it. The
//! event loop's calls are interrupted by a signal (`watcher.rs`).
//!
//! A call still running `GRACE` after the timeout is stuck: on the event
//! loop the worker can serve nothing, so it ends at once and nginx's
//! master starts a fresh one; on a pool thread the worker retires
//! gracefully (`retire`).
//!
//! A worker without thread pools has no thread of its own, and glibc runs
//! a single-threaded process faster (no locks in malloc, no cancellation
//! points around system calls): two threads would cost its requests more
//! than the rest of the watchdog. There the watchdog is a process instead
//! (`watcher.rs`), which reads the event loop's watch in shared memory and
//! signals the worker only when a call times out.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ngx::ffi::{ngx_log_t, NGX_LOG_ALERT};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::{ffi, PyTypeInfo};

use super::watch::{self, format_stack, lock, Found, ReadTimeout, Seen, Watch};
use super::watcher::{self, Target};
use crate::config::AppSpec;
use crate::test_hooks::{self, Hook};
use crate::{errlog, retire, signals};

/// How often the watchdog looks: a tenth of the shortest timeout, within
/// these bounds (once a second under the default 60 s).
const TICK_MIN: Duration = Duration::from_millis(20);
const TICK_MAX: Duration = Duration::from_secs(1);
/// How long the watchdog waits for the interrupter before it answers a
/// pool thread's request without the stack (the GIL is held elsewhere).
/// Each time the interrupter lets the GIL go (reading a source line for
/// the stack), a busy thread keeps it for a switch interval (5 ms).
const ANSWER_WAIT: Duration = Duration::from_millis(500);

/// The watches of this worker's threads, for the watchdog thread.
static WATCHES: Mutex<Vec<&'static Watch>> = Mutex::new(Vec::new());

/// A watch for the calling thread (a pool thread), for its whole life.
pub fn register() -> &'static Watch {
    let watch: &'static Watch = Box::leak(Box::new(Watch::new(false)));
    watch
        .thread
        .store(Watch::current_thread(), Ordering::Relaxed);
    lock(&WATCHES).push(watch);
    watch
}

/// How a worker's watchdog runs: a process (a worker without thread
/// pools, which keeps a single thread) or threads.
pub struct Plan {
    tick: Duration,
    process: bool,
}

/// The first half of the watchdog's start, before Python starts, so that
/// the watcher process, forked here in a worker without thread pools
/// (`single_threaded`), shares little of the worker's memory (it holds on
/// to what the worker has at the fork). `shortest_ms`: the configuration's
/// shortest wsgi_read_timeout. On the event loop, at the worker's start.
pub fn prepare(
    apps: &[AppSpec],
    shortest_ms: u64,
    single_threaded: bool,
    log: *mut ngx_log_t,
) -> Result<Plan, String> {
    watch::set_app_names(apps);
    let tick = (Duration::from_millis(shortest_ms) / 10).clamp(TICK_MIN, TICK_MAX);
    if single_threaded {
        watcher::start(tick, log)?;
    }
    Ok(Plan {
        tick,
        process: single_threaded,
    })
}

/// The second half, Python running: the handler of the signal that
/// interrupts the event loop's calls, and the watchdog and interrupter
/// threads of a worker with thread pools.
pub fn start(plan: &Plan, log: *mut ngx_log_t) -> Result<(), String> {
    // Imported now, not while an app holds on to the GIL.
    Python::attach(|py| py.import("traceback").map(drop))
        .map_err(|e| format!("importing traceback failed: {e}"))?;
    watcher::install(log)
        .map_err(|e| format!("installing the timeout signal's handler failed: {e}"))?;
    if plan.process {
        return Ok(());
    }
    let tick = plan.tick;
    let event_loop = watch::event_loop();
    event_loop
        .thread
        .store(Watch::current_thread(), Ordering::Relaxed);
    lock(&WATCHES).push(event_loop);
    let interrupter = Arc::new(Interrupter::default());
    let for_watchdog = interrupter.clone();
    signals::masked(|| {
        std::thread::Builder::new()
            .name("wsgi-interrupter".into())
            .spawn(move || interrupter.run())?;
        std::thread::Builder::new()
            .name("wsgi-watchdog".into())
            .spawn(move || watch_over(&for_watchdog, tick))
            .map(drop)
    })
    .map_err(|e| format!("starting the watchdog thread failed: {e}"))
}

fn watch_over(interrupter: &Interrupter, tick: Duration) {
    let mut seen: Vec<Seen> = Vec::new();
    loop {
        std::thread::sleep(tick);
        let watches = lock(&WATCHES).clone();
        seen.resize(watches.len(), Seen::default());
        let now = Instant::now();
        let mut due = Vec::new();
        for (watch, seen) in watches.iter().zip(seen.iter_mut()) {
            let event_loop =
                || Target::Thread(watch.thread.load(Ordering::Relaxed) as libc::pthread_t);
            match seen.look(watch, now) {
                Some(Found::Due(seq)) if watch.on_event_loop => {
                    watcher::interrupt_event_loop(watch, seq, event_loop())
                }
                Some(Found::Stuck(_)) if watch.on_event_loop => {
                    watcher::event_loop_stuck(watch, event_loop())
                }
                Some(Found::Due(seq)) => due.push((*watch, seq)),
                Some(Found::Stuck(seq)) => stuck(watch, seq),
                None => {}
            }
        }
        if due.is_empty() {
            continue;
        }
        if !interrupter.interrupt(&due) {
            // The GIL is held elsewhere: the requests end now, without
            // the stack.
            for (watch, seq) in due {
                watch.report_timeout(seq, None);
            }
        }
    }
}

/// A pool thread's call did not return `GRACE` after it was interrupted:
/// the worker retires, not waiting for that thread.
fn stuck(watch: &Watch, seq: u64) {
    if !watch::declare_stuck(watch, seq) {
        return;
    }
    // Asked before the lines go: the first wakes the event loop, which
    // then acts on the request (asked after, an idle loop would sleep on).
    retire::ask();
    let heading = watch.stuck_heading(&format!("{}; the stack of the call", retire::consequence()));
    let stack = lock(&watch.stack).clone();
    for piece in errlog::pieces(&heading, stack.as_deref().unwrap_or("(not available)")) {
        errlog::worker_log(NGX_LOG_ALERT as _, &piece);
    }
    if test_hooks::worker().armed(Hook::StuckAlertLingers) {
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The thread that takes the GIL to interrupt calls.
#[derive(Default)]
struct Interrupter {
    state: Mutex<Batches>,
    work: Condvar,
    done: Condvar,
}

#[derive(Default)]
struct Batches {
    due: Vec<(&'static Watch, u64)>,
    /// Batches handed over, and done.
    given: u64,
    finished: u64,
}

impl Interrupter {
    /// Hands `due` over and waits up to ANSWER_WAIT; whether it was done.
    fn interrupt(&self, due: &[(&'static Watch, u64)]) -> bool {
        let mut state = lock(&self.state);
        state.due.extend_from_slice(due);
        state.given += 1;
        let mine = state.given;
        self.work.notify_one();
        let deadline = Instant::now() + ANSWER_WAIT;
        while state.finished < mine {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .done
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    fn run(&self) {
        loop {
            let (due, batch) = {
                let mut state = lock(&self.state);
                while state.due.is_empty() {
                    state = self.work.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                (std::mem::take(&mut state.due), state.given)
            };
            Python::attach(|py| {
                for (watch, seq) in due {
                    interrupt(py, watch, seq);
                }
            });
            let mut state = lock(&self.state);
            state.finished = state.finished.max(batch);
            self.done.notify_all();
        }
    }
}

/// Raises ReadTimeout in call `seq` of `watch` if it still runs, and
/// reports the timeout with the call's stack.
fn interrupt(py: Python<'_>, watch: &Watch, seq: u64) {
    // With the GIL held here, the watched thread cannot leave its call:
    // it leaves holding the GIL.
    if watch.seq.load(Ordering::Acquire) != seq {
        return;
    }
    let stack = stack_of(py, watch.thread.load(Ordering::Relaxed)).ok();
    *lock(&watch.stack) = stack.clone();
    watch.fired.store(seq, Ordering::Release);
    // SAFETY: the GIL is held; the type object lives as long as Python.
    unsafe {
        ffi::PyThreadState_SetAsyncExc(watch.thread_id(), ReadTimeout::type_object(py).as_ptr());
    }
    watch.report_timeout(seq, stack.as_deref());
}

/// The Python stack of thread `id`, as a traceback prints it.
fn stack_of(py: Python<'_>, id: u64) -> PyResult<String> {
    let frames = py
        .import("sys")?
        .call_method0("_current_frames")?
        .cast_into::<PyDict>()?;
    let Some(frame) = frames.get_item(id)? else {
        return Ok("(the thread has no Python frame)".into());
    };
    format_stack(py, &frame)
}
