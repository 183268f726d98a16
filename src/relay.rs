//! Thread mode, the event loop's side: queue the request for a pool thread,
//! pass what the thread hands over to nginx's output filters, and tell the
//! thread how the output stands. The loop never takes the GIL here.
//!
//! Chunks that arrived together go to the filters together, flushed after
//! the last: none waits for a later one (the app already produced them),
//! and a fast app's small chunks share one write.

use std::sync::Arc;

use ngx::ffi::{
    ngx_add_timer, ngx_event_flags, ngx_event_t, ngx_http_block_reading, ngx_http_finalize_request,
    ngx_http_request_t, ngx_http_run_posted_requests, ngx_int_t, ngx_uint_t, NGX_ERROR,
    NGX_HTTP_CLIENT_CLOSED_REQUEST, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_SERVICE_UNAVAILABLE,
    NGX_LOG_ALERT, NGX_LOG_ERR, NGX_LOG_INFO, NGX_USE_CLEAR_EVENT,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};
use ngx::ngx_log_error;

use crate::cgi;
use crate::conf::Module;
use crate::ctx::{self, Mode, RequestCtx, State};
use crate::errlog::log_client_gone;
use crate::handoff::{End, Handoff, News};
use crate::input;
use crate::output;
use crate::pool::{self, Job, Refused};
use crate::response;
use crate::resume;

/// The request body is read: copy what the app needs out of the request
/// and queue it for a thread of the location's pool, within
/// `wsgi_queue_timeout`.
///
/// # Safety
/// `r` must be a live request owned by this module; `ctx` its context.
pub unsafe fn submit(r: *mut ngx_http_request_t, ctx: &mut RequestCtx) {
    let (Some(lc), Some(main)) = (Module::location_conf(&*r), Module::main_conf(&*r)) else {
        return end(r, ctx, NGX_HTTP_INTERNAL_SERVER_ERROR as _);
    };
    let Mode::Thread(link) = &mut ctx.mode else {
        return end(r, ctx, NGX_HTTP_INTERNAL_SERVER_ERROR as _);
    };
    let body_len = input::body_len(r);
    let prepared = cgi::collect(r, body_len, &lc.params, &main.environ).and_then(|vars| {
        input::read_body(r, body_len)
            .map(|body| (vars, body))
            .map_err(|e| format!("reading the request body's temp file failed: {e}"))
    });
    let (vars, body) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            ngx_log_error!(NGX_LOG_ERR, ctx.log, "wsgi: {e}");
            return end(r, ctx, NGX_HTTP_INTERNAL_SERVER_ERROR as _);
        }
    };
    let job = Job {
        handoff: link.handoff.clone(),
        vars,
        body,
        app: ctx.app,
    };
    match pool::submit(link.pool, job) {
        Ok(()) => pool::keep_worker_alive(),
        Err(Refused::Full(spec)) => {
            ngx_log_error!(
                NGX_LOG_ERR,
                ctx.log,
                "wsgi: all {} threads are busy and {} requests wait for one (wsgi_threads {} max_queue={}); answering 503",
                spec.threads,
                spec.max_queue,
                spec.threads,
                spec.max_queue
            );
            return end(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE as _);
        }
        Err(Refused::NoThreads) => {
            ngx_log_error!(
                NGX_LOG_ALERT,
                ctx.log,
                "wsgi: the location's thread pool has no running thread in this worker (see the worker's start-up messages)"
            );
            return end(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE as _);
        }
    }
    ctx.state = State::Queued;
    (*r).read_event_handler = Some(on_client_read);
    link.timer.handler = Some(on_timer);
    link.timer.data = r.cast();
    link.timer.log = ctx.log;
    ngx_add_timer(&mut link.timer, lc.queue_timeout);
}

/// Finalizes the request; `ctx` is not used after. The app, if a thread
/// runs it, stops at its next chunk (as inline, where the iterable is
/// closed at once).
///
/// # Safety
/// `r` must be a live request owned by this module; `ctx` its context.
unsafe fn end(r: *mut ngx_http_request_t, ctx: &mut RequestCtx, rc: ngx_int_t) {
    ctx.state = State::Done;
    if let Mode::Thread(link) = &mut ctx.mode {
        link.handoff.cancel_app();
        link.stop_timer();
    }
    ngx_http_finalize_request(r, rc);
}

/// The request's wsgi_queue_timeout. (While an app runs, the pool's own
/// timer keeps a gracefully exiting worker waiting for it.)
extern "C" fn on_timer(ev: *mut ngx_event_t) {
    // SAFETY: relay::submit set `data` to the request; the timer is deleted
    // when the request's context is dropped, so the request is live.
    let r = unsafe { (*ev).data as *mut ngx_http_request_t };
    crate::guard(r, || unsafe {
        let c = (*r).connection;
        let Some(ctx) = ctx::get(r) else {
            return;
        };
        let Mode::Thread(link) = &mut ctx.mode else {
            return;
        };
        // After an internal redirect (error_page) `r` may have a new context:
        // the timer must be this one's.
        if !std::ptr::eq(&link.timer, ev) {
            return;
        }
        let Some(lc) = Module::location_conf(&*r) else {
            return;
        };
        if ctx.state == State::Queued && link.handoff.cancel_if_queued() {
            pool::withdraw(link.pool, &link.handoff);
            ngx_log_error!(
                NGX_LOG_ERR,
                ctx.log,
                "wsgi: no thread was free within wsgi_queue_timeout ({} ms); answering 503",
                lc.queue_timeout
            );
            end(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE as _);
        }
        ngx_http_run_posted_requests(c);
    });
}

