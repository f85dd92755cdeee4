//! The sink's metrics, served as Prometheus text (`--metrics ADDR`): the
//! `prometheus` crate's registry and encoder, `tiny_http` for the server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::core::Collector;
use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Every metric the sink exports.
pub struct Metrics {
    registry: Registry,
    records: IntCounterVec,
    batches: IntCounter,
    failed_attempts: IntCounter,
    in_flight: IntGauge,
    batch_seconds: Histogram,
    since_checkpoint: prometheus::Gauge,
    last_checkpoint: Mutex<Instant>,
    consumed_segment: IntGauge,
    consumed_offset: IntGauge,
    durable_segment: IntGauge,
    durable_offset: IntGauge,
    lag_bytes: IntGauge,
    lag_segments: IntGauge,
    awaiting_cleanup: IntGauge,
    kept: IntGauge,
    damaged: IntGauge,
    abandoned: IntGauge,
    held_back_segment: IntGauge,
    held_back_seconds: prometheus::Gauge,
}

/// A metric made (with a valid name) and registered (once).
fn register<M: Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let m = metric.expect("a valid metric");
    registry.register(Box::new(m.clone())).expect("registered once");
    m
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help))
}

impl Metrics {
    /// The metrics, all at zero.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let records = register(
            &registry,
            IntCounterVec::new(
                Opts::new("cdc_sink_records_total", "Records delivered and checkpointed, by table."),
                &["keyspace", "table"],
            ),
        );
        let counter = |name: &str, help: &str| register(&registry, IntCounter::new(name, help));
        let batches = counter("cdc_sink_batches_total", "Batches delivered and checkpointed.");
        let failed_attempts = counter(
            "cdc_sink_failed_attempts_total",
            "Times a failed delivery sent the sink back to its last checkpoint.",
        );
        let batch_seconds = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "cdc_sink_batch_seconds",
                    "From a batch read to its checkpoint: decoding, sending, the brokers' acknowledgements.",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            ),
        );
        let since_checkpoint = register(
            &registry,
            prometheus::Gauge::new(
                "cdc_sink_seconds_since_checkpoint",
                "Seconds since the last checkpoint was saved (since the start before the first).",
            ),
        );
        let held_back_seconds = register(
            &registry,
            prometheus::Gauge::new(
                "cdc_watcher_held_back_seconds",
                "How long the abandonment rule has held back a segment (0: none).",
            ),
        );
        Metrics {
            records,
            batches,
            failed_attempts,
            in_flight: gauge(&registry, "cdc_sink_in_flight_batches", "Batches sent, not yet acknowledged whole."),
            batch_seconds,
            since_checkpoint,
            last_checkpoint: Mutex::new(Instant::now()),
            consumed_segment: gauge(
                &registry,
                "cdc_watcher_consumed_segment_id",
                "Segment of the last position consumed.",
            ),
            consumed_offset: gauge(&registry, "cdc_watcher_consumed_offset", "Offset of the last position consumed."),
            durable_segment: gauge(
                &registry,
                "cdc_watcher_durable_segment_id",
                "Segment of the highest durable position.",
            ),
            durable_offset: gauge(&registry, "cdc_watcher_durable_offset", "Offset of the highest durable position."),
            lag_bytes: gauge(&registry, "cdc_watcher_lag_bytes", "Durable logical bytes not yet consumed."),
            lag_segments: gauge(&registry, "cdc_watcher_lag_segments", "Segments with durable data not yet consumed."),
            awaiting_cleanup: gauge(
                &registry,
                "cdc_watcher_segments_awaiting_cleanup",
                "Finished, acknowledged segments waiting for the cleanup hook.",
            ),
            kept: gauge(&registry, "cdc_watcher_segments_kept", "Finished, acknowledged segments kept (no cleanup)."),
            damaged: gauge(&registry, "cdc_watcher_segments_damaged", "Segments whose data was damaged (kept)."),
            abandoned: gauge(&registry, "cdc_watcher_segments_abandoned", "Segments finished by the abandonment rule."),
            held_back_segment: gauge(
                &registry,
                "cdc_watcher_held_back_segment_id",
                "The segment the abandonment rule holds back while its grace runs (0: none).",
            ),
            held_back_seconds,
            registry,
        }
    }

    /// A batch checkpointed: its records by topic (name, keyspace, table).
    pub fn batch_delivered(&self, per_topic: &[(&(String, String, String), u64)]) {
        for ((_, keyspace, table), n) in per_topic {
            self.records.with_label_values(&[keyspace.as_str(), table.as_str()]).inc_by(*n);
        }
        self.batches.inc();
        *self.last_checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How long a batch took, from read to checkpoint.
    pub fn batch_latency(&self, d: Duration) {
        self.batch_seconds.observe(d.as_secs_f64());
    }

    /// A failed delivery sent the sink back to its checkpoint.
    pub fn failed_attempt(&self) {
        self.failed_attempts.inc();
    }

    /// The watcher's counters, and the batches in flight.
    pub fn watcher(&self, m: &cassandra_commitlog::cdc::Metrics, in_flight: usize) {
        if let Some(p) = m.consumed {
            self.consumed_segment.set(p.segment_id);
            self.consumed_offset.set(p.offset as i64);
        }
        if let Some(p) = m.durable {
            self.durable_segment.set(p.segment_id);
            self.durable_offset.set(p.offset as i64);
        }
        self.lag_bytes.set(m.lag_bytes as i64);
        self.lag_segments.set(m.lag_segments as i64);
        self.awaiting_cleanup.set(m.awaiting_cleanup as i64);
        self.kept.set(m.kept as i64);
        self.damaged.set(m.damaged_segments as i64);
        self.abandoned.set(m.abandoned_segments as i64);
        self.held_back_segment.set(m.held_back.map_or(0, |h| h.segment_id));
        self.held_back_seconds.set(m.held_back.map_or(0.0, |h| h.since.elapsed().as_secs_f64()));
        self.in_flight.set(in_flight as i64);
    }

    /// The Prometheus text of every metric now.
    pub fn text(&self) -> Vec<u8> {
        let since = self.last_checkpoint.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        self.since_checkpoint.set(since.as_secs_f64());
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding into memory");
        out
    }
}

/// Serves the metrics at `http://ADDR/metrics` (any path) on a thread of
/// its own; returns the address bound (port 0 picks one).
pub fn serve(addr: &str, metrics: Arc<Metrics>) -> Result<SocketAddr, Box<dyn std::error::Error + Send + Sync>> {
    let server = tiny_http::Server::http(addr)?;
    let bound = server.server_addr().to_ip().ok_or("the metrics server is not on an IP address")?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/plain; version=0.0.4"[..])
            .expect("a valid header");
        for request in server.incoming_requests() {
            let response = tiny_http::Response::from_data(metrics.text()).with_header(header.clone());
            let _ = request.respond(response);
        }
    })?;
    Ok(bound)
}
