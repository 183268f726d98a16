//! The hand-off between a pool thread running an app (`wsgi_threads`) and
//! the event loop sending its response: one per request, behind a mutex.
//!
//! ```text
//! pool thread ── head, chunks, flushes, log lines, end ──▶ event loop
//!             ◀── blocked, buffers done, stop ───────────
//! ```
//!
//! Chunks are not copied: a chunk is a pointer into a bytes object that the
//! pool thread keeps (`wsgi::kept::Kept`) until the loop reports nginx done
//! with its buffer, or the request ended. At most `MAX_CHUNKS` /
//! `MAX_BYTES` wait here (the window). Past it, a chunk goes to the
//! response's temp file (`spill.rs`; `wsgi_max_temp_file_size`) and is
//! handed over as a range of it, so the thread goes on while a slow client
//! reads; without spilling (or at its limit), the pool thread asks the app
//! for the next chunk only while the loop's output is not blocked and the
//! window has room, so a slow client costs a waiting thread and a bounded
//! amount of memory.
//!
//! The loop is woken (through `wakeup`) when there is news and the request is
//! not already on the loop's list: before the thread calls into the app
//! again (where time may pass), at a flush, a log line and the end — so
//! what the app produced between two calls travels in one wake-up and no
//! block waits for the app. The thread waits on a condition variable,
//! without the GIL.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

use ngx::ffi::{ngx_http_request_t, ngx_uint_t, NGX_LOG_ERR};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::spill::{SpillFile, Spilled};
use crate::errlog::{self, LoopLog};
use crate::status::{self, Histogram};
use crate::wsgi::driver::End;
use crate::wsgi::file_wrapper::FileBody;
use crate::wsgi::flush::{FlushError, FlushTarget};
use crate::wsgi::kept::Kept;
use crate::wsgi::start_response::Head;
use crate::wsgi::watch::OnTimeout;

/// What may wait in the hand-off before the app is asked for more.
const MAX_CHUNKS: usize = 128;
const MAX_BYTES: usize = 256 * 1024;

/// A chunk for nginx: `len` bytes at `data`.
pub struct Chunk {
    pub data: ChunkData,
    pub len: usize,
    /// It must reach the client now: not batched, or the app flushed.
    pub flush: bool,
}

pub enum ChunkData {
    /// Inside a bytes object that the pool thread keeps alive until nginx
    /// is done with it.
    Memory(*const u8),
    /// In the response's temp file, written before it was handed over.
    Spilled { file: Arc<SpillFile>, offset: u64 },
    /// The whole body, from a file the app handed over
    /// (`wsgi.file_wrapper`): nginx sends it and ends the response.
    File(FileBody),
}

/// What the loop takes from the hand-off in one go.
#[derive(Default)]
pub struct News {
    pub logs: Vec<(ngx_uint_t, String)>,
    /// The response header, and the body length a one-item list gives.
    pub head: Option<(Head, Option<usize>)>,
    pub chunks: VecDeque<Chunk>,
    /// An explicit flush after the last of `chunks` (or with none).
    pub flush: bool,
    pub end: Option<End>,
    /// A call into the app took longer than wsgi_read_timeout: the
    /// request ends now (the report is in `logs`).
    pub timed_out: bool,
}

struct Shared {
    /// Pool thread → loop.
    news: News,
    queued_bytes: usize,
    /// Bytes objects nginx may still point into when the app is done: they
    /// are dropped with the hand-off, after the request.
    leftovers: Option<Kept>,
    /// Loop → pool thread: nginx cannot take more output now.
    blocked: bool,
    /// The loop took output and has not said yet whether nginx could take
    /// it: what the window made room for is not room yet.
    delivering: bool,
    /// Loop → pool thread: how many chunks nginx is done with.
    done: u64,
    /// The request was finalized: the app is to stop at its next chunk;
    /// nginx may still send what it has.
    cancelled_app: bool,
    /// The request is over (its pool is being destroyed): nothing the app
    /// sent is referenced by nginx any more.
    stopped: bool,
    /// A pool thread took the request from the queue.
    started: bool,
    /// The request left the queue before a thread took it.
    cancelled: bool,
    /// The request is on the loop's list of requests with news.
    posted: bool,
    /// The pool thread waits for room (worth a notification).
    waiting: bool,
    /// The request while it lives; only the event loop follows it.
    request: *mut ngx_http_request_t,
    /// For `$wsgi_queue_time` and `$wsgi_app_time`.
    times: Times,
}

