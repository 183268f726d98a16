//! The pump: next chunk → output filters → next chunk, until the iterable
//! ends, nginx's output is busy (suspend), or the turn's budget is spent
//! (yield to the event loop).

use ngx::ffi::{
    ngx_http_finalize_request, ngx_http_request_t, ngx_http_send_header, ngx_http_send_special,
    ngx_int_t, ngx_log_t, NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_LAST, NGX_LOG_ERR,
    NGX_LOG_INFO, NGX_LOG_WARN, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};
use ngx::ngx_log_error;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::conf::Module;
use crate::ctx::{self, RequestCtx, State};
use crate::environ::{self, Extras};
use crate::errlog::ErrorLog;
use crate::flush::Flush;
use crate::input;
use crate::interp;
use crate::output;
use crate::response::{self, type_name, StartResponse};
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

/// The request body is read: call the app, then pump its response.
///
/// # Safety
/// `r` must be a live request owned by this module, with its context.
pub unsafe fn start(r: *mut ngx_http_request_t) {
    let Some(ctx) = ctx::get(r).filter(|ctx| ctx.state == State::ReadingBody) else {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR as _);
        return;
    };
    ctx.state = State::Running;
    let next = Python::attach(|py| match call_app(py, r, ctx) {
        Ok(()) => produce(py, r, ctx),
        Err((e, what)) => fail(py, r, ctx, &e, &what),
    });
    settle(r, ctx, next);
}

