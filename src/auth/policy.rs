//! Least privilege: a key's [`Policy`] (allow-lists of table and operation globs), the pure
//! function that lists every table a request touches ([`request_tables`]), and [`authorize`],
//! which refuses with DynamoDB's `AccessDeniedException`.
//!
//! The table list errs on the side of more tables: every member that can name a table is read,
//! duplicated JSON members are all read, and a table that cannot be determined (a PartiQL
//! statement we cannot parse, an ARN member that is not a table ARN, a shard iterator that does
//! not start with its stream ARN) makes the request one that only a key allowed on all tables
//! (`*`) may run.

use crate::auth::keys::ClientKey;
use crate::cache::key::table_name;
use crate::error::Error;
use crate::plan::partiql_table;
use crate::protocol::json::{Json, Object};
use crate::protocol::{Operation, parse_target};

/// What one key may do: operations matching one of `operations` on tables matching one of
/// `tables`. Globs use `*` (any run of characters) and `?` (one character). Table names are
/// case-sensitive (as in DynamoDB); operation names are not (as in IAM), and may carry IAM's
/// `dynamodb:` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    tables: Vec<String>,
    operations: Vec<String>,
}

impl Policy {
    /// Checks the globs: none empty, at least one of each, and an operation without glob
    /// characters must name a DynamoDB (or DynamoDB Streams) operation, so typos are caught.
    pub fn new(tables: &[String], operations: &[String]) -> Result<Policy, String> {
        if tables.is_empty() {
            return Err("tables must list at least one table name or glob (\"*\" for all)".into());
        }
        if operations.is_empty() {
            return Err(
                "operations must list at least one operation name or glob (\"*\" for all)".into(),
            );
        }
        if let Some(t) = tables.iter().find(|t| t.trim().is_empty()) {
            return Err(format!("table glob {t:?} is empty"));
        }
        let mut ops = Vec::with_capacity(operations.len());
        for op in operations {
            let o = op.trim();
            let o = o.strip_prefix("dynamodb:").unwrap_or(o);
            if o.is_empty() {
                return Err(format!("operation glob {op:?} is empty"));
            }
            if !o.contains(['*', '?']) && !is_operation_name(o) {
                return Err(format!(
                    "{op:?} is not a DynamoDB operation (e.g. \"GetItem\", \"Batch*\", \"*\")"
                ));
            }
            ops.push(o.to_owned());
        }
        Ok(Policy {
            tables: tables.iter().map(|t| t.trim().to_owned()).collect(),
            operations: ops,
        })
    }

    /// A policy allowing everything.
    pub fn allow_all() -> Policy {
        Policy {
            tables: vec!["*".into()],
            operations: vec!["*".into()],
        }
    }

    pub fn allows_operation(&self, op: &str) -> bool {
        self.operations
            .iter()
            .any(|p| glob_match_ci(p.as_bytes(), op.as_bytes()))
    }

    pub fn allows_table(&self, table: &str) -> bool {
        self.tables
            .iter()
            .any(|p| glob_match(p.as_bytes(), table.as_bytes()))
    }

    /// Whether the key may touch any table, including one we cannot name.
    pub fn allows_all_tables(&self) -> bool {
        self.tables.iter().any(|p| p == "*")
    }
}

fn is_operation_name(name: &str) -> bool {
    let dynamodb = format!("DynamoDB_20120810.{name}");
    let streams = format!("DynamoDBStreams_20120810.{name}");
    let exact = |t: &str| parse_target(Some(t.as_bytes())).is_ok();
    exact(&dynamodb) || exact(&streams)
}

/// `*` / `?` glob match (byte-wise; `?` matches one byte). Linear backtracking on the last `*`.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    glob(pattern, text, |a, b| a == b)
}

fn glob_match_ci(pattern: &[u8], text: &[u8]) -> bool {
    glob(pattern, text, |a, b| a.eq_ignore_ascii_case(&b))
}

