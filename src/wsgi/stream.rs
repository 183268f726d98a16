//! `wsgi.input` under `wsgi_request_buffering off`: the body as the client
//! sends it. The event loop puts what nginx has read into the request's
//! `BodyStream`, as far as its `WINDOW` has room; the app's thread takes
//! it out as `read()` and `readline()` ask, waiting without the GIL.
//!
//! ```text
//! client ─▶ nginx's buffer ─▶ BodyStream (WINDOW) ─▶ the app's read()
//!   ▲ nginx reads on  ◀── the loop is woken ◀── room made (stalled)
//! ```
//!
//! A full window leaves nginx's buffer full, and nginx then stops reading
//! from the client: a slow app holds back the upload instead of the
//! worker's memory taking it. A wait for the client is not the app's time:
//! `wsgi_read_timeout` leaves it to `client_body_timeout`.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use pyo3::create_exception;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::watch::Watch;

/// How much of the body may wait for the app in the stream, beyond
/// nginx's own buffer (`client_body_buffer_size`).
pub const WINDOW: usize = 256 * 1024;

create_exception!(
    ngx_wsgi,
    RequestBodyError,
    PyOSError,
    "Raised by wsgi.input when the request body cannot be read to its end."
);

/// Why a body cannot be read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFault {
    /// Nothing came within `client_body_timeout`.
    TimedOut,
    /// The client closed the connection (or reset the HTTP/2 stream).
    ClientClosed,
    /// A chunked body grew past `client_max_body_size`.
    TooLarge,
    /// A malformed chunked body.
    Invalid,
    /// The request ended first (answered, timed out, the worker exits).
    RequestOver,
    /// nginx failed to read it.
    Failed,
}

impl BodyFault {
    /// What went wrong, for error_log and the exception.
    pub fn describe(self) -> &'static str {
        match self {
            BodyFault::TimedOut => "the client sent nothing within client_body_timeout",
            BodyFault::ClientClosed => "the client closed the connection before the body's end",
            BodyFault::TooLarge => "the body is larger than client_max_body_size",
            BodyFault::Invalid => "the client sent an invalid chunked body",
            BodyFault::RequestOver => "the request is over",
            BodyFault::Failed => "nginx failed to read the body",
        }
    }

    fn errno(self) -> i32 {
        match self {
            BodyFault::TimedOut => libc::ETIMEDOUT,
            BodyFault::ClientClosed => libc::ECONNRESET,
            BodyFault::TooLarge => libc::EFBIG,
            BodyFault::Invalid => libc::EPROTO,
            BodyFault::RequestOver => libc::ECONNABORTED,
            BodyFault::Failed => libc::EIO,
        }
    }

    fn error(self) -> PyErr {
        let message = format!("reading the request body failed: {}", self.describe());
        RequestBodyError::new_err((self.errno(), message))
    }
}

/// What the loop has put in and the app not taken yet.
#[derive(Default)]
struct Pipe {
    pieces: VecDeque<Vec<u8>>,
    /// Bytes of the first piece already taken.
    offset: usize,
    queued: usize,
    /// The body's end: complete, or the fault that ended it.
    end: Option<Result<(), BodyFault>>,
    /// The loop left data with nginx for want of room: it is to be woken
    /// when room is made.
    stalled: bool,
    /// The app's thread waits for data.
    reader_waiting: bool,
}

impl Pipe {
    /// Copies the next `dst.len()` bytes (no more than are queued) out.
    fn copy_out(&mut self, dst: &mut [u8]) {
        let mut at = 0;
        while at < dst.len() {
            let Some(piece) = self.pieces.front() else {
                break;
            };
            let n = (piece.len() - self.offset).min(dst.len() - at);
            dst[at..at + n].copy_from_slice(&piece[self.offset..self.offset + n]);
            at += n;
            self.offset += n;
            if self.offset == piece.len() {
                self.pieces.pop_front();
                self.offset = 0;
            }
        }
        self.queued -= at;
    }

    /// How many of the queued bytes the next take has, at most `max`:
    /// with `line`, up to and with the first newline; and whether it ends
    /// on one.
    fn next_take(&self, max: usize, line: bool) -> (usize, bool) {
        let max = max.min(self.queued);
        if !line {
            return (max, false);
        }
        let mut seen = 0;
        let mut offset = self.offset;
        for piece in &self.pieces {
            let part = &piece[offset..piece.len().min(offset.saturating_add(max - seen))];
            if let Some(i) = part.iter().position(|&b| b == b'\n') {
                return (seen + i + 1, true);
            }
            seen += part.len();
            offset = 0;
            if seen == max {
                break;
            }
        }
        (max, false)
    }
}

