//! The arguments of the directives, parsed and checked as `nginx -t` does
//! it; `module.rs` words a refusal as nginx's own directives do:
//! `invalid value "ARG" in "DIRECTIVE" directive, REASON`.

use std::path::Path;

use super::{AppSource, AppSpec, Interface, PoolSpec};

/// Why an argument was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    /// "value", or "parameter" for a `name=value` or flag argument.
    pub what: &'static str,
    pub arg: String,
    /// What the argument must be, or why it cannot be.
    pub reason: String,
}

impl Invalid {
    pub fn value(arg: &str, reason: impl Into<String>) -> Invalid {
        Invalid {
            what: "value",
            arg: arg.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn parameter(arg: &str, reason: impl Into<String>) -> Invalid {
        Invalid {
            what: "parameter",
            arg: arg.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Upper bounds that catch typos (`wsgi_threads 6400`) at `nginx -t`.
const MAX_THREADS: usize = 4096;
const DEFAULT_MAX_QUEUE: usize = 1024;

impl AppSpec {
    /// Parses `MODULE[:CALLABLE]`. A MODULE that ends in `.py` or contains a
    /// `/` is a file path (kept as written; the caller resolves it).
    pub fn parse(arg: &str) -> Result<AppSpec, Invalid> {
        let invalid = |reason: String| Invalid::value(arg, reason);
        let mut parts = arg.split(':');
        let module = parts.next().unwrap_or("");
        let callable = parts.next();
        if parts.next().is_some() {
            return Err(invalid(
                "it must be MODULE[:CALLABLE], with one \":\" at most".into(),
            ));
        }
        if module.is_empty() {
            return Err(invalid(
                "it must be MODULE[:CALLABLE], with a module before \":\"".into(),
            ));
        }
        let callable = match callable {
            None => "application",
            Some("") => {
                return Err(invalid(
                    "it must be MODULE[:CALLABLE], with a callable after \":\"".into(),
                ))
            }
            Some(c) => c,
        };
        if !is_dotted_identifier(callable) {
            return Err(invalid(format!(
                "\"{callable}\" is not a Python attribute name"
            )));
        }
        let source = if module.ends_with(".py") || module.contains('/') {
            AppSource::File(module.to_string())
        } else if is_dotted_identifier(module) {
            AppSource::Module(module.to_string())
        } else {
            return Err(invalid(
                "it must be a dotted Python module name or a path to a .py file".into(),
            ));
        };
        Ok(AppSpec {
            source,
            callable: callable.to_string(),
            interface: Interface::Wsgi,
        })
    }
}

fn is_dotted_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

impl PoolSpec {
    /// Parses the arguments of `wsgi_threads`; `None` for 0 (inline).
    pub fn parse(args: &[String]) -> Result<Option<PoolSpec>, Invalid> {
        let threads = args.first().map(String::as_str).unwrap_or("");
        let threads: usize = threads
            .parse()
            .ok()
            .filter(|&n| n <= MAX_THREADS)
            .ok_or_else(|| {
                Invalid::value(
                    threads,
                    format!("it must be a number of threads from 0 to {MAX_THREADS}"),
                )
            })?;
        let mut max_queue = DEFAULT_MAX_QUEUE;
        for arg in args.iter().skip(1) {
            max_queue = named_number(arg, "max_queue")?;
            if threads == 0 {
                return Err(Invalid::parameter(
                    arg,
                    "it needs a number of threads above 0",
                ));
            }
        }
        Ok((threads > 0).then_some(PoolSpec { threads, max_queue }))
    }
}

/// Parses the arguments of `wsgi_max_requests N [jitter=J]`.
pub fn max_requests(args: &[String]) -> Result<(u64, u64), Invalid> {
    let count = args.first().map(String::as_str).unwrap_or("");
    let count: u64 = count
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| Invalid::value(count, "it must be a number of requests above 0"))?;
    let mut jitter = 0;
    for arg in args.iter().skip(1) {
        jitter = named_number(arg, "jitter")?;
    }
    Ok((count, jitter))
}

/// The NUMBER of a `NAME=NUMBER` parameter such as `max_queue=64`.
fn named_number<T: std::str::FromStr>(arg: &str, name: &str) -> Result<T, Invalid> {
    let form = format!("it must be \"{name}=NUMBER\"");
    let value = arg
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('='))
        .ok_or_else(|| Invalid::parameter(arg, form.as_str()))?;
    value.parse().map_err(|_| Invalid::value(arg, form))
}

/// Parses a size as nginx writes one (`512k`, `100m`, `1g`, bytes without
/// a suffix); it must be above 0.
pub fn size(arg: &str) -> Result<u64, Invalid> {
    parse_size(arg)
        .filter(|&n| n > 0)
        .ok_or_else(|| Invalid::value(arg, "it must be a size above 0, such as 512m or 2g"))
}

/// A size, as `size` parses it, that may be 0 (which turns a limit off).
pub fn size_or_zero(arg: &str) -> Result<u64, Invalid> {
    parse_size(arg).ok_or_else(|| Invalid::value(arg, "it must be a size, such as 1024m, or 0"))
}

fn parse_size(arg: &str) -> Option<u64> {
    let (digits, unit) = match arg.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&arg[..i], c.to_ascii_lowercase()),
        _ => (arg, 'b'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale: u64 = match unit {
        'b' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// What `nginx -t` checks of `wsgi_python_home`: why `dir` is not one.
pub fn check_python_home(dir: &str) -> Result<(), String> {
    let path = Path::new(dir);
    if !path.is_dir() {
        return Err(format!("directory \"{dir}\" does not exist"));
    }
    if !path.join("pyvenv.cfg").is_file() && !path.join("lib").is_dir() {
        return Err(format!(
            "\"{dir}\" is neither a virtualenv (no pyvenv.cfg) nor a Python prefix (no lib/)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_with_default_callable() {
        let spec = AppSpec::parse("myproject.wsgi").unwrap();
        assert_eq!(spec.source, AppSource::Module("myproject.wsgi".into()));
        assert_eq!(spec.callable, "application");
    }

    #[test]
    fn module_and_callable() {
        let spec = AppSpec::parse("app:server.wsgi_app").unwrap();
        assert_eq!(spec.source, AppSource::Module("app".into()));
        assert_eq!(spec.callable, "server.wsgi_app");
    }

    #[test]
    fn file_paths() {
        let spec = AppSpec::parse("apps/hello.py:app").unwrap();
        assert_eq!(spec.source, AppSource::File("apps/hello.py".into()));
        assert_eq!(spec.display(), "apps/hello.py:app");
    }

    #[test]
    fn thread_pools() {
        let parse =
            |a: &[&str]| PoolSpec::parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(parse(&["0"]), Ok(None));
        assert_eq!(
            parse(&["8"]),
            Ok(Some(PoolSpec {
                threads: 8,
                max_queue: DEFAULT_MAX_QUEUE
            }))
        );
        assert_eq!(
            parse(&["8", "max_queue=0"]),
            Ok(Some(PoolSpec {
                threads: 8,
                max_queue: 0
            }))
        );
        for bad in [
            &["x"][..],
            &["-1"],
            &["5000"],
            &["8", "queue=3"],
            &["8", "max_queue=x"],
            &["0", "max_queue=3"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            parse(&["8", "queue=3"]),
            Err(Invalid::parameter(
                "queue=3",
                "it must be \"max_queue=NUMBER\""
            ))
        );
    }

    #[test]
    fn recycling_limits() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(max_requests(&args(&["50"])), Ok((50, 0)));
        assert_eq!(max_requests(&args(&["50", "jitter=10"])), Ok((50, 10)));
        for bad in [
            &["0"][..],
            &["-5"],
            &["x"],
            &["jitter=10"],
            &["50", "jitter=-1"],
            &["50", "spread=3"],
        ] {
            assert!(max_requests(&args(bad)).is_err(), "{bad:?} accepted");
        }
        assert_eq!(size("100m"), Ok(100 << 20));
        assert_eq!(size("2G"), Ok(2 << 30));
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("512k"), Ok(512 << 10));
        for bad in [
            "",
            "0",
            "0m",
            "-1m",
            "m",
            "10x",
            "1.5g",
            "99999999999999999g",
        ] {
            assert!(size(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(size_or_zero("0"), Ok(0));
        assert_eq!(size_or_zero("1024m"), Ok(1 << 30));
        for bad in ["", "-1", "off", "1.5g", "99999999999999999g"] {
            assert!(size_or_zero(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn malformed() {
        for bad in [
            "a:b:c", "app:", ":app", "", "my-app:x", "app:1x", "app:x y", "a..b",
        ] {
            let err = AppSpec::parse(bad).expect_err(bad);
            assert_eq!((err.what, err.arg.as_str()), ("value", bad));
        }
    }
}
