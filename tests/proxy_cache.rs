//! Cache semantics end to end through the AWS SDK: hits, invalidation by every write path,
//! index and scan entries, key canonicalisation, negative caching, bypasses and replay details.
//! Every scenario runs twice: over the embedded engine and over a dynoxide HTTP server.

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Get, Put, PutRequest, ReturnConsumedCapacity,
    ReturnValuesOnConditionCheckFailure, TransactGetItem, TransactWriteItem, Update, WriteRequest,
};
use common::{
    GSI, LSI, Metrics, TestProxy, UpstreamKind, attr, create_numeric_table, create_table, item,
    key, s,
};

const TABLE: &str = "cache_t";

type Item = HashMap<String, AttributeValue>;

/// One proxy, one SDK client and the fixture table.
struct Ctx {
    proxy: TestProxy,
    c: Client,
}

impl Ctx {
    async fn new(kind: UpstreamKind) -> Ctx {
        Self::new_with(kind, |_| {}).await
    }

    async fn new_with(kind: UpstreamKind, configure: impl FnOnce(&mut ddbcache::Config)) -> Ctx {
        let proxy = TestProxy::start_with(kind, configure).await;
        let c = proxy.client();
        create_table(&c, TABLE).await;
        Ctx { proxy, c }
    }

    async fn m(&self) -> Metrics {
        self.proxy.metrics().await
    }

    async fn put(&self, attrs: &[(&str, &str)]) {
        self.c
            .put_item()
            .table_name(TABLE)
            .set_item(Some(item(attrs)))
            .send()
            .await
            .expect("PutItem");
    }

    async fn get(&self, pk: &str, sk: &str) -> Option<Item> {
        self.c
            .get_item()
            .table_name(TABLE)
            .set_key(Some(key(pk, sk)))
            .send()
            .await
            .expect("GetItem")
            .item
    }

    /// Attribute `v` of (pk, sk), None when the item is absent.
    async fn get_v(&self, pk: &str, sk: &str) -> Option<String> {
        self.get(pk, sk)
            .await
            .map(|i| attr(&i, "v").expect("item has v"))
    }

    /// (sk, v) of every item of partition `pk`, in sort-key order.
    async fn query(&self, pk: &str) -> Vec<(String, String)> {
        let out = self
            .c
            .query()
            .table_name(TABLE)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(pk))
            .send()
            .await
            .expect("Query");
        sk_v(out.items())
    }

    async fn close(self) {
        self.proxy.shutdown().await;
    }
}

