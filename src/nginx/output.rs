//! Chunks → nginx buffers → the output filter chain.
//!
//! A `bytes` chunk is handed to nginx without copying: the buffer points into
//! the bytes object, which whoever runs the app keeps (`wsgi::kept::Kept`)
//! until nginx has sent it (`done` counts chunks, in order) or the request
//! ends.
//!
//! Chunks are queued, then passed to the filters: at once with `flush` set
//! (the default), or, when the response may be batched (`wsgi_buffering`),
//! once 64 KiB or 256 chunks are queued, at an explicit flush, and at the end.
//! Small chunks queued behind one another (a batch, or chunks a pool thread
//! made ready together) are copied into one buffer of the output's own: each
//! buffer costs every filter and the kernel's writev more than a copy of a
//! few KiB does.
//! Inline, the output is shared with `x-wsgiorg.flush`, which must push the
//! queue too, behind a mutex; neither side holds it while the app runs.

use std::collections::VecDeque;
use std::ptr::{addr_of, null_mut};
use std::sync::{Arc, Mutex, MutexGuard};

use ngx::ffi::{
    ngx_buf_t, ngx_chain_get_free_buf, ngx_chain_t, ngx_chain_update_chains, ngx_file_t,
    ngx_http_output_filter, ngx_http_request_t, ngx_http_send_special, ngx_int_t, off_t, NGX_AGAIN,
    NGX_ERROR, NGX_HTTP_FLUSH, NGX_HTTP_LAST, NGX_OK,
};

/// How much a batched response queues before passing it to the filters.
const BATCH_BYTES: usize = 64 * 1024;
const BATCH_BUFFERS: usize = 256;
/// A chunk up to this size may be copied behind the queue's last buffer.
const COPY_MAX: usize = 4 * 1024;
/// The size of the output's own buffers that small chunks are copied into.
const COPY_BUFFER: usize = 16 * 1024;
/// Own buffers kept for reuse once nginx is done with them.
const SPARE_MAX: usize = 4;
// A buffer's data and a chunk, both small, fit in one of the own buffers.
const _: () = assert!(2 * COPY_MAX <= COPY_BUFFER);

/// Whether, after a filter call that answered `rc`, nginx holds output of
/// this response that the client's socket would not take: nginx says it
/// holds some (NGX_AGAIN, or the connection marked buffered, as an HTTP/2
/// stream whose frames wait for the connection or its window), and the
/// write event is not ready (the socket took less than it was given) or is
/// delayed (limit_rate). A write event will come then. Output a filter only
/// keeps back to batch it (postpone_output, gzip without a flush) leaves
/// the write event ready: nothing would wake a response waiting for it.
///
/// It does not matter whose buffers nginx holds: gzip copies the module's
/// chunks into buffers of its own, and a socket full of those must hold the
/// app back as much as one full of the module's.
///
/// # Safety
/// `r` must be a live request.
unsafe fn is_blocked(r: *mut ngx_http_request_t, rc: ngx_int_t) -> bool {
    let c = (*r).connection;
    let wev = (*c).write;
    (rc == NGX_AGAIN as ngx_int_t || (*c).buffered() != 0)
        && ((*wev).ready() == 0 || (*wev).delayed() != 0)
}

/// The buffer tag: nginx returns buffers with this tag to our free list.
/// Only its address matters, and it is this module's alone.
static TAG: u8 = 0;

fn tag() -> *mut std::ffi::c_void {
    addr_of!(TAG) as *mut _
}

pub struct Output {
    /// The request this output belongs to (in its pool).
    request: *mut ngx_http_request_t,
    free: *mut ngx_chain_t,
    busy: *mut ngx_chain_t,
    /// Queued buffers not yet passed to the filters: first and last link.
    queue: *mut ngx_chain_t,
    queue_last: *mut ngx_chain_t,
    queued_bytes: usize,
    queued_buffers: usize,
    /// How many chunks the queued buffers carry.
    queued_chunks: u64,
    /// After the last filter call, nginx holds output that the client's
    /// socket would not take (`is_blocked`): a write event will come once
    /// it can.
    blocked: bool,
    /// How many buffers were passed to the filters, since the response began.
    passed: u64,
    /// How many chunks (calls of `queue`) those buffers carry.
    passed_chunks: u64,
    /// How many of the chunks nginx is done with.
    done: u64,
    /// A chunk queued since the last pass must go out flushed: it is passed
    /// on, flushed, once the caller has no more chunks at hand.
    flush_wanted: bool,
    /// The buffers chunks were copied into, queued or passed and not yet
    /// done, oldest first.
    copies: VecDeque<CopyBuffer>,
    /// Copy memory nginx is done with, for the next copies.
    spare: Vec<Vec<u8>>,
    /// The body's last buffer went to the filters (`send_file_last`).
    last_sent: bool,
}

