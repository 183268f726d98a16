//! start_response's checks: a status line, then `name: value` fields (the
//! app's str objects as latin-1 bytes). Whatever is accepted can go on the
//! wire: no control character in the status line or a value (so no CR or
//! LF), names are tokens, and the head gives back exactly the fields
//! accepted (X-Accel-* aside), in order, with the value's blanks trimmed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_wsgi_module::fuzzing::Head;
use ngx_wsgi_fuzz::{field, records};

const ACCEL: [&[u8]; 5] = [
    b"x-accel-redirect",
    b"x-accel-limit-rate",
    b"x-accel-charset",
    b"x-accel-buffering",
    b"x-accel-expires",
];

fn is_control(b: u8) -> bool {
    (b < b' ' && b != b'\t') || b == 0x7f
}

fn trimmed(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let records = records(data);
    let status = &records[0];
    let Ok(mut head) = Head::new(status) else {
        return;
    };
    assert!((200..=599).contains(&head.status), "status {}", head.status);
    assert!(status[..3].iter().all(u8::is_ascii_digit) && status[3] == b' ');
    assert!(
        !status.iter().any(|&b| is_control(b)),
        "a control in {status:?}"
    );
    assert_eq!(head.status_line(), &status[..]);

    let mut kept: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut content_length = None;
    for record in &records[1..] {
        let (name, value) = field(record);
        if head.add_field(name, value).is_err() {
            continue;
        }
        assert!(!name.is_empty());
        assert!(
            name.iter()
                .all(|&b| b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(&b)),
            "not a token: {name:?}"
        );
        let value = trimmed(value);
        assert!(
            !value.iter().any(|&b| is_control(b)),
            "a control in {value:?}"
        );
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = Some(std::str::from_utf8(value).unwrap().parse::<u64>().unwrap());
        }
        // The X-Accel fields nginx acts on are for nginx, not the client.
        let for_nginx = ACCEL.iter().any(|a| name.eq_ignore_ascii_case(a));
        if !for_nginx {
            kept.push((name.to_vec(), value.to_vec()));
        }
    }
    let fields: Vec<(Vec<u8>, Vec<u8>)> = head
        .fields()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(fields, kept, "the head's fields are the accepted ones");
    assert_eq!(head.content_length, content_length);
});
