//! The `immich_entries` fuzz target: Immich's `POST /predict` before a model
//! runs — the multipart form (`entries`, `image`, `text`), `Plan::parse` of
//! the `entries` JSON, `Plan::check_input`, the text limit
//! (`routes::immich::read_request`, what the handler calls) — and
//! `embedding_string`, the answer's JSON-array text.
//!
//! The first byte picks: `0` the rest is the `entries` text as it is (lossy
//! UTF-8 for the parser; the bytes unchanged in a form with an `image`); `1`
//! the rest is a whole `multipart/form-data` body (boundary [`BOUNDARY`]);
//! anything else builds a request with `arbitrary` ([`build`]): tasks `clip`,
//! `facial-recognition`, `ocr` or another, each of the wrong JSON type or an
//! object of model types `visual`, `textual`, `detection`, `recognition` or
//! another, each of the wrong type or with `modelName` a string, absent or of
//! the wrong type, `options` absent, an object or of the wrong type,
//! `language` a string, `null` or another type, `minScore` a number, beyond
//! float32, `null`, a string or a boolean, and extra keys; then a form with
//! or without `entries`, with an `image`, a `text` (within or over the
//! limit), both or neither, and a field Immich does not send. What must
//! happen is stated from the contract (docs/immich.md and
//! `switchyard::immich::protocol`'s docs), not from the code.
//!
//! Invariants: nothing panics; a refusal is a 4xx a client can cause, and a
//! malformed `entries` is 422 except `recognition` without `detection` (400);
//! the route refuses `entries` exactly as `Plan::parse` does; an accepted plan
//! asks for something, never for both CLIP towers, has a finite `min_score`
//! and the names as sent; `check_input` accepts an image exactly when there
//! is no text task and a text exactly when there is no image task; for a
//! built request, it is accepted exactly when the contract says, with the
//! plan and the input sent, and refused with one of the errors its problems
//! call for; `embedding_string` of any finite f32s reads back bit for bit.

use arbitrary::{Result, Unstructured};
use serde_json::{json, Map, Value};
use switchyard::immich::protocol::{
    embedding_string, EntriesError, FacesEntry, Input, Plan, TextualEntry, DEFAULT_MIN_SCORE,
};
use switchyard::server::error::ApiError;
use switchyard::server::routes::immich::{read_request, Predict, PredictInput};

use crate::request_parse::{block_on, check_refusal, request, LIMITS};
use crate::{multipart_form, Part};

/// The form boundary of the built requests and of mode 1's bodies.
pub const BOUNDARY: &str = "immichFuzzBoundary7f3a";

/// What the form's UTF-8 decoding drops from the start of a text field.
const BOM: char = '\u{feff}';

const CLIP: &str = "clip";
const FACES: &str = "facial-recognition";

/// Something wrong with a built request: the errors it may be refused with.
#[derive(Debug, Clone, PartialEq)]
enum Problem {
    NotObject(String),
    UnknownTask(String),
    UnknownType(String, String),
    MissingName(String, String),
    BadOption(String, String, &'static str),
    RecognitionWithoutDetection,
    DetectionAlone,
    BothTowers,
    /// Only when nothing else is wrong: `entries` asks for nothing.
    Empty,
}

impl Problem {
    fn matches(&self, e: &EntriesError) -> bool {
        use EntriesError as E;
        match (self, e) {
            (Problem::NotObject(p), E::NotObject { path, .. }) => p == path,
            (Problem::UnknownTask(t), E::UnknownTask { task }) => t == task,
            (Problem::UnknownType(t, k), E::UnknownType { task, kind }) => t == task && k == kind,
            (Problem::MissingName(t, k), E::MissingName { task, kind }) => t == task && k == kind,
            (Problem::BadOption(t, k, o), E::BadOption { task, kind, option, .. }) => {
                t == task && k == kind && o == option
            }
            (Problem::RecognitionWithoutDetection, E::RecognitionWithoutDetection)
            | (Problem::DetectionAlone, E::DetectionAlone)
            | (Problem::BothTowers, E::BothTowers)
            | (Problem::Empty, E::Empty) => true,
            _ => false,
        }
    }
}

/// A JSON value of another type than an object.
fn not_object(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(u.choose(&[Value::Null, json!(true), json!(7), json!("clip"), json!([]), json!([{"modelName": "m"}])])?.clone())
}

/// A model name as sent (any string: names are cleaned later, when a model is looked up).
fn name(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => "ViT-B-32__openai".into(),
        1 => "buffalo_l".into(),
        2 => "immich-app/XLM-Roberta-Large-Vit-B-16Plus".into(),
        3 => String::new(),
        _ => u.arbitrary()?,
    })
}

