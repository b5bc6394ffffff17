//! `GET /metrics` read by Prometheus's own text parser
//! (`prometheus_client.parser.text_string_to_metric_families`, through
//! tools/parse_metrics.py) after known traffic on a server of its own: two
//! text embeds (1 and 3 texts), one image embed, a malformed JSON body (422)
//! and an unknown route (404). The families must parse with the types of
//! docs/api.md, the counters must equal that traffic exactly, and every
//! histogram must be cumulative with its `+Inf` bucket equal to its count.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};
use switchyard_tests::http::{make_images, post_json, send, Server};
use switchyard_tests::{root, temp_dir, venv_python};

/// One sample as the parser read it.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The parsed exposition: family name -> (type, samples), and the `/ready` polls seen while starting.
struct Scrape {
    families: BTreeMap<String, (String, Vec<Sample>)>,
    ready_polls: Vec<u16>,
    text: String,
    content_type: String,
}

const KEY: &str = "metrics-test-key";

fn scrape() -> &'static Scrape {
    static SCRAPE: OnceLock<Scrape> = OnceLock::new();
    SCRAPE.get_or_init(|| {
        let server = Server::start("metrics", &["--no-faces"], &[("SWITCHYARD_API_KEY", KEY)]);
        let auth = format!("Bearer {KEY}");
        let h = [("authorization", auth.as_str())];
        let u = |p: &str| format!("{}{p}", server.url);
        assert_eq!(post_json(&u("/v1/embed/text"), &json!({"text": "a photo of a cat"}), &h).status, 200);
        assert_eq!(post_json(&u("/v1/embed/text"), &json!({"texts": ["a", "b", "c"]}), &h).status, 200);
        let jpeg = std::fs::read(&make_images(&temp_dir("metrics-images"), 1, 320, 240)[0]).unwrap();
        let r = send("POST", &u("/v1/embed/image"), &[h[0], ("content-type", "image/jpeg")], &jpeg);
        assert_eq!(r.status, 200, "{:?}", r.body);
        let bad = send("POST", &u("/v1/embed/text"), &[h[0], ("content-type", "application/json")], b"{\"texts\": [");
        assert_eq!((bad.status, bad.body["error_type"].as_str()), (422, Some("invalid_json")));
        assert_eq!(send("GET", &u("/no/such/route"), &h, b"").status, 404);
        let r = send("GET", &u("/metrics"), &h, b"");
        assert_eq!(r.status, 200);
        let content_type = r.header("content-type").unwrap_or_default().to_string();
        let text = r.body.as_str().expect("metrics are text").to_string();
        Scrape { families: parse(&text), ready_polls: server.ready_polls.clone(), text, content_type }
    })
}

/// Runs the Prometheus parser on `text`; panics with its message if it refuses.
fn parse(text: &str) -> BTreeMap<String, (String, Vec<Sample>)> {
    let mut child = Command::new(venv_python())
        .arg(root().join("tools/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tools/parse_metrics.py runs");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{text}", String::from_utf8_lossy(&out.stderr));
    let families: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON from the parser");
    families
        .into_iter()
        .map(|f| {
            let samples = f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Sample {
                    name: s["name"].as_str().unwrap().to_string(),
                    labels: serde_json::from_value(s["labels"].clone()).unwrap(),
                    value: s["value"].as_f64().unwrap_or_else(|| panic!("not a finite value: {s}")),
                })
                .collect();
            (f["name"].as_str().unwrap().to_string(), (f["type"].as_str().unwrap().to_string(), samples))
        })
        .collect()
}

/// The samples of a family (the parser names a counter's family without `_total`).
fn family(name: &str) -> &'static [Sample] {
    &scrape().families.get(name).unwrap_or_else(|| panic!("no family {name} in\n{}", scrape().text)).1
}

/// The value of the sample `name` whose labels include `labels` (0 when there is none).
fn value(family_name: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Sample> = family(family_name)
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?} is not one series: {matching:?}");
    matching.first().map_or(0.0, |s| s.value)
}