fn glob(pattern: &[u8], text: &[u8], eq: impl Fn(u8, u8) -> bool) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || eq(c, text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// The tables a request touches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestTables {
    /// Each table once, by name (ARNs resolved), in name order.
    pub tables: Vec<String>,
    /// Some table could not be determined: only a key allowed on all tables may go on.
    pub unknown: bool,
}

impl RequestTables {
    fn name(&mut self, raw: &str) {
        self.tables.push(table_name(raw).to_owned());
    }

    /// A member that holds an ARN: a table (or stream, backup, export, import) ARN names its
    /// table; anything else is unknown.
    fn arn(&mut self, raw: &str) {
        match raw.split_once(":table/") {
            Some((_, rest)) if raw.starts_with("arn:") => {
                let name = rest.split('/').next().unwrap_or("");
                if name.is_empty() {
                    self.unknown = true;
                } else {
                    self.tables.push(name.to_owned());
                }
            }
            _ => self.unknown = true,
        }
    }

    fn finish(mut self) -> RequestTables {
        self.tables.sort();
        self.tables.dedup();
        self
    }
}

/// Every value of member `name` (a document may repeat a member; we read them all).
fn members<'a, 'b>(obj: &'a Object<'b>, name: &'a str) -> impl Iterator<Item = &'a Json<'b>> {
    obj.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v)
}

/// Top-level members that name a table by name or ARN, whatever the operation.
const NAME_MEMBERS: [&str; 4] = [
    "TableName",
    "TargetTableName",
    "SourceTableName",
    "GlobalTableName",
];
const ARN_MEMBERS: [&str; 7] = [
    "TableArn",
    "SourceTableArn",
    "ResourceArn",
    "StreamArn",
    "BackupArn",
    "ExportArn",
    "ImportArn",
];

/// Lists every table `req` touches. Pure; see the module docs for how unknowns are treated.
pub fn request_tables(op: Operation, req: &Object) -> RequestTables {
    let mut out = RequestTables::default();
    for member in NAME_MEMBERS {
        for v in members(req, member) {
            match v.as_str() {
                Some(s) => out.name(s),
                None => out.unknown = true,
            }
        }
    }
    for member in ARN_MEMBERS {
        for v in members(req, member) {
            match v.as_str() {
                Some(s) => out.arn(s),
                None => out.unknown = true,
            }
        }
    }
    match op {
        Operation::BatchGetItem | Operation::BatchWriteItem => {
            for items in members(req, "RequestItems") {
                match items.as_object() {
                    Some(o) => o.keys().for_each(|t| out.name(t)),
                    None => out.unknown = true,
                }
            }
        }
        Operation::TransactGetItems | Operation::TransactWriteItems => {
            for list in members(req, "TransactItems") {
                for item in list.as_array().into_iter().flatten() {
                    let Some(item) = item.as_object() else {
                        out.unknown = true;
                        continue;
                    };
                    for (_, body) in item.iter() {
                        match body.as_object() {
                            Some(b) => {
                                for t in members(b, "TableName") {
                                    match t.as_str() {
                                        Some(s) => out.name(s),
                                        None => out.unknown = true,
                                    }
                                }
                            }
                            None => out.unknown = true,
                        }
                    }
                }
            }
        }
        Operation::ExecuteStatement => {
            for s in members(req, "Statement") {
                statement(&mut out, s);
            }
        }
        Operation::BatchExecuteStatement | Operation::ExecuteTransaction => {
            let list = if op == Operation::ExecuteTransaction {
                "TransactStatements"
            } else {
                "Statements"
            };
            for statements in members(req, list) {
                for s in statements.as_array().into_iter().flatten() {
                    match s.as_object() {
                        Some(o) => members(o, "Statement").for_each(|s| statement(&mut out, s)),
                        None => out.unknown = true,
                    }
                }
            }
        }
        Operation::ImportTable => {
            for p in members(req, "TableCreationParameters") {
                match p.as_object() {
                    Some(o) => {
                        for t in members(o, "TableName") {
                            match t.as_str() {
                                Some(s) => out.name(s),
                                None => out.unknown = true,
                            }
                        }
                    }
                    None => out.unknown = true,
                }
            }
        }
        Operation::Streams(crate::protocol::target::StreamsOperation::GetRecords) => {
            // AWS shard iterators start with the stream ARN; others (local engines) are opaque.
            for it in members(req, "ShardIterator") {
                match it.as_str() {
                    Some(s) => out.arn(s.split('|').next().unwrap_or("")),
                    None => out.unknown = true,
                }
            }
        }
        _ => {}
    }
    out.finish()
}

