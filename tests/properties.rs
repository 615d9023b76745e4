//! Property tests (proptest) for cache keys and invalidation tags, through the public planner:
//! a request *model* is generated, then rendered to JSON text in many ways (member order at
//! every depth, whitespace, placeholder names, number spellings, set order, table ARN), and
//! `plan::plan` turns the text into keys, scopes and invalidations.
//!
//! - keys: renderings of one model share a key; models differing in one key-relevant member
//!   never do; equal numbers share a key whatever their spelling, different numbers never do;
//! - tags: a write to partition P of table T moves the stamp of every read on (T, P) (item,
//!   table and LSI queries) and of T's GSI queries and scans, whatever the spelling of P, and
//!   moves another table's (or partition's) stamp only where the counter slots collide, which
//!   `generation.rs` allows (collisions cost misses, not staleness).
//!
//! Case counts stay at proptest's default (256), so `cargo test` stays fast.

use ddbcache::cache::generation::scope_slots;
use ddbcache::cache::key::normalize_number;
use ddbcache::cache::{Generations, Invalidation, Scope};
use ddbcache::plan::{Plan, plan};
use ddbcache::protocol::Operation;
use ddbcache::protocol::json::Json;
use ddbcache::schema::TableSchema;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

// ---------------------------------------------------------------------------------------------
// The model: what a request means, with one representation per meaning.

/// A DynamoDB number: zero, or `sign 0.DIGITS x 10^exp` with no leading or trailing zero digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Num {
    Zero,
    NonZero {
        negative: bool,
        digits: String,
        exp: i32,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Av {
    S(String),
    N(Num),
    B(String),
    Bool(bool),
    Null,
    Ss(BTreeSet<String>),
    Ns(BTreeSet<Num>),
    L(Vec<Av>),
    M(BTreeMap<String, Av>),
}

/// An attribute named in an expression: literally, or through an `ExpressionAttributeNames`
/// placeholder (the two are different requests to the key builder, by design).
#[derive(Debug, Clone, PartialEq)]
struct NameRef {
    name: String,
    placeholder: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Clause {
    attr: NameRef,
    op: &'static str,
    value: Av,
}

#[derive(Debug, Clone, PartialEq)]
struct Read {
    op: Operation,
    table: String,
    /// GetItem's `Key`, or a Query's key condition `pk = value`.
    pk: Av,
    /// Whether the key condition names `pk` through a placeholder.
    pk_placeholder: bool,
    sk: Option<Av>,
    filter: Vec<Clause>,
    projection: Vec<NameRef>,
    limit: Option<u32>,
    exclusive_start: Option<BTreeMap<String, Av>>,
    index: Option<String>,
    forward: Option<bool>,
}

const READ_FIELDS: usize = 11;

impl Read {
    /// The request with fields its operation does not render cleared: a GetItem has no key
    /// condition, so how that would name `pk` is no part of it.
    fn meaning(&self) -> Read {
        let mut r = self.clone();
        if r.op == Operation::GetItem {
            r.pk_placeholder = false;
        }
        r
    }

    /// `self` with field `i` taken from `other`.
    fn splice(&self, other: &Read, i: usize) -> Read {
        let mut out = self.clone();
        match i {
            0 => out.op = other.op,
            1 => out.table = other.table.clone(),
            2 => out.pk = other.pk.clone(),
            3 => out.sk = other.sk.clone(),
            4 => out.filter = other.filter.clone(),
            5 => out.projection = other.projection.clone(),
            6 => out.limit = other.limit,
            7 => out.exclusive_start = other.exclusive_start.clone(),
            8 => out.index = other.index.clone(),
            9 => out.forward = other.forward,
            _ => out.pk_placeholder = other.pk_placeholder,
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        1 => Just(Num::Zero),
        6 => (any::<bool>(), "[1-9]([0-9]{0,6}[1-9])?", -20i32..20).prop_map(
            |(negative, digits, exp)| Num::NonZero { negative, digits, exp }
        ),
    ]
}

fn av() -> impl Strategy<Value = Av> {
    let leaf = prop_oneof![
        "\\PC{0,6}".prop_map(Av::S),
        num().prop_map(Av::N),
        "[A-Za-z0-9+/]{0,8}".prop_map(Av::B),
        any::<bool>().prop_map(Av::Bool),
        Just(Av::Null),
        prop::collection::btree_set("[a-c]{1,2}", 1..4).prop_map(Av::Ss),
        prop::collection::btree_set(num(), 1..4).prop_map(Av::Ns),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Av::L),
            prop::collection::btree_map("[a-cN]{1,2}", inner, 0..3).prop_map(Av::M),
        ]
    })
}

