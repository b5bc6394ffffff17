//! End-to-end tests of `switchyard serve`: the real binary with the CPU
//! plugin on a free port, called over HTTP. Every route, every error status
//! of the table in docs/api.md, and embeddings equal to `switchyard embed`
//! on the same inputs.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use switchyard_tests::http::{
    assert_error, cosine, make_images, models, multipart, post_expect_continue, post_json, send, vectors, Server,
};
use switchyard_tests::{switchyard_bin, temp_dir};

const MIN_COSINE: f32 = 0.99999;

/// The main server (small limits so the limit tests stay cheap), started once,
/// with what it answered while loading.
struct Main {
    server: Server,
    early_embed: (u16, Value),
}

fn main_server() -> &'static Main {
    static MAIN: OnceLock<Main> = OnceLock::new();
    MAIN.get_or_init(|| {
        let args =
            ["--max-body-bytes", "1000000", "--max-items", "8", "--max-pixels", "4000000", "--max-text-chars", "300"];
        let mut server = Server::spawn("main", &args, &[]);
        server.wait_live();
        let early = post_json(&format!("{}/v1/embed/text", server.url), &json!({"text": "too early"}), &[]);
        server.wait_ready();
        Main { server, early_embed: (early.status, early.body) }
    })
}

fn url(path: &str) -> String {
    format!("{}{path}", main_server().server.url)
}

fn images() -> &'static Vec<PathBuf> {
    static IMAGES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dir = temp_dir("serve-images");
        let mut files = make_images(&dir, 2, 320, 240);
        let png = dir.join("photo.png");
        image::RgbImage::from_fn(200, 300, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]))
            .save(&png)
            .unwrap();
        files.push(png);
        files
    })
}

/// `switchyard embed` on the same inputs: (texts, images) in input order.
fn cli_embed(texts: &[&str], images: &[PathBuf]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let plugins = switchyard_tests::http::cpu_plugins("serve-cli");
    let mut cmd = Command::new(switchyard_bin());
    cmd.arg("embed").arg("--plugin-dir").arg(&plugins).arg("--model-dir").arg(models()).args(images);
    for t in texts {
        cmd.arg("--text").arg(t);
    }
    let out = cmd.env_remove("DEVICE").output().expect("switchyard embed runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (mut t, mut i) = (Vec::new(), Vec::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let e = vectors(&json!([v["embedding"]])).remove(0);
        if v["type"] == "text" {
            t.push(e)
        } else {
            i.push(e)
        }
    }
    (t, i)
}

fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), 512);
        let c = cosine(g, w);
        assert!(c >= MIN_COSINE, "row {k}: cosine {c}");
    }
}

/// An error of an OpenAI-compatible route: `{"error": {"message", "type", "param", "code"}}`.
fn assert_openai_error(reply: &switchyard_tests::http::Reply, status: u16, code: &str, param: Option<&str>) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    let error = &reply.body["error"];
    assert_eq!(error["code"], code, "{:?}", reply.body);
    assert_eq!(error["param"].as_str(), param, "{:?}", reply.body);
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{:?}", reply.body);
    assert!(error["type"].as_str().is_some_and(|t| t.ends_with("_error")), "{:?}", reply.body);
    assert_eq!(reply.body.as_object().map(|o| o.len()), Some(1), "only `error`: {:?}", reply.body);
}

#[test]
fn before_ready_the_server_is_live_and_says_503() {
    let main = main_server();
    assert_eq!(main.server.ready_polls.first(), Some(&503), "{:?}", main.server.ready_polls);
    assert_eq!(main.server.ready_polls.last(), Some(&200));
    assert_eq!(main.early_embed.0, 503, "{:?}", main.early_embed.1);
    assert_eq!(main.early_embed.1["error_type"], "not_ready");
    assert_eq!(send("GET", &url("/health"), &[], b"").body["status"], "ok");
}

