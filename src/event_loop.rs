//! Which thread is the worker's event loop: the only one that may call
//! nginx. Pool threads and an app's own threads reach nginx through it
//! (their log lines, x-wsgiorg.flush), so the code they may run asks here.

use std::sync::OnceLock;
use std::thread::ThreadId;

static EVENT_LOOP: OnceLock<ThreadId> = OnceLock::new();

/// Marks the calling thread as the event loop. init_process, once.
pub fn mark_current() {
    let _ = EVENT_LOOP.set(std::thread::current().id());
}

/// True on the worker's event-loop thread.
pub fn is_current() -> bool {
    EVENT_LOOP.get() == Some(&std::thread::current().id())
}
