//! An open WebSocket's reading: the client's frames from the socket as
//! they arrive, to the app's inbox as messages (or pings answered, or the
//! close handshake), as far as the app keeps up; and the close nginx says
//! when the worker exits. Each returns what the request does next.

use std::cell::RefCell;

use ngx::ffi::{ngx_http_request_t, ngx_int_t, NGX_ERROR, NGX_LOG_ERR};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::{write_chunk, AsgiRequest};
use crate::asgi::websocket::{self, Event};
use crate::errlog::{log_client_gone_as, LogTo};
use crate::next::Next;
use crate::wsgi::interp;

impl AsgiRequest {
    /// The worker exits and nginx closes its idle connections: an open
    /// WebSocket says so (1001, going away), the app hears it, and the
    /// request ends once nginx has sent the frame.
    pub fn going_away(&mut self) -> Option<Next> {
        {
            let ex = self.exchange.borrow();
            if !ex.ws.as_ref().is_some_and(|ws| ws.open && !ws.close_sent) || ex.r.is_null() {
                return None;
            }
        }
        Python::attach(|py| {
            let python = self.python.as_ref()?.clone_ref(py);
            Some(self.close_with(py, python.bind(py), 1001, "the server is going away"))
        })
    }

    /// The WebSocket's keepalive timer: the client has been quiet for
    /// `asgi_websocket_ping_interval`. It gets a ping; if it stays quiet
    /// for another interval (a pong, or any frame, would have reset the
    /// timer) it is taken for gone: the connection closes, and the app
    /// gets `websocket.disconnect` 1006. While the app holds the reading
    /// (its inbox full), a pong could not be read: the timer only waits.
    ///
    /// # Safety
    /// `r` must be the live request of this context.
    pub unsafe fn keep_alive_timer(&mut self, r: *mut ngx_http_request_t) -> Option<Next> {
        let (interval, ping_sent) = {
            let ex = self.exchange.borrow();
            let ws = ex.ws.as_ref()?;
            if !ws.open || ws.close_sent || ex.r.is_null() || ws.ping_interval == 0 {
                return None;
            }
            if ws.paused {
                keep_alive(r, ws.ping_interval);
                return None;
            }
            (ws.ping_interval, ws.ping_sent)
        };
        if ping_sent {
            let log = self.exchange.borrow().log;
            ngx::ngx_log_error!(
                ngx::ffi::NGX_LOG_INFO,
                log,
                "asgi: the WebSocket client answered no ping within asgi_websocket_ping_interval ({interval} ms); closing the connection"
            );
            (*(*r).connection).set_error(1);
            self.exchange.borrow_mut().complete = true;
            Python::attach(|py| {
                if let Some(python) = self.python.as_ref() {
                    deliver_disconnect(py, python.bind(py), 1006, "");
                }
            });
            return Some(Next::Finish(ngx::ffi::NGX_HTTP_CLIENT_CLOSED_REQUEST as _));
        }
        if let Some(ws) = self.exchange.borrow_mut().ws.as_mut() {
            ws.ping_sent = true;
        }
        keep_alive(r, interval);
        let ping = Python::attach(|py| {
            let frame = PyBytes::new(py, &websocket::frame(websocket::OP_PING, b""));
            write_chunk(&self.exchange, frame, false)
        });
        match ping {
            (rc, _) if rc == NGX_ERROR as ngx_int_t => Some(Next::Finish(NGX_ERROR as _)),
            // nginx holds it: the write event sends the rest.
            (_, true) => Some(Next::WaitForClient),
            _ => None,
        }
    }

    /// A WebSocket's read event: the client's frames, read as far as the
    /// app keeps up. None when this is not an open WebSocket (the read
    /// event is then the client leaving, or nothing).
    ///
    /// # Safety
    /// `r` must be the live request of this context.
    pub unsafe fn on_readable(&mut self, r: *mut ngx_http_request_t) -> Option<Option<Next>> {
        {
            let ex = self.exchange.borrow();
            if !ex.ws.as_ref().is_some_and(|ws| ws.open) || ex.r.is_null() {
                return None;
            }
        }
        let c = (*r).connection;
        Some(Python::attach(|py| {
            let python = self.python.as_ref()?.clone_ref(py);
            let python = python.bind(py);
            loop {
                // What is buffered first: frames may be whole already.
                loop {
                    let event = {
                        let mut ex = self.exchange.borrow_mut();
                        let ws = ex.ws.as_mut()?;
                        if ws.paused {
                            return None;
                        }
                        ws.reader.next()
                    };
                    match event {
                        Ok(None) => break,
                        Ok(Some(event)) => {
                            if let Some(next) = self.on_event(py, python, event) {
                                return Some(next);
                            }
                        }
                        Err(violation) => {
                            let log = self.exchange.borrow().log;
                            ngx::ngx_log_error!(
                                ngx::ffi::NGX_LOG_INFO,
                                log,
                                "asgi: the WebSocket closes ({}): {}",
                                violation.code,
                                violation.reason
                            );
                            return Some(self.close_with(
                                py,
                                python,
                                violation.code,
                                &violation.reason,
                            ));
                        }
                    }
                }
                let n = READ_BUFFER.with(|buffer| {
                    // One buffer for every WebSocket of the worker: an idle
                    // one holds none.
                    let mut buffer = buffer.borrow_mut();
                    buffer.resize(WS_READ, 0);
                    let recv = (*c).recv?;
                    let n = recv(c, buffer.as_mut_ptr(), WS_READ);
                    if n > 0 {
                        let mut ex = self.exchange.borrow_mut();
                        ex.ws.as_mut()?.reader.feed(&buffer[..n as usize]);
                    }
                    Some(n)
                })?;
                if n == ngx::ffi::NGX_AGAIN as isize {
                    if ngx::ffi::ngx_handle_read_event((*c).read, 0)
                        != ngx::ffi::NGX_OK as ngx_int_t
                    {
                        return Some(Next::Finish(NGX_ERROR as _));
                    }
                    return None;
                }
                if n > 0 {
                    // The client is there: the ping waits another interval.
                    let mut ex = self.exchange.borrow_mut();
                    let ws = ex.ws.as_mut()?;
                    ws.ping_sent = false;
                    keep_alive(r, ws.ping_interval);
                }
                if n <= 0 {
                    let log = self.exchange.borrow().log;
                    log_client_gone_as(
                        log,
                        "asgi: the client closed the WebSocket connection without a close frame",
                    );
                    deliver_disconnect(py, python, 1006, "");
                    return Some(Next::Finish(ngx::ffi::NGX_HTTP_CLIENT_CLOSED_REQUEST as _));
                }
            }
        }))
    }

