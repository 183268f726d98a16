//! Every function nginx calls for the module's requests, side by side: the
//! content handler, the request body handler, the write event handler, and
//! in thread mode the read event handler, the queue timer, the wake-up
//! handler and the busy timer. (The module's start, exit and directive
//! handlers are in `module.rs`.)
//!
//! Each runs its work through the panic guard and hands the request's next
//! state to `request::settle`, the only place that finalizes a request:
//! the work decides, `settle` acts, so a panic in the work always finds the
//! request still the module's, and ends it (500, or an aborted response
//! once the head is out) without killing the worker.

use std::sync::Arc;

use ngx::ffi::{
    ngx_event_t, ngx_http_read_client_request_body, ngx_http_request_t,
    ngx_http_run_posted_requests, ngx_http_variable_value_t, ngx_int_t, NGX_DECLINED, NGX_DONE,
    NGX_ERROR, NGX_ETIMEDOUT, NGX_HTTP_CLIENT_CLOSED_REQUEST, NGX_HTTP_INTERNAL_SERVER_ERROR,
    NGX_HTTP_REQUEST_TIME_OUT, NGX_HTTP_SPECIAL_RESPONSE, NGX_LOG_ALERT, NGX_LOG_ERR, NGX_LOG_INFO,
    NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};
use ngx::{ngx_log_debug_mask, ngx_log_error};

use crate::asgi::{self, gateway};
use crate::config::Module;
use crate::errlog::{self, log_client_gone};
use crate::inline::{self, Inline};
use crate::next::Next;
use crate::nginx::events::{self, Resume};
use crate::nginx::status_page;
use crate::request::{self, Mode, RequestCtx, State};
use crate::test_hooks::{self, Hook};
use crate::threads::{pool, relay, wakeup, Handoff, Link};
use crate::wsgi::interp;
use crate::{guard, log_vars, retire};

/// The content handler of `wsgi_pass` locations: create the request's
/// context and let nginx read the body; `on_body_read` starts the app.
///
/// # Safety
/// Called by nginx with a live request in the content phase.
pub unsafe extern "C" fn content_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    match guard::catch(|| start(r)) {
        Ok(rc) => rc,
        Err(panic) => {
            // Nothing of the request is the module's yet: nginx ends it.
            let message = guard::message("the content handler", &panic);
            ngx_log_error!(NGX_LOG_ALERT, (*(*r).connection).log, "{message}");
            NGX_HTTP_INTERNAL_SERVER_ERROR as _
        }
    }
}

/// # Safety
/// As for `content_handler`.
unsafe fn start(r: *mut ngx_http_request_t) -> ngx_int_t {
    let Some(lc) = Module::location_conf(&*r) else {
        return NGX_DECLINED as _;
    };
    let Some(app) = lc.app else {
        return NGX_DECLINED as _;
    };
    let log = (*(*r).connection).log;
    lc.test_hooks.panic_if(Hook::PanicInContentHandler);
    if !interp::ready() {
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "wsgi: Python is not running in this worker: {}",
            interp::start_failure()
        );
        return NGX_HTTP_INTERNAL_SERVER_ERROR as _;
    }
    if !lc.request_buffering() {
        // The app is called once the head is in, and reads the body as it
        // arrives (thread mode: relay::pull_body; ASGI: receive()).
        (*r).set_request_body_no_buffering(1);
    }
    let mode = match lc.pool() {
        _ if lc.asgi => Mode::Asgi(None),
        None => Mode::Inline(Inline::default()),
        Some(pool) => Mode::Thread(Link::new(r, pool)),
    };
    if !request::create(r, RequestCtx::new(r, app, mode)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as _;
    }
    ngx_log_debug_mask!(DebugMask::Http, log, "wsgi: reading the request body");
    let rc = ngx_http_read_client_request_body(r, Some(on_body_read));
    if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
        return rc;
    }
    NGX_DONE as _
}

