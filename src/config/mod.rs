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

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::ptr::{addr_of, addr_of_mut};
use std::sync::Arc;

use ngx::core::NGX_CONF_ERROR;
use ngx::ffi::{
    ngx_conf_merge_path_value, ngx_conf_t, ngx_flag_t, ngx_http_complex_value_t, ngx_module_t,
    ngx_msec_t, ngx_path_init_t, ngx_path_t, ngx_str_t, ngx_uint_t, NGX_CONF_UNSET, NGX_LOG_EMERG,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf, Merge, MergeConfigError};
use ngx::ngx_conf_log_error;

pub use parse::{check_python_home, max_requests, size, size_or_zero, Invalid};

use crate::test_hooks::Hooks;
use crate::wsgi::accel::IgnoreHeaders;

/// Where an app's code comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppSource {
    /// A dotted module name, imported from sys.path.
    Module(String),
    /// A `.py` file, loaded under a private module name.
    File(String),
}

/// Which interface an app speaks: `wsgi_pass` or `asgi_pass`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interface {
    Wsgi,
    Asgi,
}

/// What one `wsgi_pass` (or `asgi_pass`) names: a module or file, and the
/// callable inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSpec {
    pub source: AppSource,
    /// A dotted attribute path inside the module (`application`, `app.wsgi_app`).
    pub callable: String,
    pub interface: Interface,
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
    /// A location has `wsgi_status`.
    pub status: bool,
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
    /// Where that `wsgi_pass` is (`file:line`), for the messages of checks
    /// made after inheritance.
    pub pass_at: Option<String>,
    /// The app is an ASGI app (`asgi_pass`): it runs on the event loop's
    /// asyncio loop.
    pub asgi: bool,
    /// `wsgi_param`s; like `uwsgi_param`, a level that sets any replaces
    /// all inherited ones.
    params: Vec<Param>,
    params_set: bool,
    /// `wsgi_buffering`: an ngx_flag_t that nginx's flag slot sets.
    pub buffering: ngx_flag_t,
    /// `wsgi_request_buffering`: likewise a flag slot's.
    pub request_buffering: ngx_flag_t,
    /// `wsgi_ignore_headers`; a level that has it replaces the inherited.
    pub ignore_headers: IgnoreHeaders,
    pub ignore_headers_set: bool,
    /// `wsgi_threads`: unset (None), inline (Some(None)), or the index of a
    /// pool in `MainConf::pools`.
    threads: Option<Option<usize>>,
    /// `wsgi_queue_timeout`: how long a request may wait for a free thread.
    pub queue_timeout: ngx_msec_t,
    /// `wsgi_read_timeout`: how long one call into the app may take.
    pub read_timeout: ngx_msec_t,
    /// `wsgi_max_temp_file_size` in bytes (0: no spilling); None: unset.
    pub max_temp_file_size: Option<u64>,
    /// `asgi_websocket_max_message_size` in bytes; None: unset.
    pub websocket_max_message: Option<u64>,
    /// `asgi_websocket_ping_interval` in ms (0: off); None: unset.
    pub websocket_ping: Option<ngx_msec_t>,
    /// `wsgi_temp_path`, as nginx's path slot sets it (levels included).
    pub temp_path: *mut ngx_path_t,
    /// Where a thread-mode response may spill, once merged: only where an
    /// app runs on a pool and spilling is on.
    pub spill: Option<Arc<Spill>>,
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

    /// The largest WebSocket message an ASGI app gets.
    pub fn websocket_max_message(&self) -> usize {
        self.websocket_max_message
            .unwrap_or(DEFAULT_WEBSOCKET_MAX_MESSAGE)
            .min(usize::MAX as u64) as usize
    }

    /// How long an open WebSocket may be quiet before the server pings it
    /// (and, as long again, before a client that answers nothing is taken
    /// for gone), in ms; 0: never.
    pub fn websocket_ping_interval(&self) -> ngx_msec_t {
        self.websocket_ping.unwrap_or(DEFAULT_WEBSOCKET_PING)
    }

    /// Whether chunks may wait in nginx's filters (`wsgi_buffering on`).
    pub fn buffering(&self) -> bool {
        self.buffering == 1
    }

    /// Whether nginx reads the whole body before the app is called
    /// (`wsgi_request_buffering on`), or the app reads it as it arrives.
    pub fn request_buffering(&self) -> bool {
        self.request_buffering != 0
    }
}

