//! What the module's `ngx_module_t` (in lib.rs) points nginx at: its http
//! context, its command table with the directive handlers, and the
//! worker's start and exit (CPython, the thread pools). Every function here
//! that nginx calls runs through the panic guard.

use std::ffi::{c_char, c_void, CStr};
use std::path::Path;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_set_flag_slot, ngx_conf_set_msec_slot, ngx_conf_set_path_slot,
    ngx_conf_t, ngx_cycle_t, ngx_http_add_variable, ngx_http_compile_complex_value,
    ngx_http_compile_complex_value_t, ngx_http_complex_value_t, ngx_http_get_variable_index,
    ngx_http_handler_pt, ngx_http_module_t, ngx_int_t, ngx_msec_t, ngx_parse_time, ngx_pcalloc,
    ngx_process_slot, ngx_shm_zone_t, ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_FLAG,
    NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE12, NGX_CONF_TAKE1234, NGX_CONF_TAKE23,
    NGX_ERROR, NGX_HTTP_LIF_CONF, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF,
    NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_MODULE, NGX_HTTP_SRV_CONF, NGX_HTTP_VAR_NOCACHEABLE,
    NGX_LOG_ALERT, NGX_LOG_EMERG, NGX_OK,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};
use ngx::{ngx_conf_log_error, ngx_log_error, ngx_string};

use crate::config::{
    check_python_home, max_requests, size, size_or_zero, AppSource, AppSpec, EnvironSources,
    Interface, Invalid, LocConf, MainConf, Module, Param, PoolSpec,
};
#[cfg(feature = "test-hooks")]
use crate::test_hooks::Hooks;
use crate::test_hooks::{self, Hook};
use crate::threads::{pool, wakeup};
use crate::wsgi::accel::IgnoreHeaders;
use crate::wsgi::{interp, watchdog};
use crate::{asgi, entry, errlog, event_loop, guard, log_vars, retire, status};

pub static MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(preconfiguration),
    postconfiguration: Some(postconfiguration),
    create_main_conf: Some(Module::create_main_conf),
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(Module::merge_loc_conf),
};

/// Registers the `$wsgi_*` variables for `log_format` (log_vars.rs).
extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    for (index, (name, _)) in log_vars::VARIABLES.iter().enumerate() {
        let mut name = ngx_str_t {
            len: name.len(),
            data: name.as_ptr() as *mut u8,
        };
        // SAFETY: nginx calls this with the configuration being parsed;
        // ngx_http_add_variable copies the name.
        unsafe {
            let v = ngx_http_add_variable(cf, &mut name, NGX_HTTP_VAR_NOCACHEABLE as _);
            if v.is_null() {
                return NGX_ERROR as _;
            }
            (*v).get_handler = Some(entry::on_variable);
            (*v).data = index;
        }
    }
    NGX_OK as _
}

/// Asks nginx for the shared memory zone `wsgi_status` reads, where the
/// module is used (status/zone.rs).
extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    // SAFETY: nginx calls this with the http configuration parsed.
    let Some(main) = (unsafe { Module::main_conf(&*cf) }) else {
        return NGX_OK as _;
    };
    if main.apps.is_empty() && !main.status {
        return NGX_OK as _;
    }
    // SAFETY: as above; the tag is this module.
    let added = unsafe { status::zone::add(cf, Module::module(), Some(init_status_zone)) };
    match added {
        Ok(()) => NGX_OK as _,
        Err(()) => NGX_ERROR as _,
    }
}

/// nginx maps the status zone (in the master; `old`: the zone before a
/// reload).
extern "C" fn init_status_zone(shm: *mut ngx_shm_zone_t, old: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx passes the zone it initializes.
    unsafe { status::zone::init(shm, old) }
}