/// nginx has the whole body (in memory or a temp file): run the app,
/// inline or on the location's thread pool.
extern "C" fn on_body_read(r: *mut ngx_http_request_t) {
    let mut asgi = false;
    // SAFETY: nginx calls the body handler with the live request, which this
    // module owns from here until it finalizes it.
    unsafe {
        guarded(r, "the request body handler", || {
            let Some(ctx) = request::get(r).filter(|ctx| ctx.state() == State::ReadingBody) else {
                return Some(Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _));
            };
            let (Some(lc), Some(main)) = (Module::location_conf(&*r), Module::main_conf(&*r))
            else {
                return Some(Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _));
            };
            // Until the module finalizes the request, a write event is its
            // to handle: nginx's own handler would run the phases again.
            (*r).write_event_handler = Some(on_write_event);
            lc.test_hooks.panic_if(Hook::PanicInBodyHandler);
            if let Mode::Inline(_) | Mode::Asgi(_) = ctx.mode {
                ctx.set_state(State::Running);
            }
            Some(match &mut ctx.mode {
                Mode::Inline(inline) => {
                    inline::start(r, ctx.log, ctx.app, &ctx.output, inline, lc, main)
                }
                Mode::Thread(link) => {
                    let next =
                        relay::submit(r, ctx.log, ctx.app, link, lc, main, Some(on_queue_timer));
                    if let Next::Queued = next {
                        (*r).read_event_handler = Some(on_client_read);
                    }
                    next
                }
                Mode::Asgi(slot) => {
                    let next = asgi::start(r, ctx.log, ctx.app, &ctx.output, slot, lc, main);
                    if let Next::Running = next {
                        // The app's task is made: a client that leaves
                        // cancels it.
                        (*r).read_event_handler = Some(on_client_read);
                        asgi = true;
                    }
                    next
                }
            })
        });
    }
    if asgi {
        // The task's first step runs right after this handler: nginx may
        // be inside ngx_http_read_client_request_body, whose caller
        // still counts on the request (a step may end it).
        gateway::step_soon();
    }
}

/// The request's write event, for as long as the module owns the request.
/// A response that waits for the client (or gave the loop a turn) pushes
/// what nginx holds and, once it is all out, goes on: inline, the pump
/// asks the app for more; in thread mode, the loop relays what the pool
/// thread handed over. In any other state the event means nothing.
extern "C" fn on_write_event(r: *mut ngx_http_request_t) {
    let mut asgi = false;
    // SAFETY: nginx calls the write event handler with the live request
    // this module set it on; the request is owned by this module.
    unsafe {
        guarded(r, "the write event handler", || {
            let Some(ctx) = request::get(r) else {
                return Some(Next::Finish(NGX_ERROR as _));
            };
            // ASGI: nginx's write filter stopped at its per-turn limit and
            // posted this event, or the socket took what nginx held: the
            // rest goes now, while the app awaits something else.
            let asgi_running = matches!((&ctx.mode, ctx.state()), (Mode::Asgi(_), State::Running));
            if !asgi_running && !matches!(ctx.state(), State::WaitingForClient | State::Yielded) {
                return None;
            }
            fault_point(r, Hook::PanicInWriteEvent);
            match events::resume(r, &ctx.output) {
                Resume::TimedOut => {
                    let c = (*r).connection;
                    ngx_log_error!(
                        NGX_LOG_INFO,
                        (*c).log,
                        "wsgi: client timed out (send_timeout) ({})",
                        NGX_ETIMEDOUT
                    );
                    (*c).set_timedout(1);
                    Some(Next::Finish(NGX_HTTP_REQUEST_TIME_OUT as _))
                }
                Resume::Gone => {
                    log_client_gone(ctx.log);
                    Some(Next::Finish(NGX_ERROR as _))
                }
                Resume::Wait if asgi_running => {
                    // The write event wakes this again; the app goes on.
                    (!events::wait_for_client(r)).then_some(Next::Finish(NGX_ERROR as _))
                }
                Resume::Ready if asgi_running => {
                    (!events::stop_waiting(r)).then_some(Next::Finish(NGX_ERROR as _))
                }
                Resume::Wait => Some(Next::WaitForClient),
                Resume::Ready => {
                    ctx.set_state(State::Running);
                    match &mut ctx.mode {
                        Mode::Inline(inline) => Some(inline::drive(r, &ctx.output, inline)),
                        Mode::Thread(link) => relay::relay(r, ctx.log, false, &ctx.output, link),
                        Mode::Asgi(request) => {
                            // The app's send() goes on at the loop's step;
                            // until it writes again nothing waits.
                            if let Some(request) = request {
                                request.resume();
                            }
                            asgi = true;
                            if !events::stop_waiting(r) {
                                return Some(Next::Finish(NGX_ERROR as _));
                            }
                            Some(Next::Running)
                        }
                    }
                }
            }
        });
    }
    if asgi {
        run_asgi_loop();
    }
}

