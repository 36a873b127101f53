//! A bounded cache of resolved frames, so that repeated heap views of one process (a dashboard
//! scraping every few seconds) do not read the same DWARF line tables again.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use super::report::AddressResolver;
use crate::symbolize::{Frame, ModuleInfo};

/// Frames resolved for addresses of one process, kept across reports up to a memory budget.
///
/// Use it through [`FrameCache::resolver`]. The cache is emptied when the process's modules
/// change (a library loaded or unloaded: an address may then mean other code) and when it
/// would grow past its budget (then it starts over, which keeps the accounting trivial and the
/// bound strict). `Send + Sync`: share one per process.
pub struct FrameCache {
    max_bytes: usize,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    /// `(module file, load bias)` of the process when the entries were resolved.
    modules: Vec<(PathBuf, u64)>,
    frames: HashMap<u64, Vec<Frame>>,
    bytes: usize,
}

impl fmt::Debug for FrameCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("FrameCache")
            .field("max_bytes", &self.max_bytes)
            .field("addresses", &state.frames.len())
            .field("bytes", &state.bytes)
            .finish()
    }
}

impl Default for FrameCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_BYTES)
    }
}

/// Approximate heap bytes of one entry.
fn entry_bytes(frames: &[Frame]) -> usize {
    64 + frames
        .iter()
        .map(|f| {
            std::mem::size_of::<Frame>() + f.function.len() + f.file.as_ref().map_or(0, String::len)
        })
        .sum::<usize>()
}

impl FrameCache {
    /// The default budget: 8 MiB, the frames of tens of thousands of addresses.
    pub const DEFAULT_MAX_BYTES: usize = 8 << 20;

    /// A cache that keeps about `max_bytes` of frames at most.
    pub fn new(max_bytes: usize) -> Self {
        FrameCache {
            max_bytes,
            state: Mutex::new(CacheState::default()),
        }
    }

    /// `inner`, answering from the cache where it can.
    pub fn resolver<'a>(&'a self, inner: &'a dyn AddressResolver) -> CachedResolver<'a> {
        CachedResolver { cache: self, inner }
    }

    /// How many addresses are cached, and their approximate bytes.
    pub fn usage(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (state.frames.len(), state.bytes)
    }
}

/// An [`AddressResolver`] backed by a [`FrameCache`]; see [`FrameCache::resolver`].
pub struct CachedResolver<'a> {
    cache: &'a FrameCache,
    inner: &'a dyn AddressResolver,
}

impl fmt::Debug for CachedResolver<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedResolver")
            .field("cache", self.cache)
            .finish_non_exhaustive()
    }
}

impl AddressResolver for CachedResolver<'_> {
    fn resolve_addresses(&self, addresses: &[u64]) -> Vec<Vec<Frame>> {
        let modules: Vec<(PathBuf, u64)> = self
            .inner
            .modules()
            .into_iter()
            .map(|m| (m.path.to_path_buf(), m.bias))
            .collect();
        let mut out: Vec<Option<Vec<Frame>>> = Vec::with_capacity(addresses.len());
        let mut misses: Vec<u64> = Vec::new();
        {
            let mut state = self
                .cache
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if state.modules != modules {
                *state = CacheState {
                    modules: modules.clone(),
                    ..CacheState::default()
                };
            }
            for &a in addresses {
                let hit = state.frames.get(&a).cloned();
                if hit.is_none() {
                    misses.push(a);
                }
                out.push(hit);
            }
        }
        if misses.is_empty() {
            return out.into_iter().map(Option::unwrap_or_default).collect();
        }
        // Resolve outside the lock: other requests keep reading the cache meanwhile.
        let resolved = self.inner.resolve_addresses(&misses);
        let mut fresh: HashMap<u64, Vec<Frame>> = misses.into_iter().zip(resolved).collect();
        {
            let mut state = self
                .cache
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if state.modules == modules {
                for (&a, frames) in &fresh {
                    let size = entry_bytes(frames);
                    if state.bytes + size > self.cache.max_bytes {
                        state.frames.clear();
                        state.bytes = 0;
                        if size > self.cache.max_bytes {
                            continue;
                        }
                    }
                    if state.frames.insert(a, frames.clone()).is_none() {
                        state.bytes += size;
                    }
                }
            }
        }
        out.into_iter()
            .zip(addresses)
            .map(|(hit, a)| hit.or_else(|| fresh.remove(a)).unwrap_or_default())
            .collect()
    }

    fn module_file(&self, mapped_file: &str) -> PathBuf {
        self.inner.module_file(mapped_file)
    }

    fn executable(&self) -> Option<String> {
        self.inner.executable()
    }

    fn modules(&self) -> Vec<ModuleInfo> {
        self.inner.modules()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Resolves `a` to a frame named `f<a>`, counting lookups; its modules can be switched.
    struct Counting {
        lookups: AtomicUsize,
        bias: u64,
    }

    impl AddressResolver for Counting {
        fn resolve_addresses(&self, addresses: &[u64]) -> Vec<Vec<Frame>> {
            self.lookups.fetch_add(addresses.len(), Ordering::Relaxed);
            addresses
                .iter()
                .map(|a| {
                    vec![Frame {
                        function: format!("f{a}"),
                        file: None,
                        line: None,
                    }]
                })
                .collect()
        }

        fn modules(&self) -> Vec<ModuleInfo> {
            vec![ModuleInfo {
                path: Arc::from(Path::new("/bin/x")),
                bias: self.bias,
                ranges: vec![(0, 100)],
            }]
        }
    }

    fn names(v: &[Vec<Frame>]) -> Vec<String> {
        v.iter().map(|f| f[0].function.clone()).collect()
    }

    #[test]
    fn answers_repeated_addresses_from_the_cache() {
        let cache = FrameCache::default();
        let inner = Counting {
            lookups: AtomicUsize::new(0),
            bias: 0,
        };
        let r = cache.resolver(&inner);
        assert_eq!(names(&r.resolve_addresses(&[1, 2, 3])), ["f1", "f2", "f3"]);
        assert_eq!(names(&r.resolve_addresses(&[3, 4, 1])), ["f3", "f4", "f1"]);
        assert_eq!(inner.lookups.load(Ordering::Relaxed), 4);
        assert_eq!(cache.usage().0, 4);
    }

    #[test]
    fn starts_over_when_modules_change_or_the_budget_is_spent() {
        let cache = FrameCache::new(
            3 * entry_bytes(&[Frame {
                function: "f1".into(),
                file: None,
                line: None,
            }]),
        );
        let first = Counting {
            lookups: AtomicUsize::new(0),
            bias: 0,
        };
        cache.resolver(&first).resolve_addresses(&[1, 2, 3]);
        assert_eq!(cache.usage().0, 3);
        cache.resolver(&first).resolve_addresses(&[4]);
        assert_eq!(cache.usage().0, 1, "over budget: start over");
        let moved = Counting {
            lookups: AtomicUsize::new(0),
            bias: 4096,
        };
        cache.resolver(&moved).resolve_addresses(&[4]);
        assert_eq!(moved.lookups.load(Ordering::Relaxed), 1, "modules changed");
    }
}
