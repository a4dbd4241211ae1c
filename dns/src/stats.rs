//! Per-view query counters: what the daemon's `/metrics` reports as the
//! `netd_dns_*` families. Each [`Table`](crate::Table) carries the counters
//! of the view it serves, so a query counts with the table it already
//! looked up: relaxed atomic adds, no lock, no map.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use hickory_proto::op::ResponseCode;
use netd_metrics::{FAST_BUCKETS, Histogram};

/// How a query ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// NOERROR with records.
    Answer,
    /// NOERROR without records (the name exists, not with that type).
    NoData,
    NxDomain,
    /// Upstream failed, timed out, or too many were in flight.
    ServFail,
    /// Any other response code (REFUSED, FORMERR, NOTIMP, BADVERS).
    Error,
    /// Not answered: not a query, or a reply that could not be built.
    Dropped,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Answer,
        Outcome::NoData,
        Outcome::NxDomain,
        Outcome::ServFail,
        Outcome::Error,
        Outcome::Dropped,
    ];

    /// The `result` label's value.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Answer => "answer",
            Outcome::NoData => "nodata",
            Outcome::NxDomain => "nxdomain",
            Outcome::ServFail => "servfail",
            Outcome::Error => "error",
            Outcome::Dropped => "dropped",
        }
    }

    pub(crate) fn of(code: ResponseCode, answered: bool) -> Outcome {
        match code {
            ResponseCode::NoError if answered => Outcome::Answer,
            ResponseCode::NoError => Outcome::NoData,
            ResponseCode::NXDomain => Outcome::NxDomain,
            ResponseCode::ServFail => Outcome::ServFail,
            _ => Outcome::Error,
        }
    }
}

/// One view's counters, shared by every sandbox (and every table built
/// for the view over time) it is handed to.
#[derive(Debug)]
pub struct ViewStats {
    queries: AtomicU64,
    results: [AtomicU64; Outcome::ALL.len()],
    forwarded: AtomicU64,
    cache_hits: AtomicU64,
    latency: Histogram,
}

impl Default for ViewStats {
    fn default() -> ViewStats {
        ViewStats {
            queries: AtomicU64::new(0),
            results: Default::default(),
            forwarded: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            latency: Histogram::new(&FAST_BUCKETS),
        }
    }
}

impl ViewStats {
    /// Requests received, whatever became of them.
    pub fn queries(&self) -> u64 {
        self.queries.load(Relaxed)
    }

    pub fn results(&self, o: Outcome) -> u64 {
        self.results[o as usize].load(Relaxed)
    }

    /// Queries for names not in the view, sent on to the upstreams (or the
    /// cache of their answers).
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Relaxed)
    }

    /// Forwarded queries answered from the cache.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Relaxed)
    }

    /// From a query's arrival to its answer being sent.
    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    pub(crate) fn forward(&self, cached: bool) {
        self.forwarded.fetch_add(1, Relaxed);
        if cached {
            self.cache_hits.fetch_add(1, Relaxed);
        }
    }

    /// One query done: counted, and its latency (a dropped one has none).
    pub(crate) fn done(&self, o: Outcome, arrived: Instant) {
        self.queries.fetch_add(1, Relaxed);
        self.results[o as usize].fetch_add(1, Relaxed);
        if o != Outcome::Dropped {
            self.latency.observe(arrived.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_results_forwards_and_latency() {
        let s = ViewStats::default();
        let t = Instant::now();
        s.done(Outcome::Answer, t);
        s.forward(true);
        s.done(Outcome::Answer, t);
        s.forward(false);
        s.done(Outcome::ServFail, t);
        s.done(Outcome::Dropped, t);
        assert_eq!(s.queries(), 4);
        assert_eq!(s.results(Outcome::Answer), 2);
        assert_eq!(s.results(Outcome::ServFail), 1);
        assert_eq!((s.forwarded(), s.cache_hits()), (2, 1));
        // A dropped query was never answered: no latency.
        assert_eq!(s.latency().count(), 3);
        assert_eq!(Outcome::of(ResponseCode::NoError, false), Outcome::NoData);
        assert_eq!(Outcome::of(ResponseCode::Refused, false), Outcome::Error);
    }
}
