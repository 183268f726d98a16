//! Threads the module starts (pool threads, the watchdog) must leave
//! nginx's signals (reload, quit, child exits) to the event-loop thread,
//! whose wait they interrupt. A thread inherits the mask it is born with,
//! so threads are spawned inside `masked`.

/// Runs `spawn` with every signal but faults blocked in this thread, so
/// that threads it starts are born with that mask; then restores the mask.
pub fn masked<R>(spawn: impl FnOnce() -> R) -> R {
    // SAFETY: plain libc calls on local, initialized signal sets.
    let old = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for fault in [libc::SIGILL, libc::SIGFPE, libc::SIGSEGV, libc::SIGBUS] {
            libc::sigdelset(&mut set, fault);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, &mut old);
        old
    };
    let spawned = spawn();
    // SAFETY: `old` is the mask pthread_sigmask returned.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    spawned
}
