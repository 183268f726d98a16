//! ngx_http_wsgi_module: runs Python WSGI (PEP 3333) and ASGI 3.0
//! applications inside nginx worker processes. docs/ARCHITECTURE.md draws
//! the whole; in short, the layers from the top:
//!
//! - `module` (what nginx loads: directives, worker start and exit) and
//!   `entry` (every function nginx calls for a request), both through the
//!   panic `guard`;
//! - `request` (a request's context and states; `settle` moves them);
//! - `inline` and `threads` (where the app runs: on the event loop, or on a
//!   pool thread with a hand-off back to it), which only schedule;
//! - `asgi` (ASGI apps on the worker's asyncio loop, which nginx's event
//!   loop steps; WebSocket);
//! - `nginx` (the event loop's side: CGI variables and body from the
//!   request, head and chunks into nginx's output, waiting for the client)
//!   and `wsgi` (the Python side: CPython, the environ, the response
//!   driver that both modes share);
//! - at the bottom `config`, `vars`, `errlog`, `event_loop`, `test_hooks`.

pub(crate) mod asgi;
mod config;
mod entry;
mod errlog;
mod event_loop;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod guard;
mod inline;
mod log_vars;
mod module;
mod next;
mod nginx;
mod request;
mod retire;
mod rss;
mod signals;
mod status;
mod test_hooks;
mod threads;
mod vars;
mod wsgi;

use std::ffi::c_void;
use std::ptr::addr_of;

use ngx::ffi::{ngx_module_t, ngx_uint_t, NGX_HTTP_MODULE};

// The unit-test executable and the fuzz targets (feature `fuzzing`) have
// no nginx to link against: there, nothing exports the module, so the
// linker drops every path into nginx's symbols.
#[cfg(not(any(test, feature = "fuzzing")))]
ngx::ngx_modules!(ngx_http_wsgi_module);

/// The module as nginx loads it, by this name; `config::Module` finds the
/// module's configuration and context index through it.
#[cfg_attr(not(any(test, feature = "fuzzing")), used, no_mangle)]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_wsgi_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(module::MODULE_CTX) as *mut c_void,
    // SAFETY: only the address of the command table is taken.
    commands: addr_of!(module::COMMANDS) as *mut _,
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    init_process: Some(module::init_process),
    exit_process: Some(module::exit_process),
    ..ngx_module_t::default()
};
