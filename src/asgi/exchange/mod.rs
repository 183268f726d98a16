//! One ASGI HTTP request between nginx and the app's task: the `Channel`
//! the Python side (gateway.py's `HttpExchange`) calls for each message
//! the app sends or asks for, and `AsgiRequest`, what the request's context
//! holds of it. Everything here runs on the event loop: the app's task runs
//! in a step of the asyncio loop, inside nginx's event handlers.
//!
//! The channel never settles the request itself (a step is inside Python,
//! inside an event handler): it notes what the request does next, and the
//! gateway hands that to `request::settle` once the step is over.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ngx::ffi::{
    ngx_file_t, ngx_http_request_t, ngx_int_t, ngx_log_t, ngx_msec_t, NGX_ERROR,
    NGX_HTTP_GATEWAY_TIME_OUT, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ERR,
};
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

mod reading;
mod request_body;
mod zerocopy;

use super::gateway;
use super::websocket::{self, FrameReader};
use crate::errlog::{log_client_gone_as, LogTo, CLIENT_GONE_ASGI};
use crate::next::Next;
use crate::nginx::output::{self, SharedOutput};
use crate::nginx::{body, file, headers_out, upload};
use crate::status::{self, Counter, Histogram};
use crate::wsgi::kept::Kept;
use crate::wsgi::start_response::Head;
use crate::wsgi::{interp, watch};
use request_body::Body;

/// What the request and its channel share.
pub struct Exchange {
    /// The request; null once nginx is done with it (the context dropped).
    r: *mut ngx_http_request_t,
    log: *mut ngx_log_t,
    /// How error_log names the app.
    app_name: Rc<str>,
    output: SharedOutput,
    /// The bytes objects nginx's buffers point into.
    kept: Kept,
    /// The request body, as `receive()` has not yet given it.
    body: Body,
    /// The `receive()` calls that wait for more of a streamed body.
    body_waiters: Vec<Py<PyAny>>,
    /// `http.response.start`, until the first body message sends it.
    head: Option<Head>,
    head_sent: bool,
    /// The app declared trailers: the body's end waits for them.
    trailers: bool,
    /// The response's last buffer went to nginx (or nginx ended it: a
    /// header-only response, a redirect).
    complete: bool,
    /// The app's send() waits for the client: resolved on the write event.
    waiter: Option<Py<PyAny>>,
    /// What the request does next, for the gateway to settle after the step.
    next: Option<Next>,
    /// The response failed (logged): the app's end adds nothing.
    failed: bool,
    /// A WebSocket request: its connection's state.
    ws: Option<Ws>,
    /// The file of the last `http.response.zerocopysend`.
    sent_file: Option<zerocopy::SentFile>,
    called: Instant,
    ended: Option<Instant>,
}

/// The requests whose next state a step decided, in order.
type Decided = Vec<Rc<RefCell<Exchange>>>;

thread_local! {
    static DECIDED: RefCell<Decided> = const { RefCell::new(Vec::new()) };
}

/// What the requests of the last step do next: (request, next), each
/// request once, and live (nothing finalizes a request during a step).
pub fn take_decided() -> Vec<(*mut ngx_http_request_t, Next)> {
    let decided = DECIDED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    decided
        .iter()
        .filter_map(|ex| {
            let mut ex = ex.borrow_mut();
            let next = ex.next.take()?;
            (!ex.r.is_null()).then_some((ex.r, next))
        })
        .collect()
}

impl Exchange {
    /// Notes what the request does next; a Finish is final.
    fn decide(this: &Rc<RefCell<Exchange>>, next: Next) {
        let mut ex = this.borrow_mut();
        if ex.r.is_null() || matches!(ex.next, Some(Next::Finish(_) | Next::Redirect(_))) {
            return;
        }
        let first = ex.next.is_none();
        ex.next = Some(next);
        drop(ex);
        if first {
            DECIDED.with(|d| d.borrow_mut().push(this.clone()));
        }
    }

