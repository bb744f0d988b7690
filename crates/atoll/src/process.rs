//! Process-wide settings: for a server, before it takes traffic, enough
//! file descriptors for its connection limit and an allocator that gives
//! memory back after a burst of large bodies; for a command that prints a
//! report, a quiet end when its reader goes away.

/// Raises the soft limit on open files to the hard limit (as Go's runtime
/// does at start) and returns the soft limit now in force.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit with a pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        Some(lim.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// The largest connection limit `fd_limit` leaves room for: connections
/// need one descriptor each, and the server keeps some for its listener,
/// stores, modules and logs.
pub fn connection_ceiling(fd_limit: u64) -> usize {
    const RESERVED: u64 = 256;
    fd_limit.saturating_sub(RESERVED).max(16) as usize
}

/// glibc raises its mmap threshold each time a large block is freed, after
/// which large blocks (bodies of a few MiB) come from arenas that are
/// rarely trimmed: a burst of large responses left gigabytes resident
/// afterwards. A fixed threshold keeps blocks of 256 KiB and more in their
/// own mappings, returned to the kernel when freed.
pub fn return_large_blocks_to_the_kernel() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

/// For a command whose output is text for a reader (`inspect`): a closed
/// pipe ends it quietly, as it ends `ls` or `cat`, instead of a panic in
/// `println!` (`atoll inspect | head`). Not for the server, which must
/// outlive whatever reads its output.
pub fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal, before any
    // thread that could be writing exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_connection_ceiling_leaves_descriptors_for_the_server() {
        assert_eq!(super::connection_ceiling(1024), 768);
        assert_eq!(super::connection_ceiling(10), 16);
    }
}