/// An entry's `modelName` and `options`.
type NameAndOptions = (String, Map<String, Value>);

/// One model type's `{"modelName": ..., "options": {...}}`, with the problems it
/// has, and its name and options if it has none of its own.
fn entry(
    u: &mut Unstructured<'_>,
    task: &str,
    kind: &str,
    problems: &mut Vec<Problem>,
) -> Result<(Value, Option<NameAndOptions>)> {
    let path = format!("entries.{task}.{kind}");
    if u.ratio(1, 12)? {
        problems.push(Problem::NotObject(path));
        return Ok((not_object(u)?, None));
    }
    let mut fields = Map::new();
    let mut ok = true;
    let mut model = String::new();
    match u.int_in_range(0..=9u8)? {
        0 => ok = false, // no modelName
        1 | 2 => {
            let wrong = [Value::Null, json!(3), json!(true), json!(["ViT-B-32__openai"]), json!({"name": "m"})];
            fields.insert("modelName".into(), u.choose(&wrong)?.clone());
            ok = false;
        }
        _ => {
            model = name(u)?;
            fields.insert("modelName".into(), json!(model));
        }
    }
    if !ok {
        problems.push(Problem::MissingName(task.into(), kind.into()));
    }
    let mut options = Map::new();
    match u.int_in_range(0..=5u8)? {
        0 | 1 => {}
        2 => {
            fields.insert("options".into(), not_object(u)?);
            problems.push(Problem::NotObject(format!("{path}.options")));
            ok = false;
        }
        _ => {
            if u.arbitrary()? {
                options.insert(
                    "language".into(),
                    u.choose(&[json!("en"), json!("de"), Value::Null, json!(1), json!(["en"])])?.clone(),
                );
            }
            if u.arbitrary()? {
                // Any f32 (NaN and infinities are written as null), numbers beyond
                // float32 (an infinite threshold), a string, a boolean. Arbitrary
                // f64s are left out: serde_json's default float parsing may miss
                // by an ulp, which an exact f32 survives and an f64 may not.
                let score = match u.int_in_range(0..=6u8)? {
                    0 => json!(0.7),
                    1 | 2 => json!(u.arbitrary::<f32>()?),
                    3 => json!(*u.choose(&[1e300, 3.5e38, -1e39])?),
                    4 => u.choose(&[json!(-3.4e38), json!(0), json!(1), json!(5), json!(-1)])?.clone(),
                    5 => json!("0.5"),
                    _ => json!(false),
                };
                options.insert("minScore".into(), score);
            }
            if u.ratio(1, 4)? {
                options.insert("unknownOption".into(), json!({"any": [1, 2]}));
            }
            fields.insert("options".into(), Value::Object(options.clone()));
        }
    }
    if u.ratio(1, 6)? {
        fields.insert("extra".into(), json!("Immich's server may add keys"));
    }
    Ok((Value::Object(fields), ok.then_some((model, options))))
}