fn sk_v(items: &[Item]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|i| (attr(i, "sk").expect("sk"), attr(i, "v").unwrap_or_default()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Difference of a metric between two scrapes.
fn d(after: &Metrics, before: &Metrics, f: impl Fn(&Metrics) -> f64) -> f64 {
    f(after) - f(before)
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

async fn get_item_repeat_is_hit(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;

    let m0 = ctx.m().await;
    assert_eq!(ctx.get_v("p1", "a").await.as_deref(), Some("1"));
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("GetItem")),
        1.0,
        "first GetItem goes upstream"
    );
    assert_eq!(
        d(&m1, &m0, |m| m.item_misses(TABLE)),
        1.0,
        "first GetItem is a miss"
    );
    assert_eq!(d(&m1, &m0, |m| m.requests("GetItem", "miss")), 1.0);

    assert_eq!(ctx.get_v("p1", "a").await.as_deref(), Some("1"));
    let m2 = ctx.m().await;
    assert_eq!(
        d(&m2, &m1, |m| m.upstream("GetItem")),
        0.0,
        "second GetItem must not reach upstream"
    );
    assert_eq!(
        d(&m2, &m1, |m| m.item_hits(TABLE)),
        1.0,
        "second GetItem is a hit"
    );
    assert_eq!(d(&m2, &m1, |m| m.requests("GetItem", "hit")), 1.0);
    ctx.close().await;
}

async fn query_repeat_is_hit(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;
    ctx.put(&[("pk", "p1"), ("sk", "b"), ("v", "2")]).await;

    let m0 = ctx.m().await;
    assert_eq!(ctx.query("p1").await, pairs(&[("a", "1"), ("b", "2")]));
    let m1 = ctx.m().await;
    assert_eq!(d(&m1, &m0, |m| m.upstream("Query")), 1.0);
    assert_eq!(d(&m1, &m0, |m| m.query_misses(TABLE)), 1.0);

    assert_eq!(ctx.query("p1").await, pairs(&[("a", "1"), ("b", "2")]));
    let m2 = ctx.m().await;
    assert_eq!(
        d(&m2, &m1, |m| m.upstream("Query")),
        0.0,
        "second Query must not reach upstream"
    );
    assert_eq!(d(&m2, &m1, |m| m.query_hits(TABLE)), 1.0);
    assert_eq!(d(&m2, &m1, |m| m.requests("Query", "hit")), 1.0);
    ctx.close().await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteOp {
    Put,
    Update,
    Delete,
    BatchWrite,
    TransactWrite,
}

/// Items p1/a, p1/b, p2/a, p3/a (v=1) all cached (items and partition queries); `op` writes
/// p1/b (v=2, or deletes it), batch and transaction writes also p3/a (v=2). Then: p2 is still
/// served from cache; every item and query of the written partitions comes from upstream with the
/// new values.
async fn write_invalidates_partition(kind: UpstreamKind, op: WriteOp) {
    let ctx = Ctx::new(kind).await;
    for (pk, sk) in [("p1", "a"), ("p1", "b"), ("p2", "a"), ("p3", "a")] {
        ctx.put(&[("pk", pk), ("sk", sk), ("v", "1")]).await;
    }
    // Warm, then prove everything is cached.
    for _ in 0..2 {
        for (pk, sk) in [("p1", "a"), ("p1", "b"), ("p2", "a"), ("p3", "a")] {
            assert_eq!(ctx.get_v(pk, sk).await.as_deref(), Some("1"));
        }
        for pk in ["p1", "p2", "p3"] {
            ctx.query(pk).await;
        }
    }
    let m0 = ctx.m().await;
    for (pk, sk) in [("p1", "a"), ("p1", "b"), ("p2", "a"), ("p3", "a")] {
        assert_eq!(ctx.get_v(pk, sk).await.as_deref(), Some("1"));
    }
    for pk in ["p1", "p2", "p3"] {
        ctx.query(pk).await;
    }
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("GetItem")),
        0.0,
        "warm GetItems are hits"
    );
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("Query")),
        0.0,
        "warm Queries are hits"
    );
    assert_eq!(d(&m1, &m0, |m| m.item_hits(TABLE)), 4.0);
    assert_eq!(d(&m1, &m0, |m| m.query_hits(TABLE)), 3.0);

    let multi = matches!(op, WriteOp::BatchWrite | WriteOp::TransactWrite);
    match op {
        WriteOp::Put => ctx.put(&[("pk", "p1"), ("sk", "b"), ("v", "2")]).await,
        WriteOp::Update => {
            ctx.c
                .update_item()
                .table_name(TABLE)
                .set_key(Some(key("p1", "b")))
                .update_expression("SET v = :v")
                .expression_attribute_values(":v", s("2"))
                .send()
                .await
                .expect("UpdateItem");
        }
        WriteOp::Delete => {
            ctx.c
                .delete_item()
                .table_name(TABLE)
                .set_key(Some(key("p1", "b")))
                .send()
                .await
                .expect("DeleteItem");
        }
        WriteOp::BatchWrite => {
            let reqs = [("p1", "b"), ("p3", "a")]
                .iter()
                .map(|(pk, sk)| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item(&[("pk", pk), ("sk", sk), ("v", "2")])))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
                .collect();
            let out = ctx
                .c
                .batch_write_item()
                .request_items(TABLE, reqs)
                .send()
                .await
                .expect("BatchWriteItem");
            assert!(
                out.unprocessed_items().is_none_or(|u| u.is_empty()),
                "unprocessed items: {:?}",
                out.unprocessed_items()
            );
        }
        WriteOp::TransactWrite => {
            ctx.c
                .transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .update(
                            Update::builder()
                                .table_name(TABLE)
                                .set_key(Some(key("p1", "b")))
                                .update_expression("SET v = :v")
                                .expression_attribute_values(":v", s("2"))
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .transact_items(
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(TABLE)
                                .set_item(Some(item(&[("pk", "p3"), ("sk", "a"), ("v", "2")])))
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .send()
                .await
                .expect("TransactWriteItems");
        }
    }

    // The untouched partition is still served from cache.
    let m2 = ctx.m().await;
    assert_eq!(ctx.get_v("p2", "a").await.as_deref(), Some("1"));
    assert_eq!(ctx.query("p2").await, pairs(&[("a", "1")]));
    if !multi {
        assert_eq!(ctx.get_v("p3", "a").await.as_deref(), Some("1"));
        assert_eq!(ctx.query("p3").await, pairs(&[("a", "1")]));
    }
    let m3 = ctx.m().await;
    assert_eq!(
        d(&m3, &m2, |m| m.upstream("GetItem")),
        0.0,
        "{op:?} to p1 must not invalidate items of other partitions"
    );
    assert_eq!(
        d(&m3, &m2, |m| m.upstream("Query")),
        0.0,
        "{op:?} to p1 must not invalidate queries of other partitions"
    );

    // The written item is fresh.
    let want_b = if op == WriteOp::Delete {
        None
    } else {
        Some("2")
    };
    assert_eq!(
        ctx.get_v("p1", "b").await.as_deref(),
        want_b,
        "{op:?}: p1/b after the write"
    );
    let m4 = ctx.m().await;
    assert_eq!(
        d(&m4, &m3, |m| m.upstream("GetItem")),
        1.0,
        "{op:?}: p1/b must be refetched"
    );

    // Its partition's other items and its queries are invalidated.
    assert_eq!(ctx.get_v("p1", "a").await.as_deref(), Some("1"));
    let m5 = ctx.m().await;
    assert_eq!(
        d(&m5, &m4, |m| m.upstream("GetItem")),
        1.0,
        "{op:?}: p1/a shares the written partition and must be invalidated"
    );
    let want_q = if op == WriteOp::Delete {
        pairs(&[("a", "1")])
    } else {
        pairs(&[("a", "1"), ("b", "2")])
    };
    assert_eq!(
        ctx.query("p1").await,
        want_q,
        "{op:?}: partition query after the write"
    );
    let m6 = ctx.m().await;
    assert_eq!(
        d(&m6, &m5, |m| m.upstream("Query")),
        1.0,
        "{op:?}: p1 query must be refetched"
    );

    if multi {
        assert_eq!(
            ctx.get_v("p3", "a").await.as_deref(),
            Some("2"),
            "{op:?}: second partition"
        );
        assert_eq!(
            ctx.query("p3").await,
            pairs(&[("a", "2")]),
            "{op:?}: second partition query"
        );
        let m7 = ctx.m().await;
        assert_eq!(d(&m7, &m6, |m| m.upstream("GetItem")), 1.0);
        assert_eq!(d(&m7, &m6, |m| m.upstream("Query")), 1.0);
    }

    // And the fresh answers are cached again.
    let m8 = ctx.m().await;
    assert_eq!(ctx.get_v("p1", "b").await.as_deref(), want_b);
    assert_eq!(ctx.query("p1").await, want_q);
    let m9 = ctx.m().await;
    assert_eq!(
        d(&m9, &m8, |m| m.upstream("GetItem")),
        0.0,
        "{op:?}: refetched item is cached again"
    );
    assert_eq!(
        d(&m9, &m8, |m| m.upstream("Query")),
        0.0,
        "{op:?}: refetched query is cached again"
    );
    ctx.close().await;
}

