//! Inline mode: the app runs on the event loop. The pump asks the driver
//! for chunk after chunk, each handed to nginx's output filters at once,
//! until the response ends, nginx's output is busy (wait for the client),
//! or the turn's budget is spent (yield to the event loop).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ngx::ffi::{
    ngx_http_request_t, ngx_int_t, ngx_log_t, NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR,
    NGX_LOG_ERR,
};
use ngx::ngx_log_error;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::config::{LocConf, MainConf};
use crate::errlog::LogTo;
use crate::event_loop;
use crate::next::Next;
use crate::nginx::output::{self, Output, SharedOutput};
use crate::nginx::{body, cgi, file, headers_out};
use crate::status::{self, Counter, Histogram};
use crate::wsgi::driver::{Gone, Refused, Response, Sink, Start, Step};
use crate::wsgi::file_wrapper::FileBody;
use crate::wsgi::flush::{FlushError, FlushTarget};
use crate::wsgi::kept::Kept;
use crate::wsgi::start_response::Head;
use crate::wsgi::{input, interp, watch};

/// Work one request may do in one event-loop turn before letting the
/// worker's other connections run.
const TURN_BYTES: usize = 1 << 20;
const TURN_CHUNKS: usize = 256;

/// What an app running on the event loop owns.
#[derive(Default)]
pub struct Inline {
    response: Option<Response>,
    /// The bytes objects nginx's buffers point into.
    kept: Kept,
    /// When the app was called, and when its response ended
    /// (`$wsgi_app_time`).
    called: Option<Instant>,
    ended: Option<Instant>,
}

impl Inline {
    /// The request is over (its pool is being destroyed): closes the
    /// iterable if that has not happened, and lets go of every Python
    /// reference, nginx's buffers being gone.
    pub fn end_request(&mut self) {
        if (self.response.is_none() && self.kept.is_empty()) || !interp::ready() {
            return;
        }
        Python::attach(|py| self.release(py, None));
    }

    /// How long the app has run: from its call to its response's end (so
    /// far).
    pub fn app_time(&self) -> Option<Duration> {
        let called = self.called?;
        Some(
            self.ended
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(called),
        )
    }

    /// Lets go of the response's Python objects; of the bytes objects, those
    /// of the first `done` chunks (nginx may still send the rest), or all.
    fn release(&mut self, py: Python<'_>, done: Option<u64>) {
        if let Some(response) = self.response.take() {
            response.release(py);
        }
        match done {
            Some(done) => self.kept.release_upto(done),
            None => self.kept.clear(),
        }
    }
}

/// The request body is read: call the app, then pump its response.
///
/// # Safety
/// `r` must be a live request owned by this module; `log` its log, `app`
/// its app, `output` and `inline` of its context, `lc` and `main` its
/// configuration.
pub unsafe fn start(
    r: *mut ngx_http_request_t,
    log: *mut ngx_log_t,
    app: usize,
    output: &SharedOutput,
    inline: &mut Inline,
    lc: &LocConf,
    main: &MainConf,
) -> Next {
    let body_len = body::body_len(r);
    status::add(Counter::RequestBodyBytes, body_len as u64);
    let vars = match cgi::collect(r, Some(body_len), lc.params(), &main.environ) {
        Ok(vars) => vars,
        Err(e) => {
            ngx_log_error!(NGX_LOG_ERR, log, "wsgi: {e}");
            return Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
        }
    };
    let Some(spec) = main.apps.get(app) else {
        return Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
    };
    let next = Python::attach(|py| {
        let start = Start {
            app,
            spec,
            vars: &vars,
            input: match body::body_file(r) {
                Ok(Some(file)) => input::from_file(py, file),
                Ok(None) => input::wsgi_input(py, body_len, |dst| body::gather(r, dst)),
                Err(e) => Err(PyOSError::new_err(format!(
                    "opening the request body's temp file failed: {e}"
                ))),
            },
            log: LogTo::Request(log),
            flush: output.clone(),
            multithread: false,
            buffering: lc.buffering(),
            ignore: lc.ignore_headers,
            watch: watch::event_loop(),
            read_timeout: lc.read_timeout as u64,
        };
        inline.called = Some(Instant::now());
        let next = match Response::start(py, start, &mut inline.response) {
            None => pump(py, r, output, inline),
            Some(end) => end.into(),
        };
        release_if_finished(py, output, inline, &next);
        next
    });
    vars.recycle();
    next
}

/// Continues pumping a response that waited for the client or yielded.
///
/// # Safety
/// As for `start`; the app has been called.
pub unsafe fn drive(
    r: *mut ngx_http_request_t,
    output: &SharedOutput,
    inline: &mut Inline,
) -> Next {
    Python::attach(|py| {
        let next = pump(py, r, output, inline);
        release_if_finished(py, output, inline, &next);
        next
    })
}