    /// The response's end went to nginx (`rc`), or a write failed: the
    /// request finishes (the client gone, if the write failed).
    fn ended_with(this: &Rc<RefCell<Exchange>>, rc: ngx_int_t) {
        if rc == NGX_ERROR as ngx_int_t {
            Exchange::client_gone(this);
            return;
        }
        let took = {
            let mut ex = this.borrow_mut();
            ex.complete = true;
            let ended = Instant::now();
            ex.ended = Some(ended);
            ended.saturating_duration_since(ex.called)
        };
        status::observe(Histogram::App, took);
        Exchange::decide(this, Next::Finish(rc));
    }

    /// Writing to the client failed: it is gone, and the request ends.
    fn client_gone(this: &Rc<RefCell<Exchange>>) {
        let log = this.borrow().log;
        log_client_gone_as(log, CLIENT_GONE_ASGI);
        Exchange::decide(this, Next::Finish(NGX_ERROR as _));
    }

    /// The response cannot go on: 500 before the head, cut after it; an
    /// open WebSocket closes with 1011 (internal error).
    fn fail(py: Python<'_>, this: &Rc<RefCell<Exchange>>) {
        this.borrow_mut().failed = true;
        let closing = {
            let mut ex = this.borrow_mut();
            match ex.ws.as_mut() {
                Some(ws) if ws.open && !ws.close_sent => {
                    ws.close_sent = true;
                    true
                }
                _ => false,
            }
        };
        if closing {
            let frame = websocket::frame(
                websocket::OP_CLOSE,
                &websocket::close_payload(1011, "internal error"),
            );
            let (rc, _) = write_chunk(this, PyBytes::new(py, &frame), true);
            this.borrow_mut().complete = true;
            Exchange::decide(
                this,
                Next::Finish(if rc == NGX_ERROR as ngx_int_t {
                    rc
                } else {
                    ngx::ffi::NGX_OK as _
                }),
            );
            return;
        }
        let rc = if this.borrow().head_sent {
            NGX_ERROR as ngx_int_t
        } else {
            NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
        };
        Exchange::decide(this, Next::Finish(rc));
    }

    fn log_to(&self) -> LogTo {
        if self.r.is_null() {
            LogTo::Worker
        } else {
            LogTo::Request(self.log)
        }
    }
}

/// The app a request calls, and with what.
pub struct AppCall<'py> {
    /// Its index in the main configuration, and how error_log names it.
    pub index: usize,
    pub name: Rc<str>,
    pub callable: Bound<'py, PyAny>,
    pub scope: Bound<'py, PyAny>,
    /// A WebSocket request: its Sec-WebSocket-Key.
    pub websocket: Option<Vec<u8>>,
    /// `asgi_websocket_max_message_size`.
    pub max_message: usize,
    /// `asgi_websocket_ping_interval`, in ms (0: off).
    pub ping_interval: ngx_msec_t,
}

/// A WebSocket's side of the connection.
struct Ws {
    reader: FrameReader,
    /// The handshake's 101 went out: the connection speaks frames.
    open: bool,
    /// The server's close frame went out.
    close_sent: bool,
    /// The app has enough messages waiting: nginx stops reading.
    paused: bool,
    /// How long the client may be quiet before it is pinged, in ms (0:
    /// never); and whether the ping is out, unanswered.
    ping_interval: ngx_msec_t,
    ping_sent: bool,
}

/// The request's side, in its context.
pub struct AsgiRequest {
    exchange: Rc<RefCell<Exchange>>,
    /// gateway.py's HttpExchange.
    python: Option<Py<PyAny>>,
}

