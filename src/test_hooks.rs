//! Fault points for the test suite, compiled only into the test build
//! (`scripts/build test`, cargo feature `test-hooks`): `wsgi_test_hook NAME
//! ...;` arms them, at any level. A release build has neither the directive
//! nor the points: `Hooks::armed` is then a constant false, and every check
//! compiles to nothing.
//!
//! They make the orders of events that real races need happen every time,
//! and put a panic where no bug of today's code does, so that tests can
//! show what the module does then.

// In a release build nothing parses or arms the hooks.
#![cfg_attr(not(feature = "test-hooks"), allow(dead_code))]

use std::sync::atomic::{AtomicU32, Ordering};

/// One fault point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Once the worker is exiting, the thread pools' busy timer
    /// (src/pool.rs) blocks the event loop until no pool thread works, and
    /// only then looks: the threads' last log lines are handed over while
    /// the loop is not reading them, and the worker exits right after. The
    /// order in which a graceful quit once lost an app's close() line.
    BusyTimerBlocksAtExit,
    /// Thread mode: a pool thread posts its response's news only with the
    /// end (or a flush, a log line, or when it must wait for room), so that
    /// head, chunks and end reach the event loop together, as they do when
    /// the loop is slower than the app.
    NewsWaitsForTheEnd,
    /// Thread mode: every write to a response's temp file fails as on a
    /// full disk (ENOSPC).
    SpillWriteFails,
    /// Thread mode: the watchdog lingers 0.5 s after the lines of a
    /// stuck call's alert, so the event loop has read them (and gone back
    /// to sleep) before the watchdog moves on.
    StuckAlertLingers,
    /// A panic in the named place.
    PanicInContentHandler,
    PanicInBodyHandler,
    PanicInWriteEvent,
    PanicInClientRead,
    PanicInQueueTimer,
    PanicInWakeUp,
    PanicInBusyTimer,
    PanicInPoolThread,
    PanicInInitProcess,
    PanicInExitProcess,
    /// The `wsgi_test_hook` directive's own handler panics.
    PanicInDirective,
}

const NAMES: [(&str, Hook); 15] = [
    ("busy_timer_blocks_at_exit", Hook::BusyTimerBlocksAtExit),
    ("news_waits_for_the_end", Hook::NewsWaitsForTheEnd),
    ("spill_write_fails", Hook::SpillWriteFails),
    ("stuck_alert_lingers", Hook::StuckAlertLingers),
    ("panic_in_content_handler", Hook::PanicInContentHandler),
    ("panic_in_body_handler", Hook::PanicInBodyHandler),
    ("panic_in_write_event", Hook::PanicInWriteEvent),
    ("panic_in_client_read", Hook::PanicInClientRead),
    ("panic_in_queue_timer", Hook::PanicInQueueTimer),
    ("panic_in_wake_up", Hook::PanicInWakeUp),
    ("panic_in_busy_timer", Hook::PanicInBusyTimer),
    ("panic_in_pool_thread", Hook::PanicInPoolThread),
    ("panic_in_init_process", Hook::PanicInInitProcess),
    ("panic_in_exit_process", Hook::PanicInExitProcess),
    ("panic_in_directive", Hook::PanicInDirective),
];

/// The hooks armed for a location (or, in the main configuration, for the
/// worker).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Hooks(u32);

/// The worker's hooks (those of every level), for the places that have no
/// request: set once by init_process.
static WORKER: AtomicU32 = AtomicU32::new(0);

/// Arms the worker's hooks. Event loop, init_process.
pub fn arm_worker(hooks: Hooks) {
    WORKER.store(hooks.0, Ordering::Relaxed);
}

/// The worker's hooks.
pub fn worker() -> Hooks {
    Hooks(WORKER.load(Ordering::Relaxed))
}

impl Hooks {
    /// Parses the directive's arguments; an unknown one comes back.
    pub fn parse(args: &[String]) -> Result<Hooks, String> {
        let mut hooks = Hooks::default();
        for arg in args {
            let (_, hook) = NAMES
                .iter()
                .find(|(name, _)| name == arg)
                .ok_or_else(|| arg.clone())?;
            hooks.0 |= 1 << *hook as u32;
        }
        Ok(hooks)
    }

    pub fn union(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }

    /// Whether `hook` is armed: never in a release build.
    #[inline(always)]
    pub fn armed(self, hook: Hook) -> bool {
        cfg!(feature = "test-hooks") && self.0 & (1 << hook as u32) != 0
    }

    /// Panics if `hook` is armed.
    #[inline(always)]
    pub fn panic_if(self, hook: Hook) {
        if self.armed(hook) {
            panic!("test hook {hook:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let hooks = Hooks::parse(&["panic_in_wake_up".into()]).unwrap();
        assert_eq!(
            hooks.armed(Hook::PanicInWakeUp),
            cfg!(feature = "test-hooks")
        );
        assert!(!hooks.armed(Hook::PanicInBusyTimer));
        assert!(Hooks::parse(&["nonsense".into()]).is_err());
        assert_eq!(NAMES.len(), Hook::PanicInDirective as usize + 1);
    }
}
