//! End-to-end tests of the Immich routes (`GET /ping`, `POST /predict`):
//! the real `switchyard serve` with the CPU plugin, pointed at a model cache
//! in Immich's layout made offline by tools/make_immich_models.py, sent
//! requests built as Immich's server builds them
//! (`server/src/repositories/machine-learning.repository.ts`: a FormData with
//! `entries` = `JSON.stringify(request)` and an `image` Blob, which undici
//! sends with `filename="blob"` and `application/octet-stream`, or a `text`
//! field), and compared with tools/reference/immich_reference.py, which runs
//! Immich's preprocessing with PIL, numpy, tokenizers, insightface and
//! onnxruntime on the same files.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{json, Value};
use switchyard_tests::http::multipart::{form, Part};
use switchyard_tests::http::{cosine, send, Reply, Server};
use switchyard_tests::{root, temp_dir, venv_python};

/// The Immich model cache, made (or found up to date) once per test binary.
fn cache() -> &'static PathBuf {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let out = std::env::var_os("SWITCHYARD_TEST_IMMICH_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target/immich-cache"));
        let status = std::process::Command::new(venv_python())
            .arg(root().join("tools/make_immich_models.py"))
            .arg("--out")
            .arg(&out)
            .status()
            .expect("run tools/make_immich_models.py");
        assert!(status.success(), "tools/make_immich_models.py failed; run it by hand to see why");
        out
    })
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let cache = cache().display().to_string();
        Server::start("immich", &["--no-faces", "--immich-models", &cache], &[])
    })
}

fn url(path: &str) -> String {
    format!("{}{path}", server().url)
}

const CLIP: &str = "ViT-B-32__openai";
const FACES: &str = "buffalo_l";
const MIN_SCORES: [&str; 2] = ["0.7", "0.35"];
const TEXTS: [&str; 4] = [
    "a photo of a cat",
    // Immich's tokenizer.json does not unescape HTML nor fix mojibake (open_clip's does).
    "Fish &amp; chips,   café!  ",
    "  two\tspaces\nand a newline ",
    // over 77 tokens: truncated to 75 and the end token
    "photograph of many words repeated again and again and again and again and again and again and again and again and again and again and again and again and again and again and again and again and again and again and again and again and again and again and again and again",
];

fn predict(parts: &[Part<'_>]) -> Reply {
    let (content_type, body) = form(parts);
    send("POST", &url("/predict"), &[("content-type", &content_type)], &body)
}

/// `encodeImage`'s request.
fn clip_visual() -> String {
    json!({"clip": {"visual": {"modelName": CLIP}}}).to_string()
}

/// `encodeText`'s request (`language` is dropped by JSON.stringify when undefined).
fn clip_textual(language: Option<&str>) -> String {
    match language {
        Some(l) => json!({"clip": {"textual": {"modelName": CLIP, "options": {"language": l}}}}).to_string(),
        None => json!({"clip": {"textual": {"modelName": CLIP, "options": {}}}}).to_string(),
    }
}

/// `detectFaces`'s request.
fn faces(min_score: &str) -> String {
    let score: f64 = min_score.parse().unwrap();
    json!({"facial-recognition": {"detection": {"modelName": FACES, "options": {"minScore": score}}, "recognition": {"modelName": FACES}}})
        .to_string()
}

/// The test images: insightface's group photo (many faces for the stand-in
/// detector), a portrait, an odd-sized crop (where Immich's crop rounding
/// differs from torchvision's) and a flat grey PNG with no faces.
fn images() -> &'static Vec<PathBuf> {
    static IMAGES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let data = switchyard_tests::site_packages().join("insightface/data/images");
        let t1 = data.join("t1.jpg");
        let dir = temp_dir("immich-images");
        let odd = dir.join("odd.png");
        image::open(&t1).expect("t1.jpg").crop_imm(101, 37, 683, 451).save(&odd).expect("save odd.png");
        let grey = dir.join("grey.png");
        image::RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128])).save(&grey).expect("save grey.png");
        vec![t1, data.join("Tom_Hanks_54745.png"), odd, grey]
    })
}

/// What Immich's service computes on the same files (tools/reference/immich_reference.py).
fn reference() -> &'static Value {
    static REFERENCE: OnceLock<Value> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let texts = temp_dir("immich-texts").join("texts.json");
        std::fs::write(&texts, serde_json::to_string(&TEXTS).unwrap()).unwrap();
        let out = std::process::Command::new(venv_python())
            .arg(root().join("tools/reference/immich_reference.py"))
            .args(["--cache"])
            .arg(cache())
            .args(["--clip", CLIP, "--faces", FACES, "--min-score", &MIN_SCORES.join(",")])
            .arg("--texts-json")
            .arg(&texts)
            .args(images())
            .output()
            .expect("run the Immich reference");
        assert!(out.status.success(), "immich_reference.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("the reference prints JSON")
    })
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number") as f32).collect()
}

