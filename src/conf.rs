//! Directives, the main and location configuration, and their merge.
//!
//! `wsgi_pass` names an app; every distinct app gets an index in the main
//! configuration so that workers cache the loaded callables in a plain vector.

use std::ffi::{c_char, c_void, CStr};
use std::path::Path;
use std::ptr::addr_of;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_set_msec_slot, ngx_conf_t, ngx_flag_t,
    ngx_http_compile_complex_value, ngx_http_compile_complex_value_t, ngx_http_complex_value_t,
    ngx_http_get_variable_index, ngx_http_module_t, ngx_int_t, ngx_module_t, ngx_msec_t,
    ngx_pcalloc, ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_FLAG, NGX_CONF_TAKE1,
    NGX_CONF_TAKE12, NGX_CONF_TAKE23, NGX_CONF_UNSET, NGX_ERROR, NGX_HTTP_LIF_CONF,
    NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET,
    NGX_HTTP_MODULE, NGX_HTTP_SRV_CONF, NGX_LOG_EMERG, NGX_OK,
};
use ngx::http::{
    HttpModule, HttpModuleLocationConf, HttpModuleMainConf, Merge, MergeConfigError,
    NgxHttpCoreModule,
};
use ngx::{ngx_conf_log_error, ngx_string};

use crate::ngx_http_wsgi_module;
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
    /// Parses `MODULE[:CALLABLE]`. A MODULE that ends in `.py` or contains a
    /// `/` is a file path (kept as written; the caller resolves it).
    pub fn parse(arg: &str) -> Result<AppSpec, String> {
        let mut parts = arg.split(':');
        let module = parts.next().unwrap_or("");
        let callable = parts.next();
        if parts.next().is_some() {
            return Err(format!(
                "\"{arg}\" has more than one \":\"; expected MODULE[:CALLABLE]"
            ));
        }
        if module.is_empty() {
            return Err(format!(
                "\"{arg}\" names no module; expected MODULE[:CALLABLE]"
            ));
        }
        let callable = match callable {
            None => "application",
            Some("") => return Err(format!("\"{arg}\" has an empty callable after \":\"")),
            Some(c) => c,
        };
        if !is_dotted_identifier(callable) {
            return Err(format!(
                "\"{callable}\" is not a Python attribute name (in \"{arg}\")"
            ));
        }
        let source = if module.ends_with(".py") || module.contains('/') {
            AppSource::File(module.to_string())
        } else if is_dotted_identifier(module) {
            AppSource::Module(module.to_string())
        } else {
            return Err(format!(
                "\"{module}\" is neither a dotted Python module name nor a path to a .py file"
            ));
        };
        Ok(AppSpec {
            source,
            callable: callable.to_string(),
        })
    }

    /// How error_log names this app.
    pub fn display(&self) -> String {
        match &self.source {
            AppSource::Module(m) | AppSource::File(m) => format!("{m}:{}", self.callable),
        }
    }
}

fn is_dotted_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
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

/// One `wsgi_threads N [max_queue=M];`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    pub threads: usize,
    /// Requests that may wait for a free thread; more get 503 at once.
    pub max_queue: usize,
}

/// Upper bounds that catch typos (`wsgi_threads 6400`) at `nginx -t`.
const MAX_THREADS: usize = 4096;
const DEFAULT_MAX_QUEUE: usize = 1024;

impl PoolSpec {
    /// Parses the arguments of `wsgi_threads`; `None` for 0 (inline).
    pub fn parse(args: &[String]) -> Result<Option<PoolSpec>, String> {
        let threads = args.first().map(String::as_str).unwrap_or("");
        let threads: usize = threads
            .parse()
            .ok()
            .filter(|&n| n <= MAX_THREADS)
            .ok_or_else(|| {
                format!("invalid number of threads \"{threads}\"; expected 0 to {MAX_THREADS}")
            })?;
        let mut max_queue = DEFAULT_MAX_QUEUE;
        for arg in &args[1..] {
            let value = arg.strip_prefix("max_queue=").ok_or_else(|| {
                format!("invalid parameter \"{arg}\"; expected \"max_queue=NUMBER\"")
            })?;
            max_queue = value
                .parse()
                .map_err(|_| format!("invalid max_queue value \"{value}\""))?;
        }
        if threads == 0 {
            if args.len() > 1 {
                return Err("max_queue= needs a number of threads above 0".to_owned());
            }
            return Ok(None);
        }
        Ok(Some(PoolSpec { threads, max_queue }))
    }
}

/// One `wsgi_param NAME VALUE [if_not_empty];`.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    /// The VALUE, compiled: it may hold nginx variables.
    pub value: *mut ngx_http_complex_value_t,
    pub if_not_empty: bool,
}