/// The families docs/api.md's Metrics table lists, with their types, as the parser names them
/// (a counter's family without `_total`).
fn documented_families() -> BTreeMap<String, String> {
    let api = std::fs::read_to_string(root().join("docs/api.md")).expect("docs/api.md");
    let section = api.split("\n## Metrics\n").nth(1).expect("a Metrics section in docs/api.md");
    let section = section.split("\n## ").next().unwrap_or_default();
    let rows: BTreeMap<String, String> = section
        .lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let kind = cells.next()?.split_whitespace().next()?;
            let family = if kind == "counter" { name.strip_suffix("_total").unwrap_or(name) } else { name };
            Some((family.to_string(), kind.to_string()))
        })
        .collect();
    assert!(rows.len() >= 10, "the Metrics table of docs/api.md: {rows:?}");
    rows
}

#[test]
fn the_exposition_parses_into_the_documented_families_and_types() {
    let got: BTreeMap<String, String> = scrape().families.iter().map(|(k, (t, _))| (k.clone(), t.clone())).collect();
    assert_eq!(got, documented_families(), "/metrics against docs/api.md's table");
}

#[test]
fn this_traffic_reaches_every_family() {
    for name in [
        "switchyard_device_info",
        "switchyard_requests",
        "switchyard_request_failures",
        "switchyard_request_duration_seconds",
        "switchyard_queue_size",
        "switchyard_batch_size",
        "switchyard_queue_duration_seconds",
        "switchyard_preprocess_duration_seconds",
        "switchyard_inference_duration_seconds",
        "switchyard_batches",
    ] {
        assert!(!family(name).is_empty(), "{name} has no samples after this traffic");
    }
}

#[test]
fn the_content_type_names_the_text_format_version() {
    // Prometheus 3 fails a scrape whose Content-Type is missing or unknown.
    let ct = &scrape().content_type;
    assert!(ct.starts_with("text/plain") && ct.contains("version=0.0.4"), "Content-Type: {ct}");
}

#[test]
fn requests_are_counted_by_route_and_status() {
    let requests = |route, status| {
        value("switchyard_requests", "switchyard_requests_total", &[("route", route), ("status", status)])
    };
    assert_eq!(requests("/v1/embed/text", "200"), 2.0);
    assert_eq!(requests("/v1/embed/text", "422"), 1.0);
    assert_eq!(requests("/v1/embed/image", "200"), 1.0);
    assert_eq!(requests("unmatched", "404"), 1.0);
    let polls = &scrape().ready_polls;
    assert_eq!(requests("/ready", "200"), 1.0, "{polls:?}");
    assert_eq!(requests("/ready", "503"), polls.iter().filter(|s| **s == 503).count() as f64, "{polls:?}");
    // The scrape is counted once it is answered, so not in itself.
    assert_eq!(requests("/metrics", "200"), 0.0);
}

#[test]
fn failures_are_counted_by_error_type_and_successes_are_not() {
    let failures = |route, status, kind| {
        value(
            "switchyard_request_failures",
            "switchyard_request_failures_total",
            &[("route", route), ("status", status), ("error_type", kind)],
        )
    };
    assert_eq!(failures("/v1/embed/text", "422", "invalid_json"), 1.0);
    assert_eq!(failures("unmatched", "404", "not_found"), 1.0);
    let total: f64 = family("switchyard_request_failures").iter().map(|s| s.value).sum();
    let ready_503 = scrape().ready_polls.iter().filter(|s| **s == 503).count() as f64;
    assert_eq!(total, 2.0 + ready_503, "{:?}", family("switchyard_request_failures"));
}

