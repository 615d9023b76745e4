//! `cruddur`: the single-table messaging design of the Cruddur app (AWS cloud project bootcamp).
//!
//! Table `cruddur-messages`, string keys `pk`/`sk`, and the app's GSI `message-group-sk-index`
//! (`message_group_uuid`, `sk`):
//! - a message group, once per member: `pk = "GRP#<user_uuid>"`, `sk = <last_message_at>`,
//!   `message_group_uuid`, `other_user_uuid`, `other_user_display_name`, `other_user_handle`,
//!   `message` (the last message);
//! - a message: `pk = "MSG#<message_group_uuid>"`, `sk = <created_at>`, `message_uuid`,
//!   `user_uuid`, `user_display_name`, `user_handle`, `message`.
//!
//! Times are ISO 8601 with microseconds, so `sk` sorts chronologically. Operations (default mix
//! 60/25/12/3 %): list a group's messages newest first, list a user's groups newest first (both
//! `Query ScanIndexForward=false Limit=20`), a message in an existing group (one
//! TransactWriteItems: Put the message, and for both members Delete the group item under its old
//! `sk` and Put it under the new one), a message in a new group (Put the message and both
//! members' group items).
//!
//! Seed data is made with the `fake` crate from `--data-seed` (so seeding twice writes the same
//! items): `--keys` users (default 2000) in `users * groups_per_user / 2` groups of about
//! `--messages-per-group` messages. Before a run the tool reads the target's current groups (a
//! consistent Scan of the `GRP#` items), so runs can follow each other without re-seeding.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fake::Fake;
use fake::faker::internet::en::Username;
use fake::faker::lorem::en::Sentence;
use fake::faker::name::en::Name;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use super::keys::KeyPicker;
use super::{Factory, Generator, Op, Request, SeedData, TableDef, json_str};
use crate::cli::{CruddurMix, WorkloadArgs};
use crate::endpoint::Session;

/// 2026-01-01T00:00:00Z: seed messages are spread over the 30 days before it.
const SEED_EPOCH_US: u64 = 1_767_225_600_000_000;
const DAY_US: u64 = 86_400_000_000;
/// Scan pages read at most while loading a target's groups.
const MAX_SCAN_PAGES: usize = 100_000;

#[derive(Debug, Clone)]
pub struct Cruddur {
    table: String,
    users: u64,
    groups_per_user: u32,
    messages_per_group: u32,
    page_size: u32,
    zipf: f64,
    mix: CruddurMix,
    data_seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct User {
    uuid: String,
    display_name: String,
    handle: String,
}

/// A message group as the run sees it.
#[derive(Debug, Clone)]
struct Group {
    uuid: String,
    users: [usize; 2],
    /// `sk` of both members' group items, in microseconds since the epoch.
    last_at: u64,
    /// A write to this group is in flight.
    busy: bool,
}

impl Cruddur {
    pub fn new(args: &WorkloadArgs) -> Self {
        Cruddur {
            table: args.table(),
            users: args.keys(),
            groups_per_user: args.groups_per_user.max(1),
            messages_per_group: args.messages_per_group.max(1),
            page_size: args.page_size,
            zipf: args.zipf,
            mix: args.cruddur_mix,
            data_seed: args.data_seed,
        }
    }

    pub fn table_def(&self) -> TableDef {
        TableDef {
            name: self.table.clone(),
            hash_key: "pk",
            range_key: Some("sk"),
            gsis: vec![("message-group-sk-index", "message_group_uuid", "sk")],
        }
    }

