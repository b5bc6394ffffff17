//! The OpenAI-compatible routes through the client people already run: the
//! openai Python SDK (pinned in ci/requirements.txt) against a real
//! `switchyard serve`. Embeddings (the SDK asks for base64 and decodes it),
//! `models.list()` / `models.retrieve()`, and errors whose message the SDK
//! shows (it reads OpenAI's `{"error": {"message", "type", "param", "code"}}`).

use std::process::Command;

use serde_json::{json, Value};
use switchyard_tests::http::{post_json, send, Server};
use switchyard_tests::venv_python;

const KEY: &str = "sdk-test-key";

/// Runs the SDK against `url`; prints one JSON object of what it saw.
const CLIENT: &str = r#"
import json, sys
import openai

url, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)

def failure(call):
    try:
        call()
    except openai.APIStatusError as e:
        return {"status": e.status_code, "text": str(e), "code": e.code, "param": e.param, "type": e.type}
    return None

seen = {}
r = client.embeddings.create(model="ViT-B-32", input=["a dog", "a photo of a cat"])
seen["dims"] = [len(d.embedding) for d in r.data]
seen["first"] = r.data[0].embedding[:8]
seen["model"] = r.model
seen["usage"] = r.usage.prompt_tokens
seen["listed"] = [m.id for m in client.models.list()]
seen["retrieved"] = client.models.retrieve("ViT-B-32").id
seen["empty"] = failure(lambda: client.embeddings.create(model="ViT-B-32", input=""))
seen["unknown_model"] = failure(lambda: client.embeddings.create(model="text-embedding-3-small", input="x"))
seen["retrieve_unknown"] = failure(lambda: client.models.retrieve("gpt-4o"))
wrong = openai.OpenAI(base_url=url + "/v1", api_key="not-the-key", max_retries=0)
seen["wrong_key"] = failure(lambda: wrong.embeddings.create(model="ViT-B-32", input="x"))
print(json.dumps(seen))
"#;

fn run_sdk(url: &str) -> Value {
    let out = Command::new(venv_python()).arg("-c").arg(CLIENT).arg(url).arg(KEY).output().expect("python runs");
    assert!(out.status.success(), "the SDK script failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn server() -> Server {
    Server::start("openai-sdk", &["--no-faces"], &[("SWITCHYARD_API_KEY", KEY)])
}

#[test]
fn the_openai_sdk_embeds_lists_the_model_and_shows_every_error_message() {
    let server = server();
    let seen = run_sdk(&server.url);
    assert_eq!(seen["dims"], json!([512, 512]), "{seen}");
    assert_eq!(seen["model"], "ViT-B-32");
    assert!(seen["usage"].as_u64().is_some_and(|n| n >= 6), "{seen}");
    assert_eq!(seen["listed"], json!(["ViT-B-32"]), "models.list() names the served model");
    assert_eq!(seen["retrieved"], "ViT-B-32");

    // The SDK decoded base64 to the same floats the float encoding gives.
    let auth = [("authorization", "Bearer sdk-test-key")];
    let float = post_json(&format!("{}/v1/embeddings", server.url), &json!({"input": "a dog"}), &auth);
    let direct: Vec<f64> =
        float.body["data"][0]["embedding"].as_array().unwrap()[..8].iter().map(|v| v.as_f64().unwrap()).collect();
    let via_sdk: Vec<f64> = seen["first"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (a, b) in direct.iter().zip(&via_sdk) {
        assert!((a - b).abs() < 1e-6, "{direct:?} vs {via_sdk:?}");
    }

    let expect = |name: &str, status: u64, code: &str, param: Option<&str>, says: &str| {
        let e = &seen[name];
        assert_eq!(e["status"], status, "{name}: {e}");
        assert_eq!(e["code"], code, "{name}: {e}");
        assert_eq!(e["param"].as_str(), param, "{name}: {e}");
        let text = e["text"].as_str().unwrap();
        assert!(text.contains(says), "{name}: the SDK's error text `{text}` lacks the server's message `{says}`");
    };
    expect("empty", 422, "validation", Some("input"), "text 0 is empty; send some words");
    expect("unknown_model", 404, "model_not_found", Some("model"), "`text-embedding-3-small` is not served here");
    expect("retrieve_unknown", 404, "model_not_found", Some("model"), "`gpt-4o` is not served here");
    expect("wrong_key", 401, "unauthorized", None, "send `Authorization: Bearer <key>`");
    assert_eq!(seen["wrong_key"]["type"], "authentication_error");
}

#[test]
fn only_the_openai_routes_change_shape() {
    let server = server();
    let auth = [("authorization", "Bearer sdk-test-key")];
    let own = post_json(&format!("{}/v1/embed/text", server.url), &json!({"texts": [""]}), &auth);
    assert_eq!(own.status, 422);
    assert_eq!(own.body["error_type"], "validation", "{:?}", own.body);
    assert!(own.body["error"].is_string(), "switchyard's own routes keep their shape: {:?}", own.body);
    // A JSON body the OpenAI route cannot parse, and a bad key on /v1/models: OpenAI's shape.
    let broken = send(
        "POST",
        &format!("{}/v1/embeddings", server.url),
        &[("content-type", "application/json"), auth[0]],
        b"{\"input\": ",
    );
    assert_eq!(broken.status, 422, "{:?}", broken.body);
    assert_eq!(broken.body["error"]["code"], "invalid_json", "{:?}", broken.body);
    assert_eq!(broken.body["error"]["type"], "invalid_request_error", "{:?}", broken.body);
    let models = send("GET", &format!("{}/v1/models", server.url), &[], b"");
    assert_eq!(models.status, 401);
    assert_eq!(models.body["error"]["code"], "unauthorized", "{:?}", models.body);
    assert_eq!(models.header("www-authenticate"), Some("Bearer"));
}
