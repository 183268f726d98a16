//! The bytes objects a response's nginx buffers point into: a chunk is
//! handed to nginx without a copy, so whoever runs the app keeps its bytes
//! object until nginx reports it done (`nginx::output::Output::done`) or
//! the request ends. Inline that is the request's context; in thread mode
//! the pool thread, then the hand-off.

use std::collections::VecDeque;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The bytes objects a response's buffers point into, oldest first; each
/// is dropped once nginx is done with its buffer. Dropped without the GIL
/// (on the event loop, in thread mode), a reference is released by the next
/// thread that takes the GIL.
#[derive(Default)]
pub struct Kept {
    /// The oldest; most responses are one chunk, which needs no deque.
    first: Option<Slot>,
    rest: VecDeque<Slot>,
    /// How many were released before `first`.
    released: u64,
}

/// A chunk's place in line: its bytes object, or none for a chunk nginx
/// sends from a temp file (thread mode's spill), which keeps the count.
type Slot = Option<Py<PyBytes>>;

impl Kept {
    pub fn push(&mut self, chunk: Py<PyBytes>) {
        self.push_slot(Some(chunk));
    }

    /// A chunk nginx sends from the response's temp file: nothing to keep.
    pub fn push_spilled(&mut self) {
        self.push_slot(None);
    }

    fn push_slot(&mut self, slot: Slot) {
        if self.first.is_none() {
            self.first = Some(slot);
        } else {
            self.rest.push_back(slot);
        }
    }

    /// Releases the first `done` chunks.
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
