//! The worker's asyncio event loop, run by nginx's: gateway.py's loop has
//! an epoll selector, whose descriptor nginx watches like a connection's;
//! one step of the loop runs what is ready without waiting, and after each
//! step nginx is told when to run the next: at once (callbacks are ready:
//! a posted event, after the next poll for I/O), at the loop's next timer
//! (an nginx timer), or when the descriptor is readable. An idle worker
//! wakes for nothing.
//!
//! While requests are in flight an nginx timer is always armed (at the
//! loop's next timer, or a minute away): a worker that exits gracefully
//! waits for its timers, not for posted events.

use std::cell::{Cell, RefCell};
use std::ptr::addr_of_mut;

use ngx::ffi::{
    ngx_add_timer, ngx_close_connection, ngx_connection_t, ngx_cycle_t, ngx_del_timer,
    ngx_event_handler_pt, ngx_event_t, ngx_get_connection, ngx_handle_read_event, ngx_int_t,
    ngx_log_t, ngx_post_event, ngx_posted_events, ngx_posted_next_events, NGX_LOG_ALERT,
    NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_NOTICE, NGX_OK,
};
use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::errlog::LogTo;
use crate::wsgi::{interp, watch};

/// The Python side, compiled into a module of its own at start.
const GATEWAY_PY: &str = include_str!("gateway.py");

/// While requests are in flight and the loop has no timer of its own: how
/// far away the timer that keeps a gracefully exiting worker waiting is.
const KEEP_ALIVE_MS: u64 = 60_000;

/// How long lifespan startup and shutdown may take.
const LIFESPAN_TIMEOUT_S: f64 = 30.0;

struct Gateway {
    /// gateway.py's Gateway.
    python: Py<PyAny>,
    /// The selector's descriptor (a duplicate, nginx's to close) as an
    /// nginx connection: its read event runs a step.
    connection: *mut ngx_connection_t,
    /// The loop's next timer, and the timer that holds an exiting worker.
    timer: *mut ngx_event_t,
    /// A step at the next turn of nginx's loop.
    posted: *mut ngx_event_t,
    /// What a step enters the event loop's watch as, and its limit: the
    /// configuration's shortest `wsgi_read_timeout`.
    watch_app: usize,
    limit_ms: u64,
}

thread_local! {
    static GATEWAY: RefCell<Option<Gateway>> = const { RefCell::new(None) };
    /// The read handler of an open WebSocket's connection.
    static WEBSOCKET_READ: Cell<ngx_event_handler_pt> = const { Cell::new(None) };
    /// Requests in flight: their context is alive.
    static IN_FLIGHT: Cell<usize> = const { Cell::new(0) };
    /// Why an app's lifespan startup failed, by app index.
    static FAILED: RefCell<Vec<(usize, String)>> = const { RefCell::new(Vec::new()) };
}

