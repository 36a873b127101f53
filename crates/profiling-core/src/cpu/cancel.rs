//! A cancellation token for a running CPU profile.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

/// Cancels a CPU profile that [`RunningProfile::wait`](super::RunningProfile::wait) is
/// sampling for, from any thread.
///
/// Clones share one flag. [`CancelToken::cancel`] wakes the waiting thread at once; the profile
/// then stops sampling and frees the profiler slot. [`CancelToken::drop_guard`] ties
/// cancellation to a value's lifetime: an HTTP handler keeps the guard in its future, so the
/// transport dropping the future (the client went away) cancels the profile.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: Mutex<bool>,
    wake: Condvar,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every profile waiting on this token (and its clones). Idempotent.
    pub fn cancel(&self) {
        let mut cancelled = self
            .inner
            .cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *cancelled = true;
        self.inner.wake.notify_all();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        *self
            .inner
            .cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A guard that cancels this token when it is dropped (unless it is
    /// [disarmed](CancelOnDrop::disarm) first).
    pub fn drop_guard(&self) -> CancelOnDrop {
        CancelOnDrop {
            token: Some(self.clone()),
        }
    }

    /// Blocks until `deadline` or until the token is cancelled, whichever comes first.
    /// Returns `true` when it was cancelled.
    pub(crate) fn wait_until(&self, deadline: Instant) -> bool {
        let mut cancelled = self
            .inner
            .cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if *cancelled {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            cancelled = self
                .inner
                .wake
                .wait_timeout(cancelled, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Cancels its [`CancelToken`] when dropped; see [`CancelToken::drop_guard`].
#[derive(Debug)]
#[must_use = "dropping the guard cancels the token at once"]
pub struct CancelOnDrop {
    token: Option<CancelToken>,
}

impl CancelOnDrop {
    /// Gives up the guard without cancelling.
    pub fn disarm(mut self) {
        self.token = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadline_without_cancel() {
        let token = CancelToken::new();
        let start = Instant::now();
        assert!(!token.wait_until(start + Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(!token.is_cancelled());
    }

    #[test]
    fn guard_cancels_a_waiter_on_another_thread() {
        let token = CancelToken::new();
        let guard = token.drop_guard();
        let waiter = {
            let token = token.clone();
            std::thread::Builder::new()
                .name("cancel-waiter".into())
                .spawn(move || token.wait_until(Instant::now() + Duration::from_secs(60)))
                .expect("spawn")
        };
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        drop(guard);
        assert!(waiter.join().expect("join"));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(token.is_cancelled());
    }

    #[test]
    fn disarmed_guard_does_not_cancel() {
        let token = CancelToken::new();
        token.drop_guard().disarm();
        assert!(!token.is_cancelled());
        token.cancel();
        assert!(token.wait_until(Instant::now() + Duration::from_secs(60)));
    }
}
