//! CGI variables → WSGI environ (PEP 3333): the variables, `HTTP_*` keys
//! for headers, and the `wsgi.*` keys. Byte strings from the request become
//! latin-1 `str`.

use std::collections::HashMap;
use std::ffi::c_char;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use ngx::ffi::{ngx_process, NGX_PROCESS_SINGLE};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::cgi::{Known, VarName, Vars};

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
    env.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
    env.set_item(
        intern!(py, "wsgi.url_scheme"),
        if https { "https" } else { "http" },
    )?;
    env.set_item(intern!(py, "wsgi.multithread"), multithread)?;
    // SAFETY: ngx_process is set once, before workers start; read-only here.
    let multiprocess = unsafe { ngx_process != NGX_PROCESS_SINGLE as ngx::ffi::ngx_uint_t };
    env.set_item(intern!(py, "wsgi.multiprocess"), multiprocess)?;
    env.set_item(intern!(py, "wsgi.run_once"), false)?;
    env.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    env.set_item(intern!(py, "wsgi.asynchronous"), true)?;
    let file_wrapper = py.import("wsgiref.util")?.getattr("FileWrapper")?;
    env.set_item(intern!(py, "wsgi.file_wrapper"), file_wrapper)?;
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
    let env = template(py, vars.https, extras.multithread)?.copy()?;
    env.set_item(intern!(py, "wsgi.input"), extras.input)?;
    env.set_item(intern!(py, "wsgi.errors"), extras.errors)?;
    env.set_item(intern!(py, "x-wsgiorg.flush"), extras.flush)?;
    for (name, value) in vars.iter() {
        let value = latin1(py, value)?;
        match name {
            VarName::Known(known) => env.set_item(known_key(py, known), value)?,
            VarName::Header(name) => env.set_item(header_key(py, name), value)?,
            VarName::Param(name) => env.set_item(name, value)?,
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
fn cgi_name(name: &[u8]) -> String {
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
