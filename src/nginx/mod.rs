//! The event loop's side of a request, in nginx's terms: what it reads of
//! the request (`cgi`, `body`, `upload` as it arrives) and how it answers (`headers_out`, `output` with `file`,
//! `events`, or elsewhere: `redirect`; `status_page` for `wsgi_status`). Only the event-loop thread runs this code.

pub mod body;
pub mod cgi;
pub mod events;
pub mod file;
pub mod headers_out;
pub mod output;
pub mod redirect;
pub mod status_page;
pub mod upload;

use ngx::ffi::{ngx_pnalloc, ngx_pool_t, ngx_str_t};

/// A copy of `bytes` in `pool` (a request's, for what nginx reads of it
/// until the request ends: header fields, a redirect's URI, variables).
///
/// # Safety
/// `pool` must be a live nginx pool.
pub unsafe fn pool_str(pool: *mut ngx_pool_t, bytes: &[u8]) -> Option<ngx_str_t> {
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
