//! Giving freed memory back to the system. glibc's malloc keeps what a burst frees (ten parallel
//! 5 MiB uploads, a backup) in its per-thread arenas, so without help the resident size stays at
//! the burst's peak for the life of the process. [`trim`] asks it to return every free page; the
//! appliance calls it every 30 seconds (figures in docs/benchmarks.md). Fewer arenas and a fixed
//! mmap threshold were measured too: they halved what stays resident but cost 16–25% of request
//! throughput, so they are not set.

/// Returns free heap pages to the system (a no-op where the allocator is not glibc's).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases the allocator's own free lists; it takes no
    // pointers from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