impl Default for LocConf {
    fn default() -> LocConf {
        LocConf {
            app: None,
            pass_at: None,
            asgi: false,
            params: Vec::new(),
            params_set: false,
            buffering: NGX_CONF_UNSET as ngx_flag_t,
            request_buffering: NGX_CONF_UNSET as ngx_flag_t,
            ignore_headers: IgnoreHeaders::default(),
            ignore_headers_set: false,
            threads: None,
            queue_timeout: NGX_CONF_UNSET_MSEC,
            read_timeout: NGX_CONF_UNSET_MSEC,
            max_temp_file_size: None,
            websocket_max_message: None,
            websocket_ping: None,
            temp_path: std::ptr::null_mut(),
            spill: None,
            test_hooks: Hooks::default(),
        }
    }
}

impl LocConf {
    /// Inherits what this level does not set from `prev`, the level above;
    /// the error for `nginx -t` when the result cannot work.
    fn inherit(&mut self, prev: &LocConf) -> Result<(), String> {
        if self.app.is_none() {
            self.app = prev.app;
            self.asgi = prev.asgi;
            self.pass_at.clone_from(&prev.pass_at);
        }
        if !self.params_set {
            self.params = prev.params.clone();
        }
        merge_flag(&mut self.buffering, prev.buffering, 0);
        merge_flag(&mut self.request_buffering, prev.request_buffering, 1);
        if !self.ignore_headers_set {
            self.ignore_headers = prev.ignore_headers;
        }
        if self.threads.is_none() {
            self.threads = Some(prev.threads.flatten());
        }
        merge_msec(
            &mut self.queue_timeout,
            prev.queue_timeout,
            DEFAULT_QUEUE_TIMEOUT,
        );
        merge_msec(
            &mut self.read_timeout,
            prev.read_timeout,
            DEFAULT_READ_TIMEOUT,
        );
        if self.max_temp_file_size.is_none() {
            self.max_temp_file_size = prev.max_temp_file_size;
        }
        if self.websocket_max_message.is_none() {
            self.websocket_max_message = prev.websocket_max_message;
        }
        if self.websocket_ping.is_none() {
            self.websocket_ping = prev.websocket_ping;
        }
        if self.temp_path.is_null() {
            self.temp_path = prev.temp_path;
        }
        self.test_hooks = self.test_hooks.union(prev.test_hooks);
        self.check()
    }

    /// What only the merged configuration shows.
    fn check(&self) -> Result<(), String> {
        if self.app.is_some() && self.asgi && self.pool().is_some() {
            // An ASGI app awaits on the worker's asyncio loop; a pool
            // thread would have no loop to run it.
            return Err(format!(
                "\"wsgi_threads\" does not apply to \"asgi_pass\" (at {}): an ASGI app runs on the worker's asyncio loop; use \"wsgi_threads 0\" or none in its location",
                self.pass_at.as_deref().unwrap_or("?")
            ));
        }
        if self.app.is_some() && !self.asgi && !self.request_buffering() && self.pool().is_none() {
            // The app would read the client's body on the event loop, which
            // must never wait for a client.
            return Err(format!(
                "\"wsgi_request_buffering off\" needs \"wsgi_threads\": the \"wsgi_pass\" at {} runs its app on the event loop",
                self.pass_at.as_deref().unwrap_or("?")
            ));
        }
        Ok(())
    }
}

/// Where and how much of a thread-mode response may go to a temp file
/// when its client cannot take it yet (`wsgi_max_temp_file_size`,
/// `wsgi_temp_path`).
#[derive(Debug)]
pub struct Spill {
    /// The directory (nginx's master creates it, for the workers' user).
    pub dir: PathBuf,
    /// Its subdirectory levels, as nginx's temp paths have them.
    pub levels: [usize; 3],
    /// The most a response may spill, in bytes.
    pub max: u64,
}

/// `asgi_websocket_max_message_size`'s default: 16 MiB, as uvicorn's.
const DEFAULT_WEBSOCKET_MAX_MESSAGE: u64 = 16 << 20;

/// `asgi_websocket_ping_interval`'s default: 20 s, as uvicorn's.
const DEFAULT_WEBSOCKET_PING: ngx_msec_t = 20_000;

/// `wsgi_max_temp_file_size`'s default, as `proxy_max_temp_file_size`'s.
const DEFAULT_MAX_TEMP_FILE_SIZE: u64 = 1 << 30;

