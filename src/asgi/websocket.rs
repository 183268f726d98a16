//! RFC 6455 frames: the client's, read from bytes as they arrive
//! (`FrameReader`: masking enforced, fragments reassembled, control frames
//! between them, a size limit, UTF-8 checked), and the server's, made
//! (`frame`). No extensions are negotiated, so the reserved bits must be 0.

/// What the client's frames amount to, one at a time.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole message (its fragments joined).
    Message {
        text: bool,
        data: Vec<u8>,
    },
    Ping(Vec<u8>),
    Pong,
    /// The client's close frame: its code (1005: none given) and reason.
    Close {
        code: u16,
        reason: String,
    },
}

/// Why the connection must close: the close code and its reason.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: String,
}

fn violation(code: u16, reason: impl Into<String>) -> Violation {
    Violation {
        code,
        reason: reason.into(),
    }
}

/// Protocol error, message too big, invalid data (RFC 6455 7.4.1).
pub const PROTOCOL_ERROR: u16 = 1002;
pub const TOO_BIG: u16 = 1009;
pub const INVALID_DATA: u16 = 1007;

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The client's bytes as they arrive, and the message being reassembled.
pub struct FrameReader {
    /// Bytes not yet parsed start at `start`.
    buf: Vec<u8>,
    start: usize,
    /// The fragments so far of a message, and whether it is text.
    message: Vec<u8>,
    message_text: Option<bool>,
    /// The largest message the app may get.
    max_message: usize,
}

impl FrameReader {
    pub fn new(max_message: usize) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            start: 0,
            message: Vec::new(),
            message_text: None,
            max_message,
        }
    }

    /// Bytes from the socket, as they came.
    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            // What was parsed goes, once it is most of the buffer.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// An idle connection keeps no buffer: its memory goes back once
    /// everything read is parsed.
    fn let_go(&mut self) {
        if self.start == self.buf.len() && self.buf.capacity() > 4096 {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// The next event of the bytes fed so far; None until a frame is whole.
    pub fn next(&mut self) -> Result<Option<Event>, Violation> {
        loop {
            let Some(frame) = self.frame()? else {
                self.let_go();
                return Ok(None);
            };
            if let Some(event) = self.event(frame)? {
                return Ok(Some(event));
            }
        }
    }

    /// One whole frame, unmasked: (fin, opcode, payload).
    fn frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, Violation> {
        let b = &self.buf[self.start..];
        if b.len() < 2 {
            return Ok(None);
        }
        let (fin, rsv, opcode) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0F);
        if rsv != 0 {
            return Err(violation(
                PROTOCOL_ERROR,
                "reserved bits set (no extension was negotiated)",
            ));
        }
        if b[1] & 0x80 == 0 {
            return Err(violation(PROTOCOL_ERROR, "a client frame must be masked"));
        }
        let (len, at) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            126 | 127 => return Ok(None),
            n => (n as u64, 2),
        };
        if len >> 63 != 0 {
            return Err(violation(
                PROTOCOL_ERROR,
                "a 64-bit length with its most significant bit set",
            ));
        }
        let control = opcode & 0x8 != 0;
        if control && (len > 125 || !fin) {
            return Err(violation(
                PROTOCOL_ERROR,
                "a control frame must be whole and at most 125 bytes",
            ));
        }
        if !control && (self.message.len() as u64).saturating_add(len) > self.max_message as u64 {
            return Err(violation(
                TOO_BIG,
                format!(
                    "a message over {} bytes (asgi_websocket_max_message_size)",
                    self.max_message
                ),
            ));
        }
        let total = (at as u64 + 4).saturating_add(len);
        if (b.len() as u64) < total {
            return Ok(None);
        }
        let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        let body = &b[at + 4..total as usize];
        let payload: Vec<u8> = body
            .iter()
            .enumerate()
            .map(|(i, byte)| byte ^ mask[i & 3])
            .collect();
        self.start += total as usize;
        Ok(Some((fin, opcode, payload)))
    }

    /// What a frame means: control frames at once, data frames when their
    /// message is whole.
    fn event(
        &mut self,
        (fin, opcode, payload): (bool, u8, Vec<u8>),
    ) -> Result<Option<Event>, Violation> {
        match opcode {
            OP_PING => Ok(Some(Event::Ping(payload))),
            OP_PONG => Ok(Some(Event::Pong)),
            OP_CLOSE => close_event(&payload).map(Some),
            OP_TEXT | OP_BINARY => {
                if self.message_text.is_some() {
                    return Err(violation(
                        PROTOCOL_ERROR,
                        "a new message began inside a fragmented one",
                    ));
                }
                let text = opcode == OP_TEXT;
                if fin {
                    return message(text, payload).map(Some);
                }
                self.message_text = Some(text);
                self.message = payload;
                Ok(None)
            }
            OP_CONTINUATION => {
                let Some(text) = self.message_text else {
                    return Err(violation(
                        PROTOCOL_ERROR,
                        "a continuation frame without a message to continue",
                    ));
                };
                self.message.extend_from_slice(&payload);
                if !fin {
                    return Ok(None);
                }
                self.message_text = None;
                message(text, std::mem::take(&mut self.message)).map(Some)
            }
            other => Err(violation(
                PROTOCOL_ERROR,
                format!("unknown opcode {other:#x}"),
            )),
        }
    }
}

