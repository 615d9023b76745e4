//! Operation + request body -> [`Plan`]: what the proxy does with a request. Pure: the schemas it
//! needs are looked up beforehand ([`tables_to_describe`]) and passed in.

use crate::cache::key::{canonical_value, partition_value, read_key, table_name};
use crate::cache::{Invalidation, Scope};
use crate::protocol::Operation;
use crate::protocol::json::{Json, Object};
use crate::schema::TableSchema;

/// Which cache a read belongs to (and which DAX-style counters it moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// GetItem.
    Item,
    /// Query and Scan.
    Query,
}

/// What `ReturnConsumedCapacity` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityReport {
    None,
    Total,
    Indexes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReadPlan {
    pub kind: ReadKind,
    pub table: String,
    pub index: Option<String>,
    pub key: std::sync::Arc<[u8]>,
    pub scope: Scope,
    pub capacity: CapacityReport,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// A cacheable read.
    Read(ReadPlan),
    /// A read that is never cached: ConsistentRead, TransactGetItems, BatchGetItem, PartiQL
    /// selects, or a table whose schema is unknown.
    Bypass,
    /// Forward, invalidating these before and after (whatever the outcome).
    Write(Vec<Invalidation>),
    /// A table is created, changed, deleted or replaced: forget its schema and entries.
    TableChange(String),
    /// Answered locally with the proxy's own address.
    DescribeEndpoints,
    /// Everything else: forwarded untouched.
    PassThrough,
}

fn str_member<'a>(req: &'a Object, name: &str) -> Option<&'a str> {
    req.get(name).and_then(Json::as_str)
}

fn table_of(req: &Object) -> Option<String> {
    str_member(req, "TableName").map(|t| table_name(t).to_string())
}

/// The tables whose key schema [`plan`] needs for this request.
pub fn tables_to_describe(op: Operation, req: &Object) -> Vec<String> {
    match op {
        Operation::GetItem
        | Operation::Query
        | Operation::PutItem
        | Operation::UpdateItem
        | Operation::DeleteItem => table_of(req).into_iter().collect(),
        Operation::BatchWriteItem => distinct_tables(
            req.get("RequestItems")
                .and_then(Json::as_object)
                .into_iter()
                .flat_map(Object::keys),
        ),
        Operation::TransactWriteItems => distinct_tables(
            transact_writes(req)
                .filter_map(|(_, body)| body.get("TableName").and_then(Json::as_str)),
        ),
        _ => Vec::new(),
    }
}

/// Each table once, by name (a table ARN and its name are one table), in name order.
fn distinct_tables<'a>(raw: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut tables: Vec<String> = raw.map(|t| table_name(t).to_string()).collect();
    tables.sort();
    tables.dedup();
    tables
}

fn transact_writes<'a, 'b>(req: &'a Object<'b>) -> impl Iterator<Item = (&'a str, &'a Object<'b>)> {
    req.get("TransactItems")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_object)
        .flat_map(|item| item.iter())
        .filter_map(|(kind, body)| Some((kind, body.as_object()?)))
}

