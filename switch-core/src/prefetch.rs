//! Software prefetch, the one place in `switch-core` that uses `unsafe` (audited here; the
//! crate denies `unsafe_code` everywhere else).
//!
//! Why: the datapath's batched lookup (`datapath`) knows the addresses of the hash bucket, the
//! key row and the megaflow each packet of a batch will read one stage before it reads them;
//! with a million megaflows those are cache (and TLB) misses, and issuing them for the whole
//! batch first lets the CPU overlap them instead of waiting for each in turn
//! (docs/benchmarks.md, "Datapath"). Plain loads cannot do this: the stage would stall on them.
//!
//! Why it is sound: `prefetcht0` is a hint. It never faults (not even for an unmapped address),
//! reads or writes no memory as far as the program can tell and changes no architectural
//! state. `core::arch::x86_64::_mm_prefetch` is a safe function apart from its
//! `#[target_feature(enable = "sse")]`, which makes calling it `unsafe`: the caller must
//! guarantee the CPU has SSE. Every x86_64 CPU does (SSE and SSE2 are part of the x86_64 base
//! ISA), including under `x86_64-unknown-none`, which only forbids the compiler from using SSE
//! *registers*; a prefetch uses none. The address comes from a reference, so it is even valid.
//! Elsewhere the helper compiles to nothing.
#![allow(unsafe_code)]

/// Asks the CPU to bring the cache line holding `*r` into all cache levels.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: see the module documentation: SSE is part of the x86_64 baseline and a prefetch
    // never faults or changes program state.
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