async fn put_item_invalidates_partition(kind: UpstreamKind) {
    write_invalidates_partition(kind, WriteOp::Put).await
}

async fn update_item_invalidates_partition(kind: UpstreamKind) {
    write_invalidates_partition(kind, WriteOp::Update).await
}

async fn delete_item_invalidates_partition(kind: UpstreamKind) {
    write_invalidates_partition(kind, WriteOp::Delete).await
}

async fn batch_write_item_invalidates_partitions(kind: UpstreamKind) {
    write_invalidates_partition(kind, WriteOp::BatchWrite).await
}

async fn transact_write_items_invalidates_partitions(kind: UpstreamKind) {
    write_invalidates_partition(kind, WriteOp::TransactWrite).await
}

async fn write_to_other_partition_keeps_entries(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;
    ctx.put(&[("pk", "p2"), ("sk", "a"), ("v", "1")]).await;
    ctx.get_v("p1", "a").await;
    ctx.query("p1").await;

    for i in 0..5 {
        let v = format!("{}", i + 2);
        ctx.put(&[("pk", "p2"), ("sk", "a"), ("v", &v)]).await;
        ctx.put(&[("pk", "p2"), ("sk", &format!("n{i}")), ("v", &v)])
            .await;
    }

    let m0 = ctx.m().await;
    assert_eq!(ctx.get_v("p1", "a").await.as_deref(), Some("1"));
    assert_eq!(ctx.query("p1").await, pairs(&[("a", "1")]));
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("GetItem")),
        0.0,
        "p1 item must still be cached"
    );
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("Query")),
        0.0,
        "p1 query must still be cached"
    );
    assert_eq!(d(&m1, &m0, |m| m.item_hits(TABLE)), 1.0);
    assert_eq!(d(&m1, &m0, |m| m.query_hits(TABLE)), 1.0);
    ctx.close().await;
}

async fn lsi_query(ctx: &Ctx, pk: &str) -> Vec<String> {
    let out = ctx
        .c
        .query()
        .table_name(TABLE)
        .index_name(LSI)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s(pk))
        .send()
        .await
        .expect("LSI Query");
    out.items().iter().map(|i| attr(i, "sk").unwrap()).collect()
}

async fn lsi_query_invalidated_by_partition_write(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("lsk", "x1"), ("v", "1")])
        .await;
    ctx.put(&[("pk", "p1"), ("sk", "b"), ("lsk", "x2"), ("v", "1")])
        .await;
    ctx.put(&[("pk", "p2"), ("sk", "a"), ("lsk", "x1"), ("v", "1")])
        .await;

    let m0 = ctx.m().await;
    assert_eq!(lsi_query(&ctx, "p1").await, ["a", "b"]);
    assert_eq!(lsi_query(&ctx, "p1").await, ["a", "b"]);
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("Query")),
        1.0,
        "repeated LSI query is a hit"
    );
    assert_eq!(d(&m1, &m0, |m| m.query_hits(TABLE)), 1.0);

    // Another partition: still cached.
    ctx.put(&[("pk", "p2"), ("sk", "a"), ("lsk", "x9"), ("v", "2")])
        .await;
    assert_eq!(lsi_query(&ctx, "p1").await, ["a", "b"]);
    let m2 = ctx.m().await;
    assert_eq!(
        d(&m2, &m1, |m| m.upstream("Query")),
        0.0,
        "write to p2 must not invalidate LSI query on p1"
    );

    // Its own partition: reordered by the LSI sort key, fetched again.
    ctx.c
        .update_item()
        .table_name(TABLE)
        .set_key(Some(key("p1", "a")))
        .update_expression("SET lsk = :l")
        .expression_attribute_values(":l", s("x3"))
        .send()
        .await
        .expect("UpdateItem");
    assert_eq!(
        lsi_query(&ctx, "p1").await,
        ["b", "a"],
        "LSI query must see the write"
    );
    let m3 = ctx.m().await;
    assert_eq!(d(&m3, &m2, |m| m.upstream("Query")), 1.0);
    ctx.close().await;
}

async fn gsi_query(c: &Client, g: &str) -> Vec<String> {
    let out = c
        .query()
        .table_name(TABLE)
        .index_name(GSI)
        .key_condition_expression("gpk = :g")
        .expression_attribute_values(":g", s(g))
        .send()
        .await
        .expect("GSI Query");
    let mut pks: Vec<String> = out.items().iter().map(|i| attr(i, "pk").unwrap()).collect();
    pks.sort();
    pks
}

