//! `start_response` and `write()`: the app's status and headers, checked as
//! they arrive, and copied into nginx's `headers_out` when the first body
//! chunk (or the end) is ready.

use std::collections::VecDeque;

use ngx::ffi::{
    ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_list_push, ngx_pnalloc, ngx_str_t,
    ngx_table_elt_t, NGX_ERROR, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_OK,
};
use ngx::http::HttpModuleLocationConf;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::conf::Module;

/// A status and headers that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// `NNN reason`, as the app gave it.
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub content_length: Option<u64>,
}

#[pyclass(module = "ngx_wsgi")]
#[derive(Default)]
pub struct StartResponse {
    pub head: Option<Head>,
    pub headers_sent: bool,
    /// Data given to `write()` and not yet handed to nginx.
    pub written: VecDeque<Py<PyBytes>>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        slf: &Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let mut this = slf.try_borrow_mut()?;
        match exc_info.filter(|e| !e.is_none()) {
            // Too late to change the response: re-raise the app's exception.
            Some(exc) if this.headers_sent => return Err(PyErr::from_value(exc.get_item(1)?)),
            Some(_) => {}
            None if this.head.is_some() || this.headers_sent => {
                return Err(PyRuntimeError::new_err(
                    "start_response() called a second time without exc_info",
                ))
            }
            None => {}
        }
        this.head = Some(parse_head(status, headers)?);
        Ok(Write {
            owner: slf.clone().unbind(),
        })
    }
}

/// The `write()` callable start_response returns.
#[pyclass(module = "ngx_wsgi")]
pub struct Write {
    owner: Py<StartResponse>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!("write() takes bytes, not {}", type_name(data)))
        })?;
        self.owner
            .bind(py)
            .try_borrow_mut()?
            .written
            .push_back(bytes.clone().unbind());
        Ok(())
    }
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn parse_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<Head> {
    let status = status.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "status must be a str such as '200 OK', not {}",
            type_name(status)
        ))
    })?;
    let status_line = status.to_str()?.to_owned();
    let code = check_status(&status_line).map_err(PyValueError::new_err)?;

    let items: Vec<Bound<'_, PyAny>> = if let Ok(list) = headers.cast::<PyList>() {
        list.iter().collect()
    } else if let Ok(tuple) = headers.cast::<PyTuple>() {
        tuple.iter().collect()
    } else {
        return Err(PyTypeError::new_err(format!(
            "response headers must be a list of (name, value) tuples, not {}",
            type_name(headers)
        )));
    };
    let mut parsed = Vec::with_capacity(items.len());
    let mut content_length = None;
    for item in items {
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "response header {} is not a (name, value) tuple",
                    item.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?;
        let text = |i: usize, what: &str| -> PyResult<String> {
            let v = pair.get_item(i)?;
            v.cast::<PyString>()
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "response header {what} must be a str, not {} ({})",
                        type_name(&v),
                        v.repr().map(|r| r.to_string()).unwrap_or_default()
                    ))
                })?
                .to_str()
                .map(str::to_owned)
        };
        let name = text(0, "name")?;
        // Leading and trailing blanks are not part of a field value (RFC 9110
        // 5.5); Django, for one, puts a space before each Set-Cookie value.
        let value = text(1, "value")?.trim_matches([' ', '\t']).to_owned();
        check_header(&name, &value).map_err(PyValueError::new_err)?;
        if name.eq_ignore_ascii_case("content-length") {
            let n = value.trim().parse::<u64>().map_err(|_| {
                PyValueError::new_err(format!(
                    "response header Content-Length has a value that is not a number: {value:?}"
                ))
            })?;
            content_length = Some(n);
        }
        parsed.push((name, value));
    }
    Ok(Head {
        status: code,
        status_line,
        headers: parsed,
        content_length,
    })
}

/// The status code of `NNN reason`, or why the line is not one.
pub fn check_status(line: &str) -> Result<u16, String> {
    let b = line.as_bytes();
    let well_formed = b.len() >= 4
        && b[..3].iter().all(u8::is_ascii_digit)
        && b[3] == b' '
        && line
            .chars()
            .all(|c| c == '\t' || (' '..='~').contains(&c) || ('\u{a0}'..='\u{ff}').contains(&c));
    if !well_formed {
        return Err(format!(
            "status {line:?} is not of the form 'NNN reason' (e.g. '200 OK')"
        ));
    }
    let code: u16 = line[..3].parse().unwrap_or(0);
    if !(200..=599).contains(&code) {
        return Err(format!(
            "status {line:?}: a WSGI app may send codes 200 to 599"
        ));
    }
    Ok(code)
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// Why `name: value` must not be sent, if it must not.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    let is_tchar = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
            )
            || matches!(b, b'^' | b'_' | b'`' | b'|' | b'~')
    };
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!(
            "response header name {name:?} is not a valid HTTP token"
        ));
    }
    if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(format!(
            "response header {name:?} is hop-by-hop; a WSGI app must not send it (PEP 3333)"
        ));
    }
    let bad = |c: char| c > '\u{ff}' || (c < ' ' && c != '\t') || c == '\u{7f}';
    // Most values are printable ASCII: one pass over the bytes says so.
    if value
        .bytes()
        .all(|b| (b' '..0x7f).contains(&b) || b == b'\t')
    {
        return Ok(());
    }
    if let Some((i, c)) = value.chars().enumerate().find(|&(_, c)| bad(c)) {
        let kind = if c > '\u{ff}' {
            "a character outside latin-1"
        } else {
            "a control character"
        };
        return Err(format!(
            "response header {name:?} has {kind} ({c:?}) at position {i} of its value"
        ));
    }
    Ok(())
}

