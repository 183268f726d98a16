//! Thread mode: what a response's client cannot take yet goes, past the
//! hand-off's window, to a temp file, so that the app's thread goes on and
//! is free once the app has finished (as nginx's upstream modules buffer a
//! slow client's response to disk).
//!
//! The pool thread creates the file (in `wsgi_temp_path`, nginx-style name
//! and levels) at the response's first spill and removes its name at once:
//! whatever happens to the response or the worker, nothing is left on disk,
//! and the space is freed when the descriptor closes, once the request and
//! the thread are done with it. The thread appends; the event loop has
//! nginx send each range (`sendfile`, or nginx's reads) in its place among
//! the chunks, once the thread has written it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;

use crate::config::Spill;
use crate::test_hooks::{Hook, Hooks};

/// A response's temp file, nameless on disk.
pub struct SpillFile {
    fd: OwnedFd,
    /// The name it had, for error_log.
    pub path: PathBuf,
}

impl SpillFile {
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A pool thread's side of one response's spilling.
pub struct Spiller {
    spill: Arc<Spill>,
    file: Option<Arc<SpillFile>>,
    /// Bytes written so far: the next range's offset.
    end: u64,
    /// `wsgi_max_temp_file_size` reached: the thread waits for the client
    /// from now on.
    full: bool,
    test_hooks: Hooks,
}

/// Where a spilled range is: its file and offset.
pub struct Spilled {
    pub file: Arc<SpillFile>,
    pub offset: u64,
}

impl Spiller {
    pub fn new(spill: Arc<Spill>, test_hooks: Hooks) -> Spiller {
        Spiller {
            spill,
            file: None,
            end: 0,
            full: false,
            test_hooks,
        }
    }

    /// Whether the thread may go on producing while its client cannot
    /// take more.
    pub fn can_spill(&self) -> bool {
        !self.full
    }

    /// Appends `data` to the file, created at the first call, without the
    /// GIL. None when it would take the file past
    /// `wsgi_max_temp_file_size` (the data is not written: it waits in
    /// memory, and the thread for the client, as without spilling).
    pub fn write(&mut self, py: Python<'_>, data: &[u8]) -> Result<Option<Spilled>, String> {
        if self.full || self.end + data.len() as u64 > self.spill.max {
            self.full = true;
            return Ok(None);
        }
        let file = match &self.file {
            Some(file) => file.clone(),
            None => {
                let file = Arc::new(create(&self.spill.dir, &self.spill.levels).map_err(|e| {
                    format!(
                        "wsgi: cannot create a temp file in \"{}\" (wsgi_temp_path): {e}",
                        self.spill.dir.display()
                    )
                })?);
                self.file = Some(file.clone());
                file
            }
        };
        let offset = self.end;
        let fails = self.test_hooks.armed(Hook::SpillWriteFails);
        // The bytes object stays referenced by the caller and is immutable:
        // its data may be read without the GIL.
        let data = Unguarded(data);
        py.detach(|| write_all(file.fd(), data, offset, fails))
            .map_err(|e| {
                format!(
                    "wsgi: writing the response to the temp file \"{}\" failed: {e}; aborting the response",
                    file.path.display()
                )
            })?;
        self.end += data.0.len() as u64;
        Ok(Some(Spilled { file, offset }))
    }
}

/// A slice read on another thread while its owner is held by the caller.
#[derive(Clone, Copy)]
struct Unguarded<'a>(&'a [u8]);

// SAFETY: only read, while the caller (holding a reference to the
// immutable bytes object) waits for the closure to return.
unsafe impl Send for Unguarded<'_> {}