/// Decides what to do with a request. `schema` returns a table's key schema when known.
pub fn plan<'s>(
    op: Operation,
    req: &Object,
    schema: impl Fn(&str) -> Option<&'s TableSchema>,
) -> Plan {
    match op {
        Operation::GetItem | Operation::Query | Operation::Scan => read_plan(op, req, schema),
        Operation::BatchGetItem | Operation::TransactGetItems => Plan::Bypass,
        Operation::PutItem => write_plan(str_member(req, "TableName"), req.get("Item"), &schema),
        Operation::UpdateItem | Operation::DeleteItem => {
            write_plan(str_member(req, "TableName"), req.get("Key"), &schema)
        }
        Operation::BatchWriteItem => {
            let mut out = Vec::new();
            let tables = req.get("RequestItems").and_then(Json::as_object);
            for (table, requests) in tables.into_iter().flat_map(Object::iter) {
                for r in requests.as_array().into_iter().flatten() {
                    let key = r
                        .get("PutRequest")
                        .and_then(|p| p.get("Item"))
                        .or_else(|| r.get("DeleteRequest").and_then(|d| d.get("Key")));
                    extend(&mut out, write_plan(Some(table), key, &schema));
                }
            }
            writes(out)
        }
        Operation::TransactWriteItems => {
            let mut out = Vec::new();
            for (kind, body) in transact_writes(req) {
                let key = match kind {
                    "Put" => body.get("Item"),
                    "Update" | "Delete" => body.get("Key"),
                    _ => continue, // ConditionCheck writes nothing.
                };
                extend(
                    &mut out,
                    write_plan(str_member(body, "TableName"), key, &schema),
                );
            }
            writes(out)
        }
        Operation::ExecuteStatement => partiql_plan([str_member(req, "Statement")]),
        Operation::BatchExecuteStatement => partiql_plan(statements(req, "Statements")),
        Operation::ExecuteTransaction => partiql_plan(statements(req, "TransactStatements")),
        Operation::CreateTable | Operation::UpdateTable | Operation::DeleteTable => {
            table_of(req).map_or(Plan::PassThrough, Plan::TableChange)
        }
        Operation::RestoreTableFromBackup | Operation::RestoreTableToPointInTime => {
            str_member(req, "TargetTableName")
                .map_or(Plan::PassThrough, |t| Plan::TableChange(t.to_string()))
        }
        Operation::ImportTable => req
            .get("TableCreationParameters")
            .and_then(|p| p.get("TableName"))
            .and_then(Json::as_str)
            .map_or(Plan::PassThrough, |t| Plan::TableChange(t.to_string())),
        Operation::DescribeEndpoints => Plan::DescribeEndpoints,
        _ => Plan::PassThrough,
    }
}

fn statements<'a>(req: &'a Object, member: &str) -> Vec<Option<&'a str>> {
    req.get(member)
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|s| s.get("Statement").and_then(Json::as_str))
        .collect()
}

fn extend(out: &mut Vec<Invalidation>, plan: Plan) {
    if let Plan::Write(list) = plan {
        for inv in list {
            if !out.contains(&inv) {
                out.push(inv);
            }
        }
    }
}

fn writes(list: Vec<Invalidation>) -> Plan {
    if list.is_empty() {
        Plan::PassThrough
    } else {
        Plan::Write(list)
    }
}

/// One item write: its partition when the schema and the key attribute are known, else the
/// whole table (safe: it can only cause extra misses).
fn write_plan<'s>(
    table: Option<&str>,
    item_or_key: Option<&Json>,
    schema: &impl Fn(&str) -> Option<&'s TableSchema>,
) -> Plan {
    let Some(table) = table.map(table_name) else {
        // DynamoDB refuses a write without a table; nothing to invalidate.
        return Plan::PassThrough;
    };
    let pk = schema(table).and_then(|s| item_or_key?.get(&s.partition_key));
    Plan::Write(vec![match pk {
        Some(v) => Invalidation::Partition {
            table: table.to_string(),
            pk: canonical_value(v),
        },
        None => Invalidation::Table(table.to_string()),
    }])
}

fn read_plan<'s>(
    op: Operation,
    req: &Object,
    schema: impl Fn(&str) -> Option<&'s TableSchema>,
) -> Plan {
    if req.get("ConsistentRead").and_then(Json::as_bool) == Some(true) {
        return Plan::Bypass;
    }
    let Some(table) = table_of(req) else {
        return Plan::PassThrough;
    };
    let index = str_member(req, "IndexName").map(str::to_string);
    let table_scope = Scope::Table(table.clone());
    let (kind, scope) = match op {
        Operation::Scan => (ReadKind::Query, table_scope),
        _ => {
            let Some(s) = schema(&table) else {
                return Plan::Bypass;
            };
            let partition = |v: &Json| Scope::Partition {
                table: table.clone(),
                pk: canonical_value(v),
            };
            if op == Operation::GetItem {
                let pk = req.get("Key").and_then(|k| k.get(&s.partition_key));
                (ReadKind::Item, pk.map_or(table_scope, partition))
            } else {
                let on_partition = match &index {
                    None => true,
                    Some(i) => s.local_indexes.contains(i),
                };
                let pk = on_partition
                    .then(|| partition_value(req, &s.partition_key))
                    .flatten();
                (ReadKind::Query, pk.map_or(table_scope, partition))
            }
        }
    };
    let capacity = match str_member(req, "ReturnConsumedCapacity") {
        Some("TOTAL") => CapacityReport::Total,
        Some("INDEXES") => CapacityReport::Indexes,
        _ => CapacityReport::None,
    };
    Plan::Read(ReadPlan {
        kind,
        key: read_key(op.as_str(), &table, req).into(),
        table,
        index,
        scope,
        capacity,
    })
}

