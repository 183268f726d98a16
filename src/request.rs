//! The per-request context: everything a WSGI request owns, in one place,
//! and `settle`, the one function that moves a request to its next state.
//!
//! ```text
//!  ReadingBody ─────────▶ Running ◀───────────┐
//!       │                  │   │               │ the write event: nginx
//!       │ thread mode      │   ├─▶ Yielded ────┤ wrote what it held
//!       ▼                  │   └─▶ WaitingForClient (send_timeout)
//!    Queued ───────────────┘
//!
//!  any state ──▶ Done   (the module finalized the request, exactly once)
//! ```
//!
//! Inline, the app runs on the event loop and the context holds its Python
//! objects (`inline::Inline`). In thread mode a pool thread holds them, and
//! the context holds the hand-off to that thread (`threads::Link`); the
//! event loop never takes the GIL for it.
//!
//! The context is allocated from the request pool with a cleanup handler,
//! so its `Drop` runs on every exit: normal end, app error, client abort,
//! timeout. Inline, Drop calls the iterable's `close()` if it has not been
//! called and releases every Python reference, with the GIL held; in thread
//! mode it tells the pool thread to stop, which then closes the iterable.

use ngx::ffi::{ngx_http_finalize_request, ngx_http_request_t, ngx_int_t, ngx_log_t, NGX_ERROR};
use ngx::http::{HttpModule, Request};
use ngx::{ngx_log_debug_mask, ngx_log_error};

use crate::asgi::AsgiRequest;
use crate::config::Module;
use crate::inline::Inline;
use crate::next::Next;
use crate::nginx::output::{self, SharedOutput};
use crate::nginx::{events, redirect};
use crate::status::{self, Counter, Gauge};
use crate::threads::Link;
use crate::{guard, retire};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// nginx is reading the request body; the app has not been called.
    ReadingBody,
    /// Thread mode: waiting in the pool's queue for a free thread.
    Queued,
    /// Inline: the app's response is being pumped. Thread mode: the app
    /// runs on its thread, and the loop relays what the thread hands over.
    Running,
    /// Inline: this turn's budget is spent; the response continues after
    /// the event loop's next poll, so other connections get their turn.
    Yielded,
    /// nginx holds output it could not write: waiting for the client's
    /// write event, within send_timeout.
    WaitingForClient,
    /// The module finalized the request.
    Done,
}

pub struct RequestCtx {
    state: State,
    /// The request (its memory outlives the context's drop, which nginx's
    /// pool cleanup runs).
    request: *mut ngx_http_request_t,
    /// The request's log (carries client, server and request in messages).
    pub log: *mut ngx_log_t,
    /// Index of the app in the main configuration.
    pub app: usize,
    pub output: SharedOutput,
    pub mode: Mode,
}

pub enum Mode {
    Inline(Inline),
    Thread(Link),
    /// An ASGI app's task on the worker's asyncio loop (None until the
    /// body is read and the task made).
    Asgi(Option<AsgiRequest>),
}