#[test]
fn info_reports_the_device_plugin_and_models() {
    let r = send("GET", &url("/info"), &[], b"");
    assert_eq!(r.status, 200);
    let i = &r.body;
    assert_eq!(i["device"], "cpu");
    assert!(i["reason"].as_str().unwrap().contains("cpu"), "{i}");
    assert!(i["plugin_path"].as_str().unwrap().ends_with("libbackend_cpu.so"), "{i}");
    assert_eq!(i["plugin"]["name"], "backend-cpu");
    assert!(i["hardware"].is_object() && i["onnx_providers"].is_array(), "{i}");
    assert_eq!(i["models"][0]["name"], "ViT-B-32");
    // CLIP_ENGINE=auto runs ONNX on the CPU (host/src/clip/model.rs `default_engine`).
    assert_eq!(i["models"][0]["engine"], "onnx");
    assert_eq!(i["random_weights"], true);
    // Which file each runtime is and which rule found it (ONNX Runtime is loaded by now).
    let ort = &i["runtimes"]["onnxruntime"];
    assert_eq!(ort["loaded"], "true", "{i}");
    assert!(ort["path"].as_str().unwrap().contains("libonnxruntime"), "{i}");
    assert!(ort["rule"].as_str().unwrap().starts_with("python: VIRTUAL_ENV="), "{i}");
    assert!(ort["version"].as_str().unwrap().starts_with("1."), "{i}");
    assert!(i["runtimes"]["libtorch"]["path"].is_string(), "{i}");
}

#[test]
fn text_routes_equal_the_cli() {
    let texts = ["a photo of a cat", "東京の夜景", "!"];
    let (want, _) = cli_embed(&texts, &[]);
    let r = post_json(&url("/v1/embed/text"), &json!({"texts": texts}), &[]);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["dim"], 512);
    for h in ["x-queue-ms", "x-inference-ms", "x-batch-size", "x-request-id"] {
        assert!(r.header(h).is_some(), "missing {h}: {:?}", r.headers);
    }
    assert_close(&vectors(&r.body["embeddings"]), &want);
    let one = post_json(&url("/v1/embed/text"), &json!({"text": texts[0]}), &[]);
    assert_close(&vectors(&one.body["embeddings"]), &want[..1]);

    let oa = post_json(&url("/v1/embeddings"), &json!({"input": texts, "model": "ViT-B-32"}), &[]);
    assert_eq!(oa.status, 200, "{:?}", oa.body);
    assert_eq!(oa.body["object"], "list");
    assert_eq!(oa.body["model"], "ViT-B-32");
    assert_eq!(oa.body["data"][2]["index"], 2);
    assert_eq!(oa.body["data"][0]["object"], "embedding");
    let got: Vec<Value> = oa.body["data"].as_array().unwrap().iter().map(|d| d["embedding"].clone()).collect();
    assert_close(&vectors(&Value::Array(got)), &want);
    // "!" is token 0 in CLIP's vocabulary; start + "!" + end = 3.
    assert!(oa.body["usage"]["prompt_tokens"].as_u64().unwrap() >= 3 + 3 + 3);
    assert_eq!(oa.body["usage"]["prompt_tokens"], oa.body["usage"]["total_tokens"]);

    let b64 = post_json(&url("/v1/embeddings"), &json!({"input": texts[1], "encoding_format": "base64"}), &[]);
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(b64.body["data"][0]["embedding"].as_str().unwrap()).unwrap();
    let v: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_close(&[v], &want[1..2]);
}

