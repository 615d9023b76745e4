//! Micro-benchmarks of the cache-hit path, piece by piece, for a GetItem answered with a 1 KB item
//! and a Query answered with 20 such items (~20 KB):
//!
//! - `decode_and_plan/*`: [`Json::parse`] (the server's borrowed decode) + [`plan`] (which builds
//!   the canonical key); `decode/*`: the decode alone;
//! - `read_key/*`: the canonical key alone, from an already decoded request;
//! - `plan_cache/*`: what replaces decode + plan when the same request bytes were planned
//!   before (`cache::plans::Plans::get`, among 10,000 remembered requests);
//! - `generation_stamp`: the stamp a read takes before its lookup;
//! - `hit/<size>/*`: the moka lookup, the hit response (`response::local`: request id, CRC32,
//!   headers; `local_with_crc`: the same with the CRC stored in the entry), `replay_body` with
//!   and without `ConsumedCapacity`, and all of it together;
//! - `parts/*`: CRC32 of 1 KB and 20 KB and request-id generation, to show their share.
//!
//! Run: `cargo bench --bench hot_path` (figures and what they mean: docs/benchmarks-micro.md).

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ddbcache::cache::key::read_key;
use ddbcache::cache::plans::Plans;
use ddbcache::cache::replay::replay_body;
use ddbcache::cache::{CacheKey, Entry, Generations, LocalCache, Scope};
use ddbcache::plan::{CapacityReport, Plan, ReadPlan, plan};
use ddbcache::protocol::json::Json;
use ddbcache::protocol::response::{local, local_with_crc, request_id};
use ddbcache::protocol::{AMZ_JSON, Operation};
use ddbcache::schema::TableSchema;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::Duration;

const GET: &[u8] =
    br#"{"TableName":"Music","Key":{"Artist":{"S":"Nina Simone"},"Song":{"S":"Sinnerman"}}}"#;
const QUERY: &[u8] = br##"{"TableName":"Music","KeyConditionExpression":"#a = :a AND begins_with(#s, :p)","ExpressionAttributeNames":{"#a":"Artist","#s":"Song"},"ExpressionAttributeValues":{":a":{"S":"Nina Simone"},":p":{"S":"S"}},"Limit":20,"ScanIndexForward":false,"ProjectionExpression":"#a, #s, Year"}"##;

/// Entries in the pre-filled cache the lookups run against (a table bigger than the CPU caches,
/// as a real working set is).
const CACHED_ENTRIES: usize = 100_000;

/// The table of the realistic requests below: `Orders`, partition key `UserId`, sort key
/// `OrderId`, a GSI `ByStatus`.
fn orders_schema() -> TableSchema {
    TableSchema {
        partition_key: "UserId".into(),
        local_indexes: vec![],
        global_indexes: vec!["ByStatus".into()],
    }
}

/// A GetItem as an SDK sends it for the 1 KB item: key, projection of the ten attributes with
/// `#name` placeholders, and consumed capacity asked.
fn get_item_request(user: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "TableName": "Orders",
        "Key": {
            "UserId": {"S": format!("user#{user:06}")},
            "OrderId": {"S": "order#2024-05-17T10:22:31Z#000045"}
        },
        "ProjectionExpression": "#u, #o, #st, #tot, #cur, #ca, #li, #tg, #sa, #n",
        "ExpressionAttributeNames": {
            "#u": "UserId", "#o": "OrderId", "#st": "Status", "#tot": "Total",
            "#cur": "Currency", "#ca": "CreatedAt", "#li": "LineItems", "#tg": "Tags",
            "#sa": "ShippingAddress", "#n": "Notes"
        },
        "ReturnConsumedCapacity": "TOTAL"
    }))
    .unwrap()
}