    /// The whole seed data set: users, groups, messages, then the group items.
    pub fn seed_data(&self) -> CruddurSeed {
        let mut rng = SmallRng::seed_from_u64(self.data_seed);
        let n = self.users as usize;
        let mut handles = HashSet::new();
        let users: Vec<User> = (0..n)
            .map(|i| {
                let uuid = uuid_v4(rng.random(), rng.random());
                let display_name: String = Name().fake_with_rng(&mut rng);
                let mut handle = Username()
                    .fake_with_rng::<String, _>(&mut rng)
                    .to_lowercase();
                if !handles.insert(handle.clone()) {
                    handle = format!("{handle}{i}");
                    handles.insert(handle.clone());
                }
                User {
                    uuid,
                    display_name,
                    handle,
                }
            })
            .collect();

        let wanted = (n * self.groups_per_user as usize / 2).max(1);
        let mut pairs = HashSet::new();
        let mut items = Vec::new();
        let mut group_items = Vec::new();
        let per_group = self.messages_per_group as u64;
        for g in 0..wanted {
            let a = g % n;
            let Some(b) = (0..20)
                .map(|_| rng.random_range(0..n))
                .find(|&b| b != a && !pairs.contains(&(a.min(b), a.max(b))))
            else {
                continue;
            };
            pairs.insert((a.min(b), a.max(b)));
            let group_uuid = uuid_v4(rng.random(), rng.random());
            let count = rng.random_range((per_group / 2).max(1)..=(per_group * 3 / 2).max(1));
            let mut at = SEED_EPOCH_US - rng.random_range(0..30 * DAY_US);
            let mut last = String::new();
            for _ in 0..count {
                at += rng.random_range(1_000_000..3 * 3_600_000_000);
                let sender = &users[if rng.random_bool(0.5) { a } else { b }];
                last = Sentence(3..15).fake_with_rng(&mut rng);
                let message_uuid = uuid_v4(rng.random(), rng.random());
                items.push(message_item(&group_uuid, at, &message_uuid, sender, &last).to_string());
            }
            for (me, other) in [(a, b), (b, a)] {
                group_items.push(
                    group_item(&users[me].uuid, at, &group_uuid, &users[other], &last).to_string(),
                );
            }
        }
        items.extend(group_items);
        CruddurSeed { items }
    }

    /// Reads the target's message groups and builds the run's state.
    pub async fn prepare(&self, session: &mut Session) -> Result<CruddurFactory, String> {
        let mut group_items = Vec::new();
        let mut start_key: Option<Value> = None;
        for _ in 0..MAX_SCAN_PAGES {
            let mut body = json!({
                "TableName": self.table,
                "ConsistentRead": true,
                "FilterExpression": "begins_with(pk, :g)",
                "ExpressionAttributeValues": {":g": {"S": "GRP#"}},
            });
            if let Some(key) = start_key.take() {
                body["ExclusiveStartKey"] = key;
            }
            let mut page = session.call_json(Op::Scan, body.to_string()).await?;
            if let Some(Value::Array(items)) = page.get_mut("Items").map(Value::take) {
                group_items.extend(items);
            }
            match page.get_mut("LastEvaluatedKey").map(Value::take) {
                Some(key) if !key.is_null() => start_key = Some(key),
                _ => break,
            }
        }
        let (users, groups) = state_from_group_items(&group_items);
        if groups.is_empty() {
            return Err(format!(
                "table {} has no message groups; seed it first (`seed --workload cruddur` or `run --seed`)",
                self.table
            ));
        }
        Ok(self.factory(users, groups))
    }

