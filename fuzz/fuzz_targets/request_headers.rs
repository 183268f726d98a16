//! Request header fields → HTTP_* variables. Input: a first record
//! `underscores` or anything else (`underscores_in_headers on` or off),
//! then `name: value` fields as nginx hands them (lower-case names). The
//! variables: one per distinct name passed, in first-seen order, repeats
//! joined with ", " (Cookie with "; "); Content-Type and -Length never;
//! names with "_" only with underscores on; and each name's key is
//! HTTP_ + the name upper-cased with "-" as "_", byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_wsgi_module::fuzzing::{add_headers, cgi_name, VarName, Vars};
use ngx_wsgi_fuzz::{field, records};

fuzz_target!(|data: &[u8]| {
    let records = records(data);
    let underscores = records[0] == b"underscores";
    let fields: Vec<(Vec<u8>, Vec<u8>)> = records[1..]
        .iter()
        .map(|r| {
            let (name, value) = field(r);
            (name.to_ascii_lowercase(), value.to_vec())
        })
        .collect();
    let mut vars = Vars::reuse(false);
    add_headers(
        &mut vars,
        fields.iter().map(|(n, v)| (&n[..], &v[..])),
        underscores,
    );

    let mut want: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (name, value) in &fields {
        if name == b"content-type"
            || name == b"content-length"
            || (!underscores && name.contains(&b'_'))
        {
            continue;
        }
        match want.iter_mut().find(|(n, _)| n == name) {
            Some((_, joined)) => {
                joined.extend_from_slice(if name == b"cookie" { b"; " } else { b", " });
                joined.extend_from_slice(value);
            }
            None => want.push((name.clone(), value.clone())),
        }
    }
    let got: Vec<(Vec<u8>, Vec<u8>)> = vars
        .iter()
        .filter_map(|(name, value)| match name {
            VarName::Header(n) => Some((n.to_vec(), value.to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(got, want);

    for (name, _) in &got {
        let key = cgi_name(name);
        let key: Vec<char> = key.chars().collect();
        assert_eq!(key.len(), 5 + name.len());
        assert_eq!(key[..5].iter().collect::<String>(), "HTTP_");
        for (&b, &c) in name.iter().zip(&key[5..]) {
            let want = if b == b'-' {
                '_'
            } else {
                (b as char).to_ascii_uppercase()
            };
            assert_eq!(c, want, "{name:?}");
        }
        assert!(!key.contains(&'-') && !key.iter().any(char::is_ascii_lowercase));
    }
    vars.recycle();
});
