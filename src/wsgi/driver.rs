//! The response driver: the steps of a WSGI response that do not depend on
//! where the app runs, written once. To start: load the app, build the
//! environ, call the app, start iterating. Then chunk by chunk: the head
//! before the first non-empty chunk (or at the end), the Content-Length the
//! app declared, whether a chunk must reach the client at once, the end;
//! and the error_log text of every failure.
//!
//! Where the response goes is a `Sink`: nginx's output filters inline
//! (`inline.rs`), the hand-off to the event loop in thread mode
//! (`threads/producer.rs`). Those files only schedule: when to ask for the
//! next chunk, and how to wait.

use std::sync::Arc;

use ngx::ffi::{
    ngx_int_t, NGX_ERROR, NGX_HTTP_GATEWAY_TIME_OUT, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ERR,
    NGX_LOG_INFO, NGX_LOG_WARN,
};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::accel::IgnoreHeaders;
use super::call::Call;
use super::environ::{self, Extras};
use super::errors::ErrorLog;
use super::file_wrapper::FileBody;
use super::flush::{Flush, FlushTarget};
use super::input::WsgiInput;
use super::interp;
use super::start_response::Head;
use super::stream::RequestBodyError;
use super::watch::{Timeout, Watch};
use crate::config::AppSpec;
use crate::errlog::{LogTo, CLIENT_GONE};
use crate::status::{self, Counter};
use crate::vars::Vars;

/// Where a response goes.
pub trait Sink {
    /// The response head, with the body length a one-item list gives.
    /// `Err(rc)`: the response ends here (a header-only response, or nginx
    /// refused the head): finalize with `rc`.
    fn head(&mut self, head: Head, known_length: Option<usize>) -> Result<(), ngx_int_t>;