/// When the request went through the queue and the app, as `$wsgi_*`
/// variables report it.
#[derive(Default, Clone, Copy)]
pub struct Times {
    pub queued: Option<Instant>,
    /// A thread took it, or it left the queue without one.
    pub left_queue: Option<Instant>,
    pub app_called: Option<Instant>,
    pub app_done: Option<Instant>,
}

pub struct Handoff {
    shared: Mutex<Shared>,
    room: Condvar,
    /// Puts a hand-off on the event loop's list of requests with news and
    /// wakes the loop (`wakeup::post`).
    post: fn(Arc<Handoff>),
    /// This hand-off, for that list.
    me: Weak<Handoff>,
}

// SAFETY: the raw pointers (the request, chunk data) are only followed on
// the event-loop thread while the request lives; the pool thread only
// stores and compares them. Everything else is behind the mutex.
unsafe impl Send for Handoff {}
// SAFETY: as above.
unsafe impl Sync for Handoff {}

/// The pool thread's view after waiting for room.
pub enum Room {
    /// Ask the app for the next chunk.
    Go,
    /// The request is over: close the iterable.
    Stop,
}

impl Handoff {
    pub fn new(r: *mut ngx_http_request_t, post: fn(Arc<Handoff>)) -> Arc<Handoff> {
        Arc::new_cyclic(|me| Handoff {
            shared: Mutex::new(Shared {
                news: News::default(),
                queued_bytes: 0,
                leftovers: None,
                blocked: false,
                delivering: false,
                done: 0,
                cancelled_app: false,
                stopped: false,
                started: false,
                cancelled: false,
                posted: false,
                waiting: false,
                request: r,
                times: Times::default(),
            }),
            room: Condvar::new(),
            post,
            me: me.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts the request on the loop's list, once until the loop looks. The
    /// lock goes first: the wake-up may switch to the loop at once, which
    /// then finds it free.
    fn post(&self, mut shared: MutexGuard<'_, Shared>) {
        if shared.posted || shared.request.is_null() {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        shared.posted = true;
        drop(shared);
        (self.post)(me);
    }

    /// Wakes the pool thread if it waits for room, once the lock is let go
    /// (the thread it may switch to takes the lock first thing).
    fn notify_room(&self, shared: MutexGuard<'_, Shared>) {
        let waiting = shared.waiting;
        drop(shared);
        if waiting {
            self.room.notify_one();
        }
    }

    // --- the pool thread's side ---

    /// A pool thread takes the request; false if it left the queue already.
    pub fn start(&self) -> bool {
        let mut shared = self.lock();
        shared.started = !shared.cancelled && !shared.cancelled_app && !shared.stopped;
        let now = Instant::now();
        shared.times.left_queue.get_or_insert(now);
        if let (true, Some(queued)) = (shared.started, shared.times.queued) {
            status::observe(Histogram::QueueWait, now.saturating_duration_since(queued));
        }
        shared.started
    }

    /// The app is about to be called.
    pub fn app_called(&self) {
        self.lock().times.app_called = Some(Instant::now());
    }

    /// Sends the news on, then waits, without the GIL, until the app may
    /// produce the next chunk; drops the bytes objects nginx is done with.
    /// (`post: false`: the news stays until a later post, as the test
    /// hook `news_waits_for_the_end` has it, unless the thread must wait:
    /// only the loop taking the news makes room.)
    ///
    /// With `can_spill` the thread does not wait: what the window cannot
    /// hold goes to the temp file. News is then not posted while the
    /// loop's output is blocked: the client's write event brings the loop
    /// to it.
    pub fn wait_for_room(
        &self,
        py: Python<'_>,
        kept: &mut Kept,
        post: bool,
        can_spill: bool,
    ) -> Room {
        let (stopped, cancelled, done) = {
            let shared = self.lock();
            let must_wait = Self::must_wait(&shared, can_spill);
            let loop_waits = can_spill && shared.blocked;
            let now = (shared.stopped, shared.cancelled_app, shared.done);
            if (post || must_wait) && Self::has_news(&shared) && !loop_waits {
                self.post(shared);
            } else {
                drop(shared);
            }
            if !must_wait {
                now
            } else {
                py.detach(|| {
                    let mut shared = self.lock();
                    while Self::must_wait(&shared, can_spill) {
                        shared.waiting = true;
                        shared = self.room.wait(shared).unwrap_or_else(|p| p.into_inner());
                    }
                    shared.waiting = false;
                    (shared.stopped, shared.cancelled_app, shared.done)
                })
            }
        };
        if stopped {
            kept.clear();
            return Room::Stop;
        }
        kept.release_upto(done);
        if cancelled {
            return Room::Stop;
        }
        Room::Go
    }

    fn must_wait(shared: &Shared, can_spill: bool) -> bool {
        !can_spill && !shared.stopped && !shared.cancelled_app && Self::full(shared)
    }

    fn has_news(shared: &Shared) -> bool {
        shared.news.head.is_some() || !shared.news.chunks.is_empty()
    }

    fn full(shared: &Shared) -> bool {
        shared.blocked || shared.delivering || Self::window_full(shared)
    }

    fn window_full(shared: &Shared) -> bool {
        shared.news.chunks.len() >= MAX_CHUNKS || shared.queued_bytes >= MAX_BYTES
    }

    /// Whether the window is full: a chunk now would go to the temp file.
    pub fn has_no_room(&self) -> bool {
        Self::window_full(&self.lock())
    }

    /// Hands over the response header (posted with what follows).
    pub fn hand_over_head(&self, head: Head, known_length: Option<usize>) {
        self.lock().news.head = Some((head, known_length));
    }

    /// Hands over the first `len` bytes of `chunk`, which the caller keeps
    /// alive (in `Kept`) until nginx is done with them. Posted before the
    /// app is called again.
    pub fn hand_over_chunk(&self, chunk: &Bound<'_, PyBytes>, len: usize, flush: bool) {
        let mut shared = self.lock();
        if shared.stopped || shared.cancelled_app {
            return;
        }
        shared.news.chunks.push_back(Chunk {
            data: ChunkData::Memory(chunk.as_bytes().as_ptr()),
            len,
            flush,
        });
        shared.queued_bytes += len;
    }

    /// Hands over `len` bytes the thread wrote to the temp file at
    /// `spilled`; a range that continues the last one handed over extends
    /// it. Whether it is a chunk of its own (in the count of chunks nginx
    /// is done with).
    pub fn hand_over_spilled(&self, spilled: Spilled, len: usize, flush: bool) -> bool {
        let mut shared = self.lock();
        if shared.stopped || shared.cancelled_app {
            return false;
        }
        if let Some(last) = shared.news.chunks.back_mut() {
            if let ChunkData::Spilled { file, offset } = &last.data {
                if Arc::ptr_eq(file, &spilled.file) && *offset + last.len as u64 == spilled.offset {
                    last.len += len;
                    last.flush |= flush;
                    return false;
                }
            }
        }
        shared.news.chunks.push_back(Chunk {
            data: ChunkData::Spilled {
                file: spilled.file,
                offset: spilled.offset,
            },
            len,
            flush,
        });
        true
    }

    /// Hands over the whole body as `file`; false when the request is
    /// over (the file is then closed).
    pub fn hand_over_file(&self, file: FileBody) -> bool {
        let mut shared = self.lock();
        if shared.stopped || shared.cancelled_app {
            return false;
        }
        let len = file.len as usize;
        shared.news.chunks.push_back(Chunk {
            data: ChunkData::File(file),
            len,
            flush: true,
        });
        true
    }

    /// `x-wsgiorg.flush()` after the header: what was sent so far goes out.
    /// False when the request is over.
    fn flush_news(&self) -> bool {
        let mut shared = self.lock();
        if shared.stopped || shared.cancelled_app {
            return false;
        }
        match shared.news.chunks.back_mut() {
            Some(last) => last.flush = true,
            None => shared.news.flush = true,
        }
        self.post(shared);
        true
    }

    /// A line for the request's error_log; once the request is gone, for
    /// the worker's.
    fn log_line(&self, level: ngx_uint_t, text: &str) {
        let mut shared = self.lock();
        if shared.request.is_null() {
            drop(shared);
            errlog::worker_log(level, text);
            return;
        }
        shared.news.logs.push((level, text.to_owned()));
        self.post(shared);
    }

    /// The app is done. The bytes objects nginx may still point into stay
    /// with the hand-off, which the request holds until it ends.
    pub fn finish(&self, end: End, kept: Kept) {
        let mut shared = self.lock();
        let done = Instant::now();
        shared.times.app_done = Some(done);
        if let Some(called) = shared.times.app_called {
            status::observe(Histogram::App, done.saturating_duration_since(called));
        }
        if shared.stopped {
            drop(shared);
            drop(kept);
            return;
        }
        shared.news.end = Some(end);
        shared.leftovers = Some(kept);
        // While nginx's output is blocked the loop waits for the client's
        // write event, which brings it to the end: no wake-up for it now.
        if !shared.blocked || !shared.news.logs.is_empty() {
            self.post(shared);
        }
    }

    /// Wakes the event loop for this request with what news there is (the
    /// app made room in its body stream: the loop reads on).
    pub fn wake_loop(&self) {
        self.post(self.lock());
    }

    // --- the event loop's side ---

    /// Whether a pool thread has taken the request.
    pub fn started(&self) -> bool {
        self.lock().started
    }

    /// The request goes into the pool's queue now.
    pub fn queued(&self) {
        self.lock().times.queued = Some(Instant::now());
    }

    /// When the request went through the queue and the app, so far.
    pub fn times(&self) -> Times {
        self.lock().times
    }

    /// The live request, if any. Loop only.
    pub fn request(&self) -> *mut ngx_http_request_t {
        self.lock().request
    }

    /// Takes the news: log lines always; output only when nginx can take
    /// it (`take_output`).
    pub fn take(&self, take_output: bool) -> News {
        let mut shared = self.lock();
        shared.posted = false;
        if take_output {
            shared.queued_bytes = 0;
            // Until `report`: a thread that looks now must not take the
            // emptied window for a client that keeps up.
            shared.delivering = true;
            return std::mem::take(&mut shared.news);
        }
        News {
            logs: std::mem::take(&mut shared.news.logs),
            timed_out: std::mem::take(&mut shared.news.timed_out),
            ..News::default()
        }
    }

    /// Tells the pool thread how nginx's output stands.
    pub fn report(&self, blocked: bool, done: u64) {
        let mut shared = self.lock();
        shared.blocked = blocked;
        shared.delivering = false;
        shared.done = done;
        self.notify_room(shared);
    }

    /// The queue timeout: true if the request had not been taken by a
    /// thread, which now never will.
    pub fn cancel_if_queued(&self) -> bool {
        let mut shared = self.lock();
        shared.cancelled = !shared.started;
        shared.times.left_queue.get_or_insert_with(Instant::now);
        shared.cancelled
    }

    /// The request was finalized: the app is to stop at its next chunk
    /// (what nginx holds of it stays until `end_request`).
    pub fn cancel_app(&self) {
        let mut shared = self.lock();
        shared.cancelled_app = true;
        self.notify_room(shared);
    }

    /// The request is over (the pool cleanup runs): nginx holds none of its
    /// buffers any more, and the app is to stop at its next chunk. Python
    /// may keep this hand-off (through x-wsgiorg.flush), not the bytes.
    /// Returns the log lines the loop has not taken yet: a wake-up that
    /// comes after this finds no request to log them with.
    pub fn end_request(&self) -> Vec<(ngx_uint_t, String)> {
        let (leftovers, logs) = {
            let mut shared = self.lock();
            shared.request = std::ptr::null_mut();
            shared.stopped = true;
            shared.news.chunks.clear();
            let taken = (
                shared.leftovers.take(),
                std::mem::take(&mut shared.news.logs),
            );
            self.notify_room(shared);
            taken
        };
        // Without the GIL: the references go to the next thread that takes it.
        drop(leftovers);
        logs
    }
}

impl LoopLog for Handoff {
    fn log(&self, level: ngx_uint_t, text: &str) {
        self.log_line(level, text);
    }
}

/// The watchdog's news: the request ends at once, on the event loop;
/// what the app produces from now on is dropped.
impl OnTimeout for Handoff {
    fn timed_out(&self, report: Vec<String>) {
        let mut shared = self.lock();
        if shared.request.is_null() {
            drop(shared);
            report
                .iter()
                .for_each(|line| errlog::worker_log(NGX_LOG_ERR as _, line));
            return;
        }
        let lines = report
            .into_iter()
            .map(|line| (NGX_LOG_ERR as ngx_uint_t, line));
        shared.news.logs.extend(lines);
        shared.news.timed_out = true;
        shared.cancelled_app = true;
        self.post(shared);
    }
}

impl FlushTarget for Handoff {
    fn flush(&self) -> Result<(), FlushError> {
        self.flush_news().then_some(()).ok_or(FlushError::Gone)
    }
}

/// The hand-off's states, as a pool thread and the event loop move them.
/// The request pointer is never followed by the hand-off, so a dangling
/// one stands in for it; posting to the loop counts, per test thread.
#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use pyo3::types::PyBytes;

    use super::*;

    thread_local! {
        static POSTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn handoff() -> Arc<Handoff> {
        Python::initialize();
        Handoff::new(std::ptr::NonNull::dangling().as_ptr(), |_| {
            POSTED.with(|p| p.set(p.get() + 1))
        })
    }

    fn posted() -> usize {
        POSTED.with(|p| p.get())
    }

    /// Runs `wait_for_room` on another thread; the result comes on the
    /// channel, with how many kept chunks are left.
    fn wait_elsewhere(h: &Arc<Handoff>, kept: Kept) -> mpsc::Receiver<(bool, bool)> {
        let (tx, rx) = mpsc::channel();
        let h = h.clone();
        std::thread::spawn(move || {
            let mut kept = kept;
            let room = Python::attach(|py| h.wait_for_room(py, &mut kept, true, false));
            let _ = tx.send((matches!(room, Room::Go), kept.is_empty()));
        });
        rx
    }

    fn kept(py: Python<'_>, n: usize) -> Kept {
        let mut kept = Kept::default();
        for _ in 0..n {
            kept.push(PyBytes::new(py, b"x").unbind());
        }
        kept
    }

    #[test]
    fn a_request_the_queue_timer_cancelled_never_starts() {
        let h = handoff();
        assert!(h.cancel_if_queued());
        assert!(!h.start());
        assert!(!h.started());
    }

    #[test]
    fn a_started_request_is_not_cancelled_by_the_queue_timer() {
        let h = handoff();
        assert!(h.start());
        assert!(!h.cancel_if_queued());
        assert!(h.started());
    }

    #[test]
    fn chunks_wait_until_the_loop_can_take_output() {
        let h = handoff();
        h.start();
        Python::attach(|py| {
            let chunk = PyBytes::new(py, b"abc");
            h.hand_over_chunk(&chunk, 2, false);
            h.hand_over_chunk(&chunk, 3, true);
        });
        h.log_line(4, "a line");
        let news = h.take(false);
        assert_eq!(news.logs, [(4, "a line".to_owned())]);
        assert!(
            news.chunks.is_empty(),
            "output is taken only when nginx can take it"
        );
        let news = h.take(true);
        let lens: Vec<(usize, bool)> = news.chunks.iter().map(|c| (c.len, c.flush)).collect();
        assert_eq!(lens, [(2, false), (3, true)]);
        assert!(news.logs.is_empty());
    }

    #[test]
    fn news_wakes_the_loop_once_until_it_looks() {
        let h = handoff();
        h.start();
        h.log_line(4, "one");
        h.log_line(4, "two");
        assert!(h.flush_news());
        assert_eq!(posted(), 1, "the request is on the loop's list already");
        assert_eq!(h.take(true).logs.len(), 2);
        h.log_line(4, "three");
        assert_eq!(posted(), 2);
        h.end_request();
        h.log_line(4, "to the worker's log");
        assert_eq!(posted(), 2, "nothing is posted for a request that ended");
    }

    #[test]
    fn a_flush_marks_the_last_chunk_or_stands_alone() {
        let h = handoff();
        h.start();
        assert!(h.flush_news());
        assert!(h.take(true).flush);
        Python::attach(|py| h.hand_over_chunk(&PyBytes::new(py, b"a"), 1, false));
        assert!(h.flush_news());
        let news = h.take(true);
        assert!(news.chunks[0].flush && !news.flush);
    }

    #[test]
    fn a_blocked_output_holds_the_thread_until_the_loop_reports_room() {
        let h = handoff();
        h.start();
        h.report(true, 0);
        let rx = wait_elsewhere(&h, Kept::default());
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "it waits"
        );
        h.report(false, 0);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok((true, true)));
    }

    #[test]
    fn too_many_chunks_waiting_hold_the_thread_until_the_loop_takes_them() {
        let h = handoff();
        h.start();
        Python::attach(|py| {
            let chunk = PyBytes::new(py, b"x");
            for _ in 0..MAX_CHUNKS {
                h.hand_over_chunk(&chunk, 1, false);
            }
        });
        let rx = wait_elsewhere(&h, Kept::default());
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "it waits"
        );
        assert_eq!(h.take(true).chunks.len(), MAX_CHUNKS);
        h.report(false, 0);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok((true, true)));
    }

