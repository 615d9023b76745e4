//! Workloads: what to send. A [`Workload`] knows its table, its seed data and how to
//! [`Workload::prepare`] a [`Factory`] for one target; the factory hands each virtual user a
//! [`Generator`] that yields raw DynamoDB JSON requests (pre-built where possible, so the load
//! generator stays light).

pub mod cruddur;
pub mod get;
pub mod keys;
pub mod mixed;
pub mod query;

use std::sync::Arc;

use bytes::Bytes;

use crate::cli::{WorkloadArgs, WorkloadKind};
use crate::endpoint::Session;

/// The DynamoDB operations the tool sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    GetItem,
    Query,
    Scan,
    PutItem,
    UpdateItem,
    TransactWriteItems,
    BatchWriteItem,
    CreateTable,
    DescribeTable,
}

impl Op {
    pub fn name(self) -> &'static str {
        self.target()
            .strip_prefix("DynamoDB_20120810.")
            .expect("every target has the prefix")
    }

    /// The `X-Amz-Target` header value.
    pub fn target(self) -> &'static str {
        match self {
            Op::GetItem => "DynamoDB_20120810.GetItem",
            Op::Query => "DynamoDB_20120810.Query",
            Op::Scan => "DynamoDB_20120810.Scan",
            Op::PutItem => "DynamoDB_20120810.PutItem",
            Op::UpdateItem => "DynamoDB_20120810.UpdateItem",
            Op::TransactWriteItems => "DynamoDB_20120810.TransactWriteItems",
            Op::BatchWriteItem => "DynamoDB_20120810.BatchWriteItem",
            Op::CreateTable => "DynamoDB_20120810.CreateTable",
            Op::DescribeTable => "DynamoDB_20120810.DescribeTable",
        }
    }
}

/// One request to send. `lease` is dropped once the answer is in (cruddur uses it to keep two
/// virtual users from rewriting the same message group at once).
pub struct Request {
    pub label: &'static str,
    pub op: Op,
    pub body: Bytes,
    pub lease: Option<Box<dyn Send>>,
}

impl Request {
    pub fn new(label: &'static str, op: Op, body: impl Into<Bytes>) -> Self {
        Request {
            label,
            op,
            body: body.into(),
            lease: None,
        }
    }
}

/// One virtual user's request stream.
pub trait Generator: Send {
    fn next_request(&mut self) -> Request;
}

/// Makes generators for one target's run.
pub trait Factory: Send + Sync {
    /// The generator of virtual user `vu` (its random stream derives from `vu`).
    fn generator(&self, vu: usize) -> Box<dyn Generator>;
    /// A representative read (key or partition 0), for `sample`.
    fn sample(&self) -> Request;
    /// How many distinct reads the workload can send (`--prime` sends each once).
    fn prime_len(&self) -> u64;
    /// Distinct read `i` of `0..prime_len()`.
    fn prime(&self, i: u64) -> Request;
}

/// A table to create: string hash and optional range key, optional string-keyed GSIs.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: String,
    pub hash_key: &'static str,
    pub range_key: Option<&'static str>,
    /// (index name, hash key, range key)
    pub gsis: Vec<(&'static str, &'static str, &'static str)>,
}

/// The items a workload seeds, as DynamoDB JSON item maps, generated on demand.
pub trait SeedData: Send + Sync {
    fn len(&self) -> usize;
    fn item(&self, i: usize) -> String;
}

/// The workload chosen on the command line.
pub enum Workload {
    Get(get::Get),
    Query(query::Query),
    Mixed(mixed::Mixed),
    Cruddur(cruddur::Cruddur),
}

impl Workload {
    pub fn from_args(args: &WorkloadArgs) -> Result<Self, String> {
        args.validate()?;
        Ok(match args.workload {
            WorkloadKind::Get => Workload::Get(get::Get::new(args)),
            WorkloadKind::Query => Workload::Query(query::Query::new(args)),
            WorkloadKind::Mixed => Workload::Mixed(mixed::Mixed::new(args)),
            WorkloadKind::Cruddur => Workload::Cruddur(cruddur::Cruddur::new(args)),
        })
    }

    pub fn table(&self) -> TableDef {
        match self {
            Workload::Get(w) => w.table_def(),
            Workload::Query(w) => w.table_def(),
            Workload::Mixed(w) => w.table_def(),
            Workload::Cruddur(w) => w.table_def(),
        }
    }

    pub fn seed_data(&self) -> Arc<dyn SeedData> {
        match self {
            Workload::Get(w) => Arc::new(w.seed_data()),
            Workload::Query(w) => Arc::new(w.seed_data()),
            Workload::Mixed(w) => Arc::new(w.seed_data()),
            Workload::Cruddur(w) => Arc::new(w.seed_data()),
        }
    }

    /// The factory for one target. Cruddur reads the target's current message groups first.
    pub async fn prepare(&self, session: &mut Session) -> Result<Arc<dyn Factory>, String> {
        Ok(match self {
            Workload::Get(w) => Arc::new(w.factory()),
            Workload::Query(w) => Arc::new(w.factory()),
            Workload::Mixed(w) => Arc::new(w.factory()),
            Workload::Cruddur(w) => Arc::new(w.prepare(session).await?),
        })
    }
}

/// A JSON string literal (quoted and escaped).
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialise")
}

/// `len` bytes of deterministic filler text.
pub fn padding(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|i| ALPHABET[(i * 7 + i / ALPHABET.len()) % ALPHABET.len()] as char)
        .collect()
}

/// How long the padded string attribute must be for an item of `item_bytes`, given the bytes
/// its other attributes take (DynamoDB's size: attribute names plus values).
pub fn padding_len(item_bytes: usize, other_bytes: usize) -> usize {
    item_bytes.saturating_sub(other_bytes)
}

/// Workload options as `seed` parses them, plus `extra` flags.
#[cfg(test)]
pub fn test_args(extra: &[&str]) -> WorkloadArgs {
    use clap::Parser;
    let mut argv = vec!["ddbcache-load", "seed", "--target", "http://127.0.0.1:1"];
    argv.extend_from_slice(extra);
    match crate::cli::Cli::try_parse_from(argv).unwrap().command {
        crate::cli::Command::Seed(s) => s.workload,
        _ => unreachable!(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names() {
        for op in [Op::GetItem, Op::TransactWriteItems, Op::DescribeTable] {
            assert_eq!(op.target(), format!("DynamoDB_20120810.{}", op.name()));
        }
        assert_eq!(Op::BatchWriteItem.name(), "BatchWriteItem");
    }

    #[test]
    fn padding_is_ascii_of_the_length() {
        assert_eq!(padding(0), "");
        let p = padding(1000);
        assert_eq!(p.len(), 1000);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(padding_len(1024, 30), 994);
        assert_eq!(padding_len(10, 30), 0);
        assert_eq!(json_str("a\"b"), r#""a\"b""#);
    }
}