    /// The first `len` bytes of `chunk`; with `flush` they must reach the
    /// client now, without waiting for more.
    fn chunk(&mut self, chunk: Bound<'_, PyBytes>, len: usize, flush: bool) -> Result<(), Refused>;

    /// The body is complete: its end. The code to finalize with.
    fn end(&mut self) -> Result<ngx_int_t, Gone>;

    /// The whole body is `file` (`wsgi.file_wrapper`), which nginx sends,
    /// and its end. The code to finalize with.
    fn file_body(&mut self, file: FileBody) -> Result<ngx_int_t, Gone>;
}

/// The client connection is gone.
pub struct Gone;

/// Why a sink did not take a chunk.
pub enum Refused {
    /// The client connection is gone.
    Gone,
    /// The sink failed, and logged why (thread mode: the temp file could
    /// not be written): the response is aborted.
    Failed,
}

/// How a response ended.
pub enum End {
    /// The body is complete and its end went to the sink: inline, `rc` is
    /// nginx's answer to the last buffer; in thread mode the event loop
    /// sends that buffer when it gets here.
    Complete(ngx_int_t),
    /// Finalize with `rc` as it is: a header-only response, a failure (500
    /// before the head is out; NGX_ERROR, which aborts the response, after),
    /// a client that left.
    Finalize(ngx_int_t),
    /// The app's `X-Accel-Redirect`: nginx serves the request from there,
    /// with the head's fields an internal redirect keeps. Its iterable is
    /// closed, and nothing of its body was sent.
    Redirect(Box<Head>),
}

/// What one step of the driver did.
pub enum Step {
    /// A chunk of this many bytes went to the sink (0: an empty chunk).
    Chunk(usize),
    /// The response is over.
    End(End),
}

/// What the driver needs to start a response.
pub struct Start<'a, 'py> {
    /// The app, by index in the main configuration.
    pub app: usize,
    pub spec: &'a AppSpec,
    pub vars: &'a Vars,
    /// `wsgi.input`, or why it could not be made.
    pub input: PyResult<WsgiInput<'py>>,
    /// Where the app's failures and `wsgi.errors` go.
    pub log: LogTo,
    /// Where `x-wsgiorg.flush` goes.
    pub flush: Arc<dyn FlushTarget>,
    /// The app runs on a pool thread.
    pub multithread: bool,
    /// The location's `wsgi_buffering`.
    pub buffering: bool,
    /// The location's `wsgi_ignore_headers`.
    pub ignore: IgnoreHeaders,
    /// The watch of the thread that runs the app, and the location's
    /// `wsgi_read_timeout` (ms) for each call into it.
    pub watch: &'static Watch,
    pub read_timeout: u64,
}

/// Every call into the app runs under the watchdog (`wsgi_read_timeout`).
#[derive(Clone, Copy)]
struct Deadline {
    watch: &'static Watch,
    app: usize,
    limit_ms: u64,
}

impl Deadline {
    /// Runs `call` under the watch; with it, whether it timed out (then
    /// `timeout` says how).
    #[inline(always)]
    fn run<R>(self, call: impl FnOnce() -> R) -> (R, bool) {
        /// Leaves the watch if `call` panics (dropped only then): a call
        /// left open would time out and interrupt what this thread runs next.
        struct Inside(&'static Watch);
        impl Drop for Inside {
            fn drop(&mut self) {
                self.0.leave();
            }
        }
        self.watch.enter(self.app, self.limit_ms);
        let inside = Inside(self.watch);
        let result = call();
        std::mem::forget(inside);
        (result, self.watch.leave())
    }

    /// The timeout of the call `run` said timed out.
    #[cold]
    fn timeout(self, py: Python<'_>) -> Timeout {
        self.watch.timeout(py)
    }
}

/// How starting a response failed.
struct Failure {
    err: PyErr,
    /// The heading of its error_log message.
    what: String,
}

/// One response, from the app's call to its end.
pub struct Response {
    call: Call,
    deadline: Deadline,
    /// `wsgi.input`, when it reads the body's temp file.
    input_file: Option<Py<PyAny>>,
    log: LogTo,
    errors: Py<ErrorLog>,
    flush: Py<Flush>,
    limit: BodyLimit,
    /// The head went to the sink.
    head_sent: bool,
    /// Chunks may wait in nginx's filters: the location's `wsgi_buffering`,
    /// or the app's `X-Accel-Buffering` once the head is known.
    buffering: bool,
    /// X-Accel-* fields not acted on.
    ignore: IgnoreHeaders,
    /// The body, when nginx is to send it from a file (taken at the first
    /// step).
    file: Option<FileBody>,
    /// The head is that of a file body.
    file_head: bool,
}

impl Response {
    /// Loads the app if needed and calls it, the response going into
    /// `slot` (built there: it is large, and moving it costs); on failure,
    /// how the request ends (the failure is logged).
    pub fn start(py: Python<'_>, start: Start<'_, '_>, slot: &mut Option<Response>) -> Option<End> {
        let log = start.log.clone();
        let deadline = Deadline {
            watch: start.watch,
            app: start.app,
            limit_ms: start.read_timeout,
        };
        let (called, timed_out) = deadline.run(|| call_app(py, start, deadline, slot));
        if timed_out {
            let timeout = deadline.timeout(py);
            return Some(match slot.take() {
                Some(response) => response.abandon(py, timeout),
                None => timeout_end(&log, timeout, false),
            });
        }
        match called {
            Ok(()) => None,
            Err(Failure { err, what }) => Some(match slot.take() {
                Some(mut response) => {
                    let end = response.fail(py, &err, &what);
                    response.release(py);
                    end
                }
                None => End::Finalize(report_failure(py, &err, &log, &what, false)),
            }),
        }
    }

    /// The start timed out: close and release the response; how it ends.
    fn abandon(mut self, py: Python<'_>, timeout: Timeout) -> End {
        let end = self.timed_out(py, timeout);
        self.release(py);
        end
    }

