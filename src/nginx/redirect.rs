//! `X-Accel-Redirect`: the request goes on in another location, as nginx's
//! upstream modules send it there. The app's iterable is closed already and
//! nothing of its response went out; the fields a redirect keeps
//! (`headers_out::apply_for_redirect`) go out with the new location's
//! response, typically a file from an `internal` location.

use ngx::ffi::{
    ngx_http_block_reading, ngx_http_core_get_method, ngx_http_internal_redirect,
    ngx_http_named_location, ngx_http_parse_unsafe_uri, ngx_http_request_t, ngx_int_t, ngx_log_t,
    ngx_str_t, ngx_uint_t, NGX_DONE, NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_INTERNAL_SERVER_ERROR,
    NGX_HTTP_LOG_UNSAFE, NGX_HTTP_NOT_FOUND, NGX_OK,
};
use ngx::{ngx_log_debug_mask, ngx_log_error};

use super::headers_out;
use super::pool_str;
use crate::wsgi::start_response::Head;

/// Sends `r` to the `X-Accel-Redirect` target in `head`; the code to
/// finalize the request with (NGX_DONE once nginx has it in hand, which
/// releases the reference the module held).
///
/// # Safety
/// `r` must be a live request owned by this module whose header has not
/// been sent; the module lets go of it (its context is not used again).
pub unsafe fn redirect(r: *mut ngx_http_request_t, log: *mut ngx_log_t, head: &Head) -> ngx_int_t {
    let Some(target) = head.accel.redirect.as_deref() else {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as _;
    };
    ngx_log_debug_mask!(
        DebugMask::Http,
        log,
        "wsgi: X-Accel-Redirect to \"{}\"",
        String::from_utf8_lossy(target)
    );
    // In the request pool, which outlives the redirect.
    let Some(mut uri) = pool_str((*r).pool, target) else {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as _;
    };
    if headers_out::apply_for_redirect(r, head).is_err() {
        ngx_log_error!(
            ngx::ffi::NGX_LOG_ERR,
            log,
            "wsgi: no memory for the fields of an X-Accel-Redirect; answering 500"
        );
        return NGX_HTTP_INTERNAL_SERVER_ERROR as _;
    }
    // The module's read handler must not outlive its part in the request.
    (*r).read_event_handler = Some(ngx_http_block_reading);
    if target.first() == Some(&b'@') {
        ngx_http_named_location(r, &mut uri);
        return NGX_DONE as _;
    }
    let mut args = ngx_str_t::empty();
    let mut flags: ngx_uint_t = NGX_HTTP_LOG_UNSAFE as _;
    // Splits off the arguments; refuses "..", "/./" and the like (logged).
    if ngx_http_parse_unsafe_uri(r, &mut uri, &mut args, &mut flags) != NGX_OK as ngx_int_t {
        return NGX_HTTP_NOT_FOUND as _;
    }
    if (*r).method != NGX_HTTP_HEAD as ngx_uint_t {
        (*r).method = NGX_HTTP_GET as _;
        (*r).method_name = ngx_http_core_get_method;
    }
    ngx_http_internal_redirect(r, &mut uri, &mut args);
    NGX_DONE as _
}
