//! Byte layouts of the remote tier, as pure functions: stored values (body plus the metadata
//! replay needs), and the names Redis keys, hash fields and partition slots get.
//!
//! Value: `[1][flags][fresh_until: u64 BE, Unix ms][body]`, flags bit 0 = negative. Freshness
//! is wall-clock time, so proxies whose clocks disagree by `d` see entries `d` longer or
//! shorter; the bucket's own Redis TTL bounds how long any field lives.

use crate::cache::Scope;
use bytes::Bytes;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VERSION: u8 = 1;
const HEADER: usize = 10;
/// Partition generations are hashed into this many slots (fields of one Redis hash): bounded
/// memory whatever the number of partitions; a collision only refuses extra fills.
pub const PARTITION_SLOTS: u32 = 1 << 16;

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub fn encode_value(body: &[u8], negative: bool, ttl: Duration, now: SystemTime) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + body.len());
    v.push(VERSION);
    v.push(u8::from(negative));
    v.extend_from_slice(&unix_ms(now + ttl).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// (body, negative, time left); None when malformed, of another version, or expired at `now`.
pub fn decode_value(v: &[u8], now: SystemTime) -> Option<(Bytes, bool, Duration)> {
    if v.len() < HEADER || v[0] != VERSION {
        return None;
    }
    let until = u64::from_be_bytes(v[2..HEADER].try_into().ok()?);
    let left = until.checked_sub(unix_ms(now)).filter(|&ms| ms > 0)?;
    Some((
        Bytes::copy_from_slice(&v[HEADER..]),
        v[1] & 1 == 1,
        Duration::from_millis(left),
    ))
}

/// The slot of a partition's generation: CRC32 (stable across processes and releases, unlike
/// the in-process hasher) of table and key.
pub fn partition_slot(table: &str, pk: &str) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(table.as_bytes());
    h.update(&[0]);
    h.update(pk.as_bytes());
    h.finalize() % PARTITION_SLOTS
}

/// Field names in the generations hash.
pub fn epoch_field(table: &str) -> String {
    format!("e:{table}")
}
pub fn writes_field(table: &str) -> String {
    format!("t:{table}")
}
pub fn slot_field(table: &str, pk: &str) -> String {
    format!("p:{}", partition_slot(table, pk))
}

/// The generation field a scope's fills are checked against (besides the global and table
/// epochs): its partition slot, or the table's writes counter for table-scoped entries.
pub fn scope_field(scope: &Scope) -> String {
    match scope {
        Scope::Partition { table, pk } => slot_field(table, pk),
        Scope::Table(table) => writes_field(table),
    }
}

/// A bucket's name after `{prefix}b:{global}.{table epoch}:`. The table name is
/// length-prefixed, so no table/key pair can be confused with another.
pub fn bucket_suffix(scope: &Scope) -> String {
    match scope {
        Scope::Partition { table, pk } => partition_suffix(table, pk),
        Scope::Table(table) => table_suffix(table),
    }
}
pub fn partition_suffix(table: &str, pk: &str) -> String {
    format!("p:{}:{table}:{pk}", table.len())
}
pub fn table_suffix(table: &str) -> String {
    format!("t:{table}")
}

pub fn table_of(scope: &Scope) -> &str {
    match scope {
        Scope::Partition { table, .. } | Scope::Table(table) => table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_time_left() {
        let now = SystemTime::now();
        let v = encode_value(b"{\"Item\":{}}", true, Duration::from_secs(60), now);
        let (body, negative, left) = decode_value(&v, now + Duration::from_secs(10)).unwrap();
        assert_eq!(&body[..], b"{\"Item\":{}}");
        assert!(negative);
        assert!(left <= Duration::from_secs(50) && left > Duration::from_secs(49));
    }

    #[test]
    fn expired_malformed_and_foreign_values_are_misses() {
        let now = SystemTime::now();
        let v = encode_value(b"x", false, Duration::from_secs(1), now);
        assert!(decode_value(&v, now + Duration::from_secs(1)).is_none());
        assert!(decode_value(&v[..5], now).is_none());
        let mut other = v.clone();
        other[0] = 2;
        assert!(decode_value(&other, now).is_none());
        assert!(decode_value(&v, now).is_some());
    }

    #[test]
    fn bucket_names_do_not_confuse_tables_and_keys() {
        assert_ne!(partition_suffix("a:b", "c"), partition_suffix("a", "b:c"));
        let p = Scope::Partition {
            table: "T".into(),
            pk: "k".into(),
        };
        assert_ne!(bucket_suffix(&p), bucket_suffix(&Scope::Table("T".into())));
    }

    #[test]
    fn partition_slots_are_stable_and_bounded() {
        // A fixed value: every proxy of a fleet (any build) must agree on it.
        assert_eq!(partition_slot("T", "k"), partition_slot("T", "k"));
        assert!(partition_slot("Orders", "customer#1") < PARTITION_SLOTS);
        assert_eq!(
            partition_slot("T", "k"),
            crc32fast::hash(b"T\0k") % PARTITION_SLOTS
        );
    }
}
