//! What the fuzz targets in `fuzz_targets/` share: the framing of multi-frame inputs, and
//! round-trip checks.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use serde_json::Value;

/// Largest single allocation a target may make. Inputs are a few KiB, so an allocation
/// this big means a parser trusted a length field. (libFuzzer's `-malloc_limit_mb` needs a
/// sanitizer's malloc hooks; `scripts/fuzz` builds without one.)
pub const MAX_ALLOCATION: usize = 64 << 20;

/// The system allocator, aborting (a crash, to libFuzzer) on allocations over
/// [`MAX_ALLOCATION`], and counting the bytes Rust code holds, for [`peak_allocated`].
pub struct BoundedAllocator;

/// Bytes currently allocated through [`BoundedAllocator`], and the most since the last
/// [`peak_allocated`] began.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl BoundedAllocator {
    fn check(size: usize) {
        if size > MAX_ALLOCATION {
            // No formatting: the message must not allocate.
            let _ = std::io::stderr().write_all(b"fuzz: allocation over MAX_ALLOCATION\n");
            std::process::abort();
        }
    }

    fn grew(by: usize) {
        let live = LIVE.fetch_add(by, Relaxed) + by;
        PEAK.fetch_max(live, Relaxed);
    }

    fn shrank(by: usize) {
        LIVE.fetch_sub(by, Relaxed);
    }
}

unsafe impl GlobalAlloc for BoundedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        let p = System.alloc(layout);
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::shrank(layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // Counted as the new block alongside the old: a copying realloc holds both.
            Self::grew(new_size);
            Self::shrank(layout.size());
        }
        p
    }
}

/// Runs `f` and returns, with its result, the most bytes it held allocated at once beyond
/// what was allocated when it started (Rust allocations only; the targets run on one
/// thread).
pub fn peak_allocated<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let result = f();
    let peak = PEAK.load(Relaxed);
    (result, peak.saturating_sub(before))
}

#[global_allocator]
static ALLOCATOR: BoundedAllocator = BoundedAllocator;

/// The server's agent handshake state machine, as the server uses it.
pub use ironmesh_proto::agent_handshake as server_handshake;
pub use ironmesh_proto::agent::sha384;

/// Splits a fuzz input into frames, each `[u16 big-endian length][bytes]`; a last frame
/// shorter than its length field is taken as it is.
pub fn length_prefixed_frames(mut data: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    while data.len() >= 2 {
        let len = u16::from_be_bytes([data[0], data[1]]) as usize;
        let end = (2 + len).min(data.len());
        frames.push(&data[2..end]);
        data = &data[end..];
    }
    frames
}

/// Serializes a JSON value and parses it back: every value serde_json produced must
/// survive (exactly, with the `float_roundtrip` feature this crate turns on).
pub fn assert_json_round_trips(value: &Value) -> String {
    let text = value.to_string();
    let back: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("serialized JSON does not parse ({e}): {text}"));
    assert_eq!(&back, value, "JSON changed in a round trip: {text}");
    text
}

/// `normalize_id` output is a fixed point: a normalized id normalizes to itself.
pub fn assert_id_normalization_is_stable(input: &str) {
    use ironmesh_proto::ids::{normalize_id, IdKind};
    for kind in [IdKind::User, IdKind::Mesh, IdKind::Node] {
        if let Ok(id) = normalize_id(kind, input) {
            assert!(id.starts_with(kind.prefix()), "{kind:?} id {id:?}");
            assert_eq!(
                normalize_id(kind, &id).as_ref(),
                Ok(&id),
                "{kind:?} id {input:?} normalized to {id:?}, which does not normalize to itself"
            );
        }
    }
}
