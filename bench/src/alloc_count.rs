//! A counting global allocator for tests and benches: it forwards every call
//! to `std::alloc::System` unchanged and counts calls and bytes, per thread
//! and in total, so that a test can show a hot path allocates nothing — and,
//! when it does, capture a backtrace of the first allocation that did.
//!
//! Install it in a test or bench binary (never in the xdplb binary):
//! `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`.
//! Without that, every reading stays at zero ([`is_installed`] says so).

// `GlobalAlloc` can only be implemented with `unsafe impl`; every unsafe
// block below forwards the caller's arguments to `System` as they came.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Heap activity: totals so far, or what happened between two readings
/// (see [`AllocStats::since`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// `alloc` and `alloc_zeroed` calls that returned memory.
    pub allocs: u64,
    /// `realloc` calls that returned memory.
    pub reallocs: u64,
    /// `dealloc` calls.
    pub deallocs: u64,
    /// Bytes handed out: the size of each alloc, the new size of each realloc.
    pub bytes_allocated: u64,
    /// Bytes given back: the size of each dealloc, the old size of each realloc.
    pub bytes_freed: u64,
}

impl AllocStats {
    /// Calls that took memory from the allocator: allocs and reallocs.
    pub fn heap_allocations(&self) -> u64 {
        self.allocs + self.reallocs
    }

    /// What happened between the reading `earlier` and this one.
    pub fn since(self, earlier: AllocStats) -> AllocStats {
        AllocStats {
            allocs: self.allocs.wrapping_sub(earlier.allocs),
            reallocs: self.reallocs.wrapping_sub(earlier.reallocs),
            deallocs: self.deallocs.wrapping_sub(earlier.deallocs),
            bytes_allocated: self.bytes_allocated.wrapping_sub(earlier.bytes_allocated),
            bytes_freed: self.bytes_freed.wrapping_sub(earlier.bytes_freed),
        }
    }

    /// Both readings added up (to total the intervals of one phase).
    pub fn plus(self, other: AllocStats) -> AllocStats {
        AllocStats {
            allocs: self.allocs.wrapping_add(other.allocs),
            reallocs: self.reallocs.wrapping_add(other.reallocs),
            deallocs: self.deallocs.wrapping_add(other.deallocs),
            bytes_allocated: self.bytes_allocated.wrapping_add(other.bytes_allocated),
            bytes_freed: self.bytes_freed.wrapping_add(other.bytes_freed),
        }
    }

    /// Bytes still held of those allocated in the interval (negative when
    /// older memory was freed).
    pub fn net_bytes(&self) -> i128 {
        i128::from(self.bytes_allocated) - i128::from(self.bytes_freed)
    }
}

/// The allocator: `System`, counted. Zero-sized; see the module doc.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

/// One counter set; the global one is shared by all threads.
struct Shared {
    allocs: AtomicU64,
    reallocs: AtomicU64,
    deallocs: AtomicU64,
    bytes_allocated: AtomicU64,
    bytes_freed: AtomicU64,
}

static GLOBAL: Shared = Shared {
    allocs: AtomicU64::new(0),
    reallocs: AtomicU64::new(0),
    deallocs: AtomicU64::new(0),
    bytes_allocated: AtomicU64::new(0),
    bytes_freed: AtomicU64::new(0),
};

/// This thread's counters. `Cell`s with a const initialiser and no `Drop`:
/// reaching them never allocates nor registers a destructor, which matters
/// inside an allocator.
struct Local {
    allocs: Cell<u64>,
    reallocs: Cell<u64>,
    deallocs: Cell<u64>,
    bytes_allocated: Cell<u64>,
    bytes_freed: Cell<u64>,
    /// Capture a backtrace at this thread's next allocation.
    trap_armed: Cell<bool>,
    /// A capture is under way: its own allocations are only counted.
    capturing: Cell<bool>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            allocs: Cell::new(0),
            reallocs: Cell::new(0),
            deallocs: Cell::new(0),
            bytes_allocated: Cell::new(0),
            bytes_freed: Cell::new(0),
            trap_armed: Cell::new(false),
            capturing: Cell::new(false),
        }
    };
}

/// The backtrace of the allocation an armed trap caught.
static TRAPPED: Mutex<Option<Backtrace>> = Mutex::new(None);

/// What one allocator call did, for the counters.
#[derive(Clone, Copy)]
enum Event {
    Alloc(usize),
    Realloc { old: usize, new: usize },
    Dealloc(usize),
}

fn bump(cell: &Cell<u64>, by: u64) {
    cell.set(cell.get().wrapping_add(by));
}