/// What the app's `X-Accel-Buffering: yes|no` asks for, if it sent one.
fn buffering_override(head: &Head) -> Option<bool> {
    let (_, value) = head
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-accel-buffering"))?;
    match value.to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// Copies `head` into `headers_out` and sends the header. `Ok(buffering)`
/// when the body follows (whether chunks may wait in nginx's filters);
/// `Err(rc)` when the request ends here: a header-only response (HEAD, 204,
/// 304) or an error, to be finalized with `rc`.
///
/// # Safety
/// `r` must be a live request whose header has not been sent.
pub unsafe fn send_head(
    r: *mut ngx_http_request_t,
    head: &Head,
    known_length: Option<usize>,
) -> Result<bool, ngx_int_t> {
    if apply(r, head, known_length).is_err() {
        return Err(NGX_HTTP_INTERNAL_SERVER_ERROR as _);
    }
    let buffering = buffering_override(head)
        .unwrap_or_else(|| Module::location_conf(&*r).is_some_and(|lc| lc.buffering == 1));
    let rc = ngx_http_send_header(r);
    if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || (*r).header_only() != 0 {
        return Err(rc);
    }
    Ok(buffering)
}

/// Copies `head` into the request's `headers_out`.
///
/// # Safety
/// `r` must be a live request whose header has not been sent.
unsafe fn apply(
    r: *mut ngx_http_request_t,
    head: &Head,
    known_length: Option<usize>,
) -> Result<(), ()> {
    let pool = (*r).pool;
    let ho = &mut (*r).headers_out;
    ho.status = head.status as _;
    ho.status_line = pool_str(pool, head.status_line.as_bytes()).ok_or(())?;
    // The app decides freshness: nginx must not turn its 200 into a 304.
    (*r).set_disable_not_modified(1);
    for (name, value) in &head.headers {
        let value_bytes = latin1(value);
        if name.eq_ignore_ascii_case("content-type") {
            let v = pool_str(pool, &value_bytes).ok_or(())?;
            ho.content_type_len = v.len;
            ho.content_type = v;
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            continue; // set below from the parsed value
        }
        if name.eq_ignore_ascii_case("x-accel-buffering") {
            continue; // for nginx, not the client: see buffering_override
        }
        let h = ngx_list_push(&mut ho.headers) as *mut ngx_table_elt_t;
        if h.is_null() {
            return Err(());
        }
        (*h).hash = 1;
        (*h).key = pool_str(pool, name.as_bytes()).ok_or(())?;
        (*h).value = pool_str(pool, &value_bytes).ok_or(())?;
        (*h).lowcase_key = pool_str(pool, name.to_ascii_lowercase().as_bytes())
            .ok_or(())?
            .data;
        (*h).next = std::ptr::null_mut();
        // Fields nginx's filters consult: keep them in step with the list so
        // nginx neither adds its own Server/Date nor gzips encoded content.
        if name.eq_ignore_ascii_case("server") {
            ho.server = h;
        } else if name.eq_ignore_ascii_case("date") {
            ho.date = h;
        } else if name.eq_ignore_ascii_case("content-encoding") {
            ho.content_encoding = h;
        }
    }
    match (head.content_length, known_length) {
        (Some(n), _) => ho.content_length_n = n as i64,
        (None, Some(n)) => ho.content_length_n = n as i64,
        (None, None) => {}
    }
    // With a status line of its own nginx's header filter skips these
    // rules: 204 and 304 have no body.
    if head.status == 204 || head.status == 304 {
        (*r).set_header_only(1);
    }
    if head.status == 204 {
        ho.content_length_n = -1;
        ho.content_type_len = 0;
        ho.content_type = ngx_str_t::empty();
    }
    Ok(())
}

fn latin1(s: &str) -> Vec<u8> {
    // check_header guarantees every char is <= U+00FF.
    s.chars().map(|c| c as u32 as u8).collect()
}

/// # Safety
/// `pool` must be a live nginx pool.
unsafe fn pool_str(pool: *mut ngx::ffi::ngx_pool_t, bytes: &[u8]) -> Option<ngx_str_t> {
    let data = ngx_pnalloc(pool, bytes.len().max(1)) as *mut u8;
    if data.is_null() {
        return None;
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
    Some(ngx_str_t {
        len: bytes.len(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(check_status("200 OK"), Ok(200));
        assert_eq!(check_status("404 "), Ok(404));
        assert_eq!(check_status("599 Whatever it is"), Ok(599));
        for bad in [
            "200",
            "200OK",
            "2000 OK",
            "abc OK",
            "200 OK\r\nX: y",
            "100 Continue",
            "099 x",
        ] {
            assert!(check_status(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn headers() {
        assert!(check_header("X-Ok", "caf\u{e9}\tlatin-1").is_ok());
        assert!(check_header("Bad Name", "v").is_err());
        assert!(check_header("", "v").is_err());
        assert!(check_header("X-Split", "a\r\nInjected: 1").is_err());
        assert!(check_header("X-Wide", "\u{263a}").is_err());
        assert!(check_header("Connection", "close").is_err());
        assert!(check_header("transfer-encoding", "chunked").is_err());
    }
}
