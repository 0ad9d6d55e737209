//! A map of values derived from stored records, valid while the store's
//! generation has not moved (see [`Store::generation`]).
//!
//! Writes to the records these are derived from (connectors, instances,
//! credentials, tokens) are rare next to the reads every request makes, so
//! one counter for all of them is enough: any write empties the map, and
//! the next request for each key reads the store again. Emptying it also
//! forgets deleted keys, so the map holds at most what was read since the
//! last write.
//!
//! [`Store::generation`]: crate::store::Store::generation

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

use crate::store::Store;

/// Values by key, all read at one store generation.
pub(crate) struct Fresh<K, V> {
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    generation: u64,
    values: HashMap<K, V>,
}

impl<K, V> Default for Fresh<K, V> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                generation: 0,
                values: HashMap::new(),
            }),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Fresh<K, V> {
    /// The value of `key`: kept if nothing was written since it was read,
    /// else `read` from the store (outside the lock, so a slow read does not
    /// hold up other keys; two callers may both read, and either result is
    /// right). `Ok(None)` from `read` is not kept: absent keys cost a read
    /// each time, so unknown keys cannot fill the map.
    pub fn get<Q, E>(
        &self,
        store: &dyn Store,
        key: &Q,
        read: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Result<Option<V>, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let generation = store.generation();
        {
            let mut inner = self.lock();
            if inner.generation != generation {
                inner.values.clear();
                inner.generation = generation;
            } else if let Some(hit) = inner.values.get(key) {
                return Ok(Some(hit.clone()));
            }
        }
        let value = read()?;
        if let Some(v) = &value {
            let mut inner = self.lock();
            // Kept only if nothing was written meanwhile: a write after the
            // generation was read may not be in what was read.
            if inner.generation == generation && store.generation() == generation {
                inner.values.insert(key.to_owned(), v.clone());
            }
        }
        Ok(value)
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::store::testing::{temp_store, token};

    /// A read that counts its calls and answers `value`.
    fn counted(reads: &Cell<u32>, value: Option<u32>) -> impl FnOnce() -> Result<Option<u32>, ()> {
        move || {
            reads.set(reads.get() + 1);
            Ok(value)
        }
    }

    #[test]
    fn a_value_is_kept_until_the_store_is_written() {
        let (store, dir) = temp_store();
        let fresh = Fresh::<String, u32>::default();
        let reads = Cell::new(0);
        assert_eq!(
            fresh.get(&store, "a", counted(&reads, Some(1))),
            Ok(Some(1))
        );
        assert_eq!(
            fresh.get(&store, "a", counted(&reads, Some(2))),
            Ok(Some(1))
        );
        assert_eq!(reads.get(), 1, "the second get is served from memory");
        store.put_token(&[7; 32], &token("t1")).unwrap();
        assert_eq!(
            fresh.get(&store, "a", counted(&reads, Some(2))),
            Ok(Some(2))
        );
        assert_eq!(reads.get(), 2, "a write makes the kept value stale");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn absent_keys_and_errors_are_not_kept() {
        let (store, dir) = temp_store();
        let fresh = Fresh::<String, u32>::default();
        let reads = Cell::new(0);
        assert_eq!(fresh.get(&store, "a", counted(&reads, None)), Ok(None));
        assert_eq!(fresh.get(&store, "a", counted(&reads, None)), Ok(None));
        assert_eq!(reads.get(), 2);
        assert_eq!(
            fresh.get(&store, "b", || Err::<Option<u32>, _>("down")),
            Err("down")
        );
        assert_eq!(
            fresh.get(&store, "b", counted(&reads, Some(3))),
            Ok(Some(3))
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_value_read_while_the_store_was_written_is_not_kept() {
        let (store, dir) = temp_store();
        let fresh = Fresh::<String, u32>::default();
        let got = fresh.get(&store, "a", || {
            // The write lands after the generation was read: what this
            // read saw may predate it.
            store.put_token(&[7; 32], &token("t1")).unwrap();
            Ok::<_, ()>(Some(1))
        });
        assert_eq!(got, Ok(Some(1)), "the caller still gets what was read");
        let reads = Cell::new(0);
        assert_eq!(
            fresh.get(&store, "a", counted(&reads, Some(2))),
            Ok(Some(2))
        );
        assert_eq!(reads.get(), 1, "the next get reads again");
        std::fs::remove_dir_all(dir).ok();
    }
}
