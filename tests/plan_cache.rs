//! Remembered read plans must not outlive the key schema they were made with. A table recreated
//! with its key attributes swapped makes the same GetItem bytes name another partition: if the
//! old plan were reused, a later write would invalidate the new partition while the read stays
//! tagged with the old one, and the read would be served stale.

mod common;

use common::*;
use serde_json::json;

fn create(hash: &str, range: &str) -> serde_json::Value {
    json!({
        "TableName": "Swapped",
        "AttributeDefinitions": [
            {"AttributeName": "a", "AttributeType": "N"},
            {"AttributeName": "b", "AttributeType": "N"}
        ],
        "KeySchema": [
            {"AttributeName": hash, "KeyType": "HASH"},
            {"AttributeName": range, "KeyType": "RANGE"}
        ],
        "BillingMode": "PAY_PER_REQUEST"
    })
}

fn put(v: &str) -> serde_json::Value {
    json!({"TableName": "Swapped", "Item": {"a": {"N": "1"}, "b": {"N": "2"}, "v": {"S": v}}})
}

async fn read(conn: &mut RawConn, get: &serde_json::Value) -> Option<String> {
    let r = conn.ddb_json("GetItem", get).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["Item"]["v"]["S"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembered_plans_follow_schema_changes() {
    let proxy = TestProxy::start(UpstreamKind::Embedded).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    // The exact same bytes every time, so the proxy can match them to a remembered plan.
    let get = json!({"TableName": "Swapped", "Key": {"a": {"N": "1"}, "b": {"N": "2"}}});

    assert_eq!(
        conn.ddb_json("CreateTable", &create("a", "b")).await.status,
        200
    );
    assert_eq!(conn.ddb_json("PutItem", &put("old")).await.status, 200);
    assert_eq!(read(&mut conn, &get).await.as_deref(), Some("old"));
    assert_eq!(read(&mut conn, &get).await.as_deref(), Some("old"));
    let hits = proxy.metrics().await.item_hits("Swapped");
    assert!(hits >= 1.0, "the repeated read was a hit");

    // Same table name, keys swapped: the same bytes now name partition b = 2.
    assert_eq!(
        conn.ddb_json("DeleteTable", &json!({"TableName": "Swapped"}))
            .await
            .status,
        200
    );
    assert_eq!(
        conn.ddb_json("CreateTable", &create("b", "a")).await.status,
        200
    );
    assert_eq!(conn.ddb_json("PutItem", &put("new")).await.status, 200);
    assert_eq!(read(&mut conn, &get).await.as_deref(), Some("new"));
    assert_eq!(read(&mut conn, &get).await.as_deref(), Some("new"));

    // This write invalidates partition b = 2; the read must see it.
    assert_eq!(conn.ddb_json("PutItem", &put("newer")).await.status, 200);
    assert_eq!(read(&mut conn, &get).await.as_deref(), Some("newer"));
    proxy.shutdown().await;
}