    /// Asks the app for its next chunk and hands it to `sink`.
    pub fn step(&mut self, py: Python<'_>, sink: &mut impl Sink) -> Step {
        if let Some(file) = self.file.take() {
            return Step::End(self.send_file(py, sink, file));
        }
        let (next, timed_out) = self.deadline.run(|| self.call.next_chunk(py));
        if timed_out {
            let timeout = self.deadline.timeout(py);
            return Step::End(self.timed_out(py, timeout));
        }
        let chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Step::End(self.finish(py, sink)),
            Err(e) => {
                return Step::End(self.fail(py, &e, "wsgi: the app's response iterable raised"))
            }
        };
        if chunk.as_bytes().is_empty() {
            return Step::Chunk(0);
        }
        if !self.head_sent {
            if let Some(end) = self.hand_over_head(py, sink) {
                return Step::End(end);
            }
        }
        let (len, warning) = self.limit.admit(chunk.as_bytes().len());
        if let Some(warning) = warning {
            self.log.write(NGX_LOG_WARN as _, &warning);
        }
        if len > 0 {
            let flush = !self.buffering || self.flush.get().take_pending();
            match sink.chunk(chunk, len, flush) {
                Ok(()) => {}
                Err(Refused::Gone) => return Step::End(self.client_gone(py)),
                Err(Refused::Failed) => {
                    self.close(py);
                    return Step::End(End::Finalize(NGX_ERROR as _));
                }
            }
        }
        if self.limit.reached() {
            // The whole declared body is out: stop iterating.
            return Step::End(self.finish(py, sink));
        }
        Step::Chunk(len)
    }

    /// The app returned `wsgi.file_wrapper` over a regular file: nginx
    /// sends the file from the app's position, as far as the app's
    /// Content-Length goes (and gives it as Content-Length if the app gave
    /// none). The app's file is closed once the body is handed over: nginx
    /// has its own descriptor, and the app's `close()` (Django's
    /// request_finished, say) runs on the app's thread.
    fn send_file(&mut self, py: Python<'_>, sink: &mut impl Sink, mut file: FileBody) -> End {
        self.call.known_length = Some(file.len as usize);
        self.file_head = true;
        if let Some(end) = self.hand_over_head(py, sink) {
            return end;
        }
        let (len, warning) = self.limit.admit(file.len as usize);
        if let Some(warning) = warning {
            self.log.write(NGX_LOG_WARN as _, &warning);
        }
        file.len = len as u64;
        self.close(py);
        if let Some(error) = self.limit.shortfall() {
            self.log.write(NGX_LOG_ERR as _, &error);
            return End::Finalize(NGX_ERROR as _);
        }
        let sent = if file.len == 0 {
            sink.end() // an empty file: nginx takes no empty file buffer
        } else {
            sink.file_body(file)
        };
        match sent {
            Ok(rc) => End::Complete(rc),
            Err(Gone) => self.client_gone(py),
        }
    }

    /// Whether the head went to the sink.
    pub fn head_sent(&self) -> bool {
        self.head_sent
    }

    /// Hands the head over; `Some` when the response ends here.
    fn hand_over_head(&mut self, py: Python<'_>, sink: &mut impl Sink) -> Option<End> {
        let mut head = match self.call.take_head(py) {
            Ok(head) => head,
            Err(e) => return Some(self.fail(py, &e, "wsgi: the app broke the WSGI protocol")),
        };
        head.accel = std::mem::take(&mut head.accel).ignoring(self.ignore);
        if head.accel.redirect.is_some() {
            // nginx serves the request from elsewhere: the body is not sent.
            self.close(py);
            return Some(End::Redirect(Box::new(head)));
        }
        self.limit = BodyLimit::new(head.content_length);
        self.buffering = head.accel.buffering.unwrap_or(self.buffering);
        head.file_body = self.file_head;
        match sink.head(head, self.call.known_length) {
            Ok(()) => {
                self.head_sent = true;
                self.flush.get().header_sent();
                None
            }
            Err(rc) => {
                self.close(py);
                Some(End::Finalize(rc))
            }
        }
    }

    /// The iterable is exhausted (or the declared body is out): close it,
    /// send the head if no chunk did, and end the body.
    fn finish(&mut self, py: Python<'_>, sink: &mut impl Sink) -> End {
        self.close(py);
        if !self.head_sent {
            // Nothing was sent: the body is empty unless the app said otherwise.
            self.call.known_length.get_or_insert(0);
            if let Some(end) = self.hand_over_head(py, sink) {
                return end;
            }
        }
        if let Some(error) = self.limit.shortfall() {
            self.log.write(NGX_LOG_ERR as _, &error);
            return End::Finalize(NGX_ERROR as _);
        }
        match sink.end() {
            Ok(rc) => End::Complete(rc),
            Err(Gone) => self.client_gone(py),
        }
    }

