//! Prometheus metrics, kept in memory and written in the text exposition
//! format by `GET /metrics`.
//!
//! A dozen series do not need a metrics framework: counters and histograms
//! are maps behind one mutex each, touched a few times per request.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const DURATION_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// One histogram series: cumulative bucket counts, sum and count.
#[derive(Debug, Clone)]
struct Series {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Histograms of one metric name, by label set.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    series: Mutex<BTreeMap<String, Series>>,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, series: Mutex::new(BTreeMap::new()) }
    }

    fn observe(&self, labels: String, value: f64) {
        let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.entry(labels).or_insert_with(|| Series { buckets: vec![0; self.bounds.len()], sum: 0.0, count: 0 });
        for (bucket, bound) in s.buckets.iter_mut().zip(self.bounds) {
            if value <= *bound {
                *bucket += 1;
            }
        }
        s.sum += value;
        s.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for (labels, s) in map.iter() {
            let sep = if labels.is_empty() { "" } else { "," };
            for (bound, count) in self.bounds.iter().zip(&s.buckets) {
                let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
        }
    }
}

/// Counters of one metric name, by label set.
#[derive(Debug, Default)]
struct Counter(Mutex<BTreeMap<String, u64>>);

impl Counter {
    fn inc(&self, labels: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(labels).or_default() += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, v) in self.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// A metric with one unlabelled series.
fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: i64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    requests: Counter,
    failures: Counter,
    request_duration: Histogram,
    batch_size: Histogram,
    queue_duration: Histogram,
    preprocess_duration: Histogram,
    inference_duration: Histogram,
    batches: Counter,
    queue_size: [AtomicI64; Queue::ALL.len()],
    device: Mutex<Option<String>>,
    connections_open: AtomicI64,
    connections_closed: Counter,
    connections_capped: AtomicI64,
}

/// The model queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Text,
    Image,
    Faces,
    /// The Immich routes' models (`POST /predict`), one queue per loaded model.
    ImmichVisual,
    ImmichTextual,
    ImmichFaces,
}

impl Queue {
    /// Every queue, in the order `/metrics` lists them.
    pub const ALL: [Queue; 6] =
        [Queue::Text, Queue::Image, Queue::Faces, Queue::ImmichVisual, Queue::ImmichTextual, Queue::ImmichFaces];

    pub fn name(self) -> &'static str {
        match self {
            Queue::Text => "text",
            Queue::Image => "image",
            Queue::Faces => "faces",
            Queue::ImmichVisual => "immich_visual",
            Queue::ImmichTextual => "immich_textual",
            Queue::ImmichFaces => "immich_faces",
        }
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Counter::default(),
            failures: Counter::default(),
            request_duration: Histogram::new(DURATION_BUCKETS),
            batch_size: Histogram::new(BATCH_BUCKETS),
            queue_duration: Histogram::new(DURATION_BUCKETS),
            preprocess_duration: Histogram::new(DURATION_BUCKETS),
            inference_duration: Histogram::new(DURATION_BUCKETS),
            batches: Counter::default(),
            queue_size: Queue::ALL.map(|_| AtomicI64::new(0)),
            device: Mutex::new(None),
            connections_open: AtomicI64::new(0),
            connections_closed: Counter::default(),
            connections_capped: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    /// Records a finished request.
    pub fn request(&self, route: &str, status: u16, error_type: Option<&str>, took: Duration) {
        let route = esc(route);
        self.requests.inc(format!("route=\"{route}\",status=\"{status}\""));
        if let Some(kind) = error_type {
            self.failures.inc(format!("route=\"{route}\",status=\"{status}\",error_type=\"{kind}\""));
        }
        self.request_duration.observe(format!("route=\"{route}\""), took.as_secs_f64());
    }

    /// Records one batch run by a model worker.
    pub fn batch(&self, queue: Queue, size: usize, queued: Duration, inference: Duration) {
        let labels = format!("model=\"{}\"", queue.name());
        self.batch_size.observe(labels.clone(), size as f64);
        self.queue_duration.observe(labels.clone(), queued.as_secs_f64());
        self.inference_duration.observe(labels, inference.as_secs_f64());
    }