/// Per-location settings.
#[derive(Debug)]
pub struct LocConf {
    /// Index into `MainConf::apps`.
    pub app: Option<usize>,
    /// `wsgi_param`s; like `uwsgi_param`, a level that sets any replaces
    /// all inherited ones.
    pub params: Vec<Param>,
    params_set: bool,
    /// `wsgi_buffering`: an ngx_flag_t that nginx's flag slot sets.
    pub buffering: ngx_flag_t,
    /// `wsgi_threads`: unset (None), inline (Some(None)), or the index of a
    /// pool in `MainConf::pools`.
    threads: Option<Option<usize>>,
    /// `wsgi_queue_timeout`: how long a request may wait for a free thread.
    pub queue_timeout: ngx_msec_t,
    /// Test build: the `wsgi_test_hook`s of this level and those above.
    pub test_hooks: Hooks,
}

impl LocConf {
    /// The pool this location's requests run on; None: inline.
    pub fn pool(&self) -> Option<usize> {
        self.threads.flatten()
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
        self.test_hooks = self.test_hooks.union(prev.test_hooks);
        Ok(())
    }
}

/// nginx's NGX_CONF_UNSET_MSEC, a cast bindgen does not carry over.
const NGX_CONF_UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;
const DEFAULT_QUEUE_TIMEOUT: ngx_msec_t = 60_000;

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

pub static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: None,
    create_main_conf: Some(Module::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(Module::merge_loc_conf),
};

/// The levels a directive such as `wsgi_param` may appear at.
const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

/// One row of the command table.
const fn command(
    name: ngx_str_t,
    type_: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char,
    conf: ngx_uint_t,
    offset: usize,
) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf,
        offset: offset as _,
        post: std::ptr::null_mut(),
    }
}

/// The test build's `wsgi_test_hook` (src/test_hooks.rs) is one more row.
const COMMAND_COUNT: usize = 8 + cfg!(feature = "test-hooks") as usize;

pub static mut COMMANDS: [ngx_command_t; COMMAND_COUNT] = [
    command(
        ngx_string!("wsgi_pass"),
        NGX_HTTP_LOC_CONF | NGX_HTTP_LIF_CONF | NGX_CONF_TAKE1,
        set_wsgi_pass,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_python_path"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE,
        set_python_path,
        NGX_HTTP_MAIN_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_python_home"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        set_python_home,
        NGX_HTTP_MAIN_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_param"),
        ANY_LEVEL | NGX_CONF_TAKE23,
        set_param,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_buffering"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        std::mem::offset_of!(LocConf, buffering),
    ),
    command(
        ngx_string!("wsgi_threads"),
        ANY_LEVEL | NGX_CONF_TAKE12,
        set_threads,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_queue_timeout"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        std::mem::offset_of!(LocConf, queue_timeout),
    ),
    #[cfg(feature = "test-hooks")]
    command(
        ngx_string!("wsgi_test_hook"),
        ANY_LEVEL | NGX_CONF_1MORE,
        set_test_hook,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    ngx_command_t::empty(),
];

#[cfg(feature = "test-hooks")]
extern "C" fn set_test_hook(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_wsgi_pass; `conf` is this module's location
    // configuration at the directive's level.
    unsafe {
        let loc = &mut *(conf as *mut LocConf);
        let hooks = match args(cf).and_then(|a| Hooks::parse(&a)) {
            Ok(hooks) => hooks,
            Err(e) => return reject(cf, "wsgi_test_hook", &e),
        };
        let Some(main) = Module::main_conf_mut(&*cf) else {
            return NGX_CONF_ERROR;
        };
        loc.test_hooks = loc.test_hooks.union(hooks);
        main.test_hooks = main.test_hooks.union(hooks);
    }
    NGX_CONF_OK
}

/// The directive's arguments, after its name, as UTF-8 strings.
///
/// # Safety
/// `cf` must be the configuration being parsed, as nginx passes it to a
/// directive handler.
unsafe fn args(cf: *mut ngx_conf_t) -> Result<Vec<String>, String> {
    let args = &*(*cf).args;
    let all = std::slice::from_raw_parts(args.elts as *const ngx_str_t, args.nelts);
    all.iter()
        .skip(1)
        .map(|s| {
            std::str::from_utf8(s.as_bytes())
                .map(str::to_owned)
                .map_err(|_| "argument is not valid UTF-8".to_owned())
        })
        .collect()
}

/// Makes a relative path absolute against the directory of nginx.conf, the
/// way nginx resolves `include`.
///
/// # Safety
/// `cf` must be the configuration being parsed.
unsafe fn resolve(cf: *mut ngx_conf_t, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_owned();
    }
    let prefix = (*(*cf).cycle).conf_prefix.as_bytes();
    let prefix = String::from_utf8_lossy(prefix);
    format!("{}/{}", prefix.trim_end_matches('/'), path)
}