    fn factory(&self, users: Vec<User>, groups: Vec<Group>) -> CruddurFactory {
        let table_json = json_str(&self.table);
        let query = |pk: &str| {
            Bytes::from(format!(
                r#"{{"TableName":{table_json},"KeyConditionExpression":"pk = :pk","ExpressionAttributeValues":{{":pk":{{"S":{}}}}},"ScanIndexForward":false,"Limit":{}}}"#,
                json_str(pk),
                self.page_size
            ))
        };
        let list_groups = users
            .iter()
            .map(|u| query(&format!("GRP#{}", u.uuid)))
            .collect();
        let list_messages = groups
            .iter()
            .map(|g| query(&format!("MSG#{}", g.uuid)))
            .collect();
        let mut rng = SmallRng::seed_from_u64(self.data_seed ^ 0x5e47);
        let sentences = (0..256)
            .map(|_| Sentence(3..15).fake_with_rng(&mut rng))
            .collect();
        let clock = groups.iter().map(|g| g.last_at).max().unwrap_or(0);
        CruddurFactory {
            shared: Arc::new(Shared {
                table: self.table.clone(),
                users,
                list_groups,
                list_messages,
                state: Mutex::new(State { groups, clock }),
                sentences,
                mix: self.mix,
                zipf: self.zipf,
            }),
        }
    }
}

/// Users (sorted by uuid) and groups (sorted by uuid) from the `GRP#` items of the table. A
/// user's names come from their partners' items; a group's `sk` is the newest of its items.
fn state_from_group_items(items: &[Value]) -> (Vec<User>, Vec<Group>) {
    fn s<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
        item.get(name)?.get("S")?.as_str()
    }
    let mut names: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    let mut members: BTreeMap<&str, ([&str; 2], u64)> = BTreeMap::new();
    for item in items {
        let (Some(pk), Some(sk), Some(group), Some(other)) = (
            s(item, "pk"),
            s(item, "sk"),
            s(item, "message_group_uuid"),
            s(item, "other_user_uuid"),
        ) else {
            continue;
        };
        let (Some(me), Some(at)) = (pk.strip_prefix("GRP#"), parse_time(sk)) else {
            continue;
        };
        let known = names.entry(other).or_insert(("", ""));
        if known.0.is_empty() {
            *known = (
                s(item, "other_user_display_name").unwrap_or(""),
                s(item, "other_user_handle").unwrap_or(""),
            );
        }
        names.entry(me).or_insert(("", ""));
        let entry = members.entry(group).or_insert(([me, other], at));
        entry.1 = entry.1.max(at);
    }
    let users: Vec<User> = names
        .iter()
        .map(|(uuid, (display_name, handle))| User {
            uuid: uuid.to_string(),
            display_name: display_name.to_string(),
            handle: handle.to_string(),
        })
        .collect();
    let index: BTreeMap<&str, usize> = names.keys().enumerate().map(|(i, u)| (*u, i)).collect();
    let groups = members
        .iter()
        .filter(|(_, ([a, b], _))| a != b)
        .map(|(uuid, ([a, b], at))| Group {
            uuid: uuid.to_string(),
            users: [index[a], index[b]],
            last_at: *at,
            busy: false,
        })
        .collect();
    (users, groups)
}

/// The seed items, generated up front (they come from one random stream).
pub struct CruddurSeed {
    items: Vec<String>,
}

impl SeedData for CruddurSeed {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn item(&self, i: usize) -> String {
        self.items[i].clone()
    }
}

struct State {
    groups: Vec<Group>,
    /// The newest `sk` handed out, in microseconds; new ones are later than it and than now.
    clock: u64,
}

impl State {
    fn tick(&mut self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.clock = now.max(self.clock + 1);
        self.clock
    }
}

struct Shared {
    table: String,
    users: Vec<User>,
    /// Pre-built list-groups Query per user.
    list_groups: Vec<Bytes>,
    /// Pre-built list-messages Query per group that existed when the run started.
    list_messages: Vec<Bytes>,
    state: Mutex<State>,
    sentences: Vec<String>,
    mix: CruddurMix,
    zipf: f64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the state inconsistent in a way that matters here.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct CruddurFactory {
    shared: Arc<Shared>,
}

impl Factory for CruddurFactory {
    fn generator(&self, vu: usize) -> Box<dyn Generator> {
        let seed = 0xc0ffee ^ vu as u64;
        Box::new(CruddurGenerator {
            users: KeyPicker::new(self.shared.users.len() as u64, self.shared.zipf, seed),
            groups: KeyPicker::new(
                self.shared.list_messages.len() as u64,
                self.shared.zipf,
                seed.rotate_left(17),
            ),
            rng: fastrand::Rng::with_seed(seed.rotate_left(33)),
            shared: self.shared.clone(),
        })
    }

