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
use pyo3::types::string::PyStringData;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::conf::Module;

/// A status and headers that passed the checks, kept as the bytes that go
/// on the wire (latin-1) in one buffer: `status\0name\0value\0...`. No
/// NUL can occur inside: names are tokens and values have no controls.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    wire: Vec<u8>,
    pub content_length: Option<u64>,
    /// What the app's `X-Accel-Buffering: yes|no` asks for; the field is
    /// for nginx, not the client, so it is not kept.
    buffering: Option<bool>,
}

impl Head {
    /// `NNN reason`, as the app gave it.
    fn status_line(&self) -> &[u8] {
        self.wire.split(|&b| b == 0).next().unwrap_or_default()
    }

    /// The fields, in the app's order.
    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut parts = self.wire.split(|&b| b == 0).skip(1);
        std::iter::from_fn(move || Some((parts.next()?, parts.next()?)))
    }

    /// Checks one `(name, value)` item of the app's header list and keeps it.
    fn push(&mut self, item: &Bound<'_, PyAny>) -> PyResult<()> {
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
        // Borrowed: the tuple holds its items while the app's list is read.
        let name = pair.get_borrowed_item(0)?;
        let name = header_text(&name, "name")?;
        let name = latin1_bytes(name)?.filter(|n| is_token(n)).ok_or_else(|| {
            PyValueError::new_err(format!(
                "response header name {:?} is not a valid HTTP token",
                name.to_string_lossy()
            ))
        })?;
        if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            return Err(PyValueError::new_err(format!(
                "response header {:?} is hop-by-hop; a WSGI app must not send it (PEP 3333)",
                String::from_utf8_lossy(name)
            )));
        }
        let value = pair.get_borrowed_item(1)?;
        let value = header_text(&value, "value")?;
        let Some(raw) = latin1_bytes(value)? else {
            return Err(PyValueError::new_err(wide_value(name, value)?));
        };
        // Leading and trailing blanks are not part of a field value (RFC 9110
        // 5.5); Django, for one, puts a space before each Set-Cookie value.
        let value = trim_blanks(raw);
        check_value(name, value).map_err(PyValueError::new_err)?;
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "response header Content-Length has a value that is not a number: {:?}",
                        String::from_utf8_lossy(value)
                    ))
                })?;
            self.content_length = Some(n);
        }
        if name.eq_ignore_ascii_case(b"x-accel-buffering") {
            // As nginx's upstream module: "yes" or "no"; the last one counts.
            if value.eq_ignore_ascii_case(b"yes") {
                self.buffering = Some(true);
            } else if value.eq_ignore_ascii_case(b"no") {
                self.buffering = Some(false);
            }
            return Ok(());
        }
        self.wire.push(0);
        self.wire.extend_from_slice(name);
        self.wire.push(0);
        self.wire.extend_from_slice(value);
        Ok(())
    }
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
    let line = latin1_bytes(status)?
        .ok_or_else(|| PyValueError::new_err(not_a_status(&status.to_string_lossy())))?;
    let code = check_status(line).map_err(PyValueError::new_err)?;
    let mut wire = Vec::with_capacity(128);
    wire.extend_from_slice(line);
    let mut head = Head {
        status: code,
        wire,
        content_length: None,
        buffering: None,
    };
    if let Ok(list) = headers.cast::<PyList>() {
        for item in list.iter() {
            head.push(&item)?;
        }
    } else if let Ok(tuple) = headers.cast::<PyTuple>() {
        for item in tuple.iter() {
            head.push(&item)?;
        }
    } else {
        return Err(PyTypeError::new_err(format!(
            "response headers must be a list of (name, value) tuples, not {}",
            type_name(headers)
        )));
    }
    Ok(head)
}

/// A header name or value as a `str`, or the error naming what it is.
fn header_text<'a, 'py>(
    v: &'a Bound<'py, PyAny>,
    what: &str,
) -> PyResult<&'a Bound<'py, PyString>> {
    v.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response header {what} must be a str, not {} ({})",
            type_name(v),
            v.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })
}

/// The characters of `s` as latin-1 bytes, read in place (CPython keeps a
/// str whose characters are all <= U+00FF one byte per character); None
/// when it has a wider character.
fn latin1_bytes<'a>(s: &'a Bound<'_, PyString>) -> PyResult<Option<&'a [u8]>> {
    // SAFETY: `s` is a live str borrowed for 'a; pyo3 readies it first, and
    // its one-byte data is immutable while the reference is held.
    match unsafe { s.data() }? {
        PyStringData::Ucs1(bytes) => Ok(Some(bytes)),
        // A two- or four-byte str has at least one character above U+00FF.
        _ => Ok(None),
    }
}

