//! Table key schemas, read from DescribeTable on first use and kept until a table operation
//! (CreateTable, UpdateTable, DeleteTable, restores, imports) passes through for that table.

use moka::future::Cache;
use serde::Deserialize;
use std::sync::Arc;

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

/// Known schemas. Concurrent first uses of a table share one DescribeTable.
#[derive(Clone)]
pub struct Schemas {
    cache: Cache<String, Arc<TableSchema>>,
}

impl Default for Schemas {
    fn default() -> Self {
        Self::new()
    }
}

impl Schemas {
    pub fn new() -> Self {
        Schemas {
            cache: Cache::builder().max_capacity(100_000).build(),
        }
    }

    /// The schema of `table`, loading it with `load` (a DescribeTable) if unknown. A failed load
    /// is not remembered.
    pub async fn get_or_load<F, E>(&self, table: &str, load: F) -> Result<Arc<TableSchema>, Arc<E>>
    where
        F: std::future::Future<Output = Result<Arc<TableSchema>, E>>,
        E: Send + Sync + 'static,
    {
        if let Some(s) = self.cache.get(table).await {
            return Ok(s);
        }
        self.cache.try_get_with(table.to_string(), load).await
    }

    pub async fn forget(&self, table: &str) {
        self.cache.invalidate(table).await;
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
}
