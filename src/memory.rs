//! The daemon's memory: glibc's allocator, told to keep fewer arenas and
//! to give back what it holds freed.
//!
//! Measured (BENCHMARKS.md, "Accepting a 100,000-recipient campaign"):
//! with glibc's default of up to 8 arenas per core, each tokio worker,
//! sled thread and blocking-pool thread allocates in an arena of its own,
//! and a daemon that kept accepting 100,000-recipient campaigns and moving
//! them to the history files grew from 199 to 461 MB over four rounds while
//! what it actually used stayed at 100-172 MB; with two arenas it stayed at
//! 167-207 MB. A trim from housekeeping gives back the freed pages.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Free heap memory above which housekeeping gives it back.
pub const TRIM_ABOVE: usize = 8 << 20;

/// Give freed heap memory back to the system when more than `above` bytes
/// of it are held: glibc's allocator keeps what is freed inside its heaps
/// (a 100,000-recipient campaign accept left 137 of the 175 MB it added
/// freed but held, see BENCHMARKS.md), and sled frees replaced pages some
/// time after a burst, so a trim at the end of the burst comes too early;
/// housekeeping's period catches both. Returns the bytes that were free
/// when it trimmed, `None` when there was too little to bother (or on a
/// libc without these calls).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn give_back_freed_memory(above: usize) -> Option<usize> {
    // SAFETY: mallinfo2 (glibc 2.33+) and malloc_trim take no pointers and
    // only read or release the allocator's own free lists, under its locks.
    let free = unsafe { nix::libc::mallinfo2() }.fordblks;
    if free <= above {
        return None;
    }
    // SAFETY: as above; 0 keeps no padding at the top of the heap.
    unsafe { nix::libc::malloc_trim(0) };
    Some(free)
}

/// The heap as last measured ([`measure_heap`]): in use, free; the first
/// is usize::MAX until measured.
static HEAP_IN_USE: AtomicUsize = AtomicUsize::new(usize::MAX);
static HEAP_FREE: AtomicUsize = AtomicUsize::new(0);

/// Measure the allocator's heap now and keep it for [`heap_bytes`]:
/// `mallinfo2` walks every free chunk of every arena under the arena's
/// lock (milliseconds on a fragmented heap, stalling allocations
/// meanwhile), so housekeeping measures it once a period and `/metrics`
/// reads the result.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn measure_heap() -> Option<(usize, usize)> {
    // SAFETY: as in `give_back_freed_memory`: no pointers, read only.
    let info = unsafe { nix::libc::mallinfo2() };
    let (used, free) = (info.uordblks + info.hblkhd, info.fordblks);
    HEAP_FREE.store(free, Ordering::Relaxed);
    HEAP_IN_USE.store(used, Ordering::Relaxed);
    Some((used, free))
}

/// The allocator's heap: (bytes in use by the program, bytes free but
/// held) as housekeeping last measured it (measured now the first time),
/// for `/metrics`; None on a libc without `mallinfo2`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_bytes() -> Option<(usize, usize)> {
    match HEAP_IN_USE.load(Ordering::Relaxed) {
        usize::MAX => measure_heap(),
        used => Some((used, HEAP_FREE.load(Ordering::Relaxed))),
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_bytes() -> Option<(usize, usize)> {
    None
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn measure_heap() -> Option<(usize, usize)> {
    None
}

/// Elsewhere (musl, other systems) the allocator's own policy stands.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back_freed_memory(_above: usize) -> Option<usize> {
    None
}

/// Arenas the allocator may keep (glibc's default is 8 per core).
pub const ARENAS: i32 = 2;

/// Limit glibc's arenas to [`ARENAS`]: call first thing in `main`, before
/// any thread starts (arenas that exist already stay). A
/// `GLIBC_TUNABLES=glibc.malloc.arena_max=N` set by the operator wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
    if !tuned {
        // SAFETY: mallopt takes two integers and only sets an allocator
        // parameter, under the allocator's lock.
        unsafe { nix::libc::mallopt(nix::libc::M_ARENA_MAX, ARENAS) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Freed heap memory over the threshold is given back, and a heap with
    /// little free is left alone.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_memory_over_the_threshold_is_given_back() {
        // 128 MiB in blocks below the mmap threshold (so they live in a
        // heap), then every other one freed: 64 MiB free in holes between
        // blocks still used, which free() cannot give back by shrinking
        // the heap's top.
        let mut blocks: Vec<Vec<u8>> = (0..32_768).map(|i| vec![i as u8; 4096]).collect();
        for (i, block) in blocks.iter_mut().enumerate() {
            if i % 2 == 1 {
                *block = Vec::new();
            }
        }
        let freed = give_back_freed_memory(32 << 20);
        assert!(freed.is_some_and(|f| f >= 32 << 20), "{freed:?}");
        // Nothing over an unreachable threshold: no trim.
        assert_eq!(give_back_freed_memory(usize::MAX), None);
        assert_eq!(blocks[32_766][0], 254);
    }
}