    /// The app failed: log the traceback, close the iterable, and answer
    /// 500 or, once the head is out, abort the response.
    fn fail(&mut self, py: Python<'_>, err: &PyErr, what: &str) -> End {
        let rc = report_failure(py, err, &self.log, what, self.head_sent);
        self.close(py);
        End::Finalize(rc)
    }

    /// A call into the app took longer than wsgi_read_timeout: 504, or an
    /// abort once the head is out; the iterable is closed.
    #[cold]
    fn timed_out(&mut self, py: Python<'_>, timeout: Timeout) -> End {
        let end = timeout_end(&self.log, timeout, self.head_sent);
        self.close(py);
        end
    }

    /// Calls the iterable's close() (once), under the watchdog too.
    fn close(&mut self, py: Python<'_>) {
        if !self.call.has_close(py) {
            self.call.close(py, &self.log); // lets go of it; nothing runs
            return;
        }
        let (call, log) = (&mut self.call, &self.log);
        let ((), timed_out) = self.deadline.run(|| call.close(py, log));
        if timed_out {
            timeout_end(log, self.deadline.timeout(py), true);
        }
    }

    /// Writing to the client failed: close the iterable and end.
    pub fn client_gone(&mut self, py: Python<'_>) -> End {
        status::count(Counter::ClientAborts);
        self.log.write(NGX_LOG_INFO as _, CLIENT_GONE);
        self.close(py);
        End::Finalize(NGX_ERROR as _)
    }

    /// The response is over: its iterable closed (if it was not), and the
    /// `wsgi.errors` and flush objects, which the app may keep, cut loose.
    pub fn release(mut self, py: Python<'_>) {
        self.close(py);
        detach(self.errors.bind(py), self.flush.bind(py));
        close_input(py, self.input_file.take());
    }
}

/// Closes `wsgi.input`'s temp file, if it has one.
fn close_input(py: Python<'_>, input_file: Option<Py<PyAny>>) {
    if let Some(file) = input_file {
        // A failure to close a file only read is nothing to report.
        let _ = file.bind(py).call_method0(intern!(py, "close"));
    }
}

/// Loads the app and calls it: everything of a response's start that runs
/// the app's code, which `Response::start` runs under the watchdog. Once
/// the app is called, the response is in `slot`, also on failure (its
/// iterable is to be closed).
fn call_app(
    py: Python<'_>,
    start: Start<'_, '_>,
    deadline: Deadline,
    slot: &mut Option<Response>,
) -> Result<(), Failure> {
    let app = interp::app(py, start.app, start.spec).map_err(|err| {
        status::count(Counter::AppImportFailures);
        Failure {
            err,
            what: format!("wsgi: cannot load app \"{}\"", start.spec.display()),
        }
    })?;
    let raised = |err| Failure {
        err,
        what: format!("wsgi: app \"{}\" raised", start.spec.display()),
    };
    let log = start.log;
    let errors = Bound::new(py, ErrorLog::new(log.clone())).map_err(raised)?;
    let flush = Bound::new(py, Flush::new(start.flush)).map_err(raised)?;
    // A body's temp file is closed when the response ends, even if the
    // app keeps wsgi.input.
    let mut input_file = None;
    let called = start.input.and_then(|input| {
        if input.holds_file {
            input_file = Some(input.stream.clone().unbind());
        }
        let extras = Extras {
            input: input.stream,
            errors: errors.clone().into_any(),
            flush: flush.clone().into_any(),
            multithread: start.multithread,
        };
        let environ = environ::build(py, start.vars, extras)?;
        Call::start(py, &app, environ)
    });
    let call = match called {
        Ok(call) => call,
        Err(e) => {
            detach(&errors, &flush);
            close_input(py, input_file);
            return Err(raised(e));
        }
    };
    let file = call.file_body(py);
    let response = slot.insert(Response {
        call,
        deadline,
        input_file,
        log,
        errors: errors.unbind(),
        flush: flush.unbind(),
        limit: BodyLimit::default(),
        head_sent: false,
        buffering: start.buffering,
        ignore: start.ignore,
        file,
        file_head: false,
    });
    if response.file.is_some() {
        return Ok(()); // nginx sends it: nothing to iterate
    }
    response.call.iterate(py).map_err(raised)
}

/// Logs a timeout the thread is to report (inline; in thread mode the
/// event loop has it already), and how the request ends: 504, or an abort
/// once the head is out.
fn timeout_end(log: &LogTo, timeout: Timeout, head_sent: bool) -> End {
    for piece in timeout.report.into_iter().flatten() {
        log.write(NGX_LOG_ERR as _, &piece);
    }
    End::Finalize(if head_sent {
        NGX_ERROR as _
    } else {
        NGX_HTTP_GATEWAY_TIME_OUT as _
    })
}

fn detach(errors: &Bound<'_, ErrorLog>, flush: &Bound<'_, Flush>) {
    if let Ok(mut errors) = errors.try_borrow_mut() {
        errors.detach();
    }
    flush.get().detach();
}

/// Logs an app failure with its traceback; the code to finalize with: 500,
/// or, once the header is out, NGX_ERROR, which aborts the response so the
/// client cannot take a truncated body for a whole one.
fn report_failure(
    py: Python<'_>,
    err: &PyErr,
    log: &LogTo,
    what: &str,
    header_sent: bool,
) -> ngx_int_t {
    if err.is_instance_of::<RequestBodyError>(py) {
        // The module raised it in wsgi.input, and logged why: the request
        // has ended already; the app only let it through.
        log.write(
            NGX_LOG_INFO as _,
            &format!("{what}: {err} (the request body failed, as logged before)"),
        );
        return NGX_ERROR as _;
    }
    status::count(Counter::AppExceptions);
    if header_sent {
        let what = format!("{what} after the response header was sent; aborting the response");
        interp::log_exception(py, err, log, NGX_LOG_ERR as _, &what);
        NGX_ERROR as _
    } else {
        interp::log_exception(py, err, log, NGX_LOG_ERR as _, what);
        NGX_HTTP_INTERNAL_SERVER_ERROR as _
    }
}

/// The body length the app's Content-Length header allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyLimit {
    declared: Option<u64>,
    remaining: Option<u64>,
}

