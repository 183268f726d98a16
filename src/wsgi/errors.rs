//! `wsgi.errors`: a text stream whose lines go to nginx's error_log at
//! `error` level, with the request's context while the request lives and
//! the worker's log after (where each line goes is `errlog::LogTo`'s
//! business).

use ngx::ffi::NGX_LOG_ERR;
use pyo3::prelude::*;

use crate::errlog::LogTo;

#[pyclass(module = "ngx_wsgi")]
pub struct ErrorLog {
    target: LogTo,
    /// Text written after the last newline, logged at the next one or flush().
    partial: String,
}

impl ErrorLog {
    pub fn new(target: LogTo) -> ErrorLog {
        ErrorLog {
            target,
            partial: String::new(),
        }
    }

    /// Called when the request ends: logs what is pending with the request's
    /// context, then points later writes (an app may keep the stream) at the
    /// worker's log.
    pub fn detach(&mut self) {
        self.flush();
        self.target = LogTo::Worker;
    }

    fn log_line(&self, line: &str) {
        self.target
            .write(NGX_LOG_ERR as _, line.trim_end_matches('\r'));
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
