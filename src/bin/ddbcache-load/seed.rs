//! Seeding: CreateTable (PAY_PER_REQUEST; `ResourceInUseException` means it exists), wait for
//! `ACTIVE`, then BatchWriteItem 25 items per call from a few connections at once, resending
//! `UnprocessedItems`, with an indicatif progress bar.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::endpoint::{Endpoint, Session};
use crate::workload::{Op, SeedData, TableDef, Workload, json_str};

/// DynamoDB's BatchWriteItem limit.
const BATCH: usize = 25;
const WAIT_ACTIVE_FOR: Duration = Duration::from_secs(120);
const UNPROCESSED_RETRIES: u32 = 20;

/// Creates the workload's table if needed and writes its seed items.
pub async fn seed(
    endpoint: Arc<Endpoint>,
    workload: &Workload,
    concurrency: usize,
    timeout: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    let table = workload.table();
    let mut session = Session::new(endpoint.clone(), timeout);
    create_table(&mut session, &table).await?;
    let data = workload.seed_data();
    let total = data.len();
    let bar = ProgressBar::new(total as u64).with_prefix(format!("seed {}", endpoint.name));
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} items {per_sec} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let table_json: Arc<str> = json_str(&table.name).into();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (endpoint, next, data, bar, table_json) = (
                endpoint.clone(),
                next.clone(),
                data.clone(),
                bar.clone(),
                table_json.clone(),
            );
            tokio::spawn(async move {
                let mut session = Session::new(endpoint, timeout);
                loop {
                    let start = next.fetch_add(BATCH, Ordering::Relaxed);
                    if start >= data.len() {
                        return Ok::<(), String>(());
                    }
                    let end = (start + BATCH).min(data.len());
                    write_batch(&mut session, &table_json, &*data, start..end).await?;
                    bar.inc((end - start) as u64);
                }
            })
        })
        .collect();
    let mut result = Ok(());
    for worker in workers {
        let outcome = worker
            .await
            .map_err(|e| format!("seeding task failed: {e}"))
            .and_then(|r| r);
        if result.is_ok() {
            result = outcome;
        }
    }
    bar.finish_and_clear();
    result?;
    eprintln!(
        "seeded {total} items into {} at {} in {:.1}s",
        table.name,
        endpoint.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn write_batch(
    session: &mut Session,
    table_json: &str,
    data: &dyn SeedData,
    range: std::ops::Range<usize>,
) -> Result<(), String> {
    let requests: Vec<String> = range
        .map(|i| format!(r#"{{"PutRequest":{{"Item":{}}}}}"#, data.item(i)))
        .collect();
    let mut body = format!(
        r#"{{"RequestItems":{{{table_json}:[{}]}}}}"#,
        requests.join(",")
    );
    for attempt in 0..UNPROCESSED_RETRIES {
        let answer = session.call_json(Op::BatchWriteItem, body).await?;
        match answer.get("UnprocessedItems") {
            Some(Value::Object(left)) if !left.is_empty() => {
                body = json!({ "RequestItems": left }).to_string();
                tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
            }
            _ => return Ok(()),
        }
    }
    Err("BatchWriteItem kept returning UnprocessedItems".into())
}

/// The CreateTable request of a table definition.
pub fn create_table_body(table: &TableDef) -> String {
    let mut attributes = vec![table.hash_key];
    let mut key_schema = vec![json!({"AttributeName": table.hash_key, "KeyType": "HASH"})];
    if let Some(range) = table.range_key {
        attributes.push(range);
        key_schema.push(json!({"AttributeName": range, "KeyType": "RANGE"}));
    }
    let mut gsis = Vec::new();
    for &(name, hash, range) in &table.gsis {
        for attr in [hash, range] {
            if !attributes.contains(&attr) {
                attributes.push(attr);
            }
        }
        gsis.push(json!({
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": hash, "KeyType": "HASH"},
                {"AttributeName": range, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }));
    }
    let mut body = json!({
        "TableName": table.name,
        "AttributeDefinitions": attributes
            .iter()
            .map(|a| json!({"AttributeName": a, "AttributeType": "S"}))
            .collect::<Vec<_>>(),
        "KeySchema": key_schema,
        "BillingMode": "PAY_PER_REQUEST",
    });
    if !gsis.is_empty() {
        body["GlobalSecondaryIndexes"] = Value::Array(gsis);
    }
    body.to_string()
}

/// Creates the table unless it exists, then waits until it is ACTIVE.
pub async fn create_table(session: &mut Session, table: &TableDef) -> Result<(), String> {
    match session
        .call_json(Op::CreateTable, create_table_body(table))
        .await
    {
        Ok(_) => eprintln!("created table {}", table.name),
        Err(e) if e.contains("ResourceInUseException") => {}
        Err(e) => return Err(e),
    }
    let describe = json!({ "TableName": table.name }).to_string();
    let deadline = Instant::now() + WAIT_ACTIVE_FOR;
    loop {
        let answer = session
            .call_json(Op::DescribeTable, describe.clone())
            .await?;
        let Some(table_description) = answer.get("Table") else {
            return Err(format!(
                "DescribeTable {}: the answer has no Table; is this a DynamoDB endpoint?",
                table.name
            ));
        };
        let status = table_description["TableStatus"].as_str().unwrap_or("");
        if status == "ACTIVE" {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "table {} still {status:?} after {WAIT_ACTIVE_FOR:?}",
                table.name
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_table_bodies() {
        let body: Value = serde_json::from_str(&create_table_body(&TableDef {
            name: "cruddur-messages".into(),
            hash_key: "pk",
            range_key: Some("sk"),
            gsis: vec![("message-group-sk-index", "message_group_uuid", "sk")],
        }))
        .unwrap();
        assert_eq!(body["BillingMode"], "PAY_PER_REQUEST");
        assert_eq!(body["AttributeDefinitions"].as_array().unwrap().len(), 3);
        assert_eq!(body["KeySchema"][1]["KeyType"], "RANGE");
        assert_eq!(
            body["GlobalSecondaryIndexes"][0]["KeySchema"][0]["AttributeName"],
            "message_group_uuid"
        );
        let simple: Value = serde_json::from_str(&create_table_body(&TableDef {
            name: "t".into(),
            hash_key: "pk",
            range_key: None,
            gsis: vec![],
        }))
        .unwrap();
        assert_eq!(simple["KeySchema"].as_array().unwrap().len(), 1);
        assert!(simple.get("GlobalSecondaryIndexes").is_none());
    }
}
