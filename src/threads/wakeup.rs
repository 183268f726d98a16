//! Waking the event loop from other threads: an eventfd registered with
//! nginx as a connection, and the list of requests whose pool thread has
//! news. Lines for the worker's log from other threads wait in `errlog`,
//! which wakes the loop through here too.
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

use std::sync::{Arc, Mutex, OnceLock, RwLock};

use ngx::ffi::{
    ngx_close_connection, ngx_connection_t, ngx_cycle_t, ngx_event_handler_pt, ngx_event_t,
    ngx_get_connection, ngx_handle_read_event, ngx_int_t, NGX_OK,
};

use super::handoff::Handoff;

struct Wakeup {
    /// The eventfd; None once it is closed. Threads write it under the
    /// read lock, so that `stop` does not close it under them; the loop
    /// never waits for that lock.
    fd: RwLock<Option<libc::c_int>>,
    connection: *mut ngx_connection_t,
    /// Requests with news; None once the eventfd is closed.
    posted: Mutex<Option<Vec<Arc<Handoff>>>>,
}

// SAFETY: `connection` is only used on the event-loop thread (start, take,
// stop); other threads use the fd (under its read lock, which `stop` takes
// for writing before closing it) and the list.
unsafe impl Send for Wakeup {}
// SAFETY: as above.
unsafe impl Sync for Wakeup {}

static WAKEUP: OnceLock<Wakeup> = OnceLock::new();

/// Registers the eventfd with this worker's event loop; `handler` runs when
/// a thread wrote it (it calls `take`).
///
/// # Safety
/// Called on the event-loop thread from init_process, with the live cycle.
pub unsafe fn start(cycle: *mut ngx_cycle_t, handler: ngx_event_handler_pt) -> Result<(), String> {
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
    (*rev).handler = handler;
    (*rev).log = (*cycle).log;
    (*rev).data = c.cast();
    if ngx_handle_read_event(rev, 0) != NGX_OK as ngx_int_t {
        ngx_close_connection(c);
        return Err("registering the wake-up eventfd failed".to_owned());
    }
    let _ = WAKEUP.set(Wakeup {
        fd: RwLock::new(Some(fd)),
        connection: c,
        posted: Mutex::new(Some(Vec::new())),
    });
    Ok(())
}

/// Closes the eventfd at worker exit, after the pool threads stopped
/// (nginx reports any connection still open then). A thread still inside
/// an app wakes nobody after this.
///
/// # Safety
/// Called on the event-loop thread from exit_process.
pub unsafe fn stop() {
    let Some(w) = WAKEUP.get() else {
        return;
    };
    *w.posted.lock().unwrap_or_else(|p| p.into_inner()) = None;
    // Under the write lock, so that no thread writes to the fd number after
    // it is closed.
    let mut fd = w.fd.write().unwrap_or_else(|p| p.into_inner());
    *fd = None;
    ngx_close_connection(w.connection);
}

/// Puts `handoff` on the loop's list and wakes the loop if nothing was
/// waiting. Any thread. The eventfd is written once the list's lock is let
/// go: the write may switch to the loop at once, which takes that lock
/// first thing.
pub fn post(handoff: Arc<Handoff>) {
    let Some(w) = WAKEUP.get() else {
        return;
    };
    let first = match w.posted.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        Some(list) => {
            list.push(handoff);
            list.len() == 1
        }
        None => false,
    };
    if first {
        write_eventfd(w);
    }
}

/// Wakes the loop (for lines `errlog` holds for it). Any thread.
pub fn wake() {
    if let Some(w) = WAKEUP.get() {
        write_eventfd(w);
    }
}

fn write_eventfd(w: &Wakeup) {
    let fd = w.fd.read().unwrap_or_else(|p| p.into_inner());
    if let Some(fd) = *fd {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to the eventfd, which the
        // read lock keeps open. It cannot fail for want of room before the
        // counter nears 2^64.
        unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// What the eventfd's read event brings.
pub struct Woken {
    /// Requests whose pool thread has news.
    pub requests: Vec<Arc<Handoff>>,
    /// nginx is forcing the worker down (worker_shutdown_timeout).
    pub forced_down: bool,
}

/// The eventfd is readable: resets it and takes the list.
///
/// # Safety
/// `ev` must be the eventfd connection's read event, on the event loop.
pub unsafe fn take(ev: *mut ngx_event_t) -> Woken {
    let Some(w) = WAKEUP.get() else {
        return Woken {
            requests: Vec::new(),
            forced_down: false,
        };
    };
    let mut count: u64 = 0;
    // Reading resets the eventfd's counter; it is non-blocking. The loop
    // is the only thread that closes it (`stop`), so no lock is needed.
    libc::read((*w.connection).fd, (&mut count as *mut u64).cast(), 8);
    (*ev).set_ready(0);
    let requests = w
        .posted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    Woken {
        requests,
        // worker_shutdown_timeout: nginx marks every connection closed.
        forced_down: (*w.connection).close() != 0,
    }
}
