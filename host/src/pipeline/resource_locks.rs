//! One lock per resource for the whole process, so two findings never change one resource at the
//! same time: not the findings of one payload, and not those of two messages either (Wiz and
//! Security Hub reporting one bucket, received together by the daemon or in one Lambda batch).
//! The second waits, then reads the resource fresh and finds the first one's fix in place.
//!
//! A lock lives as long as a finding holds or waits for it; the map keeps only a weak handle,
//! and sheds the dead ones as it grows, so a long-running daemon holds entries for the resources
//! in flight, not for every resource it has seen. Separate processes (two Lambda invocations) do
//! not share these locks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// The locks, by resource ARN.
#[derive(Debug, Default)]
pub(crate) struct ResourceLocks {
    locks: Mutex<Locks>,
}

#[derive(Debug, Default)]
struct Locks {
    by_arn: HashMap<String, Weak<tokio::sync::Mutex<()>>>,
    /// The map's size at which dead entries are shed next.
    prune_at: usize,
}

/// The map is swept when it reaches this many entries, and then at twice what survived.
const MIN_PRUNE_AT: usize = 256;

impl ResourceLocks {
    /// The lock of `arn`, shared with every finding that holds or waits for it now.
    pub fn of(&self, arn: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = locks.by_arn.get(arn).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.by_arn.insert(arn.to_string(), Arc::downgrade(&lock));
        if locks.by_arn.len() >= locks.prune_at.max(MIN_PRUNE_AT) {
            locks.by_arn.retain(|_, l| l.strong_count() > 0);
            locks.prune_at = 2 * locks.by_arn.len();
        }
        lock
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.locks.lock().unwrap().by_arn.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_about_one_resource_share_its_lock_while_any_holds_it() {
        let locks = ResourceLocks::default();
        let first = locks.of("arn:aws:s3:::a");
        assert!(Arc::ptr_eq(&first, &locks.of("arn:aws:s3:::a")));
        assert!(!Arc::ptr_eq(&first, &locks.of("arn:aws:s3:::b")));
        drop(first);
        // Nobody held it: a new one, which is as good.
        let again = locks.of("arn:aws:s3:::a");
        assert!(again.try_lock().is_ok());
    }

    #[test]
    fn locks_no_finding_holds_are_shed_as_the_map_grows() {
        let locks = ResourceLocks::default();
        let held: Vec<_> = (0..10).map(|i| locks.of(&format!("held-{i}"))).collect();
        for i in 0..10_000 {
            drop(locks.of(&format!("gone-{i}")));
        }
        assert!(
            locks.entries() < MIN_PRUNE_AT + held.len(),
            "{} entries for 10 held locks",
            locks.entries()
        );
        for (i, lock) in held.iter().enumerate() {
            assert!(Arc::ptr_eq(lock, &locks.of(&format!("held-{i}"))));
        }
    }
}
