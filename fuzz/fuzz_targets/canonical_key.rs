//! Fuzz target `canonical_key`: the cache key builder (`cache::key`).
//!
//! Input: one byte choosing GetItem, Query or Scan, then a request body; the key is built for
//! the body's `TableName` (ARN resolved; `T` when absent) as `plan` does.
//!
//! Checked besides "no panic":
//! - `read_key` is deterministic, and its canonical part (after operation and table) is JSON;
//! - the canonical form is a fixed point: `write_canonical` of the parsed canonical text of the
//!   whole body gives that text again;
//! - when no object repeats a member name: the body with every object's members reversed, and
//!   the body as serde_json re-serialises it (sorted, compact, re-escaped, numbers re-spelt),
//!   have the same key as the body (a repeated name is kept in document order, by design, since
//!   JSON readers differ on which copy wins);
//! - `normalize_number` is idempotent on every string in the body, and when it rewrites one the
//!   two spellings are the same f64 (equal decimals round alike);
//! - `partition_value` and `resolve_expression` do not panic on any expression.

#![no_main]

mod common;

use ddbcache::cache::key::{
    canonical_value, normalize_number, partition_value, read_key, resolve_expression, table_name,
};
use ddbcache::protocol::json::{Json, Object};
use libfuzzer_sys::fuzz_target;

const OPS: [&str; 3] = ["GetItem", "Query", "Scan"];

fuzz_target!(|data: &[u8]| {
    let Some((&op_byte, body)) = data.split_first() else {
        return;
    };
    let op = OPS[op_byte as usize % OPS.len()];
    let Ok(json) = Json::parse(body) else {
        return;
    };

    common::each_string(&json, &mut |s| {
        let n = normalize_number(s);
        assert_eq!(
            normalize_number(&n),
            n,
            "normalize_number({s:?}) is not idempotent"
        );
        if n != s
            && let (Ok(a), Ok(b)) = (s.trim().parse::<f64>(), n.parse::<f64>())
        {
            assert_eq!(a, b, "{s:?} normalised to {n:?}, another number");
        }
    });

    let canonical = canonical_value(&json);
    let reparsed = Json::parse(canonical.as_bytes()).expect("the canonical text is JSON");
    assert_eq!(
        canonical_value(&reparsed),
        canonical,
        "canonical form is not a fixed point"
    );

    let Json::Object(req) = &json else {
        return;
    };
    let key = key_of(op, req);
    assert_eq!(key, key_of(op, req), "read_key is not deterministic");
    let text = std::str::from_utf8(&key).expect("a key is UTF-8");
    let mut parts = text.splitn(3, '\n');
    assert_eq!(parts.next(), Some(op));
    let table: String = serde_json::from_str(parts.next().expect("table line")).expect("table");
    assert_eq!(
        table,
        table_name(req.get("TableName").and_then(Json::as_str).unwrap_or("T"))
    );
    let rest = parts.next().expect("canonical members");
    serde_json::from_str::<serde_json::Value>(rest)
        .unwrap_or_else(|e| panic!("canonical members are not JSON ({e}): {rest}"));

    let names = req
        .get("ExpressionAttributeNames")
        .and_then(Json::as_object);
    let values = req
        .get("ExpressionAttributeValues")
        .and_then(Json::as_object);
    for (_, v) in req.iter() {
        if let Some(expr) = v.as_str() {
            let _ = resolve_expression(expr, names, values);
        }
    }
    for pk in ["pk", "Artist"] {
        if let Some(v) = partition_value(req, pk) {
            let _ = canonical_value(v);
        }
    }

    if !common::has_duplicate_members(&json) {
        let Json::Object(rev) = common::reversed(&json) else {
            unreachable!("an object reverses to an object");
        };
        assert_eq!(key_of(op, &rev), key, "member order changed the key");
        let again = common::reserialised(body).expect("serde_json reads what Json::parse read");
        let Json::Object(req2) = Json::parse(&again).expect("serde_json output parses") else {
            unreachable!("an object re-serialises as an object");
        };
        assert_eq!(
            key_of(op, &req2),
            key,
            "re-serialised body has another key: {}",
            String::from_utf8_lossy(&again)
        );
    }
});

fn key_of(op: &str, req: &Object) -> Vec<u8> {
    let table = table_name(req.get("TableName").and_then(Json::as_str).unwrap_or("T"));
    read_key(op, table, req)
}
