//! End-to-end tests of `POST /v1/faces`: the real `switchyard serve` with the
//! CPU plugin on a free port, against the library (`FacePipeline` on the
//! same plugin, loaded in this process) on the same photos. Also the image
//! inputs (raw, multipart, base64), the error statuses, `/info`, the metrics,
//! and a server whose face models are missing (it serves CLIP and answers
//! 503 `faces_unavailable` on faces).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use serde_json::{json, Value};
use switchyard::faces::{Face, FaceOptions, FacePipeline};
use switchyard::plugins::LoadedPlugin;
use switchyard_core::abi::BackendConfig;
use switchyard_core::DeviceKind;
use switchyard_tests::http::{assert_error, cosine, models, multipart, post_json, send, Server};
use switchyard_tests::{plugin, root};

/// At most 3 images per request, 2 waiting in the face queue (so a 3-image request is 429).
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start("faces", &["--max-items", "3", "--face-queue-capacity", "2"], &[]))
}

fn url(path: &str) -> String {
    format!("{}{path}", server().url)
}

/// insightface's group photo (many faces with the stand-in detector too).
fn t1() -> Vec<u8> {
    let lib = root().join(".venv/lib");
    let found = std::fs::read_dir(&lib)
        .expect("the venv's lib folder; run ci/setup.sh")
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/insightface/data/images/t1.jpg"))
        .find(|p| p.is_file());
    std::fs::read(found.expect("insightface's t1.jpg in the venv; run ci/setup.sh")).expect("read t1.jpg")
}

/// A flat grey PNG: no faces.
fn no_face() -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encode a PNG");
    png
}

/// The library on the same plugin and models, with the server's default face settings.
fn library() -> &'static FacePipeline {
    static PIPELINE: OnceLock<FacePipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let loaded = LoadedPlugin::load(&plugin(DeviceKind::Cpu)).expect("cpu plugin loads");
        let backend = Arc::new(loaded.open(&BackendConfig::default()).expect("cpu plugin opens"));
        let dir: PathBuf = models().join("faces/buffalo_l");
        FacePipeline::load(backend, &dir, FaceOptions::default()).expect("face models load")
    })
}

fn library_faces(bytes: &[u8]) -> Vec<Face> {
    let p = library();
    let img = p.prepare_image(bytes).expect("decodes");
    p.detect_and_embed(&[&img]).expect("runs").remove(0)
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number") as f32).collect()
}

/// The server's faces of one image equal the library's.
fn assert_same_faces(got: &Value, want: &[Face]) {
    let got = got.as_array().expect("faces");
    assert_eq!(got.len(), want.len(), "face count");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        for (a, b) in floats(&g["bbox"]).iter().zip(&w.bbox) {
            assert!((a - b).abs() <= 1e-3, "face {k}: bbox {:?} vs {:?}", g["bbox"], w.bbox);
        }
        assert!((g["score"].as_f64().unwrap() as f32 - w.score).abs() <= 1e-4, "face {k}: score");
        let landmarks: Vec<f32> = g["landmarks"].as_array().expect("landmarks").iter().flat_map(floats).collect();
        assert_eq!(landmarks.len(), 10);
        for (a, b) in landmarks.iter().zip(w.landmarks.iter().flatten()) {
            assert!((a - b).abs() <= 1e-3, "face {k}: landmarks {:?} vs {:?}", g["landmarks"], w.landmarks);
        }
        let e = floats(&g["embedding"]);
        assert_eq!(e.len(), 512);
        let c = cosine(&e, &w.embedding);
        assert!(c >= 0.99999, "face {k}: cosine {c}");
    }
}

#[test]
fn a_photo_gives_the_faces_of_the_library() {
    let photo = t1();
    let want = library_faces(&photo);
    assert!(want.len() > 1, "the stand-in detector should find several faces in t1.jpg");
    let r = send("POST", &url("/v1/faces"), &[("content-type", "image/jpeg")], &photo);
    assert_eq!(r.status, 200, "{:?}", r.body);
    for h in ["x-queue-ms", "x-inference-ms", "x-preprocess-ms", "x-batch-size", "x-request-id"] {
        assert!(r.header(h).is_some(), "missing {h}: {:?}", r.headers);
    }
    assert_eq!(r.body["model"], "buffalo_l");
    assert_eq!(r.body["providers"]["detection"], "CPUExecutionProvider");
    assert_eq!(r.body["providers"]["recognition"], "CPUExecutionProvider");
    assert_eq!(r.body["random_weights"], true);
    let images = r.body["images"].as_array().expect("images");
    assert_eq!(images.len(), 1);
    let img = image::load_from_memory(&photo).unwrap();
    assert_eq!(images[0]["width"], img.width());
    assert_eq!(images[0]["height"], img.height());
    assert_same_faces(&images[0]["faces"], &want);
}