    /// One event of the client's frames; the request's next, if it ends.
    fn on_event(
        &mut self,
        py: Python<'_>,
        python: &Bound<'_, PyAny>,
        event: Event,
    ) -> Option<Next> {
        match event {
            Event::Message { text, data } => {
                let message = pyo3::types::PyDict::new(py);
                let filled = message
                    .set_item("type", "websocket.receive")
                    .and_then(|()| {
                        if text {
                            // Checked UTF-8 by the reader.
                            let text = String::from_utf8(data).unwrap_or_default();
                            message.set_item("text", text)
                        } else {
                            message.set_item("bytes", PyBytes::new(py, &data))
                        }
                    });
                let more = filled
                    .and_then(|()| python.call_method1("deliver", (message,)))
                    .and_then(|more| more.is_truthy());
                match more {
                    Ok(true) => None,
                    Ok(false) => {
                        if let Some(ws) = self.exchange.borrow_mut().ws.as_mut() {
                            ws.paused = true;
                        }
                        None
                    }
                    Err(e) => {
                        interp::log_exception(
                            py,
                            &e,
                            &LogTo::Worker,
                            NGX_LOG_ERR as _,
                            "asgi: a WebSocket message",
                        );
                        Some(Next::Finish(NGX_ERROR as _))
                    }
                }
            }
            Event::Ping(payload) => {
                let pong = PyBytes::new(py, &websocket::frame(websocket::OP_PONG, &payload));
                match write_chunk(&self.exchange, pong, false) {
                    (rc, _) if rc == NGX_ERROR as ngx_int_t => Some(Next::Finish(NGX_ERROR as _)),
                    // nginx holds it: the write event sends the rest.
                    (_, true) => Some(Next::WaitForClient),
                    _ => None,
                }
            }
            Event::Pong => None,
            Event::Close { code, reason } => {
                let echo = if code == 1005 { 1000 } else { code };
                let closing = self
                    .exchange
                    .borrow()
                    .ws
                    .as_ref()
                    .is_some_and(|ws| !ws.close_sent);
                if closing {
                    let frame = if code == 1005 {
                        websocket::frame(websocket::OP_CLOSE, b"")
                    } else {
                        websocket::frame(websocket::OP_CLOSE, &websocket::close_payload(echo, ""))
                    };
                    if let Some(ws) = self.exchange.borrow_mut().ws.as_mut() {
                        ws.close_sent = true;
                    }
                    write_chunk(&self.exchange, PyBytes::new(py, &frame), true);
                }
                deliver_disconnect(py, python, code, &reason);
                self.exchange.borrow_mut().complete = true;
                Some(Next::Finish(ngx::ffi::NGX_OK as _))
            }
        }
    }

    /// The server closes the WebSocket (a protocol violation): a close
    /// frame, the app told, the request ended once the frame is out.
    fn close_with(
        &mut self,
        py: Python<'_>,
        python: &Bound<'_, PyAny>,
        code: u16,
        reason: &str,
    ) -> Next {
        let frame = websocket::frame(websocket::OP_CLOSE, &websocket::close_payload(code, reason));
        if let Some(ws) = self.exchange.borrow_mut().ws.as_mut() {
            ws.close_sent = true;
        }
        write_chunk(&self.exchange, PyBytes::new(py, &frame), true);
        deliver_disconnect(py, python, code, reason);
        self.exchange.borrow_mut().complete = true;
        Next::Finish(ngx::ffi::NGX_OK as _)
    }
}

/// (Re)arms the keepalive timer of an open WebSocket's connection: the
/// read event's timer, which nginx leaves to the module once the
/// connection speaks frames. `interval` 0: none.
///
/// # Safety
/// `r` must be a live request whose connection is an open WebSocket.
pub(super) unsafe fn keep_alive(r: *mut ngx_http_request_t, interval: ngx::ffi::ngx_msec_t) {
    if interval > 0 {
        ngx::ffi::ngx_add_timer((*(*r).connection).read, interval);
    }
}

/// How much one read of a WebSocket takes from the socket.
const WS_READ: usize = 64 * 1024;

thread_local! {
    static READ_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Tells the app's WebSocket that the connection closed.
fn deliver_disconnect(py: Python<'_>, python: &Bound<'_, PyAny>, code: u16, reason: &str) {
    let message = pyo3::types::PyDict::new(py);
    let delivered = message
        .set_item("type", "websocket.disconnect")
        .and_then(|()| message.set_item("code", code))
        .and_then(|()| message.set_item("reason", reason))
        .and_then(|()| python.call_method1("deliver", (message,)));
    if let Err(e) = delivered {
        interp::log_exception(
            py,
            &e,
            &LogTo::Worker,
            NGX_LOG_ERR as _,
            "asgi: a WebSocket's disconnect",
        );
    }
}
