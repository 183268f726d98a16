//! `wsgi.file_wrapper` (PEP 3333's optional hook): an app that returns
//! `environ["wsgi.file_wrapper"](f, block_size)` over a regular file hands
//! nginx the file itself. The driver finds the wrapper (`FileWrapper::
//! file_body`) and sends a `FileBody`, a descriptor of the module's own
//! (a duplicate) and the range from the file's position to its end, which
//! nginx sends as it sends static files: `sendfile`, or its own reads, and
//! its range filter answers `Range:`. No Python runs per block. Anything
//! else in the wrapper (`io.BytesIO`, a pipe, a text file) is iterated in
//! `block_size` pieces, as `wsgiref.util.FileWrapper` does.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// The wrapper an app gets as `environ["wsgi.file_wrapper"]`.
#[pyclass(module = "ngx_wsgi", name = "FileWrapper", frozen)]
pub struct FileWrapper {
    /// The file-like object, as wsgiref's wrapper names it.
    #[pyo3(get)]
    filelike: Py<PyAny>,
    #[pyo3(get)]
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size = 8192))]
    fn new(filelike: Py<PyAny>, block_size: isize) -> PyResult<FileWrapper> {
        if block_size <= 0 {
            return Err(PyValueError::new_err(format!(
                "wsgi.file_wrapper: block_size must be above 0, not {block_size}"
            )));
        }
        Ok(FileWrapper {
            filelike,
            blksize: block_size as usize,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next block; the end when `read` returns nothing.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1(intern!(py, "read"), (self.blksize,))?;
        Ok((data.len().unwrap_or(0) > 0).then_some(data))
    }

    /// Closes the file-like object, if it can be closed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self.filelike.bind(py).getattr_opt(intern!(py, "close"))? {
            close.call0()?;
        }
        Ok(())
    }
}

/// A response body nginx sends from a file: `len` bytes at `offset`.
#[derive(Debug)]
pub struct FileBody {
    /// The module's own descriptor (a duplicate of the app's): the app may
    /// close its file once it is handed over.
    pub fd: OwnedFd,
    /// For nginx's messages about it: the file's name, or its descriptor.
    pub name: String,
    pub offset: u64,
    pub len: u64,
}

impl FileWrapper {
    /// The file body `wrapper` stands for: its file-like object is a
    /// binary file open for reading, over a regular file. None when it
    /// is to be iterated (also when asking raises: the iteration then
    /// says what is wrong).
    pub fn file_body(wrapper: &Bound<'_, FileWrapper>) -> Option<FileBody> {
        let py = wrapper.py();
        let filelike = wrapper.get().filelike.bind(py);
        let text = py
            .import(intern!(py, "io"))
            .and_then(|io| io.getattr(intern!(py, "TextIOBase")))
            .and_then(|text| filelike.is_instance(&text))
            .unwrap_or(true);
        if text {
            return None;
        }
        let fd: RawFd = filelike
            .call_method0(intern!(py, "fileno"))
            .and_then(|n| n.extract())
            .ok()?;
        // The position the app left the file at, its buffer counted.
        let offset: u64 = filelike
            .call_method0(intern!(py, "tell"))
            .and_then(|n| n.extract())
            .ok()?;
        let size = regular_readable_size(fd)?;
        let name = filelike
            .getattr_opt(intern!(py, "name"))
            .ok()
            .flatten()
            .and_then(|n| n.cast_into::<PyString>().ok())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("(descriptor {fd})"));
        // SAFETY: fcntl only reads `fd`, which the app's file holds open;
        // a new descriptor (>= 0) is ours alone.
        let own = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if own < 0 {
            return None;
        }
        Some(FileBody {
            // SAFETY: `own` was just made for us and nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(own) },
            name,
            offset,
            len: size.saturating_sub(offset),
        })
    }
}

/// The size of the file open at `fd` if it is a regular file open for
/// reading.
fn regular_readable_size(fd: RawFd) -> Option<u64> {
    // SAFETY: fcntl and fstat only read `fd` and write the local struct.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || flags & libc::O_ACCMODE == libc::O_WRONLY {
            return None;
        }
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return None;
        }
        Some(st.st_size as u64)
    }
}
