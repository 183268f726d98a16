//! Inline mode: the app runs on the event loop. The pump calls it, then
//! next chunk → output filters → next chunk, until the iterable ends,
//! nginx's output is busy (suspend), or the turn's budget is spent (yield
//! to the event loop).

use ngx::ffi::{
    ngx_http_finalize_request, ngx_http_request_t, ngx_int_t, ngx_log_t, NGX_ERROR,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ERR, NGX_LOG_WARN, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};
use ngx::ngx_log_error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::call::{report_failure, BodyLimit, Call};
use crate::cgi;
use crate::conf::Module;
use crate::ctx::{Inline, Mode, RequestCtx, State};
use crate::environ::{self, Extras};
use crate::errlog::{self, ErrorLog, LogTo};
use crate::flush::Flush;
use crate::input;
use crate::interp;
use crate::output::{self, SharedOutput};
use crate::response;
use crate::resume;

/// Work one request may do in one event-loop turn before letting the
/// worker's other connections run.
const TURN_BYTES: usize = 1 << 20;
const TURN_CHUNKS: usize = 256;

/// What the request does after a pump run.
enum Next {
    /// nginx holds busy output: wait for the write event.
    Suspend,
    /// The turn's budget is spent: continue on the next loop turn.
    Yield,
    /// Finalize with this code.
    Finish(ngx_int_t),
}

/// The parts of a request's context the inline pump works with.
struct Pump<'a> {
    r: *mut ngx_http_request_t,
    log: *mut ngx_log_t,
    output: &'a SharedOutput,
    buffering: &'a mut bool,
    inline: &'a mut Inline,
}

/// The request body is read: call the app, then pump its response.
///
/// # Safety
/// `r` must be a live request owned by this module, with its context.
pub unsafe fn start(r: *mut ngx_http_request_t, ctx: &mut RequestCtx) {
    ctx.state = State::Running;
    let app = ctx.app;
    let next = match Pump::of(r, ctx) {
        Some(mut pump) => Python::attach(|py| {
            let next = match pump.call_app(py, app) {
                Ok(()) => pump.produce(py),
                Err((e, what)) => pump.fail(py, &e, &what),
            };
            pump.release_if_finished(py, &next);
            next
        }),
        None => Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _),
    };
    settle(r, ctx, next);
}

/// Continues pumping a suspended or yielded response.
///
/// # Safety
/// As for `start`; the app has been called.
pub unsafe fn drive(r: *mut ngx_http_request_t, ctx: &mut RequestCtx) {
    ctx.state = State::Running;
    let next = match Pump::of(r, ctx) {
        Some(mut pump) => Python::attach(|py| {
            let next = pump.produce(py);
            pump.release_if_finished(py, &next);
            next
        }),
        None => Next::Finish(NGX_ERROR as _),
    };
    settle(r, ctx, next);
}

/// # Safety
/// As for `start`. `ctx` is not used after a Finish: finalizing may free it.
unsafe fn settle(r: *mut ngx_http_request_t, ctx: &mut RequestCtx, next: Next) {
    match next {
        Next::Suspend => resume::suspend_or_end(r, ctx),
        Next::Yield => {
            ctx.state = State::Suspended;
            resume::yield_turn(r);
        }
        Next::Finish(rc) => {
            ctx.state = State::Done;
            ngx_http_finalize_request(r, rc);
        }
    }
}

