//! The content handler of `wsgi_pass` locations: create the request's
//! context, let nginx read the body, and start the app once it is read —
//! inline, or on the location's thread pool.

use ngx::ffi::{
    ngx_http_finalize_request, ngx_http_read_client_request_body, ngx_http_request_t, ngx_int_t,
    NGX_DECLINED, NGX_DONE, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_SPECIAL_RESPONSE, NGX_LOG_ERR,
};
use ngx::http::HttpModuleLocationConf;
use ngx::ngx_log_error;

use crate::conf::Module;
use crate::ctx::{self, Inline, Mode, RequestCtx, State, ThreadLink};
use crate::handoff::Handoff;
use crate::{interp, pump, relay, resume};

/// # Safety
/// Called by nginx with a live request in the content phase.
pub unsafe extern "C" fn content_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let Some(lc) = Module::location_conf(&*r) else {
        return NGX_DECLINED as _;
    };
    let Some(app) = lc.app else {
        return NGX_DECLINED as _;
    };
    let log = (*(*r).connection).log;
    if !interp::ready() {
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "wsgi: Python is not running in this worker: {}",
            interp::start_failure()
        );
        return NGX_HTTP_INTERNAL_SERVER_ERROR as _;
    }
    let mode = match lc.pool() {
        None => Mode::Inline(Inline::default()),
        Some(pool) => Mode::Thread(ThreadLink {
            pool,
            handoff: Handoff::new(r),
            // SAFETY: an all-zero ngx_event_t is nginx's unarmed event.
            timer: std::mem::zeroed(),
        }),
    };
    if ctx::create(r, RequestCtx::new(log, app, mode)).is_none() {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as _;
    }
    let rc = ngx_http_read_client_request_body(r, Some(body_ready));
    if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
        return rc;
    }
    NGX_DONE as _
}

/// nginx has the whole body (in memory or a temp file): run the app.
extern "C" fn body_ready(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls the body handler with the live request, which this
    // module owns from here until it finalizes it.
    crate::guard(r, || unsafe {
        let Some(ctx) = ctx::get(r).filter(|ctx| ctx.state == State::ReadingBody) else {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR as _);
            return;
        };
        // Until the module finalizes the request, a write event is its to
        // handle: nginx's own handler would run the request's phases again.
        (*r).write_event_handler = Some(resume::on_write);
        match &ctx.mode {
            Mode::Inline(_) => pump::start(r, ctx),
            Mode::Thread(_) => relay::submit(r, ctx),
        }
    });
}
