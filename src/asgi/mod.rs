//! ASGI apps (`asgi_pass`) on nginx's own event loop: the worker's asyncio
//! loop, stepped by nginx (gateway.rs, with its Python side in
//! gateway.py), the scope of a request (scope.rs), and one request between
//! nginx and the app's task (exchange.rs).

pub mod exchange;
pub mod gateway;
mod scope;
pub mod websocket;

use std::cell::RefCell;
use std::rc::Rc;

use ngx::ffi::{
    ngx_http_request_t, ngx_log_t, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_ALERT, NGX_LOG_ERR,
};
use ngx::ngx_log_error;
use pyo3::prelude::*;

use crate::config::{AppSpec, Interface, LocConf, MainConf};
use crate::errlog::LogTo;
use crate::next::Next;
use crate::nginx::output::SharedOutput;
use crate::status::{self, Counter};
use crate::wsgi::{interp, watch};
use exchange::AppCall;
pub use exchange::AsgiRequest;

/// Runs a step of the worker's asyncio loop; what the requests it moved
/// do next, each once.
pub fn step() -> Vec<(*mut ngx_http_request_t, Next)> {
    gateway::step();
    exchange::take_decided()
}

/// The request body is read: starts the app's task. The caller runs a
/// step of the loop next, which calls the app.
///
/// # Safety
/// `r` must be a live request owned by this module; `log`, `app`,
/// `output`, `lc` and `main` its own.
pub unsafe fn start(
    r: *mut ngx_http_request_t,
    log: *mut ngx_log_t,
    app: usize,
    output: &SharedOutput,
    slot: &mut Option<AsgiRequest>,
    lc: &LocConf,
    main: &MainConf,
) -> Next {
    let Some(spec) = main.apps.get(app) else {
        return Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
    };
    let name = app_name(app, spec);
    if !gateway::running() {
        ngx_log_error!(NGX_LOG_ERR, log, "asgi: the asyncio loop is not running in this worker (see the worker's start in error_log)");
        return Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
    }
    if let Some(why) = gateway::startup_failure(app) {
        ngx_log_error!(
            NGX_LOG_ERR,
            log,
            "asgi: app \"{name}\" failed its lifespan startup: {why}"
        );
        return Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
    }
    Python::attach(|py| {
        let callable = match interp::app(py, app, spec) {
            Ok(callable) => callable,
            Err(e) => {
                status::count(Counter::AppImportFailures);
                let what = format!("asgi: cannot load app \"{name}\"");
                interp::log_exception(py, &e, &LogTo::Request(log), NGX_LOG_ERR as _, &what);
                return Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
            }
        };
        let websocket = scope::websocket_key(r);
        let scope = match scope::build(py, r, lc.params(), websocket.is_some()) {
            Ok(scope) => scope,
            Err(e) => {
                ngx_log_error!(NGX_LOG_ERR, log, "asgi: {e}");
                return Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
            }
        };
        let call = AppCall {
            index: app,
            name: name.clone(),
            callable,
            scope: scope.into_any(),
            websocket,
            max_message: lc.websocket_max_message(),
            ping_interval: lc.websocket_ping_interval(),
        };
        match AsgiRequest::start(py, r, log, output, call) {
            Ok(request) => {
                *slot = Some(request);
                Next::Running
            }
            Err(e) => {
                let what = format!("asgi: app \"{name}\" could not be called");
                interp::log_exception(py, &e, &LogTo::Request(log), NGX_LOG_ERR as _, &what);
                Next::Finish(NGX_HTTP_INTERNAL_SERVER_ERROR as _)
            }
        }
    })
}

thread_local! {
    /// How error_log names each app (`AppSpec::display`), by its index:
    /// made once, not for every request.
    static APP_NAMES: RefCell<Vec<Option<Rc<str>>>> = const { RefCell::new(Vec::new()) };
}

/// How error_log names app `index` (`spec`).
fn app_name(index: usize, spec: &AppSpec) -> Rc<str> {
    APP_NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if names.len() <= index {
            names.resize(index + 1, None);
        }
        names[index]
            .get_or_insert_with(|| Rc::from(spec.display()))
            .clone()
    })
}

/// At the worker's start, after the apps' import: the asyncio loop, and
/// the lifespan startup of every ASGI app (the worker's start waits for
/// it). A loop that cannot start is logged; the ASGI locations answer 500.
///
/// # Safety
/// Called on the event loop from init_process with the live cycle,
/// Python started.
pub unsafe fn start_worker(
    cycle: *mut ngx::ffi::ngx_cycle_t,
    handler: ngx::ffi::ngx_event_handler_pt,
    websocket_read: ngx::ffi::ngx_event_handler_pt,
    apps: &[AppSpec],
    shortest_read_timeout: u64,
) {
    if !apps.iter().any(|a| a.interface == Interface::Asgi) {
        return;
    }
    let log = (*cycle).log;
    let watched = (watch::asyncio_loop(apps), shortest_read_timeout);
    if let Err(e) = gateway::start(cycle, handler, websocket_read, watched) {
        ngx_log_error!(
            NGX_LOG_ALERT,
            log,
            "asgi: {e}; the ASGI locations answer 500"
        );
        return;
    }
    Python::attach(|py| {
        for (index, spec) in apps.iter().enumerate() {
            if spec.interface != Interface::Asgi {
                continue;
            }
            // An app that failed to import was logged; its requests try again.
            if let Ok(callable) = interp::app(py, index, spec) {
                gateway::startup(py, index, &spec.display(), callable, log);
            }
        }
    });
}

/// At the worker's exit: lifespan shutdown, the loop's descriptor closed.
///
/// # Safety
/// Called on the event loop from exit_process.
pub unsafe fn stop_worker(log: *mut ngx_log_t, apps: &[AppSpec]) {
    gateway::stop(log, |index| {
        apps.get(index).map(AppSpec::display).unwrap_or_default()
    });
}
