//! Thread pools (`wsgi_threads`): each `wsgi_threads N` directive is a pool
//! of N Python threads in every worker, with a bounded queue of requests
//! waiting for a free thread. Threads attach to Python once, for their whole
//! life, so an app's thread-locals (database connections) persist between
//! requests; they wait for work without the GIL.
//!
//! Waking a thread is the dear part of a quick request (a futex call, and a
//! switch to the woken thread). The event loop posts one wake-up per turn
//! for the requests it queued (`wake_threads`); a thread takes its next job
//! with the GIL held, so that the thread that has the GIL runs queued
//! requests back to back; and one woken thread at a time is on its way,
//! waking the next when it takes a job and more wait.

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::ptr::addr_of_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ngx::ffi::{
    ngx_add_timer, ngx_connection_t, ngx_del_timer, ngx_event_handler_pt, ngx_event_t, ngx_exiting,
    ngx_log_t, ngx_msec_t, ngx_post_event, ngx_posted_events, ngx_quit, NGX_LOG_ALERT,
    NGX_LOG_NOTICE,
};
use ngx::ngx_log_error;
use pyo3::prelude::*;

use super::handoff::Handoff;
use super::producer::{self, Job};
use crate::config::{AppSpec, PoolSpec};
use crate::errlog;
use crate::guard;
use crate::signals;
use crate::status::{self, Gauge};
use crate::test_hooks::{self, Hook};
use crate::wsgi::{watch, watchdog};

struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting for work on `work`, without the GIL.
    waiting: usize,
    /// Wake-ups sent that no waiting thread has taken yet.
    tickets: usize,
    /// Threads woken for work that have not looked at the queue yet.
    coming: usize,
    /// Threads inside a job.
    busy: usize,
    /// Threads still running.
    alive: usize,
    stopping: bool,
}

impl Queue {
    /// Whether a job waits, no thread is on its way to it, and one waits
    /// for work. One thread at a time is on its way: it wakes the next
    /// when it takes a job and more wait, so a burst of requests wakes
    /// threads one by one as they start, not all at once to queue for the
    /// GIL.
    fn wants_a_thread(&self) -> bool {
        !self.jobs.is_empty() && self.tickets + self.coming == 0 && self.waiting > self.tickets
    }

    /// If a job wants a thread, a wake-up for one (the caller notifies
    /// `work` once the lock is released).
    fn ticket_for_waiting_job(&mut self) -> bool {
        let wake = self.wants_a_thread();
        if wake {
            self.tickets += 1;
        }
        wake
    }
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

    /// The next job, taken with the GIL held: the thread that has it runs
    /// queued requests one after the other, and a woken thread that waits
    /// for the GIL holds no request meanwhile. None when the pool stops.
    /// `finished`: the thread comes from a job.
    fn next_job(&self, py: Python<'_>, mut finished: bool) -> Option<Job> {
        let mut woken = false;
        loop {
            let (job, wake) = {
                let mut queue = self.lock();
                if finished {
                    queue.busy -= 1;
                    status::gauge(Gauge::ThreadsBusy, -1);
                    finished = false;
                }
                if woken {
                    queue.coming -= 1;
                }
                if queue.stopping {
                    return None;
                }
                let job = queue.jobs.pop_front();
                if job.is_some() {
                    queue.busy += 1;
                    status::gauge(Gauge::ThreadsBusy, 1);
                    status::gauge(Gauge::QueueLength, -1);
                }
                (job, queue.ticket_for_waiting_job())
            };
            if wake {
                self.work.notify_one();
            }
            if job.is_some() {
                return job;
            }
            py.detach(|| self.wait_for_work());
            woken = true;
        }
    }

    /// Waits, without the GIL, for a wake-up meant for this thread, a job
    /// no thread is coming for, or the pool's stop; the thread is then
    /// counted as coming.
    fn wait_for_work(&self) {
        let mut queue = self.lock();
        loop {
            if queue.stopping || (!queue.jobs.is_empty() && queue.tickets + queue.coming == 0) {
                break;
            }
            queue.waiting += 1;
            queue = self.work.wait(queue).unwrap_or_else(|p| p.into_inner());
            queue.waiting -= 1;
            if queue.tickets > 0 {
                queue.tickets -= 1;
                break;
            }
        }
        queue.coming += 1;
    }

