//! Waiting for the client, in nginx's terms: arm the write event and
//! send_timeout while nginx holds output it could not write, give the event
//! loop a turn, and, when the write event comes, push what nginx holds and
//! say whether the response may go on.
//!
//! The write event handler itself is `entry::on_write_event`, which the
//! module installs for the whole time it owns the request.

use std::ptr::addr_of_mut;

use ngx::ffi::{
    ngx_add_timer, ngx_del_timer, ngx_event_flags, ngx_handle_write_event, ngx_http_block_reading,
    ngx_http_core_loc_conf_t, ngx_http_request_t, ngx_int_t, ngx_post_event,
    ngx_posted_next_events, ngx_uint_t, NGX_ERROR, NGX_OK, NGX_USE_CLEAR_EVENT,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};

use super::output::SharedOutput;

/// Waits for the client's socket to become writable, within send_timeout.
/// False when the write event cannot be armed.
///
/// # Safety
/// `r` must be a live request owned by this module.
pub unsafe fn wait_for_client(r: *mut ngx_http_request_t) -> bool {
    let Some(clcf) = arm_send_timeout(r) else {
        return false;
    };
    ngx_handle_write_event((*(*r).connection).write, clcf.send_lowat) == NGX_OK as ngx_int_t
}

/// The response no longer waits for the client (an ASGI app awaits
/// something else): under a level-triggered event method (poll), a
/// writable socket's write event would otherwise fire every turn. False
/// when the event cannot be changed.
///
/// # Safety
/// `r` must be a live request owned by this module.
pub unsafe fn stop_waiting(r: *mut ngx_http_request_t) -> bool {
    // For a ready write event, ngx_handle_write_event removes it from a
    // level-triggered method and leaves edge-triggered epoll alone.
    ngx_handle_write_event((*(*r).connection).write, 0) == NGX_OK as ngx_int_t
}

/// Gives the event loop a turn and continues right after it. The event goes
/// to the *next* posted queue: nginx runs it after the next poll for I/O (with
/// a zero timeout), while a plain posted event would run again in this turn.
///
/// The write event's send_timeout timer is armed meanwhile (`resume`
/// deletes it): a worker that shuts down gracefully exits as soon as no
/// timer is left, and a posted event is not one, so without it the worker
/// would exit in the middle of the response.
///
/// # Safety
/// `r` must be a live request owned by this module.
pub unsafe fn give_turn(r: *mut ngx_http_request_t) {
    arm_send_timeout(r);
    ngx_post_event(
        (*(*r).connection).write,
        addr_of_mut!(ngx_posted_next_events),
    );
}

/// Arms send_timeout on the request's write event, unless limit_rate's
/// delay (a timer of its own) holds it; the location's core configuration.
///
/// # Safety
/// `r` must be a live request owned by this module.
unsafe fn arm_send_timeout(
    r: *mut ngx_http_request_t,
) -> Option<&'static ngx_http_core_loc_conf_t> {
    let wev = (*(*r).connection).write;
    let clcf = NgxHttpCoreModule::location_conf(&*(*r).main)?;
    if (*wev).delayed() == 0 {
        ngx_add_timer(wev, clcf.send_timeout);
    }
    Some(clcf)
}

/// What the write event of a waiting response found.
pub enum Resume {
    /// The client took nothing within send_timeout.
    TimedOut,
    /// Writing failed: the client is gone.
    Gone,
    /// nginx still holds output (or limit_rate delays it): wait again.
    Wait,
    /// Everything nginx held is out: produce more.
    Ready,
}

/// The write event of a waiting response: push what nginx holds.
///
/// # Safety
/// `r` must be a live request owned by this module; `output` its output,
/// not locked by the caller.
pub unsafe fn resume(r: *mut ngx_http_request_t, output: &SharedOutput) -> Resume {
    let wev = (*(*r).connection).write;
    if (*wev).timedout() != 0 {
        return Resume::TimedOut;
    }
    if (*wev).delayed() != 0 {
        return Resume::Wait; // limit_rate: nginx wakes us when the delay is over
    }
    let (rc, must_wait) = {
        let mut out = super::output::lock(output);
        let rc = out.send(std::ptr::null_mut());
        (rc, out.must_wait())
    };
    if rc == NGX_ERROR as ngx_int_t {
        return Resume::Gone;
    }
    if must_wait {
        return Resume::Wait;
    }
    if (*wev).timer_set() != 0 {
        ngx_del_timer(wev);
    }
    Resume::Ready
}

/// Whether a read event on a request whose app waits for a thread or runs
/// (thread mode, ASGI) means the client closed the connection. A client that sends more
/// (a pipelined request) is left alone.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn client_closed(r: *mut ngx_http_request_t) -> bool {
    let c = (*r).connection;
    if (*c).error() != 0 {
        return true;
    }
    if !(*r).stream.is_null() {
        return false; // HTTP/2: a reset stream sets c->error
    }
    if (*(*c).read).pending_eof() != 0 {
        return true;
    }
    // As nginx's upstream module checks a broken connection: peek.
    let mut byte = 0u8;
    let n = libc::recv((*c).fd, (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK);
    if n > 0 {
        // A pipelined request. Level-triggered events (poll) would report
        // it every turn: stop watching, as nginx does; a failed write tells.
        if ngx_event_flags & NGX_USE_CLEAR_EVENT as ngx_uint_t == 0 {
            ngx_http_block_reading(r);
        }
        return false;
    }
    n == 0
        || !matches!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EAGAIN) | Some(libc::EINTR)
        )
}
