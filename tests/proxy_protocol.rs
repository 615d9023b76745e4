//! The wire protocol, with hand-made HTTP/1.1 requests: error shapes for bad input, keep-alive
//! after errors, body limit, replay headers on hits, byte-for-byte pass-through, locally answered
//! DescribeEndpoints and an unreachable upstream.

mod common;

use common::{Dynoxide, RawConn, RawResponse, TestProxy, UpstreamKind, create_table, http_get};
use serde_json::json;

const TABLE: &str = "proto_t";

fn assert_error(resp: &RawResponse, status: u16, name: &str) {
    assert_eq!(resp.status, status, "status; body {:?}", resp.text());
    let ty = resp
        .error_type()
        .unwrap_or_else(|| panic!("not a DynamoDB error body: {:?}", resp.text()));
    assert!(
        ty == name || ty.ends_with(&format!("#{name}")),
        "__type {ty:?}, want {name}"
    );
    let body = resp.json();
    assert!(
        body.get("message")
            .or_else(|| body.get("Message"))
            .is_some(),
        "error body has a message: {body}"
    );
    let ct = resp.header("content-type").unwrap_or_default();
    assert!(ct.contains("json"), "error content-type {ct:?}");
}

fn assert_keeps_alive(resp: &RawResponse) {
    assert!(
        !resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "the proxy must keep the connection open after this error"
    );
}

