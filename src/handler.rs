//! The content handler of `wsgi_pass` locations: create the request's
//! context, let nginx read the body, and start the app once it is read.

use ngx::ffi::{
    ngx_http_read_client_request_body, ngx_http_request_t, ngx_int_t, NGX_DECLINED, NGX_DONE,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_SPECIAL_RESPONSE, NGX_LOG_ERR,
};
use ngx::http::HttpModuleLocationConf;
use ngx::ngx_log_error;

use crate::conf::Module;
use crate::ctx::{self, RequestCtx};
use crate::{interp, pump};

/// # Safety
/// Called by nginx with a live request in the content phase.
pub unsafe extern "C" fn content_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    let Some(app) = Module::location_conf(&*r).and_then(|lc| lc.app) else {
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
    if ctx::create(r, RequestCtx::new(log, app)).is_none() {
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
    crate::guard(r, || unsafe { pump::start(r) });
}
