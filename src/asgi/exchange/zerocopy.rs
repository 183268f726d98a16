//! `http.response.zerocopysend`: a range of a file the app has open goes
//! to nginx as a file buffer, with no copy through Python; nginx sends it
//! with sendfile where it can. nginx gets a duplicate of the descriptor,
//! which the request pool closes (the app may close its file at once); the
//! pieces of one file that a response sends one after another share it.

use std::cell::RefCell;
use std::os::fd::BorrowedFd;
use std::rc::Rc;

use ngx::ffi::ngx_file_t;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::Exchange;
use crate::nginx::file;

/// The bytes of a file one message sends.
pub(super) struct Range {
    pub offset: u64,
    pub len: usize,
    /// The file's identity: a later message's descriptor may be another
    /// file under the same number.
    dev: u64,
    ino: u64,
}

/// The file nginx has from the response's last zerocopysend.
pub(super) struct SentFile {
    /// The app's descriptor it duplicates.
    source: i32,
    dev: u64,
    ino: u64,
    file: *mut ngx_file_t,
}

/// The range a message names: `count` bytes (None: to the end) from
/// `offset` (None: the file's position) of the regular file open as `fd`.
pub(super) fn range(fd: i32, offset: Option<u64>, count: Option<u64>) -> PyResult<Range> {
    if fd < 0 {
        return Err(PyValueError::new_err(format!(
            "'file' has no descriptor ({fd})"
        )));
    }
    // SAFETY: an all-zero stat is valid; fstat fills it or fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only reads the descriptor's metadata.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(PyValueError::new_err("'file' must be a regular file"));
    }
    let size = st.st_size as u64;
    let offset = match offset {
        Some(offset) => offset,
        None => position(fd)?,
    };
    if offset > size {
        return Err(PyValueError::new_err(format!(
            "offset {offset} is past the file's end ({size} bytes)"
        )));
    }
    let count = count.unwrap_or(size - offset);
    if count > size - offset {
        return Err(PyValueError::new_err(format!(
            "offset {offset} and count {count} run past the file's end ({size} bytes)"
        )));
    }
    Ok(Range {
        offset,
        len: usize::try_from(count).map_err(|e| PyValueError::new_err(e.to_string()))?,
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

impl Range {
    /// A message without an offset moves the file's position past what it
    /// sent, as `os.sendfile` does.
    pub fn advance_position(&self, fd: i32, offset: Option<u64>) -> PyResult<()> {
        if offset.is_some() {
            return Ok(());
        }
        let to = (self.offset + self.len as u64) as libc::off_t;
        // SAFETY: lseek only moves the descriptor's position.
        if unsafe { libc::lseek(fd, to, libc::SEEK_SET) } < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }
}

fn position(fd: i32) -> PyResult<u64> {
    // SAFETY: lseek with SEEK_CUR and 0 only reads the position.
    let at = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    if at < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(at as u64)
}

impl Exchange {
    /// nginx's file for the app's `fd` (of `range`'s file): the last one
    /// when it is the same, else a duplicate the request pool owns. None
    /// when nginx has no memory for it.
    pub(super) fn file_for(
        this: &Rc<RefCell<Exchange>>,
        fd: i32,
        range: &Range,
    ) -> PyResult<Option<*mut ngx_file_t>> {
        let mut ex = this.borrow_mut();
        if let Some(sent) = &ex.sent_file {
            if sent.source == fd && sent.dev == range.dev && sent.ino == range.ino {
                return Ok(Some(sent.file));
            }
        }
        // SAFETY: `range` just took the descriptor's metadata, on this
        // thread, which holds the GIL: the app cannot close it meanwhile.
        let duplicate = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
        // SAFETY: the caller sent the head: the request is live.
        let Some(file) = (unsafe { file::owned_by_request_pool(ex.r, duplicate, b"zerocopysend") })
        else {
            return Ok(None);
        };
        ex.sent_file = Some(SentFile {
            source: fd,
            dev: range.dev,
            ino: range.ino,
            file,
        });
        Ok(Some(file))
    }
}
