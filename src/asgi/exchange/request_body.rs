//! The request body as `receive()` gives it, in `http.request` messages:
//! a body nginx read whole (from memory, one message; from its temp file,
//! pieces of 64 KiB), or, with `wsgi_request_buffering off`, the body as
//! the client sends it. Then each `receive()` takes what nginx has read, up
//! to a piece, and waits for the read event when nginx has nothing yet;
//! nginx reads on only when the app asks, so a slow app slows the client
//! (nginx's buffer full, the socket's full, the client's send blocks).

use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use ngx::ngx_log_error;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::{wake, Exchange};
use crate::next::Next;
use crate::nginx::upload::{self, Pulled};
use crate::wsgi::input::RequestBody;

/// How much of the body one `http.request` message carries at most.
const BODY_PIECE: usize = 64 * 1024;

/// The request body, as `receive()` has not yet given it.
pub(super) enum Body {
    /// nginx read it whole first (in memory, or in its temp file).
    Whole(RequestBody),
    /// `wsgi_request_buffering off`: nginx reads it as `receive()` asks.
    Streaming,
    /// Given to its end, or the body failed (then the response is failed
    /// too, and the request ends with nginx's code).
    Given,
}

/// What a `receive()` gets of the body: `(bytes, more_body)`, or None when
/// there is nothing yet (the body streams) or the body cannot be read on.
pub type BodyPiece<'py> = Option<(Bound<'py, PyBytes>, bool)>;

impl Exchange {
    /// The next piece of the body.
    pub(super) fn read_body<'py>(
        this: &Rc<RefCell<Exchange>>,
        py: Python<'py>,
    ) -> PyResult<BodyPiece<'py>> {
        let mut ex = this.borrow_mut();
        let piece = match std::mem::replace(&mut ex.body, Body::Given) {
            Body::Streaming => {
                ex.body = Body::Streaming;
                drop(ex);
                return Ok(Exchange::pull_body(this, py));
            }
            Body::Given => (PyBytes::new(py, b""), false),
            Body::Whole(RequestBody::Memory(bytes)) => (PyBytes::new(py, &bytes), false),
            Body::Whole(RequestBody::File(mut body)) => {
                let want = (body.len as usize).min(BODY_PIECE);
                let mut file = File::from(body.fd);
                let piece = PyBytes::new_with(py, want, |buf| {
                    file.read_exact(buf).map_err(|e| {
                        PyOSError::new_err(format!(
                            "reading the request body's temp file failed: {e}"
                        ))
                    })
                })?;
                body.len -= want as u64;
                let more = body.len > 0;
                if more {
                    body.fd = OwnedFd::from(file);
                    ex.body = Body::Whole(RequestBody::File(body));
                }
                (piece, more)
            }
            // Thread mode's stream: never made for an ASGI request.
            Body::Whole(RequestBody::Stream(_)) => (PyBytes::new(py, b""), false),
        };
        Ok(Some(piece))
    }

    /// `wsgi_request_buffering off`: what nginx has read, up to a piece,
    /// nginx reading on from the client. A body that cannot be read to its
    /// end fails the response (logged; the request ends with nginx's code),
    /// and `receive()` gives the disconnect at once: nginx may linger on
    /// the connection a while before the request ends (and cancels a task
    /// still running).
    fn pull_body<'py>(this: &Rc<RefCell<Exchange>>, py: Python<'py>) -> BodyPiece<'py> {
        let r = this.borrow().r;
        if r.is_null() {
            return None;
        }
        let mut data = Vec::new();
        // SAFETY: the request is live (r is not null) and its body is read
        // unbuffered; this is the event loop (a step of the asyncio loop).
        let pulled = unsafe {
            upload::pull(r, |offered| {
                let n = offered.len().min(BODY_PIECE - data.len());
                data.extend_from_slice(&offered[..n]);
                n
            })
        };
        match pulled {
            Pulled::Waiting if data.is_empty() => None,
            Pulled::Waiting => Some((PyBytes::new(py, &data), true)),
            Pulled::Complete => {
                this.borrow_mut().body = Body::Given;
                Some((PyBytes::new(py, &data), false))
            }
            Pulled::Failed(fault, rc) => {
                let log = {
                    let mut ex = this.borrow_mut();
                    ex.body = Body::Given;
                    ex.failed = true;
                    ex.log
                };
                // SAFETY: as above.
                let (rc, level, outcome) = unsafe { upload::failure(r, fault, rc) };
                ngx_log_error!(
                    level,
                    log,
                    "asgi: reading the request body for the app failed: {}; receive() gives http.disconnect, {outcome}",
                    fault.describe()
                );
                Exchange::decide(this, Next::Finish(rc));
                None
            }
        }
    }

    /// A `receive()` waits on `waiter` for more of a streamed body:
    /// "waiting"; or there is no more to wait for: "ended" (the body was
    /// given whole), "failed" (the response failed, or the request is
    /// over).
    pub(super) fn wait_body(this: &Rc<RefCell<Exchange>>, waiter: Py<PyAny>) -> &'static str {
        let mut ex = this.borrow_mut();
        if ex.r.is_null() || ex.failed {
            return "failed";
        }
        if !matches!(ex.body, Body::Streaming) {
            return "ended";
        }
        ex.body_waiters.push(waiter);
        "waiting"
    }

    /// The client's connection is readable: the `receive()` calls that
    /// wait for the body go on (and pull at the loop's step); whether any
    /// did.
    pub(super) fn body_readable(this: &Rc<RefCell<Exchange>>) -> bool {
        let waiters = std::mem::take(&mut this.borrow_mut().body_waiters);
        if waiters.is_empty() {
            return false;
        }
        // The futures are dropped here too, with the GIL held.
        Python::attach(move |py| waiters.into_iter().for_each(|w| wake(py, w.bind(py))));
        true
    }
}