impl BodyLimit {
    pub fn new(declared: Option<u64>) -> BodyLimit {
        BodyLimit {
            declared,
            remaining: declared,
        }
    }

    /// How much of a `len`-byte chunk may be sent; the warning for
    /// error_log when that is less.
    pub fn admit(&mut self, len: usize) -> (usize, Option<String>) {
        let Some(remaining) = self.remaining else {
            return (len, None);
        };
        let allowed = len.min(remaining as usize);
        self.remaining = Some(remaining - allowed as u64);
        let warning = (allowed < len).then(|| {
            format!(
                "wsgi: the app's body is longer than its Content-Length ({} bytes); the rest is not sent",
                self.declared.unwrap_or(0)
            )
        });
        (allowed, warning)
    }

    /// The whole declared body is out: stop iterating.
    pub fn reached(&self) -> bool {
        self.remaining == Some(0)
    }

    /// At the end of the body: the error for error_log when it is short.
    pub fn shortfall(&self) -> Option<String> {
        let short = self.remaining.filter(|&n| n > 0)?;
        Some(format!(
            "wsgi: the app's body ended {short} bytes short of its Content-Length ({}); closing the connection",
            self.declared.unwrap_or(0)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::BodyLimit;

    #[test]
    fn content_length_limits() {
        let mut open = BodyLimit::new(None);
        assert_eq!(open.admit(10), (10, None));
        assert!(!open.reached() && open.shortfall().is_none());

        let mut limit = BodyLimit::new(Some(5));
        assert_eq!(limit.admit(3), (3, None));
        assert!(limit
            .shortfall()
            .unwrap()
            .contains("2 bytes short of its Content-Length (5)"));
        let (n, warning) = limit.admit(4);
        assert_eq!(n, 2);
        assert!(warning
            .unwrap()
            .contains("longer than its Content-Length (5 bytes)"));
        assert!(limit.reached() && limit.shortfall().is_none());
    }
}
