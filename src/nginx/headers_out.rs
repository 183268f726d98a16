//! The app's response head (`wsgi::start_response::Head`, checked on the
//! app's thread) into nginx's `headers_out`, and the header sent: on the
//! event loop, once the first body chunk or the end is ready.

#[cfg(not(nginx_header_chains))]
use ngx::ffi::ngx_array_push;
use ngx::ffi::{
    ngx_http_headers_out_t, ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_list_push,
    ngx_palloc, ngx_parse_http_time, ngx_pool_t, ngx_str_t, ngx_table_elt_t, time_t, NGX_ERROR,
    NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_OK,
};

use super::pool_str;
use crate::wsgi::accel::Accel;
use crate::wsgi::start_response::Head;

/// Copies `head` into `headers_out` and sends the header. `Ok` when the
/// body follows; `Err(rc)` when the request ends here: a header-only
/// response (HEAD, 204, 304) or an error, to be finalized with `rc`.
///
/// # Safety
/// `r` must be a live request whose header has not been sent.
pub unsafe fn send_head(
    r: *mut ngx_http_request_t,
    head: &Head,
    known_length: Option<usize>,
) -> Result<(), ngx_int_t> {
    if apply(r, head, known_length).is_err() {
        return Err(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
    }
    let rc = ngx_http_send_header(r);
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || (*r).header_only() != 0 {
        return Err(rc);
    }
    Ok(())
}

/// Sends the WebSocket handshake's answer: 101 Switching Protocols with
/// `fields` (nginx adds `Connection: upgrade`). The connection is then the
/// module's to speak frames on.
///
/// # Safety
/// `r` must be a live HTTP/1.1 request whose header has not been sent.
pub unsafe fn send_switching_protocols(
    r: *mut ngx_http_request_t,
    fields: &[(Vec<u8>, Vec<u8>)],
) -> ngx_int_t {
    (*r).headers_out.status = ngx::ffi::NGX_HTTP_SWITCHING_PROTOCOLS as _;
    (*r).headers_out.content_length_n = -1;
    (*r).set_header_only(0);
    for (name, value) in fields {
        if add_field(r, name, value).is_err() {
            return NGX_ERROR as _;
        }
    }
    ngx_http_send_header(r)
}

/// Adds a trailer field (`name: value`), sent after the body: nginx's
/// chunked filter (HTTP/1.1) and HTTP/2 send `headers_out.trailers` with
/// the last buffer of a response that expects them.
///
/// # Safety
/// `r` must be a live request whose last buffer has not been sent.
pub unsafe fn add_trailer(r: *mut ngx_http_request_t, name: &[u8], value: &[u8]) -> Result<(), ()> {
    let pool = (*r).pool;
    let h = ngx_list_push(&mut (*r).headers_out.trailers) as *mut ngx_table_elt_t;
    if h.is_null() {
        return Err(());
    }
    (*h).hash = 1;
    (*h).key = pool_str(pool, name).ok_or(())?;
    (*h).value = pool_str(pool, value).ok_or(())?;
    (*h).lowcase_key = (*h).key.data;
    #[cfg(nginx_header_chains)]
    {
        (*h).next = std::ptr::null_mut();
    }
    Ok(())
}

/// Copies `head` into the request's `headers_out`.
///
/// # Safety
/// `r` must be a live request whose header has not been sent.
unsafe fn apply(
    r: *mut ngx_http_request_t,
    head: &Head,
    known_length: Option<usize>,
) -> Result<(), ()> {
    (*r).headers_out.status = head.status as _;
    (*r).headers_out.status_line = pool_str((*r).pool, head.status_line()).ok_or(())?;
    // The app decides freshness: nginx must not turn its 200 into a 304.
    (*r).set_disable_not_modified(1);
    let ranges = file_ranges(head);
    for (name, value) in head.fields() {
        // Content-Length: set below, parsed. With ranges, nginx's range
        // filter says Accept-Ranges itself.
        let skip = name.eq_ignore_ascii_case(b"content-length")
            || (ranges && name.eq_ignore_ascii_case(b"accept-ranges"));
        if !skip {
            add_field(r, name, value)?;
        }
    }
    (*r).set_allow_ranges(ranges as _);
    apply_accel(r, &head.accel)?;
    let ho = &mut (*r).headers_out;
    match (head.content_length, known_length) {
        (Some(n), _) => ho.content_length_n = n as i64,
        (None, Some(n)) => ho.content_length_n = n as i64,
        (None, None) => {}
    }
    // With a status line of its own nginx's header filter skips these
    // rules: 204 and 304 have no body.
    if head.status == 204 || head.status == 304 {
        (*r).set_header_only(1);
    }
    if head.status == 204 {
        ho.content_length_n = -1;
        ho.content_type_len = 0;
        ho.content_type = ngx_str_t::empty();
    }
    Ok(())
}

/// Whether nginx's range filter may answer `Range:` for this response, as
/// for a static file: its body is a file nginx sends (`wsgi.file_wrapper`),
/// the status is 200 (a 206 the app made is its own), and the app did not
/// say `Accept-Ranges: none`. `If-Range` is compared with the app's ETag
/// or Last-Modified (see `add_field`).
fn file_ranges(head: &Head) -> bool {
    head.file_body
        && head.status == 200
        && head.fields().all(|(name, value)| {
            !name.eq_ignore_ascii_case(b"accept-ranges") || value.eq_ignore_ascii_case(b"bytes")
        })
}

/// The fields of an app's response that an `X-Accel-Redirect` keeps, as
/// nginx's upstream modules keep them: the redirect's response goes out
/// with them (a download's Content-Disposition, say).
const KEPT_BY_REDIRECT: [&[u8]; 6] = [
    b"content-type",
    b"set-cookie",
    b"content-disposition",
    b"cache-control",
    b"expires",
    b"accept-ranges",
];

/// Before an `X-Accel-Redirect`: copies the fields it keeps, and applies
/// the other X-Accel fields, which hold for the redirect's response.
///
/// # Safety
/// `r` must be a live request whose header has not been sent.
pub unsafe fn apply_for_redirect(r: *mut ngx_http_request_t, head: &Head) -> Result<(), ()> {
    for (name, value) in head.fields() {
        if KEPT_BY_REDIRECT
            .iter()
            .any(|k| name.eq_ignore_ascii_case(k))
        {
            add_field(r, name, value)?;
        }
    }
    apply_accel(r, &head.accel)
}

/// Adds one field to `headers_out`, keeping the pointers nginx's filters
/// consult in step with the list (so that nginx neither adds its own
/// Server or Date nor gzips encoded content, and `expires` and the range
/// filter see the app's fields).
///
/// # Safety
/// `r` must be a live request whose header has not been sent.
unsafe fn add_field(r: *mut ngx_http_request_t, name: &[u8], value: &[u8]) -> Result<(), ()> {
    let pool = (*r).pool;
    let ho = &mut (*r).headers_out;
    if name.eq_ignore_ascii_case(b"content-type") {
        let v = pool_str(pool, value).ok_or(())?;
        ho.content_type_len = v.len;
        ho.content_type = v;
        return Ok(());
    }
    let h = ngx_list_push(&mut ho.headers) as *mut ngx_table_elt_t;
    if h.is_null() {
        return Err(());
    }
    (*h).hash = 1;
    (*h).key = pool_str(pool, name).ok_or(())?;
    (*h).value = pool_str(pool, value).ok_or(())?;
    let lowcase = pool_str(pool, name).ok_or(())?;
    // SAFETY: pool_str just allocated these `len` bytes for this copy.
    std::slice::from_raw_parts_mut(lowcase.data, lowcase.len).make_ascii_lowercase();
    (*h).lowcase_key = lowcase.data;
    #[cfg(nginx_header_chains)]
    {
        (*h).next = std::ptr::null_mut();
    }
    let slot = if name.eq_ignore_ascii_case(b"server") {
        &mut ho.server
    } else if name.eq_ignore_ascii_case(b"date") {
        &mut ho.date
    } else if name.eq_ignore_ascii_case(b"content-encoding") {
        &mut ho.content_encoding
    } else if name.eq_ignore_ascii_case(b"expires") {
        &mut ho.expires
    } else if name.eq_ignore_ascii_case(b"accept-ranges") {
        &mut ho.accept_ranges
    } else if name.eq_ignore_ascii_case(b"etag") {
        // Made weak by filters that change the body (gzip), compared with
        // If-Range by the range filter.
        &mut ho.etag
    } else if name.eq_ignore_ascii_case(b"last-modified") {
        // As nginx keeps it: cleared by filters that change the body,
        // compared with If-Range.
        let time = ngx_parse_http_time(value.as_ptr() as *mut u8, value.len());
        ho.last_modified_time = if time == NGX_ERROR as time_t {
            -1
        } else {
            time
        };
        &mut ho.last_modified
    } else if name.eq_ignore_ascii_case(b"cache-control") {
        return keep_cache_control(pool, ho, h);
    } else {
        return Ok(());
    };
    *slot = h;
    Ok(())
}

/// Keeps a Cache-Control field where nginx keeps repeated ones (the
/// expires filter reads them): a chain through `next` since nginx 1.23, an
/// array of pointers before.
///
/// # Safety
/// `h` must be a field of `ho`'s list, allocated from `pool`, the
/// request's pool.
#[cfg(nginx_header_chains)]
unsafe fn keep_cache_control(
    _pool: *mut ngx_pool_t,
    ho: &mut ngx_http_headers_out_t,
    h: *mut ngx_table_elt_t,
) -> Result<(), ()> {
    let mut last = &mut ho.cache_control;
    while !last.is_null() {
        last = &mut (**last).next;
    }
    *last = h;
    Ok(())
}

#[cfg(not(nginx_header_chains))]
unsafe fn keep_cache_control(
    pool: *mut ngx_pool_t,
    ho: &mut ngx_http_headers_out_t,
    h: *mut ngx_table_elt_t,
) -> Result<(), ()> {
    let fields = &mut ho.cache_control;
    if fields.elts.is_null() {
        // What nginx's inline ngx_array_init does, for one pointer.
        let size = std::mem::size_of::<*mut ngx_table_elt_t>();
        fields.elts = ngx_palloc(pool, size);
        if fields.elts.is_null() {
            return Err(());
        }
        fields.nelts = 0;
        fields.size = size;
        fields.nalloc = 1;
        fields.pool = pool;
    }
    let slot = ngx_array_push(fields) as *mut *mut ngx_table_elt_t;
    if slot.is_null() {
        return Err(());
    }
    *slot = h;
    Ok(())
}

/// `X-Accel-Limit-Rate` and `X-Accel-Charset`, as nginx applies them.
///
/// # Safety
/// `r` must be a live request whose header has not been sent.
unsafe fn apply_accel(r: *mut ngx_http_request_t, accel: &Accel) -> Result<(), ()> {
    if let Some(rate) = accel.limit_rate {
        (*r).limit_rate = rate;
        (*r).set_limit_rate_set(1);
    }
    if let Some(charset) = &accel.charset {
        let pool = (*r).pool;
        let name = ngx_palloc(pool, std::mem::size_of::<ngx_str_t>()) as *mut ngx_str_t;
        if name.is_null() {
            return Err(());
        }
        *name = pool_str(pool, charset).ok_or(())?;
        (*r).headers_out.override_charset = name;
    }
    Ok(())
}