/// Starts CPython in each worker (never in the master, so that reloads bring
/// fresh code and fork stays safe), if any location uses `wsgi_pass`, and
/// the thread pools. A Python that cannot start is logged and answered with
/// 500s: failing here would make the master respawn the worker in a loop.
pub extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    guard::install();
    // SAFETY: nginx passes the live cycle, on the worker's event loop.
    let log = unsafe { (*cycle).log };
    let started = guard::catch(|| {
        // SAFETY: the cycle is live; its main configuration is this module's.
        let Some(main) = (unsafe { Module::main_conf(&*cycle) }) else {
            return;
        };
        test_hooks::arm_worker(main.test_hooks);
        test_hooks::worker().panic_if(Hook::PanicInInitProcess);
        // SAFETY: nginx set the worker's process slot before it forked it.
        status::start_worker(unsafe { ngx_process_slot }.max(0) as usize);
        if main.apps.is_empty() {
            return;
        }
        event_loop::mark_current();
        retire::configure(main.max_requests, main.max_rss);
        // A worker without thread pools keeps one thread: its watchdog is a
        // process, forked before Python starts.
        let single_threaded = main.pools.is_empty();
        let shortest = main.shortest_read_timeout();
        let watchdog = watchdog::prepare(&main.apps, shortest, single_threaded, log);
        interp::start(main, log);
        if !interp::ready() {
            return;
        }
        if let Err(e) = watchdog.and_then(|plan| watchdog::start(&plan, log)) {
            ngx_log_error!(
                NGX_LOG_ALERT,
                log,
                "wsgi: {e}; wsgi_read_timeout is not enforced in this worker"
            );
        }
        // Warm start: the first request after a start or a reload does not
        // pay for importing the apps.
        interp::import_apps(&main.apps);
        // ASGI apps: the asyncio loop, and their lifespan startup.
        // SAFETY: on the event loop, in init_process, Python started.
        unsafe {
            asgi::start_worker(
                cycle,
                Some(entry::on_asgi_loop),
                Some(entry::on_websocket_read),
                &main.apps,
                shortest,
            )
        };
        // Pool threads, and an app's own threads, reach the event loop
        // through the wake-up.
        // SAFETY: on the event loop, in init_process, with the live cycle.
        match unsafe { wakeup::start(cycle, Some(entry::on_wake)) } {
            Ok(()) => {
                errlog::defer_to_loop(wakeup::wake);
                let handlers = pool::LoopHandlers {
                    busy_timer: Some(entry::on_busy_timer),
                    wake_threads: Some(entry::on_wake_threads),
                };
                pool::start(&main.pools, &main.apps, log, handlers);
            }
            Err(e) => {
                ngx_log_error!(
                    NGX_LOG_ALERT,
                    log,
                    "wsgi: the event loop's wake-up cannot start (no thread pools): {e}"
                );
            }
        }
    });
    if let Err(panic) = started {
        ngx_log_error!(
            NGX_LOG_ALERT,
            log,
            "{}",
            guard::message("init_process", &panic)
        );
    }
    NGX_OK as _
}

/// Lets the pool threads finish (they may still log), writes what they
/// handed over, and runs the apps' atexit hooks.
pub extern "C" fn exit_process(cycle: *mut ngx_cycle_t) {
    // SAFETY: nginx passes the live cycle, on the event-loop thread.
    let log = unsafe { (*cycle).log };
    let stopped = guard::catch(|| {
        test_hooks::worker().panic_if(Hook::PanicInExitProcess);
        pool::stop(log);
        // SAFETY: on the event loop, in exit_process.
        if let Some(main) = unsafe { Module::main_conf(&*cycle) } {
            // SAFETY: as above.
            unsafe { asgi::stop_worker(log, &main.apps) };
        }
        errlog::close_deferred(log);
        // SAFETY: on the event loop, in exit_process, after the threads.
        unsafe { wakeup::stop() };
        interp::stop();
        status::stop_worker();
    });
    if let Err(panic) = stopped {
        ngx_log_error!(
            NGX_LOG_ALERT,
            log,
            "{}",
            guard::message("exit_process", &panic)
        );
    }
}