/// The error for a value with a character outside latin-1.
fn wide_value(name: &[u8], value: &Bound<'_, PyString>) -> PyResult<String> {
    let text = value.to_cow()?;
    let text = text.trim_matches([' ', '\t']);
    let (i, c) = text
        .chars()
        .enumerate()
        .find(|&(_, c)| c > '\u{ff}')
        .unwrap_or((0, '?'));
    Ok(format!(
        "response header {:?} has a character outside latin-1 ({c:?}) at position {i} of its value",
        String::from_utf8_lossy(name)
    ))
}

fn trim_blanks(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn not_a_status(line: &str) -> String {
    format!("status {line:?} is not of the form 'NNN reason' (e.g. '200 OK')")
}

/// The status code of `NNN reason` (latin-1 bytes), or why the line is
/// not one.
fn check_status(line: &[u8]) -> Result<u16, String> {
    let well_formed = line.len() >= 4
        && line[..3].iter().all(u8::is_ascii_digit)
        && line[3] == b' '
        && line
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0xa0);
    let shown = || line.iter().map(|&b| b as char).collect::<String>();
    if !well_formed {
        return Err(not_a_status(&shown()));
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(200..=599).contains(&code) {
        return Err(format!(
            "status {:?}: a WSGI app may send codes 200 to 599",
            shown()
        ));
    }
    Ok(code)
}

const HOP_BY_HOP: [&[u8]; 8] = [
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailers",
    b"transfer-encoding",
    b"upgrade",
];

/// The bytes a token may have (RFC 9110 5.6.2: tchar), as a table: a
/// header name is checked a byte at a time.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
            )
            || matches!(c, b'^' | b'_' | b'`' | b'|' | b'~');
        b += 1;
    }
    table
};

/// Whether `name` is an HTTP token, as a field name must be.
fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| TCHAR[b as usize])
}

/// Why a field value (latin-1 bytes) must not be sent, if it must not:
/// control characters would split or corrupt the header.
fn check_value(name: &[u8], value: &[u8]) -> Result<(), String> {
    match value
        .iter()
        .position(|&b| (b < b' ' && b != b'\t') || b == 0x7f)
    {
        None => Ok(()),
        Some(i) => Err(format!(
            "response header {:?} has a control character ({:?}) at position {i} of its value",
            String::from_utf8_lossy(name),
            value[i] as char
        )),
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
    let buffering = head
        .buffering
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
    ho.status_line = pool_str(pool, head.status_line()).ok_or(())?;
    // The app decides freshness: nginx must not turn its 200 into a 304.
    (*r).set_disable_not_modified(1);
    for (name, value) in head.fields() {
        if name.eq_ignore_ascii_case(b"content-type") {
            let v = pool_str(pool, value).ok_or(())?;
            ho.content_type_len = v.len;
            ho.content_type = v;
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            continue; // set below from the parsed value
        }
        let h = ngx_list_push(&mut ho.headers) as *mut ngx_table_elt_t;
        if h.is_null() {
            return Err(());
        }
        (*h).hash = 1;
        (*h).key = pool_str(pool, name).ok_or(())?;
        (*h).value = pool_str(pool, value).ok_or(())?;
        let lowcase = pool_str(pool, name).ok_or(())?;
        // SAFETY: pool_str just allocated these `len` bytes for this copy.
        std::slice::from_raw_parts_mut(lowcase.data, lowcase.len).make_ascii_lowercase();
        (*h).lowcase_key = lowcase.data;
        (*h).next = std::ptr::null_mut();
        // Fields nginx's filters consult: keep them in step with the list so
        // nginx neither adds its own Server/Date nor gzips encoded content.
        if name.eq_ignore_ascii_case(b"server") {
            ho.server = h;
        } else if name.eq_ignore_ascii_case(b"date") {
            ho.date = h;
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
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
        assert_eq!(check_status(b"200 OK"), Ok(200));
        assert_eq!(check_status(b"404 "), Ok(404));
        assert_eq!(check_status(b"599 Whatever it is"), Ok(599));
        assert_eq!(check_status(b"200 Tr\xe8s bien"), Ok(200));
        for bad in [
            &b"200"[..],
            b"200OK",
            b"2000 OK",
            b"abc OK",
            b"200 OK\r\nX: y",
            b"100 Continue",
            b"099 x",
        ] {
            assert!(check_status(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn headers() {
        assert!(is_token(b"X-Ok") && !is_token(b"Bad Name") && !is_token(b""));
        assert!(check_value(b"X-Ok", b"caf\xe9\tlatin-1").is_ok());
        assert!(check_value(b"X-Split", b"a\r\nInjected: 1")
            .unwrap_err()
            .contains("('\\r') at position 1"));
        assert_eq!(trim_blanks(b" \t v a \t"), b"v a");
    }
}
