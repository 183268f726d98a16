//! `wsgi_request_buffering off`, the event loop's side: nginx reads the
//! body as the client sends it (`request_body_no_buffering`, as the
//! upstream modules' `proxy_request_buffering off`), and `pull` offers what
//! it read to the app's side as far as that has room: a thread-mode app's
//! `BodyStream`, or the piece an ASGI app's `receive()` gets. What does
//! not fit stays in nginx's buffer; a full buffer makes nginx stop
//! reading from the client (over HTTP/2, stop granting window) until the
//! app has made room and the loop pulls again.

use ngx::ffi::{
    ngx_http_block_reading, ngx_http_read_unbuffered_request_body, ngx_http_request_body_t,
    ngx_http_request_t, ngx_int_t, ngx_uint_t, NGX_AGAIN, NGX_ERROR, NGX_HTTP_BAD_REQUEST,
    NGX_HTTP_CLIENT_CLOSED_REQUEST, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, NGX_HTTP_REQUEST_TIME_OUT,
    NGX_LOG_ERR, NGX_LOG_INFO, NGX_OK,
};

use super::body::{buf_len, in_memory};
use crate::status::{self, Counter};
use crate::wsgi::stream::BodyFault;

/// Whether nginx is to give the app the body as it arrives: a request
/// whose body nginx is still reading once the content phase starts it.
///
/// # Safety
/// `r` must be a live request whose body handler nginx has called.
pub unsafe fn streaming(r: *mut ngx_http_request_t) -> bool {
    // nginx clears the flag when it read the whole body at once.
    (*r).request_body_no_buffering() != 0
}

/// What a pull left.
pub enum Pulled {
    /// Waiting: for the client (nginx armed its read event) or for the app
    /// to make room (it wakes the loop).
    Waiting,
    /// The whole body was offered and taken.
    Complete,
    /// The body cannot be read to its end; nginx's code for it.
    Failed(BodyFault, ngx_int_t),
}

/// Offers what nginx has read (`offer` takes what it has room for, and
/// says how much) and has nginx read on, until the client has nothing more
/// for now, the taker is full, or the body ended.
///
/// # Safety
/// `r` must be a live request whose body nginx reads unbuffered, on the
/// event loop.
pub unsafe fn pull(r: *mut ngx_http_request_t, mut offer: impl FnMut(&[u8]) -> usize) -> Pulled {
    let rb = (*r).request_body;
    if rb.is_null() {
        return Pulled::Failed(BodyFault::Failed, NGX_HTTP_BAD_REQUEST as _);
    }
    loop {
        if !move_read(r, rb, &mut offer) {
            // The window is full: nginx's buffer keeps the rest. With
            // level-triggered events (poll), the client's data would wake
            // the loop on every turn until the app makes room: stop
            // watching, as nginx does; its next read watches again.
            ngx_http_block_reading(r);
            return Pulled::Waiting;
        }
        if (*r).reading_body() == 0 {
            return Pulled::Complete;
        }
        let rc = ngx_http_read_unbuffered_request_body(r);
        if rc == NGX_AGAIN as ngx_int_t && (*rb).bufs.is_null() {
            return Pulled::Waiting; // nothing more from the client for now
        }
        if rc != NGX_OK as ngx_int_t && rc != NGX_AGAIN as ngx_int_t {
            return Pulled::Failed(fault_of(r, rc), rc);
        }
    }
}

/// Offers the buffers nginx has read (`rb->bufs`), marking what was taken
/// consumed (nginx reuses what is), and frees their chain links; false
/// when the taker filled first.
///
/// # Safety
/// As for `pull`.
unsafe fn move_read(
    r: *mut ngx_http_request_t,
    rb: *mut ngx_http_request_body_t,
    offer: &mut impl FnMut(&[u8]) -> usize,
) -> bool {
    while !(*rb).bufs.is_null() {
        let cl = (*rb).bufs;
        let b = (*cl).buf;
        // nginx keeps an unbuffered body in memory (never a temp file).
        if !b.is_null() && in_memory(b) {
            let len = buf_len(b);
            if len > 0 {
                // SAFETY: an in-memory buffer has `len` bytes at pos.
                let taken = offer(std::slice::from_raw_parts((*b).pos, len));
                status::add(Counter::RequestBodyBytes, taken as u64);
                (*b).pos = (*b).pos.add(taken);
                if taken < len {
                    return false;
                }
            }
        }
        (*rb).bufs = (*cl).next;
        // nginx's ngx_free_chain: the link goes back to the request pool's
        // free list (nginx allocated it there for this list).
        (*cl).next = (*(*r).pool).chain;
        (*(*r).pool).chain = cl;
    }
    true
}

/// Why nginx could not read on (`rc`, its code).
///
/// # Safety
/// `r` must be a live request.
unsafe fn fault_of(r: *mut ngx_http_request_t, rc: ngx_int_t) -> BodyFault {
    if (*(*r).connection).error() != 0 {
        return BodyFault::ClientClosed; // closed, reset, or a failed recv
    }
    match rc as u32 {
        NGX_HTTP_REQUEST_TIME_OUT => BodyFault::TimedOut,
        NGX_HTTP_REQUEST_ENTITY_TOO_LARGE => BodyFault::TooLarge,
        NGX_HTTP_BAD_REQUEST => BodyFault::Invalid,
        _ => BodyFault::Failed,
    }
}

/// How a request whose body cannot be read to its end finishes: nginx's
/// code (`rc`: 408, 413, 400) before the head is out, an abort after, 499
/// for a client that left; with the level and the words for error_log.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn failure(
    r: *mut ngx_http_request_t,
    fault: BodyFault,
    rc: ngx_int_t,
) -> (ngx_int_t, ngx_uint_t, String) {
    let (rc, outcome) = if fault == BodyFault::ClientClosed {
        (
            NGX_HTTP_CLIENT_CLOSED_REQUEST as ngx_int_t,
            "the request ends".to_owned(),
        )
    } else if (*r).header_sent() != 0 {
        (NGX_ERROR as ngx_int_t, "aborting the response".to_owned())
    } else {
        (rc, format!("answering {rc}"))
    };
    let level = if fault == BodyFault::Failed {
        NGX_LOG_ERR
    } else {
        NGX_LOG_INFO // the client's doing, as nginx logs it
    };
    (rc, level as ngx_uint_t, outcome)
}