async fn gsi_query_invalidated_by_any_table_write(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    create_table(&ctx.c, "other_t").await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("gpk", "g1"), ("v", "1")])
        .await;
    ctx.put(&[("pk", "p2"), ("sk", "a"), ("gpk", "g1"), ("v", "1")])
        .await;
    ctx.put(&[("pk", "p3"), ("sk", "a"), ("gpk", "g2"), ("v", "1")])
        .await;

    let m0 = ctx.m().await;
    assert_eq!(gsi_query(&ctx.c, "g1").await, ["p1", "p2"]);
    assert_eq!(gsi_query(&ctx.c, "g1").await, ["p1", "p2"]);
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("Query")),
        1.0,
        "repeated GSI query is a hit"
    );
    assert_eq!(d(&m1, &m0, |m| m.query_hits(TABLE)), 1.0);

    // A write to another table leaves it cached.
    ctx.c
        .put_item()
        .table_name("other_t")
        .set_item(Some(item(&[("pk", "p1"), ("sk", "a"), ("gpk", "g1")])))
        .send()
        .await
        .expect("PutItem other_t");
    assert_eq!(gsi_query(&ctx.c, "g1").await, ["p1", "p2"]);
    let m2 = ctx.m().await;
    assert_eq!(
        d(&m2, &m1, |m| m.upstream("Query")),
        0.0,
        "a write to another table must not invalidate"
    );

    // A write to any partition of the table (even one outside the result) invalidates it.
    ctx.put(&[("pk", "p3"), ("sk", "a"), ("gpk", "g2"), ("v", "2")])
        .await;
    assert_eq!(gsi_query(&ctx.c, "g1").await, ["p1", "p2"]);
    let m3 = ctx.m().await;
    assert_eq!(
        d(&m3, &m2, |m| m.upstream("Query")),
        1.0,
        "any table write invalidates GSI queries"
    );

    // A write that changes the result is visible.
    ctx.put(&[("pk", "p4"), ("sk", "a"), ("gpk", "g1"), ("v", "1")])
        .await;
    assert_eq!(gsi_query(&ctx.c, "g1").await, ["p1", "p2", "p4"]);
    ctx.c
        .delete_item()
        .table_name(TABLE)
        .set_key(Some(key("p1", "a")))
        .send()
        .await
        .expect("DeleteItem");
    assert_eq!(gsi_query(&ctx.c, "g1").await, ["p2", "p4"]);
    ctx.close().await;
}

async fn scan_pks(c: &Client) -> Vec<String> {
    let out = c.scan().table_name(TABLE).send().await.expect("Scan");
    let mut pks: Vec<String> = out
        .items()
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                attr(i, "pk").unwrap(),
                attr(i, "v").unwrap_or_default()
            )
        })
        .collect();
    pks.sort();
    pks
}

async fn scan_invalidated_by_any_table_write(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;
    ctx.put(&[("pk", "p2"), ("sk", "a"), ("v", "1")]).await;

    let m0 = ctx.m().await;
    assert_eq!(scan_pks(&ctx.c).await, ["p1/1", "p2/1"]);
    assert_eq!(scan_pks(&ctx.c).await, ["p1/1", "p2/1"]);
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("Scan")),
        1.0,
        "repeated Scan is a hit"
    );
    assert_eq!(
        d(&m1, &m0, |m| m.query_hits(TABLE)),
        1.0,
        "Scan counts as query cache"
    );

    ctx.c
        .update_item()
        .table_name(TABLE)
        .set_key(Some(key("p2", "a")))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", s("2"))
        .send()
        .await
        .expect("UpdateItem");
    assert_eq!(
        scan_pks(&ctx.c).await,
        ["p1/1", "p2/2"],
        "Scan must see the write"
    );
    let m2 = ctx.m().await;
    assert_eq!(d(&m2, &m1, |m| m.upstream("Scan")), 1.0);

    ctx.put(&[("pk", "p3"), ("sk", "a"), ("v", "1")]).await;
    assert_eq!(
        scan_pks(&ctx.c).await,
        ["p1/1", "p2/2", "p3/1"],
        "Scan must see a new partition"
    );
    ctx.close().await;
}

/// One page of partition p1: (sort keys, LastEvaluatedKey).
async fn page(
    c: &Client,
    limit: i32,
    forward: bool,
    start: Option<Item>,
) -> (Vec<String>, Option<Item>) {
    let out = c
        .query()
        .table_name(TABLE)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("p1"))
        .limit(limit)
        .scan_index_forward(forward)
        .set_exclusive_start_key(start)
        .send()
        .await
        .expect("Query page");
    let sks = out.items().iter().map(|i| attr(i, "sk").unwrap()).collect();
    (sks, out.last_evaluated_key().cloned())
}

async fn all_pages(c: &Client, limit: i32) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut start = None;
    loop {
        let (sks, lek) = page(c, limit, true, start).await;
        pages.push(sks);
        match lek {
            Some(k) => start = Some(k),
            None => return pages,
        }
        assert!(pages.len() < 10, "pagination does not end: {pages:?}");
    }
}

