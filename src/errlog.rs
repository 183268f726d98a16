//! Where a request's messages go (`LogTo`), and the lines other threads
//! hand to the event loop for the worker's error_log: only the event loop
//! writes to nginx's logs, whose writers (syslog's among them) are not made
//! for threads, and whose request context reads the request.

use std::sync::{Arc, Mutex};

use ngx::ffi::{ngx_log_t, ngx_uint_t, NGX_LOG_INFO};
#[cfg(not(test))]
use ngx::ngx_log_error;

use crate::event_loop;
use crate::status::{self, Counter};

/// A request whose app runs on another thread: the event loop writes its
/// lines, with the request's context while the request lives.
pub trait LoopLog: Send + Sync {
    fn log(&self, level: ngx_uint_t, text: &str);
}

/// Where messages about one request go.
#[derive(Clone)]
pub enum LogTo {
    /// The request's log (its handler adds client, server and request
    /// line), written on the event-loop thread.
    Request(*mut ngx_log_t),
    /// A request whose app runs on a pool thread: the loop logs for it.
    Loop(Arc<dyn LoopLog>),
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
            LogTo::Request(log) if event_loop::is_current() => write_line(level, *log, text),
            LogTo::Loop(request) => request.log(level, text),
            _ => worker_log(level, text),
        }
    }

    /// Writes `heading` and a long `body` (a traceback, a stack) in as
    /// many messages as nginx's limit on one needs.
    pub fn write_long(&self, level: ngx_uint_t, heading: &str, body: &str) {
        for message in pieces(heading, body) {
            self.write(level, &message);
        }
    }
}

/// `heading:` and `body`, split at line ends into messages that fit
/// nginx's error message limit (2048 bytes with its own prefix).
pub fn pieces(heading: &str, body: &str) -> Vec<String> {
    const ROOM: usize = 1800;
    let mut messages = Vec::new();
    let mut message = String::with_capacity(1024);
    message.push_str(heading);
    message.push_str(":\n");
    for line in body.lines() {
        if message.len() + line.len() > ROOM && !message.is_empty() {
            messages.push(message.trim_end().to_owned());
            message.clear();
        }
        message.push_str(line);
        message.push('\n');
    }
    if !message.trim_end().is_empty() {
        messages.push(message.trim_end().to_owned());
    }
    messages
}

/// What becomes of a line for the worker's log written on another thread.
enum Deferral {
    /// No event loop reads them (Python started without the wake-up): the
    /// thread writes it itself.
    Off,
    /// The event loop writes them when `wake` has woken it.
    ToLoop {
        lines: Vec<(ngx_uint_t, String)>,
        wake: fn(),
    },
    /// The worker is exiting and nginx's logs go away with it: dropped.
    Closed,
}

static DEFERRED: Mutex<Deferral> = Mutex::new(Deferral::Off);

fn deferred() -> std::sync::MutexGuard<'static, Deferral> {
    DEFERRED.lock().unwrap_or_else(|p| p.into_inner())
}

/// From now on, lines other threads write go through the event loop,
/// which `wake` wakes. Event loop, at start.
pub fn defer_to_loop(wake: fn()) {
    *deferred() = Deferral::ToLoop {
        lines: Vec::new(),
        wake,
    };
}

/// Writes the lines other threads handed over. Event loop.
pub fn write_deferred(log: *mut ngx_log_t) {
    let lines = match &mut *deferred() {
        Deferral::ToLoop { lines, .. } => std::mem::take(lines),
        _ => return,
    };
    for (level, text) in lines {
        write_line(level, log, &text);
    }
}

/// At exit, once the pool threads are stopped: writes the lines they
/// handed over that the loop did not get to (the worker may leave its loop
/// right after a thread's last line), and drops any line after. Event loop.
pub fn close_deferred(log: *mut ngx_log_t) {
    write_deferred(log);
    *deferred() = Deferral::Closed;
}

/// Writes to the worker's log: at once on the event-loop thread; from
/// another thread, through the event loop.
pub fn worker_log(level: ngx_uint_t, text: &str) {
    if !event_loop::is_current() {
        let mut deferral = deferred();
        match &mut *deferral {
            Deferral::ToLoop { lines, wake } => {
                let was_empty = lines.is_empty();
                lines.push((level, text.to_owned()));
                let wake = *wake;
                drop(deferral);
                if was_empty {
                    wake();
                }
                return;
            }
            Deferral::Closed => return,
            Deferral::Off => {}
        }
    }
    write_line(level, std::ptr::null_mut(), text);
}

/// Writes to the worker's log from any thread, at once: only for when the
/// event loop cannot, being stuck inside an app (nginx's own thread pools
/// log from their threads likewise).
pub fn write_from_any_thread(level: ngx_uint_t, text: &str) {
    write_line(level, std::ptr::null_mut(), text);
}

/// Writes a line to `log`, or, when null, the worker's. The unit-test
/// executable has no nginx: there, lines go to stderr.
fn write_line(level: ngx_uint_t, log: *mut ngx_log_t, text: &str) {
    #[cfg(not(test))]
    {
        let log = if log.is_null() {
            ngx::log::ngx_cycle_log().as_ptr()
        } else {
            log
        };
        ngx_log_error!(level, log, "{}", text);
    }
    #[cfg(test)]
    eprintln!("[{level}] {text} ({log:?})");
}

/// What error_log says, at info level as nginx has it, when a client left
/// mid-response.
pub const CLIENT_GONE: &str = "wsgi: the client connection is gone; closing the response iterable";

pub fn log_client_gone(log: *mut ngx_log_t) {
    log_client_gone_as(log, CLIENT_GONE);
}

/// An ASGI app's client is gone: its task is cancelled.
pub const CLIENT_GONE_ASGI: &str = "asgi: the client connection is gone; cancelling the app's task";

/// The client left, in the words `text` of the app's interface.
pub fn log_client_gone_as(log: *mut ngx_log_t, text: &str) {
    status::count(Counter::ClientAborts);
    write_line(NGX_LOG_INFO as _, log, text);
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn long_text_is_split_at_line_ends() {
        let short = pieces("heading", "  File \"a.py\", line 1, in f\n    x()\n");
        assert_eq!(short, ["heading:\n  File \"a.py\", line 1, in f\n    x()"]);

        let line = "x".repeat(100);
        let body = vec![line.as_str(); 50].join("\n");
        let messages = pieces("heading", &body);
        assert!(messages.len() > 1);
        assert!(messages.iter().all(|m| m.len() <= 1800));
        assert!(messages[0].starts_with("heading:\n"));
        let lines: usize = messages
            .iter()
            .map(|m| m.lines().filter(|l| *l == line).count())
            .sum();
        assert_eq!(lines, 50, "every line once, none cut");
    }
}
