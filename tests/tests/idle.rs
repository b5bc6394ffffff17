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

#[test]
fn without_a_ttl_models_stay_loaded() {
    let mut server = Server::start("idle-none", &["--no-faces"], &[]);
    std::thread::sleep(Duration::from_secs(3));
    let r = residency(&server);
    assert_eq!(r["clip"]["loaded"], true, "{r}");
    assert_eq!(r["clip"]["reloads"], 0, "{r}");
    server.terminate();
}