#[test]
fn every_histogram_is_cumulative_with_inf_equal_to_count() {
    for (name, (kind, samples)) in &scrape().families {
        if kind != "histogram" {
            continue;
        }
        // One series per label set without `le`.
        let mut series: BTreeMap<Vec<(String, String)>, Vec<&Sample>> = BTreeMap::new();
        for s in samples {
            let key = s.labels.iter().filter(|(k, _)| *k != "le").map(|(k, v)| (k.clone(), v.clone())).collect();
            series.entry(key).or_default().push(s);
        }
        assert!(!series.is_empty(), "{name}: no series");
        for (labels, samples) in series {
            let buckets: Vec<(f64, f64)> = samples
                .iter()
                .filter(|s| s.name == format!("{name}_bucket"))
                .map(|s| (s.labels["le"].parse::<f64>().expect("le is a number or +Inf"), s.value))
                .collect();
            let one = |suffix: &str| {
                let found: Vec<f64> =
                    samples.iter().filter(|s| s.name == format!("{name}{suffix}")).map(|s| s.value).collect();
                assert_eq!(found.len(), 1, "{name}{suffix} {labels:?}");
                found[0]
            };
            let (count, sum) = (one("_count"), one("_sum"));
            assert!(buckets.len() >= 2, "{name} {labels:?}: {buckets:?}");
            for w in buckets.windows(2) {
                assert!(w[0].0 < w[1].0, "{name} {labels:?}: le not ascending: {buckets:?}");
                assert!(w[0].1 <= w[1].1, "{name} {labels:?}: not cumulative: {buckets:?}");
            }
            let last = buckets.last().unwrap();
            assert!(last.0.is_infinite(), "{name} {labels:?}: the last bucket must be +Inf");
            assert_eq!(last.1, count, "{name} {labels:?}: +Inf bucket != count");
            assert!(count >= 1.0 && sum >= 0.0, "{name} {labels:?}: count {count}, sum {sum}");
        }
    }
}

#[test]
fn batches_add_up_to_the_items_sent() {
    let h = "switchyard_batch_size";
    // 1 + 3 texts in two sequential requests (each request's items enter the queue at once).
    assert_eq!(value(h, "switchyard_batch_size_sum", &[("model", "text")]), 4.0);
    assert_eq!(value(h, "switchyard_batch_size_count", &[("model", "text")]), 2.0);
    assert_eq!(value(h, "switchyard_batch_size_sum", &[("model", "image")]), 1.0);
    assert_eq!(value(h, "switchyard_batch_size_count", &[("model", "image")]), 1.0);
    for model in ["text", "image"] {
        let batches = value(h, "switchyard_batch_size_count", &[("model", model)]);
        let ok = value(
            "switchyard_batches",
            "switchyard_batches_total",
            &[("model", model), ("device", "cpu"), ("outcome", "ok")],
        );
        assert_eq!(ok, batches, "{model}: batches_total against the batch histogram");
        let inference = value(
            "switchyard_inference_duration_seconds",
            "switchyard_inference_duration_seconds_count",
            &[("model", model)],
        );
        assert_eq!(inference, batches, "{model}: one inference time per batch");
    }
    let pre = "switchyard_preprocess_duration_seconds";
    assert_eq!(value(pre, "switchyard_preprocess_duration_seconds_count", &[("model", "image")]), 1.0);
    let failed: f64 =
        family("switchyard_batches").iter().filter(|s| s.labels["outcome"] == "failed").map(|s| s.value).sum();
    assert_eq!(failed, 0.0);
}

#[test]
fn request_latency_is_observed_once_per_request() {
    let h = "switchyard_request_duration_seconds";
    let count = |route| value(h, "switchyard_request_duration_seconds_count", &[("route", route)]);
    assert_eq!(count("/v1/embed/text"), 3.0);
    assert_eq!(count("/v1/embed/image"), 1.0);
    assert_eq!(count("unmatched"), 1.0);
}

#[test]
fn the_gauges_say_the_device_and_empty_queues() {
    let info = family("switchyard_device_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].value, 1.0);
    assert_eq!(info[0].labels.get("device").map(String::as_str), Some("cpu"));
    assert_eq!(info[0].labels.get("plugin").map(String::as_str), Some("backend-cpu"));
    let queues = ["text", "image", "faces", "immich_visual", "immich_textual", "immich_faces"];
    for model in queues {
        assert_eq!(value("switchyard_queue_size", "switchyard_queue_size", &[("model", model)]), 0.0, "{model}");
    }
    let models = family("switchyard_queue_size").len();
    assert_eq!(models, queues.len());
}
