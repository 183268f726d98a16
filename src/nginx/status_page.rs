//! A `wsgi_status` location's answer: the module's figures for every
//! worker (`status::render`), as JSON, or with `?format=prometheus` in
//! Prometheus' text format. GET and HEAD, as `stub_status` answers.

use ngx::ffi::{
    ngx_chain_t, ngx_create_temp_buf, ngx_http_arg, ngx_http_discard_request_body,
    ngx_http_output_filter, ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_str_t,
    ngx_uint_t, NGX_ERROR, NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_INTERNAL_SERVER_ERROR,
    NGX_HTTP_NOT_ALLOWED, NGX_OK,
};

use super::pool_str;
use crate::status::{self, Format};

/// Answers `r` with the status page; the code to finalize with.
///
/// # Safety
/// `r` must be a live request of a `wsgi_status` location.
pub unsafe fn respond(r: *mut ngx_http_request_t) -> ngx_int_t {
    if (*r).method & (NGX_HTTP_GET | NGX_HTTP_HEAD) as ngx_uint_t == 0 {
        return NGX_HTTP_NOT_ALLOWED as _;
    }
    let rc = ngx_http_discard_request_body(r);
    if rc != NGX_OK as ngx_int_t {
        return rc;
    }
    let (format, content_type) = if arg(r, "format").as_deref() == Some(b"prometheus".as_slice()) {
        (
            Format::Prometheus,
            "text/plain; version=0.0.4; charset=utf-8",
        )
    } else {
        (Format::Json, "application/json")
    };
    let body = status::render(format, &python_version());
    let pool = (*r).pool;
    let Some(content_type) = pool_str(pool, content_type.as_bytes()) else {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as _;
    };
    (*r).headers_out.status = 200;
    (*r).headers_out.content_type_len = content_type.len;
    (*r).headers_out.content_type = content_type;
    (*r).headers_out.content_length_n = body.len() as i64;
    let rc = ngx_http_send_header(r);
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || (*r).header_only() != 0 {
        return rc;
    }
    let b = ngx_create_temp_buf(pool, body.len());
    if b.is_null() {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as _;
    }
    std::ptr::copy_nonoverlapping(body.as_ptr(), (*b).pos, body.len());
    (*b).last = (*b).pos.add(body.len());
    if r == (*r).main {
        (*b).set_last_buf(1);
    } else {
        (*b).set_last_in_chain(1);
    }
    let mut out = ngx_chain_t {
        buf: b,
        next: std::ptr::null_mut(),
    };
    ngx_http_output_filter(r, &mut out)
}

/// The request argument `name`, if given.
///
/// # Safety
/// `r` must be a live request.
unsafe fn arg(r: *mut ngx_http_request_t, name: &str) -> Option<Vec<u8>> {
    let mut value = ngx_str_t::empty();
    let found = ngx_http_arg(r, name.as_ptr() as *mut u8, name.len(), &mut value);
    (found == NGX_OK as ngx_int_t && !value.data.is_null())
        .then(|| std::slice::from_raw_parts(value.data, value.len).to_vec())
}

/// The Python the module runs, as `3.11.2`.
fn python_version() -> String {
    // SAFETY: Py_GetVersion returns a static string; it needs no GIL.
    let full = unsafe { std::ffi::CStr::from_ptr(pyo3::ffi::Py_GetVersion()) };
    full.to_string_lossy()
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned()
}