/// Thread mode and ASGI: a read event while the app waits for a thread
/// or runs: more of a body the app reads as it arrives, or else the client
/// may have closed the connection.
extern "C" fn on_client_read(r: *mut ngx_http_request_t) {
    let mut asgi = false;
    // SAFETY: nginx calls the read event handler with the live request,
    // which this module owns.
    unsafe {
        guarded(r, "the read event handler", || {
            let ctx = request::get(r).filter(|ctx| ctx.state() != State::Done)?;
            if let Mode::Asgi(request) = &mut ctx.mode {
                if let Some(next) = request.as_mut().and_then(|a| a.on_readable(r)) {
                    // An open WebSocket: its frames; the loop runs after.
                    asgi = true;
                    return next;
                }
                if request.as_mut().is_some_and(|a| a.body_readable()) {
                    // More of a streamed body: the app's receive() reads it.
                    asgi = true;
                    return None;
                }
                if !events::client_closed(r) {
                    return None;
                }
                (*(*r).connection).set_error(1);
                errlog::log_client_gone_as(ctx.log, errlog::CLIENT_GONE_ASGI);
                return Some(Next::Finish(NGX_HTTP_CLIENT_CLOSED_REQUEST as _));
            }
            let Mode::Thread(link) = &mut ctx.mode else {
                return None;
            };
            if link.pulls_body() {
                return relay::pull_body(r, ctx.log, link);
            }
            if !events::client_closed(r) {
                return None;
            }
            fault_point(r, Hook::PanicInClientRead);
            (*(*r).connection).set_error(1);
            Some(relay::client_left(ctx.log, link))
        });
    }
    if asgi {
        run_asgi_loop();
    }
}

/// Thread mode: the request's wsgi_queue_timeout.
extern "C" fn on_queue_timer(ev: *mut ngx_event_t) {
    // SAFETY: relay::submit set `data` to the request; the timer is deleted
    // when the request's context is dropped, so the request is live.
    unsafe {
        let r = (*ev).data as *mut ngx_http_request_t;
        let c = (*r).connection;
        guarded(r, "the queue timer", || {
            let ctx = request::get(r)?;
            let queued = ctx.state() == State::Queued;
            let Mode::Thread(link) = &mut ctx.mode else {
                return None;
            };
            let lc = Module::location_conf(&*r)?;
            if !link.owns_timer(ev) || !queued {
                return None;
            }
            lc.test_hooks.panic_if(Hook::PanicInQueueTimer);
            relay::queue_timed_out(ctx.log, link, lc)
        });
        ngx_http_run_posted_requests(c);
    }
}

/// Thread mode: a pool thread (or another thread's log line) woke the
/// event loop through the eventfd.
pub extern "C" fn on_wake(ev: *mut ngx_event_t) {
    let log = ngx::log::ngx_cycle_log().as_ptr();
    let woken = guard::catch(|| {
        // SAFETY: nginx calls this with the eventfd's read event.
        let woken = unsafe { wakeup::take(ev) };
        if woken.forced_down {
            pool::abandon();
        }
        errlog::write_deferred(log);
        // The watchdog found an app stuck on a pool thread (and logged why).
        retire::act_on_request();
        woken.requests
    });
    match woken {
        Ok(requests) => requests.iter().for_each(on_news),
        Err(panic) => {
            ngx_log_error!(
                NGX_LOG_ALERT,
                log,
                "{}",
                guard::message("the wake-up handler", &panic)
            );
        }
    }
}