fn statement(out: &mut RequestTables, s: &Json) {
    match s.as_str().and_then(partiql_statement_table) {
        Some(t) => out.tables.push(t),
        None => out.unknown = true,
    }
}

/// One PartiQL token: a bare word, a quoted identifier, or one punctuation byte.
#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Punct(u8),
}

/// Tokenises a statement; None when it holds a comment or an unterminated quote (we refuse to
/// guess what such a statement reads).
fn tokens(statement: &str) -> Option<Vec<Token>> {
    let b = statement.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-')
            || c == b'/' && b.get(i + 1) == Some(&b'*')
        {
            return None;
        } else if c == b'"' || c == b'\'' {
            // "" (or '') inside a quoted run is an escaped quote.
            let mut text = Vec::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return None,
                    Some(&q) if q == c && b.get(i + 1) == Some(&c) => {
                        text.push(c);
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&x) => {
                        text.push(x);
                        i += 1;
                    }
                }
            }
            let text = String::from_utf8(text).ok()?;
            // String literals are values, never names: keep them out of the word stream.
            out.push(if c == b'"' {
                Token::Quoted(text)
            } else {
                Token::Punct(b'\'')
            });
        } else if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
                i += 1;
            }
            out.push(Token::Word(statement.get(start..i)?.to_owned()));
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    Some(out)
}

fn is_word(t: Option<&Token>, w: &str) -> bool {
    matches!(t, Some(Token::Word(x)) if x.eq_ignore_ascii_case(w))
}

/// The one table a PartiQL statement reads or writes: `SELECT ... FROM t`, `EXISTS(SELECT ...
/// FROM t ...)`, `INSERT INTO t`, `UPDATE t`, `DELETE FROM t` (`t` bare or quoted, `"t"."index"`
/// naming `t`). None when the statement is not of one of these shapes with exactly one `FROM`/
/// `INTO` table, or when [`partiql_table`] (what cache invalidation uses) reads another table.
pub fn partiql_statement_table(statement: &str) -> Option<String> {
    let toks = tokens(statement)?;
    let name_at = |i: usize| match toks.get(i) {
        Some(Token::Word(w)) | Some(Token::Quoted(w)) if !w.is_empty() => Some(w.clone()),
        _ => None,
    };
    let froms: Vec<usize> = toks
        .iter()
        .enumerate()
        .filter(|(_, t)| is_word(Some(t), "from"))
        .map(|(i, _)| i)
        .collect();
    let selects = toks.iter().filter(|t| is_word(Some(t), "select")).count();
    let first = toks.first();
    let at = if is_word(first, "select")
        || (is_word(first, "exists") && toks.get(1) == Some(&Token::Punct(b'(')))
    {
        if selects != 1 || froms.len() != 1 {
            return None;
        }
        froms[0] + 1
    } else if is_word(first, "insert") {
        if !is_word(toks.get(1), "into") || selects != 0 {
            return None;
        }
        2
    } else if is_word(first, "update") {
        if selects != 0 || !froms.is_empty() {
            return None;
        }
        1
    } else if is_word(first, "delete") {
        if !is_word(toks.get(1), "from") || selects != 0 || froms.len() != 1 {
            return None;
        }
        2
    } else {
        return None;
    };
    let table = name_at(at)?;
    // After the table (and an optional `."index"`), no second table may follow (`FROM A, B`).
    let mut next = at + 1;
    if toks.get(next) == Some(&Token::Punct(b'.')) {
        next += 2;
    }
    if matches!(toks.get(next), Some(Token::Punct(c)) if *c != b')') {
        return None;
    }
    // Writes must agree with what invalidation reads, or a key could write one table while
    // the cache forgets another.
    if !is_word(first, "select")
        && !is_word(first, "exists")
        && partiql_table(statement).as_deref() != Some(table.as_str())
    {
        return None;
    }
    Some(table)
}