impl AsgiRequest {
    /// Starts the app's task for request `r` (it runs at the next step).
    ///
    /// # Safety
    /// `r` must be a live request owned by this module whose body nginx has
    /// read; `output` its output.
    pub unsafe fn start(
        py: Python<'_>,
        r: *mut ngx_http_request_t,
        log: *mut ngx_log_t,
        output: &SharedOutput,
        call: AppCall<'_>,
    ) -> PyResult<AsgiRequest> {
        let body = if upload::streaming(r) {
            Body::Streaming // counted as nginx reads it
        } else {
            let len = body::body_len(r);
            status::add(Counter::RequestBodyBytes, len as u64);
            let body = body::take_body(r, len)
                .map_err(|e| PyOSError::new_err(format!("reading the request body failed: {e}")))?;
            Body::Whole(body)
        };
        let exchange = Rc::new(RefCell::new(Exchange {
            r,
            log,
            app_name: call.name,
            output: output.clone(),
            kept: Kept::default(),
            body,
            body_waiters: Vec::new(),
            head: None,
            head_sent: false,
            trailers: false,
            complete: false,
            waiter: None,
            next: None,
            failed: false,
            ws: call.websocket.as_ref().map(|_| Ws {
                reader: FrameReader::new(call.max_message),
                open: false,
                close_sent: false,
                paused: false,
                ping_interval: call.ping_interval,
                ping_sent: false,
            }),
            sent_file: None,
            called: Instant::now(),
            ended: None,
        }));
        let channel = Py::new(
            py,
            Channel {
                exchange: exchange.clone(),
            },
        )?
        .into_bound(py)
        .into_any();
        let python = match &call.websocket {
            Some(key) => {
                gateway::start_websocket(py, channel, call.callable, call.scope, call.index, key)?
            }
            None => gateway::start_http(py, channel, call.callable, call.scope, call.index)?,
        };
        gateway::request_started();
        Ok(AsgiRequest {
            exchange,
            python: Some(python),
        })
    }

    /// The write event found nginx's output written: the send() that waits
    /// for it goes on.
    pub fn resume(&mut self) {
        let waiter = {
            let mut ex = self.exchange.borrow_mut();
            let done = output::lock(&ex.output).done();
            ex.kept.release_upto(done);
            ex.waiter.take()
        };
        if let Some(waiter) = waiter {
            Python::attach(|py| wake(py, waiter.bind(py)));
        }
    }

    /// The client's connection is readable while the app waits for more of
    /// a streamed body: its receive() goes on at the loop's step. False
    /// when none waits (the event may then be the client leaving).
    pub fn body_readable(&mut self) -> bool {
        Exchange::body_readable(&self.exchange)
    }

    /// How long the app has run: from its call to its response's end.
    pub fn app_time(&self) -> Option<Duration> {
        let ex = self.exchange.borrow();
        Some(
            ex.ended
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(ex.called),
        )
    }

    /// nginx is done with the request (its context is dropped): a response
    /// that is not complete has lost its client, and the app's task is
    /// cancelled; a receive() waiting gets `http.disconnect`.
    pub fn end_request(&mut self) {
        let complete = {
            let mut ex = self.exchange.borrow_mut();
            if ex.r.is_null() {
                return;
            }
            ex.r = std::ptr::null_mut();
            ex.next = None;
            ex.complete
        };
        gateway::request_ended();
        if !interp::ready() {
            return;
        }
        Python::attach(|py| {
            {
                let mut ex = self.exchange.borrow_mut();
                ex.kept.clear();
                ex.waiter = None;
                ex.body = Body::Given;
                ex.body_waiters.clear();
            }
            let Some(python) = self.python.take() else {
                return;
            };
            match python
                .bind(py)
                .call_method1("close", (complete,))
                .and_then(|woke| woke.is_truthy())
            {
                // A cancellation or a disconnect: they run at the next step.
                Ok(true) => gateway::step_soon(),
                Ok(false) => {}
                Err(e) => interp::log_exception(
                    py,
                    &e,
                    &LogTo::Worker,
                    NGX_LOG_ERR as _,
                    "asgi: ending a request failed",
                ),
            }
        });
    }
}

/// A chunk of a response: bytes the app made, or a range of a file it
/// has open (`http.response.zerocopysend`), which nginx sends from there.
pub(super) enum Chunk<'py> {
    Bytes(Bound<'py, PyBytes>),
    File {
        file: *mut ngx_file_t,
        offset: u64,
        len: usize,
    },
}

impl<'py> From<Bound<'py, PyBytes>> for Chunk<'py> {
    fn from(bytes: Bound<'py, PyBytes>) -> Chunk<'py> {
        Chunk::Bytes(bytes)
    }
}

