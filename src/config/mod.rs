//! The configuration: what the directives set (`MainConf` for http,
//! `LocConf` for server and location levels), how a level inherits from the
//! one above (merge), and how the module finds its configuration of a
//! request. The directives themselves are in `module.rs`; the parsing of
//! their arguments in `parse.rs`.
//!
//! `wsgi_pass` names an app; every distinct app gets an index in the main
//! configuration, so that workers cache the loaded callables in a plain
//! vector. Each `wsgi_threads N` (N > 0) is a pool, by index likewise.

mod parse;

use std::ptr::addr_of;

use ngx::ffi::{
    ngx_flag_t, ngx_http_complex_value_t, ngx_module_t, ngx_msec_t, ngx_uint_t, NGX_CONF_UNSET,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf, Merge, MergeConfigError};

pub use parse::{check_python_home, max_requests, size, Invalid};

use crate::test_hooks::Hooks;

/// Where an app's code comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppSource {
    /// A dotted module name, imported from sys.path.
    Module(String),
    /// A `.py` file, loaded under a private module name.
    File(String),
}

/// What one `wsgi_pass` names: a module or file, and the callable inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSpec {
    pub source: AppSource,
    /// A dotted attribute path inside the module (`application`, `app.wsgi_app`).
    pub callable: String,
}

impl AppSpec {
    /// How error_log names this app.
    pub fn display(&self) -> String {
        match &self.source {
            AppSource::Module(m) | AppSource::File(m) => format!("{m}:{}", self.callable),
        }
    }
}

/// One `wsgi_threads N [max_queue=M];`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    pub threads: usize,
    /// Requests that may wait for a free thread; more get 503 at once.
    pub max_queue: usize,
}

/// One `wsgi_param NAME VALUE [if_not_empty];`.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    /// The VALUE, compiled: it may hold nginx variables.
    pub value: *mut ngx_http_complex_value_t,
    pub if_not_empty: bool,
}

/// http-level settings: the Python environment every worker starts with.
#[derive(Debug, Default)]
pub struct MainConf {
    /// `wsgi_python_path`, absolute, in the order given.
    pub python_path: Vec<String>,
    /// `wsgi_python_home`, absolute.
    pub python_home: Option<String>,
    /// Every app named by a `wsgi_pass`; locations refer to them by index.
    pub apps: Vec<AppSpec>,
    /// Every `wsgi_threads N` with N > 0: each is a pool of threads in every
    /// worker, shared by the locations that inherit it.
    pub pools: Vec<PoolSpec>,
    /// Test build: every `wsgi_test_hook` of the configuration, for the
    /// places that have no request.
    pub test_hooks: Hooks,
    /// What the environ reads from nginx beyond the request itself; found
    /// with the first `wsgi_pass`.
    pub environ: EnvironSources,
    /// `wsgi_max_requests N [jitter=J]`: (N, J).
    pub max_requests: Option<(u64, u64)>,
    /// `wsgi_max_rss`, in bytes.
    pub max_rss: Option<u64>,
    /// The shortest `wsgi_read_timeout` of the configuration, if one is
    /// shorter than the default: how often the watchdog must look.
    pub shortest_read_timeout: Option<ngx_msec_t>,
}

impl MainConf {
    /// The shortest `wsgi_read_timeout` any location has, in ms.
    pub fn shortest_read_timeout(&self) -> u64 {
        self.shortest_read_timeout
            .unwrap_or(DEFAULT_READ_TIMEOUT)
            .min(DEFAULT_READ_TIMEOUT) as u64
    }
}

/// nginx variables the environ takes values from, by index, and the
/// modules whose access checks make `$remote_user` an authenticated user.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvironSources {
    /// `$document_root`, `$server_addr`, `$remote_user`.
    pub document_root: ngx_uint_t,
    pub server_addr: ngx_uint_t,
    pub remote_user: ngx_uint_t,
    /// The context index of ngx_http_auth_basic_module and of
    /// ngx_http_auth_request_module, when this nginx has them.
    pub auth_basic: Option<ngx_uint_t>,
    pub auth_request: Option<ngx_uint_t>,
}