async fn pagination_pages_are_distinct_entries(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    for sk in ["s1", "s2", "s3", "s4", "s5"] {
        ctx.put(&[("pk", "p1"), ("sk", sk), ("v", "1")]).await;
    }
    let m0 = ctx.m().await;
    let first = all_pages(&ctx.c, 2).await;
    let flat: Vec<String> = first.iter().flatten().cloned().collect();
    assert_eq!(flat, ["s1", "s2", "s3", "s4", "s5"], "pages: {first:?}");
    assert_eq!(first[0], ["s1", "s2"]);
    assert_eq!(first[1], ["s3", "s4"]);
    let n = first.len() as f64;
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("Query")),
        n,
        "each page is its own miss"
    );

    let second = all_pages(&ctx.c, 2).await;
    assert_eq!(second, first, "cached pages must be the same pages");
    let m2 = ctx.m().await;
    assert_eq!(
        d(&m2, &m1, |m| m.upstream("Query")),
        0.0,
        "every page is cached"
    );
    assert_eq!(d(&m2, &m1, |m| m.query_hits(TABLE)), n);

    // Other Limit and other direction are other entries.
    let (three, _) = page(&ctx.c, 3, true, None).await;
    assert_eq!(three, ["s1", "s2", "s3"]);
    let (back, lek) = page(&ctx.c, 2, false, None).await;
    assert_eq!(back, ["s5", "s4"]);
    let (back2, _) = page(&ctx.c, 2, false, lek).await;
    assert_eq!(back2, ["s3", "s2"]);
    let m3 = ctx.m().await;
    assert_eq!(
        d(&m3, &m2, |m| m.upstream("Query")),
        3.0,
        "Limit/ScanIndexForward/ExclusiveStartKey split entries"
    );
    ctx.close().await;
}

async fn get_projected(c: &Client, projection: Option<&str>) -> Vec<String> {
    let out = c
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key("p1", "a")))
        .set_projection_expression(projection.map(str::to_string))
        .send()
        .await
        .expect("GetItem");
    let mut names: Vec<String> = out.item.expect("item").into_keys().collect();
    names.sort();
    names
}

async fn projections_are_distinct_entries(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[
        ("pk", "p1"),
        ("sk", "a"),
        ("v", "1"),
        ("w", "2"),
        ("x", "3"),
    ])
    .await;
    let m0 = ctx.m().await;
    assert_eq!(get_projected(&ctx.c, Some("v")).await, ["v"]);
    assert_eq!(get_projected(&ctx.c, Some("w")).await, ["w"]);
    assert_eq!(get_projected(&ctx.c, Some("v, w")).await, ["v", "w"]);
    assert_eq!(
        get_projected(&ctx.c, None).await,
        ["pk", "sk", "v", "w", "x"]
    );
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("GetItem")),
        4.0,
        "each projection is its own entry"
    );

    assert_eq!(get_projected(&ctx.c, Some("v")).await, ["v"]);
    assert_eq!(get_projected(&ctx.c, Some("w")).await, ["w"]);
    assert_eq!(get_projected(&ctx.c, Some("v, w")).await, ["v", "w"]);
    assert_eq!(
        get_projected(&ctx.c, None).await,
        ["pk", "sk", "v", "w", "x"]
    );
    let m2 = ctx.m().await;
    assert_eq!(
        d(&m2, &m1, |m| m.upstream("GetItem")),
        0.0,
        "every projection is cached"
    );
    assert_eq!(d(&m2, &m1, |m| m.item_hits(TABLE)), 4.0);
    ctx.close().await;
}

async fn placeholder_names_share_entry(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;
    ctx.put(&[("pk", "p2"), ("sk", "a"), ("v", "2")]).await;

    let q = |name: &'static str, val: &'static str, pk: &'static str| {
        ctx.c
            .query()
            .table_name(TABLE)
            .key_condition_expression(format!("{name} = {val}"))
            .expression_attribute_names(name, "pk")
            .expression_attribute_values(val, s(pk))
            .send()
    };
    let m0 = ctx.m().await;
    let a = q("#a", ":x", "p1").await.expect("Query #a");
    let b = q("#b", ":y", "p1").await.expect("Query #b");
    assert_eq!(sk_v(a.items()), pairs(&[("a", "1")]));
    assert_eq!(sk_v(b.items()), pairs(&[("a", "1")]));
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("Query")),
        1.0,
        "renamed placeholders must share one entry"
    );
    assert_eq!(d(&m1, &m0, |m| m.query_hits(TABLE)), 1.0);

    // Same names, other value: another entry.
    let c2 = q("#b", ":y", "p2").await.expect("Query p2");
    assert_eq!(sk_v(c2.items()), pairs(&[("a", "2")]));
    let m2 = ctx.m().await;
    assert_eq!(
        d(&m2, &m1, |m| m.upstream("Query")),
        1.0,
        "a different value is a different entry"
    );

    // Projection placeholders on GetItem.
    let g = |name: &'static str| {
        ctx.c
            .get_item()
            .table_name(TABLE)
            .set_key(Some(key("p1", "a")))
            .projection_expression(name)
            .expression_attribute_names(name, "v")
            .send()
    };
    let ga = g("#p").await.expect("GetItem #p").item.expect("item");
    let gb = g("#q").await.expect("GetItem #q").item.expect("item");
    assert_eq!(ga, item(&[("v", "1")]));
    assert_eq!(gb, item(&[("v", "1")]));
    let m3 = ctx.m().await;
    assert_eq!(
        d(&m3, &m2, |m| m.upstream("GetItem")),
        1.0,
        "renamed projection placeholders share one entry"
    );
    ctx.close().await;
}

