//! The request body nginx has read, in its memory buffers and temp file:
//! its length, and for `wsgi.input` (`wsgi::input`), made on the event
//! loop, a copy of a body in memory, or a descriptor of its own for a body
//! in the temp file (read as the app asks, memory not growing with it).

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use ngx::ffi::{ngx_buf_t, ngx_http_request_t};

use crate::wsgi::input::{BodyFile, RequestBody};

/// The length of the body nginx has read.
///
/// # Safety
/// `r` must be a live request whose body nginx has finished reading.
pub unsafe fn body_len(r: *mut ngx_http_request_t) -> usize {
    body_buffers(r).iter().map(|b| buf_len(*b)).sum()
}

/// The body for an app that runs on a pool thread, which must not touch
/// the request: the temp file through a descriptor of its own, or a copy.
///
/// # Safety
/// `r` must be a live request whose body nginx has finished reading.
pub unsafe fn take_body(r: *mut ngx_http_request_t, len: usize) -> io::Result<RequestBody> {
    if let Some(file) = body_file(r)? {
        return Ok(RequestBody::File(file));
    }
    let mut body = vec![0; len];
    gather(r, &mut body)?;
    Ok(RequestBody::Memory(body))
}

/// The body, when nginx wrote all of it to its temp file (as it does
/// with a body over `client_body_buffer_size`): the file, opened anew so
/// that the descriptor, its offset and its life are the module's own, and
/// positioned at the body's start. None for a body in memory (or in
/// pieces, which is then copied).
///
/// # Safety
/// `r` must be a live request whose body nginx has finished reading.
pub unsafe fn body_file(r: *mut ngx_http_request_t) -> io::Result<Option<BodyFile>> {
    let rb = (*r).request_body;
    let cl = if rb.is_null() {
        std::ptr::null_mut()
    } else {
        (*rb).bufs
    };
    // One buffer, in the file: what nginx leaves of a body it spooled.
    if cl.is_null() || !(*cl).next.is_null() || (*cl).buf.is_null() {
        return Ok(None);
    }
    let b = (*cl).buf;
    if in_memory(b) || (*b).in_file() == 0 || (*b).file.is_null() {
        return Ok(None);
    }
    let (start, end) = ((*b).file_pos, (*b).file_last);
    let nginx_fd = (*(*b).file).fd;
    // Through /proc: a new open file description (nginx's own descriptor
    // shares its offset with any dup of it).
    let path = CString::new(format!("/proc/self/fd/{nginx_fd}")).map_err(io::Error::other)?;
    let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = OwnedFd::from_raw_fd(fd);
    // The body must be the file from `start` to its end: the file object
    // reads to the end of the file.
    let mut stat: libc::stat = std::mem::zeroed();
    if libc::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut stat) != 0 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_size != end || start > end {
        return Ok(None);
    }
    if libc::lseek(std::os::fd::AsRawFd::as_raw_fd(&fd), start, libc::SEEK_SET) != start {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(BodyFile {
        fd,
        len: (end - start) as u64,
    }))
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
pub(super) unsafe fn in_memory(b: *mut ngx_buf_t) -> bool {
    (*b).temporary() != 0 || (*b).memory() != 0 || (*b).mmap() != 0
}

/// # Safety
/// `b` must be a live body buffer.
pub(super) unsafe fn buf_len(b: *mut ngx_buf_t) -> usize {
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
