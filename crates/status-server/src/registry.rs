//! The registry of regions replicated on this node, fed by the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use status_api::{SyncStatus, SyncStatusKey};

/// Replicated regions per (keyspace, table), ids kept ascending.
///
/// The plain route `sync-status/<table>` reads keyspace `None`; the keyspace route reads
/// `Some(keyspace_id)`. Thread-safe: the engine writes while the server reads.
#[derive(Debug, Default)]
pub struct Registry {
    tables: RwLock<BTreeMap<SyncStatusKey, BTreeSet<u64>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<SyncStatusKey, BTreeSet<u64>>> {
        // A panic while holding the lock cannot leave the map half-updated (every update is a
        // single map operation), so a poisoned lock is still consistent.
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `region_id` of `table_id` (in `keyspace_id`) is replicated here.
    pub fn add_region(&self, keyspace_id: Option<u32>, table_id: i64, region_id: u64) {
        self.write()
            .entry(SyncStatusKey {
                keyspace_id,
                table_id,
            })
            .or_default()
            .insert(region_id);
    }

    /// Forgets one region; returns whether it was known.
    pub fn remove_region(&self, keyspace_id: Option<u32>, table_id: i64, region_id: u64) -> bool {
        let key = SyncStatusKey {
            keyspace_id,
            table_id,
        };
        let mut tables = self.write();
        let Some(set) = tables.get_mut(&key) else {
            return false;
        };
        let removed = set.remove(&region_id);
        if set.is_empty() {
            tables.remove(&key);
        }
        removed
    }

    /// Replaces the regions of one table.
    pub fn set_regions(
        &self,
        keyspace_id: Option<u32>,
        table_id: i64,
        regions: impl IntoIterator<Item = u64>,
    ) {
        let set: BTreeSet<u64> = regions.into_iter().collect();
        let key = SyncStatusKey {
            keyspace_id,
            table_id,
        };
        let mut tables = self.write();
        if set.is_empty() {
            tables.remove(&key);
        } else {
            tables.insert(key, set);
        }
    }

    /// The regions of one table, ascending (empty when none).
    pub fn sync_status(&self, key: SyncStatusKey) -> SyncStatus {
        let tables = self.tables.read().unwrap_or_else(|p| p.into_inner());
        SyncStatus {
            region_ids: tables
                .get(&key)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_ids_ascending_per_table_and_keyspace() {
        let r = Registry::new();
        r.add_region(None, 100, 9);
        r.add_region(None, 100, 3);
        r.add_region(None, 100, 9);
        r.add_region(Some(1), 100, 4);
        let key = |ks| SyncStatusKey {
            keyspace_id: ks,
            table_id: 100,
        };
        assert_eq!(r.sync_status(key(None)).region_ids, vec![3, 9]);
        assert_eq!(r.sync_status(key(Some(1))).region_ids, vec![4]);
        assert!(r.remove_region(None, 100, 3));
        assert!(!r.remove_region(None, 100, 3));
        r.set_regions(Some(1), 100, []);
        assert_eq!(r.sync_status(key(Some(1))).to_body(), "0\n\n");
    }
}