/// The news of one request's pool thread.
fn on_news(handoff: &Arc<Handoff>) {
    let r = handoff.request();
    if r.is_null() {
        return;
    }
    // SAFETY: the hand-off points at the request until the request's
    // context is dropped, which clears it; this is the loop thread.
    unsafe {
        let c = (*r).connection;
        guarded(r, "the wake-up handler", || {
            let ctx = request::get(r)?;
            // After an internal redirect (error_page) `r` may have a new context.
            if !matches!(&ctx.mode, Mode::Thread(link) if link.owns(handoff)) {
                return None;
            }
            fault_point(r, Hook::PanicInWakeUp);
            let finalized = match ctx.state() {
                State::ReadingBody => return None,
                State::Done => true,
                State::Queued => {
                    ctx.set_state(State::Running); // the first news: a thread took it
                    false
                }
                _ => false,
            };
            let Mode::Thread(link) = &mut ctx.mode else {
                return None;
            };
            if !finalized {
                // The app may have made room for more of its body.
                if let Some(next) = relay::pull_body(r, ctx.log, link) {
                    return Some(next);
                }
            }
            relay::relay(r, ctx.log, finalized, &ctx.output, link)
        });
        ngx_http_run_posted_requests(c);
    }
}

/// ASGI: the read event of an open WebSocket's connection (in place of
/// nginx's request handler, which would end the request without a word
/// when the worker exits): frames, or, when nginx closes the connection
/// as idle, a close frame saying the server is going away.
pub extern "C" fn on_websocket_read(ev: *mut ngx_event_t) {
    // SAFETY: the handler of a WebSocket request's connection: `data` is
    // the connection, whose `data` is the request, live while it is open.
    unsafe {
        let c = (*ev).data as *mut ngx::ffi::ngx_connection_t;
        let r = (*c).data as *mut ngx_http_request_t;
        if (*c).close() != 0 {
            // The module closes it, once nginx has sent the close frame
            // (nginx's request handler would drop what it holds).
            (*c).set_close(0);
            (*c).set_idle(0);
            guarded(r, "the WebSocket's read handler", || {
                let ctx = request::get(r)?;
                let Mode::Asgi(Some(request)) = &mut ctx.mode else {
                    return Some(Next::Finish(NGX_ERROR as _));
                };
                Some(request.going_away().unwrap_or(Next::Finish(NGX_ERROR as _)))
            });
            ngx_http_run_posted_requests(c);
            run_asgi_loop();
            return;
        }
        if (*ev).timedout() != 0 {
            // The keepalive timer: a ping, or a client taken for gone.
            (*ev).set_timedout(0);
            guarded(r, "the WebSocket's keepalive", || {
                let ctx = request::get(r)?;
                let Mode::Asgi(Some(request)) = &mut ctx.mode else {
                    return None;
                };
                request.keep_alive_timer(r)
            });
            ngx_http_run_posted_requests(c);
            run_asgi_loop();
            return;
        }
        on_client_read(r);
        ngx_http_run_posted_requests(c);
    }
}

/// ASGI: the asyncio loop has work: its descriptor is readable, its next
/// timer is due, or callbacks are ready (a posted event).
pub extern "C" fn on_asgi_loop(_ev: *mut ngx_event_t) {
    run_asgi_loop();
}