#[test]
fn image_routes_equal_the_cli_raw_multipart_and_base64() {
    let files = images();
    let (_, want) = cli_embed(&[], files);
    let bytes: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();

    let raw = send("POST", &url("/v1/embed/image"), &[("content-type", "image/jpeg")], &bytes[0]);
    assert_eq!(raw.status, 200, "{:?}", raw.body);
    assert!(raw.header("x-preprocess-ms").is_some());
    assert_close(&vectors(&raw.body["embeddings"]), &want[..1]);

    let parts: Vec<(&str, &[u8])> = bytes.iter().map(|b| ("f", b.as_slice())).collect();
    let (ct, body) = multipart(&parts);
    let form = send("POST", &url("/v1/embed/image"), &[("content-type", &ct)], &body);
    assert_eq!(form.status, 200, "{:?}", form.body);
    assert_close(&vectors(&form.body["embeddings"]), &want);

    let encoded: Vec<String> = bytes.iter().map(|b| base64::engine::general_purpose::STANDARD.encode(b)).collect();
    let j = post_json(&url("/v1/embed/image"), &json!({"images": encoded}), &[]);
    assert_eq!(j.status, 200, "{:?}", j.body);
    assert_close(&vectors(&j.body["embeddings"]), &want);
    let data_url = format!("data:image/png;base64,{}", encoded[2]);
    let d = post_json(&url("/v1/embed/image"), &json!({"image": data_url}), &[]);
    assert_close(&vectors(&d.body["embeddings"]), &want[2..]);
}

