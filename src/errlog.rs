//! Where a request's messages go (`LogTo`), and `wsgi.errors`: a text
//! stream whose lines go to nginx's error_log, with the request's context
//! while the request lives and the worker's log after.

use std::sync::Arc;

use ngx::ffi::{ngx_log_t, ngx_uint_t, NGX_LOG_ERR, NGX_LOG_INFO};
use ngx::ngx_log_error;
use pyo3::prelude::*;

use crate::handoff::Handoff;

/// Where messages about one request go. The request's log (whose handler
/// adds client, server and request line) reads the request, so only the
/// event-loop thread may write to it: a pool thread hands its messages to
/// the loop, and any other thread writes to the worker's log.
pub enum LogTo {
    /// The request's log, used on the event-loop thread.
    Request(*mut ngx_log_t),
    /// A request whose app runs on a pool thread: the loop logs for it.
    Loop(Arc<Handoff>),
    /// The worker's log, once the request is gone.
    Worker,
}

// SAFETY: the request's log is only dereferenced on the event-loop thread
// (`write` checks), where the request it belongs to lives.
unsafe impl Send for LogTo {}
// SAFETY: as above.
unsafe impl Sync for LogTo {}

impl LogTo {
    pub fn write(&self, level: ngx_uint_t, text: &str) {
        match self {
            LogTo::Request(log) if crate::interp::on_event_loop() => {
                ngx_log_error!(level, *log, "{}", text);
            }
            LogTo::Loop(handoff) => handoff.log(level, text),
            _ => worker_log(level, text),
        }
    }
}

/// Writes to the worker's log: at once on the event-loop thread; from
/// another thread, through the event loop (nginx's log writers, syslog's
/// among them, are not made for threads).
pub fn worker_log(level: ngx_uint_t, text: &str) {
    if crate::interp::on_event_loop() || !crate::wakeup::log_later(level, text) {
        ngx_log_error!(level, ngx::log::ngx_cycle_log().as_ptr(), "{}", text);
    }
}

/// What error_log says, at info level as nginx has it, when a client left
/// mid-response.
pub fn log_client_gone(log: *mut ngx_log_t) {
    ngx_log_error!(
        NGX_LOG_INFO,
        log,
        "wsgi: the client connection is gone; closing the response iterable"
    );
}

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
