//! CPython in each worker: start-up from the http configuration, sys.path and
//! virtualenv, the cache of loaded apps, and tracebacks written to error_log.

use std::ffi::{c_char, CStr, CString};
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use ngx::ffi::{ngx_log_t, ngx_uint_t, NGX_LOG_ALERT, NGX_LOG_ERR, NGX_LOG_NOTICE};
use ngx::ngx_log_error;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyModule};

use super::watch;
use crate::config::{AppSource, AppSpec, MainConf};
use crate::errlog::LogTo;

/// The interpreter the module was built for: sys.executable when no
/// virtualenv is configured.
const BUILD_PYTHON: &str = env!("WSGI_BUILD_PYTHON");

static READY: AtomicBool = AtomicBool::new(false);

/// Why Python did not start in this worker, for the error of each request.
static START_FAILURE: OnceLock<String> = OnceLock::new();

/// Loaded apps, by `MainConf::apps` index. An app that failed to import stays
/// empty, so the next request tries again. A PyOnceLock loads each once even
/// when pool threads ask at the same time (the others wait without the GIL).
static APPS: OnceLock<Vec<PyOnceLock<Py<PyAny>>>> = OnceLock::new();

/// True once CPython started in this worker.
pub fn ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Why Python is not running in this worker, if it is not.
pub fn start_failure() -> &'static str {
    START_FAILURE
        .get()
        .map(String::as_str)
        .unwrap_or("it was not started")
}

/// Starts CPython in this worker. A failure is logged and leaves the worker
/// running without Python: its WSGI requests get 500, it is not respawned.
pub fn start(main: &MainConf, log: *mut ngx_log_t) {
    // SAFETY: called once per worker process, from init_process, before any
    // other Python call; no other thread exists yet.
    let started = unsafe { initialize(main) };
    if let Err(e) = started {
        ngx_log_error!(NGX_LOG_ALERT, log, "wsgi: Python could not start: {e}");
        let _ = START_FAILURE.set(e);
        return;
    }
    let prepared = Python::attach(|py| prepare(py, main));
    if let Err(e) = prepared {
        Python::attach(|py| {
            log_exception(
                py,
                &e,
                &LogTo::Worker,
                NGX_LOG_ALERT as _,
                "wsgi: setting up sys.path failed",
            )
        });
        let _ = START_FAILURE.set(format!("setting up sys.path failed: {e}"));
        return;
    }
    let _ = APPS.set(main.apps.iter().map(|_| PyOnceLock::new()).collect());
    READY.store(true, Ordering::Release);
    let version = Python::version_str();
    ngx_log_error!(NGX_LOG_NOTICE, log, "wsgi: Python {version} started");
}

/// Runs the app's atexit hooks when the worker exits. The interpreter is not
/// finalized: that would wait for non-daemon threads an app may have left.
pub fn stop() {
    if !ready() {
        return;
    }
    if watch::stuck_calls() > 0 {
        // A stuck thread may hold the GIL for good: the hooks could wait
        // forever.
        LogTo::Worker.write(
            NGX_LOG_ALERT as _,
            "wsgi: an app is stuck in a call; the apps' atexit hooks are not run",
        );
        return;
    }
    Python::attach(|py| {
        let run = py
            .import("atexit")
            .and_then(|m| m.call_method0("_run_exitfuncs"));
        if let Err(e) = run {
            log_exception(
                py,
                &e,
                &LogTo::Worker,
                NGX_LOG_ERR as _,
                "wsgi: atexit hook failed",
            );
        }
    });
}

/// # Safety
/// Must run before any other CPython call in the process, once.
unsafe fn initialize(main: &MainConf) -> Result<(), String> {
    let mut config = MaybeUninit::<ffi::PyConfig>::uninit();
    ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
    let config = config.as_mut_ptr();
    let result = configure_and_start(config, main);
    ffi::PyConfig_Clear(config);
    result?;
    // The worker's thread holds the GIL after start-up; release it so that
    // Python threads an app starts can run while nginx waits for events.
    ffi::PyEval_SaveThread();
    Ok(())
}

