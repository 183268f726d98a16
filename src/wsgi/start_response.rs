//! `start_response` and `write()`: the app's status and headers, checked as
//! they arrive and kept as the bytes that go on the wire (`Head`), for the
//! event loop to copy into nginx's `headers_out` (`nginx::headers_out`)
//! when the first body chunk (or the end) is ready. This side runs on
//! whichever thread runs the app, and touches nothing of nginx's.

use std::collections::VecDeque;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::string::PyStringData;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::accel::Accel;

/// A status and headers that passed the checks, kept as the bytes that go
/// on the wire (latin-1) in one buffer: `status\0name\0value\0...`. No
/// NUL can occur inside: names are tokens and values have no controls.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    wire: Vec<u8>,
    pub content_length: Option<u64>,
    /// The X-Accel-* fields: for nginx, not the client, so not in `wire`.
    pub accel: Accel,
    /// The body is a file nginx sends (`wsgi.file_wrapper`): nginx's range
    /// filter may answer `Range:` for it.
    pub file_body: bool,
}

impl Head {
    /// `NNN reason`, as the app gave it.
    pub fn status_line(&self) -> &[u8] {
        self.wire.split(|&b| b == 0).next().unwrap_or_default()
    }

    /// The fields, in the app's order.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut parts = self.wire.split(|&b| b == 0).skip(1);
        std::iter::from_fn(move || Some((parts.next()?, parts.next()?)))
    }

    /// A head with the status line `line` (latin-1 bytes) and no fields
    /// yet, or why the line is not a status.
    pub fn new(line: &[u8]) -> Result<Head, String> {
        let status = check_status(line)?;
        let mut wire = Vec::with_capacity(128);
        wire.extend_from_slice(line);
        Ok(Head {
            status,
            wire,
            content_length: None,
            accel: Accel::default(),
            file_body: false,
        })
    }

    /// Checks one field, its name and value as latin-1 bytes (the value as
    /// the app gave it), and keeps it; or says why it must not be sent.
    pub fn add_field(&mut self, name: &[u8], raw_value: &[u8]) -> Result<(), String> {
        check_name(name)?;
        self.add_value(name, raw_value)
    }

    /// `add_field` once the name passed `check_name`.
    fn add_value(&mut self, name: &[u8], raw_value: &[u8]) -> Result<(), String> {
        // Leading and trailing blanks are not part of a field value (RFC 9110
        // 5.5); Django, for one, puts a space before each Set-Cookie value.
        let value = trim_blanks(raw_value);
        check_value(name, value)?;
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    format!(
                        "response header Content-Length has a value that is not a number: {:?}",
                        String::from_utf8_lossy(value)
                    )
                })?;
            self.content_length = Some(n);
        }
        if self.accel.take(name, value)? {
            return Ok(());
        }
        self.wire.push(0);
        self.wire.extend_from_slice(name);
        self.wire.push(0);
        self.wire.extend_from_slice(value);
        Ok(())
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
        let Some(name) = latin1_bytes(name)? else {
            return Err(PyValueError::new_err(not_a_token(&name.to_string_lossy())));
        };
        check_name(name).map_err(PyValueError::new_err)?;
        let value = pair.get_borrowed_item(1)?;
        let value = header_text(&value, "value")?;
        let Some(raw) = latin1_bytes(value)? else {
            return Err(PyValueError::new_err(wide_value(name, value)?));
        };
        self.add_value(name, raw).map_err(PyValueError::new_err)
    }
}

fn not_a_token(name: &str) -> String {
    format!("response header name {name:?} is not a valid HTTP token")
}

/// Why a field name (latin-1 bytes) must not be sent, if it must not.
fn check_name(name: &[u8]) -> Result<(), String> {
    if !is_token(name) {
        return Err(not_a_token(&latin1_text(name)));
    }
    if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(format!(
            "response header {:?} is hop-by-hop; a WSGI app must not send it (PEP 3333)",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(())
}

/// Latin-1 bytes as the text they are.
fn latin1_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
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
    let mut head = Head::new(line).map_err(PyValueError::new_err)?;
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
    let shown = || latin1_text(line);
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

    #[test]
    fn a_head_keeps_the_fields_it_accepts() {
        let mut head = Head::new(b"201 Created").unwrap();
        head.add_field(b"Set-Cookie", b" a=1 ").unwrap();
        assert!(head
            .add_field(b"Connection", b"close")
            .unwrap_err()
            .contains("hop-by-hop"));
        assert!(head.add_field(b"X-Split", b"a\nb").is_err());
        head.add_field(b"Content-Length", b"12").unwrap();
        head.add_field(b"X-Accel-Redirect", b"/files/x").unwrap();
        head.add_field(b"X-Accel-Mine", b"kept").unwrap();
        let fields: Vec<_> = head.fields().collect();
        assert_eq!(
            fields,
            [
                (&b"Set-Cookie"[..], &b"a=1"[..]),
                (b"Content-Length", b"12"),
                (b"X-Accel-Mine", b"kept"),
            ]
        );
        assert_eq!((head.status, head.content_length), (201, Some(12)));
        assert_eq!(head.status_line(), b"201 Created");
        assert!(Head::new(b"2000 OK").is_err());
    }
}
