//! How vaekit's CPU buffers meet the system allocator.
//!
//! candle allocates a new buffer for every tensor an op makes and frees it when
//! the tensor drops, so a training step allocates and frees tens of megabytes,
//! and inference at batch 1,000 single buffers of up to a hundred. glibc's
//! `malloc` serves each block above its mmap threshold (128 KiB at start) with a
//! fresh `mmap`, and gives free memory at the top of its heap back to the
//! kernel once it exceeds its trim threshold: either way every page of the next
//! step's buffers is faulted in (and zeroed by the kernel) again: the TF
//! CVAE trained at about half the speed it reaches with mimalloc (measured in
//! `docs/performance.md`).
//!
//! [`tune_system_allocator`] raises both thresholds once per process, on Linux
//! with glibc, so that freed step buffers are reused instead: the mmap
//! threshold to glibc's largest allowed value (32 MiB on 64-bit), the trim
//! threshold to 512 MiB. Every vaekit model on the CPU calls it when it is
//! built ([`ParamStore::new`](crate::params::ParamStore::new)), so a program
//! needs no allocator of its own to train at full speed. The cost is that up
//! to 512 MiB of freed memory stays with the process for reuse, as it does
//! with mimalloc or jemalloc.
//!
//! Nothing is changed when the program has set glibc's malloc options itself
//! (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` or `GLIBC_TUNABLES` in
//! its environment) or sets `VAEKIT_SYSTEM_ALLOCATOR=keep`. Under another
//! global allocator (mimalloc, jemalloc) the settings are harmless: they apply
//! to glibc's `malloc` only.

use std::sync::OnceLock;

/// glibc's mmap threshold after tuning: the largest value `mallopt` accepts on
/// 64-bit targets (`HEAP_MAX_SIZE / 2`).
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// glibc's trim threshold after tuning: free memory at the top of the heap up
/// to this size stays with the process.
pub const TRIM_THRESHOLD: usize = 512 << 20;

/// The environment variable that, set to `keep`, leaves the system
/// allocator's settings alone.
pub const KEEP_VAR: &str = "VAEKIT_SYSTEM_ALLOCATOR";

/// What [`tune_system_allocator`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllocatorTuning {
    /// glibc's mmap and trim thresholds were raised.
    Tuned,
    /// The program asked to keep its own settings (see the module docs).
    Kept,
    /// Not Linux with glibc: there is nothing to tune.
    Unsupported,
}

/// Raises glibc's mmap and trim thresholds once per process so that candle's
/// per-step buffers are reused rather than mapped afresh (see the module
/// docs); later calls return the first call's result.
pub fn tune_system_allocator() -> AllocatorTuning {
    static DONE: OnceLock<AllocatorTuning> = OnceLock::new();
    *DONE.get_or_init(tune_once)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_once() -> AllocatorTuning {
    let kept = std::env::var_os(KEEP_VAR).is_some_and(|v| v == "keep")
        || [
            "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_TRIM_THRESHOLD_",
            "GLIBC_TUNABLES",
        ]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if kept {
        return AllocatorTuning::Kept;
    }
    // Both values fit a C int; `mallopt` returns 0 when it refuses one.
    // SAFETY: `mallopt` only changes malloc's parameters; it is thread-safe.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    };
    if ok {
        AllocatorTuning::Tuned
    } else {
        AllocatorTuning::Unsupported
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_once() -> AllocatorTuning {
    AllocatorTuning::Unsupported
}

/// The bytes of memory this process can still take, as far as the system
/// says: the smaller of Linux's `MemAvailable` (`/proc/meminfo`) and the room
/// left under a cgroup v2 memory limit (`memory.max` − `memory.current`);
/// `None` where neither can be read.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib.saturating_mul(1024))
    });
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let cgroup =
        read("memory.max").map(|max| max.saturating_sub(read("memory.current").unwrap_or(0)));
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn available_memory_is_read_on_linux() {
        let a = available_memory().expect("/proc/meminfo has MemAvailable");
        assert!(a > 1 << 20, "{a} bytes available");
    }

    #[test]
    fn tuning_is_done_once_and_reports_the_same() {
        let first = tune_system_allocator();
        assert_eq!(tune_system_allocator(), first);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if std::env::var_os(KEEP_VAR).is_none()
            && std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none()
            && std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none()
            && std::env::var_os("GLIBC_TUNABLES").is_none()
        {
            assert_eq!(first, AllocatorTuning::Tuned);
        }
    }
}