/// Starts the loop in this worker and registers it with nginx; `handler`
/// runs a step (for the descriptor, the timer and the posted event).
///
/// # Safety
/// Called on the event-loop thread from init_process, with the live cycle,
/// Python started.
pub unsafe fn start(
    cycle: *mut ngx_cycle_t,
    handler: ngx_event_handler_pt,
    websocket_read: ngx_event_handler_pt,
    (watch_app, limit_ms): (usize, u64),
) -> Result<(), String> {
    WEBSOCKET_READ.with(|h| h.set(websocket_read));
    let log = (*cycle).log;
    let (python, fd) = Python::attach(|py| -> PyResult<(Py<PyAny>, i32)> {
        let code = std::ffi::CString::new(GATEWAY_PY).expect("gateway.py has no NUL");
        let module = PyModule::from_code(py, &code, c"ngx_wsgi/asgi/gateway.py", c"ngx_wsgi_asgi")?;
        // Tracebacks through it show its lines (an entry without a
        // modification time stays in linecache).
        let lines = py
            .import("io")?
            .getattr("StringIO")?
            .call1((GATEWAY_PY,))?
            .call_method0("readlines")?;
        let entry = (
            GATEWAY_PY.len(),
            py.None(),
            lines,
            "ngx_wsgi/asgi/gateway.py",
        );
        py.import("linecache")?
            .getattr("cache")?
            .set_item("ngx_wsgi/asgi/gateway.py", entry)?;
        let gateway = module.getattr("Gateway")?.call0()?;
        let fd: i32 = gateway.call_method0("fileno")?.extract()?;
        Ok((gateway.unbind(), fd))
    })
    .map_err(|e| {
        Python::attach(|py| format!("starting the asyncio loop failed: {}", e.value(py)))
    })?;
    // nginx closes its connection's descriptor: give it a duplicate.
    let dup = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0);
    if dup < 0 {
        return Err(format!("dup() failed: {}", std::io::Error::last_os_error()));
    }
    let c: *mut ngx_connection_t = ngx_get_connection(dup, log);
    if c.is_null() {
        libc::close(dup);
        return Err("no free connection for the asyncio loop".to_owned());
    }
    let rev = (*c).read;
    (*rev).handler = handler;
    (*rev).log = log;
    (*rev).data = c.cast();
    if ngx_handle_read_event(rev, 0) != NGX_OK as ngx_int_t {
        ngx_close_connection(c);
        return Err("registering the asyncio loop's descriptor failed".to_owned());
    }
    let event = |cancelable: bool| {
        // SAFETY: a zeroed ngx_event_t is a valid idle event; it lives
        // for the worker's life.
        let ev: *mut ngx_event_t = Box::into_raw(Box::new(std::mem::zeroed()));
        (*ev).handler = handler;
        (*ev).log = log;
        (*ev).data = c.cast();
        (*ev).set_cancelable(cancelable as _);
        ev
    };
    let gateway = Gateway {
        python,
        connection: c,
        timer: event(true),
        posted: event(false),
        watch_app,
        limit_ms,
    };
    GATEWAY.with(|g| *g.borrow_mut() = Some(gateway));
    Ok(())
}

/// The read handler an open WebSocket's connection gets (entry.rs).
pub fn websocket_read_handler() -> ngx_event_handler_pt {
    WEBSOCKET_READ.with(Cell::get)
}

/// Whether the loop runs in this worker.
pub fn running() -> bool {
    GATEWAY.with(|g| g.borrow().is_some())
}

/// Runs the lifespan startup of ASGI app `index` (`callable`), to its
/// end: the worker's start waits for it, as for the apps' import.
pub fn startup(
    py: Python<'_>,
    index: usize,
    name: &str,
    callable: Bound<'_, PyAny>,
    log: *mut ngx_log_t,
) {
    let Some(gateway) = python_gateway(py) else {
        return;
    };
    let outcome = gateway
        .call_method1("startup", (index, callable, LIFESPAN_TIMEOUT_S))
        .and_then(|o| o.extract::<(String, String)>());
    match outcome {
        Ok((kind, _)) if kind == "complete" => {
            ngx::ngx_log_error!(
                NGX_LOG_NOTICE,
                log,
                "asgi: app \"{name}\" started (lifespan)"
            );
        }
        Ok((kind, text)) if kind == "unsupported" => {
            ngx::ngx_log_error!(
                NGX_LOG_INFO,
                log,
                "asgi: app \"{name}\" does not run lifespan (it raised {text}); it is served without"
            );
        }
        Ok((_, text)) => {
            ngx::ngx_log_error!(
                NGX_LOG_ERR,
                log,
                "asgi: app \"{name}\" failed its lifespan startup: {text}"
            );
            FAILED.with(|f| f.borrow_mut().push((index, text)));
        }
        Err(e) => {
            alert(py, &e, "asgi: lifespan startup");
            FAILED.with(|f| f.borrow_mut().push((index, e.to_string())));
        }
    }
    schedule(None);
}