/// The CLIP task's model types; sets the plan's tower.
fn clip(u: &mut Unstructured<'_>, plan: &mut Plan, problems: &mut Vec<Problem>) -> Result<Value> {
    let mut types = Map::new();
    for kind in pick_kinds(u)? {
        let (value, parsed) = entry(u, CLIP, &kind, problems)?;
        types.insert(kind.clone(), value);
        match kind.as_str() {
            "visual" => plan.visual = parsed.map(|(n, _)| n),
            "textual" => {
                if let Some((name, options)) = parsed {
                    let language = match options.get("language") {
                        None | Some(Value::Null) => Some(None),
                        Some(Value::String(s)) => Some(Some(s.clone())),
                        Some(_) => None,
                    };
                    match language {
                        Some(language) => plan.textual = Some(TextualEntry { name, language }),
                        None => problems.push(Problem::BadOption(CLIP.into(), kind.clone(), "language")),
                    }
                }
            }
            _ => problems.push(Problem::UnknownType(CLIP.into(), kind.clone())),
        }
    }
    if types.contains_key("visual") && types.contains_key("textual") {
        problems.push(Problem::BothTowers);
    }
    Ok(Value::Object(types))
}

/// The face task's model types; sets the plan's faces when both are there.
fn faces(u: &mut Unstructured<'_>, plan: &mut Plan, problems: &mut Vec<Problem>) -> Result<Value> {
    let mut types = Map::new();
    let (mut detection, mut recognition) = (None, None);
    for kind in pick_kinds(u)? {
        let (value, parsed) = entry(u, FACES, &kind, problems)?;
        types.insert(kind.clone(), value);
        match kind.as_str() {
            "detection" => {
                if let Some((name, options)) = parsed {
                    // A number whose float32 is finite; absent: Immich's default.
                    let score = match options.get("minScore") {
                        None => Some(DEFAULT_MIN_SCORE),
                        Some(v) => v.as_f64().map(|x| x as f32).filter(|x| x.is_finite()),
                    };
                    match score {
                        Some(min_score) => detection = Some((name, min_score)),
                        None => problems.push(Problem::BadOption(FACES.into(), kind.clone(), "minScore")),
                    }
                }
            }
            "recognition" => recognition = parsed.map(|(n, _)| n),
            _ => problems.push(Problem::UnknownType(FACES.into(), kind.clone())),
        }
    }
    match (types.contains_key("detection"), types.contains_key("recognition")) {
        (false, true) => problems.push(Problem::RecognitionWithoutDetection),
        (true, false) => problems.push(Problem::DetectionAlone),
        _ => {}
    }
    if let (Some((detection, min_score)), Some(recognition)) = (detection, recognition) {
        plan.faces = Some(FacesEntry { detection, recognition, min_score });
    }
    Ok(Value::Object(types))
}

