//! `query`: Query pages of `--page-size` (default 20) items from `--keys` partitions
//! (`pk = "p0000000042"`), each holding `--items-per-partition` (default 25) items
//! `{pk, sk, payload}` of `--item-bytes`. One pre-built body per partition.

use std::sync::Arc;

use bytes::Bytes;

use super::keys::KeyPicker;
use super::{Factory, Generator, Op, Request, SeedData, TableDef, json_str, padding, padding_len};
use crate::cli::WorkloadArgs;

#[derive(Debug, Clone)]
pub struct Query {
    pub table: String,
    table_json: String,
    partitions: u64,
    per_partition: u32,
    page_size: u32,
    zipf: f64,
    payload: Arc<str>,
}

impl Query {
    pub fn new(args: &WorkloadArgs) -> Self {
        let table = args.table();
        // "pk" + 11, "sk" + 6, "payload" + the padding.
        let payload = padding(padding_len(args.item_bytes, 2 + 11 + 2 + 6 + 7));
        Query {
            table_json: json_str(&table),
            table,
            partitions: args.keys(),
            per_partition: args.items_per_partition,
            page_size: args.page_size,
            zipf: args.zipf,
            payload: payload.into(),
        }
    }

    pub fn table_def(&self) -> TableDef {
        TableDef {
            name: self.table.clone(),
            hash_key: "pk",
            range_key: Some("sk"),
            gsis: Vec::new(),
        }
    }

    pub fn partition_key(p: u64) -> String {
        format!("p{p:010}")
    }

    pub fn item(&self, p: u64, s: u32) -> String {
        format!(
            r#"{{"pk":{{"S":"{}"}},"sk":{{"S":"s{s:05}"}},"payload":{{"S":"{}"}}}}"#,
            Self::partition_key(p),
            self.payload
        )
    }

    pub fn query_body(&self, p: u64) -> String {
        format!(
            r#"{{"TableName":{},"KeyConditionExpression":"pk = :p","ExpressionAttributeValues":{{":p":{{"S":"{}"}}}},"Limit":{}}}"#,
            self.table_json,
            Self::partition_key(p),
            self.page_size
        )
    }

    pub fn seed_data(&self) -> QuerySeed {
        QuerySeed(self.clone())
    }

    pub fn factory(&self) -> QueryFactory {
        QueryFactory {
            bodies: Arc::new(
                (0..self.partitions)
                    .map(|p| Bytes::from(self.query_body(p)))
                    .collect(),
            ),
            zipf: self.zipf,
        }
    }
}

/// `per_partition` items in each partition, partition after partition.
pub struct QuerySeed(Query);

impl SeedData for QuerySeed {
    fn len(&self) -> usize {
        self.0.partitions as usize * self.0.per_partition as usize
    }

    fn item(&self, i: usize) -> String {
        let per = self.0.per_partition as usize;
        self.0.item((i / per) as u64, (i % per) as u32)
    }
}

pub struct QueryFactory {
    bodies: Arc<Vec<Bytes>>,
    zipf: f64,
}

impl Factory for QueryFactory {
    fn generator(&self, vu: usize) -> Box<dyn Generator> {
        Box::new(QueryGenerator {
            bodies: self.bodies.clone(),
            picker: KeyPicker::new(self.bodies.len() as u64, self.zipf, 0x5eed ^ vu as u64),
        })
    }

    fn sample(&self) -> Request {
        self.prime(0)
    }

    fn prime_len(&self) -> u64 {
        self.bodies.len() as u64
    }

    fn prime(&self, i: u64) -> Request {
        Request::new("Query", Op::Query, self.bodies[i as usize].clone())
    }
}

struct QueryGenerator {
    bodies: Arc<Vec<Bytes>>,
    picker: KeyPicker,
}

impl Generator for QueryGenerator {
    fn next_request(&mut self) -> Request {
        let p = self.picker.pick() as usize;
        Request::new("Query", Op::Query, self.bodies[p].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::test_args as args;

    #[test]
    fn query_bodies_ask_for_one_page_of_a_partition() {
        let q = Query::new(&args(&["--workload", "query", "--keys", "3"]));
        let factory = q.factory();
        let mut generator = factory.generator(1);
        for _ in 0..10 {
            let req = generator.next_request();
            assert_eq!(req.op, Op::Query);
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(body["TableName"], "ddbcache-load-query");
            assert_eq!(body["Limit"], 20);
            assert_eq!(body["KeyConditionExpression"], "pk = :p");
            let p = body["ExpressionAttributeValues"][":p"]["S"]
                .as_str()
                .unwrap();
            assert!(["p0000000000", "p0000000001", "p0000000002"].contains(&p));
        }
    }

    #[test]
    fn seed_fills_every_partition() {
        let q = Query::new(&args(&["--workload", "query", "--keys", "2"]));
        let seed = q.seed_data();
        assert_eq!(seed.len(), 50);
        let last: serde_json::Value = serde_json::from_str(&seed.item(49)).unwrap();
        assert_eq!(last["pk"]["S"], "p0000000001");
        assert_eq!(last["sk"]["S"], "s00024");
    }
}
