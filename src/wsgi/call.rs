//! One call of a WSGI app and its body, whichever thread runs it: the call,
//! the body chunk by chunk (`write()` data first, then the iterable's
//! items), the response head once, and `close()` exactly once.

use ngx::ffi::NGX_LOG_ERR;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyIterator, PyList, PyTuple};

use super::file_wrapper::{FileBody, FileWrapper};
use super::interp;
use super::start_response::{type_name, Head, StartResponse};
use crate::errlog::LogTo;

pub struct Call {
    /// What the app returned; `close()` is called on it exactly once.
    iterable: Option<Py<PyAny>>,
    iterator: Option<Py<PyIterator>>,
    start_response: Py<StartResponse>,
    /// Content-Length known from the iterable (a one-item list of bytes).
    pub known_length: Option<usize>,
}

impl Call {
    /// Calls the app. On `Err`, there is nothing to close.
    pub fn start(
        py: Python<'_>,
        app: &Bound<'_, PyAny>,
        environ: Bound<'_, PyDict>,
    ) -> PyResult<Call> {
        let start_response = Bound::new(py, StartResponse::default())?;
        let result = app.call1((environ, &start_response))?;
        Ok(Call {
            known_length: one_item_length(&result),
            iterable: Some(result.unbind()),
            iterator: None,
            start_response: start_response.unbind(),
        })
    }

    /// Starts iterating over what the app returned. On `Err` the caller
    /// still closes the call.
    pub fn iterate(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(result) = self.iterable.as_ref() else {
            return Ok(());
        };
        let result = result.bind(py);
        let iterator = result.try_iter().map_err(|_| {
            PyTypeError::new_err(format!(
                "the app returned {}, which is not an iterable of bytes",
                type_name(result)
            ))
        })?;
        self.iterator = Some(iterator.unbind());
        Ok(())
    }

    /// The app returned `wsgi.file_wrapper` over a regular file: the body
    /// nginx is to send from it.
    pub fn file_body(&self, py: Python<'_>) -> Option<FileBody> {
        let iterable = self.iterable.as_ref()?.bind(py);
        let wrapper = iterable.cast_exact::<FileWrapper>().ok()?;
        // What the app gave write() goes first: then the file is iterated.
        let nothing_written = self
            .start_response
            .bind(py)
            .try_borrow()
            .ok()?
            .written
            .is_empty();
        if !nothing_written {
            return None;
        }
        FileWrapper::file_body(wrapper)
    }

    /// The next body chunk; None at the end.
    pub fn next_chunk<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let start_response = self.start_response.bind(py);
        if let Some(data) = start_response.try_borrow_mut()?.written.pop_front() {
            // The body is more than the one-item list: its length is unknown.
            self.known_length = None;
            return Ok(Some(data.into_bound(py)));
        }
        let Some(iterator) = self.iterator.as_ref() else {
            return Ok(None);
        };
        let item = match iterator.bind(py).clone().next() {
            None => return Ok(None),
            Some(item) => item?,
        };
        let chunk = item.cast_into::<PyBytes>().map_err(|e| {
            PyTypeError::new_err(format!(
                "the response iterable yielded {}, not bytes",
                type_name(e.into_inner().as_any())
            ))
        })?;
        // write() called while producing this item comes first.
        let mut state = start_response.try_borrow_mut()?;
        if let Some(first) = state.written.pop_front() {
            state.written.push_back(chunk.unbind());
            return Ok(Some(first.into_bound(py)));
        }
        Ok(Some(chunk))
    }

    /// The status and headers, for sending: from here on, start_response
    /// only re-raises exc_info. An error if the app never called it.
    pub fn take_head(&self, py: Python<'_>) -> PyResult<Head> {
        let mut sr = self.start_response.bind(py).try_borrow_mut()?;
        sr.headers_sent = true;
        sr.head.take().ok_or_else(|| {
            PyRuntimeError::new_err("the app did not call start_response() before its body")
        })
    }

    /// Whether calling `close()` may run the app's code: the iterable is
    /// there and not a list or a tuple (the common case, which has none).
    pub fn has_close(&self, py: Python<'_>) -> bool {
        self.iterable.as_ref().is_some_and(|iterable| {
            let iterable = iterable.bind(py);
            !(iterable.is_exact_instance_of::<PyList>()
                || iterable.is_exact_instance_of::<PyTuple>())
        })
    }

    /// Calls the iterable's `close()` if it has one and it was not called;
    /// an exception from it is logged.
    pub fn close(&mut self, py: Python<'_>, log: &LogTo) {
        self.iterator = None;
        let Some(iterable) = self.iterable.take() else {
            return;
        };
        let iterable = iterable.bind(py);
        // Lists and tuples, the common case, have no close(): skip the
        // lookup, which would raise and clear an AttributeError.
        if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
            return;
        }
        let failure = match iterable.getattr_opt(intern!(py, "close")) {
            Ok(Some(close)) => close
                .call0()
                .err()
                .map(|e| (e, "wsgi: close() of the response iterable raised")),
            Ok(None) => None,
            Err(e) => Some((e, "wsgi: looking up close() raised")),
        };
        if let Some((e, what)) = failure {
            interp::log_exception(py, &e, log, NGX_LOG_ERR as _, what);
        }
    }
}

/// A one-item list or tuple of bytes has a known length: send it as
/// Content-Length, as PEP 3333 suggests.
fn one_item_length(result: &Bound<'_, PyAny>) -> Option<usize> {
    let item = if let Ok(list) = result.cast_exact::<PyList>() {
        (list.len() == 1).then(|| list.get_item(0).ok()).flatten()
    } else if let Ok(tuple) = result.cast_exact::<PyTuple>() {
        (tuple.len() == 1).then(|| tuple.get_item(0).ok()).flatten()
    } else {
        None
    };
    item.and_then(|i| i.cast::<PyBytes>().ok().map(|b| b.as_bytes().len()))
}
