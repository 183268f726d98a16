//! The CGI variables of one request (PEP 3333's environ, less the
//! `wsgi.*` keys), owned, in one buffer: read from nginx's structures on
//! the event loop (`nginx::cgi`), made into the environ on whichever thread
//! runs the app (`wsgi::environ`), which must not touch the request.

use std::cell::Cell;
use std::io::Write;
use std::net::IpAddr;

/// The CGI variables the module sets from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    RequestMethod,
    PathInfo,
    QueryString,
    RequestUri,
    ServerProtocol,
    ContentType,
    ContentLength,
    ServerName,
    ServerPort,
    RemoteAddr,
    RemotePort,
    Https,
    DocumentRoot,
    DocumentUri,
    ServerAddr,
    RemoteUser,
    AuthType,
}

/// A variable's name: known, a request header's lower-case name (becomes
/// `HTTP_*`), or a `wsgi_param` name. Spans index `Vars::text`.
#[derive(Debug, Clone, Copy)]
enum Name {
    Known(Known),
    Header(u32, u32),
    Param(u32, u32),
}

/// A variable's name as `Vars::iter` gives it.
pub enum VarName<'a> {
    Known(Known),
    Header(&'a [u8]),
    Param(&'a str),
}

/// The variables in the order they are set: a later one with the same
/// name wins (a `wsgi_param` overrides what the module set).
#[derive(Debug, Default)]
pub struct Vars {
    text: Vec<u8>,
    items: Vec<(Name, u32, u32)>,
    /// Where the request headers start in `items`.
    headers_from: usize,
    /// The request came over TLS.
    pub https: bool,
}

impl Vars {
    /// Empty variables with the buffers of earlier ones, if this thread
    /// recycled any: the inline path builds one set per request.
    pub fn reuse(https: bool) -> Vars {
        let mut vars = SPARE.with(|spare| spare.take()).unwrap_or_else(|| Vars {
            text: Vec::with_capacity(1024),
            items: Vec::with_capacity(32),
            headers_from: 0,
            https,
        });
        vars.text.clear();
        vars.items.clear();
        vars.headers_from = 0;
        vars.https = https;
        vars
    }

    /// Keeps the buffers for the next `reuse` on this thread.
    pub fn recycle(self) {
        SPARE.with(|spare| spare.set(Some(self)));
    }

    fn span(&mut self, bytes: &[u8]) -> (u32, u32) {
        let start = self.text.len() as u32;
        self.text.extend_from_slice(bytes);
        (start, self.text.len() as u32)
    }

    pub fn set(&mut self, name: Known, value: &[u8]) {
        let (start, end) = self.span(value);
        self.items.push((Name::Known(name), start, end));
    }

    /// Sets a number, written straight into the buffer.
    pub fn set_number(&mut self, name: Known, value: u64) {
        let start = self.text.len() as u32;
        push_decimal(&mut self.text, value);
        self.items
            .push((Name::Known(name), start, self.text.len() as u32));
    }

    /// Sets an IP address as nginx writes it (`$server_addr`).
    pub fn set_address(&mut self, name: Known, ip: IpAddr) {
        let start = self.text.len() as u32;
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.text.push(b'.');
                    }
                    push_decimal(&mut self.text, octet.into());
                }
            }
            // Rare enough for the formatter (RFC 5952's form, as nginx's).
            IpAddr::V6(v6) => {
                let _ = write!(self.text, "{v6}");
            }
        }
        self.items
            .push((Name::Known(name), start, self.text.len() as u32));
    }

    /// The request headers come next (`add_header` looks for repeats
    /// among them only).
    pub fn begin_headers(&mut self) {
        self.headers_from = self.items.len();
    }

    /// Adds a request header (lower-case name); a repeated one is joined to
    /// the first with ", " (Cookie with "; ", as HTTP/2 splits it).
    pub fn add_header(&mut self, name: &[u8], value: &[u8]) {
        let text = &self.text;
        let earlier = self.items[self.headers_from..].iter().position(
            |&(n, _, _)| matches!(n, Name::Header(s, e) if &text[s as usize..e as usize] == name),
        );
        if let Some(i) = earlier {
            // Repeated: the joined value replaces the first one's (rare).
            let i = self.headers_from + i;
            let (_, start, end) = self.items[i];
            let joined = self.text.len() as u32;
            self.text.extend_from_within(start as usize..end as usize);
            self.text
                .extend_from_slice(if name == b"cookie" { b"; " } else { b", " });
            self.text.extend_from_slice(value);
            self.items[i].1 = joined;
            self.items[i].2 = self.text.len() as u32;
            return;
        }
        let (name_start, name_end) = self.span(name);
        let (start, end) = self.span(value);
        self.items
            .push((Name::Header(name_start, name_end), start, end));
    }

    /// Adds a `wsgi_param` (its name is UTF-8, from the configuration).
    pub fn add_param(&mut self, name: &str, value: &[u8]) {
        let (name_start, name_end) = self.span(name.as_bytes());
        let (start, end) = self.span(value);
        self.items
            .push((Name::Param(name_start, name_end), start, end));
    }

    pub fn iter(&self) -> impl Iterator<Item = (VarName<'_>, &[u8])> {
        self.items.iter().map(|&(name, start, end)| {
            let text = |s: u32, e: u32| &self.text[s as usize..e as usize];
            let name = match name {
                Name::Known(k) => VarName::Known(k),
                Name::Header(s, e) => VarName::Header(text(s, e)),
                Name::Param(s, e) => VarName::Param(std::str::from_utf8(text(s, e)).unwrap_or("")),
            };
            (name, text(start, end))
        })
    }
}

