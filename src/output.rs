//! Chunks → nginx buffers → the output filter chain.
//!
//! A `bytes` chunk is handed to nginx without copying: the buffer points into
//! the bytes object, which stays referenced until nginx has sent it (its
//! buffer is back on the free list) or the request ends.

use std::ptr::{addr_of, null_mut};

use ngx::ffi::{
    ngx_chain_get_free_buf, ngx_chain_t, ngx_chain_update_chains, ngx_http_output_filter,
    ngx_http_request_t, ngx_int_t, NGX_AGAIN, NGX_ERROR,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::ngx_http_wsgi_module;

/// The module's buffer tag: nginx returns buffers with this tag to our free list.
fn tag() -> *mut std::ffi::c_void {
    // SAFETY: only the address of the module static is taken.
    addr_of!(ngx_http_wsgi_module) as *mut _
}

pub struct Output {
    free: *mut ngx_chain_t,
    busy: *mut ngx_chain_t,
    /// The last filter call could not write everything (NGX_AGAIN): the
    /// client's socket is full and a write event will come.
    blocked: bool,
    /// The bytes objects that buffers in `busy` point into.
    held: Vec<Py<PyBytes>>,
}

impl Default for Output {
    fn default() -> Output {
        Output {
            free: null_mut(),
            busy: null_mut(),
            blocked: false,
            held: Vec::new(),
        }
    }
}

impl Output {
    /// True while nginx holds buffers of this response that it could not
    /// write: the signal to stop asking the app for more until the write
    /// event. Buffers a filter merely keeps back to batch them (buffering,
    /// postpone_output) do not count: no write event would come for them.
    pub fn must_wait(&self) -> bool {
        !self.busy.is_null() && self.blocked
    }

    /// Drops the references to bytes objects nginx is done with. Call with
    /// the GIL held (the `py` token proves it).
    pub fn release_sent(&mut self, _py: Python<'_>) {
        if self.busy.is_null() {
            self.held.clear();
        }
    }

    /// Drops every reference, with the GIL held; for the end of the request.
    pub fn release_all(&mut self, _py: Python<'_>) {
        self.held.clear();
    }

    pub fn holds_python(&self) -> bool {
        !self.held.is_empty()
    }

    /// Sends the first `len` bytes of `chunk` down the filter chain, `flush`
    /// set so no filter holds them.
    ///
    /// # Safety
    /// `r` must be the live request this output belongs to.
    pub unsafe fn send_bytes(
        &mut self,
        r: *mut ngx_http_request_t,
        chunk: Bound<'_, PyBytes>,
        len: usize,
        flush: bool,
    ) -> ngx_int_t {
        let data = &chunk.as_bytes()[..len];
        let cl = ngx_chain_get_free_buf((*r).pool, &mut self.free);
        if cl.is_null() {
            return NGX_ERROR as ngx_int_t;
        }
        let b = (*cl).buf;
        // A recycled buffer keeps its old flags: start from a clean one.
        std::ptr::write_bytes(b, 0, 1);
        let start = data.as_ptr() as *mut u8;
        (*b).start = start;
        (*b).pos = start;
        (*b).last = start.add(data.len());
        (*b).end = (*b).last;
        (*b).set_memory(1);
        (*b).set_flush(flush as u32);
        (*b).tag = tag();
        (*cl).next = null_mut();
        self.held.push(chunk.unbind());
        self.send(r, cl)
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
        self.blocked = rc == NGX_AGAIN as ngx_int_t;
        ngx_chain_update_chains((*r).pool, &mut self.free, &mut self.busy, &mut out, tag());
        rc
    }
}
