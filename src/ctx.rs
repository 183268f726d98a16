//! The per-request context: everything a WSGI request owns, in one place.
//!
//! Ownership and states:
//!
//! ```text
//! ReadingBody ─▶ Running ─▶ Suspended ─┐   (client not writable: wait for
//!                   ▲                  │    the write event, send_timeout)
//!                   └──────────────────┘
//!                   │
//!                   ▼
//!                 Done   (finalized: exactly one ngx_http_finalize_request)
//! ```
//!
//! The context is allocated from the request pool with a cleanup handler,
//! so its `Drop` runs on every exit: normal end, app error, client abort,
//! timeout. Drop calls the iterable's `close()` if it has not been called
//! and releases every Python reference, with the GIL held.

use ngx::ffi::{ngx_http_request_t, ngx_log_t, NGX_LOG_ERR};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyList, PyTuple};

use crate::conf::Module;
use crate::errlog::ErrorLog;
use crate::flush::Flush;
use crate::interp;
use crate::output::{self, SharedOutput};
use crate::response::StartResponse;
use ngx::http::HttpModule;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// nginx is reading the request body; the app has not been called.
    ReadingBody,
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
    /// What the app returned; `close()` is called on it exactly once.
    pub iterable: Option<Py<PyAny>>,
    pub iterator: Option<Py<PyIterator>>,
    pub start_response: Option<Py<StartResponse>>,
    pub errors: Option<Py<ErrorLog>>,
    pub flush: Option<Py<Flush>>,
    /// Chunks may wait in nginx's filters (`wsgi_buffering`, X-Accel-Buffering).
    pub buffering: bool,
    /// Content-Length known from the iterable (a one-item list).
    pub known_length: Option<usize>,
    /// Body bytes the app's Content-Length still allows.
    pub remaining: Option<u64>,
    pub output: SharedOutput,
}

impl RequestCtx {
    pub fn new(log: *mut ngx_log_t, app: usize) -> RequestCtx {
        RequestCtx {
            state: State::ReadingBody,
            log,
            app,
            iterable: None,
            iterator: None,
            start_response: None,
            errors: None,
            flush: None,
            buffering: false,
            known_length: None,
            remaining: None,
            output: output::shared(),
        }
    }

    /// Calls the iterable's `close()` if it has one and it was not called;
    /// an exception from it is logged.
    pub fn close_iterable(&mut self, py: Python<'_>) {
        self.iterator = None;
        let Some(iterable) = self.iterable.take() else {
            return;
        };
        let iterable = iterable.bind(py);
        // Lists and tuples, the common case, have no close(): skip the
        // lookup, which would raise and clear an AttributeError.
        if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
            return;
        }
        match iterable.getattr_opt(intern!(py, "close")) {
            Ok(Some(close)) => {
                if let Err(e) = close.call0() {
                    interp::log_exception(
                        py,
                        &e,
                        self.log,
                        NGX_LOG_ERR as _,
                        "wsgi: close() of the response iterable raised",
                    );
                }
            }
            Ok(None) => {}
            Err(e) => interp::log_exception(
                py,
                &e,
                self.log,
                NGX_LOG_ERR as _,
                "wsgi: looking up close() raised",
            ),
        }
    }

    fn holds_python(&self) -> bool {
        self.iterable.is_some()
            || self.iterator.is_some()
            || self.start_response.is_some()
            || self.errors.is_some()
            || self.flush.is_some()
            || output::lock(&self.output).holds_python()
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        if !self.holds_python() || !interp::ready() {
            return;
        }
        Python::attach(|py| {
            self.close_iterable(py);
            if let Some(errors) = self.errors.take() {
                if let Ok(mut e) = errors.bind(py).try_borrow_mut() {
                    e.detach();
                }
            }
            if let Some(flush) = self.flush.take() {
                flush.get().detach();
            }
            self.start_response = None;
            output::lock(&self.output).release_all(py);
        });
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
