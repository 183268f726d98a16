//! ngx_http_wsgi_module: runs Python WSGI (PEP 3333) applications inside
//! nginx worker processes.
//!
//! Data flow, one file per step: `conf` (directives) → `handler` (content
//! handler, body read) → `cgi` + `environ` + `input` + `errlog` (what the app gets) → `call` (the
//! app and its body) driven inline by `pump`, or on a thread (`pool`,
//! `producer`) handing chunks over (`handoff`, `wakeup`) to `relay` on the
//! event loop → `response` (status, headers) → `output` (buffers into the
//! filter chain) → `resume` (suspend while the client is slow). `ctx` holds
//! a request's state; `interp` owns CPython.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::addr_of;

use ngx::ffi::{
    ngx_cycle_t, ngx_http_finalize_request, ngx_http_request_t, ngx_int_t, ngx_module_t,
    ngx_uint_t, NGX_ERROR, NGX_HTTP_MODULE, NGX_LOG_ALERT, NGX_OK,
};
use ngx::http::HttpModuleMainConf;
use ngx::ngx_log_error;

mod call;
mod cgi;
mod conf;
mod ctx;
mod environ;
mod errlog;
mod flush;
mod handler;
mod handoff;
mod input;
mod interp;
mod output;
mod pool;
mod producer;
mod pump;
mod relay;
mod response;
mod resume;
mod test_hooks;
mod wakeup;

// The unit-test executable has no nginx to link against: there, nothing
// exports the module, so the linker drops every path into nginx's symbols.
#[cfg(not(test))]
ngx::ngx_modules!(ngx_http_wsgi_module);

#[cfg_attr(not(test), used, no_mangle)]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_wsgi_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(conf::MODULE_CTX) as *mut c_void,
    // SAFETY: only the address of the command table is taken.
    commands: addr_of!(conf::COMMANDS) as *mut _,
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    init_process: Some(init_process),
    exit_process: Some(exit_process),
    ..ngx_module_t::default()
};

/// Starts CPython in each worker (never in the master, so that reloads bring
/// fresh code and fork stays safe), if any location uses `wsgi_pass`.
extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: nginx passes the live cycle; the main configuration it holds
    // was created by this module.
    unsafe {
        if let Some(main) = conf::Module::main_conf(&*cycle) {
            test_hooks::arm_worker(main.test_hooks);
            if !main.apps.is_empty() {
                interp::start(main, (*cycle).log);
            }
            if interp::ready() {
                // Pool threads, and an app's own threads, reach the event
                // loop through the wake-up.
                match wakeup::start(cycle) {
                    Ok(()) => pool::start(&main.pools, &main.apps, (*cycle).log),
                    Err(e) => {
                        ngx_log_error!(
                            NGX_LOG_ALERT,
                            (*cycle).log,
                            "wsgi: the event loop's wake-up cannot start (no thread pools): {e}"
                        );
                    }
                }
            }
        }
    }
    // A Python that cannot start is logged and answered with 500s: failing
    // here would make the master respawn the worker in a loop.
    NGX_OK as _
}

extern "C" fn exit_process(cycle: *mut ngx_cycle_t) {
    // SAFETY: nginx passes the live cycle, on the event-loop thread.
    unsafe {
        pool::stop((*cycle).log);
        wakeup::stop((*cycle).log);
    }
    interp::stop();
}

/// Runs `f` for request `r`; a Rust panic is logged and ends the request
/// instead of unwinding into nginx.
pub(crate) fn guard(r: *mut ngx_http_request_t, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        // SAFETY: `r` is the live request the callback was invoked for.
        unsafe {
            ngx_log_error!(
                NGX_LOG_ALERT,
                (*(*r).connection).log,
                "wsgi: internal error (panic); request aborted"
            );
            ngx_http_finalize_request(r, NGX_ERROR as _);
        }
    }
}