/// A read event while the app waits for a thread or runs: the client may
/// have closed the connection. Like nginx's upstream module (without
/// `proxy_ignore_client_abort`), the request then ends (499): a queued app
/// never runs, a running one stops at its next chunk. A client that sends
/// more (a pipelined request) is left alone.
extern "C" fn on_client_read(r: *mut ngx_http_request_t) {
    crate::guard(r, || unsafe {
        // SAFETY: nginx calls the read event handler with the live request,
        // which this module owns.
        let c = (*r).connection;
        let rev = (*c).read;
        let closed = if (*c).error() != 0 {
            true
        } else if !(*r).stream.is_null() {
            false // HTTP/2: a reset stream sets c->error
        } else if (*rev).pending_eof() != 0 {
            true
        } else if ngx_event_flags & NGX_USE_CLEAR_EVENT as ngx_uint_t != 0 {
            let mut byte = 0u8;
            let n = libc::recv((*c).fd, (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK);
            n == 0
                || (n < 0
                    && !matches!(
                        std::io::Error::last_os_error().raw_os_error(),
                        Some(libc::EAGAIN) | Some(libc::EINTR)
                    ))
        } else {
            // Level-triggered events would report pending data every turn:
            // stop watching, as nginx does; a failed write tells instead.
            ngx_http_block_reading(r);
            false
        };
        let Some(ctx) = ctx::get(r).filter(|ctx| closed && ctx.state != State::Done) else {
            return;
        };
        let Mode::Thread(link) = &ctx.mode else {
            return;
        };
        (*c).set_error(1);
        if link.handoff.started() {
            log_client_gone(ctx.log);
        } else {
            ngx_log_error!(
                NGX_LOG_INFO,
                ctx.log,
                "wsgi: the client closed the connection while the request waited for a thread"
            );
        }
        end(r, ctx, NGX_HTTP_CLIENT_CLOSED_REQUEST as _);
    });
}

/// The wake-up handler found news for this request.
pub fn on_news(handoff: &Arc<Handoff>) {
    let r = handoff.request();
    if r.is_null() {
        return;
    }
    crate::guard(r, || unsafe {
        // SAFETY: the hand-off points at the request until the request's
        // context is dropped, which clears it; this is the loop thread.
        let c = (*r).connection;
        if let Some(ctx) = ctx::get(r) {
            // After an internal redirect `r` may have a new context.
            if matches!(&ctx.mode, Mode::Thread(link) if Arc::ptr_eq(&link.handoff, handoff)) {
                relay(r, ctx);
            }
        }
        ngx_http_run_posted_requests(c);
    });
}

/// Passes the thread's news to nginx: log lines, the header, chunks, the
/// end; then reports how the output stands, and suspends while it is
/// blocked (the write event calls this again).
///
/// # Safety
/// `r` must be a live request owned by this module; `ctx` its context,
/// not used after a finalize.
pub unsafe fn relay(r: *mut ngx_http_request_t, ctx: &mut RequestCtx) {
    let Mode::Thread(link) = &ctx.mode else {
        return;
    };
    let handoff = link.handoff.clone();
    if ctx.state == State::ReadingBody {
        return;
    }
    // Once finalized, only log lines (close() tracebacks, say) are taken.
    let take_output = ctx.state != State::Done && !output::lock(&ctx.output).must_wait();
    let news = handoff.take(take_output);
    for (level, text) in &news.logs {
        ngx_log_error!(*level, ctx.log, "{}", text);
    }
    if !take_output {
        return; // finalized, or suspended: the write event brings us back
    }
    ctx.state = State::Running;
    if let Some(rc) = deliver(r, ctx, news) {
        return end(r, ctx, rc);
    }
    let (blocked, done) = {
        let out = output::lock(&ctx.output);
        (out.must_wait(), out.done())
    };
    handoff.report(blocked, done);
    if blocked {
        resume::suspend_or_end(r, ctx);
    }
}

/// Sends the header and chunks in `news`; `Some(rc)` when the request is
/// to be finalized with `rc`.
///
/// # Safety
/// As for `relay`.
unsafe fn deliver(
    r: *mut ngx_http_request_t,
    ctx: &mut RequestCtx,
    news: News,
) -> Option<ngx_int_t> {
    if let Some((head, known_length)) = news.head {
        if (*r).header_sent() == 0 {
            match response::send_head(r, &head, known_length) {
                Ok(buffering) => ctx.buffering = buffering,
                // Header-only or failed: the context's end stops the app.
                Err(rc) => return Some(rc),
            }
        }
    }
    let mut out = output::lock(&ctx.output);
    let mut flush = news.flush;
    for chunk in &news.chunks {
        // SAFETY (of the pointer): the pool thread keeps the bytes object
        // until `done()` counts this chunk or the request ends.
        if out.queue(r, chunk.data, chunk.len).is_err() {
            return Some(NGX_ERROR as _);
        }
        flush |= !ctx.buffering || chunk.flush;
        if !flush && out.batch_full() && out.send_queue(r, false) == NGX_ERROR as ngx_int_t {
            return Some(gone(ctx));
        }
    }
    if flush && out.send_queue(r, true) == NGX_ERROR as ngx_int_t {
        return Some(gone(ctx));
    }
    match news.end? {
        End::Fail(rc) => Some(rc),
        End::Complete => {
            // The last buffer flushes every filter.
            let rc = out.send_last(r);
            if rc == NGX_ERROR as ngx_int_t {
                return Some(gone(ctx));
            }
            Some(rc)
        }
    }
}

fn gone(ctx: &RequestCtx) -> ngx_int_t {
    log_client_gone(ctx.log);
    NGX_ERROR as _
}
