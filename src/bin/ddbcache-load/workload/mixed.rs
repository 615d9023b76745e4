//! `mixed`: GetItem reads of the `get` items at `--read-ratio`; the rest are writes of the same
//! keys (same popularity), half PutItem of the whole item, half UpdateItem `SET #n = #n + :one`,
//! so every write invalidates what the reads cached. `--read-ratio 0` is a write-only run.

use bytes::Bytes;

use super::get::{Get, GetFactory, GetSeed};
use super::keys::KeyPicker;
use super::{Factory, Generator, Op, Request, TableDef};
use crate::cli::WorkloadArgs;

#[derive(Debug, Clone)]
pub struct Mixed {
    get: Get,
    read_ratio: f64,
}

impl Mixed {
    pub fn new(args: &WorkloadArgs) -> Self {
        Mixed {
            get: Get::new(args),
            read_ratio: args.read_ratio,
        }
    }

    pub fn table_def(&self) -> TableDef {
        self.get.table_def()
    }

    pub fn seed_data(&self) -> GetSeed {
        self.get.seed_data()
    }

    pub fn factory(&self) -> MixedFactory {
        MixedFactory {
            reads: self.get.factory(),
            read_ratio: self.read_ratio,
        }
    }
}

pub struct MixedFactory {
    reads: GetFactory,
    read_ratio: f64,
}

impl MixedFactory {
    fn put_body(&self, i: u64, n: u64) -> String {
        format!(
            r#"{{"TableName":{},"Item":{}}}"#,
            self.reads.spec.table_json,
            self.reads.spec.item(i, n)
        )
    }

    fn update_body(&self, i: u64) -> String {
        format!(
            r##"{{"TableName":{},"Key":{},"UpdateExpression":"SET #n = #n + :one","ExpressionAttributeNames":{{"#n":"n"}},"ExpressionAttributeValues":{{":one":{{"N":"1"}}}}}}"##,
            self.reads.spec.table_json,
            Get::key_map(i)
        )
    }
}

impl Factory for MixedFactory {
    fn generator(&self, vu: usize) -> Box<dyn Generator> {
        Box::new(MixedGenerator {
            factory: MixedFactory {
                reads: self.reads.clone(),
                read_ratio: self.read_ratio,
            },
            picker: self.reads.picker(vu),
            writes: 0,
        })
    }

    fn sample(&self) -> Request {
        self.reads.read(0)
    }

    fn prime_len(&self) -> u64 {
        self.reads.prime_len()
    }

    fn prime(&self, i: u64) -> Request {
        self.reads.read(i)
    }
}

struct MixedGenerator {
    factory: MixedFactory,
    picker: KeyPicker,
    writes: u64,
}

impl Generator for MixedGenerator {
    fn next_request(&mut self) -> Request {
        let i = self.picker.pick();
        let roll = self.picker.rng().f64();
        if roll < self.factory.read_ratio {
            return self.factory.reads.read(i);
        }
        self.writes += 1;
        if self.picker.rng().bool() {
            let body = self.factory.put_body(i, self.writes);
            Request::new("PutItem", Op::PutItem, Bytes::from(body))
        } else {
            let body = self.factory.update_body(i);
            Request::new("UpdateItem", Op::UpdateItem, Bytes::from(body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::test_args as args;

    #[test]
    fn write_only_sends_valid_puts_and_updates() {
        let m = Mixed::new(&args(&[
            "--workload",
            "mixed",
            "--read-ratio",
            "0",
            "--keys",
            "4",
        ]));
        let factory = m.factory();
        let mut generator = factory.generator(0);
        let (mut puts, mut updates) = (0, 0);
        for _ in 0..200 {
            let req = generator.next_request();
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            assert_eq!(body["TableName"], "ddbcache-load-get");
            match req.op {
                Op::PutItem => {
                    puts += 1;
                    assert!(body["Item"]["pk"]["S"].as_str().unwrap().starts_with('k'));
                    assert!(body["Item"]["payload"]["S"].is_string());
                }
                Op::UpdateItem => {
                    updates += 1;
                    assert!(body["Key"]["pk"]["S"].is_string());
                    assert_eq!(body["ExpressionAttributeNames"]["#n"], "n");
                    assert_eq!(body["ExpressionAttributeValues"][":one"]["N"], "1");
                }
                other => panic!("a read at read-ratio 0: {other:?}"),
            }
        }
        assert!(puts > 50 && updates > 50, "{puts} {updates}");
    }

    #[test]
    fn read_ratio_is_respected() {
        let m = Mixed::new(&args(&["--workload", "mixed", "--read-ratio", "0.9"]));
        let factory = m.factory();
        let mut generator = factory.generator(3);
        let reads = (0..10_000)
            .filter(|_| generator.next_request().op == Op::GetItem)
            .count();
        assert!((8_800..=9_200).contains(&reads), "{reads}");
    }
}