/// Runs a step of the asyncio loop and settles what its requests do next.
fn run_asgi_loop() {
    let decided = guard::catch(asgi::step);
    match decided {
        Ok(decided) => {
            for (r, next) in decided {
                // SAFETY: the step's requests are live (nothing finalizes a
                // request during a step) and this module's; each settles
                // once, and finalizing one leaves the others live.
                unsafe {
                    let c = (*r).connection;
                    guarded(r, "the asyncio loop", || Some(next));
                    ngx_http_run_posted_requests(c);
                }
            }
        }
        Err(panic) => {
            let log = ngx::log::ngx_cycle_log().as_ptr();
            ngx_log_error!(
                NGX_LOG_ALERT,
                log,
                "{}",
                guard::message("the asyncio loop", &panic)
            );
        }
    }
}

/// Thread mode: the timer that keeps an exiting worker waiting for the
/// apps still running.
pub extern "C" fn on_busy_timer(_ev: *mut ngx_event_t) {
    worker_event("the busy timer", || {
        test_hooks::worker().panic_if(Hook::PanicInBusyTimer);
        pool::check_busy();
    });
}

/// Thread mode: the posted event that wakes pool threads for the requests
/// queued in this turn of the event loop.
pub extern "C" fn on_wake_threads(_ev: *mut ngx_event_t) {
    worker_event("waking the pool threads", pool::wake_threads);
}

/// The content handler of a `wsgi_status` location.
pub extern "C" fn status_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls the content handler with a live request.
    match guard::catch(|| unsafe { status_page::respond(r) }) {
        Ok(rc) => rc,
        Err(panic) => {
            // SAFETY: as above.
            let log = unsafe { (*(*r).connection).log };
            ngx_log_error!(
                NGX_LOG_ALERT,
                log,
                "{}",
                guard::message("the status page", &panic)
            );
            NGX_HTTP_INTERNAL_SERVER_ERROR as _
        }
    }
}

/// A `$wsgi_*` variable (log_vars.rs), for `log_format` and the like.
pub extern "C" fn on_variable(
    r: *mut ngx_http_request_t,
    v: *mut ngx_http_variable_value_t,
    data: usize,
) -> ngx_int_t {
    // SAFETY: nginx asks for a variable of a live request.
    let value = guard::catch(|| unsafe {
        log_vars::Variable::from_data(data).and_then(|var| log_vars::value(r, var))
    });
    // SAFETY: as above; `v` is nginx's value to fill.
    unsafe { log_vars::set(r, v, value.ok().flatten()) };
    NGX_OK as _
}

/// Runs the `work` of an event that belongs to no request (`what`, for
/// the alert): a panic is logged in the worker's log.
fn worker_event(what: &str, work: impl FnOnce()) {
    if let Err(panic) = guard::catch(work) {
        let log = ngx::log::ngx_cycle_log().as_ptr();
        ngx_log_error!(NGX_LOG_ALERT, log, "{}", guard::message(what, &panic));
    }
}

/// Test build: panics here if the location of `r` armed `hook`. A release
/// build has no hooks, and looks nothing up.
///
/// # Safety
/// `r` must be a live request.
#[inline(always)]
unsafe fn fault_point(r: *mut ngx_http_request_t, hook: Hook) {
    if cfg!(feature = "test-hooks") {
        if let Some(lc) = Module::location_conf(&*r) {
            lc.test_hooks.panic_if(hook);
        }
    }
}

/// Runs an entry point's `work` for request `r` and settles the request as
/// the work decides (None: it stays as it is). A panic in the work is
/// logged at alert and ends the request: 500, or, once the head is out, an
/// aborted response.
///
/// # Safety
/// `r` must be a live request of this module's location.
unsafe fn guarded(r: *mut ngx_http_request_t, place: &str, work: impl FnOnce() -> Option<Next>) {
    match guard::catch(work) {
        Ok(Some(next)) => request::settle(r, next),
        Ok(None) => {}
        Err(panic) => {
            let log = (*(*r).connection).log;
            ngx_log_error!(NGX_LOG_ALERT, log, "{}", guard::message(place, &panic));
            let rc = if (*r).header_sent() != 0 {
                NGX_ERROR as ngx_int_t
            } else {
                NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
            };
            request::settle(r, Next::Finish(rc));
        }
    }
}
