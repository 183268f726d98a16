//! SCRIPT_NAME mounting: PATH_INFO is what follows the mount point, only
//! when the path is the mount point or below it. Input: `path`, then
//! `prefix`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_wsgi_module::fuzzing::mounted_path;
use ngx_wsgi_fuzz::records;

fuzz_target!(|data: &[u8]| {
    let records = records(data);
    let path = &records[0];
    let prefix = records.get(1).map(Vec::as_slice).unwrap_or(b"");
    match mounted_path(path, prefix) {
        Some(rest) => {
            assert_eq!(
                [prefix, rest].concat(),
                *path,
                "prefix + PATH_INFO is the path"
            );
            assert!(
                rest.is_empty() || rest[0] == b'/',
                "PATH_INFO {rest:?} starts a segment"
            );
        }
        None => assert!(
            !path.starts_with(prefix) || path[prefix.len()] != b'/',
            "{path:?} is under {prefix:?}"
        ),
    }
});
