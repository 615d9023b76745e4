//! Table key schemas, read from DescribeTable on first use and kept until a table operation
//! (CreateTable, UpdateTable, DeleteTable, restores, imports) passes through for that table.

use moka::future::Cache;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// What the planner needs to know of a table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableSchema {
    /// The table's partition (HASH) key attribute; LSIs share it.
    pub partition_key: String,
    pub local_indexes: Vec<String>,
    pub global_indexes: Vec<String>,
}

#[derive(Deserialize)]
struct DescribeTableOutput {
    #[serde(rename = "Table")]
    table: TableDescription,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TableDescription {
    key_schema: Vec<KeyElement>,
    #[serde(default)]
    local_secondary_indexes: Vec<IndexDescription>,
    #[serde(default)]
    global_secondary_indexes: Vec<IndexDescription>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyElement {
    attribute_name: String,
    key_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexDescription {
    index_name: String,
}

/// Reads a DescribeTable response body. None if it is not one or has no HASH key.
pub fn parse_describe_table(body: &[u8]) -> Option<TableSchema> {
    let out: DescribeTableOutput = serde_json::from_slice(body).ok()?;
    let partition_key = out
        .table
        .key_schema
        .into_iter()
        .find(|k| k.key_type == "HASH")?
        .attribute_name;
    Some(TableSchema {
        partition_key,
        local_indexes: out
            .table
            .local_secondary_indexes
            .into_iter()
            .map(|i| i.index_name)
            .collect(),
        global_indexes: out
            .table
            .global_secondary_indexes
            .into_iter()
            .map(|i| i.index_name)
            .collect(),
    })
}

/// Known schemas. Reads check a plain map (a read lock and one hash); concurrent first uses of
/// a table share one DescribeTable through a moka cache that only coalesces loads.
#[derive(Clone)]
pub struct Schemas {
    known: Arc<RwLock<HashMap<String, Arc<TableSchema>>>>,
    loading: Cache<String, Arc<TableSchema>>,
    /// Moves on every `forget`: a load that began before one is used but not kept.
    epoch: Arc<AtomicU64>,
}

impl Default for Schemas {
    fn default() -> Self {
        Self::new()
    }
}

impl Schemas {
    pub fn new() -> Self {
        Schemas {
            known: Arc::default(),
            loading: Cache::builder().max_capacity(10_000).build(),
            epoch: Arc::default(),
        }
    }

    /// The schema of `table`, loading it with `load` (a DescribeTable) if unknown. A failed load
    /// is not remembered.
    pub async fn get_or_load<F, E>(&self, table: &str, load: F) -> Result<Arc<TableSchema>, Arc<E>>
    where
        F: std::future::Future<Output = Result<Arc<TableSchema>, E>>,
        E: Send + Sync + 'static,
    {
        if let Some(s) = self.known.read().expect("not poisoned").get(table) {
            return Ok(s.clone());
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let schema = self.loading.try_get_with(table.to_string(), load).await?;
        self.loading.invalidate(table).await;
        let mut known = self.known.write().expect("not poisoned");
        if self.epoch.load(Ordering::Acquire) == epoch {
            known.insert(table.to_string(), schema.clone());
        }
        Ok(schema)
    }

    /// Moves whenever a schema is forgotten: anything derived from schemas read before must be
    /// derived again.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub async fn forget(&self, table: &str) {
        {
            let mut known = self.known.write().expect("not poisoned");
            self.epoch.fetch_add(1, Ordering::AcqRel);
            known.remove(table);
        }
        self.loading.invalidate(table).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_indexes() {
        let body =
            br#"{"Table":{"TableName":"T","KeySchema":[{"AttributeName":"sk","KeyType":"RANGE"},
            {"AttributeName":"pk","KeyType":"HASH"}],
            "LocalSecondaryIndexes":[{"IndexName":"lsi1","KeySchema":[]}],
            "GlobalSecondaryIndexes":[{"IndexName":"gsi1","KeySchema":[]},{"IndexName":"gsi2"}]}}"#;
        let s = parse_describe_table(body).unwrap();
        assert_eq!(s.partition_key, "pk");
        assert_eq!(s.local_indexes, vec!["lsi1"]);
        assert_eq!(s.global_indexes, vec!["gsi1", "gsi2"]);
    }

    #[test]
    fn refuses_what_is_not_a_table_description() {
        assert!(parse_describe_table(b"{}").is_none());
        assert!(parse_describe_table(b"not json").is_none());
        assert!(parse_describe_table(br#"{"Table":{"KeySchema":[]}}"#).is_none());
    }

    fn schema(pk: &str) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            partition_key: pk.into(),
            ..TableSchema::default()
        })
    }

    #[tokio::test]
    async fn loads_once_and_forgets() {
        let schemas = Schemas::new();
        let first = schemas
            .get_or_load("T", async { Ok::<_, ()>(schema("a")) })
            .await
            .unwrap();
        assert_eq!(first.partition_key, "a");
        // Known now: a second load is not run.
        let again = schemas
            .get_or_load("T", async { Err::<Arc<TableSchema>, _>(()) })
            .await
            .unwrap();
        assert_eq!(again.partition_key, "a");
        schemas.forget("T").await;
        let reloaded = schemas
            .get_or_load("T", async { Ok::<_, ()>(schema("b")) })
            .await
            .unwrap();
        assert_eq!(reloaded.partition_key, "b");
    }

    #[tokio::test]
    async fn a_load_overtaken_by_forget_is_not_kept() {
        let schemas = Schemas::new();
        let s2 = schemas.clone();
        let loaded = schemas
            .get_or_load("T", async move {
                // The table changes while its DescribeTable is in flight.
                s2.forget("T").await;
                Ok::<_, ()>(schema("old"))
            })
            .await
            .unwrap();
        assert_eq!(loaded.partition_key, "old");
        let next = schemas
            .get_or_load("T", async { Ok::<_, ()>(schema("new")) })
            .await
            .unwrap();
        assert_eq!(next.partition_key, "new");
    }

    #[tokio::test]
    async fn failed_loads_are_not_remembered() {
        let schemas = Schemas::new();
        let failed = schemas
            .get_or_load("T", async { Err::<Arc<TableSchema>, _>("down") })
            .await;
        assert_eq!(*failed.unwrap_err(), "down");
        let ok = schemas
            .get_or_load("T", async { Ok::<_, &str>(schema("a")) })
            .await
            .unwrap();
        assert_eq!(ok.partition_key, "a");
    }
}