/// The Query that returns the 20-item page: a sort-key range, a filter, a projection, `Limit`,
/// descending order, and (for `next_page`) the `ExclusiveStartKey` of the previous page.
fn query_request(user: usize, next_page: bool, index: Option<&str>) -> Vec<u8> {
    let mut req = json!({
        "TableName": "Orders",
        "KeyConditionExpression": "#u = :u AND #o BETWEEN :from AND :to",
        "FilterExpression": "#st IN (:s1, :s2) AND #tot > :min",
        "ProjectionExpression": "#u, #o, #st, #tot, #cur, #ca, #li, #tg, #sa, #n",
        "ExpressionAttributeNames": {
            "#u": "UserId", "#o": "OrderId", "#st": "Status", "#tot": "Total",
            "#cur": "Currency", "#ca": "CreatedAt", "#li": "LineItems", "#tg": "Tags",
            "#sa": "ShippingAddress", "#n": "Notes"
        },
        "ExpressionAttributeValues": {
            ":u": {"S": format!("user#{user:06}")},
            ":from": {"S": "order#2024-01-01"},
            ":to": {"S": "order#2024-12-31"},
            ":s1": {"S": "SHIPPED"},
            ":s2": {"S": "DELIVERED"},
            ":min": {"N": "10.00"}
        },
        "Limit": 20,
        "ScanIndexForward": false,
        "ReturnConsumedCapacity": "TOTAL"
    });
    if next_page {
        req["ExclusiveStartKey"] = json!({
            "UserId": {"S": format!("user#{user:06}")},
            "OrderId": {"S": "order#2024-09-03T08:11:52Z#000117"}
        });
    }
    if let Some(index) = index {
        req["IndexName"] = json!(index);
        req["KeyConditionExpression"] = json!("#st = :s1 AND #o BETWEEN :from AND :to");
        req["FilterExpression"] = json!("#tot > :min");
        req["ExpressionAttributeValues"]
            .as_object_mut()
            .unwrap()
            .remove(":s2");
    }
    serde_json::to_vec(&req).unwrap()
}

/// One order item in DynamoDB JSON: ten attributes (strings, numbers, a list of maps, a string
/// set, a map), padded with `Notes` to 1024 bytes of JSON.
fn item(user: usize, n: usize) -> Value {
    let mut item = json!({
        "UserId": {"S": format!("user#{user:06}")},
        "OrderId": {"S": format!("order#2024-05-17T10:22:31Z#{n:06}")},
        "Status": {"S": "SHIPPED"},
        "Total": {"N": "149.99"},
        "Currency": {"S": "EUR"},
        "CreatedAt": {"S": "2024-05-17T10:22:31.123Z"},
        "LineItems": {"L": [
            {"M": {"Sku": {"S": "SKU-4711-BLK-M"}, "Qty": {"N": "2"}, "Price": {"N": "39.90"}}},
            {"M": {"Sku": {"S": "SKU-0815-WHT-L"}, "Qty": {"N": "1"}, "Price": {"N": "59.00"}}},
            {"M": {"Sku": {"S": "SKU-1234-RED-S"}, "Qty": {"N": "1"}, "Price": {"N": "11.19"}}}
        ]},
        "Tags": {"SS": ["express", "gift", "newsletter"]},
        "ShippingAddress": {"M": {
            "Street": {"S": "221B Baker Street"}, "City": {"S": "London"},
            "Zip": {"S": "NW1 6XE"}, "Country": {"S": "GB"}
        }},
        "Notes": {"S": ""}
    });
    let len = serde_json::to_vec(&item).unwrap().len();
    item["Notes"] = json!({"S": "Leave at the door. ".repeat(64)[..1024 - len].to_string()});
    item
}

/// A stored GetItem answer: `{"Item": <1 KB item>}`.
fn get_item_body() -> Bytes {
    let body = serde_json::to_vec(&json!({ "Item": item(123, 45) })).unwrap();
    Bytes::from(body)
}

