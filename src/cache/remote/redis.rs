//! The Redis [`RemoteStore`]: one hash per bucket, generation counters in one hash, Lua scripts
//! for the atomic steps, pub/sub for the fan-out. Standalone Redis (or one shard): the scripts
//! touch keys they compute, which Redis Cluster does not allow.
//!
//! Keys under `prefix`:
//! - `{prefix}gen`: hash of generations: `g` (global epoch), `e:{table}` (table epoch),
//!   `t:{table}` (writes to the table), `p:{slot}` (writes to partitions hashed to the slot).
//! - `{prefix}b:{g}.{e}:p:{len}:{table}:{pk}` and `{prefix}b:{g}.{e}:t:{table}`: buckets, hashes
//!   of canonical request key -> [`codec`] value, with a Redis TTL of the longest entry TTL
//!   stored in them. The epochs in the name make a table (or global) invalidation drop every
//!   bucket at once: the old names are never read again and expire.
//! - `{prefix}invalidations`: the pub/sub channel.

use super::{FillToken, Lookup, RemoteEntry, RemoteFuture, RemoteStore, codec};
use crate::cache::{Invalidation, Scope};
use crate::error::Error;
use futures::StreamExt;
use futures::stream::BoxStream;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::{Duration, SystemTime};

/// KEYS[1] gen; ARGV: prefix, epoch field, scope field, bucket suffix, entry key.
const LOOKUP: &str = r"
local g = redis.call('HMGET', KEYS[1], 'g', ARGV[2], ARGV[3])
local b = ARGV[1] .. 'b:' .. (g[1] or '0') .. '.' .. (g[2] or '0') .. ':' .. ARGV[4]
local v = redis.call('HGET', b, ARGV[5])
return {v, g[1] or '0', g[2] or '0', g[3] or '0'}
";

/// KEYS[1] gen; ARGV: prefix, epoch field, scope field, bucket suffix, entry key, value,
/// ttl ms, expected global, table epoch and scope generations.
const FILL: &str = r"
local g = redis.call('HMGET', KEYS[1], 'g', ARGV[2], ARGV[3])
if (g[1] or '0') ~= ARGV[8] or (g[2] or '0') ~= ARGV[9] or (g[3] or '0') ~= ARGV[10] then
  return 0
end
local b = ARGV[1] .. 'b:' .. ARGV[8] .. '.' .. ARGV[9] .. ':' .. ARGV[4]
redis.call('HSET', b, ARGV[5], ARGV[6])
local ttl = tonumber(ARGV[7])
if redis.call('PTTL', b) < ttl then
  redis.call('PEXPIRE', b, ttl)
end
return 1
";

/// KEYS[1] gen; ARGV: prefix, then per invalidation four values: kind (p, t or a), table,
/// partition slot field, partition bucket suffix.
const INVALIDATE: &str = r"
local p = ARGV[1]
local g = redis.call('HGET', KEYS[1], 'g') or '0'
local i = 2
while i <= #ARGV do
  local kind, t = ARGV[i], ARGV[i + 1]
  if kind == 'a' then
    redis.call('HINCRBY', KEYS[1], 'g', 1)
  else
    local e = redis.call('HGET', KEYS[1], 'e:' .. t) or '0'
    local pre = p .. 'b:' .. g .. '.' .. e .. ':'
    redis.call('HINCRBY', KEYS[1], 't:' .. t, 1)
    redis.call('DEL', pre .. 't:' .. t)
    if kind == 'p' then
      redis.call('HINCRBY', KEYS[1], ARGV[i + 2], 1)
      redis.call('DEL', pre .. ARGV[i + 3])
    else
      redis.call('HINCRBY', KEYS[1], 'e:' .. t, 1)
    end
  end
  i = i + 4
end
return 1
";

pub struct RedisStore {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    gen_key: String,
    channel: String,
    timeout: Duration,
    lookup: Script,
    fill: Script,
    invalidate: Script,
}

fn err(context: &str, e: redis::RedisError) -> Error {
    Error::Remote(format!("redis {context}: {e}"))
}