/// # Safety
/// `config` must be initialized by PyConfig_InitPythonConfig.
unsafe fn configure_and_start(config: *mut ffi::PyConfig, main: &MainConf) -> Result<(), String> {
    // nginx owns signals; CPython must not install handlers for them.
    (*config).install_signal_handlers = 0;
    (*config).parse_argv = 0;
    match &main.python_home {
        Some(home) if Path::new(home).join("pyvenv.cfg").is_file() => {
            // A virtualenv is found through its interpreter's path, as when
            // its bin/python runs: getpath reads pyvenv.cfg next to it.
            let exe = format!("{home}/bin/python3");
            set_string(config, &raw mut (*config).program_name, &exe)?;
            set_string(config, &raw mut (*config).executable, &exe)?;
        }
        Some(home) => {
            set_string(config, &raw mut (*config).program_name, BUILD_PYTHON)?;
            set_string(config, &raw mut (*config).home, home)?;
        }
        None => set_string(config, &raw mut (*config).program_name, BUILD_PYTHON)?,
    }
    status(ffi::Py_InitializeFromConfig(config))
}

/// # Safety
/// `config` and `field` must belong to one initialized PyConfig.
unsafe fn set_string(
    config: *mut ffi::PyConfig,
    field: *mut *mut libc::wchar_t,
    value: &str,
) -> Result<(), String> {
    let value = CString::new(value).map_err(|_| format!("{value:?} contains a NUL byte"))?;
    status(ffi::PyConfig_SetBytesString(config, field, value.as_ptr()))
}

fn status(status: ffi::PyStatus) -> Result<(), String> {
    // SAFETY: PyStatus_Exception only reads the struct passed by value.
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return Ok(());
    }
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: CPython's status strings are static NUL-terminated C strings.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let (func, msg) = (text(status.func), text(status.err_msg));
    Err(if func.is_empty() {
        msg
    } else {
        format!("{func}: {msg}")
    })
}

fn prepare(py: Python<'_>, main: &MainConf) -> PyResult<()> {
    // threading names the thread that first imports it the main thread:
    // that must be nginx's, not a pool thread that imports an app.
    py.import("threading")?;
    let sys_path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    for (i, dir) in main.python_path.iter().enumerate() {
        sys_path.insert(i, dir)?;
    }
    Ok(())
}

/// Imports every app at the worker's start. One that fails is logged, and
/// tried again at its first request.
pub fn import_apps(apps: &[AppSpec]) {
    Python::attach(|py| {
        for (index, spec) in apps.iter().enumerate() {
            if let Err(e) = app(py, index, spec) {
                let what = format!(
                    "wsgi: cannot load app \"{}\" at the worker's start (it is tried again at its first request)",
                    spec.display()
                );
                log_exception(py, &e, &LogTo::Worker, NGX_LOG_ERR as _, &what);
            }
        }
    });
}

/// The loaded callable for app `index`, importing it on first use.
pub fn app<'py>(py: Python<'py>, index: usize, spec: &AppSpec) -> PyResult<Bound<'py, PyAny>> {
    let slot = APPS
        .get()
        .and_then(|apps| apps.get(index))
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("wsgi: unknown app"))?;
    let app = slot.get_or_try_init(py, || load(py, index, spec).map(Bound::unbind))?;
    Ok(app.bind(py).clone())
}

fn load<'py>(py: Python<'py>, index: usize, spec: &AppSpec) -> PyResult<Bound<'py, PyAny>> {
    let module = match &spec.source {
        AppSource::Module(name) => py.import(name.as_str())?,
        AppSource::File(path) => load_file(py, &format!("_wsgi_app_{index}"), path)?,
    };
    let mut object = module.into_any();
    for part in spec.callable.split('.') {
        object = object.getattr(part)?;
    }
    if !object.is_callable() {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{} is not callable (it is a {})",
            spec.display(),
            object.get_type().name()?
        )));
    }
    Ok(object)
}

fn load_file<'py>(py: Python<'py>, name: &str, path: &str) -> PyResult<Bound<'py, PyModule>> {
    let util = py.import("importlib.util")?;
    let spec = util.call_method1("spec_from_file_location", (name, path))?;
    let module = util.call_method1("module_from_spec", (&spec,))?;
    let modules = py.import("sys")?.getattr("modules")?;
    modules.set_item(name, &module)?;
    if let Err(e) = spec
        .getattr("loader")?
        .call_method1("exec_module", (&module,))
    {
        let _ = modules.del_item(name);
        return Err(e);
    }
    Ok(module.cast_into::<PyModule>()?)
}

/// Writes `err` with its traceback, under the heading `what`, split into
/// messages that fit nginx's error message limit.
pub fn log_exception(py: Python<'_>, err: &PyErr, log: &LogTo, level: ngx_uint_t, what: &str) {
    log.write_long(level, what, &format_exception(py, err));
}

fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            let args = (err.get_type(py), err.value(py), err.traceback(py));
            tb.call_method1("format_exception", args)
        })
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat(),
        Err(_) => err.to_string(),
    }
}