async fn negative_result_cached_until_put(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    let m0 = ctx.m().await;
    assert_eq!(ctx.get("p1", "missing").await, None);
    let m1 = ctx.m().await;
    assert_eq!(d(&m1, &m0, |m| m.upstream("GetItem")), 1.0);

    assert_eq!(
        ctx.get("p1", "missing").await,
        None,
        "negative hit has no item"
    );
    let m2 = ctx.m().await;
    assert_eq!(
        d(&m2, &m1, |m| m.upstream("GetItem")),
        0.0,
        "absent item must be cached"
    );
    assert_eq!(d(&m2, &m1, |m| m.requests("GetItem", "negative_hit")), 1.0);

    ctx.put(&[("pk", "p1"), ("sk", "missing"), ("v", "7")])
        .await;
    assert_eq!(
        ctx.get_v("p1", "missing").await.as_deref(),
        Some("7"),
        "put must end the negative entry"
    );
    let m3 = ctx.m().await;
    assert_eq!(d(&m3, &m2, |m| m.upstream("GetItem")), 1.0);
    ctx.close().await;
}

async fn consistent_read_bypasses_cache(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;
    // Warm the eventually consistent entry too: a consistent read must not be served from it.
    ctx.get_v("p1", "a").await;

    let m0 = ctx.m().await;
    for _ in 0..3 {
        let out = ctx
            .c
            .get_item()
            .table_name(TABLE)
            .set_key(Some(key("p1", "a")))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem consistent");
        assert_eq!(attr(out.item().expect("item"), "v").as_deref(), Some("1"));
    }
    for _ in 0..2 {
        let out = ctx
            .c
            .query()
            .table_name(TABLE)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("p1"))
            .consistent_read(true)
            .send()
            .await
            .expect("Query consistent");
        assert_eq!(sk_v(out.items()), pairs(&[("a", "1")]));
    }
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("GetItem")),
        3.0,
        "every consistent GetItem goes upstream"
    );
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("Query")),
        2.0,
        "every consistent Query goes upstream"
    );
    assert_eq!(d(&m1, &m0, |m| m.item_hits(TABLE)), 0.0);
    assert_eq!(d(&m1, &m0, |m| m.query_hits(TABLE)), 0.0);
    assert_eq!(d(&m1, &m0, |m| m.requests("GetItem", "bypass")), 3.0);
    assert_eq!(d(&m1, &m0, |m| m.requests("Query", "bypass")), 2.0);
    ctx.close().await;
}

async fn transact_get_items_bypasses_cache(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;
    ctx.get_v("p1", "a").await;
    let m0 = ctx.m().await;
    for _ in 0..2 {
        let out = ctx
            .c
            .transact_get_items()
            .transact_items(
                TransactGetItem::builder()
                    .get(
                        Get::builder()
                            .table_name(TABLE)
                            .set_key(Some(key("p1", "a")))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("TransactGetItems");
        let got = out.responses()[0].item().expect("item");
        assert_eq!(attr(got, "v").as_deref(), Some("1"));
    }
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("TransactGetItems")),
        2.0,
        "TransactGetItems is never cached"
    );
    assert_eq!(d(&m1, &m0, |m| m.item_hits(TABLE)), 0.0);
    ctx.close().await;
}

async fn partiql_execute_statement_update_invalidates(kind: UpstreamKind) {
    partiql_write_invalidates(kind, async |c: &Client| {
        c.execute_statement()
            .statement(partiql_update())
            .send()
            .await
            .expect("ExecuteStatement UPDATE");
    })
    .await
}

/// Item p1/a (v=1) cached along with its partition query; `write` changes v to 5 by PartiQL.
async fn partiql_write_invalidates(kind: UpstreamKind, write: impl AsyncFnOnce(&Client)) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;
    for _ in 0..2 {
        assert_eq!(ctx.get_v("p1", "a").await.as_deref(), Some("1"));
        assert_eq!(ctx.query("p1").await, pairs(&[("a", "1")]));
    }
    write(&ctx.c).await;
    let m0 = ctx.m().await;
    assert_eq!(
        ctx.get_v("p1", "a").await.as_deref(),
        Some("5"),
        "GetItem after the PartiQL write"
    );
    assert_eq!(
        ctx.query("p1").await,
        pairs(&[("a", "5")]),
        "Query after the PartiQL write"
    );
    let m1 = ctx.m().await;
    assert_eq!(d(&m1, &m0, |m| m.upstream("GetItem")), 1.0);
    assert_eq!(d(&m1, &m0, |m| m.upstream("Query")), 1.0);
    ctx.close().await;
}

fn partiql_update() -> String {
    format!("UPDATE \"{TABLE}\" SET v = '5' WHERE pk = 'p1' AND sk = 'a'")
}

