//! What the fuzz targets share: their inputs are text records, so that the
//! seeds in seeds/ are readable and the fuzzer mutates from them.

/// Lines of `data`, each with its escapes decoded: `\n`, `\r`, `\0` and
/// `\\` stand for the byte (a record cannot hold a raw line feed).
pub fn records(data: &[u8]) -> Vec<Vec<u8>> {
    data.split(|&b| b == b'\n').map(unescape).collect()
}

fn unescape(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut bytes = line.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'0') => out.push(0),
            Some(&other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    out
}

/// `name: value` (the value as given, blanks included), or the whole
/// record as a name with no value when it has no colon.
pub fn field(record: &[u8]) -> (&[u8], &[u8]) {
    match record.iter().position(|&b| b == b':') {
        Some(i) => (&record[..i], &record[i + 1..]),
        None => (record, b""),
    }
}
