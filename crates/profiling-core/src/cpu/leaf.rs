//! Puts the interrupted function back on top of every sampled stack.
//!
//! pprof-rs's frame-pointer walker starts at the interrupted thread's frame pointer, whose
//! record holds the *caller's* return address: the function that was running when `SIGPROF`
//! arrived (the leaf, where a CPU-bound loop spends its time) is never recorded, and its self
//! time is charged to its caller. This module interposes a `SIGPROF` handler in front of
//! pprof-rs's: it copies the signal context, pushes a frame record `{saved frame pointer,
//! interrupted instruction pointer + 1}` on its own stack, points the copy's frame pointer at it
//! and calls pprof-rs's handler with the copy. The walk then yields the interrupted
//! instruction first and continues up the real chain. The interrupted thread's registers are
//! never changed.
//!
//! Everything here is async-signal-safe: a struct copy and two stores on the stack.
//! x86-64 Linux only; elsewhere pprof-rs's handler runs alone (see `docs/profiling.md`).
#![allow(unsafe_code)]

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use std::os::raw::{c_int, c_void};
    use std::ptr;

    extern "C" {
        /// pprof-rs 0.15's `SIGPROF` handler, `#[no_mangle]` in `pprof::profiler`.
        fn perf_signal_handler(signal: c_int, info: *mut libc::siginfo_t, ucontext: *mut c_void);
    }

    /// The x86-64 frame record that `push rbp; mov rbp, rsp` builds: what the walker reads.
    #[repr(C)]
    struct FrameRecord {
        caller_frame: u64,
        return_address: u64,
    }

    extern "C" fn leaf_signal_handler(
        signal: c_int,
        info: *mut libc::siginfo_t,
        ucontext: *mut c_void,
    ) {
        if ucontext.is_null() {
            // SAFETY: pprof-rs's handler accepts a null context (it then records nothing).
            unsafe { perf_signal_handler(signal, info, ucontext) };
            return;
        }
        // SAFETY: for an `SA_SIGINFO` handler the kernel passes a valid, aligned `ucontext_t`
        // that lives until the handler returns; we only read it (a plain-data copy).
        let mut context = unsafe { ptr::read(ucontext.cast::<libc::ucontext_t>()) };
        let gregs = &mut context.uc_mcontext.gregs;
        let record = FrameRecord {
            caller_frame: gregs[libc::REG_RBP as usize] as u64,
            // The symbolizer looks up `address - 1` (right for return addresses, which follow
            // their call instruction); `+ 1` makes it look up the interrupted instruction.
            return_address: (gregs[libc::REG_RIP as usize] as u64).wrapping_add(1),
        };
        gregs[libc::REG_RBP as usize] = ptr::addr_of!(record) as i64;
        // SAFETY: same contract as the kernel's call, with a context that is a valid copy of
        // the real one. The record it points to lives on this stack below the interrupted
        // frames, so the walker's "frames only go up" check accepts the real chain after it.
        unsafe { perf_signal_handler(signal, info, ptr::addr_of_mut!(context).cast::<c_void>()) };
        // Keep the record alive (and written) until the walk is done.
        std::hint::black_box(&record);
    }

    /// Replaces pprof-rs's freshly installed `SIGPROF` handler with ours, which chains to it.
    /// Returns false (and leaves the handler as it was) when the current handler is not
    /// pprof-rs's or the call fails.
    pub(crate) fn install() -> bool {
        // SAFETY: `sigaction` is plain data; all-zero is a valid value (no flags, no handler),
        // and every field we rely on is set below.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = leaf_signal_handler as *const () as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: `new.sa_mask` is a valid, writable `sigset_t`.
        unsafe { libc::sigemptyset(ptr::addr_of_mut!(new.sa_mask)) };
        // SAFETY: valid pointers to initialised `sigaction` values; SIGPROF is a valid signal.
        if unsafe { libc::sigaction(libc::SIGPROF, &new, &mut old) } != 0 {
            return false;
        }
        if old.sa_sigaction != perf_signal_handler as *const () as usize {
            // Not pprof-rs's handler (a pprof-rs change?): put back whatever was there.
            // SAFETY: `old` was filled in by the kernel just above.
            unsafe { libc::sigaction(libc::SIGPROF, &old, ptr::null_mut()) };
            return false;
        }
        true
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
mod imp {
    pub(crate) fn install() -> bool {
        false
    }
}

pub(super) use imp::install;
