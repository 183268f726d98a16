//! Waking the event loop from pool threads: an eventfd registered with
//! nginx as a connection, and the list of requests that have news.
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
    ngx_handle_read_event, ngx_int_t, NGX_OK,
};

use crate::handoff::Handoff;
use crate::relay;

struct Wakeup {
    fd: libc::c_int,
    connection: *mut ngx_connection_t,
    /// Requests with news; None once the eventfd is closed.
    ready: Mutex<Option<Vec<Arc<Handoff>>>>,
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
        return Err("registering the wake-up eventfd failed".to_owned());
    }
    let _ = WAKEUP.set(Wakeup {
        fd,
        connection: c,
        ready: Mutex::new(Some(Vec::new())),
    });
    Ok(())
}

/// Closes the eventfd at worker exit, after the pool threads stopped
/// (nginx reports any connection still open then).
///
/// # Safety
/// Called on the event-loop thread from exit_process.
pub unsafe fn stop() {
    if let Some(w) = WAKEUP.get() {
        // Under the lock, so that a thread still inside an app cannot write
        // to the fd number after it is closed.
        let mut ready = w.ready.lock().unwrap_or_else(|p| p.into_inner());
        *ready = None;
        ngx_close_connection(w.connection);
    }
}

/// Puts `handoff` on the loop's list and wakes the loop if the list was
/// empty. Any thread.
pub fn post(handoff: Arc<Handoff>) {
    let Some(w) = WAKEUP.get() else {
        return;
    };
    let mut ready = w.ready.lock().unwrap_or_else(|p| p.into_inner());
    let Some(ready) = ready.as_mut() else {
        return;
    };
    ready.push(handoff);
    if ready.len() == 1 {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to the eventfd. It cannot fail
        // for want of room before the counter nears 2^64.
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
    // reading resets its counter. `ev` is our connection's read event.
    unsafe {
        libc::read(w.fd, (&mut count as *mut u64).cast(), 8);
        (*ev).set_ready(0);
    }
    let ready = w
        .ready
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    for handoff in ready {
        relay::on_news(&handoff);
    }
}