/// One request's body on its way from the event loop to the app.
pub struct BodyStream {
    pipe: Mutex<Pipe>,
    arrived: Condvar,
    /// Wakes the event loop for the request, to read on.
    wake_loop: Box<dyn Fn() + Send + Sync>,
}

impl BodyStream {
    pub fn new(wake_loop: Box<dyn Fn() + Send + Sync>) -> Arc<BodyStream> {
        Arc::new(BodyStream {
            pipe: Mutex::new(Pipe::default()),
            arrived: Condvar::new(),
            wake_loop,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pipe> {
        self.pipe.lock().unwrap_or_else(|p| p.into_inner())
    }

    // --- the event loop's side ---

    /// Takes as much of `data` as the window has room for; how much. Less
    /// than all: the stream is stalled until the app makes room.
    pub fn offer(&self, data: &[u8]) -> usize {
        let mut pipe = self.lock();
        if pipe.end.is_some() {
            return 0;
        }
        let n = data.len().min(WINDOW - pipe.queued);
        if n > 0 {
            pipe.pieces.push_back(data[..n].to_vec());
            pipe.queued += n;
            if pipe.reader_waiting {
                self.arrived.notify_one();
            }
        }
        pipe.stalled |= n < data.len();
        n
    }

    /// The body ended: complete (`Ok`), or with a fault, which the app's
    /// next read that the queued data cannot answer raises. Only the first
    /// end counts.
    pub fn end(&self, end: Result<(), BodyFault>) {
        let mut pipe = self.lock();
        if pipe.end.is_none() {
            pipe.end = Some(end);
            self.arrived.notify_one();
        }
    }

    // --- the app's side ---

    /// Takes up to `limit` bytes (all: None), with `line` up to and with
    /// the first newline, waiting for them as needed. At the body's end,
    /// what is left; after a fault, the fault, unless the queued data
    /// answers the whole request.
    fn take<'py>(
        &self,
        py: Python<'py>,
        watch: &Watch,
        limit: Option<usize>,
        line: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut gathered: Vec<u8> = Vec::new();
        loop {
            let want = limit.map_or(usize::MAX, |l| l - gathered.len());
            // What makes a round worth taking: a line needs any data; a
            // read its size, or a full window.
            let enough = if line { 1 } else { want.min(WINDOW) };
            let mut pipe = self.wait_for(py, watch, enough);
            let (n, newline) = pipe.next_take(want, line);
            let answered = n == want || newline;
            let at_end = n == pipe.queued && pipe.end.is_some();
            let fault = match pipe.end {
                Some(Err(fault)) if at_end && !answered => Some(fault),
                _ => None,
            };
            if let Some(fault) = fault {
                return Err(fault.error());
            }
            let finished = answered || at_end;
            let taken = if finished && gathered.is_empty() {
                // The whole answer is queued: straight into the bytes object.
                PyBytes::new_with(py, n, |dst| {
                    pipe.copy_out(dst);
                    Ok(())
                })
                .map(Some)
            } else {
                let from = gathered.len();
                gathered.resize(from + n, 0);
                pipe.copy_out(&mut gathered[from..]);
                Ok(None)
            };
            let wake = pipe.stalled && pipe.queued <= WINDOW / 2;
            if wake {
                pipe.stalled = false;
            }
            drop(pipe);
            if wake {
                (self.wake_loop)();
            }
            if let Some(bytes) = taken? {
                return Ok(bytes);
            }
            if finished {
                return Ok(PyBytes::new(py, &gathered));
            }
        }
    }

    /// Waits, without the GIL, until `enough` bytes are queued or the body
    /// ended; a stalled loop is woken first. The wait is the client's
    /// time: the thread's watch leaves it out.
    fn wait_for(&self, py: Python<'_>, watch: &Watch, enough: usize) -> MutexGuard<'_, Pipe> {
        {
            let pipe = self.lock();
            if pipe.queued >= enough || pipe.end.is_some() {
                return pipe;
            }
        }
        let paused = watch.pause();
        py.detach(|| {
            let stalled = std::mem::take(&mut self.lock().stalled);
            if stalled {
                (self.wake_loop)();
            }
            let mut pipe = self.lock();
            while pipe.queued < enough && pipe.end.is_none() {
                pipe.reader_waiting = true;
                pipe = self.arrived.wait(pipe).unwrap_or_else(|p| p.into_inner());
            }
            pipe.reader_waiting = false;
        });
        if paused {
            watch.resume();
        }
        self.lock()
    }
}

/// `wsgi.input` over a `BodyStream`: reads wait for the client as a
/// socket's would, and return what a file's would (`read(n)` n bytes
/// unless the body ends first, `b""` at its end).
#[pyclass(module = "ngx_wsgi", frozen)]
pub struct StreamedInput {
    stream: Arc<BodyStream>,
    /// The watch of the thread that runs the app.
    watch: &'static Watch,
}

impl StreamedInput {
    pub fn new(stream: Arc<BodyStream>, watch: &'static Watch) -> StreamedInput {
        StreamedInput { stream, watch }
    }
}

/// A size argument: negative (or None) for no limit.
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|n| usize::try_from(n).ok())
}

#[pymethods]
impl StreamedInput {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.stream.take(py, self.watch, limit(size), false)
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.stream.take(py, self.watch, limit(size), true)
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.stream.take(py, self.watch, None, true)?;
            let len = line.as_bytes().len();
            if len == 0 {
                break;
            }
            lines.append(line)?;
            total += len;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn readable(&self) -> bool {
        true
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.stream.take(py, self.watch, None, true)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    static WOKEN: AtomicUsize = AtomicUsize::new(0);

    fn stream() -> Arc<BodyStream> {
        Python::initialize();
        BodyStream::new(Box::new(|| {
            WOKEN.fetch_add(1, Ordering::Relaxed);
        }))
    }

    fn take(s: &BodyStream, limit: Option<usize>, line: bool) -> PyResult<Vec<u8>> {
        static WATCH: Watch = Watch::new(false);
        Python::attach(|py| {
            s.take(py, &WATCH, limit, line)
                .map(|b| b.as_bytes().to_vec())
        })
    }

    #[test]
    fn reads_and_lines_cross_pieces_and_end_with_empty_bytes() {
        let s = stream();
        s.offer(b"ab\ncd");
        s.offer(b"ef\ngh");
        s.end(Ok(()));
        assert_eq!(take(&s, None, true).unwrap(), b"ab\n");
        assert_eq!(take(&s, Some(2), false).unwrap(), b"cd");
        assert_eq!(take(&s, Some(2), true).unwrap(), b"ef");
        assert_eq!(take(&s, None, true).unwrap(), b"\n");
        assert_eq!(
            take(&s, Some(10), false).unwrap(),
            b"gh",
            "short at the end"
        );
        assert_eq!(take(&s, None, false).unwrap(), b"");
    }

    #[test]
    fn a_fault_is_raised_once_the_queued_data_cannot_answer() {
        let s = stream();
        s.offer(b"0123456789");
        s.end(Err(BodyFault::TooLarge));
        assert_eq!(take(&s, Some(4), false).unwrap(), b"0123");
        let err = take(&s, Some(10), false).unwrap_err();
        Python::attach(|py| {
            assert!(err.is_instance_of::<RequestBodyError>(py));
            assert!(err.is_instance_of::<PyOSError>(py));
            assert!(err.to_string().contains("client_max_body_size"));
        });
    }

    #[test]
    fn a_full_window_stalls_the_loop_until_half_of_it_is_read() {
        let s = stream();
        let data = vec![7u8; WINDOW + 10];
        assert_eq!(s.offer(&data), WINDOW);
        assert_eq!(s.offer(b"x"), 0);
        let before = WOKEN.load(Ordering::Relaxed);
        take(&s, Some(WINDOW / 4), false).unwrap();
        assert_eq!(WOKEN.load(Ordering::Relaxed), before, "3/4 still queued");
        take(&s, Some(WINDOW / 4), false).unwrap();
        assert_eq!(WOKEN.load(Ordering::Relaxed), before + 1, "woken once");
        take(&s, Some(WINDOW / 4), false).unwrap();
        assert_eq!(WOKEN.load(Ordering::Relaxed), before + 1);
    }

    #[test]
    fn a_reader_waits_for_data_without_the_gil() {
        let s = stream();
        let reader = {
            let s = s.clone();
            std::thread::spawn(move || take(&s, Some(6), false).unwrap())
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        // The reader waits without the GIL: this thread can take it.
        Python::attach(|_| {});
        s.offer(b"abc");
        s.offer(b"def");
        assert_eq!(reader.join().unwrap(), b"abcdef");
    }
}
