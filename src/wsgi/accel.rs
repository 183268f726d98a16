//! The X-Accel-* fields of an app's response: what the app asks nginx to
//! do with it, as an upstream asks nginx's proxy and uwsgi modules. They
//! are taken out of the response's fields as `start_response` checks them,
//! so none reaches the client, and `wsgi_ignore_headers` may name those
//! that are not acted on.
//!
//! - `X-Accel-Redirect: /uri?args` or `@name`: nginx serves the request
//!   from there instead (`nginx::redirect`); the app's body is not sent.
//! - `X-Accel-Limit-Rate: N` (bytes per second; `0` or `off`: no limit).
//! - `X-Accel-Charset: NAME`: the charset filter's target (`charset`).
//! - `X-Accel-Buffering: yes|no`: whether chunks may wait in nginx's
//!   filters (`wsgi_buffering`).
//! - `X-Accel-Expires`: for a cache, which the module does not have; like
//!   nginx, it does not pass it on either.

/// The X-Accel-* fields of one response, checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Accel {
    /// A URI (with its arguments) or a named location (`@name`).
    pub redirect: Option<Vec<u8>>,
    /// Bytes per second; 0: no limit.
    pub limit_rate: Option<usize>,
    pub charset: Option<Vec<u8>>,
    pub buffering: Option<bool>,
}

/// Fields `wsgi_ignore_headers` can name, as bits.
const FIELDS: [(&str, u8); 5] = [
    ("X-Accel-Redirect", 1),
    ("X-Accel-Expires", 1 << 1),
    ("X-Accel-Limit-Rate", 1 << 2),
    ("X-Accel-Buffering", 1 << 3),
    ("X-Accel-Charset", 1 << 4),
];

/// What `wsgi_ignore_headers` names: fields not acted on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IgnoreHeaders(u8);

impl IgnoreHeaders {
    /// Adds field `name` (any case); false if the module has no such field.
    pub fn add(&mut self, name: &str) -> bool {
        match FIELDS.iter().find(|(f, _)| f.eq_ignore_ascii_case(name)) {
            Some((_, bit)) => {
                self.0 |= bit;
                true
            }
            None => false,
        }
    }

    /// The names `add` accepts, for `nginx -t`'s message.
    pub fn known() -> String {
        FIELDS.map(|(f, _)| f).join(", ")
    }

    fn has(self, field: &str) -> bool {
        FIELDS
            .iter()
            .any(|(f, bit)| *f == field && self.0 & bit != 0)
    }
}

