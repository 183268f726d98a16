//! Request → WSGI environ (PEP 3333): CGI variables, HTTP_* headers, and the
//! `wsgi.*` keys. Byte strings from the request become latin-1 `str`.

use std::collections::HashMap;
use std::ffi::c_char;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use ngx::ffi::{
    ngx_connection_local_sockaddr, ngx_http_complex_value, ngx_http_request_t, ngx_inet_get_port,
    ngx_int_t, ngx_list_part_t, ngx_process, ngx_str_t, ngx_table_elt_t, NGX_OK,
    NGX_PROCESS_SINGLE,
};
use ngx::http::{HttpModuleServerConf, NgxHttpCoreModule};
use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::conf::Param;

/// The keys every environ has with the same value, for http and for https:
/// each request starts from a copy (one table copy instead of ten inserts).
static TEMPLATES: PyOnceLock<[Py<PyDict>; 2]> = PyOnceLock::new();

fn template(py: Python<'_>, https: bool) -> PyResult<&Bound<'_, PyDict>> {
    let templates = TEMPLATES.get_or_try_init(py, || -> PyResult<_> {
        Ok([
            new_template(py, false)?.unbind(),
            new_template(py, true)?.unbind(),
        ])
    })?;
    Ok(templates[https as usize].bind(py))
}

fn new_template(py: Python<'_>, https: bool) -> PyResult<Bound<'_, PyDict>> {
    // Sized for the whole environ: copies keep the table's size.
    let env = new_dict(py, 40)?;
    env.set_item(intern!(py, "SCRIPT_NAME"), intern!(py, ""))?;
    env.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
    env.set_item(
        intern!(py, "wsgi.url_scheme"),
        if https { "https" } else { "http" },
    )?;
    env.set_item(intern!(py, "wsgi.multithread"), false)?;
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

/// # Safety
/// `s` must point at `len` readable bytes, or be empty.
unsafe fn bytes(s: &ngx_str_t) -> &[u8] {
    if s.len == 0 || s.data.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(s.data, s.len)
    }
}

/// The parts of the environ that come from outside the request.
pub struct Extras<'py, 'a> {
    pub input: Bound<'py, PyAny>,
    pub body_len: usize,
    pub errors: Bound<'py, PyAny>,
    pub flush: Bound<'py, PyAny>,
    /// The location's `wsgi_param`s.
    pub params: &'a [Param],
}

/// Builds the environ for `r`.
///
/// # Safety
/// `r` must be a live main request whose body has been read.
pub unsafe fn build<'py>(
    py: Python<'py>,
    r: *mut ngx_http_request_t,
    extras: Extras<'py, '_>,
) -> PyResult<Bound<'py, PyDict>> {
    let c = (*r).connection;
    let https = !(*c).ssl.is_null();
    let env = template(py, https)?.copy()?;
    let set = |key: &Bound<'py, PyString>, value: &[u8]| env.set_item(key, latin1(py, value)?);

    set(intern!(py, "REQUEST_METHOD"), bytes(&(*r).method_name))?;
    set(intern!(py, "PATH_INFO"), bytes(&(*r).uri))?;
    set(intern!(py, "QUERY_STRING"), bytes(&(*r).args))?;
    set(intern!(py, "REQUEST_URI"), bytes(&(*r).unparsed_uri))?;
    let protocol = bytes(&(*r).http_protocol);
    set(
        intern!(py, "SERVER_PROTOCOL"),
        if protocol.is_empty() {
            b"HTTP/0.9"
        } else {
            protocol
        },
    )?;

    let hi = &(*r).headers_in;
    if !hi.content_type.is_null() {
        set(
            intern!(py, "CONTENT_TYPE"),
            bytes(&(*hi.content_type).value),
        )?;
    }
    if hi.content_length_n >= 0 || hi.chunked() != 0 {
        set(
            intern!(py, "CONTENT_LENGTH"),
            extras.body_len.to_string().as_bytes(),
        )?;
    }

    // SERVER_NAME: the server block's name, as uwsgi_params has it; a
    // catch-all server has none, then the Host the client asked for.
    let cscf = NgxHttpCoreModule::server_conf(&*r)
        .ok_or_else(|| PyRuntimeError::new_err("no server configuration"))?;
    let server_name = bytes(&cscf.server_name);
    let server_name = if server_name.is_empty() || server_name == b"_" {
        bytes(&hi.server)
    } else {
        server_name
    };
    set(intern!(py, "SERVER_NAME"), server_name)?;
    let local_port = if ngx_connection_local_sockaddr(c, std::ptr::null_mut(), 0) == 0 {
        ngx_inet_get_port((*c).local_sockaddr)
    } else {
        0
    };
    let server_port = match local_port {
        // A unix socket has no port: give the scheme's, for URL building.
        0 if https => 443,
        0 => 80,
        p => p,
    };
    set(
        intern!(py, "SERVER_PORT"),
        server_port.to_string().as_bytes(),
    )?;
    set(intern!(py, "REMOTE_ADDR"), bytes(&(*c).addr_text))?;
    set(
        intern!(py, "REMOTE_PORT"),
        ngx_inet_get_port((*c).sockaddr).to_string().as_bytes(),
    )?;
    if https {
        set(intern!(py, "HTTPS"), b"on")?;
    }

    let underscores = cscf.underscores_in_headers != 0;
    add_http_headers(py, &env, &hi.headers.part, underscores)?;

    env.set_item(intern!(py, "wsgi.input"), extras.input)?;
    env.set_item(intern!(py, "wsgi.errors"), extras.errors)?;
    env.set_item(intern!(py, "x-wsgiorg.flush"), extras.flush)?;
    apply_params(py, r, &env, extras.params)?;
    Ok(env)
}