/// A stored Query answer: 20 items and the page's `LastEvaluatedKey` (~20 KB).
fn query_body() -> Bytes {
    let items: Vec<Value> = (0..20).map(|n| item(123, n)).collect();
    let body = serde_json::to_vec(&json!({
        "Count": 20,
        "Items": items,
        "LastEvaluatedKey": {
            "UserId": {"S": "user#000123"},
            "OrderId": {"S": "order#2024-05-17T10:22:31Z#000019"}
        },
        "ScannedCount": 20
    }))
    .unwrap();
    Bytes::from(body)
}

fn read_plan(op: Operation, body: &[u8], schema: &TableSchema) -> ReadPlan {
    let value = Json::parse(body).unwrap();
    match plan(op, value.as_object().unwrap(), |_| Some(schema)) {
        Plan::Read(read) => read,
        other => panic!("not a cacheable read: {other:?}"),
    }
}

fn bench_config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn decode_and_plan(c: &mut Criterion) {
    let music = TableSchema {
        partition_key: "Artist".into(),
        local_indexes: vec![],
        global_indexes: vec!["ByYear".into()],
    };
    let orders = orders_schema();
    let cases: [(&str, Operation, Vec<u8>, &TableSchema); 6] = [
        ("get_item", Operation::GetItem, GET.to_vec(), &music),
        ("query", Operation::Query, QUERY.to_vec(), &music),
        (
            "get_item_1k",
            Operation::GetItem,
            get_item_request(123),
            &orders,
        ),
        (
            "query_20/first_page",
            Operation::Query,
            query_request(123, false, None),
            &orders,
        ),
        (
            "query_20/next_page",
            Operation::Query,
            query_request(123, true, None),
            &orders,
        ),
        (
            "query_20/gsi",
            Operation::Query,
            query_request(123, false, Some("ByStatus")),
            &orders,
        ),
    ];
    for (name, op, body, schema) in &cases {
        let key = read_plan(*op, body, schema).key;
        eprintln!(
            "{name}: request {} B, canonical key {} B",
            body.len(),
            key.len()
        );
    }
    eprintln!(
        "stored bodies: GetItem {} B, Query {} B",
        get_item_body().len(),
        query_body().len()
    );
    let mut group = c.benchmark_group("decode_and_plan");
    for (name, op, body, schema) in &cases {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| {
                let value = Json::parse(black_box(body)).unwrap();
                let map = value.as_object().unwrap();
                let p = plan(*op, map, |_| Some(*schema));
                assert!(matches!(p, Plan::Read(_)));
                p
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decode");
    for (name, _, body, _) in &cases[2..4] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| b.iter(|| Json::parse(black_box(body)).unwrap()));
    }
    group.finish();

    let mut group = c.benchmark_group("read_key");
    for (name, op, body, _) in &cases[2..] {
        let value = Json::parse(body).unwrap();
        let map = value.as_object().unwrap();
        group.bench_function(*name, |b| {
            b.iter(|| read_key(op.as_str(), "Orders", black_box(map)))
        });
    }
    group.finish();

    // Remembered plans: 10,000 distinct requests of each kind, looked up in a shuffled order.
    const REMEMBERED: usize = 10_000;
    type Request = fn(usize) -> Vec<u8>;
    let kinds: [(&str, Operation, Request); 2] = [
        ("get_item_1k", Operation::GetItem, get_item_request),
        ("query_20/first_page", Operation::Query, |user| {
            query_request(user, false, None)
        }),
    ];
    let mut group = c.benchmark_group("plan_cache");
    for (name, op, request) in kinds {
        let remembered = Plans::new();
        let mut bodies: Vec<Vec<u8>> = (0..REMEMBERED).map(request).collect();
        for body in &bodies {
            let read = std::sync::Arc::new(read_plan(op, body, &orders));
            remembered.insert(op, body, 0, read);
        }
        fastrand::seed(11);
        fastrand::shuffle(&mut bodies);
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % bodies.len();
                remembered
                    .get(op, black_box(&bodies[i]), 0)
                    .expect("remembered")
            })
        });
    }
    group.finish();

    let g = Generations::new();
    let scope = Scope::Partition {
        table: "Music".into(),
        pk: r#"{"S":"Nina Simone"}"#.into(),
    };
    c.bench_function("generation_stamp", |b| {
        b.iter(|| g.stamp(black_box(&scope)))
    });
}