impl Accel {
    /// Keeps `name: value` if it is an X-Accel field (true: it is not a
    /// field for the client); the error for the app when its value is
    /// not one nginx could act on.
    pub fn take(&mut self, name: &[u8], value: &[u8]) -> Result<bool, String> {
        let Some(field) = name
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case(b"x-accel-"))
            .map(|_| &name[8..])
        else {
            return Ok(false);
        };
        let shown = || String::from_utf8_lossy(value).into_owned();
        if field.eq_ignore_ascii_case(b"redirect") {
            if self.redirect.is_some() {
                return Err("response header X-Accel-Redirect is given twice".to_owned());
            }
            if !matches!(value.first(), Some(b'/') | Some(b'@')) || value == b"@" {
                return Err(format!(
                    "response header X-Accel-Redirect has a value that is neither a URI (/path) nor a named location (@name): {:?}",
                    shown()
                ));
            }
            self.redirect = Some(value.to_vec());
        } else if field.eq_ignore_ascii_case(b"limit-rate") {
            let rate = if value.eq_ignore_ascii_case(b"off") {
                Some(0)
            } else {
                std::str::from_utf8(value)
                    .ok()
                    .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<usize>().ok())
            };
            self.limit_rate = Some(rate.ok_or_else(|| {
                format!(
                    "response header X-Accel-Limit-Rate has a value that is not a number of bytes per second or off: {:?}",
                    shown()
                )
            })?);
        } else if field.eq_ignore_ascii_case(b"charset") {
            if value.is_empty() {
                return Err("response header X-Accel-Charset is empty".to_owned());
            }
            self.charset = Some(value.to_vec());
        } else if field.eq_ignore_ascii_case(b"buffering") {
            // As nginx's upstream module: "yes" or "no"; the last one counts.
            if value.eq_ignore_ascii_case(b"yes") {
                self.buffering = Some(true);
            } else if value.eq_ignore_ascii_case(b"no") {
                self.buffering = Some(false);
            }
        } else if !field.eq_ignore_ascii_case(b"expires") {
            return Ok(false); // X-Accel-Something-Else is the app's own
        }
        Ok(true)
    }

    /// Forgets what `ignore` names.
    pub fn ignoring(mut self, ignore: IgnoreHeaders) -> Accel {
        if ignore.has("X-Accel-Redirect") {
            self.redirect = None;
        }
        if ignore.has("X-Accel-Limit-Rate") {
            self.limit_rate = None;
        }
        if ignore.has("X-Accel-Charset") {
            self.charset = None;
        }
        if ignore.has("X-Accel-Buffering") {
            self.buffering = None;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(fields: &[(&str, &str)]) -> Result<Accel, String> {
        let mut accel = Accel::default();
        for (name, value) in fields {
            accel.take(name.as_bytes(), value.as_bytes())?;
        }
        Ok(accel)
    }

    #[test]
    fn the_fields_for_nginx_are_taken_and_checked() {
        let accel = take(&[
            ("X-Accel-Redirect", "/protected/a.pdf?x=1"),
            ("x-accel-limit-rate", "1024"),
            ("X-Accel-Charset", "utf-8"),
            ("X-Accel-Buffering", "no"),
        ])
        .unwrap();
        assert_eq!(
            accel.redirect.as_deref(),
            Some(&b"/protected/a.pdf?x=1"[..])
        );
        assert_eq!(accel.limit_rate, Some(1024));
        assert_eq!(accel.charset.as_deref(), Some(&b"utf-8"[..]));
        assert_eq!(accel.buffering, Some(false));
        assert_eq!(
            take(&[("X-Accel-Limit-Rate", "off")]).unwrap().limit_rate,
            Some(0)
        );
        assert_eq!(
            take(&[("X-Accel-Redirect", "@files")])
                .unwrap()
                .redirect
                .as_deref(),
            Some(&b"@files"[..])
        );
        let mut accel = Accel::default();
        assert_eq!(
            accel.take(b"X-Accel-Expires", b"60"),
            Ok(true),
            "not for the client"
        );
        assert_eq!(accel.take(b"X-Accelerated", b"1"), Ok(false));
        assert_eq!(accel.take(b"X-Accel-Mine", b"1"), Ok(false));
        assert_eq!(accel.take(b"Content-Type", b"text/plain"), Ok(false));
    }

    #[test]
    fn values_nginx_could_not_act_on_are_the_app_s_error() {
        for (name, value, says) in [
            ("X-Accel-Redirect", "files/a", "neither a URI"),
            ("X-Accel-Redirect", "@", "neither a URI"),
            (
                "X-Accel-Limit-Rate",
                "10k",
                "not a number of bytes per second",
            ),
            (
                "X-Accel-Limit-Rate",
                "-1",
                "not a number of bytes per second",
            ),
            ("X-Accel-Charset", "", "empty"),
        ] {
            let err = take(&[(name, value)]).unwrap_err();
            assert!(err.contains(says), "{name}: {value:?}: {err}");
        }
        let twice = take(&[("X-Accel-Redirect", "/a"), ("X-Accel-Redirect", "/b")]).unwrap_err();
        assert!(twice.contains("given twice"));
    }

    #[test]
    fn ignored_fields_are_not_acted_on() {
        let mut ignore = IgnoreHeaders::default();
        assert!(ignore.add("x-accel-redirect"));
        assert!(ignore.add("X-Accel-Limit-Rate"));
        assert!(!ignore.add("Set-Cookie"));
        let accel = take(&[
            ("X-Accel-Redirect", "/a"),
            ("X-Accel-Limit-Rate", "5"),
            ("X-Accel-Buffering", "yes"),
        ])
        .unwrap()
        .ignoring(ignore);
        assert_eq!(accel.redirect, None);
        assert_eq!(accel.limit_rate, None);
        assert_eq!(accel.buffering, Some(true));
    }
}
