//! `x-wsgiorg.flush`: the app's explicit flush. Calling it passes what the
//! module has queued to nginx's filters with `flush` set, so everything the
//! app produced so far reaches the client now (gzip emits a sync flush).
//! Inline it sends at once; in thread mode it marks the hand-off, and the
//! event loop flushes right after the chunks before it.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;

use ngx::ffi::{ngx_http_request_t, ngx_int_t, NGX_ERROR};
use pyo3::exceptions::{PyConnectionError, PyRuntimeError};
use pyo3::prelude::*;

use crate::handoff::Handoff;
use crate::interp;
use crate::output::SharedOutput;

enum Target {
    /// The app runs on the event loop: send from here.
    Inline {
        /// The request while it lives; null after.
        request: AtomicPtr<ngx_http_request_t>,
        output: SharedOutput,
    },
    /// The app runs on a pool thread.
    Thread(Arc<Handoff>),
}

#[pyclass(module = "ngx_wsgi", frozen)]
pub struct Flush {
    target: Target,
    /// Whether the response header was handed to nginx.
    header_out: AtomicBool,
    /// flush() was called before the header went out: the first chunk
    /// must go out flushed even when buffering.
    pending: AtomicBool,
    /// The request is over: a call does nothing.
    detached: AtomicBool,
}

impl Flush {
    fn with(target: Target) -> Flush {
        Flush {
            target,
            header_out: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            detached: AtomicBool::new(false),
        }
    }

    pub fn inline(r: *mut ngx_http_request_t, output: SharedOutput) -> Flush {
        Flush::with(Target::Inline {
            request: AtomicPtr::new(r),
            output,
        })
    }

    pub fn threaded(handoff: Arc<Handoff>) -> Flush {
        Flush::with(Target::Thread(handoff))
    }

    /// Called when the request ends; a later call does nothing.
    pub fn detach(&self) {
        self.detached.store(true, Ordering::Relaxed);
        if let Target::Inline { request, .. } = &self.target {
            request.store(std::ptr::null_mut(), Ordering::Relaxed);
        }
    }

    /// The header is out: from now on a flush goes to nginx.
    pub fn header_sent(&self) {
        self.header_out.store(true, Ordering::Relaxed);
    }

    /// Whether a flush was asked for before the header went out (and forget it).
    pub fn take_pending(&self) -> bool {
        self.pending.swap(false, Ordering::Relaxed)
    }
}

#[pymethods]
impl Flush {
    fn __call__(&self) -> PyResult<()> {
        if self.detached.load(Ordering::Relaxed) {
            return Ok(());
        }
        if !self.header_out.load(Ordering::Relaxed) {
            self.pending.store(true, Ordering::Relaxed);
            return Ok(());
        }
        let gone = || PyConnectionError::new_err("the client connection is gone");
        match &self.target {
            Target::Thread(handoff) => handoff.flush().then_some(()).ok_or_else(gone),
            Target::Inline { request, output } => {
                let r = request.load(Ordering::Relaxed);
                if r.is_null() {
                    return Ok(());
                }
                if !interp::on_event_loop() {
                    return Err(PyRuntimeError::new_err(
                        "x-wsgiorg.flush() must be called from the thread running the app",
                    ));
                }
                // The pump never holds the lock while the app runs.
                let Ok(mut output) = output.try_lock() else {
                    return Err(PyRuntimeError::new_err(
                        "x-wsgiorg.flush() called while the module sends",
                    ));
                };
                // SAFETY: `r` is live (the request context detaches this
                // object when the request ends) and this is the event-loop
                // thread, inside the module's pump, which owns the request.
                if unsafe { output.send_queue(r, true) } == NGX_ERROR as ngx_int_t {
                    return Err(gone());
                }
                Ok(())
            }
        }
    }
}
