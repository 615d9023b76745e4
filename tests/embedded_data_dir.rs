//! The embedded upstream with `upstream.data_dir`: items written through one proxy process are
//! on disk (SQLite) and read back by the next one.

mod common;

use common::*;
use ddbcache::config::UpstreamTarget;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_persists_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut config = test_config(UpstreamTarget::Embedded);
        config.upstream.data_dir = Some(dir.path().to_path_buf());
        ddbcache::server::start(config)
    };

    let first = start().await.expect("start over a fresh data_dir");
    let ddb = sdk_client(&format!("http://{}", first.addr), true);
    create_simple_table(&ddb, "Persisted").await;
    ddb.put_item()
        .table_name("Persisted")
        .item("pk", s("a"))
        .item("v", s("kept"))
        .send()
        .await
        .unwrap();
    first.shutdown().await;
    assert!(
        dir.path().join("ddbcache.sqlite").exists(),
        "the engine writes its SQLite file under data_dir"
    );

    let second = start().await.expect("restart over the same data_dir");
    let ddb = sdk_client(&format!("http://{}", second.addr), true);
    let got = ddb
        .get_item()
        .table_name("Persisted")
        .key("pk", s("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        attr(got.item().expect("the item survived"), "v").as_deref(),
        Some("kept")
    );
    second.shutdown().await;
}
