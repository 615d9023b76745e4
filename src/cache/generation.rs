//! Generation counters: what makes invalidation race-free without locks.
//!
//! Three fixed arrays of `AtomicU64`: one slot per hash(table, partition key), and per
//! hash(table) a "writes" counter and an "epoch". A write bumps the counters of what it touches
//! before it is forwarded and again after the upstream answers (whatever the answer). A read
//! takes a [`Stamp`] of the counters of its scope *before* it looks up or fetches, and the stamp
//! is part of the cache key: an entry filled under an older stamp is simply never found again.
//! So a fill that raced with a write can never be served after that write's acknowledgement,
//! and concurrent misses coalesce only with fetches that started under the same stamp. Hash
//! collisions only cause extra misses, never stale reads.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a cached read depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Items and table/LSI queries of one partition: invalidated by writes to that partition.
    Partition { table: String, pk: String },
    /// GSI queries, scans, and reads whose partition is unknown: invalidated by any write to the
    /// table.
    Table(String),
}

/// What a write invalidates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Invalidation {
    /// One partition: its items and partition queries, plus every table-scoped entry.
    Partition { table: String, pk: String },
    /// Everything cached for the table (PartiQL writes, table changes, unknown partitions).
    Table(String),
    /// Everything cached (a PartiQL write whose table could not be read).
    All,
}

impl Invalidation {
    pub fn table(&self) -> &str {
        match self {
            Invalidation::Partition { table, .. } | Invalidation::Table(table) => table,
            Invalidation::All => "*",
        }
    }

    /// The `scope` label of `ddbcache_invalidations_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Invalidation::Partition { .. } => "partition",
            Invalidation::Table(_) => "table",
            Invalidation::All => "all",
        }
    }
}

/// The counters a read saw: (table epoch + global epoch, partition or table-writes counter).
/// Every counter only grows, so a sum that has not moved means neither term moved.
pub type Stamp = [u64; 2];

pub struct Generations {
    partitions: Box<[AtomicU64]>,
    table_writes: Box<[AtomicU64]>,
    table_epochs: Box<[AtomicU64]>,
    global: AtomicU64,
}

const PARTITION_SLOTS: usize = 1 << 16;
const TABLE_SLOTS: usize = 1 << 10;

fn slots(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

fn slot(parts: &[&str], len: usize) -> usize {
    // A fixed seed: stable within the process, which is all slots need. Not DoS-resistant, and
    // need not be: a collision only costs extra misses.
    (foldhash::fast::FixedState::with_seed(0x0ddb_cac4e).hash_one(parts) as usize) & (len - 1)
}

/// The counter slots `scope` reads: (its table's slot, its own slot: the partition's, or the
/// table's again for a table scope). Scopes of different tables share a counter only when these
/// collide, which is what the invalidation property tests (`tests/properties.rs`) need to assert
/// exactly what is guaranteed and no more.
#[doc(hidden)]
pub fn scope_slots(scope: &Scope) -> (usize, usize) {
    match scope {
        Scope::Partition { table, pk } => (
            slot(&[table], TABLE_SLOTS),
            slot(&[table, pk], PARTITION_SLOTS),
        ),
        Scope::Table(table) => {
            let t = slot(&[table], TABLE_SLOTS);
            (t, t)
        }
    }
}

impl Default for Generations {
    fn default() -> Self {
        Self::new()
    }
}

impl Generations {
    pub fn new() -> Self {
        Generations {
            partitions: slots(PARTITION_SLOTS),
            table_writes: slots(TABLE_SLOTS),
            table_epochs: slots(TABLE_SLOTS),
            global: AtomicU64::new(0),
        }
    }

    /// The counters `scope` depends on, now.
    pub fn stamp(&self, scope: &Scope) -> Stamp {
        let global = self.global.load(Ordering::Acquire);
        match scope {
            Scope::Partition { table, pk } => [
                global + self.table_epochs[slot(&[table], TABLE_SLOTS)].load(Ordering::Acquire),
                self.partitions[slot(&[table, pk], PARTITION_SLOTS)].load(Ordering::Acquire),
            ],
            Scope::Table(table) => {
                let t = slot(&[table], TABLE_SLOTS);
                [
                    global + self.table_epochs[t].load(Ordering::Acquire),
                    self.table_writes[t].load(Ordering::Acquire),
                ]
            }
        }
    }

    /// Moves every counter `what` covers, so no entry stamped before this call is found again.
    pub fn bump(&self, what: &Invalidation) {
        match what {
            Invalidation::Partition { table, pk } => {
                self.partitions[slot(&[table, pk], PARTITION_SLOTS)].fetch_add(1, Ordering::AcqRel);
                self.table_writes[slot(&[table], TABLE_SLOTS)].fetch_add(1, Ordering::AcqRel);
            }
            Invalidation::Table(table) => {
                self.table_epochs[slot(&[table], TABLE_SLOTS)].fetch_add(1, Ordering::AcqRel);
            }
            Invalidation::All => {
                self.global.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(t: &str, pk: &str) -> Scope {
        Scope::Partition {
            table: t.into(),
            pk: pk.into(),
        }
    }

    #[test]
    fn a_partition_write_moves_its_partition_and_table_scopes_only() {
        let g = Generations::new();
        let a = part("T", "a");
        let b = part("T", "b");
        let t = Scope::Table("T".into());
        let other = part("U", "a");
        let before = [g.stamp(&a), g.stamp(&b), g.stamp(&t), g.stamp(&other)];
        g.bump(&Invalidation::Partition {
            table: "T".into(),
            pk: "a".into(),
        });
        assert_ne!(g.stamp(&a), before[0]);
        // b and U/a could only move through a hash collision; these fixed names do not collide.
        assert_eq!(g.stamp(&b), before[1]);
        assert_ne!(g.stamp(&t), before[2]);
        assert_eq!(g.stamp(&other), before[3]);
    }

    #[test]
    fn a_table_invalidation_moves_every_scope_of_the_table() {
        let g = Generations::new();
        let scopes = [part("T", "a"), part("T", "zzz"), Scope::Table("T".into())];
        let before: Vec<Stamp> = scopes.iter().map(|s| g.stamp(s)).collect();
        g.bump(&Invalidation::Table("T".into()));
        for (s, b) in scopes.iter().zip(before) {
            assert_ne!(g.stamp(s), b, "{s:?}");
        }
    }

    #[test]
    fn invalidating_all_moves_every_scope() {
        let g = Generations::new();
        let scopes = [part("T", "a"), part("U", "b"), Scope::Table("V".into())];
        let before: Vec<Stamp> = scopes.iter().map(|s| g.stamp(s)).collect();
        g.bump(&Invalidation::All);
        for (s, b) in scopes.iter().zip(before) {
            assert_ne!(g.stamp(s), b, "{s:?}");
        }
    }
}