/// Up to three distinct model type names.
fn pick_kinds(u: &mut Unstructured<'_>) -> Result<Vec<String>> {
    let mut kinds: Vec<String> = Vec::new();
    for _ in 0..u.int_in_range(0..=3u8)? {
        let kind = match u.int_in_range(0..=5u8)? {
            0 => "visual".into(),
            1 => "textual".into(),
            2 => "detection".into(),
            3 => "recognition".into(),
            4 => "pipeline".into(),
            _ => u.arbitrary()?,
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// An `entries` value, and the plan it asks for or the problems it has.
fn build(u: &mut Unstructured<'_>) -> Result<(Value, std::result::Result<Plan, Vec<Problem>>)> {
    let mut problems = Vec::new();
    let mut plan = Plan::default();
    if u.ratio(1, 16)? {
        return Ok((not_object(u)?, Err(vec![Problem::NotObject("entries".into())])));
    }
    let mut tasks = Map::new();
    for _ in 0..u.int_in_range(0..=3u8)? {
        let task: String = match u.int_in_range(0..=5u8)? {
            0 | 1 => CLIP.into(),
            2 | 3 => FACES.into(),
            4 => "ocr".into(),
            _ => u.arbitrary()?,
        };
        if tasks.contains_key(&task) {
            continue;
        }
        let known = task == CLIP || task == FACES;
        if !known {
            problems.push(Problem::UnknownTask(task.clone()));
        }
        let value = if u.ratio(1, 12)? {
            problems.push(Problem::NotObject(format!("entries.{task}")));
            not_object(u)?
        } else if task == CLIP {
            clip(u, &mut plan, &mut problems)?
        } else if task == FACES {
            faces(u, &mut plan, &mut problems)?
        } else {
            let mut types = Map::new();
            types.insert("detection".into(), json!({"modelName": "PP-OCRv5_mobile"}));
            Value::Object(types)
        };
        tasks.insert(task, value);
    }
    if problems.is_empty() && plan == Plan::default() {
        problems.push(Problem::Empty);
    }
    let expected = if problems.is_empty() { Ok(plan) } else { Err(problems) };
    Ok((Value::Object(tasks), expected))
}

/// A `multipart/form-data` body of `parts` with [`BOUNDARY`].
fn form(parts: &[Part<'_>]) -> Vec<u8> {
    multipart_form(BOUNDARY, parts)
}

/// The route's reading and checks of a form body.
fn route(body: Vec<u8>) -> std::result::Result<Predict, ApiError> {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let result = block_on(read_request(request(Some(content_type.as_bytes()), body), &LIMITS));
    match &result {
        Ok(p) => check_accepted(p),
        Err(e) => check_refusal(e),
    }
    result
}

/// What holds for every accepted plan.
fn check_plan(plan: &Plan) {
    assert!(plan.visual.is_some() || plan.textual.is_some() || plan.faces.is_some(), "an empty plan: {plan:?}");
    assert!(!(plan.visual.is_some() && plan.textual.is_some()), "both CLIP towers: {plan:?}");
    if let Some(f) = &plan.faces {
        assert!(f.min_score.is_finite(), "min_score {}", f.min_score);
    }
    let image_ok = plan.textual.is_none();
    let text_ok = plan.visual.is_none() && plan.faces.is_none();
    for (input, ok, needs) in [(Input::Image, image_ok, "text"), (Input::Text, text_ok, "image")] {
        match plan.check_input(input) {
            Ok(()) => assert!(ok, "{input:?} accepted for {plan:?}"),
            Err(EntriesError::WrongInput { needs: n, .. }) => {
                assert!(!ok && n == needs, "{input:?} refused for {plan:?}, needing `{n}`")
            }
            Err(e) => panic!("check_input({input:?}) gave {e:?}"),
        }
    }
}

/// What holds for every request the route accepts.
fn check_accepted(p: &Predict) {
    check_plan(&p.plan);
    match &p.input {
        PredictInput::Image(_) => assert!(p.plan.textual.is_none(), "an image for a text task"),
        PredictInput::Text(t) => {
            assert!(p.plan.textual.is_some(), "a text with no text task: {:?}", p.plan);
            assert!(t.chars().count() <= LIMITS.max_text_chars, "a text over the limit");
        }
    }
}

/// How the route must refuse a malformed `entries`: as the parser, 400 only
/// for `recognition` without `detection`, else 422 on the `entries` parameter.
fn check_entries_refusal(got: &ApiError, parsed: &EntriesError) {
    let bad_request = matches!(parsed, EntriesError::RecognitionWithoutDetection);
    assert_eq!(parsed.is_bad_request(), bad_request, "the status class of {parsed:?}");
    let status = got.status().as_u16();
    match got {
        ApiError::BadRequest(m) if bad_request => assert_eq!(*m, parsed.to_string()),
        ApiError::Param { param: "entries", message } if !bad_request => assert_eq!(*message, parsed.to_string()),
        _ => panic!("entries refused with HTTP {status} {got:?}; the parser said {parsed:?}"),
    }
    assert_eq!(status, if bad_request { 400 } else { 422 });
}

/// The names and `minScore` of an accepted plan are those of the JSON sent.
fn check_names(plan: &Plan, sent: &Value) {
    let name = |task: &str, kind: &str| sent[task][kind]["modelName"].as_str().map(str::to_string);
    assert_eq!(plan.visual, name(CLIP, "visual"), "visual name");
    assert_eq!(plan.textual.as_ref().map(|t| t.name.clone()), name(CLIP, "textual"), "textual name");
    if let Some(t) = &plan.textual {
        assert_eq!(t.language.as_deref(), sent[CLIP]["textual"]["options"]["language"].as_str(), "language");
    }
    if let Some(f) = &plan.faces {
        assert_eq!(Some(f.detection.clone()), name(FACES, "detection"), "detection name");
        assert_eq!(Some(f.recognition.clone()), name(FACES, "recognition"), "recognition name");
        let score = &sent[FACES]["detection"]["options"]["minScore"];
        let want = if score.is_null() { DEFAULT_MIN_SCORE } else { score.as_f64().expect("a number") as f32 };
        assert_eq!(f.min_score.to_bits(), want.to_bits(), "minScore");
    }
}

/// `embedding_string` of the finite f32s in `bytes` reads back bit for bit.
fn check_embedding(bytes: &[u8]) {
    let values: Vec<f32> =
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).filter(|x| x.is_finite()).collect();
    let text = embedding_string(&values);
    let back: Vec<f32> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&values), "{text} does not read back");
    assert!(text.starts_with('[') && text.ends_with(']') && !text.contains("null"), "{text}");
}

/// Mode 0: `entries` as sent.
fn raw_entries(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let parsed = Plan::parse(&text);
    let json = serde_json::from_str::<Value>(&text);
    match &parsed {
        Ok(plan) => {
            check_plan(plan);
            check_names(plan, json.as_ref().expect("an accepted entries is JSON"));
        }
        Err(e) => {
            let not_json = matches!(e, EntriesError::NotJson { .. });
            assert_eq!(not_json, json.is_err(), "{e:?} for {text:?}");
            assert!(!e.to_string().is_empty());
        }
    }
    // The route, with an image: what the parser and check_input say.
    let framing = bytes.windows(BOUNDARY.len()).any(|w| w == BOUNDARY.as_bytes());
    let got = route(form(&[("entries", None, bytes), ("image", Some("blob"), b"\xff\xd8\xff")]));
    if framing || std::str::from_utf8(bytes).is_err() {
        return; // the form's framing or decoding may differ from the text parsed above
    }
    // The form's text fields are decoded as WHATWG UTF-8 (multer, encoding_rs), which drops a leading BOM.
    let parsed = match text.strip_prefix(BOM) {
        Some(rest) => Plan::parse(rest),
        None => parsed,
    };
    match (got, parsed) {
        (Ok(p), Ok(plan)) => {
            assert_eq!(p.plan, plan, "the route's plan");
            assert!(matches!(p.input, PredictInput::Image(ref b) if b[..] == b"\xff\xd8\xff"[..]));
        }
        (Err(e), Ok(plan)) => match plan.check_input(Input::Image) {
            Err(w) => check_entries_refusal(&e, &w),
            Ok(()) => panic!("the route refused {e:?} what the parser accepted: {plan:?}"),
        },
        (Err(e), Err(parsed)) => check_entries_refusal(&e, &parsed),
        (Ok(p), Err(parsed)) => panic!("the route accepted {p:?}; the parser said {parsed:?}"),
    }
}

/// A built request: `entries` from [`build`] in a form of arbitrary fields.
fn built(u: &mut Unstructured<'_>) -> Result<()> {
    let (entries, expected) = build(u)?;
    let entries_text = entries.to_string();
    // The parser alone: accepted exactly as the contract says.
    let parsed = Plan::parse(&entries_text);
    match (&parsed, &expected) {
        (Ok(plan), Ok(want)) => {
            assert_eq!(plan, want, "the plan of {entries_text}");
            check_plan(plan);
            check_names(plan, &entries);
        }
        (Err(e), Err(problems)) => {
            assert!(
                problems.iter().any(|p| p.matches(e)),
                "{entries_text}: refused with {e:?}, not one of {problems:?}"
            )
        }
        (got, want) => panic!("{entries_text}: parsed {got:?}, the contract says {want:?}"),
    }
    // The form.
    let send_entries = !u.ratio(1, 10)?;
    let image: Option<Vec<u8>> = if u.arbitrary()? { Some(u.arbitrary()?) } else { None };
    let text: Option<String> = match u.int_in_range(0..=4u8)? {
        0 | 1 => None,
        2 => Some("a photo of a cat".into()),
        3 => Some(if u.arbitrary()? {
            "é".repeat(LIMITS.max_text_chars)
        } else {
            "a".repeat(LIMITS.max_text_chars + 1)
        }),
        _ => Some(u.arbitrary()?),
    };
    let mut parts: Vec<Part<'_>> = Vec::new();
    if send_entries {
        parts.push(("entries", None, entries_text.as_bytes()));
    }
    if let Some(t) = &text {
        parts.push(("text", None, t.as_bytes()));
    }
    if let Some(i) = &image {
        parts.push(("image", Some("blob"), i));
    }
    if u.ratio(1, 6)? {
        parts.push(("ignored", None, b"FastAPI ignores fields it does not declare"));
    }
    if u.arbitrary()? {
        parts.reverse();
    }
    if parts.iter().any(|(_, _, c)| c.windows(BOUNDARY.len()).any(|w| w == BOUNDARY.as_bytes())) {
        return Ok(()); // would not be the form meant
    }
    let got = route(form(&parts));
    if !send_entries {
        match got {
            Err(ApiError::Param { param: "entries", .. }) => return Ok(()),
            other => panic!("a form without `entries` gave {other:?}"),
        }
    }
    let plan = match (got, parsed) {
        // `entries` first, as in Immich's service, where it is a dependency
        // FastAPI validates before the handler looks at `image` and `text`.
        (Err(e), Err(parsed)) => {
            check_entries_refusal(&e, &parsed);
            return Ok(());
        }
        (Ok(p), Err(parsed)) => panic!("{entries_text}: the route accepted {p:?}; the parser said {parsed:?}"),
        (got, Ok(plan)) => match got {
            Ok(p) => {
                assert_eq!(p.plan, plan, "the route's plan");
                (p.input, plan)
            }
            Err(e) => {
                // Refused for the form: no input, the wrong input, a text too long.
                match (&image, &text) {
                    (None, None) => assert!(matches!(e, ApiError::BadRequest(_)), "no input gave {e:?}"),
                    (Some(_), _) => check_entries_refusal(&e, &plan.check_input(Input::Image).expect_err("refused")),
                    (None, Some(t)) => match plan.check_input(Input::Text) {
                        Err(w) => check_entries_refusal(&e, &w),
                        Ok(()) => assert!(
                            t.chars().count() > LIMITS.max_text_chars && matches!(e, ApiError::Validation(_)),
                            "a text of {} chars refused with {e:?}",
                            t.chars().count()
                        ),
                    },
                }
                return Ok(());
            }
        },
    };
    let (input, plan) = plan;
    let text = text.map(|t| t.strip_prefix(BOM).map(str::to_string).unwrap_or(t));
    match (input, &image, &text) {
        (PredictInput::Image(b), Some(i), _) => {
            assert_eq!(b[..], i[..], "the image bytes");
            assert!(plan.textual.is_none(), "an image for {plan:?}");
        }
        (PredictInput::Text(t), None, Some(sent)) => {
            assert_eq!(&t, sent, "the text");
            assert!(plan.visual.is_none() && plan.faces.is_none() && sent.chars().count() <= LIMITS.max_text_chars);
        }
        (input, image, text) => panic!("{input:?} accepted from image {image:?}, text {text:?}"),
    }
    Ok(())
}

/// One fuzz input; panics on a violated invariant.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    check_embedding(rest);
    match mode {
        0 => raw_entries(rest),
        1 => drop(route(rest.to_vec())),
        _ => {
            let _ = built(&mut Unstructured::new(rest));
        }
    }
}
