//! netd's one Prometheus renderer, shared by the daemon (`GET /metrics` on
//! its API socket and `--metrics`) and netd-lb (its metrics listener).
//!
//! Values live in plain atomics owned by whoever counts (no lock and no map
//! look-up on a request path); a prometheus-client [`Collector`] reads them
//! once per scrape and this crate's helpers write the families through
//! prometheus-client's text encoder, so both programs emit the same format
//! with the same histogram layout.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

pub use prometheus_client;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`render`]'s text (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds, in seconds, for requests that take milliseconds to
/// seconds: API operations, proxied HTTP requests.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds, in seconds, for answers that take microseconds when local
/// and milliseconds when forwarded: DNS queries.
pub const FAST_BUCKETS: [f64; 16] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0,
];

/// A histogram in atomics: an observation is a bucket search and three
/// relaxed adds. prometheus-client's own histogram takes a lock per
/// observation, which the DNS query path must not.
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, the observations that fell in it (not cumulative: the
    /// encoder sums them into the cumulative `le` buckets).
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        // Above the last bound: only in `+Inf`, which is the count.
        if let Some(i) = self.bounds.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Write this histogram as one sample set of a histogram family.
    pub fn encode(&self, m: &mut MetricEncoder) -> fmt::Result {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(b, n)| (*b, n.load(Relaxed)))
            .collect();
        let sum = self.sum_ns.load(Relaxed) as f64 / 1e9;
        m.encode_histogram::<NoLabelSet>(sum, self.count(), &buckets, None)
    }
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new(&LATENCY_BUCKETS)
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .finish()
    }
}

/// The type of a family of plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; the encoder names it `NAME_total`.
    Counter,
    Gauge,
}

impl Kind {
    fn metric_type(self) -> MetricType {
        match self {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
        }
    }
}

/// A family's name (without the `_total` the encoder adds to counters),
/// help and type.
pub type Family = (&'static str, &'static str, Kind);

/// One family: a sample per label set.
pub fn family<L, I>(
    e: &mut DescriptorEncoder,
    (name, help, kind): Family,
    samples: I,
) -> fmt::Result
where
    L: EncodeLabelSet,
    I: IntoIterator<Item = (L, u64)>,
{
    let mut m = e.encode_descriptor(name, help, None, kind.metric_type())?;
    for (labels, v) in samples {
        value(&mut m.encode_family(&labels)?, kind, v)?;
    }
    Ok(())
}

/// One family of a single sample without labels.
pub fn single(e: &mut DescriptorEncoder, (name, help, kind): Family, v: u64) -> fmt::Result {
    value(
        &mut e.encode_descriptor(name, help, None, kind.metric_type())?,
        kind,
        v,
    )
}

/// One histogram family in seconds (the encoder names it `NAME_seconds`).
pub fn histograms<'h, L, I>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: I,
) -> fmt::Result
where
    L: EncodeLabelSet,
    I: IntoIterator<Item = (L, &'h Histogram)>,
{
    let mut m = e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, h) in samples {
        h.encode(&mut m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn value(m: &mut MetricEncoder, kind: Kind, v: u64) -> fmt::Result {
    match kind {
        Kind::Counter => m.encode_counter::<NoLabelSet, _, u64>(&v, None),
        Kind::Gauge => m.encode_gauge(&v),
    }
}

/// Everything `collector` writes, as Prometheus text (the counters stay in
/// their atomics; they are read once, here).
pub fn render(collector: impl Collector) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::with_capacity(4096);
    // Writing into a String cannot fail; a collector's own error would
    // leave the text cut short, which a scraper reports as malformed.
    let _ = prometheus_text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Debug)]
    struct Sample(Arc<Histogram>);

    impl Collector for Sample {
        fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
            family(
                &mut e,
                ("t_ops", "Operations.", Kind::Counter),
                [
                    ([("op", "a"), ("outcome", "ok")], 3),
                    ([("op", "b"), ("outcome", "busy")], 1),
                ],
            )?;
            single(&mut e, ("t_things", "Things.", Kind::Gauge), 7)?;
            histograms(&mut e, "t_took", "Latency.", [([("op", "a")], &*self.0)])?;
            single(&mut e, ("t_last", "Last.", Kind::Counter), 2)
        }
    }

    #[test]
    fn histogram_is_cumulative() {
        let h = Arc::new(Histogram::default());
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(30));
        let s = render(Sample(h));
        assert!(
            s.contains("t_took_seconds_bucket{op=\"a\",le=\"0.0005\"} 1\n"),
            "{s}"
        );
        assert!(
            s.contains("t_took_seconds_bucket{op=\"a\",le=\"0.005\"} 2\n"),
            "{s}"
        );
        assert!(
            s.contains("t_took_seconds_bucket{op=\"a\",le=\"10\"} 2\n"),
            "{s}"
        );
        assert!(
            s.contains("t_took_seconds_bucket{op=\"a\",le=\"+Inf\"} 3\n"),
            "{s}"
        );
        assert!(s.contains("t_took_seconds_count{op=\"a\"} 3\n"), "{s}");
        assert!(s.contains("t_took_seconds_sum{op=\"a\"} 30.0033\n"), "{s}");
    }

    #[test]
    fn fast_buckets_split_microseconds() {
        let h = Histogram::new(&FAST_BUCKETS);
        h.observe(Duration::from_micros(8));
        h.observe(Duration::from_micros(40));
        assert_eq!(h.buckets[0].load(Relaxed), 1);
        assert_eq!(h.buckets[2].load(Relaxed), 1);
        assert_eq!(h.count(), 2);
    }

    #[test]
    fn families_names_types_and_labels() {
        let s = render(Sample(Arc::new(Histogram::default())));
        assert!(s.contains("# HELP t_ops_total Operations.\n"), "{s}");
        assert!(s.contains("# TYPE t_ops_total counter\n"), "{s}");
        assert!(
            s.contains("t_ops_total{op=\"a\",outcome=\"ok\"} 3\n"),
            "{s}"
        );
        assert!(
            s.contains("t_ops_total{op=\"b\",outcome=\"busy\"} 1\n"),
            "{s}"
        );
        assert!(s.contains("# TYPE t_things gauge\nt_things 7\n"), "{s}");
        assert!(s.contains("# TYPE t_took_seconds histogram\n"), "{s}");
        assert!(s.ends_with("t_last_total 2\n"), "{s}");
    }
}
