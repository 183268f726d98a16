//! The event loop's side of `wsgi_read_timeout`, by signal, and the
//! watcher process of a worker without thread pools.
//!
//! An inline call past its limit is interrupted with a signal to the
//! worker's main thread (the event loop), on which Python runs
//! `on_timeout_signal`, a Python-level handler: it raises ReadTimeout
//! where the app is, with the app's stack at hand. A signal also cuts
//! short a blocking system call of the app (`time.sleep`, a socket read:
//! Python retries those only if the handler does not raise), so such a
//! call ends at once too. A call still running GRACE later is stuck in C
//! code that ignores signals: Python's faulthandler writes the worker's
//! stack to error_log on a second signal, and the worker ends (nginx's
//! master starts a fresh one).
//!
//! In a worker without thread pools, who sends the signals is a process
//! forked at the worker's start, not a thread, so that the worker stays
//! single-threaded (see `watchdog.rs`): it reads the event loop's `Watch`
//! in shared memory, once per tick, and dies with the worker.

use std::ffi::c_int;
use std::time::{Duration, Instant};

use ngx::ffi::{ngx_log_t, ngx_setproctitle, ngx_time_update, NGX_LOG_ALERT};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::watch::{self, Found, Seen, Watch};
use crate::{errlog, retire};

/// The signal that interrupts an inline call, and the one that has
/// faulthandler write the stack. Real-time signals: nginx uses none.
pub fn timeout_signal() -> c_int {
    libc::SIGRTMIN() + 3
}

fn dump_signal() -> c_int {
    libc::SIGRTMIN() + 4
}

/// How long faulthandler gets to write the stack before the worker ends.
const DUMP_WAIT: Duration = Duration::from_millis(200);

/// Python's handler of the timeout signal, run on the event loop.
#[pyfunction]
fn on_timeout_signal(
    py: Python<'_>,
    _signum: c_int,
    frame: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    watch::event_loop().on_signal(py, frame.as_ref())
}

/// Installs the worker's side: Python's handler of the timeout signal,
/// and faulthandler on the dump signal, writing to the worker's error_log.
/// On the event loop (Python's main thread), at the worker's start.
pub fn install(log: *mut ngx_log_t) -> PyResult<()> {
    Python::attach(|py| {
        let handler = wrap_pyfunction!(on_timeout_signal, py)?;
        py.import("signal")?
            .call_method1("signal", (timeout_signal(), handler))?;
        if let Some(&log_fd) = log_fds(log).first() {
            // A copy of error_log's descriptor: `nginx -s reopen` closes
            // the original, whose number may then name a client's socket.
            // SAFETY: fcntl on a descriptor the log holds open.
            let fd = unsafe { libc::fcntl(log_fd, libc::F_DUPFD_CLOEXEC, 3) };
            if fd < 0 {
                return Ok(());
            }
            let options = PyDict::new(py);
            options.set_item("file", fd)?;
            options.set_item("all_threads", false)?;
            py.import("faulthandler")?
                .call_method("register", (dump_signal(),), Some(&options))?;
        }
        Ok(())
    })
}

/// Signals the event loop (thread `thread` of this process) that call
/// `seq` of its `watch` is past its limit.
pub fn interrupt_event_loop(watch: &Watch, seq: u64, worker: Target) {
    watch
        .requested
        .store(seq, std::sync::atomic::Ordering::Release);
    worker.signal(timeout_signal());
}

/// An inline call did not return GRACE after it was interrupted: log it,
/// have faulthandler write the stack, and end the worker if a master will
/// start a fresh one.
pub fn event_loop_stuck(watch: &Watch, worker: Target) {
    let what = if retire::replaceable() {
        "the event loop is blocked and the worker cannot serve anything: it ends now, and nginx starts a fresh one"
    } else {
        "the event loop is blocked, and without a master process (master_process off) the worker cannot be replaced"
    };
    // Nobody else can write it: the event loop is inside the call.
    let heading = watch.stuck_heading(&format!("{what}; its stack follows"));
    errlog::write_from_any_thread(NGX_LOG_ALERT as _, &heading);
    worker.signal(dump_signal());
    std::thread::sleep(DUMP_WAIT);
    if retire::replaceable() {
        worker.end();
    }
}

