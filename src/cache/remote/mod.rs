//! The remote tier: a cache shared by a fleet of proxies, between each proxy's in-process tier
//! and the upstream. This module owns the [`RemoteStore`] contract every backend implements
//! (Redis now, [`redis`]; Momento later) and the values exchanged through it. How a proxy uses
//! a store (timeouts, circuit breaker, recovery, fan-out) lives in [`tier`].
//!
//! # The contract (what makes it race-free across proxies)
//! A store keeps one *bucket* per [`Scope`] (one per (table, partition key), one per table for
//! GSI queries and scans) whose fields are canonical request keys, and *generation counters*:
//! a global epoch, per table an epoch and a writes counter, per partition (hashed into slots)
//! a counter. Then:
//! - [`RemoteStore::lookup`] answers the entry, or on a miss the generations the scope has now
//!   (a [`FillToken`]), in one atomic step.
//! - [`RemoteStore::fill`] stores only if the scope's generations still equal the token
//!   (compare-and-set), so a fetch that started before a write can never land after it.
//! - [`RemoteStore::invalidate`] bumps the generations of what a write touches and drops its
//!   buckets, atomically. A write does it before it is forwarded and again after the upstream
//!   answered, as the in-process generations are bumped; so once a write is acknowledged no
//!   bucket holds a value read before it, and no fill that looked up before it can store.
//! - [`RemoteStore::flush`] moves the global epoch: everything stored before is unreachable.
//!   Used when invalidations may have been missed (the store was unreachable during a write).
//! - [`RemoteStore::publish`] / [`RemoteStore::subscribe`]: the invalidation channel between
//!   proxies (payloads are [`fanout`] messages).

pub mod breaker;
pub mod codec;
pub mod fanout;
pub mod redis;
pub mod tier;

use crate::cache::{Invalidation, Scope};
use crate::error::Error;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use tier::RemoteTier;

pub type RemoteFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// A cached response as the remote tier holds it: what replay needs besides the CRC, which is
/// recomputed when the entry is admitted into the in-process tier (`Entry::new`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub body: Bytes,
    /// A GetItem that found no item.
    pub negative: bool,
    /// Time left before the entry stops being fresh (on a fill: its full TTL).
    pub ttl: Duration,
}

/// The generations a scope had when a lookup missed; a fill stores only if they are unchanged.
/// Opaque to callers: each store decides what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillToken(pub Vec<u64>);

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Hit(RemoteEntry),
    /// Not there (or expired): fetch upstream, then fill with this token.
    Miss(FillToken),
}

/// A remote cache backend shared by proxies. See the module docs for the contract.
pub trait RemoteStore: Send + Sync {
    /// For logs: the backend and where it is (no credentials).
    fn describe(&self) -> String;

    /// The entry for `key` in `scope`'s bucket, or the token a fill must present.
    fn lookup<'a>(&'a self, scope: &'a Scope, key: &'a [u8]) -> RemoteFuture<'a, Lookup>;

    /// Stores `entry` for `ttl` if `scope`'s generations still equal `token`. `Ok(false)`: a
    /// write moved them since the lookup, nothing was stored.
    fn fill<'a>(
        &'a self,
        scope: &'a Scope,
        key: &'a [u8],
        entry: &'a RemoteEntry,
        token: &'a FillToken,
    ) -> RemoteFuture<'a, bool>;

    /// Bumps the generations of everything `what` covers and drops the buckets, atomically.
    fn invalidate<'a>(&'a self, what: &'a [Invalidation]) -> RemoteFuture<'a, ()>;

    /// Makes everything stored so far unreachable (and refuses fills looked up before).
    fn flush(&self) -> RemoteFuture<'_, ()> {
        Box::pin(async move { self.invalidate(&[Invalidation::All]).await })
    }

    /// Sends `payload` to every subscriber of the invalidation channel.
    fn publish<'a>(&'a self, payload: &'a [u8]) -> RemoteFuture<'a, ()>;

    /// Subscribes to the invalidation channel. The stream ends when the subscription is lost
    /// (messages may have been missed from then on).
    fn subscribe(&self) -> RemoteFuture<'_, BoxStream<'static, Vec<u8>>>;
}