fn message(text: bool, data: Vec<u8>) -> Result<Event, Violation> {
    if text && std::str::from_utf8(&data).is_err() {
        return Err(violation(INVALID_DATA, "a text message that is not UTF-8"));
    }
    Ok(Event::Message { text, data })
}

fn close_event(payload: &[u8]) -> Result<Event, Violation> {
    match payload {
        [] => Ok(Event::Close {
            code: 1005,
            reason: String::new(),
        }),
        [_] => Err(violation(PROTOCOL_ERROR, "a close frame of 1 byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            // Codes a peer may send (RFC 6455 7.4).
            let valid = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
            if !valid {
                return Err(violation(
                    PROTOCOL_ERROR,
                    format!("close code {code} is not one a client may send"),
                ));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| violation(INVALID_DATA, "a close reason that is not UTF-8"))?;
            Ok(Event::Close {
                code,
                reason: reason.to_owned(),
            })
        }
    }
}

/// The length of a server frame's header for a payload of `len` bytes.
pub fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

/// Writes a server frame's header (final, unmasked) into `out`, which is
/// `header_len(len)` bytes.
pub fn write_header(out: &mut [u8], opcode: u8, len: usize) {
    out[0] = 0x80 | opcode;
    match len {
        0..=125 => out[1] = len as u8,
        126..=65535 => {
            out[1] = 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out[1] = 127;
            out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// A whole server frame.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let at = header_len(payload.len());
    let mut out = vec![0; at + payload.len()];
    write_header(&mut out, opcode, payload.len());
    out[at..].copy_from_slice(payload);
    out
}

/// A close frame's payload: the code, then the reason cut to fit 125 bytes
/// at a character boundary. 1005 and 1006 are never sent: no payload.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    if code == 1005 || code == 1006 {
        return Vec::new();
    }
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = code.to_be_bytes().to_vec();
    out.extend_from_slice(&reason.as_bytes()[..cut]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with a fixed key.
    fn client(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    #[test]
    fn a_text_message_byte_by_byte() {
        let mut r = FrameReader::new(1 << 20);
        let bytes = client(true, OP_TEXT, "héllo".as_bytes());
        for (i, b) in bytes.iter().enumerate() {
            r.feed(&[*b]);
            let got = r.next().unwrap();
            if i + 1 < bytes.len() {
                assert_eq!(got, None);
            } else {
                assert_eq!(
                    got,
                    Some(Event::Message {
                        text: true,
                        data: "héllo".as_bytes().to_vec()
                    })
                );
            }
        }
    }

    #[test]
    fn fragments_with_a_ping_between_them() {
        let mut r = FrameReader::new(1 << 20);
        r.feed(&client(false, OP_BINARY, b"ab"));
        r.feed(&client(true, OP_PING, b"p"));
        r.feed(&client(false, OP_CONTINUATION, b"cd"));
        r.feed(&client(true, OP_CONTINUATION, b"e"));
        assert_eq!(r.next().unwrap(), Some(Event::Ping(b"p".to_vec())));
        assert_eq!(
            r.next().unwrap(),
            Some(Event::Message {
                text: false,
                data: b"abcde".to_vec()
            })
        );
        assert_eq!(r.next().unwrap(), None);
    }

    #[test]
    fn lengths_of_16_and_64_bits() {
        let mut r = FrameReader::new(1 << 20);
        let big = vec![7u8; 70_000];
        r.feed(&client(true, OP_BINARY, &vec![1u8; 300]));
        r.feed(&client(true, OP_BINARY, &big));
        assert_eq!(
            r.next().unwrap(),
            Some(Event::Message {
                text: false,
                data: vec![1u8; 300]
            })
        );
        assert_eq!(
            r.next().unwrap(),
            Some(Event::Message {
                text: false,
                data: big
            })
        );
    }

    #[test]
    fn violations() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (vec![0x81, 0x01, b'x'], PROTOCOL_ERROR),         // unmasked
            (client(true, 0x1 | 0x40, b"x"), PROTOCOL_ERROR), // RSV1
            (client(false, OP_PING, b"x"), PROTOCOL_ERROR),   // fragmented control
            (client(true, OP_CONTINUATION, b"x"), PROTOCOL_ERROR),
            (client(true, OP_TEXT, &[0xff, 0xfe]), INVALID_DATA),
            (client(true, OP_CLOSE, &[0x03, 0xe8, 0xff]), INVALID_DATA),
            (client(true, OP_CLOSE, &[0x03, 0xed]), PROTOCOL_ERROR), // 1005 may not be sent
            (client(true, 0x3, b""), PROTOCOL_ERROR),
            (client(true, OP_BINARY, &[0u8; 11]), TOO_BIG),
            // A length near 2^64 after a fragment (found by the fuzzer: the
            // sums wrapped, and the frame was sliced out of bounds).
            (
                [
                    client(false, OP_TEXT, b"abc"),
                    vec![
                        0x80, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4,
                    ],
                ]
                .concat(),
                TOO_BIG,
            ),
            (
                vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
                PROTOCOL_ERROR,
            ),
        ];
        for (bytes, code) in cases {
            let mut r = FrameReader::new(10);
            r.feed(&bytes);
            assert_eq!(r.next().map_err(|v| v.code), Err(code), "{bytes:?}");
        }
    }

    #[test]
    fn close_frames() {
        let mut r = FrameReader::new(10);
        r.feed(&client(true, OP_CLOSE, &[0x03, 0xe8, b'b', b'y', b'e']));
        r.feed(&client(true, OP_CLOSE, b""));
        assert_eq!(
            r.next().unwrap(),
            Some(Event::Close {
                code: 1000,
                reason: "bye".into()
            })
        );
        assert_eq!(
            r.next().unwrap(),
            Some(Event::Close {
                code: 1005,
                reason: String::new()
            })
        );
        assert_eq!(close_payload(1000, "ok"), vec![0x03, 0xe8, b'o', b'k']);
        assert_eq!(close_payload(1000, &"é".repeat(100)).len(), 2 + 122);
        assert!(close_payload(1006, "x").is_empty());
    }

    #[test]
    fn server_frames() {
        assert_eq!(frame(OP_TEXT, b"hi"), vec![0x81, 2, b'h', b'i']);
        assert_eq!(&frame(OP_BINARY, &[0; 200])[..4], &[0x82, 126, 0, 200]);
        assert_eq!(
            &frame(OP_BINARY, &vec![0; 70_000])[..10],
            &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
    }
}
