//! `wsgi.input`: the request body nginx has read, gathered into one bytes
//! object behind an `io.BytesIO`; a request without a body gets a shared,
//! stateless empty stream.

use std::io;

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

/// `wsgi.input` over a body of `len` bytes that `fill` copies into place
/// (inline: straight from nginx's buffers into the bytes object).
pub fn wsgi_input(
    py: Python<'_>,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> io::Result<()>,
) -> PyResult<Bound<'_, PyAny>> {
    if len == 0 {
        return empty(py);
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
    BYTES_IO.import(py, "io", "BytesIO")?.call1((body,))
}

/// `wsgi.input` over a body copied out of nginx already (thread mode).
pub fn from_bytes(py: Python<'_>, body: Vec<u8>) -> PyResult<Bound<'_, PyAny>> {
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
