//! ngx_http_wsgi_module: runs Python WSGI (PEP 3333) applications inside
//! nginx worker processes. docs/ARCHITECTURE.md draws the whole; in short,
//! the layers from the top:
//!
//! - `module` (what nginx loads: directives, worker start and exit) and
//!   `entry` (every function nginx calls for a request), both through the
//!   panic `guard`;
//! - `request` (a request's context and states; `settle` moves them);
//! - `inline` and `threads` (where the app runs: on the event loop, or on a
//!   pool thread with a hand-off back to it), which only schedule;
//! - `nginx` (the event loop's side: CGI variables and body from the
//!   request, head and chunks into nginx's output, waiting for the client)
//!   and `wsgi` (the Python side: CPython, the environ, the response
//!   driver that both modes share);
//! - at the bottom `config`, `vars`, `errlog`, `event_loop`, `test_hooks`.

mod config;
mod entry;
mod errlog;
mod event_loop;
mod guard;
mod inline;
mod module;
mod nginx;
mod request;
mod test_hooks;
mod threads;
mod vars;
mod wsgi;

/// The module's `ngx_module_t`, which nginx looks up by this name.
pub use module::ngx_http_wsgi_module;

// The unit-test executable has no nginx to link against: there, nothing
// exports the module, so the linker drops every path into nginx's symbols.
#[cfg(not(test))]
ngx::ngx_modules!(ngx_http_wsgi_module);