fn write_all(fd: RawFd, data: Unguarded<'_>, offset: u64, fails: bool) -> io::Result<()> {
    if fails {
        // Test build: a full disk.
        return Err(io::Error::from_raw_os_error(libc::ENOSPC));
    }
    let mut done = 0;
    while done < data.0.len() {
        let rest = &data.0[done..];
        // SAFETY: `rest` is readable for its length.
        let n = unsafe {
            libc::pwrite(
                fd,
                rest.as_ptr().cast(),
                rest.len(),
                (offset + done as u64) as libc::off_t,
            )
        };
        match n {
            n if n > 0 => done += n as usize,
            0 => return Err(io::Error::from_raw_os_error(libc::ENOSPC)),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// The worker's next temp file number (nginx's names: ten digits).
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Creates a temp file in `dir`, in the subdirectory its name's last digits
/// give for `levels` (created as needed), and removes its name.
fn create(dir: &Path, levels: &[usize; 3]) -> io::Result<SpillFile> {
    if NEXT.load(Ordering::Relaxed) == 0 {
        // Workers start apart: the pid spreads their numbers.
        let _ = NEXT.compare_exchange(
            0,
            std::process::id().wrapping_mul(7919) | 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    for _ in 0..64 {
        let name = format!("{:010}", NEXT.fetch_add(1, Ordering::Relaxed));
        let path = hashed(dir, levels, &name);
        match open_in_levels(&path) {
            Ok(fd) => {
                // The descriptor is all the response needs.
                let _ = std::fs::remove_file(&path);
                return Ok(SpillFile { fd, path });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temp file name",
    ))
}

/// `dir/N/NN/name` for levels 1 2, as nginx's ngx_create_hashed_filename:
/// each level is the next digits from the name's end.
fn hashed(dir: &Path, levels: &[usize; 3], name: &str) -> PathBuf {
    let mut path = dir.to_path_buf();
    let mut end = name.len();
    for &level in levels.iter().take_while(|&&l| l > 0) {
        let start = end.saturating_sub(level);
        path.push(&name[start..end]);
        end = start;
    }
    path.push(name);
    path
}

/// Opens `path` as a new file, making its level directories first when
/// they are missing (as nginx makes those of its temp paths).
fn open_in_levels(path: &Path) -> io::Result<OwnedFd> {
    match open_new(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = path.parent().ok_or(e)?;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
            open_new(path)
        }
        opened => opened,
    }
}

fn open_new(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: a plain open of a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor, owned from here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hash_into_levels_as_nginx_s() {
        let dir = Path::new("/t");
        assert_eq!(
            hashed(dir, &[1, 2, 0], "0000000123"),
            Path::new("/t/3/12/0000000123")
        );
        assert_eq!(
            hashed(dir, &[0, 0, 0], "0000000123"),
            Path::new("/t/0000000123")
        );
        assert_eq!(
            hashed(dir, &[2, 2, 2], "0000054321"),
            Path::new("/t/21/43/05/0000054321")
        );
    }

    #[test]
    fn a_spill_file_has_no_name_and_keeps_what_was_written() {
        Python::initialize();
        let dir = std::env::temp_dir().join(format!("ngx_wsgi_spill_{}", std::process::id()));
        let spill = Arc::new(Spill {
            dir: dir.clone(),
            levels: [1, 2, 0],
            max: 10,
        });
        let mut spiller = Spiller::new(spill, Hooks::default());
        Python::attach(|py| {
            let first = spiller.write(py, b"hello").unwrap().unwrap();
            let second = spiller.write(py, b"world").unwrap().unwrap();
            assert_eq!((first.offset, second.offset), (0, 5));
            assert!(spiller.write(py, b"!").unwrap().is_none(), "past the limit");
            assert!(!spiller.can_spill());
            let mut buf = [0u8; 10];
            // SAFETY: reading into a local buffer.
            let n = unsafe { libc::pread(first.file.fd(), buf.as_mut_ptr().cast(), 10, 0) };
            assert_eq!(&buf[..n as usize], b"helloworld");
            assert!(!first.file.path.exists(), "its name is gone");
        });
        let files = walk(&dir);
        assert!(files.is_empty(), "nothing left in {dir:?}: {files:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
