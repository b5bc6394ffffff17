//! Model residency: with `SWITCHYARD_MODEL_IDLE_TTL_S`, idle models leave the
//! device and the next request brings them back, with the same answer.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::http::{cosine, post_json, send, vectors, Server};

fn residency(server: &Server) -> Value {
    let info = send("GET", &format!("{}/info", server.url), &[], b"");
    assert_eq!(info.status, 200, "{:?}", info.body);
    info.body["residency"].clone()
}

fn wait_for(server: &Server, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = residency(server);
        if pred(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "{what} did not happen in 30 s: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn idle_models_are_unloaded_after_the_ttl_and_come_back_on_the_next_request() {
    let mut server = Server::start("idle-ttl", &[], &[("SWITCHYARD_MODEL_IDLE_TTL_S", "3")]);
    let url = format!("{}/v1/embed/text", server.url);
    let body = json!({"texts": ["a photo of a cat", "a red car"]});
    let first = post_json(&url, &body, &[]);
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(residency(&server)["clip"]["loaded"], true);

    let r = wait_for(&server, "idle unload", |r| r["clip"]["loaded"] == false && r["faces"]["loaded"] == false);
    assert_eq!(r["clip"]["reloads"], 0);

    let again = post_json(&url, &body, &[]);
    assert_eq!(again.status, 200, "{:?}", again.body);
    for (a, b) in vectors(&first.body["embeddings"]).iter().zip(vectors(&again.body["embeddings"]).iter()) {
        assert!(cosine(a, b) > 0.99999, "the reloaded model answers differently");
    }
    let r = residency(&server);
    assert_eq!(r["clip"]["loaded"], true, "{r}");
    assert_eq!(r["clip"]["reloads"], 1, "{r}");
    assert!(server.log_text().contains("unloaded idle models"), "the unload is logged");
    server.terminate();
}

/// On the CPU the companion's unload runs its allocator-cache release too,
/// which answers "not a GPU" (no figures, no release, no error): the device
/// facts stay empty through an idle unload of TorchScript CLIP.
#[test]
fn the_cpu_reports_no_device_memory_through_an_idle_unload() {
    let mut server = Server::start(
        "idle-cpu-memory",
        &["--no-faces"],
        &[("SWITCHYARD_MODEL_IDLE_TTL_S", "2"), ("CLIP_ENGINE", "torchscript"), ("SWITCHYARD_CUDA_TF32", "on")],
    );
    let url = format!("{}/v1/embed/text", server.url);
    let body = json!({"texts": ["a photo of a cat"]});
    assert_eq!(post_json(&url, &body, &[]).status, 200);
    wait_for(&server, "idle unload", |r| r["clip"]["loaded"] == false);
    assert_eq!(post_json(&url, &body, &[]).status, 200, "reloaded after the unload");
    let info = send("GET", &format!("{}/info", server.url), &[], b"").body;
    assert_eq!(info["backend_extra"].as_array().map(|a| a.is_empty()), Some(false), "{info}");
    assert_eq!(info["device_memory"], json!([]), "{info}");
    for key in ["device_memory_error", "allocator_cache", "cuda_settings"] {
        assert_eq!(info[key], Value::Null, "{key} on the CPU: {info}");
    }
    let metrics = send("GET", &format!("{}/metrics", server.url), &[], b"");
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(text.contains("switchyard_requests_total"), "{text}");
    // The family is declared on every server (the same families everywhere), with no series on the CPU.
    assert!(text.contains("# TYPE switchyard_device_memory_bytes gauge"), "{text}");
    assert!(!text.contains("switchyard_device_memory_bytes{"), "no device memory series on the CPU: {text}");
    server.terminate();
}

#[test]
fn without_a_ttl_models_stay_loaded() {
    let mut server = Server::start("idle-none", &["--no-faces"], &[]);
    std::thread::sleep(Duration::from_secs(3));
    let r = residency(&server);
    assert_eq!(r["clip"]["loaded"], true, "{r}");
    assert_eq!(r["clip"]["reloads"], 0, "{r}");
    server.terminate();
}
