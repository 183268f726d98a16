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
use crate::nginx::upload::{self, BodySink, Pulled};
use crate::wsgi::input::RequestBody;
use crate::wsgi::stream::BodyFault;

/// How much of the body one `http.request` message carries at most.
const BODY_PIECE: usize = 64 * 1024;

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
        if ex.streaming {
            drop(ex);
            return Ok(Exchange::pull_body(this, py));
        }
        Ok(Some(match ex.body.take() {
            None => (PyBytes::new(py, b""), false),
            Some(RequestBody::Memory(bytes)) => (PyBytes::new(py, &bytes), false),
            Some(RequestBody::File(mut body)) => {
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
                    ex.body = Some(RequestBody::File(body));
                }
                (piece, more)
            }
            // Not made for an ASGI request: its body streams through nginx.
            Some(RequestBody::Stream(_)) => (PyBytes::new(py, b""), false),
        }))
    }

    /// `wsgi_request_buffering off`: what nginx has read, up to a piece,
    /// nginx reading on from the client. A body that cannot be read to its
    /// end ends the request (logged), and `receive()` gives the disconnect
    /// at once: nginx may linger on the connection a while before the
    /// request ends (and cancels a task still running).
    fn pull_body<'py>(this: &Rc<RefCell<Exchange>>, py: Python<'py>) -> BodyPiece<'py> {
        let r = this.borrow().r;
        if r.is_null() {
            return None;
        }
        let piece = Piece::default();
        // SAFETY: the request is live (r is not null) and its body is read
        // unbuffered; this is the event loop (a step of the asyncio loop).
        let pulled = unsafe { upload::pull(r, &piece) };
        let data = piece.0.into_inner();
        match pulled {
            Pulled::Waiting if data.is_empty() => None,
            Pulled::Waiting => Some((PyBytes::new(py, &data), true)),
            Pulled::Complete => {
                this.borrow_mut().streaming = false;
                Some((PyBytes::new(py, &data), false))
            }
            Pulled::Failed(fault, rc) => {
                {
                    let mut ex = this.borrow_mut();
                    ex.streaming = false;
                    ex.body_failed = true;
                }
                // SAFETY: as above.
                let (rc, level, outcome) = unsafe { upload::failure(r, fault, rc) };
                let log = this.borrow().log;
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
    /// given whole), "failed" (it cannot be read to its end, or the request
    /// is over).
    pub(super) fn wait_body(this: &Rc<RefCell<Exchange>>, waiter: Py<PyAny>) -> &'static str {
        let mut ex = this.borrow_mut();
        if ex.r.is_null() || ex.body_failed {
            return "failed";
        }
        if !ex.streaming {
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
        Python::attach(|py| waiters.iter().for_each(|w| wake(py, w.bind(py))));
        true
    }
}

/// The piece one pull fills.
#[derive(Default)]
struct Piece(RefCell<Vec<u8>>);

impl BodySink for Piece {
    fn offer(&self, data: &[u8]) -> usize {
        let mut piece = self.0.borrow_mut();
        let n = data.len().min(BODY_PIECE - piece.len());
        piece.extend_from_slice(&data[..n]);
        n
    }

    /// The pull's result says how the body ended.
    fn end(&self, _end: Result<(), BodyFault>) {}
}