/// Logs `message` as `nginx -t` shows it and fails the directive.
///
/// # Safety
/// `cf` must be the configuration being parsed.
unsafe fn reject(cf: *mut ngx_conf_t, directive: &str, message: &str) -> *mut c_char {
    ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"{directive}\": {message}");
    NGX_CONF_ERROR
}

/// The directive's one argument, or what the handler must return.
///
/// # Safety
/// `cf` must be the configuration being parsed.
unsafe fn single_arg(cf: *mut ngx_conf_t, directive: &str) -> Result<String, *mut c_char> {
    args(cf)
        .map(|a| a.into_iter().next().unwrap_or_default())
        .map_err(|e| reject(cf, directive, &e))
}

extern "C" fn set_wsgi_pass(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls directive handlers with the configuration being
    // parsed and `conf` pointing at this module's location configuration.
    unsafe {
        let loc = &mut *(conf as *mut LocConf);
        if loc.app.is_some() {
            return c"is duplicate".as_ptr() as *mut c_char;
        }
        let arg = match single_arg(cf, "wsgi_pass") {
            Ok(arg) => arg,
            Err(rc) => return rc,
        };
        let mut spec = match AppSpec::parse(&arg) {
            Ok(spec) => spec,
            Err(e) => return reject(cf, "wsgi_pass", &e),
        };
        if let AppSource::File(path) = &spec.source {
            let full = resolve(cf, path);
            if !Path::new(&full).is_file() {
                return reject(cf, "wsgi_pass", &format!("file \"{full}\" does not exist"));
            }
            spec.source = AppSource::File(full);
        }
        let Some(main) = Module::main_conf_mut(&*cf) else {
            return NGX_CONF_ERROR;
        };
        if main.apps.is_empty() {
            match environ_sources(cf) {
                Some(sources) => main.environ = sources,
                None => return NGX_CONF_ERROR,
            }
        }
        let index = match main.apps.iter().position(|a| *a == spec) {
            Some(i) => i,
            None => {
                main.apps.push(spec);
                main.apps.len() - 1
            }
        };
        loc.app = Some(index);

        let Some(clcf) = NgxHttpCoreModule::location_conf_mut(&*cf) else {
            return NGX_CONF_ERROR;
        };
        clcf.handler = Some(crate::handler::content_handler);
    }
    NGX_CONF_OK
}

/// Registers the variables the environ reads and finds the auth modules.
///
/// # Safety
/// `cf` must be the configuration being parsed, inside `http {}`.
unsafe fn environ_sources(cf: *mut ngx_conf_t) -> Option<EnvironSources> {
    let index = |name: &str| {
        let mut name = ngx_str_t {
            len: name.len(),
            data: name.as_ptr() as *mut u8,
        };
        let index = ngx_http_get_variable_index(cf, &mut name);
        (index != NGX_ERROR as ngx_int_t).then_some(index as ngx_uint_t)
    };
    Some(EnvironSources {
        document_root: index("document_root")?,
        server_addr: index("server_addr")?,
        remote_user: index("remote_user")?,
        auth_basic: http_module_index(cf, c"ngx_http_auth_basic_module"),
        auth_request: http_module_index(cf, c"ngx_http_auth_request_module"),
    })
}

/// The context index of the named http module, if this nginx has it.
///
/// # Safety
/// `cf` must be the configuration being parsed, inside `http {}` (where
/// nginx has numbered the http modules).
unsafe fn http_module_index(cf: *mut ngx_conf_t, name: &CStr) -> Option<ngx_uint_t> {
    let mut module = (*(*cf).cycle).modules;
    while !module.is_null() && !(*module).is_null() {
        let m = *module;
        if (*m).type_ == NGX_HTTP_MODULE as ngx_uint_t
            && !(*m).name.is_null()
            && CStr::from_ptr((*m).name) == name
        {
            return Some((*m).ctx_index);
        }
        module = module.add(1);
    }
    None
}

extern "C" fn set_threads(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_wsgi_pass; `conf` is this module's location
    // configuration at the directive's level.
    unsafe {
        let loc = &mut *(conf as *mut LocConf);
        if loc.threads.is_some() {
            return c"is duplicate".as_ptr() as *mut c_char;
        }
        let spec = match args(cf).and_then(|a| PoolSpec::parse(&a)) {
            Ok(spec) => spec,
            Err(e) => return reject(cf, "wsgi_threads", &e),
        };
        let Some(main) = Module::main_conf_mut(&*cf) else {
            return NGX_CONF_ERROR;
        };
        loc.threads = Some(spec.map(|spec| {
            main.pools.push(spec);
            main.pools.len() - 1
        }));
    }
    NGX_CONF_OK
}

