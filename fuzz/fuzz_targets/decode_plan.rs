//! Fuzz target `decode_plan`: the request path up to the cache, as `server.rs` runs it.
//!
//! Input: one byte choosing the operation (`Operation::ALL[b % len]`), then the request body.
//! The body goes through `Json::parse`, `plan::tables_to_describe` and `plan::plan` with fixed
//! schemas (`common::schema`: `T` and `Music`, each with a hash key, an LSI and a GSI). The whole
//! input is also fed to `parse_target` as an `X-Amz-Target` header.
//!
//! Checked besides "no panic":
//! - `tables_to_describe` is sorted and distinct, and `plan` consults no schema outside it (the
//!   server fetches only those: a plan made with just them equals one made with all schemas);
//! - `plan` is deterministic;
//! - a read plan names the table the body names (ARN resolved), its key starts with the
//!   operation, its partition scope is a canonical fixed point, and a query on anything but the
//!   table or an LSI is table-scoped (a GSI query must see every write to the table);
//! - a write plan is non-empty, lists each invalidation once, names tables as `table_name` does,
//!   and invalidates a partition only of a table whose schema is known;
//! - the body re-serialised by serde_json (other member order, other spellings) plans the same,
//!   writes compared as sets (when no object repeats a member name).

#![no_main]

mod common;

use ddbcache::cache::key::{canonical_value, table_name};
use ddbcache::cache::{Invalidation, Scope};
use ddbcache::plan::{Plan, ReadKind, plan, tables_to_describe};
use ddbcache::protocol::json::{Json, Object};
use ddbcache::protocol::{Operation, parse_target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_target(Some(data));
    let Some((&op_byte, body)) = data.split_first() else {
        return;
    };
    let op = Operation::ALL[op_byte as usize % Operation::ALL.len()];
    let Ok(json) = Json::parse(body) else {
        return;
    };
    let Json::Object(req) = &json else {
        return;
    };
    let planned = check(op, req);

    if !common::has_duplicate_members(&json) {
        let again = common::reserialised(body).expect("serde_json reads what Json::parse read");
        let Json::Object(req2) = Json::parse(&again).expect("serde_json output parses") else {
            panic!("an object re-serialises as an object");
        };
        assert!(
            same_plan(&planned, &check(op, &req2)),
            "re-serialised body plans differently: {}",
            String::from_utf8_lossy(&again)
        );
    }
});

fn check(op: Operation, req: &Object) -> Plan {
    let tables = tables_to_describe(op, req);
    assert!(tables.windows(2).all(|w| w[0] < w[1]), "{tables:?}");
    let p = plan(op, req, common::schema);
    assert_eq!(
        p,
        plan(op, req, common::schema),
        "plan is not deterministic"
    );
    let described = |t: &str| {
        if tables.iter().any(|d| d == t) {
            common::schema(t)
        } else {
            None
        }
    };
    assert_eq!(
        p,
        plan(op, req, described),
        "plan used a schema tables_to_describe did not list ({tables:?})"
    );

    match &p {
        Plan::Read(r) => {
            let named = req.get("TableName").and_then(Json::as_str);
            assert_eq!(Some(r.table.as_str()), named.map(table_name));
            assert!(r.key.starts_with(format!("{}\n", op.as_str()).as_bytes()));
            assert_eq!(
                r.index.as_deref(),
                req.get("IndexName").and_then(Json::as_str)
            );
            assert_eq!(
                r.kind,
                if op == Operation::GetItem {
                    ReadKind::Item
                } else {
                    ReadKind::Query
                }
            );
            match &r.scope {
                Scope::Table(t) => assert_eq!(t, &r.table),
                Scope::Partition { table, pk } => {
                    assert_eq!(table, &r.table);
                    assert_ne!(op, Operation::Scan, "a scan is partition-scoped");
                    let s = common::schema(table).expect("a partition scope has a schema");
                    // GetItem has no IndexName (DynamoDB refuses one; the key keeps it).
                    if let (Operation::Query, Some(index)) = (op, &r.index) {
                        assert!(
                            s.local_indexes.contains(index),
                            "a query on index {index:?} is partition-scoped"
                        );
                    }
                    assert_canonical(pk);
                }
            }
        }
        Plan::Write(list) => {
            assert!(!list.is_empty());
            for (i, inv) in list.iter().enumerate() {
                assert!(!list[..i].contains(inv), "{inv:?} listed twice");
                match inv {
                    Invalidation::Partition { table, pk } => {
                        assert_eq!(table_name(table), table, "unresolved table name");
                        assert!(common::schema(table).is_some(), "{inv:?} without a schema");
                        assert_canonical(pk);
                    }
                    Invalidation::Table(table) => {
                        assert_eq!(table_name(table), table, "unresolved table name");
                    }
                    Invalidation::All => {}
                }
            }
        }
        _ => {}
    }
    p
}

/// A partition tag is the canonical text of a value, so canonicalising it again changes nothing.
fn assert_canonical(pk: &str) {
    let v = Json::parse(pk.as_bytes()).expect("a partition tag is JSON");
    assert_eq!(canonical_value(&v), pk, "partition tag is not canonical");
}

/// Equal plans, with write lists compared as sets (their order follows the document's).
fn same_plan(a: &Plan, b: &Plan) -> bool {
    match (a, b) {
        (Plan::Write(x), Plan::Write(y)) => x.len() == y.len() && x.iter().all(|i| y.contains(i)),
        _ => a == b,
    }
}