    fn sample(&self) -> Request {
        self.prime(0)
    }

    fn prime_len(&self) -> u64 {
        (self.shared.list_groups.len() + self.shared.list_messages.len()) as u64
    }

    /// The users' group lists, then the groups' message lists.
    fn prime(&self, i: u64) -> Request {
        let (groups, messages) = (&self.shared.list_groups, &self.shared.list_messages);
        match groups.get(i as usize) {
            Some(body) => Request::new("list_groups", Op::Query, body.clone()),
            None => Request::new(
                "list_messages",
                Op::Query,
                messages[i as usize - groups.len()].clone(),
            ),
        }
    }
}

/// Marks a group free again when the write's answer is in.
struct GroupLease {
    shared: Arc<Shared>,
    group: usize,
}

impl Drop for GroupLease {
    fn drop(&mut self) {
        self.shared.state().groups[self.group].busy = false;
    }
}

struct CruddurGenerator {
    shared: Arc<Shared>,
    users: KeyPicker,
    groups: KeyPicker,
    rng: fastrand::Rng,
}

impl CruddurGenerator {
    fn list_messages(&mut self, group: usize) -> Request {
        Request::new(
            "list_messages",
            Op::Query,
            self.shared.list_messages[group].clone(),
        )
    }

    fn sentence(&mut self) -> &str {
        let i = self.rng.usize(0..self.shared.sentences.len());
        &self.shared.sentences[i]
    }

    fn create_message(&mut self, g: usize) -> Request {
        let (group_uuid, [a, b], old_at, new_at) = {
            let mut state = self.shared.state();
            if state.groups[g].busy {
                drop(state);
                return self.list_messages(g);
            }
            let new_at = state.tick();
            let group = &mut state.groups[g];
            group.busy = true;
            let old_at = std::mem::replace(&mut group.last_at, new_at);
            (group.uuid.clone(), group.users, old_at, new_at)
        };
        let sender = if self.rng.bool() { a } else { b };
        let message_uuid = uuid_v4(self.rng.u64(..), self.rng.u64(..));
        let text = self.sentence().to_string();
        let users = &self.shared.users;
        let table = &self.shared.table;
        let mut transact = vec![json!({"Put": {
            "TableName": table,
            "Item": message_item(&group_uuid, new_at, &message_uuid, &users[sender], &text),
        }})];
        for (me, other) in [(a, b), (b, a)] {
            transact.push(json!({"Delete": {
                "TableName": table,
                "Key": {"pk": {"S": format!("GRP#{}", users[me].uuid)}, "sk": {"S": format_time(old_at)}},
            }}));
            transact.push(json!({"Put": {
                "TableName": table,
                "Item": group_item(&users[me].uuid, new_at, &group_uuid, &users[other], &text),
            }}));
        }
        let body = json!({ "TransactItems": transact }).to_string();
        Request {
            label: "create_message",
            op: Op::TransactWriteItems,
            body: Bytes::from(body),
            lease: Some(Box::new(GroupLease {
                shared: self.shared.clone(),
                group: g,
            })),
        }
    }

