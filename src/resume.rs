//! Suspend and resume: waiting for the client to take more output.

use std::ptr::addr_of_mut;

use ngx::ffi::{
    ngx_add_timer, ngx_del_timer, ngx_handle_write_event, ngx_http_finalize_request,
    ngx_http_request_t, ngx_int_t, ngx_post_event, ngx_posted_next_events, NGX_ERROR,
    NGX_ETIMEDOUT, NGX_HTTP_REQUEST_TIME_OUT, NGX_LOG_INFO, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx::ngx_log_error;

use crate::ctx::{self, Mode, RequestCtx, State};
use crate::output;
use crate::pump;
use crate::relay;

/// Suspends the response until the client can take more; ends the request
/// when the write event cannot be armed.
///
/// # Safety
/// `r` must be the live request `ctx` belongs to, owned by this module.
pub unsafe fn suspend_or_end(r: *mut ngx_http_request_t, ctx: &mut RequestCtx) {
    ctx.state = State::Suspended;
    if !suspend(r) {
        ctx.state = State::Done;
        ngx_http_finalize_request(r, NGX_ERROR as _);
    }
}

/// Waits for the client's socket to become writable, within send_timeout.
/// False when the write event cannot be armed.
///
/// # Safety
/// `r` must be a live request owned by this module.
unsafe fn suspend(r: *mut ngx_http_request_t) -> bool {
    let c = (*r).connection;
    let wev = (*c).write;
    (*r).write_event_handler = Some(on_write);
    let Some(clcf) = NgxHttpCoreModule::location_conf(&*(*r).main) else {
        return false;
    };
    if (*wev).delayed() == 0 {
        ngx_add_timer(wev, clcf.send_timeout);
    }
    ngx_handle_write_event(wev, clcf.send_lowat) == NGX_OK as ngx_int_t
}

/// Gives the event loop a turn and continues right after it. The event goes
/// to the *next* posted queue: nginx runs it after the next poll for I/O (with
/// a zero timeout), while a plain posted event would run again in this turn.
///
/// # Safety
/// `r` must be a live request owned by this module.
pub unsafe fn yield_turn(r: *mut ngx_http_request_t) {
    (*r).write_event_handler = Some(on_write);
    ngx_post_event(
        (*(*r).connection).write,
        addr_of_mut!(ngx_posted_next_events),
    );
}

/// The write event of a suspended request: time out, or push what nginx
/// holds and, once it is all out, produce more: inline, pump the iterable;
/// in thread mode, relay what the pool thread handed over.
pub extern "C" fn on_write(r: *mut ngx_http_request_t) {
    crate::guard(r, || {
        // SAFETY: nginx calls the write event handler with the live request
        // this module set it on; the request is owned by this module.
        unsafe {
            let c = (*r).connection;
            let wev = (*c).write;
            let Some(ctx) = ctx::get(r) else {
                ngx_http_finalize_request(r, NGX_ERROR as _);
                return;
            };
            if ctx.state != State::Suspended {
                // Only a suspended response waits for this event; any other
                // state has handed the request back to nginx already.
                return;
            }
            if (*wev).timedout() != 0 {
                ngx_log_error!(
                    NGX_LOG_INFO,
                    (*c).log,
                    "wsgi: client timed out (send_timeout) ({})",
                    NGX_ETIMEDOUT
                );
                (*c).set_timedout(1);
                ctx.state = State::Done;
                ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT as _);
                return;
            }
            if (*wev).delayed() != 0 {
                // limit_rate: nginx wakes us when the delay is over.
                suspend_or_end(r, ctx);
                return;
            }
            // The lock is released before anything that may end the request:
            // the context's cleanup takes it again.
            let (rc, must_wait) = {
                let mut out = output::lock(&ctx.output);
                let rc = out.send(r, std::ptr::null_mut());
                (rc, out.must_wait())
            };
            if rc == NGX_ERROR as ngx_int_t {
                crate::errlog::log_client_gone((*c).log);
                ctx.state = State::Done;
                ngx_http_finalize_request(r, NGX_ERROR as _);
                return;
            }
            if must_wait {
                suspend_or_end(r, ctx);
                return;
            }
            if (*wev).timer_set() != 0 {
                ngx_del_timer(wev);
            }
            match ctx.mode {
                Mode::Inline(_) => pump::drive(r, ctx),
                Mode::Thread(_) => relay::relay(r, ctx),
            }
        }
    });
}
