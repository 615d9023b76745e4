//! Replaying stored responses: what is stored for a 200 answer (its body without
//! `ConsumedCapacity`), and the body a hit sends (with zero `ConsumedCapacity` when asked).

use crate::plan::CapacityReport;
use bytes::Bytes;
use serde_json::Value;

/// Removes `ConsumedCapacity` from a stored body: a hit reports its own (zero).
pub fn strip_consumed_capacity(body: &Bytes) -> Bytes {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut map)) if map.contains_key("ConsumedCapacity") => {
            map.remove("ConsumedCapacity");
            Bytes::from(serde_json::to_vec(&map).expect("a JSON map serialises"))
        }
        _ => body.clone(),
    }
}

/// True when a GetItem response holds an `Item`.
pub fn has_item(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "Item", borrow, default)]
        item: Option<&'a serde_json::value::RawValue>,
    }
    serde_json::from_slice::<Probe>(body).is_ok_and(|p| p.item.is_some())
}

/// A hit's body: the stored one, with zero `ConsumedCapacity` first when the request asked.
pub fn replay_body(stored: &Bytes, capacity: CapacityReport, table: &str) -> Bytes {
    let consumed = match capacity {
        CapacityReport::None => return stored.clone(),
        CapacityReport::Total => serde_json::json!({"TableName": table, "CapacityUnits": 0.0}),
        CapacityReport::Indexes => serde_json::json!({
            "TableName": table, "CapacityUnits": 0.0, "Table": {"CapacityUnits": 0.0}
        }),
    };
    let Some(open) = stored.iter().position(|b| !b.is_ascii_whitespace()) else {
        return stored.clone();
    };
    if stored[open] != b'{' {
        return stored.clone();
    }
    let rest = &stored[open + 1..];
    let empty = rest
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|&b| b == b'}');
    let mut out = Vec::with_capacity(stored.len() + 96);
    out.extend_from_slice(b"{\"ConsumedCapacity\":");
    out.extend_from_slice(&serde_json::to_vec(&consumed).expect("JSON serialises"));
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_adds_zero_capacity_only_when_asked() {
        let stored = Bytes::from_static(br#"{"Item":{"pk":{"S":"a"}}}"#);
        assert_eq!(replay_body(&stored, CapacityReport::None, "T"), stored);
        let total: Value =
            serde_json::from_slice(&replay_body(&stored, CapacityReport::Total, "T")).unwrap();
        assert_eq!(total["ConsumedCapacity"]["CapacityUnits"], 0.0);
        assert_eq!(total["ConsumedCapacity"]["TableName"], "T");
        assert_eq!(total["Item"]["pk"]["S"], "a");
        let empty: Value = serde_json::from_slice(&replay_body(
            &Bytes::from_static(b"{}"),
            CapacityReport::Indexes,
            "T",
        ))
        .unwrap();
        assert_eq!(empty["ConsumedCapacity"]["Table"]["CapacityUnits"], 0.0);
    }

    #[test]
    fn stored_bodies_lose_consumed_capacity() {
        let body = Bytes::from_static(
            br#"{"ConsumedCapacity":{"TableName":"T","CapacityUnits":0.5},"Item":{"a":{"S":"b"}}}"#,
        );
        let stripped: Value = serde_json::from_slice(&strip_consumed_capacity(&body)).unwrap();
        assert!(stripped.get("ConsumedCapacity").is_none());
        assert_eq!(stripped["Item"]["a"]["S"], "b");
    }

    #[test]
    fn negative_answers_are_recognised() {
        assert!(has_item(br#"{"Item":{"a":{"S":"b"}}}"#));
        assert!(!has_item(b"{}"));
        assert!(!has_item(br#"{"ConsumedCapacity":{"CapacityUnits":0.5}}"#));
    }
}
