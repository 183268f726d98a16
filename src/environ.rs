//! Request → WSGI environ (PEP 3333): CGI variables, HTTP_* headers, and the
//! `wsgi.*` keys. Byte strings from the request become latin-1 `str`.

use std::ffi::c_char;

use ngx::ffi::{
    ngx_connection_local_sockaddr, ngx_http_request_t, ngx_inet_get_port, ngx_list_part_t,
    ngx_process, ngx_str_t, ngx_table_elt_t, NGX_PROCESS_SINGLE,
};
use ngx::http::{HttpModuleServerConf, NgxHttpCoreModule};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

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
pub struct Extras<'py> {
    pub input: Bound<'py, PyAny>,
    pub body_len: usize,
    pub errors: Bound<'py, PyAny>,
}

/// Builds the environ for `r`.
///
/// # Safety
/// `r` must be a live main request whose body has been read.
pub unsafe fn build<'py>(
    py: Python<'py>,
    r: *mut ngx_http_request_t,
    extras: Extras<'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let env = PyDict::new(py);
    let set = |key: &str, value: &[u8]| env.set_item(key, latin1(py, value)?);
    let c = (*r).connection;
    let https = !(*c).ssl.is_null();

    set("REQUEST_METHOD", bytes(&(*r).method_name))?;
    set("SCRIPT_NAME", b"")?;
    set("PATH_INFO", bytes(&(*r).uri))?;
    set("QUERY_STRING", bytes(&(*r).args))?;
    set("REQUEST_URI", bytes(&(*r).unparsed_uri))?;
    let protocol = bytes(&(*r).http_protocol);
    set(
        "SERVER_PROTOCOL",
        if protocol.is_empty() {
            b"HTTP/0.9"
        } else {
            protocol
        },
    )?;

    let hi = &(*r).headers_in;
    if !hi.content_type.is_null() {
        set("CONTENT_TYPE", bytes(&(*hi.content_type).value))?;
    }
    if hi.content_length_n >= 0 || hi.chunked() != 0 {
        set("CONTENT_LENGTH", extras.body_len.to_string().as_bytes())?;
    }

    // SERVER_NAME: the server block's name, as uwsgi_params has it; a
    // catch-all server has none, then the Host the client asked for.
    let server_name = NgxHttpCoreModule::server_conf(&*r)
        .map(|cscf| bytes(&cscf.server_name))
        .unwrap_or(&[]);
    let server_name = if server_name.is_empty() || server_name == b"_" {
        bytes(&hi.server)
    } else {
        server_name
    };
    set("SERVER_NAME", server_name)?;
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
    set("SERVER_PORT", server_port.to_string().as_bytes())?;
    set("REMOTE_ADDR", bytes(&(*c).addr_text))?;
    set(
        "REMOTE_PORT",
        ngx_inet_get_port((*c).sockaddr).to_string().as_bytes(),
    )?;
    if https {
        set("HTTPS", b"on")?;
    }

    add_http_headers(py, &env, &hi.headers.part)?;

    env.set_item("wsgi.version", (1, 0))?;
    env.set_item("wsgi.url_scheme", if https { "https" } else { "http" })?;
    env.set_item("wsgi.input", extras.input)?;
    env.set_item("wsgi.errors", extras.errors)?;
    env.set_item("wsgi.multithread", false)?;
    env.set_item(
        "wsgi.multiprocess",
        ngx_process != NGX_PROCESS_SINGLE as ngx::ffi::ngx_uint_t,
    )?;
    env.set_item("wsgi.run_once", false)?;
    env.set_item("wsgi.input_terminated", true)?;
    Ok(env)
}

/// Adds `HTTP_*` for each request header; repeated headers are joined with
/// ", " (Cookie with "; ", as HTTP/2 splits it). Content-Type and
/// Content-Length appear only as CONTENT_TYPE and CONTENT_LENGTH.
///
/// # Safety
/// `part` must be the first part of a live ngx_list_t of ngx_table_elt_t.
unsafe fn add_http_headers(
    py: Python<'_>,
    env: &Bound<'_, PyDict>,
    mut part: *const ngx_list_part_t,
) -> PyResult<()> {
    let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
    while !part.is_null() {
        let elts =
            std::slice::from_raw_parts((*part).elts as *const ngx_table_elt_t, (*part).nelts);
        for h in elts {
            if h.hash == 0 {
                continue;
            }
            let name = bytes(&h.key);
            if name.eq_ignore_ascii_case(b"content-type")
                || name.eq_ignore_ascii_case(b"content-length")
            {
                continue;
            }
            let key = cgi_name(name);
            let value = bytes(&h.value);
            match seen.iter_mut().find(|(k, _)| *k == key) {
                Some((_, joined)) => {
                    let sep: &[u8] = if key == "HTTP_COOKIE" { b"; " } else { b", " };
                    joined.extend_from_slice(sep);
                    joined.extend_from_slice(value);
                }
                None => seen.push((key, value.to_vec())),
            }
        }
        part = (*part).next;
    }
    for (key, value) in seen {
        env.set_item(key, latin1(py, &value)?)?;
    }
    Ok(())
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
