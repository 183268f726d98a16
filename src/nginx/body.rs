//! The request body nginx has read, in its memory buffers and temp file:
//! its length, and a copy of it for `wsgi.input` (`wsgi::input`), made on
//! the event loop.

use std::io;

use ngx::ffi::{ngx_buf_t, ngx_http_request_t};

/// The length of the body nginx has read.
///
/// # Safety
/// `r` must be a live request whose body nginx has finished reading.
pub unsafe fn body_len(r: *mut ngx_http_request_t) -> usize {
    body_buffers(r).iter().map(|b| buf_len(*b)).sum()
}

/// The body, copied out of nginx's buffers and temp file, for an app that
/// runs on a pool thread: it must not touch the request.
///
/// # Safety
/// `r` must be a live request whose body nginx has finished reading.
pub unsafe fn read_body(r: *mut ngx_http_request_t, len: usize) -> io::Result<Vec<u8>> {
    let mut body = vec![0; len];
    gather(r, &mut body)?;
    Ok(body)
}

/// Copies the body into `dst`, which is as long as the body.
///
/// # Safety
/// `r` must be a live request whose body nginx has finished reading.
pub unsafe fn gather(r: *mut ngx_http_request_t, dst: &mut [u8]) -> io::Result<()> {
    let mut at = 0;
    for b in body_buffers(r) {
        let n = buf_len(b);
        copy_buf(b, &mut dst[at..at + n])?;
        at += n;
    }
    Ok(())
}

/// # Safety
/// `r` must be a live request.
unsafe fn body_buffers(r: *mut ngx_http_request_t) -> Vec<*mut ngx_buf_t> {
    let rb = (*r).request_body;
    let mut bufs = Vec::new();
    if rb.is_null() {
        return bufs;
    }
    let mut cl = (*rb).bufs;
    while !cl.is_null() {
        let b = (*cl).buf;
        if !b.is_null() {
            bufs.push(b);
        }
        cl = (*cl).next;
    }
    bufs
}

/// # Safety
/// `b` must be a live body buffer.
unsafe fn in_memory(b: *mut ngx_buf_t) -> bool {
    (*b).temporary() != 0 || (*b).memory() != 0 || (*b).mmap() != 0
}

/// # Safety
/// `b` must be a live body buffer.
unsafe fn buf_len(b: *mut ngx_buf_t) -> usize {
    if in_memory(b) {
        (*b).last.offset_from((*b).pos) as usize
    } else if (*b).in_file() != 0 {
        ((*b).file_last - (*b).file_pos) as usize
    } else {
        0
    }
}

/// # Safety
/// `b` must be a live body buffer; `dst` as long as `buf_len(b)`.
unsafe fn copy_buf(b: *mut ngx_buf_t, dst: &mut [u8]) -> io::Result<()> {
    if in_memory(b) {
        dst.copy_from_slice(std::slice::from_raw_parts((*b).pos, dst.len()));
        return Ok(());
    }
    let fd = (*(*b).file).fd;
    let mut done = 0;
    while done < dst.len() {
        let n = libc::pread(
            fd,
            dst[done..].as_mut_ptr().cast(),
            dst.len() - done,
            (*b).file_pos + done as i64,
        );
        match n {
            n if n > 0 => done += n as usize,
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file is short",
                ))
            }
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
