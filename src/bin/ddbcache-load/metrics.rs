//! Prometheus text scraping: sums ddbcache's cache counters over their labels, before and after a
//! measured run, into a [`CacheStats`] (hit ratio, upstream requests saved = hits).

use serde::{Deserialize, Serialize};

/// Counter totals at one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub hits: f64,
    pub misses: f64,
    /// `ddbcache_upstream_requests_total`, if exported.
    pub upstream: Option<f64>,
}

/// What the cache did during a measured run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses); none without lookups.
    pub hit_ratio: Option<f64>,
    /// Requests answered without going upstream (= hits).
    pub upstream_requests_saved: u64,
    /// Requests the proxy sent upstream (reads that missed, writes, DescribeTable...).
    pub upstream_requests: Option<u64>,
}

/// The sum of every sample of `name` (all label sets); none if the metric is absent.
pub fn sum_metric(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (metric, rest) = match line.find(['{', ' ', '\t']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        if metric != name {
            continue;
        }
        let rest = if rest.starts_with('{') {
            match label_end(rest) {
                Some(end) => &rest[end..],
                None => continue,
            }
        } else {
            rest
        };
        if let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *total.get_or_insert(0.0) += value;
        }
    }
    total
}

/// The index just past the `}` closing a label set that starts `s`, honouring quoted values.
fn label_end(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// ddbcache's item and query cache counters, summed.
pub fn counters(text: &str) -> Counters {
    let sum = |names: [&str; 2]| names.iter().filter_map(|n| sum_metric(text, n)).sum();
    Counters {
        hits: sum([
            "ddbcache_item_cache_hits_total",
            "ddbcache_query_cache_hits_total",
        ]),
        misses: sum([
            "ddbcache_item_cache_misses_total",
            "ddbcache_query_cache_misses_total",
        ]),
        upstream: sum_metric(text, "ddbcache_upstream_requests_total"),
    }
}

/// The difference of two scrapes.
pub fn delta(before: Counters, after: Counters) -> CacheStats {
    let hits = (after.hits - before.hits).max(0.0).round() as u64;
    let misses = (after.misses - before.misses).max(0.0).round() as u64;
    CacheStats {
        hits,
        misses,
        hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        upstream_requests_saved: hits,
        upstream_requests: match (before.upstream, after.upstream) {
            (Some(b), Some(a)) => Some((a - b).max(0.0).round() as u64),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP ddbcache_item_cache_hits_total Item cache hits.
# TYPE ddbcache_item_cache_hits_total counter
ddbcache_item_cache_hits_total{table="a"} 10
ddbcache_item_cache_hits_total{table="we\"ird} name"} 5
ddbcache_item_cache_hits_total_extra{table="a"} 1000
ddbcache_item_cache_misses_total{table="a"} 3
ddbcache_query_cache_hits_total{table="b"} 7e0
ddbcache_query_cache_misses_total{table="b"} 1
ddbcache_upstream_requests_total{operation="GetItem"} 4
ddbcache_upstream_requests_total{operation="DescribeTable"} 1
ddbcache_cache_entries 42
"#;

    #[test]
    fn sums_over_labels() {
        assert_eq!(
            sum_metric(TEXT, "ddbcache_item_cache_hits_total"),
            Some(15.0)
        );
        assert_eq!(sum_metric(TEXT, "ddbcache_cache_entries"), Some(42.0));
        assert_eq!(sum_metric(TEXT, "ddbcache_nothing"), None);
        let c = counters(TEXT);
        assert_eq!(
            c,
            Counters {
                hits: 22.0,
                misses: 4.0,
                upstream: Some(5.0)
            }
        );
    }

    #[test]
    fn deltas() {
        let before = counters(TEXT);
        let after = Counters {
            hits: 122.0,
            misses: 29.0,
            upstream: Some(35.0),
        };
        let d = delta(before, after);
        assert_eq!(
            (d.hits, d.misses, d.upstream_requests_saved),
            (100, 25, 100)
        );
        assert_eq!(d.hit_ratio, Some(0.8));
        assert_eq!(d.upstream_requests, Some(30));
        assert_eq!(delta(before, before).hit_ratio, None);
    }
}
