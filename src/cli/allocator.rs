//! The process's memory allocator, set for training's pattern: every step allocates and frees
//! the same few hundred buffers of up to tens of MB (activations, gradients, scratch).
//!
//! glibc's malloc gives freed memory back to the kernel once the free top of the heap passes a
//! trim threshold, and serves blocks above a (self-adjusting) size with their own `mmap`. Either
//! way the next step's buffers are fresh pages: a page fault and a zeroed page for every 4 KB
//! touched, and an `munmap` or `brk` on every free. Profiling `visionnet bench --model attn3
//! --mode train` (perf, 2-core Zen 5) put 28% of the step's time in the kernel, most of it
//! there. Keeping freed memory in the heap (no trimming, `mmap` only above glibc's 32 MB
//! ceiling) costs no extra peak memory: the heap stays at the step's high-water mark, which the
//! process reaches anyway.

/// glibc's largest `M_MMAP_THRESHOLD` on 64-bit targets (`DEFAULT_MMAP_THRESHOLD_MAX`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Keeps freed memory in the heap for the next step (see the [module documentation](self)).
/// `MALLOC_TRIM_THRESHOLD_` / `MALLOC_MMAP_THRESHOLD_` (or `GLIBC_TUNABLES`) in the
/// environment win: a user who set them chose.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |name: &str| std::env::var_os(name).is_some();
        if set("MALLOC_TRIM_THRESHOLD_") || set("MALLOC_MMAP_THRESHOLD_") || set("GLIBC_TUNABLES") {
            return;
        }
        // SAFETY: mallopt only sets malloc parameters; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}
