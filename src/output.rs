//! Chunks → nginx buffers → the output filter chain.
//!
//! A `bytes` chunk is handed to nginx without copying: the buffer points into
//! the bytes object, which whoever runs the app keeps (`Kept`) until nginx
//! has sent it (`done` counts chunks, in order) or the request ends.
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
    ngx_chain_get_free_buf, ngx_chain_t, ngx_chain_update_chains, ngx_http_output_filter,
    ngx_http_request_t, ngx_http_send_special, ngx_int_t, NGX_AGAIN, NGX_ERROR, NGX_HTTP_FLUSH,
    NGX_HTTP_LAST, NGX_OK,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::ngx_http_wsgi_module;

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

/// # Safety
/// `r` must be a live request.
unsafe fn is_blocked(r: *mut ngx_http_request_t, rc: ngx_int_t) -> bool {
    rc == NGX_AGAIN as ngx_int_t || (*(*r).connection).buffered() != 0
}

/// The module's buffer tag: nginx returns buffers with this tag to our free list.
fn tag() -> *mut std::ffi::c_void {
    addr_of!(ngx_http_wsgi_module) as *mut _
}

pub struct Output {
    free: *mut ngx_chain_t,
    busy: *mut ngx_chain_t,
    /// Queued buffers not yet passed to the filters: first and last link.
    queue: *mut ngx_chain_t,
    queue_last: *mut ngx_chain_t,
    queued_bytes: usize,
    queued_buffers: usize,
    /// How many chunks the queued buffers carry.
    queued_chunks: u64,
    /// After the last filter call, nginx could not pass everything on: the
    /// write filter said NGX_AGAIN (the socket is full), or the connection
    /// is marked buffered (an HTTP/2 stream whose frames wait for the
    /// connection or its flow-control window). Either way a write event
    /// will come once output moves.
    blocked: bool,
    /// How many buffers were passed to the filters, since the response began.
    passed: u64,
    /// How many chunks (calls of `queue`) those buffers carry.
    passed_chunks: u64,
    /// How many of the chunks nginx is done with.
    done: u64,
    /// The buffers chunks were copied into, queued or passed and not yet
    /// done, oldest first.
    copies: VecDeque<CopyBuffer>,
    /// Copy memory nginx is done with, for the next copies.
    spare: Vec<Vec<u8>>,
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

pub fn shared() -> SharedOutput {
    Arc::new(Mutex::new(Output {
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
        copies: VecDeque::new(),
        spare: Vec::new(),
    }))
}

/// Locks the output; a panic elsewhere cannot leave it unusable.
pub fn lock(output: &SharedOutput) -> MutexGuard<'_, Output> {
    output
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Output {
    /// True while nginx holds buffers of this response that it could not
    /// write: the signal to stop asking the app for more until the write
    /// event. Buffers a filter merely keeps back to batch them (buffering,
    /// postpone_output) do not count: no write event would come for them.
    pub fn must_wait(&self) -> bool {
        !self.busy.is_null() && self.blocked
    }

    /// How many of the chunks queued so far nginx is done with: the data
    /// of the first `done()` chunks may be released.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// True when a batched response has queued enough to pass it on.
    pub fn batch_full(&self) -> bool {
        self.queued_bytes >= BATCH_BYTES || self.queued_buffers >= BATCH_BUFFERS
    }

    /// Queues `len` bytes at `data` as the next chunk: a buffer of its own
    /// that points at them, or, when small, a copy behind the last one.
    ///
    /// # Safety
    /// `r` must be the live request this output belongs to; the bytes must
    /// stay valid until `done()` counts this chunk or the request ends.
    pub unsafe fn queue(
        &mut self,
        r: *mut ngx_http_request_t,
        data: *const u8,
        len: usize,
    ) -> Result<(), ()> {
        // Only a batch has a queue to copy behind (a flushed chunk goes alone).
        if !self.queue.is_null() && self.copy_behind_last(data, len) {
            self.queued_bytes += len;
            return Ok(());
        }
        let cl = ngx_chain_get_free_buf((*r).pool, &mut self.free);
        if cl.is_null() {
            return Err(());
        }
        let b = (*cl).buf;
        // A recycled buffer keeps its old flags: start from a clean one.
        std::ptr::write_bytes(b, 0, 1);
        let start = data as *mut u8;
        (*b).start = start;
        (*b).pos = start;
        (*b).last = start.add(len);
        (*b).end = (*b).last;
        (*b).set_memory(1);
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
        Ok(())
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

    /// Passes the queue to the filters; with `flush`, marked so that no
    /// filter holds it back (an empty queue then sends a flush alone).
    ///
    /// # Safety
    /// `r` must be the live request this output belongs to.
    pub unsafe fn send_queue(&mut self, r: *mut ngx_http_request_t, flush: bool) -> ngx_int_t {
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
        self.send(r, out)
    }

    /// Ends the response: passes the queue with its last buffer marked as
    /// the body's end, or, when nothing is queued, nginx's own last buffer.
    ///
    /// # Safety
    /// `r` must be the live request this output belongs to.
    pub unsafe fn send_last(&mut self, r: *mut ngx_http_request_t) -> ngx_int_t {
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
        self.send_queue(r, true)
    }

    /// Passes `out` (null: only what nginx holds) to the output filters and
    /// moves the buffers nginx is done with to the free list.
    ///
    /// # Safety
    /// `r` must be the live request this output belongs to.
    pub unsafe fn send(
        &mut self,
        r: *mut ngx_http_request_t,
        mut out: *mut ngx_chain_t,
    ) -> ngx_int_t {
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

/// The bytes objects a response's buffers point into, oldest first; each
/// is dropped once nginx is done with its buffer. Dropped without the GIL
/// (on the event loop, in thread mode), a reference is released by the next
/// thread that takes the GIL.
#[derive(Default)]
pub struct Kept {
    /// The oldest; most responses are one chunk, which needs no deque.
    first: Option<Py<PyBytes>>,
    rest: VecDeque<Py<PyBytes>>,
    /// How many were released before `first`.
    released: u64,
}

impl Kept {
    pub fn push(&mut self, chunk: Py<PyBytes>) {
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    /// Releases the chunks of the first `done` buffers.
    pub fn release_upto(&mut self, done: u64) {
        while self.released < done && self.first.take().is_some() {
            self.released += 1;
            self.first = self.rest.pop_front();
        }
    }

    /// Releases all: nginx points into none of them any more.
    pub fn clear(&mut self) {
        let n = self.first.take().map_or(0, |_| 1) + self.rest.len();
        self.released += n as u64;
        self.rest.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}