impl RequestCtx {
    pub fn new(r: *mut ngx_http_request_t, app: usize, mode: Mode) -> RequestCtx {
        status::count(match mode {
            Mode::Inline(_) => Counter::RequestsInline,
            Mode::Thread(_) => Counter::RequestsThreads,
            Mode::Asgi(_) => Counter::RequestsAsgi,
        });
        status::gauge(Gauge::InFlight, 1);
        RequestCtx {
            state: State::ReadingBody,
            request: r,
            // SAFETY: the caller's request is live.
            log: unsafe { (*(*r).connection).log },
            app,
            output: output::shared(r),
            mode,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Moves the request to `state`, traced at debug level. The work of
    /// an entry point marks `Running` as it starts; `settle` does the rest.
    pub fn set_state(&mut self, state: State) {
        if state != self.state {
            ngx_log_debug_mask!(
                DebugMask::Http,
                self.log,
                "wsgi: request {:?} -> {:?}",
                self.state,
                state
            );
            self.state = state;
        }
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        let log = self.log;
        // The pool cleanup is called from nginx's C code: nothing may unwind.
        if let Err(panic) = guard::catch(|| {
            match &mut self.mode {
                Mode::Inline(inline) => inline.end_request(),
                Mode::Thread(link) => link.end_request(log),
                Mode::Asgi(asgi) => {
                    if let Some(asgi) = asgi {
                        asgi.end_request();
                    }
                }
            }
            // SAFETY: nginx runs the pool cleanup before it frees the
            // request's memory; its connection is still there.
            let (code, sent) = unsafe {
                let r = self.request;
                ((*r).headers_out.status, (*(*r).connection).sent)
            };
            status::response(code);
            status::add(Counter::SentBytes, sent.max(0) as u64);
            status::gauge(Gauge::InFlight, -1);
            // wsgi_max_requests, wsgi_max_rss.
            retire::request_ended();
        }) {
            ngx_log_error!(
                ngx::ffi::NGX_LOG_ALERT,
                log,
                "{}",
                guard::message("the request's cleanup", &panic)
            );
        }
    }
}

/// Moves request `r` to `next`: arms what it waits for, or finalizes it.
/// Every state change of a request goes through here (and is traced at
/// debug level), and only here does the module finalize a request.
///
/// # Safety
/// `r` must be a live request owned by this module. Its context is not
/// used after a Finish: finalizing may free it.
pub unsafe fn settle(r: *mut ngx_http_request_t, next: Next) {
    let Some(ctx) = get(r) else {
        if let Next::Finish(rc) = next {
            ngx_http_finalize_request(r, rc);
        }
        return;
    };
    if ctx.state == State::Done {
        return; // finalized already: nothing of it is ours any more
    }
    match next {
        Next::Queued => ctx.set_state(State::Queued),
        Next::Running => ctx.set_state(State::Running),
        Next::Yield => {
            ctx.set_state(State::Yielded);
            events::give_turn(r);
        }
        Next::WaitForClient => {
            ctx.set_state(State::WaitingForClient);
            if !events::wait_for_client(r) {
                finish(r, ctx, NGX_ERROR as _);
            }
        }
        Next::Finish(rc) => finish(r, ctx, rc),
        Next::Redirect(head) => {
            // The module is done with the request before nginx runs the
            // other location (which may be another app's).
            let log = ctx.log;
            leave(ctx);
            let rc = redirect::redirect(r, log, &head);
            ngx_log_debug_mask!(DebugMask::Http, log, "wsgi: finalize {}", rc);
            ngx_http_finalize_request(r, rc);
        }
    }
}

/// # Safety
/// As for `settle`.
unsafe fn finish(r: *mut ngx_http_request_t, ctx: &mut RequestCtx, rc: ngx_int_t) {
    leave(ctx);
    ngx_log_debug_mask!(DebugMask::Http, ctx.log, "wsgi: finalize {}", rc);
    ngx_http_finalize_request(r, rc);
}

/// The module is done with the request: nothing of it is ours any more.
fn leave(ctx: &mut RequestCtx) {
    ctx.set_state(State::Done);
    if let Mode::Thread(link) = &mut ctx.mode {
        // The app stops at its next chunk, as an inline one is closed at
        // once (by the context's drop, when nginx frees the request).
        link.end_app();
    }
}

/// Stores `ctx` in the request pool (dropped by the pool's cleanup) and
/// registers it as this module's context of `r`; false when the pool has
/// no memory for it.
///
/// # Safety
/// `r` must be a live request.
pub unsafe fn create(r: *mut ngx_http_request_t, ctx: RequestCtx) -> bool {
    let request = Request::from_ngx_http_request(r);
    let p = request.pool().allocate(ctx);
    if p.is_null() {
        return false;
    }
    request.set_module_ctx(p.cast(), Module::module());
    true
}

/// The context `create` registered for `r`.
///
/// # Safety
/// `r` must be a live request; the returned reference must not outlive it
/// nor coexist with another reference from `get`.
pub unsafe fn get<'a>(r: *mut ngx_http_request_t) -> Option<&'a mut RequestCtx> {
    // The crate's accessor lends only a shared reference.
    let p = *(*r).ctx.add(Module::module().ctx_index) as *mut RequestCtx;
    p.as_mut()
}