/// PartiQL: selects are never cached; every other statement invalidates its whole table (the
/// partition is not worth parsing PartiQL for), or everything when the table cannot be read.
fn partiql_plan<'a>(statements: impl IntoIterator<Item = Option<&'a str>>) -> Plan {
    let mut out = Vec::new();
    let mut any = false;
    for statement in statements {
        any = true;
        let Some(statement) = statement else {
            continue; // DynamoDB refuses a missing statement.
        };
        let words = statement.trim_start();
        let first = words
            .split(|c: char| c.is_whitespace() || c == '"' || c == '(')
            .next()
            .unwrap_or("");
        // SELECT reads; EXISTS (in a transaction) is a condition check that writes nothing.
        if first.eq_ignore_ascii_case("select") || first.eq_ignore_ascii_case("exists") {
            continue;
        }
        // A table ARN names the table, as in every other operation.
        let inv = partiql_table(statement).map_or(Invalidation::All, |t| {
            Invalidation::Table(table_name(&t).to_string())
        });
        if !out.contains(&inv) {
            out.push(inv);
        }
    }
    if out.is_empty() {
        if any { Plan::Bypass } else { Plan::PassThrough }
    } else {
        Plan::Write(out)
    }
}

/// The table of `INSERT INTO t`, `UPDATE t`, `DELETE FROM t` (quoted or bare; `"t"."index"`
/// names the table `t`).
pub fn partiql_table(statement: &str) -> Option<String> {
    let s = statement.trim_start();
    let lower = s.to_ascii_lowercase();
    let rest = if lower.starts_with("insert") {
        let i = lower.find("into")?;
        &s[i + 4..]
    } else if lower.starts_with("delete") {
        let i = lower.find("from")?;
        &s[i + 4..]
    } else if lower.starts_with("update") {
        &s[6..]
    } else {
        return None;
    };
    let rest = rest.trim_start();
    let name = if let Some(quoted) = rest.strip_prefix('"') {
        // "" is an escaped quote inside a quoted identifier.
        let mut name = String::new();
        let mut chars = quoted.chars().peekable();
        loop {
            match chars.next()? {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    name.push('"');
                }
                '"' => break,
                c => name.push(c),
            }
        }
        name
    } else {
        rest.split(|c: char| c.is_whitespace() || c == '.' || c == '"')
            .next()?
            .to_string()
    };
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::json::leaked;
    use serde_json::{Value, json};

    fn schema() -> TableSchema {
        TableSchema {
            partition_key: "pk".into(),
            local_indexes: vec!["lsi".into()],
            global_indexes: vec!["gsi".into()],
        }
    }

    fn run(op: Operation, req: Value) -> Plan {
        let s = schema();
        plan(op, leaked(req).as_object().unwrap(), |t| {
            (t == "T").then_some(&s)
        })
    }

    fn part(pk: &str) -> Scope {
        Scope::Partition {
            table: "T".into(),
            pk: pk.into(),
        }
    }

    fn inv(pk: &str) -> Invalidation {
        Invalidation::Partition {
            table: "T".into(),
            pk: pk.into(),
        }
    }

    fn scope(p: Plan) -> Scope {
        match p {
            Plan::Read(r) => r.scope,
            other => panic!("not a read: {other:?}"),
        }
    }

    const A: &str = r#"{"S":"a"}"#;

    #[test]
    fn reads_are_scoped_to_their_partition_or_table() {
        let get = json!({"TableName":"T","Key":{"pk":{"S":"a"},"sk":{"S":"1"}}});
        assert_eq!(scope(run(Operation::GetItem, get)), part(A));
        let q = json!({"TableName":"T","KeyConditionExpression":"pk = :v",
            "ExpressionAttributeValues":{":v":{"S":"a"}}});
        assert_eq!(scope(run(Operation::Query, q.clone())), part(A));
        let mut lsi = q.clone();
        lsi["IndexName"] = json!("lsi");
        assert_eq!(scope(run(Operation::Query, lsi)), part(A));
        for index in ["gsi", "unknown-index"] {
            let mut g = q.clone();
            g["IndexName"] = json!(index);
            assert_eq!(scope(run(Operation::Query, g)), Scope::Table("T".into()));
        }
        assert_eq!(
            scope(run(Operation::Scan, json!({"TableName":"T"}))),
            Scope::Table("T".into())
        );
        // A table ARN names the same table.
        let arn =
            json!({"TableName":"arn:aws:dynamodb:us-east-1:1:table/T","Key":{"pk":{"S":"a"}}});
        assert_eq!(scope(run(Operation::GetItem, arn)), part(A));
    }

    #[test]
    fn uncacheable_reads_bypass() {
        let consistent = json!({"TableName":"T","Key":{"pk":{"S":"a"}},"ConsistentRead":true});
        assert_eq!(run(Operation::GetItem, consistent), Plan::Bypass);
        let unknown = json!({"TableName":"Unknown","Key":{"pk":{"S":"a"}}});
        assert_eq!(run(Operation::GetItem, unknown), Plan::Bypass);
        assert_eq!(run(Operation::TransactGetItems, json!({})), Plan::Bypass);
        assert_eq!(run(Operation::BatchGetItem, json!({})), Plan::Bypass);
        assert_eq!(
            run(
                Operation::ExecuteStatement,
                json!({"Statement":"SELECT * FROM T"})
            ),
            Plan::Bypass
        );
    }

    #[test]
    fn item_writes_invalidate_their_partition() {
        let put = json!({"TableName":"T","Item":{"pk":{"S":"a"},"x":{"N":"1"}}});
        assert_eq!(run(Operation::PutItem, put), Plan::Write(vec![inv(A)]));
        let upd = json!({"TableName":"T","Key":{"pk":{"S":"a"},"sk":{"S":"1"}}});
        assert_eq!(
            run(Operation::UpdateItem, upd.clone()),
            Plan::Write(vec![inv(A)])
        );
        assert_eq!(run(Operation::DeleteItem, upd), Plan::Write(vec![inv(A)]));
        // Numbers are normalised, so "1.0" and "1" are one partition.
        let n1 = run(
            Operation::PutItem,
            json!({"TableName":"T","Item":{"pk":{"N":"1.0"}}}),
        );
        let n2 = run(
            Operation::DeleteItem,
            json!({"TableName":"T","Key":{"pk":{"N":"1"}}}),
        );
        assert_eq!(n1, n2);
    }

    #[test]
    fn writes_without_a_known_partition_invalidate_the_table() {
        let no_pk = json!({"TableName":"T","Item":{"other":{"S":"a"}}});
        assert_eq!(
            run(Operation::PutItem, no_pk),
            Plan::Write(vec![Invalidation::Table("T".into())])
        );
        let no_schema = json!({"TableName":"U","Item":{"pk":{"S":"a"}}});
        assert_eq!(
            run(Operation::PutItem, no_schema),
            Plan::Write(vec![Invalidation::Table("U".into())])
        );
    }

    #[test]
    fn batch_and_transaction_writes_invalidate_each_partition_once() {
        let batch = json!({"RequestItems":{"T":[
            {"PutRequest":{"Item":{"pk":{"S":"a"}}}},
            {"DeleteRequest":{"Key":{"pk":{"S":"b"}}}},
            {"PutRequest":{"Item":{"pk":{"S":"a"},"sk":{"S":"2"}}}}]}});
        assert_eq!(
            run(Operation::BatchWriteItem, batch),
            Plan::Write(vec![inv(A), inv(r#"{"S":"b"}"#)])
        );
        let tx = json!({"TransactItems":[
            {"Put":{"TableName":"T","Item":{"pk":{"S":"a"}}}},
            {"Update":{"TableName":"T","Key":{"pk":{"S":"c"}}}},
            {"ConditionCheck":{"TableName":"T","Key":{"pk":{"S":"z"}}}},
            {"Delete":{"TableName":"U","Key":{"pk":{"S":"a"}}}}]});
        assert_eq!(
            run(Operation::TransactWriteItems, tx),
            Plan::Write(vec![
                inv(A),
                inv(r#"{"S":"c"}"#),
                Invalidation::Table("U".into())
            ])
        );
    }

    #[test]
    fn partiql_writes_invalidate_their_table() {
        let cases = [
            (
                "UPDATE \"T\" SET x = 1 WHERE pk = 'a'",
                Invalidation::Table("T".into()),
            ),
            (
                "insert into T value {'pk':'a'}",
                Invalidation::Table("T".into()),
            ),
            (
                "DELETE FROM \"My\"\"Table\" WHERE pk = 'a'",
                Invalidation::Table("My\"Table".into()),
            ),
            ("UPDATE", Invalidation::All),
            // Found by fuzz/decode_plan (fuzz/regressions/decode_plan/): an ARN was kept as the
            // table name, so the write invalidated nothing cached for `T`.
            (
                "UPDATE \"arn:aws:dynamodb:us-east-1:1:table/T\" SET x = 1 WHERE pk = 'a'",
                Invalidation::Table("T".into()),
            ),
        ];
        for (stmt, expected) in cases {
            assert_eq!(
                run(Operation::ExecuteStatement, json!({ "Statement": stmt })),
                Plan::Write(vec![expected]),
                "{stmt}"
            );
        }
        let tx =
            json!({"TransactStatements":[{"Statement":"EXISTS(SELECT * FROM T WHERE pk='a')"}]});
        assert_eq!(run(Operation::ExecuteTransaction, tx), Plan::Bypass);
        let batch = json!({"Statements":[{"Statement":"SELECT * FROM A"},{"Statement":"UPDATE B SET x=1"}]});
        assert_eq!(
            run(Operation::BatchExecuteStatement, batch),
            Plan::Write(vec![Invalidation::Table("B".into())])
        );
    }

    #[test]
    fn table_operations_and_the_rest() {
        assert_eq!(
            run(Operation::DeleteTable, json!({"TableName":"T"})),
            Plan::TableChange("T".into())
        );
        assert_eq!(
            run(
                Operation::RestoreTableFromBackup,
                json!({"TargetTableName":"T2"})
            ),
            Plan::TableChange("T2".into())
        );
        assert_eq!(
            run(Operation::DescribeEndpoints, json!({})),
            Plan::DescribeEndpoints
        );
        assert_eq!(run(Operation::ListTables, json!({})), Plan::PassThrough);
        assert_eq!(
            run(Operation::DescribeTable, json!({"TableName":"T"})),
            Plan::PassThrough
        );
    }

    #[test]
    fn tables_to_describe_lists_written_tables() {
        let tx = json!({"TransactItems":[{"Put":{"TableName":"B","Item":{}}},
            {"Delete":{"TableName":"A","Key":{}}},{"Put":{"TableName":"B","Item":{}}}]});
        assert_eq!(
            tables_to_describe(
                Operation::TransactWriteItems,
                leaked(tx).as_object().unwrap()
            ),
            vec!["A", "B"]
        );
        let batch = leaked(
            json!({"RequestItems":{"B":[],"arn:aws:dynamodb:us-east-1:1:table/A":[],"A":[]}}),
        );
        assert_eq!(
            tables_to_describe(Operation::BatchWriteItem, batch.as_object().unwrap()),
            vec!["A", "B"]
        );
        let get = leaked(json!({"TableName":"T"}));
        assert_eq!(
            tables_to_describe(Operation::GetItem, get.as_object().unwrap()),
            vec!["T"]
        );
        assert!(tables_to_describe(Operation::Scan, get.as_object().unwrap()).is_empty());
    }
}
