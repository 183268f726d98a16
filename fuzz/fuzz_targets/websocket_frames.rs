//! A WebSocket client's bytes, as the module reads them (RFC 6455 frames):
//! whatever arrives, the reader never panics, gives the same events however
//! the bytes are split across reads, stops at the first violation with a
//! code a server may send, and every message it gives is within the limit
//! (text as UTF-8). Input: the limit (a byte), then the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_wsgi_module::fuzzing::{Event, FrameReader};

/// Every event until none is whole, or the violation's code.
fn drain(reader: &mut FrameReader, out: &mut Vec<Result<Event, u16>>) -> bool {
    loop {
        match reader.next() {
            Ok(Some(event)) => out.push(Ok(event)),
            Ok(None) => return true,
            Err(violation) => {
                out.push(Err(violation.code));
                return false;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&limit, bytes)) = data.split_first() else {
        return;
    };
    let max = limit as usize * 16;

    let mut whole = Vec::new();
    let mut reader = FrameReader::new(max);
    reader.feed(bytes);
    drain(&mut reader, &mut whole);

    // Byte by byte, as a slow client's reads give them.
    let mut split = Vec::new();
    let mut reader = FrameReader::new(max);
    for b in bytes {
        reader.feed(&[*b]);
        if !drain(&mut reader, &mut split) {
            break;
        }
    }
    assert_eq!(whole, split, "the same events however the bytes are split");

    for event in &whole {
        match event {
            Ok(Event::Message { text, data }) => {
                assert!(data.len() <= max, "a message of {} bytes over {max}", data.len());
                assert!(!text || std::str::from_utf8(data).is_ok(), "text that is not UTF-8");
            }
            Ok(Event::Ping(payload)) => assert!(payload.len() <= 125),
            Ok(Event::Close { code, .. }) => {
                assert!(matches!(code, 1000..=1003 | 1005 | 1007..=1011 | 3000..=4999))
            }
            Ok(Event::Pong) => {}
            Err(code) => assert!(matches!(code, 1002 | 1007 | 1009), "close code {code}"),
        }
    }
    if let Some(pos) = whole.iter().position(Result::is_err) {
        assert_eq!(pos, whole.len() - 1, "nothing after a violation");
    }
});