/// `wsgi_temp_path`'s default, under nginx's prefix unless absolute; a
/// build sets another with `NGX_WSGI_TEMP_PATH` (build.rs), as nginx's
/// configure does with `--http-uwsgi-temp-path`. NUL-terminated, as
/// nginx's own defaults are: nginx takes an absolute path as it is and
/// hands its bytes to mkdir().
const DEFAULT_TEMP_PATH: &str = concat!(env!("WSGI_DEFAULT_TEMP_PATH"), "\0");

impl LocConf {
    /// After `inherit`: where this location's responses spill, if they
    /// may (an app on a pool, spilling on). The default path is then
    /// registered, so that nginx's master creates it.
    ///
    /// # Safety
    /// `cf` must be the configuration being parsed.
    unsafe fn merge_spill(&mut self, cf: *mut ngx_conf_t) -> Result<(), String> {
        let max = self
            .max_temp_file_size
            .unwrap_or(DEFAULT_MAX_TEMP_FILE_SIZE);
        if self.app.is_none() || self.pool().is_none() || max == 0 {
            return Ok(());
        }
        // nginx reads the default through this pointer, and never writes.
        static mut DEFAULT: ngx_path_init_t = ngx_path_init_t {
            name: ngx_str_t {
                len: DEFAULT_TEMP_PATH.len() - 1,
                data: DEFAULT_TEMP_PATH.as_ptr() as *mut u8,
            },
            level: [1, 2, 0],
        };
        let inherited = self.temp_path;
        let merged =
            ngx_conf_merge_path_value(cf, &mut self.temp_path, inherited, addr_of_mut!(DEFAULT));
        if merged == NGX_CONF_ERROR || self.temp_path.is_null() {
            return Err("the temp path of \"wsgi_temp_path\" cannot be set up".into());
        }
        let path = &*self.temp_path;
        let name = std::slice::from_raw_parts(path.name.data, path.name.len);
        self.spill = Some(Arc::new(Spill {
            dir: PathBuf::from(OsStr::from_bytes(name)),
            levels: path.level,
            max,
        }));
        Ok(())
    }
}

/// What the crate's default `merge_loc_conf` asks for (its signature
/// still does when `Module` brings its own, which says why it refuses).
impl Merge for LocConf {
    fn merge(&mut self, prev: &LocConf) -> Result<(), MergeConfigError> {
        self.inherit(prev).map_err(|_| MergeConfigError::NoValue)
    }
}

/// An `ngx_flag_t` this level did not set takes the level above's, or
/// `default`.
fn merge_flag(flag: &mut ngx_flag_t, prev: ngx_flag_t, default: ngx_flag_t) {
    if *flag == NGX_CONF_UNSET as ngx_flag_t {
        *flag = if prev == NGX_CONF_UNSET as ngx_flag_t {
            default
        } else {
            prev
        };
    }
}

/// As `merge_flag`, for a time.
fn merge_msec(ms: &mut ngx_msec_t, prev: ngx_msec_t, default: ngx_msec_t) {
    if *ms == NGX_CONF_UNSET_MSEC {
        *ms = if prev == NGX_CONF_UNSET_MSEC {
            default
        } else {
            prev
        };
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

    /// Merges a location's configuration with its parent's; a combination
    /// that cannot work is refused with its reason (nginx's default merge
    /// would refuse without one).
    ///
    /// # Safety
    /// nginx calls it with the configuration being parsed and two of this
    /// module's location configurations.
    unsafe extern "C" fn merge_loc_conf(
        cf: *mut ngx_conf_t,
        prev: *mut std::ffi::c_void,
        conf: *mut std::ffi::c_void,
    ) -> *mut std::ffi::c_char {
        let prev = &*(prev as *const LocConf);
        let conf = &mut *(conf as *mut LocConf);
        match conf.inherit(prev).and_then(|()| conf.merge_spill(cf)) {
            Ok(()) => std::ptr::null_mut(),
            Err(reason) => {
                ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{reason}");
                NGX_CONF_ERROR
            }
        }
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

#[cfg(test)]
mod tests {
    use super::DEFAULT_TEMP_PATH;

    #[test]
    fn default_temp_path_is_one_c_string() {
        let bytes = DEFAULT_TEMP_PATH.as_bytes();
        assert_eq!(bytes.last(), Some(&0), "nginx hands it to mkdir() as it is");
        assert!(!bytes[..bytes.len() - 1].contains(&0));
        assert!(bytes.len() > 1);
    }
}
