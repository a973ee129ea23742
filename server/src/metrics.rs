//! Prometheus metrics, held in [`Metrics`] (part of the app state) and served as text on the
//! admin listener's `/metrics`. Labels come from static names (route templates, status codes),
//! never from request text, so their number stays bounded: the method is one of the standard
//! ones or `other` ([`method_label`]), the route is the matched template or `unmatched`, the
//! status is a code the server chose.
//!
//! Other features update their own fields: the stream module counts `active_streams`, the
//! scanner sets the `scan_*` gauges.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `method` label: the standard methods as they are, anything else `other` (HTTP lets a
/// client send any token as a method).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// Labels of one HTTP request series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route template (`/items/{itemid}`), or `unmatched`.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of the latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route template.
    pub route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by method, route template and status.
    pub http_requests: Family<RequestLabels, Counter>,
    /// Time to the response head, by method and route template.
    pub http_duration: HistogramFamily,
    /// Requests being answered now.
    pub http_in_flight: Gauge,
    /// Direct streams (and later transcodes) sending bytes now.
    pub active_streams: Gauge,
    /// Open session WebSockets.
    pub websocket_connections: Gauge,
    /// 1 while a library scan runs, else 0.
    pub scan_running: Gauge,
    /// Files found by the running (or last) scan.
    pub scan_files_total: Gauge,
    /// Files of the running (or last) scan already handled.
    pub scan_files_done: Gauge,
    /// Files that ffprobe could not read, over the process's life.
    pub scan_errors: Counter,
    /// Failed logins (wrong user or password), over the process's life.
    pub login_failures: Counter,
    /// Logins refused by the rate limiter.
    pub login_throttled: Counter,
    /// Unix time (seconds) the process started.
    pub start_time_seconds: Gauge<f64, AtomicU64>,
    /// 1 while this replica holds leadership, else 0.
    pub leader: Gauge,
    /// The fencing number of this replica's current term, 0 when not leader.
    pub leader_epoch: Gauge,
    /// Times this replica became or stopped being leader.
    pub leader_transitions: Counter,
    /// 1 while Redis answers (or when coordination is in process), else 0.
    pub redis_up: Gauge,
    /// Token lookups answered from the in-process cache.
    pub token_cache_hits: Counter,
    /// ffmpeg transcodes running now on this replica.
    pub active_transcodes: Gauge,
    /// ffmpeg transcodes started, over the process's life.
    pub transcodes_started: Counter,
    /// 1 for the hardware path transcodes use (`software`, `vaapi`, `qsv`, `nvenc`).
    pub transcode_path: Family<PathLabels, Gauge>,
}

/// Labels of the transcode path gauge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PathLabels {
    /// The path in use.
    pub path: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered under the `ephyra` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ephyra");
        let metrics_fields = (
            Family::<RequestLabels, Counter>::default(),
            HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram),
        );
        let (http_requests, http_duration) = metrics_fields;
        let http_in_flight = Gauge::default();
        let active_streams = Gauge::default();
        let websocket_connections = Gauge::default();
        let scan_running = Gauge::default();
        let scan_files_total = Gauge::default();
        let scan_files_done = Gauge::default();
        let scan_errors = Counter::default();
        let login_failures = Counter::default();
        let login_throttled = Counter::default();
        let start_time_seconds = Gauge::<f64, AtomicU64>::default();
        let leader = Gauge::default();
        let leader_epoch = Gauge::default();
        let leader_transitions = Counter::default();
        let redis_up = Gauge::default();
        let token_cache_hits = Counter::default();
        let active_transcodes = Gauge::default();
        let transcodes_started = Counter::default();
        let transcode_path = Family::<PathLabels, Gauge>::default();
        start_time_seconds.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs_f64(),
        );

        registry.register(
            "http_requests",
            "HTTP requests answered, by route template and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head, by route template",
            http_duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being answered now",
            http_in_flight.clone(),
        );
        registry.register(
            "active_streams",
            "Streams sending media bytes now",
            active_streams.clone(),
        );
        registry.register(
            "websocket_connections",
            "Open session WebSockets",
            websocket_connections.clone(),
        );
        registry.register(
            "scan_running",
            "1 while a library scan runs",
            scan_running.clone(),
        );
        registry.register(
            "scan_files_total",
            "Files found by the running or last scan",
            scan_files_total.clone(),
        );
        registry.register(
            "scan_files_done",
            "Files handled by the running or last scan",
            scan_files_done.clone(),
        );
        registry.register(
            "scan_errors",
            "Files that could not be probed",
            scan_errors.clone(),
        );
        registry.register("login_failures", "Failed logins", login_failures.clone());
        registry.register(
            "login_throttled",
            "Logins refused by the rate limiter",
            login_throttled.clone(),
        );
        registry.register(
            "process_start_time_seconds",
            "Unix time the server started",
            start_time_seconds.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica is the leader",
            leader.clone(),
        );
        registry.register(
            "leader_epoch",
            "Fencing number of this replica's leadership term, 0 when not leader",
            leader_epoch.clone(),
        );
        registry.register(
            "leader_transitions",
            "Times this replica gained or lost leadership",
            leader_transitions.clone(),
        );
        registry.register("redis_up", "1 while Redis answers", redis_up.clone());
        registry.register(
            "token_cache_hits",
            "Token lookups answered from the in-process cache",
            token_cache_hits.clone(),
        );

        registry.register(
            "active_transcodes",
            "ffmpeg transcodes running now on this replica",
            active_transcodes.clone(),
        );
        registry.register(
            "transcodes_started",
            "ffmpeg transcodes started",
            transcodes_started.clone(),
        );
        registry.register(
            "transcode_path",
            "1 for the hardware path transcodes use",
            transcode_path.clone(),
        );

        Metrics {
            registry,
            http_requests,
            http_duration,
            http_in_flight,
            active_streams,
            websocket_connections,
            scan_running,
            scan_files_total,
            scan_files_done,
            scan_errors,
            login_failures,
            login_throttled,
            start_time_seconds,
            leader,
            leader_epoch,
            leader_transitions,
            redis_up,
            token_cache_hits,
            active_transcodes,
            transcodes_started,
            transcode_path,
        }
    }

    /// Records one answered request. `method` is mapped through [`method_label`] here, so no
    /// caller can turn a client's invented method into a series.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.http_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_template_and_status() {
        let m = Metrics::new();
        m.observe_request("GET", "/items/{itemid}", 200, Duration::from_millis(3));
        m.active_streams.inc();
        let text = m.encode();
        assert!(
            text.contains(
                r#"ephyra_http_requests_total{method="GET",route="/items/{itemid}",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("ephyra_active_streams 1"), "{text}");
        assert!(
            text.contains("ephyra_http_request_duration_seconds_bucket"),
            "{text}"
        );
    }

    #[test]
    fn invented_methods_share_one_label() {
        let m = Metrics::new();
        m.observe_request("GET", "unmatched", 404, Duration::from_millis(1));
        let before = m.encode().len();
        for i in 0..3000 {
            m.observe_request(&format!("X{i}"), "unmatched", 404, Duration::from_millis(1));
        }
        let text = m.encode();
        assert!(
            text.len() < before * 2,
            "metrics grew from {before} to {} bytes",
            text.len()
        );
        assert!(
            text.contains(
                r#"ephyra_http_requests_total{method="other",route="unmatched",status="404"} 3000"#
            ),
            "{text}"
        );
    }
}
