//! The per-request context: everything a WSGI request owns, in one place.
//!
//! Ownership and states:
//!
//! ```text
//! ReadingBody ─▶ Running ─▶ Suspended ─┐   (client not writable: wait for
//!      │            ▲                  │    the write event, send_timeout)
//!      │            └──────────────────┘
//!      ▼            │
//!   Queued ─────────┘ (thread mode: waiting for a free pool thread,
//!      │               within wsgi_queue_timeout)
//!      ▼            ▼
//!                 Done   (finalized: exactly one ngx_http_finalize_request)
//! ```
//!
//! Inline, the app runs on the event loop and the context holds its Python
//! objects. In thread mode a pool thread holds them, and the context holds
//! the hand-off to that thread; the event loop never takes the GIL for it.
//!
//! The context is allocated from the request pool with a cleanup handler,
//! so its `Drop` runs on every exit: normal end, app error, client abort,
//! timeout. Inline, Drop calls the iterable's `close()` if it has not been
//! called and releases every Python reference, with the GIL held; in thread
//! mode it tells the pool thread to stop, which then closes the iterable.

use std::sync::Arc;

use ngx::ffi::{ngx_del_timer, ngx_event_t, ngx_http_request_t, ngx_log_t};
use pyo3::prelude::*;

use crate::call::{BodyLimit, Call};
use crate::conf::Module;
use crate::errlog::{ErrorLog, LogTo};
use crate::flush::Flush;
use crate::handoff::Handoff;
use crate::interp;
use crate::output::{self, Kept, SharedOutput};
use crate::pool;
use ngx::http::HttpModule;
use ngx::ngx_log_error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// nginx is reading the request body; the app has not been called.
    ReadingBody,
    /// Thread mode: waiting for a free pool thread.
    Queued,
    /// The app runs, or its iterable is being pumped.
    Running,
    /// Output is busy; waiting for the client's write event.
    Suspended,
    /// The request has been finalized by the module.
    Done,
}

pub struct RequestCtx {
    pub state: State,
    /// The request's log (carries client, server and request in messages).
    pub log: *mut ngx_log_t,
    /// Index of the app in the main configuration.
    pub app: usize,
    /// Chunks may wait in nginx's filters (`wsgi_buffering`, X-Accel-Buffering).
    pub buffering: bool,
    pub output: SharedOutput,
    pub mode: Mode,
}

pub enum Mode {
    Inline(Inline),
    Thread(ThreadLink),
}

/// What an app running on the event loop owns.
#[derive(Default)]
pub struct Inline {
    pub call: Option<Call>,
    pub errors: Option<Py<ErrorLog>>,
    pub flush: Option<Py<Flush>>,
    pub limit: BodyLimit,
    /// The bytes objects nginx's buffers point into.
    pub kept: Kept,
}

/// A request whose app runs on a pool thread.
pub struct ThreadLink {
    /// Index of the pool in the main configuration.
    pub pool: usize,
    pub handoff: Arc<Handoff>,
    /// wsgi_queue_timeout while queued; afterwards it keeps a worker that
    /// shuts down gracefully waiting for the app.
    pub timer: ngx_event_t,
}

impl ThreadLink {
    pub fn stop_timer(&mut self) {
        if self.timer.timer_set() != 0 {
            // SAFETY: the timer was armed by this module on this event,
            // which lives in the request's context.
            unsafe { ngx_del_timer(&mut self.timer) };
        }
    }
}

impl RequestCtx {
    pub fn new(log: *mut ngx_log_t, app: usize, mode: Mode) -> RequestCtx {
        RequestCtx {
            state: State::ReadingBody,
            log,
            app,
            buffering: false,
            output: output::shared(),
            mode,
        }
    }
}

impl Inline {
    /// Closes the iterable (once) and logs what close() raises.
    pub fn close(&mut self, py: Python<'_>, log: *mut ngx_log_t) {
        if let Some(call) = self.call.as_mut() {
            call.close(py, &LogTo::Request(log));
        }
    }

    /// The response is over: closes the iterable and lets go of the
    /// Python objects, keeping the bytes of the buffers after the first
    /// `done` (nginx may still be sending them). Needs the GIL.
    pub fn release(&mut self, py: Python<'_>, log: *mut ngx_log_t, done: Option<u64>) {
        self.close(py, log);
        self.call = None;
        if let Some(errors) = self.errors.take() {
            if let Ok(mut e) = errors.bind(py).try_borrow_mut() {
                e.detach();
            }
        }
        if let Some(flush) = self.flush.take() {
            flush.get().detach();
        }
        match done {
            Some(done) => self.kept.release_upto(done),
            None => self.kept.clear(),
        }
    }

    fn holds_python(&self) -> bool {
        self.call.is_some()
            || self.errors.is_some()
            || self.flush.is_some()
            || !self.kept.is_empty()
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        let log = self.log;
        match &mut self.mode {
            Mode::Thread(link) => {
                if !link.handoff.started() {
                    // Still queued (the client left, or the worker is
                    // forced down): the app must not run for it.
                    pool::withdraw(link.pool, &link.handoff);
                }
                for (level, text) in link.handoff.end_request() {
                    ngx_log_error!(level, log, "{}", text);
                }
                link.stop_timer();
            }
            Mode::Inline(inline) => {
                if !inline.holds_python() || !interp::ready() {
                    return;
                }
                Python::attach(|py| inline.release(py, log, None));
            }
        }
    }
}

/// Stores `ctx` in the request pool (dropped by the pool's cleanup) and
/// registers it as this module's context of `r`.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn create(r: *mut ngx_http_request_t, ctx: RequestCtx) -> Option<*mut RequestCtx> {
    let pool = ngx::core::Pool::from_ngx_pool((*r).pool);
    let p = pool.allocate(ctx);
    if p.is_null() {
        return None;
    }
    *(*r).ctx.add(Module::module().ctx_index) = p.cast();
    Some(p)
}

/// The context `create` registered for `r`.
///
/// # Safety
/// `r` must be a live request; the returned reference must not outlive it
/// nor coexist with another reference from `get`.
pub unsafe fn get<'a>(r: *mut ngx_http_request_t) -> Option<&'a mut RequestCtx> {
    let p = *(*r).ctx.add(Module::module().ctx_index) as *mut RequestCtx;
    p.as_mut()
}