/// Where the signals go: the event-loop thread of this process, or, from
/// the watcher process, the worker.
#[derive(Clone, Copy)]
pub enum Target {
    Thread(libc::pthread_t),
    Process(libc::pid_t),
}

impl Target {
    fn signal(self, signal: c_int) {
        // SAFETY: plain libc calls; a thread or process that is gone makes
        // them fail, harmlessly.
        unsafe {
            match self {
                Target::Thread(thread) => libc::pthread_kill(thread, signal),
                Target::Process(pid) => libc::kill(pid, signal),
            };
        }
    }

    /// Ends the worker: the master reaps it and starts a fresh one (any
    /// status but 2). Nothing of it can run on: its event loop is stuck.
    fn end(self) {
        match self {
            // SAFETY: ends this process at once.
            Target::Thread(_) => unsafe { libc::_exit(1) },
            Target::Process(pid) => {
                // SAFETY: a signal to the worker, which cannot catch it.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Starts the watcher process for a worker without thread pools, before
/// Python, any thread or request (the process is forked).
pub fn start(tick: Duration, log: *mut ngx_log_t) -> Result<(), String> {
    let watch = watch::share_event_loop_watch()?;
    let keep = log_fds(log);
    // SAFETY: getpid has no preconditions; fork in a process with one
    // thread: the child runs only `watch_from_outside`, which never
    // returns and touches neither Python (not started yet) nor nginx's
    // event loop.
    let worker = unsafe { libc::getpid() };
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork failed: {}", std::io::Error::last_os_error())),
        0 => watch_from_outside(watch, worker, tick, &keep),
        _ => Ok(()),
    }
}

/// The watcher process: looks at the event loop's watch once per tick.
fn watch_from_outside(watch: &Watch, worker: libc::pid_t, tick: Duration, keep: &[c_int]) -> ! {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: plain libc calls on this process alone.
        unsafe {
            become_plain_process(keep);
            // Leave with the worker, with status 0: whoever reaps this
            // process (nginx's master, when it is the container's init)
            // then has nothing to report above notice.
            libc::signal(libc::SIGTERM, leave as *const () as libc::sighandler_t);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() != worker {
                return; // the worker is gone already
            }
            ngx_setproctitle(c"wsgi watcher".as_ptr().cast_mut());
        }
        let target = Target::Process(worker);
        let mut seen = Seen::default();
        loop {
            std::thread::sleep(tick);
            // SAFETY: getppid has no preconditions.
            if unsafe { libc::getppid() } != worker {
                return;
            }
            match seen.look(watch, Instant::now()) {
                Some(Found::Due(seq)) => interrupt_event_loop(watch, seq, target),
                Some(Found::Stuck(_)) => {
                    // SAFETY: this process's copy of nginx's cached time,
                    // for the log line's time stamp; one thread.
                    unsafe { ngx_time_update() };
                    event_loop_stuck(watch, target);
                }
                None => {}
            }
        }
    });
    // SAFETY: ends this process without running the worker's exit code.
    unsafe { libc::_exit(0) }
}

extern "C" fn leave(_signal: c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

/// The forked watcher sheds what it has of the worker: nginx's signal
/// handlers (it takes signals as a plain process) and every file but the
/// standard ones and error_log's, so that no client connection or
/// listening socket stays open in it.
///
/// # Safety
/// In the watcher process only, with one thread.
unsafe fn become_plain_process(keep: &[c_int]) {
    for signal in 1..libc::SIGRTMAX() {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            libc::signal(signal, libc::SIG_DFL);
        }
    }
    let mut none: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut none);
    libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    let open: Vec<c_int> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            libc::close(fd);
        }
    }
}

/// The files of the worker's error_log (nginx may log to several).
fn log_fds(log: *mut ngx_log_t) -> Vec<c_int> {
    let mut fds = Vec::new();
    let mut log = log;
    // SAFETY: the cycle's log chain, which lives as long as the cycle.
    unsafe {
        while !log.is_null() {
            let file = (*log).file;
            if !file.is_null() && (*file).fd >= 0 {
                fds.push((*file).fd);
            }
            log = (*log).next;
        }
    }
    fds
}
