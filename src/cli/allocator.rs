//! The process's memory allocator, set for training's pattern: every step allocates and frees
//! the same few hundred buffers of up to tens of MB (activations, gradients, scratch).
//!
//! glibc's malloc gives freed memory back to the kernel once the free top of the heap passes a
//! trim threshold, and serves blocks above a (self-adjusting) size with their own `mmap`. Either
//! way the next step's buffers are fresh pages: a page fault and a zeroed page for every 4 KB
//! touched, and an `munmap` or `brk` on every free. Profiling `visionnet bench --model attn3
//! --mode train` (perf, 2-core Zen 5) put 28% of the step's time in the kernel, most of it
//! there. Keeping freed memory in the heap costs no extra peak memory: the heap stays at the
//! step's high-water mark, which the process reaches anyway.
//!
//! No block gets its own `mmap` at all: glibc's ceiling for the threshold is 32 MB, and the plain
//! CNN's first activation at inference batch 256 is 33.5 MB (256 x 32 x 32 x 32 floats), so it
//! and its BatchNorm output came back as fresh pages every step (page faults were 9% of that step
//! in perf; without them 4,200 -> 5,300 images/s, peak resident 107 -> 91 MiB, 2-core Zen 5).
//! glibc still falls back to `mmap` where the heap cannot grow.

/// Keeps freed memory in the heap for the next step (see the [module documentation](self)).
/// `MALLOC_TRIM_THRESHOLD_` / `MALLOC_MMAP_THRESHOLD_` / `MALLOC_MMAP_MAX_` (or
/// `GLIBC_TUNABLES`) in the environment win: a user who set them chose.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |name: &str| std::env::var_os(name).is_some();
        let chosen = [
            "MALLOC_TRIM_THRESHOLD_",
            "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_MMAP_MAX_",
        ];
        if chosen.iter().any(|name| set(name)) || set("GLIBC_TUNABLES") {
            return;
        }
        // SAFETY: mallopt only sets malloc parameters; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
            libc::mallopt(libc::M_MMAP_MAX, 0);
        }
    }
}