/// At the response's end, lets go of its Python objects while the GIL is
/// held: the request's end then need not take it again (only for bytes
/// nginx is still sending).
fn release_if_finished(py: Python<'_>, output: &SharedOutput, inline: &mut Inline, next: &Next) {
    if let Next::Finish(_) | Next::Redirect(_) = next {
        let ended = Instant::now();
        inline.ended = Some(ended);
        if let Some(called) = inline.called {
            status::observe(Histogram::App, ended.saturating_duration_since(called));
        }
        let done = output::lock(output).done();
        inline.release(py, Some(done));
    }
}

/// Asks for chunks until the response ends, nginx's output is busy, or
/// the turn's budget is spent.
///
/// # Safety
/// `r` must be the live request, with the app called.
unsafe fn pump(
    py: Python<'_>,
    r: *mut ngx_http_request_t,
    output: &SharedOutput,
    inline: &mut Inline,
) -> Next {
    let Inline { response, kept, .. } = inline;
    kept.release_upto(output::lock(output).done());
    let Some(response) = response.as_mut() else {
        return Next::Finish(NGX_ERROR as _);
    };
    let mut sink = InlineSink {
        r,
        output,
        kept,
        must_wait: None,
    };
    let (mut bytes, mut chunks) = (0usize, 0usize);
    loop {
        // A chunk's write says; anything else (an empty chunk, after which
        // a flush() may have blocked) asks.
        let must_wait = sink
            .must_wait
            .take()
            .unwrap_or_else(|| output::lock(output).must_wait());
        if must_wait {
            return Next::WaitForClient;
        }
        if bytes >= TURN_BYTES || chunks >= TURN_CHUNKS {
            // What is queued goes on now: the next turn may be a while.
            if output::lock(output).send_queue(false) == NGX_ERROR as ngx_int_t {
                return response.client_gone(py).into();
            }
            return Next::Yield;
        }
        match response.step(py, &mut sink) {
            Step::Chunk(len) => {
                bytes += len;
                chunks += 1;
            }
            Step::End(end) => return end.into(),
        }
    }
}

/// The response goes straight into nginx's output filters.
struct InlineSink<'a> {
    r: *mut ngx_http_request_t,
    output: &'a SharedOutput,
    kept: &'a mut Kept,
    /// Whether the output must wait for the client, as the last chunk's
    /// write left it (taken by the pump, which spares a lock per chunk).
    must_wait: Option<bool>,
}

impl Sink for InlineSink<'_> {
    fn head(&mut self, head: Head, known_length: Option<usize>) -> Result<(), ngx_int_t> {
        // SAFETY: the pump runs for the live request, its header not sent.
        unsafe { headers_out::send_head(self.r, &head, known_length) }
    }

    fn chunk(&mut self, chunk: Bound<'_, PyBytes>, len: usize, flush: bool) -> Result<(), Refused> {
        let mut out = output::lock(self.output);
        let data = chunk.as_bytes().as_ptr();
        // SAFETY: the pump runs for the live request; the bytes object is
        // kept (below) until `done` counts this chunk or the request ends.
        let rc = unsafe { out.write(data, len, flush, false) }.map_err(|()| Refused::Gone)?;
        self.kept.push(chunk.unbind());
        let done = out.done();
        self.must_wait = Some(out.must_wait());
        drop(out);
        self.kept.release_upto(done);
        if rc == NGX_ERROR as ngx_int_t {
            return Err(Refused::Gone);
        }
        Ok(())
    }

    fn end(&mut self) -> Result<ngx_int_t, Gone> {
        // SAFETY: as in `head`. The last buffer flushes every filter.
        let rc = unsafe { output::lock(self.output).send_last() };
        if rc == NGX_ERROR as ngx_int_t {
            return Err(Gone);
        }
        Ok(rc)
    }

    fn file_body(&mut self, body: FileBody) -> Result<ngx_int_t, Gone> {
        // SAFETY: as in `head`; the request pool closes the descriptor.
        unsafe {
            let Some(f) = file::owned_by_request_pool(self.r, body.fd, body.name.as_bytes()) else {
                return Err(Gone); // no memory: the response is cut
            };
            match output::lock(self.output).send_file_last(f, body.offset, body.len as usize) {
                Ok(rc) if rc != NGX_ERROR as ngx_int_t => Ok(rc),
                _ => Err(Gone),
            }
        }
    }
}

/// `x-wsgiorg.flush` of an app on the event loop sends at once, through
/// the response's output (no allocation of its own per request).
impl FlushTarget for Mutex<Output> {
    fn flush(&self) -> Result<(), FlushError> {
        if !event_loop::is_current() {
            return Err(FlushError::Refused(
                "x-wsgiorg.flush() must be called from the thread running the app",
            ));
        }
        // The pump never holds the lock while the app runs.
        let Ok(mut output) = self.try_lock() else {
            return Err(FlushError::Refused(
                "x-wsgiorg.flush() called while the module sends",
            ));
        };
        // SAFETY: the request lives (the Flush object is detached when the
        // response ends, before the request) and this is the event-loop
        // thread, inside the module's pump, which owns the request.
        if unsafe { output.send_queue(true) } == NGX_ERROR as ngx_int_t {
            return Err(FlushError::Gone);
        }
        Ok(())
    }
}