/// Hands a chunk to nginx's filters, flushed; `end`: the last buffer.
/// (rc, whether nginx holds more than the client took).
fn write_chunk<'py>(
    this: &Rc<RefCell<Exchange>>,
    chunk: impl Into<Chunk<'py>>,
    end: bool,
) -> (ngx_int_t, bool) {
    let chunk = chunk.into();
    let mut ex = this.borrow_mut();
    if ex.r.is_null() {
        return (NGX_ERROR as _, false);
    }
    let len = match &chunk {
        Chunk::Bytes(bytes) => bytes.as_bytes().len(),
        Chunk::File { len, .. } => *len,
    };
    let mut out = output::lock(&ex.output);
    let mut rc = NGX_OK_RC;
    if len > 0 {
        // SAFETY: the request is live (r is not null); the bytes object is
        // kept (below) until `done` counts the chunk or the request ends;
        // the request pool closes the file when the request ends.
        let written = unsafe {
            match &chunk {
                Chunk::Bytes(bytes) => out.write(bytes.as_bytes().as_ptr(), len, true, end),
                Chunk::File { file, offset, len } => {
                    out.write_file(*file, *offset, *len, true, end)
                }
            }
        };
        match written {
            Ok(code) => rc = code,
            Err(()) => rc = NGX_ERROR as ngx_int_t,
        }
    } else if !end {
        // An empty chunk pushes out what was sent so far (the head).
        // SAFETY: as above.
        rc = unsafe { out.send_queue(true) };
    }
    if end && rc != NGX_ERROR as ngx_int_t {
        // SAFETY: as above.
        rc = unsafe { out.send_last() };
    }
    let must_wait = !end && out.must_wait();
    let done = out.done();
    drop(out);
    if len > 0 {
        match chunk {
            Chunk::Bytes(bytes) => ex.kept.push(bytes.unbind()),
            Chunk::File { .. } => ex.kept.push_spilled(),
        }
    }
    ex.kept.release_upto(done);
    drop(ex);
    if must_wait && rc != NGX_ERROR as ngx_int_t {
        // nginx holds what the socket did not take: its write event sends
        // the rest (and wakes a send() that waits for it).
        Exchange::decide(this, Next::WaitForClient);
    }
    (rc, must_wait)
}

/// Resolves a future send() or receive() waits on, unless the task was
/// cancelled meanwhile.
fn wake(py: Python<'_>, waiter: &Bound<'_, PyAny>) {
    let done = waiter
        .call_method0("done")
        .and_then(|d| d.is_truthy())
        .unwrap_or(true);
    if !done {
        if let Err(e) = waiter.call_method1("set_result", (py.None(),)) {
            interp::log_exception(py, &e, &LogTo::Worker, NGX_LOG_ERR as _, "asgi");
        }
    }
}

/// What gateway.py's HttpExchange calls: one per request.
#[pyclass(unsendable, module = "ngx_wsgi")]
pub struct Channel {
    exchange: Rc<RefCell<Exchange>>,
}

