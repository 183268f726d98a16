//! A process's resident set size, as the kernel counts it now.

/// The resident set size of process `pid` (this process: None), in bytes,
/// from /proc/PID/statm; None when it cannot be read (the process is gone).
pub fn resident_bytes(pid: Option<u64>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/statm"),
        None => "/proc/self/statm".to_owned(),
    };
    let statm = std::fs::read_to_string(path).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::resident_bytes;

    #[test]
    fn this_process_by_either_name() {
        let own = resident_bytes(None).expect("this process's RSS");
        let by_pid = resident_bytes(Some(std::process::id() as u64)).expect("by its pid");
        assert!(own > 0 && by_pid > 0);
        // Both read the same process: within 64 MiB of each other.
        assert!(own.abs_diff(by_pid) < 64 << 20);
    }

    #[test]
    fn a_process_that_is_not_there() {
        assert_eq!(resident_bytes(Some(u32::MAX as u64 + 1)), None);
    }
}
