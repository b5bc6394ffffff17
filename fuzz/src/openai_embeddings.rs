//! The `openai_embeddings` fuzz target: the body of `POST /v1/embeddings`
//! (OpenAI's embeddings API) through axum's `Json` extractor and
//! `routes::openai::check_request`, the route's code before the model runs.
//! `request_parse` reaches this route too, among three; here every input is
//! for it, and most are requests the API contract decides.
//!
//! The first byte picks: `0` the rest is the body as it is (any bytes);
//! anything else builds a request with `arbitrary` ([`build`]), each field
//! absent, `null`, right, wrong or of the wrong JSON type (`input` a string,
//! strings, token ids, nested arrays, an object; `model` ours, `clip/` ours,
//! `clip`, another; `encoding_format` float, base64, another; `dimensions`
//! ours, another, negative; `user`; an unknown field; texts blank, short, at
//! and over the length limit, within and over the item limit), and states
//! what the API must answer from the docs (`docs/api.md`), not from the code.
//!
//! Invariants: nothing panics; a refusal is a 4xx the client caused; an
//! accepted request holds 1..=max_items texts within the limits; for a built
//! request, it is accepted exactly when the contract says, and then with the
//! texts of `input` in order and base64 exactly when asked for.

use arbitrary::{Result, Unstructured};
use axum::extract::FromRequest;
use axum::Json;
use serde_json::{json, Map, Value};
use switchyard::server::routes::openai::{check_request, Checked, EmbeddingsRequest};

use crate::request_parse::{block_on, check_refusal, check_texts, request, EMBED_DIM, LIMITS, MODEL};

/// A text for `input`, and whether the limits allow it.
fn text(u: &mut Unstructured<'_>) -> Result<(String, bool)> {
    let max = LIMITS.max_text_chars;
    Ok(match u.int_in_range(0..=5u8)? {
        0 => (String::new(), false),
        1 => (" \t\n\u{3000}".into(), false),
        2 => ("é".repeat(max), true),
        3 => ("a".repeat(max + 1), false),
        _ => {
            let s: String = u.arbitrary()?;
            let ok = !s.trim().is_empty() && s.chars().count() <= max;
            (s, ok)
        }
    })
}

/// `input`, and the texts it must give (`None`: it must be refused).
fn input(u: &mut Unstructured<'_>) -> Result<(Value, Option<Vec<String>>)> {
    Ok(match u.int_in_range(0..=6u8)? {
        0 => {
            let (t, ok) = text(u)?;
            (Value::String(t.clone()), ok.then(|| vec![t]))
        }
        1 | 2 => {
            let n = u.int_in_range(0..=LIMITS.max_items + 1)?;
            let mut texts = Vec::new();
            let mut ok = (1..=LIMITS.max_items).contains(&n);
            for _ in 0..n {
                let (t, fits) = text(u)?;
                ok &= fits;
                texts.push(t);
            }
            (json!(texts), ok.then_some(texts))
        }
        3 => (json!([49406, u.arbitrary::<u16>()?, 49407]), None),
        4 => (json!([[1, 2], ["a"]]), None),
        5 => (json!(["a photo", 7]), None),
        _ => (u.choose(&[json!({"text": "a"}), json!(3.5), json!(true), Value::Null])?.clone(), None),
    })
}

/// What a request must give: its texts and whether in base64, or `None`: a refusal.
type Expected = Option<(Vec<String>, bool)>;

/// A request body and what it must give.
fn build(u: &mut Unstructured<'_>) -> Result<(Value, Expected)> {
    let mut body = Map::new();
    if u.ratio(1, 8)? {
        return Ok((Value::Object(body), None)); // no input
    }
    let (value, texts) = input(u)?;
    body.insert("input".into(), value);
    let mut ok = texts.is_some();
    let base64 = field(u, &mut body, "encoding_format", &mut ok, |u| {
        Ok(match u.int_in_range(0..=3u8)? {
            0 => (json!("float"), Some(false)),
            1 => (json!("base64"), Some(true)),
            2 => (json!("int8"), None),
            _ => (json!(1), None),
        })
    })?;
    field(u, &mut body, "model", &mut ok, |u| {
        let ours = [MODEL.to_string(), format!("clip/{MODEL}"), "clip".into()];
        Ok(match u.int_in_range(0..=4u8)? {
            0..=2 => (json!(ours[usize::from(u.int_in_range(0..=2u8)?)]), Some(())),
            3 => (json!("text-embedding-3-small"), None),
            _ => (json!(["clip"]), None),
        })
    })?;
    field(u, &mut body, "dimensions", &mut ok, |u| {
        Ok(match u.int_in_range(0..=3u8)? {
            0 => (json!(EMBED_DIM), Some(())),
            1 => (json!(EMBED_DIM + 1 + usize::from(u.arbitrary::<u8>()?)), None),
            2 => (json!(-1), None),
            _ => (json!("512"), None),
        })
    })?;
    field(u, &mut body, "user", &mut ok, |u| {
        Ok(if u.arbitrary()? { (json!("user-1"), Some(())) } else { (json!(42), None) })
    })?;
    if u.ratio(1, 8)? {
        body.insert("unknown_field".into(), json!({"any": "thing"})); // OpenAI clients send extras
    }
    let expected = texts.filter(|_| ok).map(|t| (t, base64.flatten().unwrap_or(false)));
    Ok((Value::Object(body), expected))
}

/// Maybe sets `name` (absent or `null` are as good as the default); clears
/// `ok` when the value must be refused. Gives what the value means, if set.
fn field<T>(
    u: &mut Unstructured<'_>,
    body: &mut Map<String, Value>,
    name: &str,
    ok: &mut bool,
    pick: impl FnOnce(&mut Unstructured<'_>) -> Result<(Value, Option<T>)>,
) -> Result<Option<Option<T>>> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => None,
        1 => {
            body.insert(name.into(), Value::Null);
            None
        }
        _ => {
            let (value, meaning) = pick(u)?;
            body.insert(name.into(), value);
            *ok &= meaning.is_some();
            Some(meaning)
        }
    })
}

fn check(body: Vec<u8>) -> Option<Checked> {
    let result = block_on(async {
        let Json(req) = Json::<EmbeddingsRequest>::from_request(request(Some(b"application/json"), body), &())
            .await
            .map_err(|e| switchyard::server::error::Rejection::into_api_error(e, LIMITS.max_body_bytes))?;
        check_request(req, MODEL, EMBED_DIM, &LIMITS)
    });
    match result {
        Ok(c) => {
            check_texts(&c.texts);
            Some(c)
        }
        Err(e) => {
            check_refusal(&e);
            None
        }
    }
}

/// One fuzz input; panics on a violated invariant.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode == 0 {
        check(rest.to_vec());
        return;
    }
    let Ok((body, expected)) = build(&mut Unstructured::new(rest)) else { return };
    let bytes = serde_json::to_vec(&body).expect("JSON");
    match (check(bytes), expected) {
        (Some(got), Some((texts, base64))) => {
            assert_eq!(got.texts, texts, "the texts of {body}");
            assert_eq!(got.base64, base64, "encoding_format of {body}");
        }
        (None, None) => {}
        (got, expected) => panic!("{body}: accepted {got:?}, the contract says {expected:?}"),
    }
}