async fn partiql_batch_execute_statement_invalidates(kind: UpstreamKind) {
    partiql_write_invalidates(kind, async |c: &Client| {
        let out = c
            .batch_execute_statement()
            .statements(
                aws_sdk_dynamodb::types::BatchStatementRequest::builder()
                    .statement(partiql_update())
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("BatchExecuteStatement");
        let errors: Vec<_> = out.responses().iter().filter_map(|r| r.error()).collect();
        assert!(
            errors.is_empty(),
            "BatchExecuteStatement errors: {errors:?}"
        );
    })
    .await
}

async fn partiql_execute_transaction_invalidates(kind: UpstreamKind) {
    partiql_write_invalidates(kind, async |c: &Client| {
        c.execute_transaction()
            .transact_statements(
                aws_sdk_dynamodb::types::ParameterizedStatement::builder()
                    .statement(format!(
                        "UPDATE \"{TABLE}\" SET v = ? WHERE pk = ? AND sk = ?"
                    ))
                    .parameters(s("5"))
                    .parameters(s("p1"))
                    .parameters(s("a"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("ExecuteTransaction");
    })
    .await
}

/// A number partition key written as "1.00" is the partition read as "1" and "10E-1".
async fn numeric_key_spellings_share_a_partition(kind: UpstreamKind) {
    const NUM: &str = "num_t";
    let ctx = Ctx::new(kind).await;
    create_numeric_table(&ctx.c, NUM).await;
    let n = |v: &str| AttributeValue::N(v.to_string());
    ctx.c
        .put_item()
        .table_name(NUM)
        .item("pk", n("1"))
        .item("v", s("old"))
        .send()
        .await
        .expect("PutItem");
    let get = |spelling: &'static str| {
        ctx.c
            .get_item()
            .table_name(NUM)
            .key("pk", n(spelling))
            .send()
    };
    let query = || {
        ctx.c
            .query()
            .table_name(NUM)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", n("10E-1"))
            .send()
    };
    for _ in 0..2 {
        let g = get("1").await.expect("GetItem");
        assert_eq!(attr(g.item().expect("item"), "v").as_deref(), Some("old"));
        let q = query().await.expect("Query");
        assert_eq!(attr(&q.items()[0], "v").as_deref(), Some("old"));
    }
    let m0 = ctx.m().await;
    get("1").await.expect("GetItem");
    query().await.expect("Query");
    let m1 = ctx.m().await;
    assert_eq!(d(&m1, &m0, |m| m.upstream("GetItem")), 0.0, "cached");
    assert_eq!(d(&m1, &m0, |m| m.upstream("Query")), 0.0, "cached");

    ctx.c
        .update_item()
        .table_name(NUM)
        .key("pk", n("1.00"))
        .update_expression("SET v = :v")
        .expression_attribute_values(":v", s("new"))
        .send()
        .await
        .expect("UpdateItem");
    let g = get("1").await.expect("GetItem");
    assert_eq!(
        attr(g.item().expect("item"), "v").as_deref(),
        Some("new"),
        "a write keyed 1.00 must invalidate reads keyed 1"
    );
    let q = query().await.expect("Query");
    assert_eq!(
        attr(&q.items()[0], "v").as_deref(),
        Some("new"),
        "a write keyed 1.00 must invalidate queries on 10E-1"
    );
    ctx.close().await;
}

/// TTLs: a per-table override expires entries of that table; other tables keep the default.
async fn ttl_per_table_override_expires_entries(kind: UpstreamKind) {
    let short = std::time::Duration::from_millis(300);
    let ctx = Ctx::new_with(kind, |c| {
        c.cache.tables.insert(
            TABLE.to_string(),
            ddbcache::config::TableTtlConfig {
                item: Some(short),
                query: Some(short),
                negative: Some(short),
            },
        );
    })
    .await;
    create_table(&ctx.c, "long_ttl_t").await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;
    ctx.c
        .put_item()
        .table_name("long_ttl_t")
        .set_item(Some(item(&[("pk", "p1"), ("sk", "a"), ("v", "1")])))
        .send()
        .await
        .expect("PutItem long_ttl_t");
    let get_long = || {
        ctx.c
            .get_item()
            .table_name("long_ttl_t")
            .set_key(Some(key("p1", "a")))
            .send()
    };

    let m0 = ctx.m().await;
    for _ in 0..2 {
        assert_eq!(ctx.get_v("p1", "a").await.as_deref(), Some("1"));
        ctx.query("p1").await;
        assert_eq!(ctx.get("p1", "none").await, None);
        get_long().await.expect("GetItem long_ttl_t");
    }
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("GetItem")),
        3.0,
        "second round is all hits"
    );
    assert_eq!(d(&m1, &m0, |m| m.upstream("Query")), 1.0);

    tokio::time::sleep(short * 3).await;
    assert_eq!(ctx.get_v("p1", "a").await.as_deref(), Some("1"));
    let m2 = ctx.m().await;
    assert_eq!(
        d(&m2, &m1, |m| m.upstream("GetItem")),
        1.0,
        "item entry must expire after its TTL"
    );
    ctx.query("p1").await;
    let m3 = ctx.m().await;
    assert_eq!(
        d(&m3, &m2, |m| m.upstream("Query")),
        1.0,
        "query entry must expire after its TTL"
    );
    assert_eq!(ctx.get("p1", "none").await, None);
    let m4 = ctx.m().await;
    assert_eq!(
        d(&m4, &m3, |m| m.upstream("GetItem")),
        1.0,
        "negative entry must expire after its TTL"
    );
    get_long().await.expect("GetItem long_ttl_t");
    let m5 = ctx.m().await;
    assert_eq!(
        d(&m5, &m4, |m| m.upstream("GetItem")),
        0.0,
        "the other table keeps the default TTL"
    );
    ctx.close().await;
}

async fn failed_conditional_write_returns_old_item_and_invalidates(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;
    for _ in 0..2 {
        assert_eq!(ctx.get_v("p1", "a").await.as_deref(), Some("1"));
        assert_eq!(ctx.query("p1").await, pairs(&[("a", "1")]));
    }
    let c = ctx.proxy.client_no_retry();
    let err = c
        .put_item()
        .table_name(TABLE)
        .set_item(Some(item(&[("pk", "p1"), ("sk", "a"), ("v", "99")])))
        .condition_expression("attribute_not_exists(pk)")
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .expect_err("conditional put must fail");
    match err.into_service_error() {
        PutItemError::ConditionalCheckFailedException(e) => {
            assert_eq!(
                e.item(),
                Some(&item(&[("pk", "p1"), ("sk", "a"), ("v", "1")])),
                "ALL_OLD item must reach the client"
            );
        }
        other => panic!("expected ConditionalCheckFailedException, got {other:?}"),
    }

    let m0 = ctx.m().await;
    assert_eq!(ctx.get_v("p1", "a").await.as_deref(), Some("1"));
    assert_eq!(ctx.query("p1").await, pairs(&[("a", "1")]));
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("GetItem")),
        1.0,
        "a failed write still invalidates the item"
    );
    assert_eq!(
        d(&m1, &m0, |m| m.upstream("Query")),
        1.0,
        "a failed write still invalidates the partition's queries"
    );
    ctx.close().await;
}

