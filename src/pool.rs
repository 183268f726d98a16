//! Thread pools (`wsgi_threads`): each `wsgi_threads N` directive is a pool
//! of N Python threads in every worker, with a bounded queue of requests
//! waiting for a free thread. Threads attach to Python once, for their whole
//! life, so an app's thread-locals (database connections) persist between
//! requests; they wait for work without the GIL.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ngx::ffi::{ngx_log_t, NGX_ERROR, NGX_LOG_ALERT, NGX_LOG_NOTICE};
use ngx::ngx_log_error;
use pyo3::prelude::*;

use crate::cgi::Vars;
use crate::conf::{AppSpec, PoolSpec};
use crate::errlog;
use crate::handoff::{End, Handoff};
use crate::output::Kept;
use crate::producer;

/// A request for a pool thread: everything the app needs, owned, so that
/// the thread never touches nginx's request.
pub struct Job {
    pub handoff: Arc<Handoff>,
    pub vars: Vars,
    pub body: Vec<u8>,
    /// Index of the app in the main configuration.
    pub app: usize,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// Threads still running.
    alive: usize,
    stopping: bool,
}

pub struct Pool {
    spec: PoolSpec,
    queue: Mutex<Queue>,
    work: Condvar,
    /// Signalled when a thread exits.
    exited: Condvar,
}

/// This worker's pools, by `MainConf::pools` index.
static POOLS: OnceLock<Vec<Arc<Pool>>> = OnceLock::new();

/// A thread's stack: as much as the main thread's, for deep templates.
const STACK_SIZE: usize = 8 << 20;

impl Pool {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next job; None when the pool stops.
    fn next_job(&self) -> Option<Job> {
        let mut queue = self.lock();
        loop {
            if queue.stopping {
                return None;
            }
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            queue.idle += 1;
            queue = self.work.wait(queue).unwrap_or_else(|p| p.into_inner());
            queue.idle -= 1;
        }
    }
}

/// Starts this worker's pools. Python must be running.
pub fn start(specs: &[PoolSpec], apps: &[AppSpec], log: *mut ngx_log_t) {
    if specs.is_empty() {
        return;
    }
    let apps: Arc<[AppSpec]> = apps.into();
    let mut pools = Vec::with_capacity(specs.len());
    for (index, spec) in specs.iter().enumerate() {
        let pool = Arc::new(Pool {
            spec: *spec,
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                idle: 0,
                alive: 0,
                stopping: false,
            }),
            work: Condvar::new(),
            exited: Condvar::new(),
        });
        for n in 0..spec.threads {
            let (p, a) = (pool.clone(), apps.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("wsgi-{index}-{n}"))
                .stack_size(STACK_SIZE)
                .spawn(move || run_thread(p, a));
            match spawned {
                Ok(_) => pool.lock().alive += 1,
                Err(e) => {
                    ngx_log_error!(
                        NGX_LOG_ALERT,
                        log,
                        "wsgi: starting thread {n} of wsgi_threads {} failed: {e}",
                        spec.threads
                    );
                    break;
                }
            }
        }
        pools.push(pool);
    }
    let _ = POOLS.set(pools);
    ngx_log_error!(
        NGX_LOG_NOTICE,
        log,
        "wsgi: {} Python thread(s) started",
        specs.iter().map(|s| s.threads).sum::<usize>()
    );
}

fn run_thread(pool: Arc<Pool>, apps: Arc<[AppSpec]>) {
    block_signals();
    Python::attach(|py| {
        while let Some(job) = py.detach(|| pool.next_job()) {
            let handoff = job.handoff.clone();
            // A bug here must not cost the thread, nor leave the request
            // waiting for an answer that never comes.
            if catch_unwind(AssertUnwindSafe(|| producer::run(py, job, &apps))).is_err() {
                errlog::worker_log(
                    NGX_LOG_ALERT as _,
                    "wsgi: internal error (panic) on a pool thread",
                );
                handoff.finish(End::Fail(NGX_ERROR as _), Kept::default());
            }
        }
    });
    let mut queue = pool.lock();
    queue.alive -= 1;
    pool.exited.notify_all();
}

/// nginx's signals (reload, quit, child exits) must reach the event-loop
/// thread, whose wait they interrupt; only faults stay with the thread.
fn block_signals() {
    // SAFETY: plain libc calls on a local, initialized signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for fault in [libc::SIGILL, libc::SIGFPE, libc::SIGSEGV, libc::SIGBUS] {
            libc::sigdelset(&mut set, fault);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Why a request could not be queued.
pub enum Refused {
    /// The queue holds `max_queue` requests.
    Full(PoolSpec),
    /// The pool has no thread in this worker.
    NoThreads,
}

/// Queues `job` for a thread of pool `index`.
pub fn submit(index: usize, job: Job) -> Result<(), Refused> {
    let Some(pool) = POOLS.get().and_then(|p| p.get(index)) else {
        return Err(Refused::NoThreads);
    };
    let mut queue = pool.lock();
    if queue.alive == 0 || queue.stopping {
        return Err(Refused::NoThreads);
    }
    // A job goes straight to an idle thread; the queue proper holds those
    // waiting for one.
    if queue.jobs.len() >= queue.idle + pool.spec.max_queue {
        return Err(Refused::Full(pool.spec));
    }
    queue.jobs.push_back(job);
    if queue.idle > 0 {
        pool.work.notify_one();
    }
    Ok(())
}

/// Takes a request that gave up waiting out of the queue.
pub fn withdraw(index: usize, handoff: &Arc<Handoff>) {
    let Some(pool) = POOLS.get().and_then(|p| p.get(index)) else {
        return;
    };
    let mut queue = pool.lock();
    queue.jobs.retain(|job| !Arc::ptr_eq(&job.handoff, handoff));
}

/// How long the worker waits, at exit, for threads to finish.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// Stops this worker's threads at exit. nginx has let in-flight requests
/// finish (or given up at worker_shutdown_timeout): idle threads end at
/// once; a thread still inside an app is not waited for beyond STOP_WAIT.
pub fn stop(log: *mut ngx_log_t) {
    let Some(pools) = POOLS.get() else {
        return;
    };
    for pool in pools {
        let mut queue = pool.lock();
        queue.stopping = true;
        queue.jobs.clear();
        pool.work.notify_all();
    }
    let deadline = Instant::now() + STOP_WAIT;
    let mut busy = 0;
    for pool in pools {
        let mut queue = pool.lock();
        while queue.alive > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queue = pool
                .exited
                .wait_timeout(queue, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        busy += queue.alive;
    }
    if busy > 0 {
        ngx_log_error!(
            NGX_LOG_NOTICE,
            log,
            "wsgi: {busy} Python thread(s) still inside the app at exit; not waiting for them"
        );
    }
}
