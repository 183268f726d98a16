//! Waking the event loop from other threads: an eventfd registered with
//! nginx as a connection, the list of requests that have news, and log lines
//! for the worker's error_log (only the event loop writes to nginx's logs).
//!
//! Not `ngx_notify`: it has one handler per process, which nginx's own
//! thread pools (aio threads) set too, and it exists only in nginx builds
//! with thread support. An eventfd of our own is one more file descriptor
//! and needs neither.
//!
//! A pool thread appends its request's hand-off to the list and writes the
//! eventfd only when the list was empty; the loop reads the eventfd, takes
//! the whole list, and relays each request's news. An idle worker does no
//! work: the eventfd is quiet until a thread writes it.

use std::sync::{Arc, Mutex, OnceLock};

use ngx::ffi::{
    ngx_close_connection, ngx_connection_t, ngx_cycle_t, ngx_event_t, ngx_get_connection,
    ngx_handle_read_event, ngx_int_t, ngx_log_t, ngx_uint_t, NGX_OK,
};
use ngx::ngx_log_error;

use crate::handoff::Handoff;
use crate::{pool, relay};

struct Wakeup {
    fd: libc::c_int,
    connection: *mut ngx_connection_t,
    /// What waits for the loop; None once the eventfd is closed.
    ready: Mutex<Option<Ready>>,
}

#[derive(Default)]
struct Ready {
    /// Requests with news.
    requests: Vec<Arc<Handoff>>,
    /// Lines for the worker's error_log.
    lines: Vec<(ngx_uint_t, String)>,
}

// SAFETY: `connection` is only used on the event-loop thread (start, stop);
// pool threads use the fd and the list.
unsafe impl Send for Wakeup {}
// SAFETY: as above.
unsafe impl Sync for Wakeup {}

static WAKEUP: OnceLock<Wakeup> = OnceLock::new();

/// Registers the eventfd with this worker's event loop.
///
/// # Safety
/// Called on the event-loop thread from init_process, with the live cycle.
pub unsafe fn start(cycle: *mut ngx_cycle_t) -> Result<(), String> {
    let fd = libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC);
    if fd < 0 {
        return Err(format!(
            "eventfd() failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    let c: *mut ngx_connection_t = ngx_get_connection(fd, (*cycle).log);
    if c.is_null() {
        libc::close(fd);
        return Err("no free connection for the wake-up eventfd".to_owned());
    }
    let rev = (*c).read;
    (*rev).handler = Some(on_wake);
    (*rev).log = (*cycle).log;
    (*rev).data = c.cast();
    if ngx_handle_read_event(rev, 0) != NGX_OK as ngx_int_t {
        ngx_close_connection(c);
        return Err("registering the wake-up eventfd failed".to_owned());
    }
    let _ = WAKEUP.set(Wakeup {
        fd,
        connection: c,
        ready: Mutex::new(Some(Ready::default())),
    });
    Ok(())
}

/// Closes the eventfd at worker exit, after the pool threads stopped
/// (nginx reports any connection still open then), and writes the lines
/// the threads handed over that the event loop has not read: the worker
/// may leave its loop right after a thread's last line (the close() of an
/// app whose client left), before the loop looks at the eventfd again.
///
/// # Safety
/// Called on the event-loop thread from exit_process.
pub unsafe fn stop(log: *mut ngx_log_t) {
    let Some(w) = WAKEUP.get() else {
        return;
    };
    // Under the lock, so that a thread still inside an app cannot write to
    // the fd number after it is closed; its later lines are dropped.
    let left = w.ready.lock().unwrap_or_else(|p| p.into_inner()).take();
    ngx_close_connection(w.connection);
    for (level, text) in left.map(|ready| ready.lines).unwrap_or_default() {
        ngx_log_error!(level, log, "{}", text);
    }
}

/// Puts `handoff` on the loop's list and wakes the loop if nothing was
/// waiting. Any thread.
pub fn post(handoff: Arc<Handoff>) {
    if let Some(w) = WAKEUP.get() {
        add(w, |ready| ready.requests.push(handoff));
    }
}

/// Has the loop write `text` to the worker's error_log. False if there is
/// no loop to do it (the wake-up never started). Any thread.
pub fn log_later(level: ngx_uint_t, text: &str) -> bool {
    let Some(w) = WAKEUP.get() else {
        return false;
    };
    // Once the eventfd is closed the worker is exiting: the line is lost.
    add(w, |ready| ready.lines.push((level, text.to_owned())));
    true
}

fn add(w: &Wakeup, what: impl FnOnce(&mut Ready)) {
    let mut ready = w.ready.lock().unwrap_or_else(|p| p.into_inner());
    let Some(ready) = ready.as_mut() else {
        return;
    };
    let was_empty = ready.requests.is_empty() && ready.lines.is_empty();
    what(ready);
    if was_empty {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to the eventfd, under the lock
        // that `stop` takes before closing it. It cannot fail for want of
        // room before the counter nears 2^64.
        unsafe { libc::write(w.fd, (&one as *const u64).cast(), 8) };
    }
}

/// The eventfd is readable: relay the news of every posted request.
extern "C" fn on_wake(ev: *mut ngx_event_t) {
    let Some(w) = WAKEUP.get() else {
        return;
    };
    let mut count: u64 = 0;
    // SAFETY: reads 8 bytes into a local; the eventfd is non-blocking and
    // reading resets its counter. `ev` is our connection's read event, and
    // the connection lives until `stop`.
    let forced_down = unsafe {
        libc::read(w.fd, (&mut count as *mut u64).cast(), 8);
        (*ev).set_ready(0);
        // worker_shutdown_timeout: nginx marks every connection closed.
        (*w.connection).close() != 0
    };
    if forced_down {
        pool::abandon();
    }
    let ready = w
        .ready
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let log = ngx::log::ngx_cycle_log().as_ptr();
    for (level, text) in ready.lines {
        ngx_log_error!(level, log, "{}", text);
    }
    for handoff in ready.requests {
        relay::on_news(&handoff);
    }
}
