//! Thread mode (`wsgi_threads`): the app runs on a pool thread, the event
//! loop only passes its response to nginx. The two sides share nothing but
//! the hand-off, one per request:
//!
//! ```text
//!  event loop                                   pool thread
//!  ──────────                                   ───────────
//!  relay::submit ── Job (vars, body) ──▶ pool ──▶ producer::run
//!                                                  driver: app, chunks
//!  entry::on_wake ◀── wakeup (eventfd) ◀─┐           │
//!   relay::relay ◀── head, chunks, end ── handoff ◀──┘
//!               ── blocked, done, stop ──▶         (waits for room,
//!                                                   without the GIL)
//! ```
//!
//! The event loop never takes the GIL for a threaded request, and a pool
//! thread never touches nginx's structures: everything the app needs is
//! copied into the job, and everything for nginx (chunks, log lines) goes
//! through the hand-off.

mod handoff;
pub mod pool;
mod producer;
pub mod relay;
mod spill;
pub mod wakeup;

pub use handoff::Handoff;
pub use relay::Link;