#[pymethods]
impl Channel {
    /// The next piece of the body: (bytes, more_body), or None when there
    /// is none yet (wait_body) or the body cannot be read on.
    fn read_body<'py>(&self, py: Python<'py>) -> PyResult<request_body::BodyPiece<'py>> {
        Exchange::read_body(&self.exchange, py)
    }

    /// receive() waits on `waiter` for more of a streamed body: "waiting",
    /// "ended" or "failed" (then there is none to wait for).
    fn wait_body(&self, waiter: Py<PyAny>) -> &'static str {
        Exchange::wait_body(&self.exchange, waiter)
    }

    /// `http.response.start`: the status line and headers, checked now.
    fn start(&self, line: &str, headers: &Bound<'_, PyAny>, trailers: bool) -> PyResult<()> {
        let mut head = Head::new(line.as_bytes()).map_err(PyValueError::new_err)?;
        checked_fields(headers, "http.response.start", &mut head)?;
        let mut ex = self.exchange.borrow_mut();
        ex.trailers = trailers;
        ex.head = Some(head);
        Ok(())
    }

    /// `http.response.body`: the chunk goes down nginx's filters, flushed;
    /// true when nginx holds more than the client took (the app's send()
    /// then waits for the write event).
    fn body(&self, chunk: Bound<'_, PyBytes>, more: bool) -> bool {
        let len = chunk.as_bytes().len();
        if !self.send_head_once(if more { None } else { Some(len) }) {
            return false;
        }
        self.send_body(chunk.into(), more)
    }

    /// `http.response.zerocopysend`: `count` bytes of the app's open file
    /// `fd` from `offset` go down the filters as a file buffer (nginx sends
    /// them with sendfile where it can), flushed; true while nginx holds
    /// more than the client took. Without an offset they start at the
    /// file's position, which moves past them, as `os.sendfile` does.
    #[pyo3(signature = (fd, offset, count, more))]
    fn zerocopy(
        &self,
        py: Python<'_>,
        fd: i32,
        offset: Option<u64>,
        count: Option<u64>,
        more: bool,
    ) -> PyResult<bool> {
        let range = zerocopy::range(fd, offset, count)?;
        if !self.send_head_once(if more { None } else { Some(range.len) }) {
            return Ok(false);
        }
        let Some(file) = Exchange::file_for(&self.exchange, fd, &range)? else {
            Exchange::fail(py, &self.exchange);
            return Ok(false);
        };
        range.advance_position(fd, offset)?;
        Ok(self.send_body(
            Chunk::File {
                file,
                offset: range.offset,
                len: range.len,
            },
            more,
        ))
    }

    /// The app's send() waits on `waiter` until the client takes what
    /// nginx holds.
    fn wait(&self, waiter: Py<PyAny>) {
        let live = {
            let mut ex = self.exchange.borrow_mut();
            ex.waiter = Some(waiter);
            !ex.r.is_null()
        };
        if live {
            Exchange::decide(&self.exchange, Next::WaitForClient);
        }
    }

    /// `http.response.pathsend`: nginx sends the file as the whole body.
    fn path(&self, path: &str) -> PyResult<()> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if !self.send_head_once(Some(len as usize)) {
            return Ok(());
        }
        let this = &self.exchange;
        let ex = this.borrow();
        let r = ex.r;
        // SAFETY: the request is live; the request pool closes the file.
        let rc = unsafe {
            match file::owned_by_request_pool(r, OwnedFd::from(file), path.as_bytes()) {
                Some(f) => output::lock(&ex.output)
                    .send_file_last(f, 0, len as usize)
                    .unwrap_or(NGX_ERROR as _),
                None => NGX_ERROR as _,
            }
        };
        drop(ex);
        Exchange::ended_with(this, rc);
        Ok(())
    }

    /// `http.response.trailers`: fields after the body (chunked HTTP/1.1,
    /// HTTP/2); the last of them ends the response.
    fn trailers(&self, headers: &Bound<'_, PyAny>, more: bool) -> PyResult<()> {
        let mut check = Head::new(b"200 ").map_err(PyValueError::new_err)?;
        let fields = checked_fields(headers, "http.response.trailers", &mut check)?;
        let this = &self.exchange;
        let ex = this.borrow();
        if ex.r.is_null() || ex.complete || !ex.head_sent {
            return Ok(());
        }
        let r = ex.r;
        for (name, value) in &fields {
            // SAFETY: the request is live and its body not ended.
            if unsafe { headers_out::add_trailer(r, name, value) }.is_err() {
                drop(ex);
                Exchange::fail(headers.py(), this);
                return Ok(());
            }
        }
        if more {
            return Ok(());
        }
        // SAFETY: as above.
        let rc = unsafe { output::lock(&ex.output).send_last() };
        drop(ex);
        Exchange::ended_with(this, rc);
        Ok(())
    }

    /// A message nginx cannot send: logged, and the response ends.
    fn refuse(&self, py: Python<'_>, text: &str) {
        let ex = self.exchange.borrow();
        ex.log_to().write(
            NGX_LOG_ERR as _,
            &format!("asgi: app \"{}\": {text}", ex.app_name),
        );
        drop(ex);
        status::count(Counter::AppExceptions);
        Exchange::fail(py, &self.exchange);
    }

    /// `websocket.accept`: the handshake's 101 with `accept` (the key's
    /// answer), the subprotocol and the app's headers.
    fn ws_accept(
        &self,
        accept: &[u8],
        subprotocol: Option<&str>,
        headers: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"Upgrade".to_vec(), b"websocket".to_vec()),
            (b"Sec-WebSocket-Accept".to_vec(), accept.to_vec()),
        ];
        let mut check = Head::new(b"200 ").map_err(PyValueError::new_err)?;
        if let Some(protocol) = subprotocol {
            check
                .add_field(b"sec-websocket-protocol", protocol.as_bytes())
                .map_err(PyValueError::new_err)?;
            fields.push((
                b"Sec-WebSocket-Protocol".to_vec(),
                protocol.as_bytes().to_vec(),
            ));
        }
        fields.extend(checked_fields(headers, "websocket.accept", &mut check)?);
        let this = &self.exchange;
        let mut ex = this.borrow_mut();
        let r = ex.r;
        if r.is_null() || ex.head_sent {
            return Ok(());
        }
        ex.head_sent = true;
        // SAFETY: the request is live, its header not sent.
        let rc = unsafe { headers_out::send_switching_protocols(r, &fields) };
        let (rc, must_wait) = if rc == NGX_ERROR as ngx_int_t {
            (rc, false)
        } else {
            let mut out = output::lock(&ex.output);
            // SAFETY: as above; the flush pushes the 101 out now.
            (unsafe { out.send_queue(true) }, out.must_wait())
        };
        if rc == NGX_ERROR as ngx_int_t {
            drop(ex);
            Exchange::client_gone(this);
            return Ok(());
        }
        if let Some(ws) = ex.ws.as_mut() {
            ws.open = true;
            // SAFETY: the request is live; bytes the client sent after its
            // handshake are the first frames.
            unsafe {
                let b = (*r).header_in;
                if !b.is_null() && (*b).pos < (*b).last {
                    let len = (*b).last.offset_from((*b).pos) as usize;
                    ws.reader.feed(std::slice::from_raw_parts((*b).pos, len));
                    (*b).pos = (*b).last;
                }
            }
        }
        // SAFETY: as above. An idle connection is one nginx closes when the
        // worker exits, through its read handler: the gateway's, which
        // says "going away" first. The read event starts the frames.
        unsafe {
            let c = (*r).connection;
            (*r).set_keepalive(0);
            (*c).set_idle(1);
            if let Some(handler) = gateway::websocket_read_handler() {
                (*(*c).read).handler = Some(handler);
            }
            ngx::ffi::ngx_post_event(
                (*c).read,
                std::ptr::addr_of_mut!(ngx::ffi::ngx_posted_events),
            );
        }
        if let Some(ws) = ex.ws.as_ref() {
            // SAFETY: as above.
            unsafe { reading::keep_alive(r, ws.ping_interval) };
        }
        drop(ex);
        if must_wait {
            Exchange::decide(this, Next::WaitForClient);
        }
        Ok(())
    }

    /// `websocket.send`: one frame; true while nginx holds more than the
    /// client took.
    fn ws_send(&self, py: Python<'_>, data: &[u8], text: bool) -> PyResult<bool> {
        let open = {
            let ex = self.exchange.borrow();
            !ex.r.is_null() && ex.ws.as_ref().is_some_and(|ws| ws.open && !ws.close_sent)
        };
        if !open {
            return Err(PyOSError::new_err("the WebSocket is closed"));
        }
        let opcode = if text {
            websocket::OP_TEXT
        } else {
            websocket::OP_BINARY
        };
        let at = websocket::header_len(data.len());
        let frame = PyBytes::new_with(py, at + data.len(), |buf| {
            websocket::write_header(buf, opcode, data.len());
            buf[at..].copy_from_slice(data);
            Ok(())
        })?;
        let (rc, must_wait) = write_chunk(&self.exchange, frame, false);
        if rc == NGX_ERROR as ngx_int_t {
            Exchange::client_gone(&self.exchange);
            return Err(PyOSError::new_err("the client connection is gone"));
        }
        Ok(must_wait)
    }

    /// `websocket.close` of an open WebSocket: the close frame, then the
    /// connection ends once nginx has sent it.
    fn ws_close(&self, py: Python<'_>, code: u16, reason: &str) -> PyResult<()> {
        if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
            return Err(PyValueError::new_err(format!(
                "close code {code} may not be sent: it must be 1000-1003, 1007-1014 or 3000-4999"
            )));
        }
        let this = &self.exchange;
        {
            let mut ex = this.borrow_mut();
            let live = !ex.r.is_null();
            match ex.ws.as_mut() {
                Some(ws) if !ws.close_sent && live => ws.close_sent = true,
                _ => return Ok(()),
            }
        }
        let frame = PyBytes::new(
            py,
            &websocket::frame(websocket::OP_CLOSE, &websocket::close_payload(code, reason)),
        );
        let (rc, _) = write_chunk(this, frame, true);
        this.borrow_mut().complete = true;
        Exchange::decide(
            this,
            Next::Finish(if rc == NGX_ERROR as ngx_int_t {
                NGX_ERROR as _
            } else {
                rc
            }),
        );
        Ok(())
    }

    /// `websocket.close` before the handshake: 403.
    fn ws_deny(&self) {
        let sent = self.exchange.borrow().head_sent;
        if !sent {
            self.exchange.borrow_mut().complete = true;
            Exchange::decide(
                &self.exchange,
                Next::Finish(ngx::ffi::NGX_HTTP_FORBIDDEN as _),
            );
        }
    }

    /// The app took its waiting messages: nginx reads the client again.
    fn ws_resume(&self) {
        let mut ex = self.exchange.borrow_mut();
        let r = ex.r;
        if let Some(ws) = ex.ws.as_mut() {
            ws.paused = false;
            if !r.is_null() {
                // SAFETY: the request is live; its read event runs the
                // frames after this step.
                unsafe {
                    ngx::ffi::ngx_post_event(
                        (*(*r).connection).read,
                        std::ptr::addr_of_mut!(ngx::ffi::ngx_posted_events),
                    )
                };
            }
        }
    }

    /// Whether the response is complete.
    fn complete(&self) -> bool {
        self.exchange.borrow().complete
    }

    /// The app's task ended: with `error` (logged with its traceback), or
    /// returning; a response it did not complete ends with a 500 (or cut).
    fn app_ended(&self, py: Python<'_>, error: Option<Bound<'_, PyAny>>) {
        let this = &self.exchange;
        let (log_to, gone, complete, head_sent) = {
            let ex = this.borrow();
            (ex.log_to(), ex.r.is_null(), ex.complete, ex.head_sent)
        };
        // Only a message needs the name: not copied for every request.
        let name = || this.borrow().app_name.clone();
        if let Some(error) = error {
            if error.is_instance_of::<watch::ReadTimeout>() {
                // The watch reported it (and its stack): the response ends
                // as a WSGI call's does, 504 before the head.
                if !gone && !complete {
                    if head_sent {
                        Exchange::fail(py, this);
                    } else {
                        this.borrow_mut().failed = true;
                        Exchange::decide(this, Next::Finish(NGX_HTTP_GATEWAY_TIME_OUT as _));
                    }
                }
                return;
            }
            status::count(Counter::AppExceptions);
            let what = if complete {
                format!(
                    "asgi: app \"{}\" raised after its response was complete",
                    name()
                )
            } else {
                format!("asgi: app \"{}\" raised", name())
            };
            let err = PyErr::from_value(error);
            interp::log_exception(py, &err, &log_to, NGX_LOG_ERR as _, &what);
            if !gone && !complete {
                Exchange::fail(py, this);
            }
            return;
        }
        if gone || complete || this.borrow().failed {
            return;
        }
        let ws_open = this.borrow().ws.as_ref().map(|ws| ws.open);
        match ws_open {
            // The app returned with its WebSocket open: it closes (1000).
            Some(true) => {
                let _ = self.ws_close(py, 1000, "");
                return;
            }
            // It returned without accepting: 403, as a refusal.
            Some(false) if !head_sent => {
                self.ws_deny();
                return;
            }
            _ => {}
        }
        let what = if head_sent {
            "returned before the response's last body message"
        } else {
            "returned without sending a response"
        };
        log_to.write(
            NGX_LOG_ERR as _,
            &format!("asgi: app \"{}\" {what}", name()),
        );
        Exchange::fail(py, this);
    }
}