/// An embedding string of an answer: the JSON text of an array of floats.
fn embedding(v: &Value) -> Vec<f32> {
    let text = v.as_str().unwrap_or_else(|| panic!("an embedding is a JSON-array string, got {v}"));
    let parsed: Vec<f32> = serde_json::from_str(text).expect("the string is a JSON array of numbers");
    assert!(parsed.iter().all(|x| x.is_finite()));
    parsed
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().expect("an object").keys().map(String::as_str).collect();
    k.sort();
    k
}

#[test]
fn ping_answers_pong_as_text() {
    let r = send("GET", &url("/ping"), &[], &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, Value::String("pong".into()));
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain"), "{:?}", r.headers);
}

#[test]
fn clip_image_embeddings_match_immichs_service() {
    let reference = reference()["images"].as_array().unwrap();
    for (path, want) in images().iter().zip(reference) {
        let bytes = std::fs::read(path).unwrap();
        let entries = clip_visual();
        let r = predict(&[Part::Field("entries", &entries), Part::File("image", "blob", &bytes)]);
        assert_eq!(r.status, 200, "{}: {:?}", path.display(), r.body);
        assert_eq!(keys(&r.body), ["clip", "imageHeight", "imageWidth"], "{:?}", r.body);
        assert_eq!(r.body["imageWidth"], want["imageWidth"], "{}", path.display());
        assert_eq!(r.body["imageHeight"], want["imageHeight"], "{}", path.display());
        let got = embedding(&r.body["clip"]);
        let want = floats(&want["clip"]);
        assert_eq!(got.len(), 512);
        let c = cosine(&got, &want);
        eprintln!("{}: CLIP image cosine to Immich's reference {c:.7}", path.display());
        assert!(c >= 0.9999, "{}: cosine {c}", path.display());
    }
}

#[test]
fn clip_text_embeddings_match_immichs_service() {
    let reference = reference()["texts"].as_array().unwrap();
    for (text, want) in TEXTS.iter().zip(reference) {
        for language in [None, Some("de")] {
            let entries = clip_textual(language);
            let r = predict(&[Part::Field("entries", &entries), Part::Field("text", text)]);
            assert_eq!(r.status, 200, "{text:?}: {:?}", r.body);
            assert_eq!(keys(&r.body), ["clip"], "a text answer has no image size: {:?}", r.body);
            let c = cosine(&embedding(&r.body["clip"]), &floats(&want["clip"]));
            eprintln!("{text:?} ({language:?}): CLIP text cosine to Immich's reference {c:.7}");
            assert!(c >= 0.9999, "{text:?}: cosine {c}");
        }
    }
    // The reference's tokens show what the cases exercise: no HTML unescape, and truncation to 77.
    assert_eq!(reference[0]["tokens"].as_array().unwrap().len(), 77);
    let long = reference[3]["tokens"].as_array().unwrap();
    assert_eq!((long[0].as_u64(), long[76].as_u64()), (Some(49406), Some(49407)), "{long:?}");
}

#[test]
fn faces_match_immichs_service_at_each_min_score() {
    let reference = reference()["images"].as_array().unwrap();
    let mut total = [0usize; 2];
    for (path, want) in images().iter().zip(reference) {
        let bytes = std::fs::read(path).unwrap();
        for (k, score) in MIN_SCORES.iter().enumerate() {
            let entries = faces(score);
            let r = predict(&[Part::Field("entries", &entries), Part::File("image", "blob", &bytes)]);
            assert_eq!(r.status, 200, "{}: {:?}", path.display(), r.body);
            assert_eq!(keys(&r.body), ["facial-recognition", "imageHeight", "imageWidth"]);
            assert_eq!(r.body["imageWidth"], want["imageWidth"]);
            assert_eq!(r.body["imageHeight"], want["imageHeight"]);
            let got = r.body["facial-recognition"].as_array().expect("a list of faces");
            let want = want["faces"][score].as_array().unwrap();
            assert_eq!(got.len(), want.len(), "{} at minScore {score}: face count", path.display());
            total[k] += got.len();
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                assert_eq!(keys(g), ["boundingBox", "embedding", "score"], "{g}");
                assert_eq!(keys(&g["boundingBox"]), ["x1", "x2", "y1", "y2"]);
                for side in ["x1", "y1", "x2", "y2"] {
                    let v = g["boundingBox"][side].as_f64().unwrap();
                    assert_eq!(v, v.round(), "boxes are rounded: {g}");
                    assert_eq!(g["boundingBox"][side], w["boundingBox"][side], "{} face {i}: {side}", path.display());
                }
                let s = g["score"].as_f64().unwrap();
                assert!(s >= score.parse::<f64>().unwrap() - 1e-6, "score {s} under minScore {score}");
                assert!(
                    (s - w["score"].as_f64().unwrap()).abs() < 1e-5,
                    "{} face {i}: score {s} vs {}",
                    path.display(),
                    w["score"]
                );
                let e = embedding(&g["embedding"]);
                let c = cosine(&e, &floats(&w["embedding"]));
                assert!(c >= 0.9999, "{} face {i}: embedding cosine {c}", path.display());
                // Immich stores the recognizer's raw output, not a unit vector.
                let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
                let want_norm = floats(&w["embedding"]).iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!((norm - want_norm).abs() <= 1e-3 * want_norm, "norm {norm} vs {want_norm}");
            }
        }
    }
    eprintln!("faces found at minScore {}: {} and {}: {}", MIN_SCORES[0], total[0], MIN_SCORES[1], total[1]);
    assert!(total[0] > 0, "the stand-in detector finds faces in the photos");
    assert!(total[1] > total[0], "a lower minScore finds more faces ({total:?})");
}