/// Why app `index`'s lifespan startup failed, if it did.
pub fn startup_failure(index: usize) -> Option<String> {
    FAILED.with(|f| {
        f.borrow()
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, t)| t.clone())
    })
}

fn python_gateway(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    GATEWAY.with(|g| g.borrow().as_ref().map(|g| g.python.bind(py).clone()))
}

/// Creates the task of one HTTP request; gateway.py's HttpExchange.
pub fn start_http(
    py: Python<'_>,
    channel: Bound<'_, PyAny>,
    callable: Bound<'_, PyAny>,
    scope: Bound<'_, PyAny>,
    app: usize,
) -> PyResult<Py<PyAny>> {
    let gateway = python_gateway(py).ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err("the asyncio loop is not running")
    })?;
    let exchange = gateway.call_method1("http", (channel, callable, scope, app))?;
    Ok(exchange.unbind())
}

/// Creates the task of one WebSocket request; gateway.py's
/// WebSocketExchange. `key`: the client's Sec-WebSocket-Key.
pub fn start_websocket(
    py: Python<'_>,
    channel: Bound<'_, PyAny>,
    callable: Bound<'_, PyAny>,
    scope: Bound<'_, PyAny>,
    app: usize,
    key: &[u8],
) -> PyResult<Py<PyAny>> {
    let gateway = python_gateway(py).ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err("the asyncio loop is not running")
    })?;
    let key = pyo3::types::PyBytes::new(py, key);
    let exchange = gateway.call_method1("websocket", (channel, callable, scope, app, key))?;
    Ok(exchange.unbind())
}

pub fn request_started() {
    IN_FLIGHT.with(|n| n.set(n.get() + 1));
}

pub fn request_ended() {
    let left = IN_FLIGHT.with(|n| {
        n.set(n.get().saturating_sub(1));
        n.get()
    });
    if left == 0 {
        // The loop's timer no longer keeps an exiting worker waiting.
        GATEWAY.with(|g| {
            if let Some(g) = g.borrow().as_ref() {
                // SAFETY: the event lives for the worker's life; event loop.
                unsafe { (*g.timer).set_cancelable(1) };
            }
        });
    }
}

/// Runs one step of the loop now (what its requests do next is then in
/// `exchange::take_decided`).
pub fn step() {
    let Some((watch_app, limit_ms)) =
        GATEWAY.with(|g| g.borrow().as_ref().map(|g| (g.watch_app, g.limit_ms)))
    else {
        return;
    };
    let next = Python::attach(|py| {
        let gateway = python_gateway(py)?;
        // An app that blocks the loop is interrupted as an inline WSGI
        // call is: ReadTimeout raised where it is (its task then fails:
        // 504), and the worker replaced if it does not return.
        let stepped = under_watch(py, watch_app, limit_ms, || gateway.call_method0("step"));
        match stepped.and_then(|t| t.extract::<Option<f64>>()) {
            Ok(next) => next.map(Some),
            Err(e) => {
                // SystemExit, KeyboardInterrupt: asyncio lets them through.
                alert(py, &e, "asgi: a step of the asyncio loop raised");
                Some(Some(0.0))
            }
        }
    });
    schedule(next.flatten());
}

