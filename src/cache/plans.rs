//! Plans of recently seen reads, keyed by their exact request bytes. AWS SDKs send byte-identical
//! bodies for identical requests, so a repeated GetItem or Query is matched by one hash of its body
//! and skips decoding and planning. A plan depends only on the operation, the body and the table's
//! key schema, so each one carries the schema epoch it was made under and is ignored once that
//! epoch has moved (a table was created, changed or deleted).

use crate::plan::ReadPlan;
use crate::protocol::Operation;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Bodies larger than this are not remembered (reads are small; big ones gain little).
const MAX_BODY_BYTES: usize = 1024;
/// Per operation, the remembered bodies and plans may hold about this many bytes; past it the
/// map starts over (simple and bounded; a working set this large is rare for reads).
const MAX_BYTES_PER_OPERATION: usize = 16 * 1024 * 1024;
/// A rough size of a plan besides its body key (the canonical key, table, scope, map slot).
const PLAN_OVERHEAD: usize = 320;

struct Remembered {
    schema_epoch: u64,
    plan: Arc<ReadPlan>,
}

#[derive(Default)]
struct Shelf {
    plans: HashMap<Box<[u8]>, Remembered, foldhash::fast::RandomState>,
    bytes: usize,
}

/// One shelf per cacheable read operation.
#[derive(Default)]
pub struct Plans {
    shelves: [RwLock<Shelf>; 3],
}

fn shelf_index(op: Operation) -> Option<usize> {
    match op {
        Operation::GetItem => Some(0),
        Operation::Query => Some(1),
        Operation::Scan => Some(2),
        _ => None,
    }
}

impl Plans {
    pub fn new() -> Self {
        Self::default()
    }

    /// The plan made for exactly these bytes under the current `schema_epoch`.
    pub fn get(&self, op: Operation, body: &[u8], schema_epoch: u64) -> Option<Arc<ReadPlan>> {
        let shelf = self.shelves[shelf_index(op)?].read().expect("not poisoned");
        shelf
            .plans
            .get(body)
            .filter(|r| r.schema_epoch == schema_epoch)
            .map(|r| r.plan.clone())
    }

    /// Remembers `plan` for these bytes; `schema_epoch` must have been read before the schemas
    /// the plan was made with.
    pub fn insert(&self, op: Operation, body: &[u8], schema_epoch: u64, plan: Arc<ReadPlan>) {
        let Some(i) = shelf_index(op) else { return };
        if body.len() > MAX_BODY_BYTES {
            return;
        }
        let size = body.len() + plan.key.len() + PLAN_OVERHEAD;
        let mut shelf = self.shelves[i].write().expect("not poisoned");
        if shelf.bytes + size > MAX_BYTES_PER_OPERATION {
            shelf.plans.clear();
            shelf.bytes = 0;
        }
        let old = shelf
            .plans
            .insert(body.into(), Remembered { schema_epoch, plan });
        if old.is_none() {
            shelf.bytes += size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Scope;
    use crate::plan::{CapacityReport, ReadKind};

    fn plan(key: &str) -> Arc<ReadPlan> {
        Arc::new(ReadPlan {
            kind: ReadKind::Item,
            table: "T".into(),
            index: None,
            key: Arc::from(key.as_bytes()),
            scope: Scope::Table("T".into()),
            capacity: CapacityReport::None,
        })
    }

    #[test]
    fn exact_bytes_operation_and_epoch_must_match() {
        let plans = Plans::new();
        plans.insert(Operation::GetItem, b"{\"a\":1}", 7, plan("k1"));
        assert_eq!(
            &*plans.get(Operation::GetItem, b"{\"a\":1}", 7).unwrap().key,
            b"k1"
        );
        assert!(plans.get(Operation::GetItem, b"{\"a\": 1}", 7).is_none());
        assert!(plans.get(Operation::Query, b"{\"a\":1}", 7).is_none());
        assert!(
            plans.get(Operation::GetItem, b"{\"a\":1}", 8).is_none(),
            "schema moved"
        );
        assert!(plans.get(Operation::PutItem, b"{\"a\":1}", 7).is_none());
        plans.insert(Operation::GetItem, b"{\"a\":1}", 8, plan("k2"));
        assert_eq!(
            &*plans.get(Operation::GetItem, b"{\"a\":1}", 8).unwrap().key,
            b"k2"
        );
    }

    #[test]
    fn stays_within_its_byte_budget() {
        let plans = Plans::new();
        let body = vec![b'x'; 1000];
        for i in 0..20_000u32 {
            let mut b = body.clone();
            b[..4].copy_from_slice(&i.to_le_bytes());
            plans.insert(Operation::Query, &b, 0, plan("k"));
        }
        let shelf = plans.shelves[1].read().unwrap();
        assert!(shelf.bytes <= MAX_BYTES_PER_OPERATION);
        assert!(shelf.plans.len() <= MAX_BYTES_PER_OPERATION / 1000);
        assert!(!shelf.plans.is_empty());
        // Too large to remember.
        drop(shelf);
        plans.insert(
            Operation::GetItem,
            &vec![b'y'; MAX_BODY_BYTES + 1],
            0,
            plan("k"),
        );
        assert!(
            plans
                .get(Operation::GetItem, &vec![b'y'; MAX_BODY_BYTES + 1], 0)
                .is_none()
        );
    }
}