extern "C" fn set_param(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_wsgi_pass; `conf` is this module's location
    // configuration at the directive's level.
    unsafe {
        let loc = &mut *(conf as *mut LocConf);
        let args = match args(cf) {
            Ok(a) => a,
            Err(e) => return reject(cf, "wsgi_param", &e),
        };
        let name = args[0].clone();
        if name.is_empty() {
            return reject(cf, "wsgi_param", "empty parameter name");
        }
        let if_not_empty = match args.get(2).map(String::as_str) {
            None => false,
            Some("if_not_empty") => true,
            Some(other) => {
                return reject(
                    cf,
                    "wsgi_param",
                    &format!("invalid parameter \"{other}\"; expected \"if_not_empty\""),
                )
            }
        };
        let Some(value) = compile_value(cf, 2) else {
            return NGX_CONF_ERROR;
        };
        loc.params_set = true;
        loc.params.push(Param {
            name,
            value,
            if_not_empty,
        });
    }
    NGX_CONF_OK
}

/// Compiles directive argument `index` (the directive's name is 0) as a
/// complex value, a string that may hold variables, from the config pool.
///
/// # Safety
/// `cf` must be the configuration being parsed, with that many arguments.
unsafe fn compile_value(
    cf: *mut ngx_conf_t,
    index: usize,
) -> Option<*mut ngx_http_complex_value_t> {
    let value = ((*(*cf).args).elts as *mut ngx_str_t).add(index);
    let cv = ngx_pcalloc((*cf).pool, std::mem::size_of::<ngx_http_complex_value_t>())
        as *mut ngx_http_complex_value_t;
    if cv.is_null() {
        return None;
    }
    let mut ccv: ngx_http_compile_complex_value_t = std::mem::zeroed();
    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;
    (ngx_http_compile_complex_value(&mut ccv) == NGX_OK as ngx_int_t).then_some(cv)
}

extern "C" fn set_python_path(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_wsgi_pass; `conf` is this module's main configuration.
    unsafe {
        let main = &mut *(conf as *mut MainConf);
        let dirs = match args(cf) {
            Ok(a) => a,
            Err(e) => return reject(cf, "wsgi_python_path", &e),
        };
        for dir in dirs {
            let full = resolve(cf, &dir);
            if !Path::new(&full).is_dir() {
                return reject(
                    cf,
                    "wsgi_python_path",
                    &format!("directory \"{full}\" does not exist"),
                );
            }
            main.python_path.push(full);
        }
    }
    NGX_CONF_OK
}

extern "C" fn set_python_home(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: as in set_wsgi_pass; `conf` is this module's main configuration.
    unsafe {
        let main = &mut *(conf as *mut MainConf);
        if main.python_home.is_some() {
            return c"is duplicate".as_ptr() as *mut c_char;
        }
        let dir = match single_arg(cf, "wsgi_python_home") {
            Ok(dir) => dir,
            Err(rc) => return rc,
        };
        let full = resolve(cf, &dir);
        if let Err(e) = crate::interp::check_python_home(&full) {
            return reject(cf, "wsgi_python_home", &e);
        }
        main.python_home = Some(full);
    }
    NGX_CONF_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_with_default_callable() {
        let spec = AppSpec::parse("myproject.wsgi").unwrap();
        assert_eq!(spec.source, AppSource::Module("myproject.wsgi".into()));
        assert_eq!(spec.callable, "application");
    }

    #[test]
    fn module_and_callable() {
        let spec = AppSpec::parse("app:server.wsgi_app").unwrap();
        assert_eq!(spec.source, AppSource::Module("app".into()));
        assert_eq!(spec.callable, "server.wsgi_app");
    }

    #[test]
    fn file_paths() {
        let spec = AppSpec::parse("apps/hello.py:app").unwrap();
        assert_eq!(spec.source, AppSource::File("apps/hello.py".into()));
        assert_eq!(spec.display(), "apps/hello.py:app");
    }

    #[test]
    fn thread_pools() {
        let parse =
            |a: &[&str]| PoolSpec::parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(parse(&["0"]), Ok(None));
        assert_eq!(
            parse(&["8"]),
            Ok(Some(PoolSpec {
                threads: 8,
                max_queue: DEFAULT_MAX_QUEUE
            }))
        );
        assert_eq!(
            parse(&["8", "max_queue=0"]),
            Ok(Some(PoolSpec {
                threads: 8,
                max_queue: 0
            }))
        );
        for bad in [
            &["x"][..],
            &["-1"],
            &["5000"],
            &["8", "queue=3"],
            &["8", "max_queue=x"],
            &["0", "max_queue=3"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn malformed() {
        for bad in [
            "a:b:c", "app:", ":app", "", "my-app:x", "app:1x", "app:x y", "a..b",
        ] {
            assert!(AppSpec::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