/// A cache pre-filled with [`CACHED_ENTRIES`] entries whose keys are the canonical keys of
/// `request(user)` for distinct users (all sharing one body, so the fill costs no memory), and
/// the plans of those requests, in a shuffled order for the lookups to walk through.
fn filled_cache(
    rt: &tokio::runtime::Runtime,
    op: Operation,
    request: impl Fn(usize) -> Vec<u8>,
    body: &Bytes,
) -> (LocalCache, Vec<ReadPlan>) {
    let schema = orders_schema();
    let cache = LocalCache::new(1 << 40, |_| {});
    let g = Generations::new();
    let mut plans: Vec<ReadPlan> = (0..CACHED_ENTRIES)
        .map(|user| read_plan(op, &request(user), &schema))
        .collect();
    rt.block_on(async {
        for read in &plans {
            let key = CacheKey {
                request: read.key.clone(),
                stamp: g.stamp(&read.scope),
            };
            cache.insert(key, entry(body.clone())).await;
        }
        assert_eq!(cache.usage().await.0, CACHED_ENTRIES as u64);
    });
    fastrand::seed(7);
    fastrand::shuffle(&mut plans);
    (cache, plans)
}

fn entry(body: Bytes) -> Entry {
    Entry::new(body, Duration::from_secs(24 * 3600), false)
}