/// Sets the location's `wsgi_param`s, which override what the module set.
/// A `SCRIPT_NAME` (the prefix an app is mounted under) is cut from the
/// front of `PATH_INFO`, unless a `wsgi_param` sets `PATH_INFO` too.
///
/// # Safety
/// `r` must be a live request; `params` from its location's configuration.
unsafe fn apply_params(
    py: Python<'_>,
    r: *mut ngx_http_request_t,
    env: &Bound<'_, PyDict>,
    params: &[Param],
) -> PyResult<()> {
    let mut script_name: Option<Vec<u8>> = None;
    let mut path_info_set = false;
    for param in params {
        let mut value = ngx_str_t::empty();
        if ngx_http_complex_value(r, param.value, &mut value) != NGX_OK as ngx_int_t {
            return Err(PyRuntimeError::new_err(format!(
                "evaluating wsgi_param {} failed",
                param.name
            )));
        }
        let mut value = bytes(&value);
        if param.if_not_empty && value.is_empty() {
            continue;
        }
        match param.name.as_str() {
            "SCRIPT_NAME" => {
                // SCRIPT_NAME never ends in "/": the "/" starts PATH_INFO.
                while let [rest @ .., b'/'] = value {
                    value = rest;
                }
                script_name = Some(value.to_vec());
            }
            "PATH_INFO" => path_info_set = true,
            _ => {}
        }
        env.set_item(param.name.as_str(), latin1(py, value)?)?;
    }
    if let (Some(prefix), false) = (script_name, path_info_set) {
        let path = bytes(&(*r).uri);
        if let Some(rest) = mounted_path(path, &prefix) {
            env.set_item("PATH_INFO", latin1(py, rest)?)?;
        }
    }
    Ok(())
}

/// The part of `path` after the mount point `prefix`, if `path` is under it.
fn mounted_path<'a>(path: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

/// Adds `HTTP_*` for each request header; repeated headers are joined with
/// ", " (Cookie with "; ", as HTTP/2 splits it). Content-Type and
/// Content-Length appear only as CONTENT_TYPE and CONTENT_LENGTH. A name
/// with "_" is passed only under `underscores_in_headers on`: otherwise
/// `X_User` could pose as `X-User`, which maps to the same key.
///
/// # Safety
/// `part` must be the first part of a live ngx_list_t of ngx_table_elt_t.
unsafe fn add_http_headers(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    mut part: *const ngx_list_part_t,
    underscores: bool,
) -> PyResult<()> {
    // (lower-case name, value) of each header to pass, in request order.
    let mut headers: Vec<(&[u8], &[u8])> = Vec::with_capacity(16);
    while !part.is_null() {
        let elts =
            std::slice::from_raw_parts((*part).elts as *const ngx_table_elt_t, (*part).nelts);
        for h in elts {
            if h.hash == 0 || h.lowcase_key.is_null() {
                continue;
            }
            // nginx keeps a lower-case copy of every request header name.
            let name = std::slice::from_raw_parts(h.lowcase_key, h.key.len);
            if (!underscores && name.contains(&b'_'))
                || name == b"content-type"
                || name == b"content-length"
            {
                continue;
            }
            headers.push((name, bytes(&h.value)));
        }
        part = (*part).next;
    }
    let mut keys = HEADER_KEYS.lock().unwrap_or_else(|p| p.into_inner());
    let keys = keys.get_or_insert_with(HashMap::default);
    for (i, &(name, value)) in headers.iter().enumerate() {
        if headers[..i].iter().any(|(n, _)| *n == name) {
            continue; // joined into the first one
        }
        let key = header_key(py, keys, name);
        let mut repeats = headers[i + 1..]
            .iter()
            .filter(|(n, _)| *n == name)
            .peekable();
        if repeats.peek().is_none() {
            env.set_item(key, latin1(py, value)?)?;
            continue;
        }
        let sep: &[u8] = if name == b"cookie" { b"; " } else { b", " };
        let mut joined = value.to_vec();
        for (_, more) in repeats {
            joined.extend_from_slice(sep);
            joined.extend_from_slice(more);
        }
        env.set_item(key, latin1(py, &joined)?)?;
    }
    Ok(())
}

/// Interned `HTTP_*` keys by lower-case header name: the same few headers
/// come with every request. Bounded, so odd names cannot grow it.
type HeaderKeys = HashMap<Vec<u8>, Py<PyString>, BuildHasherDefault<Fnv>>;
static HEADER_KEYS: Mutex<Option<HeaderKeys>> = Mutex::new(None);
const HEADER_KEYS_MAX: usize = 256;

fn header_key<'py>(py: Python<'py>, cache: &mut HeaderKeys, name: &[u8]) -> Bound<'py, PyString> {
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
    use super::{cgi_name, mounted_path};

    #[test]
    fn mount_points() {
        assert_eq!(mounted_path(b"/app/x/y", b"/app"), Some(&b"/x/y"[..]));
        assert_eq!(mounted_path(b"/app", b"/app"), Some(&b""[..]));
        assert_eq!(mounted_path(b"/application", b"/app"), None);
        assert_eq!(mounted_path(b"/other", b"/app"), None);
        assert_eq!(mounted_path(b"/x", b""), Some(&b"/x"[..]));
    }

    #[test]
    fn header_names() {
        assert_eq!(cgi_name(b"X-Forwarded-For"), "HTTP_X_FORWARDED_FOR");
        assert_eq!(cgi_name(b"host"), "HTTP_HOST");
    }
}