impl RedisStore {
    /// Connects lazily: an unreachable Redis does not stop the proxy from starting.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, Error> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::Config(format!("remote.redis_url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| err("connection", e))?;
        Ok(RedisStore {
            client,
            conn,
            prefix: prefix.to_owned(),
            gen_key: format!("{prefix}gen"),
            channel: format!("{prefix}invalidations"),
            timeout,
            lookup: Script::new(LOOKUP),
            fill: Script::new(FILL),
            invalidate: Script::new(INVALIDATE),
        })
    }

    /// `script` called on the counters hash with the arguments that locate `key`'s bucket in
    /// `scope` (the LOOKUP and FILL scripts both start with these); callers append the rest.
    fn bucket_call<'s>(
        &self,
        script: &'s Script,
        scope: &Scope,
        key: &[u8],
    ) -> redis::ScriptInvocation<'s> {
        let mut call = script.key(&self.gen_key);
        call.arg(&self.prefix)
            .arg(codec::epoch_field(codec::table_of(scope)))
            .arg(codec::scope_field(scope))
            .arg(codec::bucket_suffix(scope))
            .arg(key);
        call
    }
}

impl RemoteStore for RedisStore {
    fn describe(&self) -> String {
        let info = self.client.get_connection_info();
        format!("redis {} (prefix {:?})", info.addr(), self.prefix)
    }

    fn lookup<'a>(&'a self, scope: &'a Scope, key: &'a [u8]) -> RemoteFuture<'a, Lookup> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let (value, g, e, s): (Option<Vec<u8>>, u64, u64, u64) = self
                .bucket_call(&self.lookup, scope, key)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err("lookup", e))?;
            let found = value.and_then(|v| codec::decode_value(&v, SystemTime::now()));
            Ok(match found {
                Some((body, negative, ttl)) => Lookup::Hit(RemoteEntry {
                    body,
                    negative,
                    ttl,
                }),
                None => Lookup::Miss(FillToken(vec![g, e, s])),
            })
        })
    }

    fn fill<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a [u8],
        entry: &'a RemoteEntry,
        token: &'a FillToken,
    ) -> RemoteFuture<'a, bool> {
        Box::pin(async move {
            let [g, e, s] = token.0[..] else {
                return Err(Error::Internal("a fill token of another store".into()));
            };
            let value =
                codec::encode_value(&entry.body, entry.negative, entry.ttl, SystemTime::now());
            let ttl_ms = u64::try_from(entry.ttl.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let mut conn = self.conn.clone();
            let stored: i64 = self
                .bucket_call(&self.fill, scope, key)
                .arg(value)
                .arg(ttl_ms)
                .arg(g)
                .arg(e)
                .arg(s)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err("fill", e))?;
            Ok(stored == 1)
        })
    }

    fn invalidate<'a>(&'a self, what: &'a [Invalidation]) -> RemoteFuture<'a, ()> {
        Box::pin(async move {
            let mut call = self.invalidate.key(&self.gen_key);
            call.arg(&self.prefix);
            for inv in what {
                match inv {
                    Invalidation::Partition { table, pk } => call
                        .arg("p")
                        .arg(table)
                        .arg(codec::slot_field(table, pk))
                        .arg(codec::partition_suffix(table, pk)),
                    Invalidation::Table(table) => call.arg("t").arg(table).arg("").arg(""),
                    Invalidation::All => call.arg("a").arg("").arg("").arg(""),
                };
            }
            let mut conn = self.conn.clone();
            let _: i64 = call
                .invoke_async(&mut conn)
                .await
                .map_err(|e| err("invalidate", e))?;
            Ok(())
        })
    }

    fn publish<'a>(&'a self, payload: &'a [u8]) -> RemoteFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let _: i64 = redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(payload)
                .query_async(&mut conn)
                .await
                .map_err(|e| err("publish", e))?;
            Ok(())
        })
    }

    fn subscribe(&self) -> RemoteFuture<'_, BoxStream<'static, Vec<u8>>> {
        Box::pin(async move {
            let connect = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let pubsub = tokio::time::timeout(self.timeout.max(Duration::from_secs(1)), connect)
                .await
                .map_err(|_| Error::Remote("redis subscribe: timed out".into()))?
                .map_err(|e| err("subscribe", e))?;
            let stream = pubsub
                .into_on_message()
                .map(|msg| msg.get_payload_bytes().to_vec());
            Ok(stream.boxed())
        })
    }
}
