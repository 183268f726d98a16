//! The app's response head (`wsgi::start_response::Head`, checked on the
//! app's thread) into nginx's `headers_out`, and the header sent: on the
//! event loop, once the first body chunk or the end is ready.

use ngx::ffi::{
    ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_list_push, ngx_pnalloc, ngx_str_t,
    ngx_table_elt_t, NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_OK,
};

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

/// Copies `head` into the request's `headers_out`.
///
/// # Safety
/// `r` must be a live request whose header has not been sent.
unsafe fn apply(
    r: *mut ngx_http_request_t,
    head: &Head,
    known_length: Option<usize>,
) -> Result<(), ()> {
    let pool = (*r).pool;
    let ho = &mut (*r).headers_out;
    ho.status = head.status as _;
    ho.status_line = pool_str(pool, head.status_line()).ok_or(())?;
    // The app decides freshness: nginx must not turn its 200 into a 304.
    (*r).set_disable_not_modified(1);
    for (name, value) in head.fields() {
        if name.eq_ignore_ascii_case(b"content-type") {
            let v = pool_str(pool, value).ok_or(())?;
            ho.content_type_len = v.len;
            ho.content_type = v;
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            continue; // set below from the parsed value
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
        (*h).next = std::ptr::null_mut();
        // Fields nginx's filters consult: keep them in step with the list so
        // nginx neither adds its own Server/Date nor gzips encoded content.
        if name.eq_ignore_ascii_case(b"server") {
            ho.server = h;
        } else if name.eq_ignore_ascii_case(b"date") {
            ho.date = h;
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
            ho.content_encoding = h;
        }
    }
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

/// # Safety
/// `pool` must be a live nginx pool.
unsafe fn pool_str(pool: *mut ngx::ffi::ngx_pool_t, bytes: &[u8]) -> Option<ngx_str_t> {
    let data = ngx_pnalloc(pool, bytes.len().max(1)) as *mut u8;
    if data.is_null() {
        return None;
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
    Some(ngx_str_t {
        len: bytes.len(),
        data,
    })
}