    #[test]
    fn output_the_loop_took_holds_the_thread_until_the_loop_reports() {
        let h = handoff();
        h.start();
        Python::attach(|py| h.hand_over_chunk(&PyBytes::new(py, &[0; MAX_BYTES]), MAX_BYTES, true));
        assert_eq!(h.take(true).chunks.len(), 1);
        let rx = wait_elsewhere(&h, Kept::default());
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "the window is empty, but nginx may not have taken it: it waits"
        );
        h.report(true, 0);
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "blocked: it waits"
        );
        h.report(false, 0);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok((true, true)));
    }

    #[test]
    fn chunks_nginx_is_done_with_are_released_at_the_next_wait() {
        let h = handoff();
        h.start();
        h.report(false, 2);
        let mut kept = Python::attach(|py| kept(py, 3));
        let room = Python::attach(|py| h.wait_for_room(py, &mut kept, true, false));
        assert!(matches!(room, Room::Go));
        assert!(!kept.is_empty(), "the third chunk is still nginx's");
        h.report(false, 3);
        Python::attach(|py| h.wait_for_room(py, &mut kept, true, false));
        assert!(kept.is_empty());
    }

    #[test]
    fn a_finalized_request_stops_the_app_at_its_next_chunk() {
        let h = handoff();
        h.start();
        h.report(true, 0);
        let rx = wait_elsewhere(&h, Kept::default());
        h.cancel_app();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok((false, true)));
        Python::attach(|py| h.hand_over_chunk(&PyBytes::new(py, b"late"), 4, false));
        assert!(
            h.take(true).chunks.is_empty(),
            "nothing more is handed over"
        );
        assert!(!h.flush_news());
    }

    #[test]
    fn the_request_s_end_drops_the_bytes_and_returns_the_lines_not_logged() {
        let h = handoff();
        h.start();
        h.report(true, 0);
        let rx = wait_elsewhere(&h, Python::attach(|py| kept(py, 2)));
        h.log_line(3, "close() said so");
        let lines = h.end_request();
        assert_eq!(lines, [(3, "close() said so".to_owned())]);
        // Stopped: the thread's kept bytes are dropped, not released in order.
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok((false, true)));
        assert!(h.request().is_null());
        // The app's end after that goes nowhere.
        h.finish(End::Complete(0), Python::attach(|py| kept(py, 1)));
        assert!(h.take(true).end.is_none());
    }

    #[test]
    fn the_end_and_its_bytes_wait_for_the_request_s_end() {
        let h = handoff();
        h.start();
        h.finish(End::Complete(0), Python::attach(|py| kept(py, 1)));
        assert!(matches!(h.take(true).end, Some(End::Complete(0))));
        assert!(h.lock().leftovers.is_some(), "nginx may still send them");
        h.end_request();
        assert!(h.lock().leftovers.is_none());
    }
}
