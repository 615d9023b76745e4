//! Micro-benchmarks of the pure parts of the request path: decode + plan (which builds the
//! canonical key) for a GetItem and a Query, and the generation stamp lookup.
//! Run: `cargo bench --bench hot_path`.

use criterion::{Criterion, criterion_group, criterion_main};
use ddbcache::cache::{Generations, Scope};
use ddbcache::plan::{Plan, plan};
use ddbcache::protocol::Operation;
use ddbcache::schema::TableSchema;
use std::hint::black_box;

const GET: &[u8] =
    br#"{"TableName":"Music","Key":{"Artist":{"S":"Nina Simone"},"Song":{"S":"Sinnerman"}}}"#;
const QUERY: &[u8] = br##"{"TableName":"Music","KeyConditionExpression":"#a = :a AND begins_with(#s, :p)","ExpressionAttributeNames":{"#a":"Artist","#s":"Song"},"ExpressionAttributeValues":{":a":{"S":"Nina Simone"},":p":{"S":"S"}},"Limit":20,"ScanIndexForward":false,"ProjectionExpression":"#a, #s, Year"}"##;

fn decode_and_plan(c: &mut Criterion) {
    let schema = TableSchema {
        partition_key: "Artist".into(),
        local_indexes: vec![],
        global_indexes: vec!["ByYear".into()],
    };
    for (name, op, body) in [
        ("get_item", Operation::GetItem, GET),
        ("query", Operation::Query, QUERY),
    ] {
        c.bench_function(&format!("decode_and_plan/{name}"), |b| {
            b.iter(|| {
                let value: serde_json::Value = serde_json::from_slice(black_box(body)).unwrap();
                let map = value.as_object().unwrap();
                let p = plan(op, map, |_| Some(&schema));
                assert!(matches!(p, Plan::Read(_)));
                p
            })
        });
    }
    let g = Generations::new();
    let scope = Scope::Partition {
        table: "Music".into(),
        pk: r#"{"S":"Nina Simone"}"#.into(),
    };
    c.bench_function("generation_stamp", |b| {
        b.iter(|| g.stamp(black_box(&scope)))
    });
}

criterion_group!(benches, decode_and_plan);
criterion_main!(benches);