/// Continues pumping a suspended or yielded response.
///
/// # Safety
/// As for `start`; the app has been called.
pub unsafe fn drive(r: *mut ngx_http_request_t, ctx: &mut RequestCtx) {
    ctx.state = State::Running;
    let next = Python::attach(|py| produce(py, r, ctx));
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

/// Imports the app if needed and calls it; on failure, the error and what
/// error_log should call it.
///
/// # Safety
/// `r` must be a live request whose body has been read.
unsafe fn call_app(
    py: Python<'_>,
    r: *mut ngx_http_request_t,
    ctx: &mut RequestCtx,
) -> Result<(), (PyErr, String)> {
    let spec = Module::main_conf(&*r)
        .and_then(|main| main.apps.get(ctx.app))
        .ok_or_else(|| {
            (
                PyRuntimeError::new_err("no such app"),
                "wsgi: configuration".to_owned(),
            )
        })?;
    let params = Module::location_conf(&*r)
        .map(|lc| lc.params.as_slice())
        .unwrap_or(&[]);
    // Error messages are only formatted when there is an error.
    let app = interp::app(py, ctx.app, spec)
        .map_err(|e| (e, format!("wsgi: cannot load app \"{}\"", spec.display())))?;
    let raised = |e: PyErr| (e, format!("wsgi: app \"{}\" raised", spec.display()));

    let errors = Bound::new(py, ErrorLog::new(ctx.log)).map_err(raised)?;
    ctx.errors = Some(errors.clone().unbind());
    let flush = Bound::new(py, Flush::new(r, ctx.output.clone())).map_err(raised)?;
    ctx.flush = Some(flush.clone().unbind());
    let (input, body_len) = input::wsgi_input(py, r).map_err(raised)?;
    let extras = Extras {
        input,
        body_len,
        errors: errors.into_any(),
        flush: flush.into_any(),
        params,
    };
    let environ = environ::build(py, r, extras).map_err(raised)?;
    let start_response = Bound::new(py, StartResponse::default()).map_err(raised)?;
    ctx.start_response = Some(start_response.clone().unbind());

    let result = app.call1((environ, start_response)).map_err(raised)?;
    ctx.iterable = Some(result.clone().unbind());
    ctx.known_length = one_item_length(&result);
    let iterator = result.try_iter().map_err(|_| {
        raised(PyTypeError::new_err(format!(
            "the app returned {}, which is not an iterable of bytes",
            type_name(&result)
        )))
    })?;
    ctx.iterator = Some(iterator.unbind());
    Ok(())
}

/// A one-item list or tuple of bytes has a known length: send it as
/// Content-Length, as PEP 3333 suggests.
fn one_item_length(result: &Bound<'_, PyAny>) -> Option<usize> {
    let item = if let Ok(list) = result.cast_exact::<PyList>() {
        (list.len() == 1).then(|| list.get_item(0).ok()).flatten()
    } else if let Ok(tuple) = result.cast_exact::<PyTuple>() {
        (tuple.len() == 1).then(|| tuple.get_item(0).ok()).flatten()
    } else {
        None
    };
    item.and_then(|i| i.cast::<PyBytes>().ok().map(|b| b.as_bytes().len()))
}

/// # Safety
/// `r` must be the live request `ctx` belongs to, with the app called.
unsafe fn produce(py: Python<'_>, r: *mut ngx_http_request_t, ctx: &mut RequestCtx) -> Next {
    output::lock(&ctx.output).release_sent(py);
    let (mut bytes, mut chunks) = (0usize, 0usize);
    loop {
        if output::lock(&ctx.output).must_wait() {
            return Next::Suspend;
        }
        if bytes >= TURN_BYTES || chunks >= TURN_CHUNKS {
            // What is queued goes on now: the next turn may be a while.
            if output::lock(&ctx.output).send_queue(r, false) == NGX_ERROR as ngx_int_t {
                return client_gone(py, ctx);
            }
            return Next::Yield;
        }
        let chunk = match next_chunk(py, ctx) {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return finish(py, r, ctx),
            Err(e) => return fail(py, r, ctx, &e, "wsgi: the app's response iterable raised"),
        };
        chunks += 1;
        let mut len = chunk.as_bytes().len();
        if len == 0 {
            continue;
        }
        if (*r).header_sent() == 0 {
            if let Some(next) = send_header(py, r, ctx) {
                return next;
            }
        }
        if let Some(remaining) = ctx.remaining {
            if len as u64 > remaining {
                ngx_log_error!(
                    NGX_LOG_WARN,
                    ctx.log,
                    "wsgi: the app's body is longer than its Content-Length ({} bytes); the rest is not sent",
                    content_length(r)
                );
                len = remaining as usize;
            }
            ctx.remaining = Some(remaining - len as u64);
        }
        let flush = !ctx.buffering || ctx.flush.as_ref().is_some_and(|f| f.get().take_pending());
        if len > 0 {
            let mut out = output::lock(&ctx.output);
            let rc = match out.queue(r, chunk, len) {
                Err(()) => NGX_ERROR as ngx_int_t,
                Ok(()) if flush || out.batch_full() => out.send_queue(r, flush),
                Ok(()) => NGX_OK as ngx_int_t,
            };
            drop(out);
            if rc == NGX_ERROR as ngx_int_t {
                return client_gone(py, ctx);
            }
        }
        bytes += len;
        if ctx.remaining == Some(0) {
            // The whole declared body is out: stop iterating.
            return finish(py, r, ctx);
        }
    }
}

/// # Safety
/// `r` must be a live request.
unsafe fn content_length(r: *mut ngx_http_request_t) -> i64 {
    (*r).headers_out.content_length_n
}

/// The next body chunk: data given to write() first, then the iterable's.
fn next_chunk<'py>(py: Python<'py>, ctx: &mut RequestCtx) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let Some(start_response) = ctx.start_response.as_ref() else {
        return Ok(None);
    };
    let start_response = start_response.bind(py);
    if let Some(data) = start_response.try_borrow_mut()?.written.pop_front() {
        // The body is more than the one-item list: its length is unknown.
        ctx.known_length = None;
        return Ok(Some(data.into_bound(py)));
    }
    let Some(iterator) = ctx.iterator.as_ref() else {
        return Ok(None);
    };
    let item = match iterator.bind(py).clone().next() {
        None => return Ok(None),
        Some(item) => item?,
    };
    let chunk = item.cast_into::<PyBytes>().map_err(|e| {
        PyTypeError::new_err(format!(
            "the response iterable yielded {}, not bytes",
            type_name(e.into_inner().as_any())
        ))
    })?;
    // write() called while producing this item comes first.
    let mut state = start_response.try_borrow_mut()?;
    if let Some(first) = state.written.pop_front() {
        state.written.push_back(chunk.unbind());
        return Ok(Some(first.into_bound(py)));
    }
    Ok(Some(chunk))
}

