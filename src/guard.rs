//! The panic guard. Every function nginx calls runs its body through
//! `catch`: a Rust panic (a bug of the module) must neither unwind into
//! nginx's C frames, which is undefined behaviour, nor end the worker, which
//! would drop every connection it holds. The caller logs what panicked at
//! `alert` and answers as its place allows: the request ends (500, or an
//! aborted response once the head is out), a directive is refused, the
//! worker goes on.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Where the last panic of this thread happened, for its guard's line.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Makes panics report to their guard instead of printing to stderr,
/// which nginx points at its error log as raw lines. Idempotent.
pub fn install() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let place = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let text = format!("{}{place}", payload_text(info.payload()));
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(text));
        }));
    });
}

/// Runs `f`; a panic comes back as its message and place.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| payload_text(&*payload))
    })
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_owned()
    }
}

/// The line error_log gets for a panic in `place`.
pub fn message(place: &str, panic: &str) -> String {
    format!("wsgi: internal error (panic) in {place}: {panic}")
}
