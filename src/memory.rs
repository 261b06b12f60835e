//! Giving freed memory back to the system. glibc's malloc keeps what a burst frees (ten parallel
//! 5 MiB uploads, a backup) in its per-thread arenas, so without help the resident size stays at
//! the burst's peak for the life of the process. The appliance [`tune`]s the allocator at start
//! and calls [`trim`] every 30 seconds (figures in docs/benchmarks.md).

/// Allocator settings for the long-running appliance: two arenas (fewer half-empty heaps to
/// fragment; the HTTP workers are one per core anyway) and a fixed 256 KiB threshold above which
/// blocks are mapped on their own and unmapped when freed (glibc otherwise raises the threshold
/// after the first large free, and later upload buffers land in the heap).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before the runtime starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Returns free heap pages to the system (a no-op where the allocator is not glibc's).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases the allocator's own free lists; it takes no
    // pointers from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
