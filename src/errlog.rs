//! `wsgi.errors`: a text stream whose lines go to nginx's error_log, with the
//! request's context while the request lives and the worker's log after.

use ngx::ffi::{ngx_log_t, NGX_LOG_ERR};
use ngx::ngx_log_error;
use pyo3::prelude::*;

/// The request's log, or null once the request is gone.
struct LogTarget(*mut ngx_log_t);

// SAFETY: the pointer is only dereferenced by `ErrorLog` methods with the
// GIL held, and only on the worker's event-loop thread (log_line checks).
unsafe impl Send for LogTarget {}
// SAFETY: as above.
unsafe impl Sync for LogTarget {}

#[pyclass(module = "ngx_wsgi")]
pub struct ErrorLog {
    target: LogTarget,
    /// Text written after the last newline, logged at the next one or flush().
    partial: String,
}

impl ErrorLog {
    pub fn new(log: *mut ngx_log_t) -> ErrorLog {
        ErrorLog {
            target: LogTarget(log),
            partial: String::new(),
        }
    }

    /// Called when the request ends: logs what is pending with the request's
    /// context, then points later writes (an app may keep the stream) at the
    /// worker's log.
    pub fn detach(&mut self) {
        self.flush();
        self.target = LogTarget(std::ptr::null_mut());
    }

    fn log_line(&self, line: &str) {
        // The request's log handler reads the request: only the event-loop
        // thread may use it. A line from another thread (an app's own
        // thread) goes to the worker's log.
        let log = if self.target.0.is_null() || !crate::interp::on_event_loop() {
            ngx::log::ngx_cycle_log().as_ptr()
        } else {
            self.target.0
        };
        ngx_log_error!(NGX_LOG_ERR, log, "{}", line.trim_end_matches('\r'));
    }
}

#[pymethods]
impl ErrorLog {
    fn write(&mut self, text: &str) -> usize {
        let mut rest = text;
        while let Some(end) = rest.find('\n') {
            let (line, tail) = rest.split_at(end);
            if self.partial.is_empty() {
                self.log_line(line);
            } else {
                self.partial.push_str(line);
                let whole = std::mem::take(&mut self.partial);
                self.log_line(&whole);
            }
            rest = &tail[1..];
        }
        self.partial.push_str(rest);
        text.chars().count()
    }

    fn writelines(&mut self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(line?.extract::<&str>()?);
        }
        Ok(())
    }

    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let pending = std::mem::take(&mut self.partial);
            self.log_line(&pending);
        }
    }
}
