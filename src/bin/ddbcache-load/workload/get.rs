//! `get`: GetItem on `--keys` items (`pk = "k0000000042"`), uniform or Zipf, each item
//! `{pk, n, payload}` padded to `--item-bytes`. Request bodies are built once per key (up to
//! [`PREBUILT_MAX`] keys; beyond that, per request).

use std::sync::Arc;

use bytes::Bytes;

use super::keys::KeyPicker;
use super::{Factory, Generator, Op, Request, SeedData, TableDef, json_str, padding, padding_len};
use crate::cli::WorkloadArgs;

/// Above this many keys, GetItem bodies are built per request instead of held in memory.
pub const PREBUILT_MAX: u64 = 1_000_000;

/// The `get` workload (also the read side and table of `mixed`).
#[derive(Debug, Clone)]
pub struct Get {
    pub table: String,
    /// The table name as a JSON string literal.
    pub table_json: String,
    pub keys: u64,
    pub zipf: f64,
    /// The padding string of every item.
    pub payload: Arc<str>,
}

impl Get {
    pub fn new(args: &WorkloadArgs) -> Self {
        let table = args.table();
        // "pk" + "k" and 10 digits, "n" + a short number, "payload" + the padding.
        let payload = padding(padding_len(args.item_bytes, 2 + 11 + 1 + 2 + 7));
        Get {
            table_json: json_str(&table),
            table,
            keys: args.keys(),
            zipf: args.zipf,
            payload: payload.into(),
        }
    }

    pub fn table_def(&self) -> TableDef {
        TableDef {
            name: self.table.clone(),
            hash_key: "pk",
            range_key: None,
            gsis: Vec::new(),
        }
    }

    /// The key of item `i`.
    pub fn key(i: u64) -> String {
        format!("k{i:010}")
    }

    /// Item `i` as a DynamoDB item map, with counter `n`.
    pub fn item(&self, i: u64, n: u64) -> String {
        format!(
            r#"{{"pk":{{"S":"{}"}},"n":{{"N":"{n}"}},"payload":{{"S":"{}"}}}}"#,
            Self::key(i),
            self.payload
        )
    }

    /// The `Key` map of item `i`.
    pub fn key_map(i: u64) -> String {
        format!(r#"{{"pk":{{"S":"{}"}}}}"#, Self::key(i))
    }

    pub fn get_body(&self, i: u64) -> String {
        format!(
            r#"{{"TableName":{},"Key":{}}}"#,
            self.table_json,
            Self::key_map(i)
        )
    }

    pub fn seed_data(&self) -> GetSeed {
        GetSeed(self.clone())
    }

    pub fn factory(&self) -> GetFactory {
        let bodies = (self.keys <= PREBUILT_MAX).then(|| {
            Arc::new(
                (0..self.keys)
                    .map(|i| Bytes::from(self.get_body(i)))
                    .collect::<Vec<_>>(),
            )
        });
        GetFactory {
            spec: self.clone(),
            bodies,
        }
    }
}

/// Items `0..keys`.
pub struct GetSeed(Get);

impl SeedData for GetSeed {
    fn len(&self) -> usize {
        self.0.keys as usize
    }

    fn item(&self, i: usize) -> String {
        self.0.item(i as u64, 0)
    }
}

/// GetItem bodies for one target's run, shared by its virtual users.
#[derive(Clone)]
pub struct GetFactory {
    pub spec: Get,
    bodies: Option<Arc<Vec<Bytes>>>,
}

impl GetFactory {
    /// The GetItem request of key `i`.
    pub fn read(&self, i: u64) -> Request {
        let body = match &self.bodies {
            Some(bodies) => bodies[i as usize].clone(),
            None => Bytes::from(self.spec.get_body(i)),
        };
        Request::new("GetItem", Op::GetItem, body)
    }

    pub fn picker(&self, vu: usize) -> KeyPicker {
        KeyPicker::new(self.spec.keys, self.spec.zipf, 0x9e37_79b9 ^ vu as u64)
    }
}

impl Factory for GetFactory {
    fn generator(&self, vu: usize) -> Box<dyn Generator> {
        Box::new(GetGenerator {
            factory: self.clone(),
            picker: self.picker(vu),
        })
    }

    fn sample(&self) -> Request {
        self.read(0)
    }

    fn prime_len(&self) -> u64 {
        self.spec.keys
    }

    fn prime(&self, i: u64) -> Request {
        self.read(i)
    }
}

struct GetGenerator {
    factory: GetFactory,
    picker: KeyPicker,
}

impl Generator for GetGenerator {
    fn next_request(&mut self) -> Request {
        self.factory.read(self.picker.pick())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::test_args as args;

    /// DynamoDB's item size: attribute names plus string/number lengths.
    fn item_size(item: &serde_json::Value) -> usize {
        item.as_object()
            .unwrap()
            .iter()
            .map(|(name, v)| {
                let (_, v) = v.as_object().unwrap().iter().next().unwrap();
                name.len() + v.as_str().unwrap().len()
            })
            .sum()
    }

    #[test]
    fn items_have_the_requested_size() {
        let get = Get::new(&args(&["--item-bytes", "1024"]));
        let item: serde_json::Value = serde_json::from_str(&get.item(42, 7)).unwrap();
        assert_eq!(item["pk"]["S"], "k0000000042");
        assert_eq!(item["n"]["N"], "7");
        assert!(
            (1022..=1026).contains(&item_size(&item)),
            "{}",
            item_size(&item)
        );
    }

    #[test]
    fn get_bodies_are_valid_json_with_the_key() {
        let get = Get::new(&args(&["--table", "t\"x", "--keys", "5"]));
        let factory = get.factory();
        let mut generator = factory.generator(0);
        for _ in 0..20 {
            let req = generator.next_request();
            assert_eq!(req.op, Op::GetItem);
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(body["TableName"], "t\"x");
            let key = body["Key"]["pk"]["S"].as_str().unwrap();
            assert!(key.starts_with("k000000000"), "{key}");
            assert_eq!(body.as_object().unwrap().len(), 2);
        }
    }

    #[test]
    fn many_keys_are_built_per_request() {
        let get = Get::new(&args(&["--keys", "20000000"]));
        let factory = get.factory();
        assert!(factory.bodies.is_none());
        let body: serde_json::Value =
            serde_json::from_slice(&factory.read(19_999_999).body).unwrap();
        assert_eq!(body["Key"]["pk"]["S"], "k0019999999");
    }
}