/// One of the output's own buffers, which carries several chunks.
struct CopyBuffer {
    /// Its place among the response's buffers (0 is the first).
    seq: u64,
    chunks: u64,
    /// Reserved once at COPY_BUFFER bytes, and never grown past that.
    memory: Vec<u8>,
}

// SAFETY: the raw pointers are nginx chains of the request pool; they are
// only followed on the worker's event-loop thread (the pump, the write event
// handler, and x-wsgiorg.flush, which checks its thread before locking).
unsafe impl Send for Output {}

/// The response's output, shared by the pump and `x-wsgiorg.flush`.
pub type SharedOutput = Arc<Mutex<Output>>;

pub fn shared(r: *mut ngx_http_request_t) -> SharedOutput {
    Arc::new(Mutex::new(Output {
        request: r,
        free: null_mut(),
        busy: null_mut(),
        queue: null_mut(),
        queue_last: null_mut(),
        queued_bytes: 0,
        queued_buffers: 0,
        queued_chunks: 0,
        blocked: false,
        passed: 0,
        passed_chunks: 0,
        done: 0,
        flush_wanted: false,
        copies: VecDeque::new(),
        spare: Vec::new(),
        last_sent: false,
    }))
}

/// Locks the output; a panic elsewhere cannot leave it unusable.
pub fn lock(output: &SharedOutput) -> MutexGuard<'_, Output> {
    output
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Output {
    /// True while nginx holds output of this response that the client's
    /// socket would not take: the signal to stop asking the app for more
    /// until the write event.
    pub fn must_wait(&self) -> bool {
        self.blocked
    }

    /// How many of the chunks queued so far nginx is done with: the data
    /// of the first `done()` chunks may be released.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// True when a batched response has queued enough to pass it on.
    fn batch_full(&self) -> bool {
        self.queued_bytes >= BATCH_BYTES || self.queued_buffers >= BATCH_BUFFERS
    }

    /// Queues `len` bytes at `data` as the next chunk: a buffer of its own
    /// that points at them, or, when small, a copy behind the last one.
    ///
    /// # Safety
    /// The output's request must be live; the bytes must stay valid until
    /// `done()` counts this chunk or the request ends.
    unsafe fn queue(&mut self, data: *const u8, len: usize) -> Result<(), ()> {
        // Only a batch has a queue to copy behind (a flushed chunk goes alone).
        if !self.queue.is_null() && self.copy_behind_last(data, len) {
            self.queued_bytes += len;
            return Ok(());
        }
        let b = self.queue_new_buffer(len)?;
        let start = data as *mut u8;
        (*b).start = start;
        (*b).pos = start;
        (*b).last = start.add(len);
        (*b).end = (*b).last;
        (*b).set_memory(1);
        Ok(())
    }

    /// Queues `len` bytes of `file` at `offset` as the next chunk (thread
    /// mode: a range of the response's temp file), sent by nginx from the
    /// file (`sendfile`, or its own reads into `output_buffers`).
    ///
    /// # Safety
    /// The output's request must be live; `file` must stay open, and hold
    /// the range, until the request ends.
    unsafe fn queue_file(
        &mut self,
        file: *mut ngx_file_t,
        offset: u64,
        len: usize,
    ) -> Result<(), ()> {
        let b = self.queue_new_buffer(len)?;
        (*b).set_in_file(1);
        (*b).file = file;
        (*b).file_pos = offset as off_t;
        (*b).file_last = (offset + len as u64) as off_t;
        Ok(())
    }

    /// A clean buffer of ours, linked at the end of the queue as the next
    /// chunk of `len` bytes; the caller says where they are.
    ///
    /// # Safety
    /// The output's request must be live.
    unsafe fn queue_new_buffer(&mut self, len: usize) -> Result<*mut ngx_buf_t, ()> {
        let r = self.request;
        let cl = ngx_chain_get_free_buf((*r).pool, &mut self.free);
        if cl.is_null() {
            return Err(());
        }
        let b = (*cl).buf;
        // A recycled buffer keeps its old flags: start from a clean one.
        std::ptr::write_bytes(b, 0, 1);
        (*b).tag = tag();
        (*cl).next = null_mut();
        if self.queue.is_null() {
            self.queue = cl;
        } else {
            (*self.queue_last).next = cl;
        }
        self.queue_last = cl;
        self.queued_bytes += len;
        self.queued_buffers += 1;
        self.queued_chunks += 1;
        Ok(b)
    }

    /// Copies a small chunk into the queue's last buffer when that is
    /// small too (it then becomes one of the output's own, if it is not
    /// yet) and has room; false when the chunk needs a buffer of its own.
    ///
    /// # Safety
    /// The queue must not be empty; `data` must point to `len` readable bytes.
    #[inline(never)]
    unsafe fn copy_behind_last(&mut self, data: *const u8, len: usize) -> bool {
        if len > COPY_MAX {
            return false;
        }
        // SAFETY (of the dereferences of `b` below): the queue is not empty
        // (the caller checks), so its last link is one of ours, in the
        // request pool, not yet passed to nginx.
        let b = (*self.queue_last).buf;
        if (*b).in_file() != 0 {
            return false; // a range of the temp file: nothing to copy behind
        }
        let last_seq = self.passed + self.queued_buffers as u64 - 1;
        let copy = match self.copies.back_mut() {
            Some(copy) if copy.seq == last_seq => {
                if copy.memory.len() + len > copy.memory.capacity() {
                    return false;
                }
                copy
            }
            _ => {
                let size = (*b).last.offset_from((*b).pos) as usize;
                if size > COPY_MAX {
                    return false;
                }
                let mut memory = self.spare.pop().unwrap_or_default();
                memory.clear();
                memory.reserve_exact(COPY_BUFFER);
                // SAFETY: the buffer's `size` bytes are readable (its chunk is kept).
                memory.extend_from_slice(std::slice::from_raw_parts((*b).pos, size));
                (*b).set_memory(0);
                (*b).set_temporary(1);
                self.copies.push_back(CopyBuffer {
                    seq: last_seq,
                    chunks: 1,
                    memory,
                });
                self.copies.back_mut().expect("just pushed")
            }
        };
        // SAFETY: the caller's `len` bytes are readable.
        copy.memory
            .extend_from_slice(std::slice::from_raw_parts(data, len));
        copy.chunks += 1;
        // Within its capacity the vector never moves: pointers into it
        // stay valid while nginx holds the buffer.
        let start = copy.memory.as_mut_ptr();
        (*b).start = start;
        (*b).pos = start;
        (*b).last = start.add(copy.memory.len());
        (*b).end = (*b).last;
        self.queued_chunks += 1;
        true
    }

    /// Queues a chunk (as `queue`) and passes the queue on when it must go:
    /// flushed, when the chunk is to reach the client now (`flush`) and the
    /// caller has no further chunk at hand to go with it (`more`: thread
    /// mode relays the chunks an app made ready together in one pass), or
    /// unflushed, when a batched response has queued enough. Never delays
    /// a block: only chunks already at hand, or a batch, wait.
    ///
    /// `Err` when the chunk could not be queued (no memory for a buffer):
    /// nginx then holds no pointer into it.
    ///
    /// # Safety
    /// As for `queue`.
    pub unsafe fn write(
        &mut self,
        data: *const u8,
        len: usize,
        flush: bool,
        more: bool,
    ) -> Result<ngx_int_t, ()> {
        self.queue(data, len)?;
        Ok(self.pass_if_due(flush, more))
    }

    /// As `write`, for a range of a file (`queue_file`).
    ///
    /// # Safety
    /// As for `queue_file`.
    pub unsafe fn write_file(
        &mut self,
        file: *mut ngx_file_t,
        offset: u64,
        len: usize,
        flush: bool,
        more: bool,
    ) -> Result<ngx_int_t, ()> {
        self.queue_file(file, offset, len)?;
        Ok(self.pass_if_due(flush, more))
    }

    /// The whole body from `len` bytes of `file` at `offset`
    /// (`wsgi.file_wrapper`), and its end: one buffer, which nginx's range
    /// filter can cut into any ranges (several only from a single buffer).
    /// Nothing may be queued before it.
    ///
    /// # Safety
    /// The output's request must be live; `file` must stay open until the
    /// request ends.
    pub unsafe fn send_file_last(
        &mut self,
        file: *mut ngx_file_t,
        offset: u64,
        len: usize,
    ) -> Result<ngx_int_t, ()> {
        self.queue_file(file, offset, len)?;
        let rc = self.send_last();
        self.last_sent = true;
        Ok(rc)
    }

    /// After a chunk was queued: `write`'s rule for passing the queue on.
    ///
    /// # Safety
    /// The output's request must be live.
    unsafe fn pass_if_due(&mut self, flush: bool, more: bool) -> ngx_int_t {
        self.flush_wanted |= flush;
        if self.flush_wanted && !more {
            self.send_queue(true)
        } else if !self.flush_wanted && self.batch_full() {
            self.send_queue(false)
        } else {
            NGX_OK as ngx_int_t
        }
    }

    /// Passes the queue to the filters; with `flush`, marked so that no
    /// filter holds it back (an empty queue then sends a flush alone).
    ///
    /// # Safety
    /// The output's request must be live.
    pub unsafe fn send_queue(&mut self, flush: bool) -> ngx_int_t {
        let r = self.request;
        if flush {
            self.flush_wanted = false;
        }
        if self.queue.is_null() {
            if !flush {
                return NGX_OK as ngx_int_t;
            }
            let rc = ngx_http_send_special(r, NGX_HTTP_FLUSH as _);
            self.blocked = is_blocked(r, rc);
            return rc;
        }
        if flush {
            (*(*self.queue_last).buf).set_flush(1);
        }
        let out = self.queue;
        self.passed += self.queued_buffers as u64;
        self.passed_chunks += self.queued_chunks;
        self.queue = null_mut();
        self.queue_last = null_mut();
        self.queued_bytes = 0;
        self.queued_buffers = 0;
        self.queued_chunks = 0;
        self.send(out)
    }

    /// Ends the response: passes the queue with its last buffer marked as
    /// the body's end, or, when nothing is queued, nginx's own last buffer.
    ///
    /// # Safety
    /// The output's request must be live.
    pub unsafe fn send_last(&mut self) -> ngx_int_t {
        let r = self.request;
        if self.last_sent {
            // The body ended with its file: only what nginx holds is left.
            return if self.blocked {
                NGX_AGAIN as ngx_int_t
            } else {
                NGX_OK as ngx_int_t
            };
        }
        if self.queue.is_null() {
            let rc = ngx_http_send_special(r, NGX_HTTP_LAST as _);
            if rc != NGX_ERROR as ngx_int_t {
                // Buffers of ours that went out with it are done.
                self.blocked = is_blocked(r, rc);
                let mut none = null_mut();
                ngx_chain_update_chains(
                    (*r).pool,
                    &mut self.free,
                    &mut self.busy,
                    &mut none,
                    tag(),
                );
                self.count_done();
            }
            return rc;
        }
        // As ngx_http_send_special marks its last buffer.
        let b = (*self.queue_last).buf;
        if r == (*r).main && (*r).post_action() == 0 {
            (*b).set_last_buf(1);
        } else {
            (*b).set_last_in_chain(1);
        }
        self.send_queue(true)
    }

    /// Passes `out` (null: only what nginx holds) to the output filters and
    /// moves the buffers nginx is done with to the free list.
    ///
    /// # Safety
    /// The output's request must be live.
    pub unsafe fn send(&mut self, mut out: *mut ngx_chain_t) -> ngx_int_t {
        let r = self.request;
        let rc = ngx_http_output_filter(r, out);
        if rc == NGX_ERROR as ngx_int_t {
            return rc;
        }
        self.blocked = is_blocked(r, rc);
        ngx_chain_update_chains((*r).pool, &mut self.free, &mut self.busy, &mut out, tag());
        self.count_done();
        rc
    }

    /// nginx sends buffers in order and keeps the ones not done on `busy`,
    /// oldest first: all passed buffers but those on busy are done.
    ///
    /// # Safety
    /// `busy` must be this output's chain, after ngx_chain_update_chains.
    unsafe fn count_done(&mut self) {
        let mut busy = 0;
        let mut cl = self.busy;
        while !cl.is_null() {
            busy += 1;
            cl = (*cl).next;
        }
        if self.copies.is_empty() {
            self.done = self.passed_chunks - busy;
            return;
        }
        let done_buffers = self.passed - busy;
        while self.copies.front().is_some_and(|c| c.seq < done_buffers) {
            let copy = self.copies.pop_front().expect("checked");
            if self.spare.len() < SPARE_MAX {
                self.spare.push(copy.memory);
            }
        }
        // A busy buffer carries one chunk, or, when it is a copy, its chunks.
        let passed = self.passed;
        let busy_chunks = busy
            + self
                .copies
                .iter()
                .take_while(|c| c.seq < passed)
                .map(|c| c.chunks - 1)
                .sum::<u64>();
        self.done = self.passed_chunks - busy_chunks;
    }
}

