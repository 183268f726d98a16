//! `x-wsgiorg.flush`: the app's explicit flush. Calling it passes what the
//! module has queued to nginx's filters with `flush` set, so everything the
//! app produced so far reaches the client now (gzip emits a sync flush).

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use ngx::ffi::{ngx_http_request_t, ngx_int_t, NGX_ERROR};
use pyo3::exceptions::{PyConnectionError, PyRuntimeError};
use pyo3::prelude::*;

use crate::interp;
use crate::output::SharedOutput;

#[pyclass(module = "ngx_wsgi", frozen)]
pub struct Flush {
    /// The request while it lives; null after.
    request: AtomicPtr<ngx_http_request_t>,
    output: SharedOutput,
    /// flush() was called before anything was sent: the first chunk must
    /// go out flushed even when buffering.
    pending: AtomicBool,
}

impl Flush {
    pub fn new(r: *mut ngx_http_request_t, output: SharedOutput) -> Flush {
        Flush {
            request: AtomicPtr::new(r),
            output,
            pending: AtomicBool::new(false),
        }
    }

    /// Called when the request ends; a later call does nothing.
    pub fn detach(&self) {
        self.request.store(std::ptr::null_mut(), Ordering::Relaxed);
    }

    /// Whether a flush was asked for before the header went out (and forget it).
    pub fn take_pending(&self) -> bool {
        self.pending.swap(false, Ordering::Relaxed)
    }
}

#[pymethods]
impl Flush {
    fn __call__(&self) -> PyResult<()> {
        let r = self.request.load(Ordering::Relaxed);
        if r.is_null() {
            return Ok(());
        }
        if !interp::on_event_loop() {
            return Err(PyRuntimeError::new_err(
                "x-wsgiorg.flush() must be called from the thread running the app",
            ));
        }
        // SAFETY: `r` is live (the request context detaches this object when
        // the request ends) and this is the event-loop thread, inside the
        // module's pump, which owns the request.
        if unsafe { (*r).header_sent() } == 0 {
            self.pending.store(true, Ordering::Relaxed);
            return Ok(());
        }
        // The pump never holds the lock while the app runs.
        let Ok(mut output) = self.output.try_lock() else {
            return Err(PyRuntimeError::new_err(
                "x-wsgiorg.flush() called while the module sends",
            ));
        };
        // SAFETY: as above.
        if unsafe { output.send_queue(r, true) } == NGX_ERROR as ngx_int_t {
            return Err(PyConnectionError::new_err("the client connection is gone"));
        }
        Ok(())
    }
}
