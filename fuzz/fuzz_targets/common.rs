//! Helpers shared by the fuzz targets: the fixed schemas the planner sees, and the
//! order-changing transformations whose result must not change a key or a plan.

#![allow(dead_code)] // Each target uses a part.

use ddbcache::protocol::json::{Json, Object};
use ddbcache::schema::TableSchema;
use std::sync::LazyLock;

/// `T`: hash `pk`, LSI `lsi`, GSI `gsi`. `Music`: hash `Artist`, LSI `ByYear`, GSI `BySong`.
/// Every other table is unknown (its reads bypass, its writes invalidate the whole table).
static SCHEMAS: LazyLock<[(&str, TableSchema); 2]> = LazyLock::new(|| {
    [
        (
            "T",
            TableSchema {
                partition_key: "pk".into(),
                local_indexes: vec!["lsi".into()],
                global_indexes: vec!["gsi".into()],
            },
        ),
        (
            "Music",
            TableSchema {
                partition_key: "Artist".into(),
                local_indexes: vec!["ByYear".into()],
                global_indexes: vec!["BySong".into()],
            },
        ),
    ]
});

pub fn schema(table: &str) -> Option<&'static TableSchema> {
    SCHEMAS.iter().find(|(t, _)| *t == table).map(|(_, s)| s)
}

/// Whether any object, at any depth, names a member twice. Such a document means different
/// things to different JSON readers (first or last wins), so the key keeps every copy in
/// document order, and order-changing rewrites are not meaning-preserving for it.
pub fn has_duplicate_members(v: &Json) -> bool {
    match v {
        Json::Object(o) => {
            let mut names: Vec<&str> = o.keys().collect();
            names.sort_unstable();
            names.windows(2).any(|w| w[0] == w[1])
                || o.iter().any(|(_, v)| has_duplicate_members(v))
        }
        Json::Array(items) => items.iter().any(has_duplicate_members),
        _ => false,
    }
}

/// The same document with the members of every object in reverse order.
pub fn reversed<'a>(v: &Json<'a>) -> Json<'a> {
    match v {
        Json::Object(o) => Json::Object(Object(
            o.0.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reversed(v)))
                .collect(),
        )),
        Json::Array(items) => Json::Array(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

/// The body as serde_json writes it back: members sorted, no whitespace, strings re-escaped,
/// numbers re-spelt. None when serde_json does not read it.
pub fn reserialised(body: &[u8]) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(serde_json::to_vec(&value).expect("a Value serialises"))
}

/// Calls `f` on every string value and member name in the document.
pub fn each_string(v: &Json, f: &mut impl FnMut(&str)) {
    match v {
        Json::String(s) => f(s),
        Json::Object(o) => o.iter().for_each(|(k, v)| {
            f(k);
            each_string(v, f);
        }),
        Json::Array(items) => items.iter().for_each(|v| each_string(v, f)),
        _ => {}
    }
}