/// Refuses `op` on `req` unless `key`'s policy allows the operation and every table it touches.
pub fn authorize(key: &ClientKey, op: Operation, req: &Object) -> Result<(), Error> {
    let policy = key.policy();
    let tables = request_tables(op, req);
    let denied = |resource: &str| {
        Error::AccessDenied(format!(
            "User: {} is not authorized to perform: dynamodb:{} on resource: {resource}",
            key.access_key_id(),
            op.as_str()
        ))
    };
    if !policy.allows_operation(op.as_str()) {
        let resource = tables
            .tables
            .first()
            .map_or_else(|| "*".to_owned(), |t| format!("table/{t}"));
        return Err(denied(&resource));
    }
    if let Some(t) = tables.tables.iter().find(|t| !policy.allows_table(t)) {
        return Err(denied(&format!("table/{t}")));
    }
    if tables.unknown && !policy.allows_all_tables() {
        return Err(denied(
            "table/* (a table in this request could not be determined; only a key allowed on all tables may send it)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::Secret;
    use crate::protocol::json::leaked;
    use serde_json::{Value, json};

    fn tables(op: Operation, v: Value) -> RequestTables {
        request_tables(op, leaked(v).as_object().unwrap())
    }

    fn known(list: &[&str]) -> RequestTables {
        RequestTables {
            tables: list.iter().map(|s| s.to_string()).collect(),
            unknown: false,
        }
    }

    fn key(t: &[&str], o: &[&str]) -> ClientKey {
        let s = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        ClientKey::new(
            "AKIDTEST",
            Secret::new("x"),
            Policy::new(&s(t), &s(o)).unwrap(),
        )
    }

    fn check(k: &ClientKey, op: Operation, v: Value) -> Result<(), Error> {
        authorize(k, op, leaked(v).as_object().unwrap())
    }

    #[test]
    fn globs() {
        for (p, t, m) in [
            ("*", "", true),
            ("*", "Orders", true),
            ("Orders*", "Orders", true),
            ("Orders*", "Orders-2024", true),
            ("Orders*", "orders", false),
            ("Orders*", "MyOrders", false),
            ("*Orders", "MyOrders", true),
            ("O?ders", "Orders", true),
            ("O?ders", "Oders", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("Orders", "Orders", true),
            ("Orders", "Orders2", false),
            ("**", "x", true),
        ] {
            assert_eq!(glob_match(p.as_bytes(), t.as_bytes()), m, "{p} ~ {t}");
        }
        let p = Policy::new(
            &["Orders*".into()],
            &["get*".into(), "dynamodb:Query".into()],
        )
        .unwrap();
        assert!(p.allows_operation("GetItem"));
        assert!(p.allows_operation("Query"));
        assert!(!p.allows_operation("PutItem"));
        assert!(!p.allows_all_tables());
        assert!(Policy::new(&["*".into()], &["GetItems".into()]).is_err());
        assert!(Policy::new(&["*".into()], &["GetRecords".into()]).is_ok());
        assert!(Policy::new(&[], &["*".into()]).is_err());
        assert!(Policy::new(&["*".into()], &[]).is_err());
    }

    #[test]
    fn single_table_operations_and_arns() {
        assert_eq!(
            tables(Operation::GetItem, json!({"TableName":"A","Key":{}})),
            known(&["A"])
        );
        assert_eq!(
            tables(
                Operation::Query,
                json!({"TableName":"arn:aws:dynamodb:us-east-1:1:table/A"})
            ),
            known(&["A"])
        );
        // A repeated member: every value counts.
        let dup = leaked(json!({})).as_object().unwrap().clone();
        let mut dup = dup;
        dup.0.push(("TableName".into(), Json::String("B".into())));
        dup.0.push(("TableName".into(), Json::String("A".into())));
        assert_eq!(request_tables(Operation::GetItem, &dup), known(&["A", "B"]));
        assert_eq!(tables(Operation::ListTables, json!({})), known(&[]));
        assert_eq!(tables(Operation::DescribeLimits, json!({})), known(&[]));
        assert_eq!(
            tables(
                Operation::TagResource,
                json!({"ResourceArn":"arn:aws:dynamodb:us-east-1:1:table/T"})
            ),
            known(&["T"])
        );
        assert!(
            tables(
                Operation::TagResource,
                json!({"ResourceArn":"arn:aws:iam::1:role/x"})
            )
            .unknown
        );
        assert!(tables(Operation::GetItem, json!({"TableName":5})).unknown);
        assert_eq!(
            tables(
                Operation::RestoreTableFromBackup,
                json!({"TargetTableName":"New","BackupArn":"arn:aws:dynamodb:us-east-1:1:table/Old/backup/0"})
            ),
            known(&["New", "Old"])
        );
        assert_eq!(
            tables(
                Operation::Streams(crate::protocol::target::StreamsOperation::DescribeStream),
                json!({"StreamArn":"arn:aws:dynamodb:us-east-1:1:table/S/stream/2024-01-01T00:00:00.000"})
            ),
            known(&["S"])
        );
        assert_eq!(
            tables(
                Operation::Streams(crate::protocol::target::StreamsOperation::GetRecords),
                json!({"ShardIterator":"arn:aws:dynamodb:us-east-1:1:table/S/stream/x|1|AAAA"})
            ),
            known(&["S"])
        );
        assert!(
            tables(
                Operation::Streams(crate::protocol::target::StreamsOperation::GetRecords),
                json!({"ShardIterator":"opaque"})
            )
            .unknown
        );
        assert_eq!(
            tables(
                Operation::ImportTable,
                json!({"TableCreationParameters":{"TableName":"I"}})
            ),
            known(&["I"])
        );
    }

    #[test]
    fn multi_table_operations() {
        assert_eq!(
            tables(
                Operation::BatchGetItem,
                json!({"RequestItems":{"B":{"Keys":[]},"arn:aws:dynamodb:us-east-1:1:table/A":{"Keys":[]},"A":{}}})
            ),
            known(&["A", "B"])
        );
        assert_eq!(
            tables(
                Operation::BatchWriteItem,
                json!({"RequestItems":{"C":[],"A":[]}})
            ),
            known(&["A", "C"])
        );
        assert_eq!(
            tables(
                Operation::TransactWriteItems,
                json!({"TransactItems":[
                    {"Put":{"TableName":"A","Item":{}}},
                    {"Update":{"TableName":"B","Key":{}}},
                    {"Delete":{"TableName":"C","Key":{}}},
                    {"ConditionCheck":{"TableName":"D","Key":{}}}]})
            ),
            known(&["A", "B", "C", "D"])
        );
        assert_eq!(
            tables(
                Operation::TransactGetItems,
                json!({"TransactItems":[{"Get":{"TableName":"A","Key":{}}},{"Get":{"TableName":"Z","Key":{}}}]})
            ),
            known(&["A", "Z"])
        );
        assert!(tables(Operation::BatchGetItem, json!({"RequestItems":[1]})).unknown);
    }

    #[test]
    fn partiql_statements() {
        for (s, t) in [
            ("SELECT * FROM A WHERE pk = 'x'", Some("A")),
            (
                "select a, b from \"A\".\"gsi\" where pk = 'from B'",
                Some("A"),
            ),
            ("SELECT fromage FROM \"My\"\"T\"", Some("My\"T")),
            ("EXISTS(SELECT * FROM A WHERE pk='a')", Some("A")),
            ("INSERT INTO A VALUE {'pk':'a'}", Some("A")),
            ("insert into \"A\" value {'pk':'a'}", Some("A")),
            ("UPDATE A SET x = 1 WHERE pk = 'a'", Some("A")),
            ("DELETE FROM \"A\" WHERE pk = 'a'", Some("A")),
            ("SELECT * FROM A --x\n", None),
            ("SELECT * /* c */ FROM A", None),
            ("SELECT * FROM A, B", None),
            ("SELECT * FROM \"A\".\"i\", B", None),
            ("SELECT * FROM A WHERE x IN (SELECT * FROM B)", None),
            ("SELECT * FROM", None),
            ("SELECT * FROM \"A", None),
            ("UPDATE", None),
            ("DROP TABLE A", None),
            ("", None),
            ("DELETE FROM A WHERE pk IN (SELECT pk FROM B)", None),
        ] {
            assert_eq!(partiql_statement_table(s).as_deref(), t, "{s}");
        }
        assert_eq!(
            tables(
                Operation::ExecuteStatement,
                json!({"Statement":"SELECT * FROM A"})
            ),
            known(&["A"])
        );
        assert_eq!(
            tables(
                Operation::BatchExecuteStatement,
                json!({"Statements":[{"Statement":"SELECT * FROM A"},{"Statement":"UPDATE B SET x=1"}]})
            ),
            known(&["A", "B"])
        );
        let t = tables(
            Operation::ExecuteTransaction,
            json!({"TransactStatements":[{"Statement":"UPDATE B SET x=1"},{"Statement":"garbage"}]}),
        );
        assert_eq!(t.tables, ["B"]);
        assert!(t.unknown);
    }

    #[test]
    fn authorize_operations_and_tables() {
        let reader = key(
            &["A*"],
            &["GetItem", "Query", "BatchGetItem", "ExecuteStatement"],
        );
        check(&reader, Operation::GetItem, json!({"TableName":"A1"})).unwrap();
        let e = check(&reader, Operation::GetItem, json!({"TableName":"B"})).unwrap_err();
        assert_eq!(
            e.type_name(),
            "com.amazon.coral.service#AccessDeniedException"
        );
        assert_eq!(
            e.to_string(),
            "User: AKIDTEST is not authorized to perform: dynamodb:GetItem on resource: table/B"
        );
        let e = check(&reader, Operation::PutItem, json!({"TableName":"A1"})).unwrap_err();
        assert!(
            e.to_string()
                .contains("dynamodb:PutItem on resource: table/A1"),
            "{e}"
        );
        let e = check(
            &reader,
            Operation::BatchGetItem,
            json!({"RequestItems":{"A":{},"B":{}}}),
        )
        .unwrap_err();
        assert!(e.to_string().ends_with("table/B"), "{e}");
        check(
            &reader,
            Operation::BatchGetItem,
            json!({"RequestItems":{"A":{},"A2":{}}}),
        )
        .unwrap();
        // An unparsable statement needs a key allowed on all tables.
        let e = check(
            &reader,
            Operation::ExecuteStatement,
            json!({"Statement":"SELECT * /**/ FROM A"}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("could not be determined"), "{e}");
        check(
            &reader,
            Operation::ExecuteStatement,
            json!({"Statement":"SELECT * FROM A"}),
        )
        .unwrap();
        let all = key(&["*"], &["ExecuteStatement"]);
        check(
            &all,
            Operation::ExecuteStatement,
            json!({"Statement":"SELECT * /**/ FROM A"}),
        )
        .unwrap();
        // No table: allowed when the operation is.
        let lister = key(&["A"], &["ListTables", "DescribeLimits"]);
        check(&lister, Operation::ListTables, json!({})).unwrap();
        let e = check(&lister, Operation::DescribeEndpoints, json!({})).unwrap_err();
        assert!(e.to_string().ends_with("on resource: *"), "{e}");
    }
}