    fn create_group(&mut self) -> Request {
        let n = self.shared.users.len();
        let a = self.users.pick() as usize;
        let b = (a + 1 + self.rng.usize(0..n - 1)) % n;
        let group_uuid = uuid_v4(self.rng.u64(..), self.rng.u64(..));
        let (g, at) = {
            let mut state = self.shared.state();
            let at = state.tick();
            state.groups.push(Group {
                uuid: group_uuid.clone(),
                users: [a, b],
                last_at: at,
                busy: true,
            });
            (state.groups.len() - 1, at)
        };
        let message_uuid = uuid_v4(self.rng.u64(..), self.rng.u64(..));
        let text = self.sentence().to_string();
        let users = &self.shared.users;
        let table = &self.shared.table;
        let body = json!({ "TransactItems": [
            {"Put": {"TableName": table, "Item": message_item(&group_uuid, at, &message_uuid, &users[a], &text)}},
            {"Put": {"TableName": table, "Item": group_item(&users[a].uuid, at, &group_uuid, &users[b], &text)}},
            {"Put": {"TableName": table, "Item": group_item(&users[b].uuid, at, &group_uuid, &users[a], &text)}},
        ]})
        .to_string();
        Request {
            label: "create_group",
            op: Op::TransactWriteItems,
            body: Bytes::from(body),
            lease: Some(Box::new(GroupLease {
                shared: self.shared.clone(),
                group: g,
            })),
        }
    }
}

impl Generator for CruddurGenerator {
    fn next_request(&mut self) -> Request {
        let mix = self.shared.mix;
        let roll = self.rng.u32(0..mix.total());
        if roll < mix.list_messages {
            let g = self.groups.pick() as usize;
            self.list_messages(g)
        } else if roll < mix.list_messages + mix.list_groups {
            let u = self.users.pick() as usize;
            Request::new("list_groups", Op::Query, self.shared.list_groups[u].clone())
        } else if roll < mix.list_messages + mix.list_groups + mix.create_message {
            let g = self.groups.pick() as usize;
            self.create_message(g)
        } else {
            self.create_group()
        }
    }
}

fn message_item(group: &str, at: u64, message_uuid: &str, sender: &User, text: &str) -> Value {
    json!({
        "pk": {"S": format!("MSG#{group}")},
        "sk": {"S": format_time(at)},
        "message_uuid": {"S": message_uuid},
        "user_uuid": {"S": sender.uuid},
        "user_display_name": {"S": sender.display_name},
        "user_handle": {"S": sender.handle},
        "message": {"S": text},
    })
}

fn group_item(me: &str, at: u64, group: &str, other: &User, text: &str) -> Value {
    json!({
        "pk": {"S": format!("GRP#{me}")},
        "sk": {"S": format_time(at)},
        "message_group_uuid": {"S": group},
        "other_user_uuid": {"S": other.uuid},
        "other_user_display_name": {"S": other.display_name},
        "other_user_handle": {"S": other.handle},
        "message": {"S": text},
    })
}

/// ISO 8601 UTC with microseconds: `2026-01-01T00:00:00.000000Z`.
fn format_time(us: u64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_micros(us)).to_string()
}

fn parse_time(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_micros() as u64)
}