impl<'a> Pump<'a> {
    fn of(r: *mut ngx_http_request_t, ctx: &'a mut RequestCtx) -> Option<Pump<'a>> {
        let RequestCtx {
            log,
            output,
            buffering,
            mode,
            ..
        } = ctx;
        let Mode::Inline(inline) = mode else {
            return None;
        };
        Some(Pump {
            r,
            log: *log,
            output,
            buffering,
            inline,
        })
    }

    /// At the response's end, lets go of its Python objects while the GIL
    /// is held: the request's end then need not take it again (only for
    /// bytes nginx is still sending).
    fn release_if_finished(&mut self, py: Python<'_>, next: &Next) {
        if let Next::Finish(_) = next {
            let done = output::lock(self.output).done();
            self.inline.release(py, self.log, Some(done));
        }
    }

    /// Imports the app if needed and calls it; on failure, the error and
    /// what error_log should call it.
    ///
    /// # Safety
    /// `self.r` must be a live request whose body has been read.
    unsafe fn call_app(&mut self, py: Python<'_>, app: usize) -> Result<(), (PyErr, String)> {
        let r = self.r;
        let configuration = || {
            (
                PyRuntimeError::new_err("no such app"),
                "wsgi: configuration".to_owned(),
            )
        };
        let main = Module::main_conf(&*r).ok_or_else(configuration)?;
        let spec = main.apps.get(app).ok_or_else(configuration)?;
        let params = Module::location_conf(&*r)
            .map(|lc| lc.params.as_slice())
            .unwrap_or(&[]);
        // Error messages are only formatted when there is an error.
        let app = interp::app(py, app, spec)
            .map_err(|e| (e, format!("wsgi: cannot load app \"{}\"", spec.display())))?;
        let raised = |e: PyErr| (e, format!("wsgi: app \"{}\" raised", spec.display()));

        let errors = Bound::new(py, ErrorLog::new(LogTo::Request(self.log))).map_err(raised)?;
        self.inline.errors = Some(errors.clone().unbind());
        let flush = Bound::new(py, Flush::inline(r, self.output.clone())).map_err(raised)?;
        self.inline.flush = Some(flush.clone().unbind());
        let body_len = input::body_len(r);
        let input = input::wsgi_input(py, r, body_len).map_err(raised)?;
        let vars = cgi::collect(r, body_len, params, &main.environ)
            .map_err(|e| raised(PyRuntimeError::new_err(e)))?;
        let extras = Extras {
            input,
            errors: errors.into_any(),
            flush: flush.into_any(),
            multithread: false,
        };
        let environ = environ::build(py, &vars, extras).map_err(raised)?;
        vars.recycle();
        let call = self
            .inline
            .call
            .insert(Call::start(py, &app, environ).map_err(raised)?);
        call.iterate(py).map_err(raised)
    }

    /// # Safety
    /// `self.r` must be the live request, with the app called.
    unsafe fn produce(&mut self, py: Python<'_>) -> Next {
        let r = self.r;
        self.inline
            .kept
            .release_upto(output::lock(self.output).done());
        let (mut bytes, mut chunks) = (0usize, 0usize);
        loop {
            if output::lock(self.output).must_wait() {
                return Next::Suspend;
            }
            if bytes >= TURN_BYTES || chunks >= TURN_CHUNKS {
                // What is queued goes on now: the next turn may be a while.
                if output::lock(self.output).send_queue(r, false) == NGX_ERROR as ngx_int_t {
                    return self.client_gone(py);
                }
                return Next::Yield;
            }
            let next = match self.inline.call.as_mut() {
                Some(call) => call.next_chunk(py),
                None => Ok(None),
            };
            let chunk = match next {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return self.finish(py),
                Err(e) => return self.fail(py, &e, "wsgi: the app's response iterable raised"),
            };
            chunks += 1;
            if chunk.as_bytes().is_empty() {
                continue;
            }
            if (*r).header_sent() == 0 {
                if let Some(next) = self.send_header(py) {
                    return next;
                }
            }
            let (len, warning) = self.inline.limit.admit(chunk.as_bytes().len());
            if let Some(warning) = warning {
                ngx_log_error!(NGX_LOG_WARN, self.log, "{warning}");
            }
            let flush = !*self.buffering
                || self
                    .inline
                    .flush
                    .as_ref()
                    .is_some_and(|f| f.get().take_pending());
            if len > 0 {
                let mut out = output::lock(self.output);
                // The bytes object is kept until nginx is done with it.
                let rc = match out.queue(r, chunk.as_bytes().as_ptr(), len) {
                    Err(()) => NGX_ERROR as ngx_int_t,
                    Ok(()) => {
                        self.inline.kept.push(chunk.unbind());
                        if flush || out.batch_full() {
                            out.send_queue(r, flush)
                        } else {
                            NGX_OK as ngx_int_t
                        }
                    }
                };
                let done = out.done();
                drop(out);
                if rc == NGX_ERROR as ngx_int_t {
                    return self.client_gone(py);
                }
                self.inline.kept.release_upto(done);
            }
            bytes += len;
            if self.inline.limit.reached() {
                // The whole declared body is out: stop iterating.
                return self.finish(py);
            }
        }
    }

    /// Sends the response header; `Some` when the request ends here (HEAD,
    /// 304, an error).
    ///
    /// # Safety
    /// `self.r` must be the live request, its header not sent.
    unsafe fn send_header(&mut self, py: Python<'_>) -> Option<Next> {
        let Some(call) = self.inline.call.as_ref() else {
            return Some(Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _));
        };
        let head = match call.take_head(py) {
            Ok(head) => head,
            Err(e) => return Some(self.fail(py, &e, "wsgi: the app broke the WSGI protocol")),
        };
        self.inline.limit = BodyLimit::new(head.content_length);
        match response::send_head(self.r, &head, call.known_length) {
            Ok(buffering) => {
                *self.buffering = buffering;
                if let Some(flush) = self.inline.flush.as_ref() {
                    flush.get().header_sent();
                }
                None
            }
            Err(rc) => {
                self.inline.close(py, self.log);
                Some(Next::Finish(rc))
            }
        }
    }

    /// The iterable is exhausted: close it, send the header if no chunk did,
    /// and end the body.
    ///
    /// # Safety
    /// `self.r` must be the live request.
    unsafe fn finish(&mut self, py: Python<'_>) -> Next {
        let r = self.r;
        self.inline.close(py, self.log);
        if (*r).header_sent() == 0 {
            // Nothing was sent: the body is empty unless the app said otherwise.
            if let Some(call) = self.inline.call.as_mut() {
                call.known_length.get_or_insert(0);
            }
            if let Some(next) = self.send_header(py) {
                return next;
            }
        }
        if let Some(error) = self.inline.limit.shortfall() {
            ngx_log_error!(NGX_LOG_ERR, self.log, "{error}");
            return Next::Finish(NGX_ERROR as _);
        }
        // The last buffer flushes every filter.
        let rc = output::lock(self.output).send_last(r);
        if rc == NGX_ERROR as ngx_int_t {
            return self.client_gone(py);
        }
        Next::Finish(rc)
    }

    /// Writing to the client failed (it went away): close the iterable and end.
    fn client_gone(&mut self, py: Python<'_>) -> Next {
        errlog::log_client_gone(self.log);
        self.inline.close(py, self.log);
        Next::Finish(NGX_ERROR as _)
    }

    /// The app failed: log the traceback, close the iterable, and answer
    /// 500 or, once the header is out, abort the response.
    ///
    /// # Safety
    /// `self.r` must be the live request.
    unsafe fn fail(&mut self, py: Python<'_>, err: &PyErr, what: &str) -> Next {
        let header_sent = (*self.r).header_sent() != 0;
        let next = report_failure(py, err, &LogTo::Request(self.log), what, header_sent);
        self.inline.close(py, self.log);
        Next::Finish(next)
    }
}
