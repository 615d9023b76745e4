//! Invalidation messages between proxies: what a proxy publishes after its writes, and how it
//! reads the others' (pure encoding; the subscription loop is in [`super::tier`]).
//!
//! JSON: `{"from":"<proxy id>","inv":[["p",table,pk],["t",table],["a"]]}`. A proxy ignores
//! messages carrying its own id.

use crate::cache::Invalidation;
use serde_json::{Value, json};

pub fn encode(from: &str, what: &[Invalidation]) -> Vec<u8> {
    let inv: Vec<Value> = what
        .iter()
        .map(|i| match i {
            Invalidation::Partition { table, pk } => json!(["p", table, pk]),
            Invalidation::Table(table) => json!(["t", table]),
            Invalidation::All => json!(["a"]),
        })
        .collect();
    serde_json::to_vec(&json!({ "from": from, "inv": inv })).expect("JSON serialises")
}

/// (sender id, invalidations); None for anything malformed.
pub fn decode(payload: &[u8]) -> Option<(String, Vec<Invalidation>)> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let from = v.get("from")?.as_str()?.to_owned();
    let mut out = Vec::new();
    for i in v.get("inv")?.as_array()? {
        let parts: Vec<&str> = i
            .as_array()?
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()?;
        out.push(match parts.as_slice() {
            ["p", table, pk] => Invalidation::Partition {
                table: (*table).into(),
                pk: (*pk).into(),
            },
            ["t", table] => Invalidation::Table((*table).into()),
            ["a"] => Invalidation::All,
            _ => return None,
        });
    }
    Some((from, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let what = vec![
            Invalidation::Partition {
                table: "T".into(),
                pk: "S:\"a\tb\"".into(),
            },
            Invalidation::Table("U".into()),
            Invalidation::All,
        ];
        let (from, got) = decode(&encode("proxy-1", &what)).unwrap();
        assert_eq!(from, "proxy-1");
        assert_eq!(got, what);
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in [
            &b"not json"[..],
            br#"{"inv":[]}"#,
            br#"{"from":"x","inv":[["p","T"]]}"#,
            br#"{"from":"x","inv":[["z"]]}"#,
        ] {
            assert!(decode(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
