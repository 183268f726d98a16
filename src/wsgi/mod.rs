//! The Python side of a request: everything that runs on whichever thread
//! runs the app (the event loop inline, a pool thread in thread mode), and
//! touches nothing of nginx's but through the event loop.
//!
//! `interp` (CPython, the apps) → `environ` (+ `input`, `errors`, `flush`:
//! what the app gets; `stream` the body as it arrives; `file_wrapper` a file nginx sends) → `driver` (one response: `call` of the app and
//! `start_response`'s `Head`, its X-Accel-* fields in `accel`, chunk by
//! chunk into a sink) → `kept` (the bytes nginx's buffers point into).

pub mod accel;
pub mod call;
pub mod driver;
pub mod environ;
pub mod errors;
pub mod file_wrapper;
pub mod flush;
pub mod input;
pub mod interp;
pub mod kept;
pub mod start_response;
pub mod stream;
pub mod watch;
pub mod watchdog;
mod watcher;
