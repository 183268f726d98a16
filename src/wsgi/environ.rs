//! CGI variables → WSGI environ (PEP 3333): the variables, `HTTP_*` keys
//! for headers, and the `wsgi.*` keys. Byte strings from the request become
//! latin-1 `str`.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_char;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use ngx::ffi::{ngx_process, NGINX_VER, NGX_PROCESS_SINGLE};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::file_wrapper::FileWrapper;
use crate::vars::{Known, VarName, Vars};

/// The keys every environ has with the same value, by scheme (http, https)
/// and mode (inline, threads): each request starts from a copy (one table
/// copy instead of ten inserts).
static TEMPLATES: PyOnceLock<[Py<PyDict>; 4]> = PyOnceLock::new();

fn template(py: Python<'_>, https: bool, multithread: bool) -> PyResult<&Bound<'_, PyDict>> {
    let templates = TEMPLATES.get_or_try_init(py, || -> PyResult<_> {
        Ok([
            new_template(py, false, false)?.unbind(),
            new_template(py, true, false)?.unbind(),
            new_template(py, false, true)?.unbind(),
            new_template(py, true, true)?.unbind(),
        ])
    })?;
    Ok(templates[https as usize + 2 * multithread as usize].bind(py))
}

fn new_template(py: Python<'_>, https: bool, multithread: bool) -> PyResult<Bound<'_, PyDict>> {
    // Sized for the whole environ: copies keep the table's size.
    let env = new_dict(py, 40)?;
    env.set_item(intern!(py, "SCRIPT_NAME"), intern!(py, ""))?;
    // As nginx's fastcgi_params has them (`nginx/$nginx_version`): the
    // nginx that loads the module is the one it was built against.
    let software = NGINX_VER.to_str().unwrap_or("nginx");
    env.set_item(intern!(py, "SERVER_SOFTWARE"), software)?;
    env.set_item(intern!(py, "GATEWAY_INTERFACE"), intern!(py, "CGI/1.1"))?;
    let scheme = if https { "https" } else { "http" };
    env.set_item(intern!(py, "REQUEST_SCHEME"), scheme)?;
    env.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
    env.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    env.set_item(intern!(py, "wsgi.multithread"), multithread)?;
    // SAFETY: ngx_process is set once, before workers start; read-only here.
    let multiprocess = unsafe { ngx_process != NGX_PROCESS_SINGLE as ngx::ffi::ngx_uint_t };
    env.set_item(intern!(py, "wsgi.multiprocess"), multiprocess)?;
    env.set_item(intern!(py, "wsgi.run_once"), false)?;
    env.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    env.set_item(intern!(py, "wsgi.asynchronous"), true)?;
    env.set_item(
        intern!(py, "wsgi.file_wrapper"),
        py.get_type::<FileWrapper>(),
    )?;
    Ok(env)
}

extern "C" {
    // CPython's presized dict constructor: exported by libpython 3.x, not
    // declared by pyo3-ffi because it is not part of the public C API.
    fn _PyDict_NewPresized(minused: ffi::Py_ssize_t) -> *mut ffi::PyObject;
}

/// An empty dict with room for `n` items: the environ never grows it.
fn new_dict(py: Python<'_>, n: usize) -> PyResult<Bound<'_, PyDict>> {
    // SAFETY: _PyDict_NewPresized returns a new reference or NULL with an
    // exception set; both are handled by from_owned_ptr_or_err.
    unsafe {
        let d = _PyDict_NewPresized(n as ffi::Py_ssize_t);
        Ok(Bound::from_owned_ptr_or_err(py, d)?.cast_into_unchecked())
    }
}

/// A `str` holding `bytes` decoded as latin-1, as PEP 3333 wants for
/// "native strings" that come from the wire.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: the pointer and length describe `bytes`; latin-1 decoding
    // accepts every byte, and a NULL result is turned into the raised error.
    unsafe {
        let obj = ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr() as *const c_char,
            bytes.len() as ffi::Py_ssize_t,
            std::ptr::null(),
        );
        Ok(Bound::from_owned_ptr_or_err(py, obj)?.cast_into_unchecked())
    }
}

/// The parts of the environ that come from outside the request.
pub struct Extras<'py> {
    pub input: Bound<'py, PyAny>,
    pub errors: Bound<'py, PyAny>,
    pub flush: Bound<'py, PyAny>,
    /// The app runs on a pool thread (`wsgi_threads`).
    pub multithread: bool,
}

