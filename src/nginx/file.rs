//! nginx file objects for the output's file buffers: a thread-mode
//! response's temp file (held open by the request's link) or a file the
//! app handed over (`wsgi.file_wrapper`, closed by the request pool).

use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

use ngx::ffi::{
    ngx_file_t, ngx_http_request_t, ngx_pcalloc, ngx_pnalloc, ngx_pool_cleanup_add,
    ngx_pool_cleanup_file, ngx_pool_cleanup_file_t, ngx_str_t,
};

/// An `ngx_file_t` in the request pool for `fd`, called `name` in nginx's
/// messages. The caller keeps `fd` open until the request ends.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn in_request_pool(
    r: *mut ngx_http_request_t,
    fd: RawFd,
    name: &[u8],
) -> Option<*mut ngx_file_t> {
    let pool = (*r).pool;
    let f = ngx_pcalloc(pool, std::mem::size_of::<ngx_file_t>()) as *mut ngx_file_t;
    // NUL-terminated: the pool's cleanup logs it as a C string.
    let data = ngx_pnalloc(pool, name.len() + 1) as *mut u8;
    if f.is_null() || data.is_null() {
        return None;
    }
    std::ptr::copy_nonoverlapping(name.as_ptr(), data, name.len());
    *data.add(name.len()) = 0;
    (*f).fd = fd;
    (*f).name = ngx_str_t {
        len: name.len(),
        data,
    };
    (*f).log = (*(*r).connection).log;
    Some(f)
}

/// As `in_request_pool`, for a descriptor the request pool then owns: its
/// cleanup closes it when the request ends, whatever the way.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn owned_by_request_pool(
    r: *mut ngx_http_request_t,
    fd: OwnedFd,
    name: &[u8],
) -> Option<*mut ngx_file_t> {
    use std::os::fd::AsRawFd;
    let f = in_request_pool(r, fd.as_raw_fd(), name)?;
    let cln = ngx_pool_cleanup_add((*r).pool, std::mem::size_of::<ngx_pool_cleanup_file_t>());
    if cln.is_null() {
        return None; // `fd` is dropped, and closed, here
    }
    let clnf = (*cln).data as *mut ngx_pool_cleanup_file_t;
    (*clnf).fd = fd.into_raw_fd();
    (*clnf).name = (*f).name.data;
    (*clnf).log = (*f).log;
    (*cln).handler = Some(ngx_pool_cleanup_file);
    Some(f)
}