async fn recreated_table_does_not_serve_old_entries(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;
    for _ in 0..2 {
        assert_eq!(ctx.get_v("p1", "a").await.as_deref(), Some("1"));
        assert_eq!(ctx.query("p1").await, pairs(&[("a", "1")]));
        assert_eq!(ctx.get("p1", "never").await, None);
    }
    let m0 = ctx.m().await;
    assert!(
        m0.item_hits(TABLE) >= 1.0,
        "entries were cached before the delete"
    );

    ctx.c
        .delete_table()
        .table_name(TABLE)
        .send()
        .await
        .expect("DeleteTable");

    // Deleted: the cached item must not be served.
    let err = ctx
        .proxy
        .client_no_retry()
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key("p1", "a")))
        .send()
        .await
        .expect_err("GetItem on a deleted table must fail, not hit the cache");
    assert!(
        matches!(
            err.into_service_error(),
            GetItemError::ResourceNotFoundException(_)
        ),
        "expected ResourceNotFoundException"
    );

    create_table(&ctx.c, TABLE).await;
    assert_eq!(ctx.get("p1", "a").await, None, "recreated table is empty");
    assert_eq!(
        ctx.query("p1").await,
        Vec::<(String, String)>::new(),
        "recreated table is empty"
    );

    ctx.put(&[("pk", "p1"), ("sk", "never"), ("v", "2")]).await;
    assert_eq!(ctx.get_v("p1", "never").await.as_deref(), Some("2"));
    ctx.close().await;
}

async fn consumed_capacity_zero_on_hit(kind: UpstreamKind) {
    let ctx = Ctx::new(kind).await;
    ctx.put(&[("pk", "p1"), ("sk", "a"), ("v", "1")]).await;

    let get = || {
        ctx.c
            .get_item()
            .table_name(TABLE)
            .set_key(Some(key("p1", "a")))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
    };
    let miss = get().await.expect("GetItem miss");
    assert!(
        miss.consumed_capacity().is_some(),
        "miss reports consumed capacity"
    );
    let m0 = ctx.m().await;
    let hit = get().await.expect("GetItem hit");
    let m1 = ctx.m().await;
    assert_eq!(
        d(&m1, &m0, |m| m.item_hits(TABLE)),
        1.0,
        "second GetItem is a hit"
    );
    assert_eq!(attr(hit.item().expect("item"), "v").as_deref(), Some("1"));
    let cc = hit
        .consumed_capacity()
        .expect("hit must report ConsumedCapacity");
    assert_eq!(
        cc.capacity_units(),
        Some(0.0),
        "hit consumes no capacity: {cc:?}"
    );
    assert_eq!(cc.table_name(), Some(TABLE));

    let query = || {
        ctx.c
            .query()
            .table_name(TABLE)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("p1"))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
    };
    query().await.expect("Query miss");
    let m2 = ctx.m().await;
    let qhit = query().await.expect("Query hit");
    let m3 = ctx.m().await;
    assert_eq!(
        d(&m3, &m2, |m| m.query_hits(TABLE)),
        1.0,
        "second Query is a hit"
    );
    assert_eq!(qhit.count(), 1);
    let cc = qhit
        .consumed_capacity()
        .expect("query hit must report ConsumedCapacity");
    assert_eq!(
        cc.capacity_units(),
        Some(0.0),
        "query hit consumes no capacity: {cc:?}"
    );
    ctx.close().await;
}

// ---------------------------------------------------------------------------------------------
// One test per scenario and upstream
// ---------------------------------------------------------------------------------------------

macro_rules! over_both_upstreams {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::UpstreamKind::Embedded).await
                }
            )*
        }
        mod http {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::UpstreamKind::Http).await
                }
            )*
        }
    };
}

over_both_upstreams!(
    get_item_repeat_is_hit,
    query_repeat_is_hit,
    put_item_invalidates_partition,
    update_item_invalidates_partition,
    delete_item_invalidates_partition,
    batch_write_item_invalidates_partitions,
    transact_write_items_invalidates_partitions,
    write_to_other_partition_keeps_entries,
    lsi_query_invalidated_by_partition_write,
    gsi_query_invalidated_by_any_table_write,
    scan_invalidated_by_any_table_write,
    pagination_pages_are_distinct_entries,
    projections_are_distinct_entries,
    placeholder_names_share_entry,
    negative_result_cached_until_put,
    consistent_read_bypasses_cache,
    transact_get_items_bypasses_cache,
    partiql_execute_statement_update_invalidates,
    partiql_batch_execute_statement_invalidates,
    partiql_execute_transaction_invalidates,
    ttl_per_table_override_expires_entries,
    numeric_key_spellings_share_a_partition,
    failed_conditional_write_returns_old_item_and_invalidates,
    recreated_table_does_not_serve_old_entries,
    consumed_capacity_zero_on_hit,
);