/// Builds the environ from the request's CGI variables.
pub fn build<'py>(
    py: Python<'py>,
    vars: &Vars,
    extras: Extras<'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let env = server_template(py, vars, extras.multithread)?;
    put(&env, intern!(py, "wsgi.input"), &extras.input)?;
    put(&env, intern!(py, "wsgi.errors"), &extras.errors)?;
    put(&env, intern!(py, "x-wsgiorg.flush"), &extras.flush)?;
    // DOCUMENT_URI is the path PATH_INFO starts as: one str for both.
    let mut path: Option<(&[u8], Bound<'py, PyString>)> = None;
    for (name, value) in vars.iter() {
        match name {
            VarName::Known(Known::PathInfo) if path.is_none() => {
                let s = latin1(py, value)?;
                put(&env, known_key(py, Known::PathInfo), &s)?;
                path = Some((value, s));
            }
            VarName::Known(Known::DocumentUri) => match &path {
                Some((bytes, s)) if *bytes == value => {
                    put(&env, known_key(py, Known::DocumentUri), s)?
                }
                _ => put(&env, known_key(py, Known::DocumentUri), &latin1(py, value)?)?,
            },
            VarName::Known(known) if in_server_template(known) => {}
            VarName::Known(known) => put(&env, known_key(py, known), &latin1(py, value)?)?,
            VarName::Header(name) => put(&env, &header_key(py, name), &latin1(py, value)?)?,
            VarName::Param(name) => env.set_item(name, latin1(py, value)?)?,
        }
    }
    Ok(env)
}

/// `env[key] = value`, straight through the C API: pyo3's `set_item` takes
/// and drops a reference to each side, some 30 times per request here.
fn put<V>(
    env: &Bound<'_, PyDict>,
    key: &Bound<'_, PyString>,
    value: &Bound<'_, V>,
) -> PyResult<()> {
    // SAFETY: three live objects, borrowed for the call; PyDict_SetItem
    // takes its own references and returns -1 with an exception set.
    let rc = unsafe { ffi::PyDict_SetItem(env.as_ptr(), key.as_ptr(), value.as_ptr()) };
    if rc < 0 {
        return Err(PyErr::fetch(env.py()));
    }
    Ok(())
}

/// The variables whose values are the same for all the requests a server
/// block answers on one address in one location (and protocol): a
/// request's environ starts from a copy of a template that holds them, so
/// they cost neither a str nor a dict insert each time.
fn in_server_template(known: Known) -> bool {
    matches!(
        known,
        Known::ServerName
            | Known::ServerPort
            | Known::ServerAddr
            | Known::ServerProtocol
            | Known::DocumentRoot
    )
}

/// Templates with those values, by a key made of the values. Bounded, as
/// HEADER_KEYS: beyond it (a root with variables, say) a request's environ
/// is built without one. The lock is held where no Python code runs.
type ServerTemplates = Vec<(Box<[u8]>, Py<PyDict>)>;
static SERVER_TEMPLATES: Mutex<ServerTemplates> = Mutex::new(Vec::new());
const SERVER_TEMPLATES_MAX: usize = 32;

thread_local! {
    /// The key's buffer, taken while in use (a nested call gets another).
    static KEY: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A new environ holding the keys of the templates: the fixed ones and
/// this request's server values.
fn server_template<'py>(
    py: Python<'py>,
    vars: &Vars,
    multithread: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut key = KEY.with(Cell::take);
    key.clear();
    key.push(vars.https as u8 | (multithread as u8) << 1);
    for (name, value) in vars.iter() {
        if let VarName::Known(known) = name {
            if in_server_template(known) {
                key.push(known as u8);
                key.extend_from_slice(&(value.len() as u32).to_ne_bytes());
                key.extend_from_slice(value);
            }
        }
    }
    let cached = SERVER_TEMPLATES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(k, _)| **k == *key)
        .map(|(_, t)| t.clone_ref(py));
    let env = match cached {
        Some(template) => template.bind(py).copy(),
        None => new_server_template(py, vars, multithread, &key),
    };
    KEY.with(|k| k.set(key));
    env
}