/// Per-location settings.
#[derive(Debug)]
pub struct LocConf {
    /// Index into `MainConf::apps`.
    pub app: Option<usize>,
    /// `wsgi_param`s; like `uwsgi_param`, a level that sets any replaces
    /// all inherited ones.
    params: Vec<Param>,
    params_set: bool,
    /// `wsgi_buffering`: an ngx_flag_t that nginx's flag slot sets.
    pub buffering: ngx_flag_t,
    /// `wsgi_threads`: unset (None), inline (Some(None)), or the index of a
    /// pool in `MainConf::pools`.
    threads: Option<Option<usize>>,
    /// `wsgi_queue_timeout`: how long a request may wait for a free thread.
    pub queue_timeout: ngx_msec_t,
    /// `wsgi_read_timeout`: how long one call into the app may take.
    pub read_timeout: ngx_msec_t,
    /// Test build: the `wsgi_test_hook`s of this level and those above.
    pub test_hooks: Hooks,
}

impl LocConf {
    /// The pool this location's requests run on; None: inline.
    pub fn pool(&self) -> Option<usize> {
        self.threads.flatten()
    }

    /// Whether this level has its `wsgi_threads` already.
    pub fn pool_set(&self) -> bool {
        self.threads.is_some()
    }

    /// `wsgi_threads` at this level: a pool's index, or None for inline.
    pub fn set_pool(&mut self, pool: Option<usize>) {
        self.threads = Some(pool);
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn add_param(&mut self, param: Param) {
        self.params_set = true;
        self.params.push(param);
    }

    /// `wsgi_read_timeout` at this level; false if it has one already.
    pub fn set_read_timeout(&mut self, ms: ngx_msec_t) -> bool {
        let unset = self.read_timeout == NGX_CONF_UNSET_MSEC;
        if unset {
            self.read_timeout = ms;
        }
        unset
    }

    /// Whether chunks may wait in nginx's filters (`wsgi_buffering on`).
    pub fn buffering(&self) -> bool {
        self.buffering == 1
    }
}

impl Default for LocConf {
    fn default() -> LocConf {
        LocConf {
            app: None,
            params: Vec::new(),
            params_set: false,
            buffering: NGX_CONF_UNSET as ngx_flag_t,
            threads: None,
            queue_timeout: NGX_CONF_UNSET_MSEC,
            read_timeout: NGX_CONF_UNSET_MSEC,
            test_hooks: Hooks::default(),
        }
    }
}

impl Merge for LocConf {
    fn merge(&mut self, prev: &LocConf) -> Result<(), MergeConfigError> {
        if self.app.is_none() {
            self.app = prev.app;
        }
        if !self.params_set {
            self.params = prev.params.clone();
        }
        if self.buffering == NGX_CONF_UNSET as ngx_flag_t {
            self.buffering = if prev.buffering == NGX_CONF_UNSET as ngx_flag_t {
                0
            } else {
                prev.buffering
            };
        }
        if self.threads.is_none() {
            self.threads = Some(prev.threads.flatten());
        }
        if self.queue_timeout == NGX_CONF_UNSET_MSEC {
            self.queue_timeout = if prev.queue_timeout == NGX_CONF_UNSET_MSEC {
                DEFAULT_QUEUE_TIMEOUT
            } else {
                prev.queue_timeout
            };
        }
        if self.read_timeout == NGX_CONF_UNSET_MSEC {
            self.read_timeout = if prev.read_timeout == NGX_CONF_UNSET_MSEC {
                DEFAULT_READ_TIMEOUT
            } else {
                prev.read_timeout
            };
        }
        self.test_hooks = self.test_hooks.union(prev.test_hooks);
        Ok(())
    }
}

/// nginx's NGX_CONF_UNSET_MSEC, a cast bindgen does not carry over.
const NGX_CONF_UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;
const DEFAULT_QUEUE_TIMEOUT: ngx_msec_t = 60_000;
/// As `uwsgi_read_timeout`'s.
const DEFAULT_READ_TIMEOUT: ngx_msec_t = 60_000;

extern "C" {
    // The module's ngx_module_t, defined and exported by lib.rs: declared
    // here as nginx's C modules declare theirs, so that the configuration
    // reaches it through the linker, not up through the crate's root.
    static ngx_http_wsgi_module: ngx_module_t;
}

/// The module as nginx knows it: how code finds the module's configuration
/// of a cycle or a request, and its context index.
pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes the module's indexes while loading it, before
        // any code here runs; afterwards it is only read.
        unsafe { &*addr_of!(ngx_http_wsgi_module) }
    }
}

// SAFETY: the types match what create_main_conf/create_loc_conf allocate.
unsafe impl HttpModuleMainConf for Module {
    type MainConf = MainConf;
}
// SAFETY: as above.
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = LocConf;
}