fn record(event: Event) {
    let add = |counter: &AtomicU64, by: usize| {
        counter.fetch_add(by as u64, Ordering::Relaxed);
    };
    match event {
        Event::Alloc(size) => {
            add(&GLOBAL.allocs, 1);
            add(&GLOBAL.bytes_allocated, size);
        }
        Event::Realloc { old, new } => {
            add(&GLOBAL.reallocs, 1);
            add(&GLOBAL.bytes_allocated, new);
            add(&GLOBAL.bytes_freed, old);
        }
        Event::Dealloc(size) => {
            add(&GLOBAL.deallocs, 1);
            add(&GLOBAL.bytes_freed, size);
        }
    }
    // `try_with`: a thread being torn down still frees memory; it is counted
    // globally only.
    let _ = LOCAL.try_with(|local| {
        if local.capturing.get() {
            // The trap's own capture: not the measured code's doing.
            return;
        }
        match event {
            Event::Alloc(size) => {
                bump(&local.allocs, 1);
                bump(&local.bytes_allocated, size as u64);
            }
            Event::Realloc { old, new } => {
                bump(&local.reallocs, 1);
                bump(&local.bytes_allocated, new as u64);
                bump(&local.bytes_freed, old as u64);
            }
            Event::Dealloc(size) => {
                bump(&local.deallocs, 1);
                bump(&local.bytes_freed, size as u64);
                return;
            }
        }
        if local.trap_armed.get() && !local.capturing.get() {
            local.trap_armed.set(false);
            // The capture allocates: those calls come back here and, with
            // `capturing` set, are counted globally only. It runs after
            // `System` returned, so the allocator is not re-entered.
            local.capturing.set(true);
            let backtrace = Backtrace::force_capture();
            if let Ok(mut slot) = TRAPPED.lock() {
                slot.get_or_insert(backtrace);
            }
            local.capturing.set(false);
        }
    });
}

/// Totals over every thread since the process started.
pub fn global() -> AllocStats {
    let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    AllocStats {
        allocs: get(&GLOBAL.allocs),
        reallocs: get(&GLOBAL.reallocs),
        deallocs: get(&GLOBAL.deallocs),
        bytes_allocated: get(&GLOBAL.bytes_allocated),
        bytes_freed: get(&GLOBAL.bytes_freed),
    }
}

/// Totals for the calling thread since it started (other threads, such as
/// the test harness's, do not disturb them; nor does a trap's own capture).
pub fn this_thread() -> AllocStats {
    LOCAL
        .try_with(|local| AllocStats {
            allocs: local.allocs.get(),
            reallocs: local.reallocs.get(),
            deallocs: local.deallocs.get(),
            bytes_allocated: local.bytes_allocated.get(),
            bytes_freed: local.bytes_freed.get(),
        })
        .unwrap_or_default()
}

/// Runs `f` and returns what it allocated on this thread.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, AllocStats) {
    let before = this_thread();
    let out = f();
    (out, this_thread().since(before))
}

/// Whether [`CountingAlloc`] is the global allocator of this process: it
/// must see the allocation this function makes.
pub fn is_installed() -> bool {
    let (_, stats) = measure(|| std::hint::black_box(Box::new(0u64)));
    stats.allocs > 0
}

/// Arms (or with `false` disarms) this thread's trap: its next allocation
/// captures a backtrace, kept for [`take_trapped`] unless one is kept
/// already. Fires once, then disarms itself.
pub fn arm_trap(armed: bool) {
    let _ = LOCAL.try_with(|local| local.trap_armed.set(armed));
}

/// The backtrace an armed trap caught, if any, leaving none kept.
pub fn take_trapped() -> Option<Backtrace> {
    TRAPPED.lock().ok().and_then(|mut slot| slot.take())
}

// SAFETY: each method passes its arguments to the same method of `System`
// unchanged and returns its result unchanged, so `System`'s implementation of
// the `GlobalAlloc` contract is ours. The bookkeeping around the calls only
// touches atomics and this thread's `Cell`s, cannot unwind, and allocates only
// for an armed trap, after `System` has returned (no re-entry of `System`).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller meets `GlobalAlloc::alloc`'s conditions
        // (non-zero size), which are `System::alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            record(Event::Alloc(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`: the caller's layout, passed on unchanged.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            record(Event::Alloc(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which is `System`, with
        // `layout` (the caller's obligation), so `System` may free it.
        unsafe { System.dealloc(ptr, layout) };
        record(Event::Dealloc(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` and `layout` describe a block `System` handed out
        // (every allocation here is `System`'s) and `new_size` meets
        // `realloc`'s conditions: the caller's obligations, passed on.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            record(Event::Realloc { old: layout.size(), new: new_size });
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // This crate's unit tests run on the system allocator: nothing counts.
    #[test]
    fn without_the_global_allocator_nothing_is_counted() {
        assert!(!is_installed());
        let (_, stats) = measure(|| vec![0u8; 64]);
        assert_eq!(stats, AllocStats::default());
        arm_trap(true);
        drop(std::hint::black_box(vec![0u8; 64]));
        arm_trap(false);
        assert!(take_trapped().is_none());
    }

    #[test]
    fn intervals_add_up() {
        let earlier = AllocStats {
            allocs: 5,
            reallocs: 1,
            deallocs: 2,
            bytes_allocated: 500,
            bytes_freed: 100,
        };
        let step = AllocStats {
            allocs: 3,
            reallocs: 2,
            deallocs: 7,
            bytes_allocated: 40,
            bytes_freed: 900,
        };
        let later = earlier.plus(step);
        assert_eq!(later.since(earlier), step);
        assert_eq!(step.heap_allocations(), 5);
        assert_eq!(step.net_bytes(), -860);
        assert_eq!(later.net_bytes(), earlier.net_bytes() + step.net_bytes());
    }
}