fn new_server_template<'py>(
    py: Python<'py>,
    vars: &Vars,
    multithread: bool,
    key: &[u8],
) -> PyResult<Bound<'py, PyDict>> {
    let env = template(py, vars.https, multithread)?.copy()?;
    for (name, value) in vars.iter() {
        if let VarName::Known(known) = name {
            if in_server_template(known) {
                put(&env, known_key(py, known), &latin1(py, value)?)?;
            }
        }
    }
    let lock = || SERVER_TEMPLATES.lock().unwrap_or_else(|p| p.into_inner());
    if lock().len() < SERVER_TEMPLATES_MAX {
        // Copied without the lock: a copy may run the garbage collector.
        let template = env.copy()?.unbind();
        let mut templates = lock();
        if templates.len() < SERVER_TEMPLATES_MAX {
            templates.push((key.into(), template));
        }
    }
    Ok(env)
}

fn known_key(py: Python<'_>, known: Known) -> &Bound<'_, PyString> {
    match known {
        Known::RequestMethod => intern!(py, "REQUEST_METHOD"),
        Known::PathInfo => intern!(py, "PATH_INFO"),
        Known::QueryString => intern!(py, "QUERY_STRING"),
        Known::RequestUri => intern!(py, "REQUEST_URI"),
        Known::ServerProtocol => intern!(py, "SERVER_PROTOCOL"),
        Known::ContentType => intern!(py, "CONTENT_TYPE"),
        Known::ContentLength => intern!(py, "CONTENT_LENGTH"),
        Known::ServerName => intern!(py, "SERVER_NAME"),
        Known::ServerPort => intern!(py, "SERVER_PORT"),
        Known::RemoteAddr => intern!(py, "REMOTE_ADDR"),
        Known::RemotePort => intern!(py, "REMOTE_PORT"),
        Known::Https => intern!(py, "HTTPS"),
        Known::DocumentRoot => intern!(py, "DOCUMENT_ROOT"),
        Known::DocumentUri => intern!(py, "DOCUMENT_URI"),
        Known::ServerAddr => intern!(py, "SERVER_ADDR"),
        Known::RemoteUser => intern!(py, "REMOTE_USER"),
        Known::AuthType => intern!(py, "AUTH_TYPE"),
    }
}

/// Interned `HTTP_*` keys by lower-case header name: the same few headers
/// come with every request. Bounded, so odd names cannot grow it.
type HeaderKeys = HashMap<Vec<u8>, Py<PyString>, BuildHasherDefault<Fnv>>;
static HEADER_KEYS: Mutex<Option<HeaderKeys>> = Mutex::new(None);
const HEADER_KEYS_MAX: usize = 256;

/// The `HTTP_*` key of a header. The cache's lock is held only here, where
/// no Python code can run and give the GIL to a thread that wants the lock.
fn header_key<'py>(py: Python<'py>, name: &[u8]) -> Bound<'py, PyString> {
    let mut cache = HEADER_KEYS.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(HashMap::default);
    if let Some(key) = cache.get(name) {
        return key.bind(py).clone();
    }
    let key = PyString::intern(py, &cgi_name(name));
    if cache.len() < HEADER_KEYS_MAX {
        cache.insert(name.to_vec(), key.clone().unbind());
    }
    key
}

/// FNV-1a: header names are short and come from a bounded cache, so a
/// simple hash beats the default SipHash here.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// `X-Forwarded-For` → `HTTP_X_FORWARDED_FOR`.
pub fn cgi_name(name: &[u8]) -> String {
    let mut key = String::with_capacity(5 + name.len());
    key.push_str("HTTP_");
    key.extend(name.iter().map(|&b| match b {
        b'-' => '_',
        b => (b as char).to_ascii_uppercase(),
    }));
    key
}

#[cfg(test)]
mod tests {
    use super::cgi_name;

    #[test]
    fn header_names() {
        assert_eq!(cgi_name(b"X-Forwarded-For"), "HTTP_X_FORWARDED_FOR");
        assert_eq!(cgi_name(b"host"), "HTTP_HOST");
    }
}
