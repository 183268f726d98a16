//! Request → the ASGI `scope` of an HTTP or WebSocket request (ASGI 3.0,
//! HTTP and WebSocket spec 2.4), read from nginx's structures on the event
//! loop.

use ngx::ffi::{ngx_connection_local_sockaddr, ngx_http_request_t, ngx_inet_get_port};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::config::Param;
use crate::nginx::cgi::{self, bytes};

/// The version of ASGI's HTTP and WebSocket spec the scopes follow: 2.4,
/// the WebSocket disconnect's `reason`.
const SPEC_VERSION: &str = "2.4";

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
    websocket: bool,
) -> Result<Bound<'py, PyDict>, String> {
    let py_err = |e: PyErr| e.to_string();
    let c = (*r).connection;
    let scope = PyDict::new(py);
    let set = |key: &str, value: Bound<'py, PyAny>| scope.set_item(key, value).map_err(py_err);

    let kind = if websocket { "websocket" } else { "http" };
    set("type", PyString::intern(py, kind).into_any())?;
    let asgi = PyDict::new(py);
    asgi.set_item("version", PyString::intern(py, "3.0"))
        .and_then(|()| asgi.set_item("spec_version", PyString::intern(py, SPEC_VERSION)))
        .map_err(py_err)?;
    set("asgi", asgi.into_any())?;
    let version = match (*r).http_version {
        v if v >= 3000 => "3",
        v if v >= 2000 => "2",
        1001 => "1.1",
        _ => "1.0",
    };
    set("http_version", PyString::intern(py, version).into_any())?;
    if !websocket {
        let method = String::from_utf8_lossy(bytes(&(*r).method_name));
        set("method", PyString::new(py, &method).into_any())?;
    }

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
    let scheme = match (websocket, https) {
        (false, false) => "http",
        (false, true) => "https",
        (true, false) => "ws",
        (true, true) => "wss",
    };
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
    let subprotocols = PyList::empty(py);
    for (name, value) in cgi::request_headers(r) {
        if websocket && name == b"sec-websocket-protocol" {
            for protocol in value.split(|&b| b == b',') {
                let protocol = String::from_utf8_lossy(protocol.trim_ascii());
                if !protocol.is_empty() {
                    subprotocols.append(protocol.as_ref()).map_err(py_err)?;
                }
            }
        }
        let pair =
            PyTuple::new(py, [PyBytes::new(py, name), PyBytes::new(py, value)]).map_err(py_err)?;
        headers.append(pair).map_err(py_err)?;
    }
    set("headers", headers.into_any())?;
    if websocket {
        set("subprotocols", subprotocols.into_any())?;
    }

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
    let names: &[&str] = if websocket {
        &["websocket.http.response"]
    } else {
        &[
            "http.response.trailers",
            "http.response.pathsend",
            "http.response.zerocopysend",
        ]
    };
    for name in names {
        extensions
            .set_item(*name, PyDict::new(py))
            .map_err(py_err)?;
    }
    extensions.set_item("nginx.params", extra).map_err(py_err)?;
    set("extensions", extensions.into_any())?;
    Ok(scope)
}

/// The Sec-WebSocket-Key of a WebSocket handshake (RFC 6455 4.1): GET over
/// HTTP/1.1 with `Upgrade: websocket`, `Connection: upgrade` and version
/// 13. None for any other request, which is then an HTTP one.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn websocket_key(r: *mut ngx_http_request_t) -> Option<Vec<u8>> {
    if (*r).http_version != 1001 || bytes(&(*r).method_name) != b"GET" {
        return None;
    }
    let (mut upgrade, mut connection, mut version, mut key) = (false, false, false, None);
    for (name, value) in cgi::request_headers(r) {
        match name {
            b"upgrade" => upgrade |= value.trim_ascii().eq_ignore_ascii_case(b"websocket"),
            b"connection" => {
                connection |= value
                    .split(|&b| b == b',')
                    .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
            }
            b"sec-websocket-version" => version = value.trim_ascii() == b"13",
            b"sec-websocket-key" => key = Some(value.trim_ascii().to_vec()),
            _ => {}
        }
    }
    (upgrade && connection && version).then_some(key).flatten()
}