/// The output's accounting against a stand-in for nginx: the unit-test
/// executable has no nginx, so the few functions the output calls are
/// defined here, modelled on nginx's (a write filter that keeps what the
/// socket does not take, `ngx_chain_update_chains` as nginx moves sent
/// buffers of its tag from busy to free).
#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::ptr::null_mut;

    use ngx::ffi::{
        ngx_buf_t, ngx_chain_t, ngx_connection_t, ngx_event_t, ngx_http_request_t, ngx_int_t,
        ngx_pool_t, ngx_uint_t, NGX_AGAIN, NGX_HTTP_FLUSH, NGX_HTTP_LAST, NGX_OK,
    };

    use super::{shared, Output, BATCH_BYTES, COPY_MAX};

    /// The stand-in socket and the buffers nginx holds, per test thread.
    #[derive(Default)]
    struct Nginx {
        /// Bytes the socket takes per filter call.
        room: usize,
        /// Buffers passed and not yet written (nginx's `r->out`).
        held: Vec<*mut ngx_buf_t>,
        /// What reached the socket, by filter call: (bytes, buffers).
        writes: Vec<(Vec<u8>, usize)>,
        /// Whether the last buffer written had flush or last_buf set.
        flushed: bool,
        last: bool,
        /// Like gzip: the filters copy every buffer at once into output of
        /// their own, which then waits for the socket.
        copying: bool,
        copied: Vec<u8>,
    }

    thread_local! {
        static NGINX: RefCell<Nginx> = RefCell::new(Nginx { room: usize::MAX, ..Nginx::default() });
    }

    unsafe fn size(b: *mut ngx_buf_t) -> usize {
        (*b).last.offset_from((*b).pos) as usize
    }

    #[no_mangle]
    unsafe extern "C" fn ngx_chain_get_free_buf(
        _p: *mut ngx_pool_t,
        free: *mut *mut ngx_chain_t,
    ) -> *mut ngx_chain_t {
        if !(*free).is_null() {
            let cl = *free;
            *free = (*cl).next;
            (*cl).next = null_mut();
            return cl;
        }
        let b: *mut ngx_buf_t = Box::into_raw(Box::new(std::mem::zeroed()));
        Box::into_raw(Box::new(ngx_chain_t {
            buf: b,
            next: null_mut(),
        }))
    }

    #[no_mangle]
    unsafe extern "C" fn ngx_chain_update_chains(
        _p: *mut ngx_pool_t,
        free: *mut *mut ngx_chain_t,
        busy: *mut *mut ngx_chain_t,
        out: *mut *mut ngx_chain_t,
        tag: *mut std::ffi::c_void,
    ) {
        if !(*out).is_null() {
            if (*busy).is_null() {
                *busy = *out;
            } else {
                let mut cl = *busy;
                while !(*cl).next.is_null() {
                    cl = (*cl).next;
                }
                (*cl).next = *out;
            }
            *out = null_mut();
        }
        while !(*busy).is_null() {
            let cl = *busy;
            assert_eq!((*(*cl).buf).tag, tag, "only the output's own buffers");
            if size((*cl).buf) != 0 {
                break;
            }
            (*(*cl).buf).pos = (*(*cl).buf).start;
            (*(*cl).buf).last = (*(*cl).buf).start;
            *busy = (*cl).next;
            (*cl).next = *free;
            *free = cl;
        }
    }

    #[no_mangle]
    unsafe extern "C" fn ngx_http_output_filter(
        r: *mut ngx_http_request_t,
        mut cl: *mut ngx_chain_t,
    ) -> ngx_int_t {
        NGINX.with_borrow_mut(|nginx| {
            while !cl.is_null() {
                nginx.held.push((*cl).buf);
                cl = (*cl).next;
            }
            if nginx.copying {
                for b in std::mem::take(&mut nginx.held) {
                    nginx
                        .copied
                        .extend_from_slice(std::slice::from_raw_parts((*b).pos, size(b)));
                    (*b).pos = (*b).last;
                }
                let n = nginx.copied.len().min(nginx.room);
                let bytes: Vec<u8> = nginx.copied.drain(..n).collect();
                nginx.writes.push((bytes, 0));
                let waiting = !nginx.copied.is_empty();
                (*(*r).connection).set_buffered(waiting as _);
                (*(*(*r).connection).write).set_ready((!waiting) as _);
                return if waiting {
                    NGX_AGAIN as ngx_int_t
                } else {
                    NGX_OK as ngx_int_t
                };
            }
            let (mut bytes, mut buffers) = (Vec::new(), 0);
            while let Some(&b) = nginx.held.first() {
                let n = size(b).min(nginx.room - bytes.len().min(nginx.room));
                bytes.extend_from_slice(std::slice::from_raw_parts((*b).pos, n));
                (*b).pos = (*b).pos.add(n);
                if size(b) > 0 {
                    break;
                }
                buffers += 1;
                nginx.flushed = (*b).flush() != 0;
                nginx.last = (*b).last_buf() != 0;
                nginx.held.remove(0);
            }
            if !bytes.is_empty() || buffers > 0 {
                nginx.writes.push((bytes, buffers));
            }
            let waiting = !nginx.held.is_empty();
            (*(*r).connection).set_buffered(waiting as _);
            // As nginx's send chain: a socket that took less is not ready.
            (*(*(*r).connection).write).set_ready((!waiting) as _);
            if waiting {
                NGX_AGAIN as ngx_int_t
            } else {
                NGX_OK as ngx_int_t
            }
        })
    }

    #[no_mangle]
    unsafe extern "C" fn ngx_http_send_special(
        r: *mut ngx_http_request_t,
        flags: ngx_uint_t,
    ) -> ngx_int_t {
        let b: *mut ngx_buf_t = Box::into_raw(Box::new(std::mem::zeroed()));
        if flags & NGX_HTTP_LAST as ngx_uint_t != 0 {
            (*b).set_last_buf(1);
        }
        if flags & NGX_HTTP_FLUSH as ngx_uint_t != 0 {
            (*b).set_flush(1);
        }
        let cl = Box::into_raw(Box::new(ngx_chain_t {
            buf: b,
            next: null_mut(),
        }));
        ngx_http_output_filter(r, cl)
    }

    /// A request with a connection, as much of them as the output reads.
    fn request() -> *mut ngx_http_request_t {
        // SAFETY: all-zero request, connection and event structs are plain
        // data here; the output reads `main`, `post_action`, `buffered` and
        // the write event's `ready` and `delayed`.
        unsafe {
            let wev: *mut ngx_event_t = Box::into_raw(Box::new(std::mem::zeroed()));
            (*wev).set_ready(1);
            let c: *mut ngx_connection_t = Box::into_raw(Box::new(std::mem::zeroed()));
            (*c).write = wev;
            let r: *mut ngx_http_request_t = Box::into_raw(Box::new(std::mem::zeroed()));
            (*r).connection = c;
            (*r).main = r;
            r
        }
    }

    fn set_room(room: usize) {
        NGINX.with_borrow_mut(|nginx| nginx.room = room);
    }

    /// What reached the socket since the last call: (bytes, buffers) by call.
    fn writes() -> Vec<(Vec<u8>, usize)> {
        NGINX.with_borrow_mut(|nginx| std::mem::take(&mut nginx.writes))
    }

    fn flushed() -> (bool, bool) {
        NGINX.with_borrow(|nginx| (nginx.flushed, nginx.last))
    }

    fn write(out: &mut Output, chunk: &[u8], flush: bool, more: bool) -> ngx_int_t {
        // SAFETY: the test keeps every chunk alive until it ends.
        unsafe { out.write(chunk.as_ptr(), chunk.len(), flush, more) }.expect("queued")
    }

    #[test]
    fn a_flushed_chunk_goes_out_at_once_and_is_done() {
        let r = request();
        let output = shared(r);
        let mut out = output.lock().unwrap();
        let chunk = b"hello".to_vec();
        assert_eq!(write(&mut out, &chunk, true, false), NGX_OK as ngx_int_t);
        assert_eq!(writes(), [(b"hello".to_vec(), 1)]);
        assert_eq!(flushed(), (true, false));
        assert_eq!(out.done(), 1);
        assert!(!out.must_wait());
    }

    #[test]
    fn a_full_socket_holds_the_chunk_until_it_drains() {
        let r = request();
        let output = shared(r);
        let mut out = output.lock().unwrap();
        set_room(2);
        let chunk = b"hello".to_vec();
        assert_eq!(write(&mut out, &chunk, true, false), NGX_AGAIN as ngx_int_t);
        assert!(out.must_wait(), "the socket took 2 of 5 bytes");
        assert_eq!(out.done(), 0, "nginx still points into the chunk");
        set_room(usize::MAX);
        // SAFETY: the request and its chunk live.
        assert_eq!(unsafe { out.send(null_mut()) }, NGX_OK as ngx_int_t);
        assert!(!out.must_wait());
        assert_eq!(out.done(), 1);
        assert_eq!(writes(), [(b"he".to_vec(), 0), (b"llo".to_vec(), 1)]);
        // The buffer came back to the free list and serves the next chunk.
        let next = b"again".to_vec();
        write(&mut out, &next, true, false);
        assert!(out.busy.is_null() && !out.free.is_null());
        assert_eq!(out.done(), 2);
    }

    #[test]
    fn a_full_socket_holds_the_app_back_even_when_a_filter_copied_the_chunk() {
        let r = request();
        let output = shared(r);
        let mut out = output.lock().unwrap();
        NGINX.with_borrow_mut(|nginx| nginx.copying = true);
        set_room(4);
        let chunk = b"compressed".to_vec();
        assert_eq!(write(&mut out, &chunk, true, false), NGX_AGAIN as ngx_int_t);
        assert_eq!(out.done(), 1, "the filter took the chunk");
        assert!(out.must_wait(), "but its copy waits for the socket");
        set_room(usize::MAX);
        // SAFETY: the request lives.
        unsafe { out.send(null_mut()) };
        assert!(!out.must_wait());
        assert_eq!(writes(), [(b"comp".to_vec(), 0), (b"ressed".to_vec(), 0)]);
    }

    #[test]
    fn output_a_filter_keeps_back_does_not_hold_the_app() {
        // What nginx keeps without having tried the socket (postpone_output,
        // gzip without a flush) leaves the write event ready: no event
        // would come for it.
        let r = request();
        let output = shared(r);
        let mut out = output.lock().unwrap();
        let chunk = b"batched".to_vec();
        write(&mut out, &chunk, true, false);
        // SAFETY: the request lives; as nginx's filters would leave it.
        unsafe { (*(*r).connection).set_buffered(1) };
        // SAFETY: as above.
        assert_eq!(unsafe { out.send(null_mut()) }, NGX_OK as ngx_int_t);
        assert!(!out.must_wait());
    }

    #[test]
    fn small_batched_chunks_share_one_buffer() {
        let r = request();
        let output = shared(r);
        let mut out = output.lock().unwrap();
        let chunks: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i; 100]).collect();
        for chunk in &chunks {
            assert_eq!(write(&mut out, chunk, false, false), NGX_OK as ngx_int_t);
        }
        assert!(writes().is_empty(), "a batch waits for a flush or its size");
        // SAFETY: the request and the chunks live.
        unsafe { out.send_queue(true) };
        assert_eq!(writes(), [(chunks.concat(), 1)]);
        assert_eq!(out.done(), 5);
    }

    #[test]
    fn chunks_past_the_copy_limit_keep_their_own_buffers() {
        let r = request();
        let output = shared(r);
        let mut out = output.lock().unwrap();
        let chunks = [
            vec![1u8; 10],
            vec![2u8; COPY_MAX + 1],
            vec![3u8; 10],
            vec![4u8; 10],
        ];
        for chunk in &chunks {
            write(&mut out, chunk, false, false);
        }
        // SAFETY: as above.
        unsafe { out.send_last() };
        // 10 | COPY_MAX + 1 | 10 + 10 copied together, the last marked last_buf.
        assert_eq!(writes(), [(chunks.concat(), 3)]);
        assert_eq!(flushed(), (true, true));
        assert_eq!(out.done(), 4);
    }

    #[test]
    fn done_counts_the_chunks_of_copies_as_they_go_out() {
        let r = request();
        let output = shared(r);
        let mut out = output.lock().unwrap();
        let chunks: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 1000]).collect();
        for chunk in &chunks[..3] {
            write(&mut out, chunk, false, false);
        }
        // SAFETY: as above.
        unsafe { out.send_queue(false) };
        assert_eq!(out.done(), 3);
        set_room(500);
        for chunk in &chunks[3..] {
            write(&mut out, chunk, false, false);
        }
        // SAFETY: as above.
        assert_eq!(unsafe { out.send_queue(true) }, NGX_AGAIN as ngx_int_t);
        assert_eq!(out.done(), 3, "the copy of chunks 3 to 5 is not out");
        set_room(usize::MAX);
        // SAFETY: as above.
        unsafe { out.send(null_mut()) };
        assert_eq!(out.done(), 6);
        // The second copy reused the first one's memory, which waits now
        // for the next copies.
        assert_eq!(out.spare.len(), 1);
        assert!(out.copies.is_empty());
    }

    #[test]
    fn a_full_batch_goes_on_without_a_flush() {
        let r = request();
        let output = shared(r);
        let mut out = output.lock().unwrap();
        let chunk = vec![7u8; BATCH_BYTES / 4];
        for _ in 0..3 {
            write(&mut out, &chunk, false, false);
        }
        assert!(writes().is_empty());
        write(&mut out, &chunk, false, false);
        assert_eq!(writes(), [(chunk.repeat(4), 4)]);
        assert_eq!(flushed(), (false, false));
    }

    #[test]
    fn chunks_at_hand_go_out_together_flushed_after_the_last() {
        let r = request();
        let output = shared(r);
        let mut out = output.lock().unwrap();
        let chunks: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 5000]).collect();
        assert_eq!(write(&mut out, &chunks[0], true, true), NGX_OK as ngx_int_t);
        assert_eq!(
            write(&mut out, &chunks[1], false, true),
            NGX_OK as ngx_int_t
        );
        assert!(writes().is_empty(), "more chunks are at hand");
        write(&mut out, &chunks[2], false, false);
        assert_eq!(writes(), [(chunks.concat(), 3)]);
        assert_eq!(flushed(), (true, false));
    }

    #[test]
    fn the_end_of_an_empty_queue_is_nginx_s_last_buffer() {
        let r = request();
        let output = shared(r);
        let mut out = output.lock().unwrap();
        let chunk = b"body".to_vec();
        write(&mut out, &chunk, true, false);
        // SAFETY: as above.
        assert_eq!(unsafe { out.send_last() }, NGX_OK as ngx_int_t);
        assert_eq!(writes(), [(b"body".to_vec(), 1), (Vec::new(), 1)]);
        assert_eq!(flushed(), (false, true));
        assert_eq!(out.done(), 1);
    }
}
