//! `wsgi.input` over the request body nginx has read: its memory buffers and
//! its temp file, gathered into one bytes object behind an `io.BytesIO`; a
//! request without a body gets a shared, stateless empty stream.

use std::io;

use ngx::ffi::{ngx_buf_t, ngx_http_request_t};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyType};

static BYTES_IO: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EMPTY: PyOnceLock<Py<EmptyInput>> = PyOnceLock::new();

/// `wsgi.input` of a request without a body: every read is at its end.
#[pyclass(module = "ngx_wsgi", frozen)]
pub struct EmptyInput;

#[pymethods]
impl EmptyInput {
    #[pyo3(signature = (size = -1))]
    fn read<'py>(&self, py: Python<'py>, size: isize) -> Bound<'py, PyBytes> {
        let _ = size;
        PyBytes::new(py, b"")
    }

    #[pyo3(signature = (size = -1))]
    fn readline<'py>(&self, py: Python<'py>, size: isize) -> Bound<'py, PyBytes> {
        let _ = size;
        PyBytes::new(py, b"")
    }

    #[pyo3(signature = (hint = -1))]
    fn readlines<'py>(&self, py: Python<'py>, hint: isize) -> Bound<'py, PyList> {
        let _ = hint;
        PyList::empty(py)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self) -> Option<Py<PyAny>> {
        None
    }
}

/// The length of the body nginx has read.
///
/// # Safety
/// `r` must be a live request whose body nginx has finished reading.
pub unsafe fn body_len(r: *mut ngx_http_request_t) -> usize {
    body_buffers(r).iter().map(|b| buf_len(*b)).sum()
}

/// The body as a readable binary stream, copied straight from nginx's
/// buffers into one bytes object (inline mode).
///
/// # Safety
/// `r` must be a live request whose body nginx has finished reading.
pub unsafe fn wsgi_input<'py>(
    py: Python<'py>,
    r: *mut ngx_http_request_t,
    len: usize,
) -> PyResult<Bound<'py, PyAny>> {
    if len == 0 {
        return empty(py);
    }
    let mut failure = None;
    let body = PyBytes::new_with(py, len, |dst| {
        failure = gather(r, dst).err();
        Ok(())
    })?;
    if let Some(e) = failure {
        return Err(read_failed(e));
    }
    BYTES_IO.import(py, "io", "BytesIO")?.call1((body,))
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

/// `wsgi.input` over a body `read_body` copied.
pub fn stream(py: Python<'_>, body: Vec<u8>) -> PyResult<Bound<'_, PyAny>> {
    if body.is_empty() {
        return empty(py);
    }
    BYTES_IO
        .import(py, "io", "BytesIO")?
        .call1((PyBytes::new(py, &body),))
}

/// Most requests have no body: they share one stateless empty stream.
fn empty(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let empty = EMPTY.get_or_try_init(py, || Py::new(py, EmptyInput))?;
    Ok(empty.bind(py).clone().into_any())
}

fn read_failed(e: io::Error) -> PyErr {
    pyo3::exceptions::PyOSError::new_err(format!(
        "reading the request body's temp file failed: {e}"
    ))
}

/// Copies the body into `dst`, which is as long as the body.
///
/// # Safety
/// `r` must be a live request whose body nginx has finished reading.
unsafe fn gather(r: *mut ngx_http_request_t, dst: &mut [u8]) -> io::Result<()> {
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