async fn list_tables_ok(conn: &mut RawConn) {
    let ok = conn.ddb(Some("ListTables"), b"{}").await;
    assert_eq!(ok.status, 200, "ListTables: {}", ok.text());
    assert!(ok.json().get("TableNames").is_some(), "{}", ok.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_serialization_exception_and_connection_survives() {
    let proxy = TestProxy::start(UpstreamKind::Embedded).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    for bad in [
        &b"{\"TableName\": "[..],
        b"not json at all",
        b"{\"TableName\":\"t\",}",
    ] {
        let resp = conn.ddb(Some("GetItem"), bad).await;
        assert_error(&resp, 400, "SerializationException");
        assert_keeps_alive(&resp);
        // The same connection serves a valid request.
        list_tables_ok(&mut conn).await;
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_target_is_unknown_operation_and_connection_survives() {
    let proxy = TestProxy::start(UpstreamKind::Embedded).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    let resp = conn.ddb(Some("FrobnicateItem"), b"{}").await;
    assert_error(&resp, 400, "UnknownOperationException");
    assert_keeps_alive(&resp);
    list_tables_ok(&mut conn).await;

    // A target of another service.
    let resp = conn
        .request(
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-amz-json-1.0"),
                ("X-Amz-Target", "SomethingElse_20200101.GetItem"),
            ],
            b"{}",
        )
        .await
        .unwrap();
    assert_error(&resp, 400, "UnknownOperationException");
    list_tables_ok(&mut conn).await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_target_is_unknown_operation() {
    let proxy = TestProxy::start(UpstreamKind::Embedded).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    let resp = conn.ddb(None, b"{}").await;
    assert_error(&resp, 400, "UnknownOperationException");
    assert_keeps_alive(&resp);
    list_tables_ok(&mut conn).await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413_and_proxy_keeps_serving() {
    let proxy = TestProxy::start_with(UpstreamKind::Embedded, |c| c.max_body_bytes = 1024).await;
    let c = proxy.client();
    create_table(&c, TABLE).await;

    let big = json!({
        "TableName": TABLE,
        "Item": {"pk": {"S": "p1"}, "sk": {"S": "a"}, "blob": {"S": "x".repeat(4096)}}
    });
    let mut conn = RawConn::connect(proxy.addr).await;
    let resp = conn.ddb_json("PutItem", &big).await;
    assert_eq!(resp.status, 413, "oversized body: {}", resp.text());
    assert!(
        resp.error_type().is_some(),
        "413 carries a DynamoDB JSON error: {:?}",
        resp.text()
    );

    // The item was not written, and the proxy still serves (on a new connection: it may close
    // the one whose body it refused to read).
    let mut conn = RawConn::connect(proxy.addr).await;
    let small = json!({"TableName": TABLE, "Key": {"pk": {"S": "p1"}, "sk": {"S": "a"}}});
    let resp = conn.ddb_json("GetItem", &small).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.json().get("Item").is_none(),
        "oversized PutItem must not be forwarded"
    );

    // A request under the limit is served.
    let ok = json!({
        "TableName": TABLE,
        "Item": {"pk": {"S": "p1"}, "sk": {"S": "a"}, "blob": {"S": "x".repeat(100)}}
    });
    let resp = conn.ddb_json("PutItem", &ok).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    proxy.shutdown().await;
}

fn crc_ok(resp: &RawResponse) {
    let crc = resp
        .header("x-amz-crc32")
        .unwrap_or_else(|| panic!("no x-amz-crc32 header: {:?}", resp.headers));
    assert_eq!(
        crc.parse::<u32>().ok(),
        Some(crc32fast::hash(&resp.body)),
        "x-amz-crc32 {crc} does not match the body received ({} bytes)",
        resp.body.len()
    );
}

fn request_id(resp: &RawResponse) -> String {
    resp.header("x-amzn-requestid")
        .unwrap_or_else(|| panic!("no x-amzn-RequestId: {:?}", resp.headers))
        .to_string()
}

async fn seeded_proxy(kind: UpstreamKind) -> TestProxy {
    let proxy = TestProxy::start(kind).await;
    let c = proxy.client();
    create_table(&c, TABLE).await;
    c.put_item()
        .table_name(TABLE)
        .set_item(Some(common::item(&[("pk", "p1"), ("sk", "a"), ("v", "1")])))
        .send()
        .await
        .expect("PutItem");
    proxy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_has_correct_crc32_and_fresh_request_id() {
    let proxy = seeded_proxy(UpstreamKind::Http).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    let get = json!({"TableName": TABLE, "Key": {"pk": {"S": "p1"}, "sk": {"S": "a"}}});

    let m0 = proxy.metrics().await;
    let miss = conn.ddb_json("GetItem", &get).await;
    let m1 = proxy.metrics().await;
    let hit = conn.ddb_json("GetItem", &get).await;
    let hit2 = conn.ddb_json("GetItem", &get).await;
    let m2 = proxy.metrics().await;
    assert_eq!(
        m1.requests("GetItem", "miss") - m0.requests("GetItem", "miss"),
        1.0
    );
    assert_eq!(
        m2.requests("GetItem", "hit") - m1.requests("GetItem", "hit"),
        2.0,
        "replays are hits"
    );

    for r in [&miss, &hit, &hit2] {
        assert_eq!(r.status, 200, "{}", r.text());
        crc_ok(r);
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .contains("json")
        );
    }
    assert_eq!(hit.json(), miss.json(), "a hit replays the same document");
    let ids = [request_id(&miss), request_id(&hit), request_id(&hit2)];
    assert!(ids.iter().all(|i| !i.is_empty()));
    assert_ne!(ids[0], ids[1], "a hit gets a fresh request id");
    assert_ne!(ids[1], ids[2], "every hit gets a fresh request id");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_with_consumed_capacity_has_correct_crc32() {
    let proxy = seeded_proxy(UpstreamKind::Embedded).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    let get = json!({
        "TableName": TABLE,
        "Key": {"pk": {"S": "p1"}, "sk": {"S": "a"}},
        "ReturnConsumedCapacity": "TOTAL"
    });
    let miss = conn.ddb_json("GetItem", &get).await;
    let m0 = proxy.metrics().await;
    let hit = conn.ddb_json("GetItem", &get).await;
    let m1 = proxy.metrics().await;
    assert_eq!(
        m1.requests("GetItem", "hit") - m0.requests("GetItem", "hit"),
        1.0
    );
    crc_ok(&miss);
    crc_ok(&hit);
    let body = hit.json();
    assert_eq!(body["Item"], miss.json()["Item"]);
    let units = body["ConsumedCapacity"]["CapacityUnits"].as_f64();
    assert_eq!(units, Some(0.0), "hit reports zero capacity: {body}");
    assert_eq!(body["ConsumedCapacity"]["TableName"], json!(TABLE));

    // A query hit, too.
    let q = json!({
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "p1"}},
        "ReturnConsumedCapacity": "TOTAL"
    });
    conn.ddb_json("Query", &q).await;
    let qhit = conn.ddb_json("Query", &q).await;
    crc_ok(&qhit);
    assert_eq!(
        qhit.json()["ConsumedCapacity"]["CapacityUnits"].as_f64(),
        Some(0.0),
        "{}",
        qhit.text()
    );
    assert_eq!(qhit.json()["Count"], json!(1));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_key_order_and_whitespace_do_not_split_entries() {
    let proxy = seeded_proxy(UpstreamKind::Embedded).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    let a = format!(r#"{{"TableName":"{TABLE}","Key":{{"pk":{{"S":"p1"}},"sk":{{"S":"a"}}}}}}"#);
    let b = format!(
        "{{ \"Key\" : {{ \"sk\" : {{\"S\":\"a\"}},\n \"pk\": {{ \"S\" : \"p1\" }} }},\n  \"TableName\" : \"{TABLE}\" }}"
    );
    let m0 = proxy.metrics().await;
    let ra = conn.ddb(Some("GetItem"), a.as_bytes()).await;
    let rb = conn.ddb(Some("GetItem"), b.as_bytes()).await;
    let m1 = proxy.metrics().await;
    assert_eq!(ra.status, 200, "{}", ra.text());
    assert_eq!(rb.status, 200, "{}", rb.text());
    assert_eq!(ra.json(), rb.json());
    assert_eq!(
        m1.upstream("GetItem") - m0.upstream("GetItem"),
        1.0,
        "reordered request must hit"
    );
    assert_eq!(m1.item_hits(TABLE) - m0.item_hits(TABLE), 1.0);
    proxy.shutdown().await;
}

/// The same request to the proxy and straight to its dynoxide upstream.
async fn both(
    proxy: &TestProxy,
    upstream: &Dynoxide,
    op: &str,
    body: &str,
) -> (RawResponse, RawResponse) {
    let mut via = RawConn::connect(proxy.addr).await;
    let mut direct = RawConn::connect(upstream.addr).await;
    let a = via.ddb(Some(op), body.as_bytes()).await;
    let b = direct.ddb(Some(op), body.as_bytes()).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_returns_upstream_bytes() {
    let proxy = TestProxy::start(UpstreamKind::Http).await;
    let c = proxy.client();
    for t in ["pt_b", "pt_a", "pt_c"] {
        create_table(&c, t).await;
    }
    let upstream = proxy.upstream.as_ref().expect("http upstream");

    // ListTables is deterministic.
    for body in [
        "{}",
        r#"{"Limit":2}"#,
        r#"{"ExclusiveStartTableName":"pt_a"}"#,
    ] {
        let (via, direct) = both(&proxy, upstream, "ListTables", body).await;
        assert_eq!(via.status, direct.status);
        assert_eq!(direct.status, 200, "{}", direct.text());
        assert_eq!(via.text(), direct.text(), "ListTables {body} bytes differ");
        crc_ok(&via);
    }

    // DescribeTable: compare when the upstream itself is deterministic across two calls.
    let body = r#"{"TableName":"pt_a"}"#;
    let mut direct = RawConn::connect(upstream.addr).await;
    let d1 = direct.ddb(Some("DescribeTable"), body.as_bytes()).await;
    let (via, d2) = both(&proxy, upstream, "DescribeTable", body).await;
    assert_eq!(via.status, 200, "{}", via.text());
    if d1.body == d2.body {
        assert_eq!(via.text(), d2.text(), "DescribeTable bytes differ");
    } else {
        assert_eq!(
            via.json()["Table"]["KeySchema"],
            d2.json()["Table"]["KeySchema"]
        );
    }

    // An upstream error passes through unchanged, status included.
    let body = r#"{"TableName":"no_such_table"}"#;
    let (via, direct) = both(&proxy, upstream, "DescribeTable", body).await;
    assert_eq!(direct.status, 400);
    assert_eq!(via.status, direct.status, "error status passes through");
    assert_eq!(via.text(), direct.text(), "error bytes pass through");
    assert!(
        via.error_type()
            .unwrap_or_default()
            .ends_with("ResourceNotFoundException")
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_endpoints_answered_locally() {
    let proxy = TestProxy::start(UpstreamKind::Http).await;
    let upstream_port = proxy.upstream.as_ref().unwrap().addr.port();
    let mut conn = RawConn::connect(proxy.addr).await;
    let m0 = proxy.metrics().await;
    let resp = conn.ddb(Some("DescribeEndpoints"), b"{}").await;
    let m1 = proxy.metrics().await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    crc_ok(&resp);
    let body = resp.json();
    let endpoints = body["Endpoints"].as_array().expect("Endpoints array");
    assert_eq!(endpoints.len(), 1, "{body}");
    let address = endpoints[0]["Address"].as_str().expect("Address");
    assert!(
        address.ends_with(&format!(":{}", proxy.addr.port())),
        "DescribeEndpoints must name the proxy ({}), got {address:?}",
        proxy.addr
    );
    assert!(!address.contains(&format!(":{upstream_port}")));
    assert!(
        endpoints[0]["CachePeriodInMinutes"].as_i64().is_some(),
        "{body}"
    );
    assert_eq!(
        m1.upstream("DescribeEndpoints") - m0.upstream("DescribeEndpoints"),
        0.0,
        "DescribeEndpoints must not go upstream"
    );

    // And the SDK parses it.
    let out = proxy
        .client()
        .describe_endpoints()
        .send()
        .await
        .expect("SDK DescribeEndpoints");
    assert!(
        out.endpoints()[0]
            .address()
            .ends_with(&format!(":{}", proxy.addr.port()))
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_retryable_5xx_and_admin_still_healthy() {
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = TestProxy::start_over_url(
        format!("http://{closed}"),
        |c| {
            c.upstream.connect_timeout = std::time::Duration::from_millis(500);
            c.upstream.request_timeout = std::time::Duration::from_secs(3);
        },
        None,
    )
    .await;
    let mut conn = RawConn::connect(proxy.addr).await;
    let get = json!({"TableName": TABLE, "Key": {"pk": {"S": "p1"}, "sk": {"S": "a"}}});
    for (op, body) in [
        ("GetItem", get.to_string()),
        ("ListTables", "{}".to_string()),
        (
            "PutItem",
            json!({"TableName": TABLE, "Item": {"pk": {"S": "p1"}, "sk": {"S": "a"}}}).to_string(),
        ),
    ] {
        let resp = conn.ddb(Some(op), body.as_bytes()).await;
        assert!(
            (500..600).contains(&resp.status),
            "{op} with upstream down: status {} body {:?}",
            resp.status,
            resp.text()
        );
        let ty = resp.error_type();
        assert!(
            ty.is_some(),
            "{op}: 5xx must carry a DynamoDB JSON __type: {:?}",
            resp.text()
        );
        // Must not look like a client error the SDKs would not retry.
        let ty = ty.unwrap();
        assert!(
            !ty.contains("ValidationException") && !ty.contains("ResourceNotFound"),
            "{ty}"
        );
        // Keep-alive survives an upstream failure on the client side.
        if resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            conn = RawConn::connect(proxy.addr).await;
        }
    }

    // The SDK sees a retryable server error, not a hang.
    let err = proxy
        .client_no_retry()
        .list_tables()
        .send()
        .await
        .expect_err("ListTables with upstream down");
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert!(
        status.is_some_and(|s| (500..600).contains(&s)),
        "SDK error status {status:?}: {err:?}"
    );

    let health = http_get(proxy.admin_addr, "/healthz").await;
    assert_eq!(
        health.status,
        200,
        "/healthz while upstream down: {}",
        health.text()
    );
    let metrics = proxy.metrics().await;
    assert!(
        metrics.has("ddbcache_requests_total"),
        "metrics still served"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_respond() {
    let proxy = TestProxy::start(UpstreamKind::Embedded).await;
    let c = proxy.client();
    create_table(&c, TABLE).await;
    assert_eq!(http_get(proxy.admin_addr, "/healthz").await.status, 200);
    assert_eq!(
        http_get(proxy.admin_addr, "/readyz").await.status,
        200,
        "ready with a working upstream"
    );
    let m = http_get(proxy.admin_addr, "/metrics").await;
    assert_eq!(m.status, 200);
    let text = m.text();
    for name in [
        "ddbcache_requests_total",
        "ddbcache_upstream_requests_total",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    let parsed = common::Metrics::parse(&text);
    assert!(
        parsed.upstream("CreateTable") >= 1.0,
        "CreateTable counted upstream:\n{text}"
    );
    assert!(
        parsed.requests("CreateTable", "none") >= 1.0,
        "CreateTable is cache_status=none:\n{text}"
    );
    proxy.shutdown().await;
}
