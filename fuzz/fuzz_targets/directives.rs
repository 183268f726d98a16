//! The directive arguments the module parses itself: `wsgi_pass`,
//! `wsgi_threads`, `wsgi_max_requests`, and the sizes. Input: one
//! directive per record, `NAME ARG...` as nginx splits words. What is
//! accepted is in range and reads back the same; a refusal names the
//! argument it refused and says why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_wsgi_module::fuzzing::{
    max_requests, size, size_or_zero, AppSource, AppSpec, Invalid, PoolSpec,
};
use ngx_wsgi_fuzz::records;

fn refused(e: &Invalid, args: &[String]) {
    assert!(!e.reason.is_empty());
    assert!(e.what == "value" || e.what == "parameter");
    assert!(
        args.contains(&e.arg) || e.arg.is_empty(),
        "{:?} not among {args:?}",
        e.arg
    );
}

/// Python's rule for a dotted name, put another way than the parser puts
/// it: dot-separated words of letters, digits and "_", none empty or
/// starting with a digit.
fn identifier(s: &str) -> bool {
    let word = |w: &str| !w.is_empty() && !w.starts_with(|c: char| c.is_numeric());
    s.split('.').all(word)
        && s.chars()
            .all(|c| c == '.' || c == '_' || c.is_alphanumeric())
}

fuzz_target!(|data: &[u8]| {
    for record in records(data) {
        let Ok(line) = std::str::from_utf8(&record) else {
            continue; // nginx's configuration is read as bytes; ours are UTF-8 words
        };
        let mut words = line.split_ascii_whitespace().map(str::to_owned);
        let Some(directive) = words.next() else {
            continue;
        };
        let args: Vec<String> = words.collect();
        if args.is_empty() {
            continue; // nginx refuses a directive without its arguments
        }
        match directive.as_str() {
            "wsgi_pass" => match AppSpec::parse(&args[0]) {
                Ok(spec) => {
                    assert!(identifier(&spec.callable));
                    match &spec.source {
                        AppSource::Module(m) => {
                            assert!(identifier(m));
                            assert_eq!(AppSpec::parse(&spec.display()).unwrap(), spec);
                        }
                        AppSource::File(f) => {
                            assert!(!f.contains(':') && (f.ends_with(".py") || f.contains('/')))
                        }
                    }
                }
                Err(e) => refused(&e, &args),
            },
            "wsgi_threads" => match PoolSpec::parse(&args) {
                Ok(Some(pool)) => {
                    assert!((1..=4096).contains(&pool.threads));
                    let again = [
                        pool.threads.to_string(),
                        format!("max_queue={}", pool.max_queue),
                    ];
                    assert_eq!(PoolSpec::parse(&again).unwrap(), Some(pool));
                }
                Ok(None) => assert_eq!(args[0].parse::<usize>().ok(), Some(0)),
                Err(e) => refused(&e, &args),
            },
            "wsgi_max_requests" => match max_requests(&args) {
                Ok((count, jitter)) => {
                    assert!(count > 0);
                    let again = [count.to_string(), format!("jitter={jitter}")];
                    assert_eq!(max_requests(&again).unwrap(), (count, jitter));
                }
                Err(e) => refused(&e, &args),
            },
            "wsgi_max_rss" => match size(&args[0]) {
                Ok(n) => {
                    assert!(n > 0);
                    assert_eq!(size(&n.to_string()).unwrap(), n);
                }
                Err(e) => refused(&e, &args),
            },
            "wsgi_max_temp_file_size" => match size_or_zero(&args[0]) {
                Ok(n) => assert_eq!(size_or_zero(&n.to_string()).unwrap(), n),
                Err(e) => refused(&e, &args),
            },
            _ => {}
        }
    }
});