/// Runs `call` under the event loop's watch (`wsgi_read_timeout`); a
/// timeout's report goes to the worker's log.
fn under_watch<R>(py: Python<'_>, app: usize, limit_ms: u64, call: impl FnOnce() -> R) -> R {
    /// Leaves the watch if `call` panics: a call left open would time out
    /// and interrupt what the loop runs next.
    struct Inside(&'static watch::Watch);
    impl Drop for Inside {
        fn drop(&mut self) {
            self.0.leave();
        }
    }
    let watch = watch::event_loop();
    watch.enter(app, limit_ms);
    let inside = Inside(watch);
    let result = call();
    std::mem::forget(inside);
    if watch.leave() {
        for piece in watch.timeout(py).report.into_iter().flatten() {
            LogTo::Worker.write(NGX_LOG_ERR as _, &piece);
        }
    }
    result
}

/// A step at the next turn of nginx's loop (a request ended: its task is
/// cancelled there).
pub fn step_soon() {
    GATEWAY.with(|g| {
        if let Some(g) = g.borrow().as_ref() {
            // SAFETY: the event lives for the worker's life; event loop.
            unsafe {
                if (*g.posted).posted() == 0 {
                    ngx_post_event(g.posted, addr_of_mut!(ngx_posted_events));
                }
            }
        }
    });
}

/// After a step: arms what runs the next one. `next`: seconds until the
/// loop's next timer (0: callbacks are ready), None: I/O only.
fn schedule(next: Option<f64>) {
    GATEWAY.with(|g| {
        let g = g.borrow();
        let Some(g) = g.as_ref() else {
            return;
        };
        // SAFETY: the events and connection live for the worker's life;
        // this is the event loop.
        unsafe {
            // gateway.py says 0.0 for callbacks ready and for events the
            // selector's descriptor still has (nginx watches it edge-triggered).
            let ready = next == Some(0.0);
            if ready && (*g.posted).posted() == 0 {
                // After the next poll: other connections get their turn.
                ngx_post_event(g.posted, addr_of_mut!(ngx_posted_next_events));
            }
            let in_flight = IN_FLIGHT.with(Cell::get);
            let loop_ms = next
                .filter(|&s| s > 0.0)
                .map(|s| ((s * 1000.0).ceil() as u64).max(1));
            let ms = if in_flight > 0 {
                Some(loop_ms.unwrap_or(KEEP_ALIVE_MS).min(KEEP_ALIVE_MS))
            } else {
                loop_ms
            };
            let timer = g.timer;
            match ms {
                Some(ms) => {
                    (*timer).set_cancelable((in_flight == 0) as _);
                    ngx_add_timer(timer, ms as _);
                }
                None if (*timer).timer_set() != 0 => ngx_del_timer(timer),
                None => {}
            }
        }
    });
}

/// At the worker's exit: lifespan.shutdown to the apps that started, the
/// tasks left cancelled, the descriptor closed.
///
/// # Safety
/// Called on the event loop from exit_process.
pub unsafe fn stop(log: *mut ngx_log_t, names: impl Fn(usize) -> String) {
    let Some(Gateway {
        python,
        connection,
        timer,
        ..
    }) = GATEWAY.with(|g| g.borrow_mut().take())
    else {
        return;
    };
    if interp::ready() {
        Python::attach(|py| {
            let reports = python
                .bind(py)
                .call_method1("shutdown", (LIFESPAN_TIMEOUT_S,))
                .and_then(|r| r.extract::<Vec<(usize, String, String)>>());
            match reports {
                Ok(reports) => {
                    for (index, kind, text) in reports {
                        let name = names(index);
                        if kind == "complete" {
                            ngx::ngx_log_error!(
                                NGX_LOG_NOTICE,
                                log,
                                "asgi: app \"{name}\" stopped (lifespan)"
                            );
                        } else {
                            ngx::ngx_log_error!(
                                NGX_LOG_ERR,
                                log,
                                "asgi: app \"{name}\" failed its lifespan shutdown: {text}"
                            );
                        }
                    }
                }
                Err(e) => alert(py, &e, "asgi: lifespan shutdown"),
            }
            // The loop and its tasks go with the GIL held.
            drop(python);
        });
    }
    if (*timer).timer_set() != 0 {
        ngx_del_timer(timer);
    }
    ngx_close_connection(connection);
}

/// A fault of the loop itself (not of a request's app), with its
/// traceback, in the worker's log.
fn alert(py: Python<'_>, e: &PyErr, what: &str) {
    interp::log_exception(py, e, &LogTo::Worker, NGX_LOG_ALERT as _, what);
}