/// Key attribute values: DynamoDB keys are strings, numbers or binary.
fn key_av() -> impl Strategy<Value = Av> {
    prop_oneof![
        "\\PC{1,6}".prop_map(Av::S),
        num().prop_map(Av::N),
        "[A-Za-z0-9+/]{1,8}".prop_map(Av::B),
    ]
}

fn name_ref() -> impl Strategy<Value = NameRef> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,4}".prop_map(|name| NameRef {
            name,
            placeholder: false
        }),
        // Any name at all can be reached through a placeholder.
        "\\PC{1,6}".prop_map(|name| NameRef {
            name,
            placeholder: true
        }),
    ]
}

fn clause() -> impl Strategy<Value = Clause> {
    (
        name_ref(),
        prop::sample::select(vec!["=", "<>", "<", ">="]),
        av(),
    )
        .prop_map(|(attr, op, value)| Clause { attr, op, value })
}

fn read() -> impl Strategy<Value = Read> {
    (
        (
            prop::sample::select(vec![Operation::GetItem, Operation::Query, Operation::Scan]),
            "[A-Za-z0-9_.-]{1,6}",
            key_av(),
            prop::option::of(key_av()),
            prop::collection::vec(clause(), 0..3),
        ),
        (
            prop::collection::vec(name_ref(), 0..3),
            prop::option::of(0u32..1000),
            prop::option::of(prop::collection::btree_map("pk|sk|g", key_av(), 1..3)),
            prop::option::of(prop::sample::select(vec!["lsi", "gsi", "other"])),
            prop::option::of(any::<bool>()),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (op, table, pk, sk, filter),
                (projection, limit, exclusive_start, index, forward, pk_placeholder),
            )| Read {
                op,
                table,
                pk,
                pk_placeholder,
                sk,
                filter,
                projection,
                limit,
                exclusive_start,
                index: index.map(str::to_string),
                forward,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Rendering: one model, many texts. Every choice below is drawn from `rng`, so two seeds give
// two renderings of the same request.

/// A JSON tree whose objects are rendered in a random member order.
enum J {
    Str(String),
    Raw(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn obj(members: Vec<(&str, J)>) -> J {
    J::Obj(
        members
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn ws(out: &mut String, rng: &mut fastrand::Rng) {
    for _ in 0..rng.usize(0..2) {
        out.push([' ', '\n', '\t', '\r'][rng.usize(0..4)]);
    }
}

fn render(j: &J, rng: &mut fastrand::Rng, out: &mut String) {
    ws(out, rng);
    match j {
        J::Str(s) => out.push_str(&json_string(s, rng)),
        J::Raw(r) => out.push_str(r),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(item, rng, out);
            }
            out.push(']');
        }
        J::Obj(members) => {
            let mut order: Vec<usize> = (0..members.len()).collect();
            rng.shuffle(&mut order);
            out.push('{');
            for (n, &i) in order.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                ws(out, rng);
                out.push_str(&json_string(&members[i].0, rng));
                ws(out, rng);
                out.push(':');
                render(&members[i].1, rng, out);
            }
            out.push('}');
        }
    }
    ws(out, rng);
}

/// `s` as a JSON string, sometimes with every character `\u`-escaped (another spelling of the
/// same string; the decoder then hands the key builder an owned copy).
fn json_string(s: &str, rng: &mut fastrand::Rng) -> String {
    if rng.usize(0..4) > 0 {
        return serde_json::to_string(s).unwrap();
    }
    let mut out = String::from("\"");
    for unit in s.encode_utf16() {
        let _ = write!(out, "\\u{unit:04x}");
    }
    out.push('"');
    out
}

/// One spelling of `n`: leading and trailing zeros, the point anywhere, an exponent to match,
/// `e` or `E`, an explicit `+`.
fn spell(n: &Num, rng: &mut fastrand::Rng) -> String {
    let (negative, digits, exp) = match n {
        Num::Zero => {
            let zeros = ["0", "0.0", "-0", "+0", "0E5", "00.000e-3", ".0"];
            return zeros[rng.usize(0..zeros.len())].to_string();
        }
        Num::NonZero {
            negative,
            digits,
            exp,
        } => (*negative, digits, *exp),
    };
    let padded = format!(
        "{}{digits}{}",
        "0".repeat(rng.usize(0..3)),
        "0".repeat(rng.usize(0..3))
    );
    let lead = padded.len() - padded.trim_start_matches('0').len();
    // value = 0.digits * 10^exp = 0.padded * 10^(exp + lead): a point after `p` characters of
    // `padded` leaves `exp + lead - p` to the exponent.
    let p = rng.usize(0..=padded.len());
    let e = i64::from(exp) + lead as i64 - p as i64;
    let mut out = String::new();
    if negative {
        out.push('-');
    } else if rng.bool() && rng.bool() {
        out.push('+');
    }
    out.push_str(&padded[..p]);
    if p < padded.len() || rng.bool() {
        out.push('.');
    }
    out.push_str(&padded[p..]);
    if e != 0 || rng.bool() {
        out.push(if rng.bool() { 'e' } else { 'E' });
        let _ = write!(out, "{e}");
    }
    if out.starts_with('.') || out.starts_with("-.") || out.starts_with("+.") {
        // Keep to spellings every SDK writes: a digit before the point.
        out = out.replacen('.', "0.", 1);
    }
    out
}

fn render_av(v: &Av, rng: &mut fastrand::Rng) -> J {
    let shuffled = |mut items: Vec<J>, rng: &mut fastrand::Rng| {
        rng.shuffle(&mut items);
        J::Arr(items)
    };
    match v {
        Av::S(s) => obj(vec![("S", J::Str(s.clone()))]),
        Av::N(n) => obj(vec![("N", J::Str(spell(n, rng)))]),
        Av::B(b) => obj(vec![("B", J::Str(b.clone()))]),
        Av::Bool(b) => obj(vec![("BOOL", J::Raw(b.to_string()))]),
        Av::Null => obj(vec![("NULL", J::Raw("true".into()))]),
        Av::Ss(set) => {
            let items = set.iter().map(|s| J::Str(s.clone())).collect();
            obj(vec![("SS", shuffled(items, rng))])
        }
        Av::Ns(set) => {
            let items = set.iter().map(|n| J::Str(spell(n, rng))).collect();
            obj(vec![("NS", shuffled(items, rng))])
        }
        Av::L(items) => obj(vec![(
            "L",
            J::Arr(items.iter().map(|v| render_av(v, rng)).collect()),
        )]),
        Av::M(map) => obj(vec![(
            "M",
            J::Obj(
                map.iter()
                    .map(|(k, v)| (k.clone(), render_av(v, rng)))
                    .collect(),
            ),
        )]),
    }
}

/// Placeholders drawn fresh for each rendering: consistent within it, different across.
struct Placeholders {
    tag: String,
    names: Vec<(String, J)>,
    values: Vec<(String, J)>,
}

impl Placeholders {
    fn new(rng: &mut fastrand::Rng) -> Self {
        let tag: String = (0..rng.usize(1..4)).map(|_| rng.alphabetic()).collect();
        Placeholders {
            tag,
            names: Vec::new(),
            values: Vec::new(),
        }
    }

    fn name(&mut self, r: &NameRef) -> String {
        if !r.placeholder {
            return r.name.clone();
        }
        if let Some((p, _)) = self
            .names
            .iter()
            .find(|(_, n)| matches!(n, J::Str(s) if *s == r.name))
        {
            return p.clone();
        }
        let p = format!("#{}_{}", self.tag, self.names.len());
        self.names.push((p.clone(), J::Str(r.name.clone())));
        p
    }

    fn value(&mut self, v: &Av, rng: &mut fastrand::Rng) -> String {
        let p = format!(":{}_{}", self.tag, self.values.len());
        self.values.push((p.clone(), render_av(v, rng)));
        p
    }
}

fn table_text(table: &str, rng: &mut fastrand::Rng) -> J {
    if rng.usize(0..4) == 0 {
        J::Str(format!(
            "arn:aws:dynamodb:eu-west-1:123456789012:table/{table}"
        ))
    } else {
        J::Str(table.to_string())
    }
}

fn render_read(r: &Read, seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    let rng = &mut rng;
    let mut p = Placeholders::new(rng);
    let mut members = vec![("TableName", table_text(&r.table, rng))];
    let key_ref = NameRef {
        name: "pk".into(),
        placeholder: r.pk_placeholder,
    };
    match r.op {
        Operation::GetItem => {
            let mut key = vec![("pk", render_av(&r.pk, rng))];
            if let Some(sk) = &r.sk {
                key.push(("sk", render_av(sk, rng)));
            }
            members.push(("Key", obj(key)));
        }
        _ => {
            // A Scan gets the key condition too (DynamoDB would refuse it, which is no matter to
            // the key builder), so every field of the model reaches the key whatever the op.
            let mut cond = format!("{} = {}", p.name(&key_ref), p.value(&r.pk, rng));
            if let Some(sk) = &r.sk {
                let _ = write!(cond, " AND sk > {}", p.value(sk, rng));
            }
            members.push(("KeyConditionExpression", J::Str(cond)));
        }
    }
    if !r.filter.is_empty() {
        let text: Vec<String> = r
            .filter
            .iter()
            .map(|c| format!("{} {} {}", p.name(&c.attr), c.op, p.value(&c.value, rng)))
            .collect();
        members.push(("FilterExpression", J::Str(text.join(" AND "))));
    }
    if !r.projection.is_empty() {
        let names: Vec<String> = r.projection.iter().map(|n| p.name(n)).collect();
        members.push(("ProjectionExpression", J::Str(names.join(", "))));
    }
    if let Some(limit) = r.limit {
        members.push(("Limit", J::Raw(limit.to_string())));
    }
    if let Some(esk) = &r.exclusive_start {
        let key = esk
            .iter()
            .map(|(k, v)| (k.clone(), render_av(v, rng)))
            .collect();
        members.push(("ExclusiveStartKey", J::Obj(key)));
    }
    if let Some(index) = &r.index {
        members.push(("IndexName", J::Str(index.clone())));
    }
    if let Some(forward) = r.forward {
        members.push(("ScanIndexForward", J::Raw(forward.to_string())));
    }
    // Members that never change the answer: present or not, they must not split entries.
    if rng.bool() {
        members.push(("ConsistentRead", J::Raw("false".into())));
    }
    if rng.bool() {
        members.push(("ReturnConsumedCapacity", J::Str("TOTAL".into())));
    }
    if !p.names.is_empty() {
        members.push(("ExpressionAttributeNames", J::Obj(p.names)));
    }
    if !p.values.is_empty() {
        members.push(("ExpressionAttributeValues", J::Obj(p.values)));
    }
    let mut out = String::new();
    render(&obj(members), rng, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Planning.

fn schema() -> TableSchema {
    TableSchema {
        partition_key: "pk".into(),
        local_indexes: vec!["lsi".into()],
        global_indexes: vec!["gsi".into()],
    }
}

/// Plans a request body, every table having [`schema`] (or none when `known` is false).
fn plan_text(op: Operation, body: &str, known: bool) -> Plan {
    let s = schema();
    let json = Json::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{e}: {body}"));
    let req = json.as_object().expect("an object");
    plan(op, req, |_| known.then_some(&s))
}

fn read_plan(op: Operation, body: &str) -> ddbcache::plan::ReadPlan {
    match plan_text(op, body, true) {
        Plan::Read(r) => r,
        other => panic!("not a cacheable read: {other:?}\n{body}"),
    }
}

fn key_of(r: &Read, seed: u64) -> Vec<u8> {
    read_plan(r.op, &render_read(r, seed)).key.to_vec()
}

// ---------------------------------------------------------------------------------------------
// Keys.

proptest! {
    /// (1) Member order at every depth, whitespace, escapes, placeholder names, number
    /// spellings, set order, a table ARN and answer-neutral members never change the key.
    #[test]
    fn renderings_of_one_request_share_a_key(r in read(), a in any::<u64>(), b in any::<u64>()) {
        let (ka, kb) = (key_of(&r, a), key_of(&r, b));
        prop_assert_eq!(
            &ka, &kb,
            "\n{}\n{}", render_read(&r, a), render_read(&r, b)
        );
    }

    /// (2) Two requests differing in one key-relevant member (operation, table, key value,
    /// sort key, filter, projection, limit, ExclusiveStartKey, index, direction, how the key
    /// condition names the key) never share a
    /// key, however each is rendered.
    #[test]
    fn requests_differing_in_one_member_never_share_a_key(
        r in read(), other in read(), field in 0..READ_FIELDS, a in any::<u64>(), b in any::<u64>()
    ) {
        let changed = r.splice(&other, field);
        prop_assume!(changed.meaning() != r.meaning());
        prop_assert_ne!(
            key_of(&r, a), key_of(&changed, b),
            "field {}:\n{}\n{}", field, render_read(&r, a), render_read(&changed, b)
        );
    }

    /// (3) Equal numbers share a key however they are spelt (`1`, `1.0`, `10E-1`, `+0.1e1`);
    /// different numbers never do.
    #[test]
    fn numbers_share_a_key_exactly_when_equal(
        x in num(), y in num(), a in any::<u64>(), b in any::<u64>()
    ) {
        let mut rng = fastrand::Rng::with_seed(a);
        let (sx1, sx2, sy) = (spell(&x, &mut rng), spell(&x, &mut rng), spell(&y, &mut rng));
        prop_assert_eq!(normalize_number(&sx1), normalize_number(&sx2), "{} vs {}", sx1, sx2);
        prop_assert_eq!(key_of(&get_number(&x), a), key_of(&get_number(&x), b));
        if x == y {
            prop_assert_eq!(normalize_number(&sx1), normalize_number(&sy), "{} vs {}", sx1, sy);
        } else {
            prop_assert_ne!(normalize_number(&sx1), normalize_number(&sy), "{} vs {}", sx1, sy);
            prop_assert_ne!(key_of(&get_number(&x), a), key_of(&get_number(&y), b));
        }
    }
}

/// A GetItem whose sort key is the number `n`.
fn get_number(n: &Num) -> Read {
    Read {
        sk: Some(Av::N(n.clone())),
        ..plain_read(Operation::GetItem, "T", Av::S("p".into()), None)
    }
}

fn plain_read(op: Operation, table: &str, pk: Av, index: Option<&str>) -> Read {
    Read {
        op,
        table: table.into(),
        pk,
        pk_placeholder: false,
        sk: None,
        filter: vec![],
        projection: vec![],
        limit: None,
        exclusive_start: None,
        index: index.map(str::to_string),
        forward: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Invalidation tags.

#[derive(Debug, Clone, Copy)]
enum Write {
    Put,
    Update,
    Delete,
    Batch,
    Transact,
    PartiQl,
}

fn write_kind() -> impl Strategy<Value = Write> {
    prop::sample::select(vec![
        Write::Put,
        Write::Update,
        Write::Delete,
        Write::Batch,
        Write::Transact,
        Write::PartiQl,
    ])
}

/// A write of the item (`pk`, `"s"`) of `table`, rendered from `rng`.
fn write_body(w: Write, table: &str, pk: &Av, rng: &mut fastrand::Rng) -> (Operation, String) {
    let key = |rng: &mut fastrand::Rng| {
        obj(vec![
            ("pk", render_av(pk, rng)),
            ("sk", obj(vec![("S", J::Str("s".into()))])),
        ])
    };
    let t = table_text(table, rng);
    let (op, body) = match w {
        Write::Put => (
            Operation::PutItem,
            obj(vec![("TableName", t), ("Item", key(rng))]),
        ),
        Write::Update => (
            Operation::UpdateItem,
            obj(vec![
                ("TableName", t),
                ("Key", key(rng)),
                ("UpdateExpression", J::Str("SET x = x + :one".into())),
                (
                    "ExpressionAttributeValues",
                    obj(vec![(":one", obj(vec![("N", J::Str("1".into()))]))]),
                ),
            ]),
        ),
        Write::Delete => (
            Operation::DeleteItem,
            obj(vec![("TableName", t), ("Key", key(rng))]),
        ),
        Write::Batch => {
            let J::Str(t) = t else {
                unreachable!("a table is a string")
            };
            let put = obj(vec![("PutRequest", obj(vec![("Item", key(rng))]))]);
            let request_items = J::Obj(vec![(t, J::Arr(vec![put]))]);
            (
                Operation::BatchWriteItem,
                obj(vec![("RequestItems", request_items)]),
            )
        }
        Write::Transact => {
            let update = obj(vec![(
                "Update",
                obj(vec![
                    ("TableName", t),
                    ("Key", key(rng)),
                    ("UpdateExpression", J::Str("REMOVE x".into())),
                ]),
            )]);
            (
                Operation::TransactWriteItems,
                obj(vec![("TransactItems", J::Arr(vec![update]))]),
            )
        }
        Write::PartiQl => {
            let statement = format!("UPDATE \"{table}\" SET x = 1 WHERE pk = ?");
            (
                Operation::ExecuteStatement,
                obj(vec![("Statement", J::Str(statement))]),
            )
        }
    };
    let mut out = String::new();
    render(&body, rng, &mut out);
    (op, out)
}

/// The scopes of reads of partition `pk` of `table` (GetItem, Query on the table and on its
/// LSI) and of `table` as a whole (Scan, GSI Query), each rendered from `rng`.
fn read_scopes(table: &str, pk: &Av, rng: &mut fastrand::Rng) -> (Vec<Scope>, Vec<Scope>) {
    let scope =
        |r: Read, rng: &mut fastrand::Rng| read_plan(r.op, &render_read(&r, rng.u64(..))).scope;
    let partition = vec![
        scope(plain_read(Operation::GetItem, table, pk.clone(), None), rng),
        scope(plain_read(Operation::Query, table, pk.clone(), None), rng),
        scope(
            plain_read(Operation::Query, table, pk.clone(), Some("lsi")),
            rng,
        ),
    ];
    let whole = vec![
        scope(plain_read(Operation::Scan, table, pk.clone(), None), rng),
        scope(
            plain_read(Operation::Query, table, pk.clone(), Some("gsi")),
            rng,
        ),
    ];
    (partition, whole)
}

fn stamps(g: &Generations, scopes: &[Scope]) -> Vec<[u64; 2]> {
    scopes.iter().map(|s| g.stamp(s)).collect()
}

/// Asserts that every scope in `scopes` that moved shares a counter slot with what was written
/// (the table's slot for table scopes, the partition's for partition scopes), which is the only
/// way `generation.rs` lets a write reach a scope it does not cover; and that none moved its
/// epoch part unless `epoch_may_move`.
fn moved_only_by_collision(
    scopes: &[Scope],
    before: &[[u64; 2]],
    after: &[[u64; 2]],
    written: &Scope,
    epoch_may_move: bool,
) -> Result<(), TestCaseError> {
    let (written_table, written_own) = scope_slots(written);
    for ((s, b), a) in scopes.iter().zip(before).zip(after) {
        if !epoch_may_move {
            prop_assert_eq!(a[0], b[0], "a partition write moved the epoch of {:?}", s);
        }
        if a != b {
            let (table_slot, own) = scope_slots(s);
            let collides = match (s, written) {
                (Scope::Table(_), _) => table_slot == written_table,
                (Scope::Partition { .. }, Scope::Partition { .. }) if !epoch_may_move => {
                    own == written_own
                }
                (Scope::Partition { .. }, _) => table_slot == written_table,
            };
            prop_assert!(
                collides,
                "{:?} moved without sharing a counter with {:?}",
                s,
                written
            );
        }
    }
    Ok(())
}

proptest! {
    /// (4a) An item write to partition P of table T (PutItem, UpdateItem, DeleteItem,
    /// BatchWriteItem, TransactWriteItems; table by name or ARN, P spelt any way) is tagged with
    /// exactly the partition its reads are scoped to, and moves the stamp of every read of
    /// (T, P) and of T's scans and GSI queries. Another partition of T, and every scope of
    /// another table, keep their epoch and move only through a counter-slot collision.
    #[test]
    fn a_partition_write_moves_its_partition_and_table_reads(
        w in write_kind().prop_filter("item writes", |w| !matches!(w, Write::PartiQl)),
        table in "[A-Za-z0-9_.-]{1,6}",
        other_table in "[A-Za-z0-9_.-]{1,6}",
        pk in key_av(),
        other_pk in key_av(),
        seed in any::<u64>(),
    ) {
        prop_assume!(table != other_table && pk != other_pk);
        let rng = &mut fastrand::Rng::with_seed(seed);
        let (op, body) = write_body(w, &table, &pk, rng);
        let Plan::Write(invalidations) = plan_text(op, &body, true) else {
            panic!("not a write: {body}");
        };
        let (partition, whole) = read_scopes(&table, &pk, rng);
        let Scope::Partition { table: t, pk: p } = &partition[0] else {
            panic!("GetItem is not partition-scoped: {:?}", partition[0]);
        };
        prop_assert_eq!(
            &invalidations,
            &vec![Invalidation::Partition { table: t.clone(), pk: p.clone() }],
            "{}", body
        );
        prop_assert!(partition.iter().all(|s| *s == partition[0]), "{:?}", partition);

        let (other_part, _) = read_scopes(&table, &other_pk, rng);
        let (other_t_part, other_t_whole) = read_scopes(&other_table, &pk, rng);
        let others: Vec<Scope> = [&other_part[..1], &other_t_part[..1], &other_t_whole[..1]].concat();

        let g = Generations::new();
        // Some unrelated history, so no counter starts at zero.
        g.bump(&Invalidation::Partition { table: "h".into(), pk: "1".into() });
        g.bump(&Invalidation::Table("h".into()));
        let covered: Vec<Scope> = [partition.clone(), whole].concat();
        let (before, before_others) = (stamps(&g, &covered), stamps(&g, &others));
        for inv in &invalidations {
            g.bump(inv);
        }
        for ((s, b), a) in covered.iter().zip(&before).zip(stamps(&g, &covered)) {
            prop_assert_ne!(*b, a, "{:?} did not move after {}", s, body);
        }
        moved_only_by_collision(&others, &before_others, &stamps(&g, &others), &partition[0], false)?;
    }

    /// (4b) A write whose partition is unknown (no schema yet) or a PartiQL write invalidates
    /// its whole table: every partition and table-wide read of T moves; another table's scopes
    /// move only if they share T's table counter slot.
    #[test]
    fn a_table_write_moves_every_read_of_its_table(
        w in write_kind(),
        table in "[A-Za-z0-9_.-]{1,6}",
        other_table in "[A-Za-z0-9_.-]{1,6}",
        pk in key_av(),
        read_pk in key_av(),
        seed in any::<u64>(),
    ) {
        prop_assume!(table != other_table);
        let rng = &mut fastrand::Rng::with_seed(seed);
        let (op, body) = write_body(w, &table, &pk, rng);
        let Plan::Write(invalidations) = plan_text(op, &body, false) else {
            panic!("not a write: {body}");
        };
        prop_assert_eq!(&invalidations, &vec![Invalidation::Table(table.clone())], "{}", body);
        let (partition, whole) = read_scopes(&table, &read_pk, rng);
        let (other_part, other_whole) = read_scopes(&other_table, &read_pk, rng);
        let covered = [partition, whole].concat();
        let others = [other_part, other_whole].concat();
        let g = Generations::new();
        let (before, before_others) = (stamps(&g, &covered), stamps(&g, &others));
        g.bump(&invalidations[0]);
        for ((s, b), a) in covered.iter().zip(&before).zip(stamps(&g, &covered)) {
            prop_assert_ne!(*b, a, "{:?} did not move after {}", s, body);
        }
        moved_only_by_collision(
            &others, &before_others, &stamps(&g, &others), &Scope::Table(table), true,
        )?;
    }
}