/// The levels a directive such as `wsgi_param` may appear at.
const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

type DirectiveHandler =
    unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

/// One row of the command table.
const fn command(
    name: ngx_str_t,
    type_: u32,
    set: DirectiveHandler,
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
const COMMAND_COUNT: usize = 20 + cfg!(feature = "test-hooks") as usize;

pub static mut COMMANDS: [ngx_command_t; COMMAND_COUNT] = [
    command(
        ngx_string!("wsgi_pass"),
        NGX_HTTP_LOC_CONF | NGX_HTTP_LIF_CONF | NGX_CONF_TAKE1,
        handle::<WsgiPass>,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("asgi_pass"),
        NGX_HTTP_LOC_CONF | NGX_HTTP_LIF_CONF | NGX_CONF_TAKE1,
        handle::<AsgiPass>,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_status"),
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        handle::<WsgiStatus>,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_python_path"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE,
        handle::<WsgiPythonPath>,
        NGX_HTTP_MAIN_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_python_home"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        handle::<WsgiPythonHome>,
        NGX_HTTP_MAIN_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_param"),
        ANY_LEVEL | NGX_CONF_TAKE23,
        handle::<WsgiParam>,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    // The same parameters, by the name an ASGI location reads better with.
    command(
        ngx_string!("asgi_param"),
        ANY_LEVEL | NGX_CONF_TAKE23,
        handle::<WsgiParam>,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("asgi_websocket_max_message_size"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        handle::<AsgiWebsocketMaxMessageSize>,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("asgi_websocket_ping_interval"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        handle::<AsgiWebsocketPingInterval>,
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
        ngx_string!("wsgi_request_buffering"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        std::mem::offset_of!(LocConf, request_buffering),
    ),
    command(
        ngx_string!("wsgi_ignore_headers"),
        ANY_LEVEL | NGX_CONF_1MORE,
        handle::<WsgiIgnoreHeaders>,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_threads"),
        ANY_LEVEL | NGX_CONF_TAKE12,
        handle::<WsgiThreads>,
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
    command(
        ngx_string!("wsgi_read_timeout"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        handle::<WsgiReadTimeout>,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_max_temp_file_size"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        handle::<WsgiMaxTempFileSize>,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_temp_path"),
        ANY_LEVEL | NGX_CONF_TAKE1234,
        ngx_conf_set_path_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        std::mem::offset_of!(LocConf, temp_path),
    ),
    command(
        ngx_string!("wsgi_max_requests"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE12,
        handle::<WsgiMaxRequests>,
        NGX_HTTP_MAIN_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wsgi_max_rss"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        handle::<WsgiMaxRss>,
        NGX_HTTP_MAIN_CONF_OFFSET,
        0,
    ),
    #[cfg(feature = "test-hooks")]
    command(
        ngx_string!("wsgi_test_hook"),
        ANY_LEVEL | NGX_CONF_1MORE,
        handle::<WsgiTestHook>,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    ngx_command_t::empty(),
];

/// Why a directive is refused.
enum Refusal {
    /// Logged as nginx words it: `invalid value "ARG" in "NAME" directive,
    /// REASON`.
    Invalid(Invalid),
    /// `"NAME" directive is duplicate`.
    Duplicate,
    /// nginx has logged why already (a value it could not compile).
    Logged,
}

impl From<Invalid> for Refusal {
    fn from(invalid: Invalid) -> Refusal {
        Refusal::Invalid(invalid)
    }
}

/// A directive as its handler sees it.
struct Directive {
    cf: *mut ngx_conf_t,
    /// The arguments after the directive's name.
    args: Vec<String>,
}

impl Directive {
    /// Argument `i` (0 is the first after the name).
    fn arg(&self, i: usize) -> &str {
        self.args.get(i).map(String::as_str).unwrap_or("")
    }

    /// This module's main configuration, in which a directive of any level
    /// may record what the workers need (apps, pools).
    ///
    /// # Safety
    /// The reference must not outlive the directive's handler, nor meet
    /// another one to the main configuration (a main-level directive's
    /// `conf` is that configuration).
    unsafe fn main_conf<'a>(&self) -> Result<&'a mut MainConf, Refusal> {
        // `cf` is the configuration being parsed (see `handle`); the main
        // configuration lives as long as the cycle.
        Module::main_conf_mut(&*self.cf).ok_or(Refusal::Logged)
    }

    /// Where the directive is: `file:line`, as nginx's messages say it.
    fn position(&self) -> String {
        // SAFETY: as in `main_conf`: while a file is parsed, `conf_file` is
        // that file, its name nginx's string.
        unsafe {
            let file = (*self.cf).conf_file;
            if file.is_null() {
                return "?".to_owned();
            }
            let name = String::from_utf8_lossy((*file).file.name.as_bytes());
            format!("{name}:{}", (*file).line)
        }
    }

    /// Makes the current location's requests this module's.
    fn handle_location(&self, handler: ngx_http_handler_pt) -> Result<(), Refusal> {
        // SAFETY: as in `main_conf`; the core module's location
        // configuration is nginx's, set up before the location's directives.
        let clcf = unsafe { NgxHttpCoreModule::location_conf_mut(&*self.cf) };
        clcf.ok_or(Refusal::Logged)?.handler = handler;
        Ok(())
    }

    /// Registers the variables the environ reads, finds the auth modules.
    fn environ_sources(&self) -> Result<EnvironSources, Refusal> {
        // SAFETY: as in `main_conf`, inside `http {}`.
        unsafe { environ_sources(self.cf) }.ok_or(Refusal::Logged)
    }

    /// Makes a relative path absolute against the directory of nginx.conf,
    /// the way nginx resolves `include`.
    fn resolve(&self, path: &str) -> String {
        if path.starts_with('/') {
            return path.to_owned();
        }
        // SAFETY: as in `main_conf`; the cycle outlives the parse.
        let prefix = unsafe { (*(*self.cf).cycle).conf_prefix.as_bytes() };
        let prefix = String::from_utf8_lossy(prefix);
        format!("{}/{}", prefix.trim_end_matches('/'), path)
    }

    /// Argument `i` compiled as a complex value, a string that may hold
    /// variables, from the configuration pool.
    fn complex_value(&self, i: usize) -> Result<*mut ngx_http_complex_value_t, Refusal> {
        // SAFETY: as in `main_conf`; `args` has this argument (its name is
        // element 0 of nginx's array).
        unsafe {
            let cf = self.cf;
            let value = ((*(*cf).args).elts as *mut ngx_str_t).add(i + 1);
            let cv = ngx_pcalloc((*cf).pool, std::mem::size_of::<ngx_http_complex_value_t>())
                as *mut ngx_http_complex_value_t;
            if cv.is_null() {
                return Err(Refusal::Logged);
            }
            let mut ccv: ngx_http_compile_complex_value_t = std::mem::zeroed();
            ccv.cf = cf;
            ccv.value = value;
            ccv.complex_value = cv;
            if ngx_http_compile_complex_value(&mut ccv) != NGX_OK as ngx_int_t {
                return Err(Refusal::Logged);
            }
            Ok(cv)
        }
    }
}

/// One of the module's directives: which configuration it sets, and how.
trait Set {
    /// `MainConf` for http-only directives, `LocConf` for the others.
    type Conf;
    fn set(d: &Directive, conf: &mut Self::Conf) -> Result<(), Refusal>;
}

/// The handler nginx calls for directive `S`: its arguments as UTF-8
/// strings, its refusals worded as nginx words its own directives', a panic
/// logged and refused.
extern "C" fn handle<S: Set>(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls a directive handler with the configuration being
    // parsed and `conf` pointing at this module's configuration of the
    // directive's level (the command table's `conf` offset), which is
    // `S::Conf`: MainConf for the http-only directives, LocConf for others.
    unsafe { directive(cf, cmd, conf, S::set) }
}

/// # Safety
/// As `handle` says.
unsafe fn directive<C>(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
    set: impl FnOnce(&Directive, &mut C) -> Result<(), Refusal>,
) -> *mut c_char {
    guard::install();
    let name = String::from_utf8_lossy((*cmd).name.as_bytes()).into_owned();
    let outcome = guard::catch(|| {
        let all = &*(*cf).args;
        let all = std::slice::from_raw_parts(all.elts as *const ngx_str_t, all.nelts);
        let mut args = Vec::with_capacity(all.len());
        for arg in &all[1..] {
            let text = std::str::from_utf8(arg.as_bytes()).map_err(|_| {
                let shown = String::from_utf8_lossy(arg.as_bytes());
                Invalid::value(&shown, "it must be valid UTF-8")
            })?;
            args.push(text.to_owned());
        }
        set(&Directive { cf, args }, &mut *(conf as *mut C))
    });
    match outcome {
        Ok(Ok(())) => NGX_CONF_OK,
        Ok(Err(Refusal::Duplicate)) => c"is duplicate".as_ptr() as *mut c_char,
        Ok(Err(Refusal::Invalid(i))) => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "invalid {} \"{}\" in \"{name}\" directive, {}",
                i.what,
                i.arg,
                i.reason
            );
            NGX_CONF_ERROR
        }
        Ok(Err(Refusal::Logged)) => NGX_CONF_ERROR,
        Err(panic) => {
            let place = format!("the \"{name}\" directive");
            ngx_conf_log_error!(NGX_LOG_ALERT, cf, "{}", guard::message(&place, &panic));
            NGX_CONF_ERROR
        }
    }
}

struct WsgiPass;

impl Set for WsgiPass {
    type Conf = LocConf;

    fn set(d: &Directive, loc: &mut LocConf) -> Result<(), Refusal> {
        pass(d, loc, Interface::Wsgi)
    }
}

struct AsgiPass;

impl Set for AsgiPass {
    type Conf = LocConf;

    fn set(d: &Directive, loc: &mut LocConf) -> Result<(), Refusal> {
        pass(d, loc, Interface::Asgi)
    }
}

/// `wsgi_pass` and `asgi_pass`: the location's app.
fn pass(d: &Directive, loc: &mut LocConf, interface: Interface) -> Result<(), Refusal> {
    if loc.app.is_some() {
        return Err(Refusal::Duplicate);
    }
    let arg = d.arg(0);
    let mut spec = AppSpec::parse(arg)?;
    spec.interface = interface;
    if let AppSource::File(path) = &spec.source {
        let full = d.resolve(path);
        if !Path::new(&full).is_file() {
            let reason = format!("file \"{full}\" does not exist");
            return Err(Invalid::value(arg, reason).into());
        }
        spec.source = AppSource::File(full);
    }
    // SAFETY: a location-level directive: `loc` is not the main
    // configuration, and `main` is dropped with the handler.
    let main = unsafe { d.main_conf() }?;
    if main.apps.is_empty() {
        main.environ = d.environ_sources()?;
    }
    let index = match main.apps.iter().position(|a| *a == spec) {
        Some(i) => i,
        None => {
            main.apps.push(spec);
            main.apps.len() - 1
        }
    };
    loc.app = Some(index);
    loc.asgi = interface == Interface::Asgi;
    loc.pass_at = Some(d.position());
    d.handle_location(Some(entry::content_handler))
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

struct WsgiThreads;

impl Set for WsgiThreads {
    type Conf = LocConf;

    fn set(d: &Directive, loc: &mut LocConf) -> Result<(), Refusal> {
        if loc.pool_set() {
            return Err(Refusal::Duplicate);
        }
        let spec = PoolSpec::parse(&d.args)?;
        // SAFETY: a location-level directive: `loc` is not the main
        // configuration, and `main` is dropped with the handler.
        let main = unsafe { d.main_conf() }?;
        loc.set_pool(spec.map(|spec| {
            main.pools.push(spec);
            main.pools.len() - 1
        }));
        Ok(())
    }
}

struct WsgiParam;

impl Set for WsgiParam {
    type Conf = LocConf;

    fn set(d: &Directive, loc: &mut LocConf) -> Result<(), Refusal> {
        let name = d.arg(0);
        if name.is_empty() {
            return Err(Invalid::value(name, "it must be a parameter name").into());
        }
        let if_not_empty = match d.args.get(2).map(String::as_str) {
            None => false,
            Some("if_not_empty") => true,
            Some(other) => {
                return Err(Invalid::parameter(other, "it must be \"if_not_empty\"").into())
            }
        };
        let value = d.complex_value(1)?;
        loc.add_param(Param {
            name: name.to_owned(),
            value,
            if_not_empty,
        });
        Ok(())
    }
}

struct WsgiPythonPath;

impl Set for WsgiPythonPath {
    type Conf = MainConf;

    fn set(d: &Directive, main: &mut MainConf) -> Result<(), Refusal> {
        for dir in &d.args {
            let full = d.resolve(dir);
            if !Path::new(&full).is_dir() {
                let reason = format!("directory \"{full}\" does not exist");
                return Err(Invalid::value(dir, reason).into());
            }
            main.python_path.push(full);
        }
        Ok(())
    }
}

struct WsgiPythonHome;

impl Set for WsgiPythonHome {
    type Conf = MainConf;

    fn set(d: &Directive, main: &mut MainConf) -> Result<(), Refusal> {
        if main.python_home.is_some() {
            return Err(Refusal::Duplicate);
        }
        let dir = d.arg(0);
        let full = d.resolve(dir);
        check_python_home(&full).map_err(|reason| Invalid::value(dir, reason))?;
        main.python_home = Some(full);
        Ok(())
    }
}

struct WsgiReadTimeout;

impl Set for WsgiReadTimeout {
    type Conf = LocConf;

    fn set(d: &Directive, loc: &mut LocConf) -> Result<(), Refusal> {
        let arg = d.arg(0);
        let ms = time_above_zero(arg, "it must be a time above 0, such as 30s or 2m")?;
        if !loc.set_read_timeout(ms) {
            return Err(Refusal::Duplicate);
        }
        // SAFETY: a location-level directive: `loc` is not the main
        // configuration, and `main` is dropped with the handler.
        let main = unsafe { d.main_conf() }?;
        let shortest = main.shortest_read_timeout.get_or_insert(ms);
        *shortest = (*shortest).min(ms);
        Ok(())
    }
}

struct WsgiStatus;

impl Set for WsgiStatus {
    type Conf = LocConf;

    fn set(d: &Directive, _loc: &mut LocConf) -> Result<(), Refusal> {
        // SAFETY: a location-level directive: `main` is dropped with the
        // handler; the core location configuration is nginx's.
        let main = unsafe { d.main_conf() }?;
        main.status = true;
        d.handle_location(Some(entry::status_handler))
    }
}

struct WsgiIgnoreHeaders;

impl Set for WsgiIgnoreHeaders {
    type Conf = LocConf;

    fn set(d: &Directive, loc: &mut LocConf) -> Result<(), Refusal> {
        if loc.ignore_headers_set {
            return Err(Refusal::Duplicate);
        }
        for name in &d.args {
            if !loc.ignore_headers.add(name) {
                let reason = format!(
                    "it must be one of {} (the other fields uwsgi_ignore_headers takes only matter to a cache, which ngx_wsgi does not have)",
                    IgnoreHeaders::known()
                );
                return Err(Invalid::value(name, reason).into());
            }
        }
        loc.ignore_headers_set = true;
        Ok(())
    }
}

struct WsgiMaxTempFileSize;

impl Set for WsgiMaxTempFileSize {
    type Conf = LocConf;

    fn set(d: &Directive, loc: &mut LocConf) -> Result<(), Refusal> {
        if loc.max_temp_file_size.is_some() {
            return Err(Refusal::Duplicate);
        }
        loc.max_temp_file_size = Some(size_or_zero(d.arg(0))?);
        Ok(())
    }
}

struct AsgiWebsocketMaxMessageSize;

impl Set for AsgiWebsocketMaxMessageSize {
    type Conf = LocConf;

    fn set(d: &Directive, loc: &mut LocConf) -> Result<(), Refusal> {
        if loc.websocket_max_message.is_some() {
            return Err(Refusal::Duplicate);
        }
        loc.websocket_max_message = Some(size(d.arg(0))?);
        Ok(())
    }
}

struct AsgiWebsocketPingInterval;

impl Set for AsgiWebsocketPingInterval {
    type Conf = LocConf;

    fn set(d: &Directive, loc: &mut LocConf) -> Result<(), Refusal> {
        if loc.websocket_ping.is_some() {
            return Err(Refusal::Duplicate);
        }
        let arg = d.arg(0);
        if arg == "off" {
            loc.websocket_ping = Some(0);
            return Ok(());
        }
        let ms = time_above_zero(arg, "it must be a time above 0, such as 20s or 1m, or off")?;
        loc.websocket_ping = Some(ms);
        Ok(())
    }
}

/// A time argument (nginx's units, ms by default) above 0; `reason` says
/// what the directive takes otherwise.
fn time_above_zero(arg: &str, reason: &str) -> Result<ngx_msec_t, Refusal> {
    let mut value = ngx_str_t {
        len: arg.len(),
        data: arg.as_ptr() as *mut u8,
    };
    // SAFETY: ngx_parse_time only reads the string (`arg` lives).
    let ms = unsafe { ngx_parse_time(&mut value, 0) };
    if ms == NGX_ERROR as ngx_int_t || ms <= 0 {
        return Err(Invalid::value(arg, reason).into());
    }
    Ok(ms as ngx_msec_t)
}

struct WsgiMaxRequests;

impl Set for WsgiMaxRequests {
    type Conf = MainConf;

    fn set(d: &Directive, main: &mut MainConf) -> Result<(), Refusal> {
        if main.max_requests.is_some() {
            return Err(Refusal::Duplicate);
        }
        main.max_requests = Some(max_requests(&d.args)?);
        Ok(())
    }
}

struct WsgiMaxRss;

impl Set for WsgiMaxRss {
    type Conf = MainConf;

    fn set(d: &Directive, main: &mut MainConf) -> Result<(), Refusal> {
        if main.max_rss.is_some() {
            return Err(Refusal::Duplicate);
        }
        main.max_rss = Some(size(d.arg(0))?);
        Ok(())
    }
}

#[cfg(feature = "test-hooks")]
struct WsgiTestHook;

#[cfg(feature = "test-hooks")]
impl Set for WsgiTestHook {
    type Conf = LocConf;

    fn set(d: &Directive, loc: &mut LocConf) -> Result<(), Refusal> {
        let hooks = Hooks::parse(&d.args).map_err(|arg| {
            Invalid::value(&arg, "it must be one of the hooks in src/test_hooks.rs")
        })?;
        hooks.panic_if(Hook::PanicInDirective);
        // SAFETY: a location-level directive: `loc` is not the main
        // configuration, and `main` is dropped with the handler.
        let main = unsafe { d.main_conf() }?;
        loc.test_hooks = loc.test_hooks.union(hooks);
        main.test_hooks = main.test_hooks.union(hooks);
        Ok(())
    }
}