#[test]
fn no_face_multipart_and_base64_keep_the_order() {
    let (photo, blank) = (t1(), no_face());
    let want = library_faces(&photo);
    let r = send("POST", &url("/v1/faces"), &[("content-type", "image/png")], &blank);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["images"][0]["faces"], json!([]));
    assert_eq!((r.body["images"][0]["width"].clone(), r.body["images"][0]["height"].clone()), (json!(320), json!(240)));

    let (ct, body) = multipart(&[("group.jpg", &photo), ("blank.png", &blank)]);
    let form = send("POST", &url("/v1/faces"), &[("content-type", &ct)], &body);
    assert_eq!(form.status, 200, "{:?}", form.body);
    let images = form.body["images"].as_array().expect("images");
    assert_eq!(images.len(), 2);
    assert_same_faces(&images[0]["faces"], &want);
    assert_eq!(images[1]["faces"], json!([]));

    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let j = post_json(&url("/v1/faces"), &json!({"images": [b64(&blank), b64(&photo)]}), &[]);
    assert_eq!(j.status, 200, "{:?}", j.body);
    assert_eq!(j.body["images"][0]["faces"], json!([]));
    assert_same_faces(&j.body["images"][1]["faces"], &want);
}

#[test]
fn bad_input_gets_the_status_table() {
    let faces = url("/v1/faces");
    let photo = t1();
    let r = send("POST", &faces, &[("content-type", "image/jpeg")], &photo[..photo.len() / 3]);
    assert_error(&r, 422, "invalid_image");
    assert!(r.body["error"].as_str().unwrap().starts_with("image 0"), "{:?}", r.body);
    let (ct, body) = multipart(&[("ok.png", &no_face()), ("bad.jpg", b"not an image")]);
    let r = send("POST", &faces, &[("content-type", &ct)], &body);
    assert_error(&r, 422, "invalid_image");
    assert!(r.body["error"].as_str().unwrap().starts_with("image 1"), "{:?}", r.body);
    assert_error(&send("POST", &faces, &[("content-type", "text/plain")], b"hello"), 415, "unsupported_media_type");
    assert_error(&post_json(&faces, &json!({"picture": "x"}), &[]), 422, "invalid_json");
    let blank = no_face();
    let (ct, body) = multipart(&[("a.png", &blank), ("b.png", &blank), ("c.png", &blank), ("d.png", &blank)]);
    assert_error(&send("POST", &faces, &[("content-type", &ct)], &body), 413, "too_many_items");
    // Three images do not fit a face queue of two: refused whole.
    let (ct, body) = multipart(&[("a.png", &blank), ("b.png", &blank), ("c.png", &blank)]);
    assert_error(&send("POST", &faces, &[("content-type", &ct)], &body), 429, "overloaded");
    assert_error(&send("GET", &faces, &[], b""), 405, "method_not_allowed");
}

#[test]
fn info_and_metrics_list_the_face_models() {
    let r = send("POST", &url("/v1/faces"), &[("content-type", "image/png")], &no_face());
    assert_eq!(r.status, 200, "{:?}", r.body);
    let info = send("GET", &url("/info"), &[], b"").body;
    let entry = info["models"].as_array().unwrap().iter().find(|m| m["kind"] == "faces").expect("a faces entry");
    assert_eq!(entry["name"], "buffalo_l");
    assert_eq!(entry["status"], "loaded");
    assert_eq!(entry["detector"]["provider"], "CPUExecutionProvider");
    assert_eq!(entry["recognizer"]["provider"], "CPUExecutionProvider");
    assert_eq!(entry["random_weights"], true);
    assert_eq!(entry["options"]["det_size"], json!([640, 640]));
    let metrics = send("GET", &url("/metrics"), &[], b"").body;
    let text = metrics.as_str().unwrap();
    for needle in [
        "switchyard_requests_total{route=\"/v1/faces\",status=\"200\"}",
        "switchyard_queue_size{model=\"faces\"}",
        "switchyard_batch_size_count{model=\"faces\"}",
        "switchyard_inference_duration_seconds_count{model=\"faces\"}",
        "switchyard_preprocess_duration_seconds_count{model=\"faces\"}",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[test]
fn missing_face_models_leave_clip_up_and_faces_503() {
    let s = Server::start("faces-missing", &["--face-model-name", "not-there"], &[]);
    let text = post_json(&format!("{}/v1/embed/text", s.url), &json!({"text": "still serving"}), &[]);
    assert_eq!(text.status, 200, "{:?}", text.body);
    let r = send("POST", &format!("{}/v1/faces", s.url), &[("content-type", "image/png")], &no_face());
    assert_error(&r, 503, "faces_unavailable");
    assert!(r.body["error"].as_str().unwrap().contains("make_face_models.py"), "{:?}", r.body);
    assert!(s.log_text().contains("face models missing"), "{}", s.log_text());
    let info = send("GET", &format!("{}/info", s.url), &[], b"").body;
    let entry = info["models"].as_array().unwrap().iter().find(|m| m["kind"] == "faces").expect("a faces entry");
    assert_eq!(entry["status"], "missing");
    assert_eq!(entry["name"], "not-there");
}