#[test]
fn an_image_wins_over_text_as_in_immichs_service() {
    let bytes = std::fs::read(&images()[1]).unwrap();
    let entries = clip_visual();
    let alone = predict(&[Part::Field("entries", &entries), Part::File("image", "blob", &bytes)]);
    let both =
        predict(&[Part::Field("entries", &entries), Part::Field("text", "a cat"), Part::File("image", "blob", &bytes)]);
    assert_eq!(both.status, 200, "{:?}", both.body);
    assert_eq!(both.body, alone.body);
    // A text task with an image is refused: Immich would feed the image to the tokenizer.
    let textual = clip_textual(None);
    let r =
        predict(&[Part::Field("entries", &textual), Part::Field("text", "a cat"), Part::File("image", "blob", &bytes)]);
    assert_eq!((r.status, r.body["error_type"].as_str()), (422, Some("validation")), "{:?}", r.body);
}

fn assert_error(r: &Reply, status: u16, error_type: &str, says: &[&str]) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert_eq!(r.body["error_type"], error_type, "{:?}", r.body);
    let message = r.body["error"].as_str().unwrap_or_default();
    for s in says {
        assert!(message.contains(s), "`{message}` does not say `{s}`");
    }
}

#[test]
fn bad_requests_get_immichs_statuses_and_say_what_to_fix() {
    let bytes = std::fs::read(&images()[3]).unwrap();
    let img = || Part::File("image", "blob", &bytes);
    // neither image nor text: 400, as Immich's service answers
    let entries = clip_visual();
    assert_error(&predict(&[Part::Field("entries", &entries)]), 400, "bad_request", &["`image`", "`text`"]);
    // no entries, entries that are not JSON, or lack a modelName: 422
    assert_error(&predict(&[img()]), 422, "validation", &["`entries`"]);
    assert_error(&predict(&[Part::Field("entries", "{clip"), img()]), 422, "validation", &["not valid JSON"]);
    let nameless = json!({"clip": {"visual": {"options": {}}}}).to_string();
    assert_error(&predict(&[Part::Field("entries", &nameless), img()]), 422, "validation", &["modelName"]);
    let listed = json!([{"clip": {"visual": {"modelName": CLIP}}}]).to_string();
    assert_error(&predict(&[Part::Field("entries", &listed), img()]), 422, "validation", &["JSON object"]);
    // a task switchyard does not serve: 422 naming what it serves
    let ocr = json!({"ocr": {"detection": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.5}}, "recognition": {"modelName": "PP-OCRv5_mobile"}}}).to_string();
    assert_error(
        &predict(&[Part::Field("entries", &ocr), img()]),
        422,
        "validation",
        &["`ocr`", "`clip`", "`facial-recognition`"],
    );
    // recognition without the detection it depends on: 400, as Immich
    let rec = json!({"facial-recognition": {"recognition": {"modelName": FACES}}}).to_string();
    assert_error(&predict(&[Part::Field("entries", &rec), img()]), 400, "bad_request", &["detection"]);
    // a model that is not in the cache: 404 naming the file looked for and the setting
    let unknown = json!({"clip": {"visual": {"modelName": "ViT-H-14__nowhere"}}}).to_string();
    let r = predict(&[Part::Field("entries", &unknown), img()]);
    let expected = cache().join("clip/ViT-H-14__nowhere/visual/model.onnx").display().to_string();
    assert_error(&r, 404, "model_not_found", &[&expected, "SWITCHYARD_IMMICH_MODELS"]);
    let unknown_faces = faces("0.7").replace(FACES, "antelopev2");
    assert_error(&predict(&[Part::Field("entries", &unknown_faces), img()]), 404, "model_not_found", &["antelopev2"]);
    // an image task with text only
    assert_error(
        &predict(&[Part::Field("entries", &entries), Part::Field("text", "x")]),
        422,
        "validation",
        &["`image`"],
    );
    // bytes that are not an image
    assert_error(
        &predict(&[Part::Field("entries", &entries), Part::File("image", "blob", b"not an image")]),
        422,
        "invalid_image",
        &[],
    );
    // after all that, the server still serves
    assert_eq!(predict(&[Part::Field("entries", &entries), img()]).status, 200);
}