    /// Threads inside a job, and whether a job waits.
    fn load(&self) -> (usize, bool) {
        let queue = self.lock();
        (queue.busy, !queue.jobs.is_empty())
    }
}

/// The event-loop handlers a pool needs from `entry`.
pub struct LoopHandlers {
    /// The timer that keeps an exiting worker waiting for the apps (it
    /// calls `check_busy`).
    pub busy_timer: ngx_event_handler_pt,
    /// The posted event that wakes threads for queued jobs (it calls
    /// `wake_threads`).
    pub wake_threads: ngx_event_handler_pt,
}

/// Starts this worker's pools. Python must be running.
pub fn start(specs: &[PoolSpec], apps: &[AppSpec], log: *mut ngx_log_t, handlers: LoopHandlers) {
    if specs.is_empty() {
        return;
    }
    let _ = BUSY_TIMER_HANDLER.set(handlers.busy_timer);
    // SAFETY: in init_process, on the event-loop thread, before any
    // request: nothing else touches the event yet.
    unsafe {
        let ev = (*addr_of_mut!(WAKE_THREADS)).as_mut_ptr();
        (*ev).handler = handlers.wake_threads;
        (*ev).log = log;
    }
    let apps: Arc<[AppSpec]> = apps.into();
    let mut pools = Vec::with_capacity(specs.len());
    for (index, spec) in specs.iter().enumerate() {
        let pool = Arc::new(Pool {
            spec: *spec,
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                waiting: 0,
                tickets: 0,
                coming: 0,
                busy: 0,
                alive: 0,
                stopping: false,
            }),
            work: Condvar::new(),
            exited: Condvar::new(),
        });
        for n in 0..spec.threads {
            let (p, a) = (pool.clone(), apps.clone());
            let spawned = signals::masked(|| {
                std::thread::Builder::new()
                    .name(format!("wsgi-{index}-{n}"))
                    .stack_size(STACK_SIZE)
                    .spawn(move || run_thread(p, a))
            });
            match spawned {
                Ok(_) => {
                    pool.lock().alive += 1;
                    status::gauge(Gauge::Threads, 1);
                }
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
    let watch = watchdog::register();
    Python::attach(|py| {
        let mut finished = false;
        while let Some(job) = pool.next_job(py, finished) {
            // producer::run catches the app's panics itself, keeping what
            // nginx may still send; this is the last line, so the thread
            // survives whatever happens.
            if let Err(panic) = guard::catch(|| producer::run(py, job, &apps, watch)) {
                errlog::worker_log(NGX_LOG_ALERT as _, &guard::message("a pool thread", &panic));
            }
            finished = true;
        }
    });
    let mut queue = pool.lock();
    queue.alive -= 1;
    status::gauge(Gauge::Threads, -1);
    pool.exited.notify_all();
}

/// A timer that exists while a pool thread works: nginx's graceful exit
/// (quit, reload) waits until no timer is left, so the worker waits for the
/// apps, even those whose request already ended. Event loop only.
static mut BUSY_TIMER: MaybeUninit<ngx_event_t> = MaybeUninit::zeroed();
static BUSY_TIMER_HANDLER: OnceLock<ngx_event_handler_pt> = OnceLock::new();
/// What the busy timer's `data` points at: nginx built --with-debug reads
/// a timer's data as a connection (its fd names the timer in debug lines),
/// so it must not be null.
static mut BUSY_TIMER_IDENT: MaybeUninit<ngx_connection_t> = MaybeUninit::zeroed();
static ABANDONED: AtomicBool = AtomicBool::new(false);
const BUSY_CHECK: ngx_msec_t = 250;

/// Arms the busy timer if it is not armed. Event loop only.
pub fn keep_worker_alive() {
    if ABANDONED.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: BUSY_TIMER and its ident are only touched on the event-loop
    // thread; zeroed, they are a valid unarmed event and connection.
    unsafe {
        let ev = (*addr_of_mut!(BUSY_TIMER)).as_mut_ptr();
        if (*ev).timer_set() == 0 {
            let ident = (*addr_of_mut!(BUSY_TIMER_IDENT)).as_mut_ptr();
            (*ident).fd = -1;
            (*ev).data = ident.cast();
            (*ev).handler = BUSY_TIMER_HANDLER.get().copied().flatten();
            (*ev).log = ngx::log::ngx_cycle_log().as_ptr();
            ngx_add_timer(ev, BUSY_CHECK);
        }
    }
}

/// The busy timer fired: while a thread works or a job waits, it goes on.
/// Event loop only.
pub fn check_busy() {
    // A thread stuck in a call Python cannot interrupt may never come
    // back: its request has ended, and the worker does not wait for it.
    let working = || {
        let (busy, waiting) = POOLS.get().map_or((0, false), |pools| {
            pools
                .iter()
                .map(|p| p.load())
                .fold((0, false), |(b, w), (pb, pw)| (b + pb, w || pw))
        });
        waiting || busy > watch::stuck_calls()
    };
    // SAFETY: nginx's process flags, read on the event-loop thread.
    let exiting = unsafe { ngx_exiting != 0 || ngx_quit != 0 };
    if exiting && test_hooks::worker().armed(Hook::BusyTimerBlocksAtExit) {
        // Test build: the threads finish while the event loop is here,
        // before it reads what they handed over.
        let deadline = Instant::now() + Duration::from_secs(5);
        while working() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if working() {
        keep_worker_alive();
    }
}

/// nginx forces the worker down (worker_shutdown_timeout): stop keeping it
/// alive for the apps. Event loop only.
pub fn abandon() {
    ABANDONED.store(true, Ordering::Relaxed);
    // SAFETY: as in keep_worker_alive.
    unsafe {
        let ev = (*addr_of_mut!(BUSY_TIMER)).as_mut_ptr();
        if (*ev).timer_set() != 0 {
            ngx_del_timer(ev);
        }
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
    // A job goes straight to a thread that waits or is on its way; the
    // queue proper holds those waiting for one.
    if queue.jobs.len() >= queue.waiting + queue.coming + pool.spec.max_queue {
        return Err(Refused::Full(pool.spec));
    }
    queue.jobs.push_back(job);
    status::gauge(Gauge::QueueLength, 1);
    if queue.wants_a_thread() {
        // SAFETY: the event is only touched on the event-loop thread, and
        // was set up in `start`; nginx runs it once this turn's events are
        // handled.
        unsafe {
            ngx_post_event(
                (*addr_of_mut!(WAKE_THREADS)).as_mut_ptr(),
                addr_of_mut!(ngx_posted_events),
            )
        };
    }
    Ok(())
}

/// A posted event, run after the event loop handled a turn's events: the
/// requests queued in that turn wake one thread between them, and none
/// when a thread that finishes its job takes them first. (A futex wake per
/// request, and the switch to the woken thread that follows on a busy
/// core, cost thread mode more than the rest of the hand-off.)
static mut WAKE_THREADS: MaybeUninit<ngx_event_t> = MaybeUninit::zeroed();

/// Wakes a thread for each pool whose queued jobs want one. Event loop
/// only (the posted event's handler).
pub fn wake_threads() {
    for pool in POOLS.get().into_iter().flatten() {
        let wake = pool.lock().ticket_for_waiting_job();
        if wake {
            pool.work.notify_one();
        }
    }
}

/// Takes a request that gave up waiting out of the queue.
pub fn withdraw(index: usize, handoff: &Arc<Handoff>) {
    let Some(pool) = POOLS.get().and_then(|p| p.get(index)) else {
        return;
    };
    let mut queue = pool.lock();
    let before = queue.jobs.len();
    queue.jobs.retain(|job| !Arc::ptr_eq(&job.handoff, handoff));
    status::gauge(Gauge::QueueLength, queue.jobs.len() as i64 - before as i64);
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
        status::gauge(Gauge::QueueLength, -(queue.jobs.len() as i64));
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