/// `Ok` of nginx's output calls that did not fail.
const NGX_OK_RC: ngx_int_t = ngx::ffi::NGX_OK as ngx_int_t;

impl Channel {
    /// A body chunk after the head: the response ends with it unless
    /// `more` (or trailers follow); true while nginx holds more than the
    /// client took.
    fn send_body(&self, chunk: Chunk<'_>, more: bool) -> bool {
        let this = &self.exchange;
        let end = !more && !this.borrow().trailers;
        let (rc, must_wait) = write_chunk(this, chunk, end);
        if end || rc == NGX_ERROR as ngx_int_t {
            Exchange::ended_with(this, rc);
            return false;
        }
        must_wait
    }

    /// Sends the head before the first body: false when the response ends
    /// here (a header-only response, an error, a redirect) or nginx is
    /// done with the request. `known_length`: the whole body's length,
    /// when this message is the whole body.
    fn send_head_once(&self, known_length: Option<usize>) -> bool {
        let this = &self.exchange;
        let mut ex = this.borrow_mut();
        if ex.r.is_null() || ex.complete {
            return false;
        }
        if ex.head_sent {
            return true;
        }
        let Some(head) = ex.head.take() else {
            return false;
        };
        ex.head_sent = true;
        let r = ex.r;
        if head.accel.redirect.is_some() {
            // X-Accel-Redirect: nginx serves the request from there.
            ex.complete = true;
            drop(ex);
            Exchange::decide(this, Next::Redirect(Box::new(head)));
            return false;
        }
        let known_length = known_length.filter(|_| !ex.trailers);
        // SAFETY: the request is live (r is not null), its header not sent.
        let sent = unsafe {
            if ex.trailers {
                (*r).set_expect_trailers(1);
            }
            headers_out::send_head(r, &head, known_length)
        };
        match sent {
            Ok(()) => true,
            Err(rc) => {
                // A header-only response (HEAD, 204, 304) is complete; the
                // app's body messages are dropped quietly.
                ex.complete = rc != NGX_ERROR as ngx_int_t;
                ex.ended = Some(Instant::now());
                drop(ex);
                Exchange::decide(this, Next::Finish(rc));
                false
            }
        }
    }
}