/// Sends the response header; `Some` when the request ends here (HEAD,
/// 304, an error).
///
/// # Safety
/// `r` must be the live request `ctx` belongs to.
unsafe fn send_header(
    py: Python<'_>,
    r: *mut ngx_http_request_t,
    ctx: &mut RequestCtx,
) -> Option<Next> {
    let head = ctx.start_response.as_ref().and_then(|sr| {
        let mut sr = sr.bind(py).try_borrow_mut().ok()?;
        sr.headers_sent = true;
        // Once sent, the head is nginx's: start_response keeps only the flag.
        sr.head.take()
    });
    let Some(head) = head else {
        let e = PyRuntimeError::new_err("the app did not call start_response() before its body");
        return Some(fail(
            py,
            r,
            ctx,
            &e,
            "wsgi: the app broke the WSGI protocol",
        ));
    };
    if response::apply(r, &head, ctx.known_length).is_err() {
        ctx.close_iterable(py);
        return Some(Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _));
    }
    ctx.remaining = head.content_length;
    ctx.buffering = response::buffering_override(&head)
        .unwrap_or_else(|| Module::location_conf(&*r).is_some_and(|lc| lc.buffering == 1));
    let rc = ngx_http_send_header(r);
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || (*r).header_only() != 0 {
        ctx.close_iterable(py);
        return Some(Next::Finish(rc));
    }
    None
}

/// The iterable is exhausted: close it, send the header if no chunk did,
/// and end the body.
///
/// # Safety
/// `r` must be the live request `ctx` belongs to.
unsafe fn finish(py: Python<'_>, r: *mut ngx_http_request_t, ctx: &mut RequestCtx) -> Next {
    ctx.close_iterable(py);
    if (*r).header_sent() == 0 {
        // Nothing was sent: the body is empty unless the app said otherwise.
        ctx.known_length.get_or_insert(0);
        if let Some(next) = send_header(py, r, ctx) {
            return next;
        }
    }
    if let Some(short) = ctx.remaining.filter(|&n| n > 0) {
        ngx_log_error!(
            NGX_LOG_ERR,
            ctx.log,
            "wsgi: the app's body ended {short} bytes short of its Content-Length ({}); closing the connection",
            content_length(r)
        );
        return Next::Finish(NGX_ERROR as _);
    }
    // The queue goes first; the last buffer then flushes every filter.
    if output::lock(&ctx.output).send_queue(r, false) == NGX_ERROR as ngx_int_t {
        return client_gone(py, ctx);
    }
    Next::Finish(ngx_http_send_special(r, NGX_HTTP_LAST as _))
}

/// Writing to the client failed (it went away): close the iterable and end.
fn client_gone(py: Python<'_>, ctx: &mut RequestCtx) -> Next {
    log_client_gone(ctx.log);
    ctx.close_iterable(py);
    Next::Finish(NGX_ERROR as _)
}

/// What error_log says, at info level as nginx has it, when a client left
/// mid-response.
pub fn log_client_gone(log: *mut ngx_log_t) {
    ngx_log_error!(
        NGX_LOG_INFO,
        log,
        "wsgi: the client connection is gone; closing the response iterable"
    );
}

/// The app failed: log the traceback, close the iterable, and answer 500 or,
/// once the header is out, abort the response so the client cannot take a
/// truncated body for a whole one.
///
/// # Safety
/// `r` must be the live request `ctx` belongs to.
unsafe fn fail(
    py: Python<'_>,
    r: *mut ngx_http_request_t,
    ctx: &mut RequestCtx,
    err: &PyErr,
    what: &str,
) -> Next {
    let next = if (*r).header_sent() != 0 {
        let what = format!("{what} after the response header was sent; aborting the response");
        interp::log_exception(py, err, ctx.log, NGX_LOG_ERR as _, &what);
        Next::Finish(NGX_ERROR as _)
    } else {
        interp::log_exception(py, err, ctx.log, NGX_LOG_ERR as _, what);
        Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _)
    };
    ctx.close_iterable(py);
    next
}