/// Appends `n` in decimal: cheaper than the formatter, which the few
/// numbers of every request would otherwise go through.
fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

thread_local! {
    static SPARE: Cell<Option<Vars>> = const { Cell::new(None) };
}

#[cfg(test)]
mod tests {
    use super::{Known, VarName, Vars};

    #[test]
    fn numbers_and_addresses() {
        let mut vars = Vars::default();
        for n in [0, 7, 10, 65535, u64::MAX] {
            vars.set_number(Known::ServerPort, n);
        }
        vars.set_address(Known::ServerAddr, "10.0.255.1".parse().unwrap());
        vars.set_address(Known::ServerAddr, "::ffff:1.2.3.4".parse().unwrap());
        let values: Vec<&[u8]> = vars.iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            [
                &b"0"[..],
                b"7",
                b"10",
                b"65535",
                b"18446744073709551615",
                b"10.0.255.1",
                b"::ffff:1.2.3.4"
            ]
        );
    }

    #[test]
    fn later_values_win() {
        let mut vars = Vars::default();
        vars.set(Known::PathInfo, b"/app/x");
        vars.set(Known::QueryString, b"a=1");
        vars.set(Known::PathInfo, b"/x");
        let last_path = vars
            .iter()
            .filter(|(n, _)| matches!(n, VarName::Known(Known::PathInfo)))
            .last()
            .map(|(_, v)| v);
        assert_eq!(last_path, Some(&b"/x"[..]));
        let names: Vec<bool> = vars
            .iter()
            .map(|(n, _)| matches!(n, VarName::Known(Known::PathInfo)))
            .collect();
        assert_eq!(names, [true, false, true]);
    }

    #[test]
    fn repeated_headers_join() {
        let mut vars = Vars::default();
        vars.set(Known::RequestMethod, b"GET");
        vars.begin_headers();
        vars.add_header(b"accept", b"a");
        vars.add_header(b"cookie", b"x=1");
        vars.add_header(b"accept", b"b");
        vars.add_header(b"cookie", b"y=2");
        vars.add_param("accept", b"param");
        let headers: Vec<(&[u8], &[u8])> = vars
            .iter()
            .filter_map(|(n, v)| match n {
                VarName::Header(name) => Some((name, v)),
                _ => None,
            })
            .collect();
        assert_eq!(
            headers,
            [(&b"accept"[..], &b"a, b"[..]), (b"cookie", b"x=1; y=2")]
        );
    }
}