fn hit_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let content_type = HeaderValue::from_static(AMZ_JSON);
    let g = Generations::new();
    type Request = fn(usize) -> Vec<u8>;
    let cases: [(&str, Operation, Request, Bytes); 2] = [
        (
            "get_item_1k",
            Operation::GetItem,
            get_item_request,
            get_item_body(),
        ),
        (
            "query_20k",
            Operation::Query,
            |user| query_request(user, false, None),
            query_body(),
        ),
    ];
    for (name, op, request, body) in cases {
        let (cache, plans) = filled_cache(&rt, op, request, &body);
        let keys: Vec<CacheKey> = plans
            .iter()
            .map(|read| CacheKey {
                request: read.key.clone(),
                stamp: g.stamp(&read.scope),
            })
            .collect();
        let mut group = c.benchmark_group(format!("hit/{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));

        // The moka lookup alone, by a ready `CacheKey`.
        let mut i = 0;
        group.bench_function("lookup", |b| {
            b.to_async(&rt).iter(|| {
                i = (i + 1) % keys.len();
                let key = &keys[i];
                let cache = &cache;
                async move { cache.get(key).await.expect("pre-filled") }
            })
        });

        // The same lookup repeating one key: what is left when the entry and moka's structures
        // are in the CPU caches (the difference to `lookup` is memory latency).
        let hot = keys[0].clone();
        group.bench_function("lookup_same_key", |b| {
            b.to_async(&rt).iter(|| {
                let (cache, hot) = (&cache, &hot);
                async move { cache.get(hot).await.expect("pre-filled") }
            })
        });

        // The hit response: fresh request id, CRC32 over the body, content type; and the same
        // with the CRC computed at admission (`Entry::crc`), as a hit without
        // `ReturnConsumedCapacity` sends the stored body.
        group.bench_function("response_local", |b| {
            b.iter(|| local(StatusCode::OK, &content_type, black_box(body.clone())))
        });
        let crc = crc32fast::hash(&body);
        group.bench_function("response_local_with_crc", |b| {
            b.iter(|| {
                local_with_crc(
                    StatusCode::OK,
                    &content_type,
                    black_box(body.clone()),
                    black_box(crc),
                )
            })
        });

        for capacity in [CapacityReport::None, CapacityReport::Total] {
            group.bench_function(
                BenchmarkId::new("replay_body", format!("{capacity:?}")),
                |b| b.iter(|| replay_body(black_box(&body), capacity, "Orders")),
            );
        }

        // All of a hit after planning, as `server` does it: stamp, `CacheKey` (the plan's
        // `Arc` key, cloned), lookup, then the stored body with its stored CRC, or
        // (capacity asked) the body with zero `ConsumedCapacity` and a CRC over it.
        for capacity in [CapacityReport::None, CapacityReport::Total] {
            let mut i = 0;
            group.bench_function(BenchmarkId::new("full", format!("{capacity:?}")), |b| {
                b.to_async(&rt).iter(|| {
                    i = (i + 1) % plans.len();
                    let read = &plans[i];
                    let (cache, g, content_type) = (&cache, &g, &content_type);
                    async move {
                        let key = CacheKey {
                            request: read.key.clone(),
                            stamp: g.stamp(&read.scope),
                        };
                        let entry = cache.get(&key).await.expect("pre-filled");
                        match capacity {
                            CapacityReport::None => local_with_crc(
                                StatusCode::OK,
                                content_type,
                                entry.body.clone(),
                                entry.crc,
                            ),
                            capacity => local(
                                StatusCode::OK,
                                content_type,
                                replay_body(&entry.body, capacity, &read.table),
                            ),
                        }
                    }
                })
            });
        }
        group.finish();
    }
}

fn parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("parts");
    for (name, body) in [("1k", get_item_body()), ("20k", query_body())] {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(BenchmarkId::new("crc32", name), |b| {
            b.iter(|| crc32fast::hash(black_box(&body)))
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("request_id", |b| b.iter(request_id));
    group.finish();
}

/// A GetItem signed by aws-sigv4 with the headers aws-sdk-dynamodb signs, verified by the proxy
/// (`auth/verify`) and checked against a key's policy (`auth/authorize`, body parse included).
fn auth(c: &mut Criterion) {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use ddbcache::auth::{ClientKey, KeyStore, Policy, Secret, authorize, verify};
    use std::time::SystemTime;

    let (id, secret) = ("AKIDBENCH", "bench/Secret+Key");
    let now = SystemTime::now();
    let body = get_item_request(7);
    let identity = aws_credential_types::Credentials::new(id, secret, None, None, "bench").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("dynamodb")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [
        ("host", "127.0.0.1:8000"),
        ("content-type", "application/x-amz-json-1.0"),
        ("content-length", "91"),
        ("x-amz-target", "DynamoDB_20120810.GetItem"),
        (
            "x-amz-user-agent",
            "aws-sdk-rust/1.3.0 api/dynamodb/1.136.0 os/linux lang/rust/1.95.0",
        ),
    ];
    let request = SignableRequest::new(
        "POST",
        "http://127.0.0.1:8000/",
        headers.iter().copied(),
        SignableBody::Bytes(&body),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let mut map = http::HeaderMap::new();
    for (k, v) in headers.iter().copied().chain(instructions.headers()) {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let policy = Policy::new(&["Orders*".into()], &["GetItem".into(), "Query".into()]).unwrap();
    let keys = KeyStore::new([ClientKey::new(id, Secret::new(secret), policy)]).unwrap();
    let skew = Duration::from_secs(900);
    verify("POST", "/", &map, &body, now, &keys, skew).unwrap();

    let mut group = c.benchmark_group("auth");
    group.bench_function("verify", |b| {
        b.iter(|| {
            verify(
                "POST",
                "/",
                black_box(&map),
                black_box(&body),
                now,
                &keys,
                skew,
            )
            .unwrap()
        })
    });
    let key = keys.get(id).unwrap();
    group.bench_function("authorize", |b| {
        b.iter(|| match Json::parse(black_box(&body)).unwrap() {
            Json::Object(req) => authorize(key, Operation::GetItem, &req).unwrap(),
            _ => unreachable!(),
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = bench_config();
    targets = decode_and_plan, hit_path, parts, auth
}
criterion_main!(benches);
