//! Request → the ASGI `scope` of an HTTP request (ASGI 3.0, HTTP spec
//! 2.4), read from nginx's structures on the event loop.

use ngx::ffi::{ngx_connection_local_sockaddr, ngx_http_request_t, ngx_inet_get_port};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::config::Param;
use crate::nginx::cgi::{self, bytes};

/// The scope of request `r`, with its location's `asgi_param`s: SCRIPT_NAME
/// is the `root_path`, HTTPS (on) makes the scheme https; every parameter
/// is in `scope["extensions"]["nginx.params"]`.
///
/// # Safety
/// `r` must be a live main request; `params` from its location.
pub unsafe fn build<'py>(
    py: Python<'py>,
    r: *mut ngx_http_request_t,
    params: &[Param],
) -> Result<Bound<'py, PyDict>, String> {
    let py_err = |e: PyErr| e.to_string();
    let c = (*r).connection;
    let scope = PyDict::new(py);
    let set = |key: &str, value: Bound<'py, PyAny>| scope.set_item(key, value).map_err(py_err);

    set("type", PyString::intern(py, "http").into_any())?;
    let version = match (*r).http_version {
        v if v >= 3000 => "3",
        v if v >= 2000 => "2",
        1001 => "1.1",
        _ => "1.0",
    };
    set("http_version", PyString::intern(py, version).into_any())?;
    let method = String::from_utf8_lossy(bytes(&(*r).method_name));
    set("method", PyString::new(py, &method).into_any())?;

    let mut root_path: &[u8] = b"";
    let mut https = !(*c).ssl.is_null();
    let extra = PyDict::new(py);
    for param in params {
        let Some(value) = cgi::param_value(r, param)? else {
            continue;
        };
        match param.name.as_str() {
            "SCRIPT_NAME" => {
                root_path = value;
                while let [rest @ .., b'/'] = root_path {
                    root_path = rest;
                }
            }
            "HTTPS" => https = value.eq_ignore_ascii_case(b"on") || value == b"1",
            _ => {}
        }
        let value = String::from_utf8_lossy(value);
        extra
            .set_item(&param.name, value.as_ref())
            .map_err(py_err)?;
    }
    let scheme = if https { "https" } else { "http" };
    set("scheme", PyString::intern(py, scheme).into_any())?;

    // nginx's uri is the path decoded (and normalized); raw_path as sent.
    let path = String::from_utf8_lossy(bytes(&(*r).uri));
    set("path", PyString::new(py, &path).into_any())?;
    let unparsed = bytes(&(*r).unparsed_uri);
    let raw_path = unparsed.split(|&b| b == b'?').next().unwrap_or_default();
    set("raw_path", PyBytes::new(py, raw_path).into_any())?;
    set(
        "query_string",
        PyBytes::new(py, bytes(&(*r).args)).into_any(),
    )?;
    let root_path = String::from_utf8_lossy(root_path);
    set("root_path", PyString::new(py, &root_path).into_any())?;

    let headers = PyList::empty(py);
    for (name, value) in cgi::request_headers(r) {
        let pair =
            PyTuple::new(py, [PyBytes::new(py, name), PyBytes::new(py, value)]).map_err(py_err)?;
        headers.append(pair).map_err(py_err)?;
    }
    set("headers", headers.into_any())?;

    let client_host = String::from_utf8_lossy(bytes(&(*c).addr_text));
    let client_port = ngx_inet_get_port((*c).sockaddr);
    let client = (client_host.as_ref(), client_port)
        .into_pyobject(py)
        .map_err(py_err)?;
    set("client", client.into_any())?;

    if ngx_connection_local_sockaddr(c, std::ptr::null_mut(), 0) == 0 {
        let sa = (*c).local_sockaddr;
        let server = match cgi::ip_address(sa) {
            Some(ip) => (ip.to_string(), Some(ngx_inet_get_port(sa))),
            // A unix socket: its path, and no port.
            None => (
                String::from_utf8_lossy(bytes(&(*(*c).listening).addr_text)).into_owned(),
                None,
            ),
        };
        set(
            "server",
            server.into_pyobject(py).map_err(py_err)?.into_any(),
        )?;
    }

    let extensions = PyDict::new(py);
    extensions
        .set_item("http.response.trailers", PyDict::new(py))
        .map_err(py_err)?;
    extensions
        .set_item("http.response.pathsend", PyDict::new(py))
        .map_err(py_err)?;
    extensions.set_item("nginx.params", extra).map_err(py_err)?;
    set("extensions", extensions.into_any())?;
    Ok(scope)
}