/// The `headers` of an ASGI message (`what`): each a `[name, value]` pair
/// of bytes that passes `head`'s checks (and is added to it); as bytes.
fn checked_fields(
    headers: &Bound<'_, PyAny>,
    what: &str,
    head: &mut Head,
) -> PyResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut fields = Vec::new();
    for (i, item) in headers.try_iter()?.enumerate() {
        let item = item?;
        let (name, value) = pair_of_bytes(&item).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "header {i} of '{what}' must be a [name, value] pair of bytes, not {}",
                short_repr(&item)
            ))
        })?;
        head.add_field(name.as_bytes(), value.as_bytes())
            .map_err(PyValueError::new_err)?;
        fields.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
    }
    Ok(fields)
}

/// A `[name, value]` pair of bytes (a tuple or a list), as ASGI has them.
fn pair_of_bytes<'py>(
    item: &Bound<'py, PyAny>,
) -> Option<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    if item.len().ok()? != 2 || item.is_instance_of::<pyo3::types::PyString>() {
        return None;
    }
    let name = item.get_item(0).ok()?.cast_into::<PyBytes>().ok()?;
    let value = item.get_item(1).ok()?.cast_into::<PyBytes>().ok()?;
    Some((name, value))
}

fn short_repr(item: &Bound<'_, PyAny>) -> String {
    let mut text = item.repr().map(|r| r.to_string()).unwrap_or_default();
    if text.len() > 80 {
        let mut cut = 77;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}