#[test]
fn metrics_count_requests_and_batches_with_a_device_label() {
    post_json(&url("/v1/embed/text"), &json!({"text": "metrics"}), &[]);
    send("GET", &url("/no/such/route"), &[], b"");
    let r = send("GET", &url("/metrics"), &[], b"");
    assert_eq!(r.status, 200);
    let text = r.body.as_str().unwrap();
    for needle in [
        "switchyard_requests_total{route=\"/v1/embed/text\",status=\"200\"}",
        "switchyard_request_failures_total{route=\"unmatched\",status=\"404\",error_type=\"not_found\"}",
        "switchyard_queue_size{model=\"text\"}",
        "switchyard_batch_size_bucket{model=\"text\",le=\"1\"}",
        "switchyard_queue_duration_seconds_count{model=\"text\"}",
        "switchyard_inference_duration_seconds_sum{model=\"text\"}",
        "switchyard_device_info{device=\"cpu\",plugin=\"backend-cpu\",engine=\"onnx\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[test]
fn limits_and_bad_input_get_the_status_table() {
    let text = url("/v1/embed/text");
    let image = url("/v1/embed/image");
    // 413: body over 1 MB, more than 8 items, an image over 4 MP (a 2,100x2,100 PNG is a few kB).
    let big = post_expect_continue(&image, "image/png", &vec![0u8; 1_200_000]);
    assert_error(&big, 413, "body_too_large");
    assert_error(&post_json(&text, &json!({"texts": vec!["x"; 9]}), &[]), 413, "too_many_items");
    let mut bomb = Vec::new();
    image::RgbImage::new(2100, 2100).write_to(&mut std::io::Cursor::new(&mut bomb), image::ImageFormat::Png).unwrap();
    assert!(bomb.len() < 100_000);
    let r = send("POST", &image, &[("content-type", "image/png")], &bomb);
    assert_error(&r, 413, "image_too_large");
    assert!(r.body["error"].as_str().unwrap().contains("4000000"), "{:?}", r.body);
    // 415: wrong content types, an image format not supported.
    assert_error(&send("POST", &image, &[("content-type", "text/plain")], b"hello"), 415, "unsupported_media_type");
    assert_error(&send("POST", &text, &[("content-type", "text/plain")], b"hello"), 415, "unsupported_media_type");
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
    assert_error(&send("POST", &image, &[("content-type", "image/heic")], heic), 415, "unsupported_image_format");
    // 422: malformed JSON, wrong shape, empty and over-long text, bad base64, not an image.
    assert_error(&send("POST", &text, &[("content-type", "application/json")], b"{\"texts\": ["), 422, "invalid_json");
    assert_error(&post_json(&text, &json!({"txt": "typo"}), &[]), 422, "invalid_json");
    assert_error(&post_json(&text, &json!({}), &[]), 422, "validation");
    assert_error(&post_json(&text, &json!({"texts": ["ok", "  "]}), &[]), 422, "validation");
    let long = post_json(&text, &json!({"text": "word ".repeat(100)}), &[]);
    assert_error(&long, 422, "validation");
    assert!(long.body["error"].as_str().unwrap().contains("limit of 300"), "{:?}", long.body);
    assert_error(&post_json(&image, &json!({"images": ["not base64!"]}), &[]), 422, "validation");
    assert_error(
        &send("POST", &image, &[("content-type", "image/jpeg")], b"definitely not a jpeg"),
        422,
        "invalid_image",
    );
    // The OpenAI-compatible route answers in OpenAI's error shape (tests/tests/openai_clients.rs).
    let oa = url("/v1/embeddings");
    assert_openai_error(&post_json(&oa, &json!({"input": [[1, 2, 3]]}), &[]), 422, "validation", Some("input"));
    let int8 = post_json(&oa, &json!({"input": "x", "encoding_format": "int8"}), &[]);
    assert_openai_error(&int8, 422, "validation", Some("encoding_format"));
    let other = post_json(&oa, &json!({"input": "x", "model": "text-embedding-3-small"}), &[]);
    assert_openai_error(&other, 404, "model_not_found", Some("model"));
    // 400: a multipart body that is cut short.
    let (ct, body) = multipart(&[("a", b"xx")]);
    assert_error(&send("POST", &image, &[("content-type", &ct)], &body[..body.len() - 10]), 400, "bad_request");
    // 404 and 405 from the fallbacks.
    assert_error(&send("GET", &url("/v2/nothing"), &[], b""), 404, "not_found");
    assert_error(&send("GET", &text, &[], b""), 405, "method_not_allowed");
}

#[test]
fn api_key_queue_full_and_graceful_shutdown() {
    // No batching and a 4-item queue, so concurrent requests overflow it.
    let args = ["--no-batching", "--queue-capacity", "4"];
    let mut server = Server::start("auth", &args, &[("SWITCHYARD_API_KEY", "s3cret-key")]);
    let u = |p: &str| format!("{}{p}", server.url);
    assert!(!server.log_text().contains("s3cret-key"), "the key reached the log");
    assert!(server.log_text().contains(r#""api_key":"***""#), "{}", server.log_text());
    assert_eq!(send("GET", &u("/health"), &[], b"").status, 200);
    let body = json!({"texts": ["a", "b", "c", "d"]});
    assert_error(&post_json(&u("/v1/embed/text"), &body, &[]), 401, "unauthorized");
    assert_error(&post_json(&u("/v1/embed/text"), &body, &[("authorization", "Bearer wrong")]), 401, "unauthorized");
    assert_error(
        &send("GET", &u("/info"), &[("authorization", "Bearer s3cret-key-and-more")], b""),
        401,
        "unauthorized",
    );
    let auth = [("authorization", "Bearer s3cret-key")];
    assert_eq!(post_json(&u("/v1/embed/text"), &body, &auth).status, 200);

    let statuses: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12).map(|_| s.spawn(|| post_json(&u("/v1/embed/text"), &body, &auth))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).map(|r| (r.status, r.body)).collect()
    });
    assert!(statuses.iter().any(|(s, _)| *s == 429), "{statuses:?}");
    assert!(statuses.iter().any(|(s, _)| *s == 200), "{statuses:?}");
    for (status, body) in &statuses {
        assert!(*status == 200 || (*status == 429 && body["error_type"] == "overloaded"), "{status} {body}");
    }

    // SIGTERM while a request runs: it still gets its answer, then the process exits 0.
    let text_url = u("/v1/embed/text");
    std::thread::scope(|s| {
        let inflight = s.spawn(|| post_json(&text_url, &body, &auth));
        std::thread::sleep(Duration::from_millis(60));
        server.terminate();
        let r = inflight.join().unwrap();
        assert_eq!(r.status, 200, "{:?}", r.body);
    });
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}\n{}", server.log_text());
    assert!(server.log_text().contains("finishing requests in flight"));
}