/// A random (version 4) UUID from 128 random bits.
fn uuid_v4(hi: u64, lo: u64) -> String {
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::test_args;

    fn small() -> Cruddur {
        Cruddur::new(&test_args(&["--workload", "cruddur", "--keys", "20"]))
    }

    fn parsed_seed(c: &Cruddur) -> Vec<Value> {
        let seed = c.seed_data();
        (0..seed.len())
            .map(|i| serde_json::from_str(&seed.item(i)).unwrap())
            .collect()
    }

    #[test]
    fn seed_is_deterministic_and_shaped_like_cruddur() {
        let c = small();
        let items = parsed_seed(&c);
        assert_eq!(items, parsed_seed(&c));
        let groups: Vec<&Value> = items
            .iter()
            .filter(|i| i["pk"]["S"].as_str().unwrap().starts_with("GRP#"))
            .collect();
        let messages = items.len() - groups.len();
        assert_eq!(
            groups.len(),
            2 * 30,
            "20 users x 3 groups / 2, two items each"
        );
        assert!((30 * 10..=30 * 30).contains(&messages), "{messages}");
        for g in &groups {
            for attr in [
                "sk",
                "message_group_uuid",
                "other_user_uuid",
                "other_user_display_name",
                "other_user_handle",
                "message",
            ] {
                assert!(!g[attr]["S"].as_str().unwrap().is_empty(), "{attr}");
            }
            assert!(parse_time(g["sk"]["S"].as_str().unwrap()).is_some());
        }
        let m = items
            .iter()
            .find(|i| i["pk"]["S"].as_str().unwrap().starts_with("MSG#"))
            .unwrap();
        for attr in [
            "message_uuid",
            "user_uuid",
            "user_display_name",
            "user_handle",
            "message",
        ] {
            assert!(m[attr]["S"].is_string(), "{attr}");
        }
    }

    #[test]
    fn state_round_trips_through_group_items() {
        let c = small();
        let items = parsed_seed(&c);
        let (users, groups) = state_from_group_items(&items);
        assert_eq!(users.len(), 20);
        assert_eq!(groups.len(), 30);
        assert!(
            users
                .iter()
                .all(|u| !u.display_name.is_empty() && !u.handle.is_empty())
        );
        // The group's sk is its newest message's sk.
        let g = &groups[0];
        let newest = items
            .iter()
            .filter(|i| i["pk"]["S"] == format!("MSG#{}", g.uuid))
            .filter_map(|i| parse_time(i["sk"]["S"].as_str().unwrap()))
            .max()
            .unwrap();
        assert_eq!(g.last_at, newest);
    }

    #[test]
    fn every_operation_builds_a_valid_request() {
        let c = small();
        let (users, groups) = state_from_group_items(&parsed_seed(&c));
        let factory = c.factory(users, groups);
        let mut generator = factory.generator(0);
        let mut seen = HashSet::new();
        let mut held = Vec::new();
        for _ in 0..2000 {
            let mut req = generator.next_request();
            seen.insert(req.label);
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            match req.label {
                "list_messages" | "list_groups" => {
                    let prefix = if req.label == "list_messages" {
                        "MSG#"
                    } else {
                        "GRP#"
                    };
                    assert_eq!(body["TableName"], "cruddur-messages");
                    assert_eq!(body["ScanIndexForward"], false);
                    assert_eq!(body["Limit"], 20);
                    let pk = body["ExpressionAttributeValues"][":pk"]["S"]
                        .as_str()
                        .unwrap();
                    assert!(pk.starts_with(prefix), "{pk}");
                }
                "create_message" => {
                    let t = body["TransactItems"].as_array().unwrap();
                    assert_eq!(t.len(), 5);
                    let new_sk = t[0]["Put"]["Item"]["sk"]["S"].as_str().unwrap();
                    let old_sk = t[1]["Delete"]["Key"]["sk"]["S"].as_str().unwrap();
                    assert!(old_sk < new_sk, "{old_sk} < {new_sk}");
                    assert_eq!(t[2]["Put"]["Item"]["sk"]["S"], new_sk);
                    assert_eq!(t[4]["Put"]["Item"]["sk"]["S"], new_sk);
                    assert_eq!(
                        t[2]["Put"]["Item"]["other_user_uuid"]["S"],
                        t[3]["Delete"]["Key"]["pk"]["S"].as_str().unwrap()[4..]
                    );
                }
                "create_group" => {
                    let t = body["TransactItems"].as_array().unwrap();
                    assert_eq!(t.len(), 3);
                    let g = t[0]["Put"]["Item"]["pk"]["S"].as_str().unwrap();
                    assert_eq!(
                        format!(
                            "MSG#{}",
                            t[1]["Put"]["Item"]["message_group_uuid"]["S"]
                                .as_str()
                                .unwrap()
                        ),
                        g
                    );
                }
                other => panic!("unknown label {other}"),
            }
            // Keep some writes in flight: their groups must not be written again meanwhile.
            if let Some(lease) = req.lease.take() {
                held.push(lease);
                if held.len() > 3 {
                    held.remove(0);
                }
            }
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
    }

    #[test]
    fn uuids_and_times() {
        let u = uuid_v4(u64::MAX, 0);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(&u[19..20], "8");
        assert_eq!(format_time(SEED_EPOCH_US), "2026-01-01T00:00:00.000000Z");
        assert_eq!(
            parse_time("2026-01-01T00:00:00.000000Z"),
            Some(SEED_EPOCH_US)
        );
    }
}