    /// Counts a batch by the device that served it (the selected one or the
    /// fallback) and whether it succeeded.
    pub fn served(&self, queue: Queue, device: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.batches.inc(format!("model=\"{}\",device=\"{}\",outcome=\"{outcome}\"", queue.name(), esc(device)));
    }

    /// Records the decode + preprocess time of one image bound for `queue`.
    pub fn preprocess(&self, queue: Queue, took: Duration) {
        self.preprocess_duration.observe(format!("model=\"{}\"", queue.name()), took.as_secs_f64());
    }

    /// Adds `delta` items to a queue's size.
    pub fn queue_add(&self, queue: Queue, delta: i64) {
        self.queue_size[queue as usize].fetch_add(delta, Ordering::Relaxed);
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed; `timed_out`: its client did not send a request head in time.
    pub fn connection_closed(&self, timed_out: bool) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
        self.connections_closed.inc(format!("reason=\"{}\"", if timed_out { "header_timeout" } else { "closed" }));
    }

    /// The accept loop found the connection cap reached.
    pub fn connections_capped(&self) {
        self.connections_capped.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the device label once the runtime is up.
    pub fn set_device(&self, device: &str, plugin: &str, engine: &str) {
        let labels = format!("device=\"{}\",plugin=\"{}\",engine=\"{}\"", esc(device), esc(plugin), esc(engine));
        *self.device.lock().unwrap_or_else(|e| e.into_inner()) = Some(labels);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 << 10);
        if let Some(labels) = self.device.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = writeln!(
                out,
                "# HELP switchyard_device_info The device the models run on.\n# TYPE switchyard_device_info gauge\nswitchyard_device_info{{{labels}}} 1"
            );
        }
        self.requests.render(&mut out, "switchyard_requests_total", "HTTP requests by route and status.");
        self.failures.render(
            &mut out,
            "switchyard_request_failures_total",
            "Failed HTTP requests by route, status and error type.",
        );
        self.request_duration.render(&mut out, "switchyard_request_duration_seconds", "Request latency by route.");
        let _ = writeln!(
            out,
            "# HELP switchyard_queue_size Items waiting in each model queue.\n# TYPE switchyard_queue_size gauge"
        );
        for q in Queue::ALL {
            let _ = writeln!(
                out,
                "switchyard_queue_size{{model=\"{}\"}} {}",
                q.name(),
                self.queue_size[q as usize].load(Ordering::Relaxed)
            );
        }
        self.batch_size.render(&mut out, "switchyard_batch_size", "Items per model batch.");
        self.queue_duration.render(
            &mut out,
            "switchyard_queue_duration_seconds",
            "Time the oldest item of a batch waited in the queue.",
        );
        self.preprocess_duration.render(
            &mut out,
            "switchyard_preprocess_duration_seconds",
            "Decode and preprocess time per image.",
        );
        self.inference_duration.render(&mut out, "switchyard_inference_duration_seconds", "Model time per batch.");
        self.batches.render(
            &mut out,
            "switchyard_batches_total",
            "Model batches by the device that ran them (the selected one or the fallback) and outcome.",
        );
        let open = self.connections_open.load(Ordering::Relaxed);
        scalar(&mut out, "switchyard_connections_open", "gauge", "Open HTTP connections.", open);
        self.connections_closed.render(
            &mut out,
            "switchyard_connections_closed_total",
            "Closed HTTP connections, by reason (header_timeout: no whole request head within SWITCHYARD_HEADER_READ_TIMEOUT_S).",
        );
        let capped = self.connections_capped.load(Ordering::Relaxed);
        let help = "Times the accept loop waited at SWITCHYARD_MAX_CONNECTIONS.";
        scalar(&mut out, "switchyard_connections_capped_total", "counter", help, capped);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let m = Metrics::default();
        m.batch(Queue::Image, 3, Duration::from_millis(2), Duration::from_millis(30));
        m.batch(Queue::Image, 32, Duration::from_millis(2), Duration::from_millis(300));
        let text = m.render();
        assert!(text.contains("switchyard_batch_size_bucket{model=\"image\",le=\"4\"} 1"), "{text}");
        assert!(text.contains("switchyard_batch_size_bucket{model=\"image\",le=\"32\"} 2"), "{text}");
        assert!(text.contains("switchyard_batch_size_count{model=\"image\"} 2"), "{text}");
    }
}
