//! `x-wsgiorg.flush`: the app's explicit flush. Calling it passes what the
//! app sent so far to nginx's filters with `flush` set, so it reaches the
//! client now (gzip emits a sync flush). Where that happens is the
//! target's business: inline it sends at once (`inline.rs`, through the
//! response's output); in thread mode it marks the hand-off, and the event
//! loop flushes right after the chunks before it (`threads::Handoff`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyConnectionError, PyRuntimeError};
use pyo3::prelude::*;

/// Why a flush could not be done.
pub enum FlushError {
    /// The client connection is gone.
    Gone,
    /// Not callable from here (the message says why).
    Refused(&'static str),
}

/// Where a flush goes once the response head is out.
pub trait FlushTarget: Send + Sync {
    fn flush(&self) -> Result<(), FlushError>;
}

#[pyclass(module = "ngx_wsgi", frozen)]
pub struct Flush {
    target: Arc<dyn FlushTarget>,
    /// Whether the response header was handed to nginx.
    header_out: AtomicBool,
    /// flush() was called before the header went out: the first chunk
    /// must go out flushed even when buffering.
    pending: AtomicBool,
    /// The request is over: a call does nothing.
    detached: AtomicBool,
}

impl Flush {
    pub fn new(target: Arc<dyn FlushTarget>) -> Flush {
        Flush {
            target,
            header_out: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            detached: AtomicBool::new(false),
        }
    }

    /// Called when the request ends; a later call does nothing.
    pub fn detach(&self) {
        self.detached.store(true, Ordering::Relaxed);
    }

    /// The header is out: from now on a flush goes to the target.
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
        self.target.flush().map_err(|e| match e {
            FlushError::Gone => PyConnectionError::new_err("the client connection is gone"),
            FlushError::Refused(why) => PyRuntimeError::new_err(why),
        })
    }
}
