//! `wsgi.input`: the request body nginx has read. A body nginx kept in
//! memory is gathered into one bytes object behind an `io.BytesIO`; one it
//! wrote to a temp file (over `client_body_buffer_size`) is read from that
//! file as the app asks, through a file object of its own (`BodyFile`), so
//! a request's memory does not grow with its body. A request without a
//! body gets a shared, stateless empty stream; one whose app reads the
//! body as it arrives (`wsgi_request_buffering off`), a `stream::
//! StreamedInput`.

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyType};

use super::stream::{BodyStream, StreamedInput};
use super::watch::Watch;

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

/// `wsgi.input` over a body of `len` bytes that `fill` copies into place
/// (inline: straight from nginx's buffers into the bytes object).
pub fn wsgi_input(
    py: Python<'_>,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> io::Result<()>,
) -> PyResult<WsgiInput<'_>> {
    if len == 0 {
        return empty(py).map(WsgiInput::memory);
    }
    let mut failure = None;
    let body = PyBytes::new_with(py, len, |dst| {
        failure = fill(dst).err();
        Ok(())
    })?;
    if let Some(e) = failure {
        return Err(pyo3::exceptions::PyOSError::new_err(format!(
            "reading the request body's temp file failed: {e}"
        )));
    }
    BYTES_IO
        .import(py, "io", "BytesIO")?
        .call1((body,))
        .map(WsgiInput::memory)
}

/// A request body nginx wrote to its temp file: a descriptor of the file
/// that is the module's own (its own offset; the file stays readable after
/// nginx closes and removes it), positioned at the body's start.
pub struct BodyFile {
    pub fd: OwnedFd,
    pub len: u64,
}

/// The request body as an app on a pool thread gets it: owned, so that the
/// thread never touches nginx's request.
pub enum RequestBody {
    Memory(Vec<u8>),
    File(BodyFile),
    /// `wsgi_request_buffering off`: as the client sends it.
    Stream(Arc<BodyStream>),
}

/// What `wsgi.input` is, and whether it holds a file to close when the
/// response ends (the app may keep the object).
pub struct WsgiInput<'py> {
    pub stream: Bound<'py, PyAny>,
    pub holds_file: bool,
}

impl<'py> WsgiInput<'py> {
    fn memory(stream: Bound<'py, PyAny>) -> WsgiInput<'py> {
        WsgiInput {
            stream,
            holds_file: false,
        }
    }
}

/// How much of a file-backed body `wsgi.input` buffers: Python's
/// `BufferedReader` over the file, read as the app asks.
const FILE_BUFFER: usize = 64 * 1024;

/// `wsgi.input` over a body in nginx's temp file.
pub fn from_file(py: Python<'_>, file: BodyFile) -> PyResult<WsgiInput<'_>> {
    if file.len == 0 {
        return empty(py).map(WsgiInput::memory);
    }
    let io = py.import("io")?;
    let fd = file.fd.into_raw_fd();
    // FileIO owns the descriptor once made (closefd); made in two steps so
    // that whoever owns it closes it, once, on every path.
    let raw = match io.call_method1("FileIO", (fd, "rb")) {
        Ok(raw) => raw,
        Err(e) => {
            // SAFETY: FileIO refused the descriptor (it leaves one it was
            // given open when it fails): it is still ours alone.
            unsafe { libc::close(fd) };
            return Err(e);
        }
    };
    // If this fails, `raw` is dropped and closes the descriptor.
    let stream = io.call_method1("BufferedReader", (raw, FILE_BUFFER))?;
    Ok(WsgiInput {
        stream,
        holds_file: true,
    })
}

/// `wsgi.input` over a body copied out of nginx already (thread mode), in
/// its temp file, or on its way; `watch` is the thread's that reads it.
pub fn from_body<'py>(
    py: Python<'py>,
    body: RequestBody,
    watch: &'static Watch,
) -> PyResult<WsgiInput<'py>> {
    let body = match body {
        RequestBody::File(file) => return from_file(py, file),
        RequestBody::Stream(stream) => {
            let input = Bound::new(py, StreamedInput::new(stream, watch))?;
            return Ok(WsgiInput::memory(input.into_any()));
        }
        RequestBody::Memory(body) => body,
    };
    if body.is_empty() {
        return empty(py).map(WsgiInput::memory);
    }
    BYTES_IO
        .import(py, "io", "BytesIO")?
        .call1((PyBytes::new(py, &body),))
        .map(WsgiInput::memory)
}

/// Most requests have no body: they share one stateless empty stream.
fn empty(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let empty = EMPTY.get_or_try_init(py, || Py::new(py, EmptyInput))?;
    Ok(empty.bind(py).clone().into_any())
}
