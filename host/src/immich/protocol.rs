//! The `entries` field of `POST /predict`, and the shapes of the answer.
//!
//! Immich's server (`server/src/repositories/machine-learning.repository.ts`)
//! sends `entries` as the JSON text of an object of tasks, each an object of
//! model types, each `{"modelName": ..., "options": {...}}`:
//!
//! ```text
//! {"clip": {"visual": {"modelName": "ViT-B-32__openai"}}}
//! {"clip": {"textual": {"modelName": "ViT-B-32__openai", "options": {"language": "en"}}}}
//! {"facial-recognition": {"detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}},
//!                         "recognition": {"modelName": "buffalo_l"}}}
//! ```
//!
//! Immich's service (`immich_ml/main.py`, `get_entries`) answers 422 when the
//! text is not JSON or lacks a `modelName`, and 400 when a recognition has no
//! detection to depend on; an unknown task there is a server error (500).
//! Here every shape problem is 422 with a message that says what is wrong,
//! and a task switchyard does not run (OCR, ...) is 422 naming what it runs.
//! The answer's embeddings are JSON-array strings, as Immich's
//! `serialize_np_array` makes them, so its server can store them as they are.

use serde_json::{Map, Value};

/// What the Immich routes serve, for messages.
pub const SERVED: &str =
    "`clip` (`visual` for an `image`, `textual` for a `text`) and `facial-recognition` (`detection` with `recognition`)";

/// Immich's detector threshold when the request has no `minScore` (`FaceDetector`'s default).
pub const DEFAULT_MIN_SCORE: f32 = 0.7;

const EXAMPLE: &str = r#"{"clip": {"visual": {"modelName": "ViT-B-32__openai"}}}"#;

/// A CLIP text request.
#[derive(Debug, Clone, PartialEq)]
pub struct TextualEntry {
    pub name: String,
    /// `options.language`, sent by Immich's server; only multilingual (NLLB) models use it.
    pub language: Option<String>,
}

/// A face request: detection and recognition models and the detection threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct FacesEntry {
    pub detection: String,
    pub recognition: String,
    pub min_score: f32,
}

/// What one `POST /predict` asks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub visual: Option<String>,
    pub textual: Option<TextualEntry>,
    pub faces: Option<FacesEntry>,
}

/// The input of a request: the `image` file or the `text` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Image,
    Text,
}

/// Why `entries` cannot be served.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EntriesError {
    #[error(
        "`entries` is not valid JSON ({reason}); send a JSON object of tasks as Immich's server does, e.g. {EXAMPLE}"
    )]
    NotJson { reason: String },
    #[error("`{path}` must be a JSON object, not {got}; e.g. {EXAMPLE}")]
    NotObject { path: String, got: &'static str },
    #[error("`entries` names no task; switchyard serves {SERVED}")]
    Empty,
    #[error("the task `{task}` is not served by switchyard, which serves {SERVED}; switch that job off in Immich's machine-learning settings, or send it to Immich's own service")]
    UnknownTask { task: String },
    #[error("the task `{task}` has no model type `{kind}` here; switchyard serves {SERVED}")]
    UnknownType { task: String, kind: String },
    #[error("`entries.{task}.{kind}` needs a string `modelName`, e.g. {EXAMPLE}")]
    MissingName { task: String, kind: String },
    #[error("`entries.{task}.{kind}.options.{option}` must be {want}")]
    BadOption { task: String, kind: String, option: &'static str, want: &'static str },
    #[error(
        "facial-recognition `recognition` depends on the output of `detection`; send both, as Immich's server does"
    )]
    RecognitionWithoutDetection,
    #[error("facial-recognition `detection` alone is not served; send `detection` together with `recognition`, as Immich's server does")]
    DetectionAlone,
    #[error("`clip` with both `visual` and `textual` has one answer key for two embeddings; send one per request")]
    BothTowers,
    #[error("{task} works on the `{needs}` field, and this request sent a `{sent}`; send the `{needs}`")]
    WrongInput { task: &'static str, needs: &'static str, sent: &'static str },
}

impl EntriesError {
    /// Whether Immich's service answers this with 400 (else 422).
    pub fn is_bad_request(&self) -> bool {
        matches!(self, EntriesError::RecognitionWithoutDetection)
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, EntriesError> {
    v.as_object().ok_or_else(|| EntriesError::NotObject { path: path.to_string(), got: kind_of(v) })
}

/// One `{"modelName": ..., "options": {...}}`.
fn entry(task: &str, kind: &str, v: &Value) -> Result<(String, Map<String, Value>), EntriesError> {
    let fields = object(v, &format!("entries.{task}.{kind}"))?;
    let name = fields
        .get("modelName")
        .and_then(Value::as_str)
        .ok_or_else(|| EntriesError::MissingName { task: task.into(), kind: kind.into() })?;
    let options = match fields.get("options") {
        None => Map::new(),
        Some(v) => object(v, &format!("entries.{task}.{kind}.options"))?.clone(),
    };
    Ok((name.to_string(), options))
}

impl Plan {
    /// Parses the `entries` field.
    pub fn parse(entries: &str) -> Result<Plan, EntriesError> {
        let value: Value =
            serde_json::from_str(entries).map_err(|e| EntriesError::NotJson { reason: e.to_string() })?;
        let tasks = object(&value, "entries")?;
        if tasks.is_empty() {
            return Err(EntriesError::Empty);
        }
        let mut plan = Plan::default();
        for (task, types) in tasks {
            let types = object(types, &format!("entries.{task}"))?;
            match task.as_str() {
                "clip" => plan.clip(types)?,
                "facial-recognition" => plan.faces(types)?,
                _ => return Err(EntriesError::UnknownTask { task: task.clone() }),
            }
        }
        if plan.visual.is_none() && plan.textual.is_none() && plan.faces.is_none() {
            return Err(EntriesError::Empty);
        }
        Ok(plan)
    }

    fn clip(&mut self, types: &Map<String, Value>) -> Result<(), EntriesError> {
        for (kind, v) in types {
            let (name, options) = entry("clip", kind, v)?;
            match kind.as_str() {
                "visual" => self.visual = Some(name),
                "textual" => {
                    let language = match options.get("language") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(_) => {
                            return Err(EntriesError::BadOption {
                                task: "clip".into(),
                                kind: kind.clone(),
                                option: "language",
                                want: "a string such as `en`",
                            })
                        }
                    };
                    self.textual = Some(TextualEntry { name, language });
                }
                _ => return Err(EntriesError::UnknownType { task: "clip".into(), kind: kind.clone() }),
            }
        }
        if self.visual.is_some() && self.textual.is_some() {
            return Err(EntriesError::BothTowers);
        }
        Ok(())
    }

    fn faces(&mut self, types: &Map<String, Value>) -> Result<(), EntriesError> {
        let task = "facial-recognition";
        let (mut detection, mut recognition) = (None, None);
        for (kind, v) in types {
            let (name, options) = entry(task, kind, v)?;
            match kind.as_str() {
                "detection" => {
                    let min_score = match options.get("minScore") {
                        None => DEFAULT_MIN_SCORE,
                        // A number beyond f32's range (1e300) would be an infinite threshold.
                        Some(v) => v.as_f64().map(|x| x as f32).filter(|x| x.is_finite()).ok_or_else(|| {
                            EntriesError::BadOption {
                                task: task.into(),
                                kind: kind.clone(),
                                option: "minScore",
                                want: "a number within float32's range (Immich's default is 0.7)",
                            }
                        })?,
                    };
                    detection = Some((name, min_score));
                }
                "recognition" => recognition = Some(name),
                _ => return Err(EntriesError::UnknownType { task: task.into(), kind: kind.clone() }),
            }
        }
        match (detection, recognition) {
            (Some((detection, min_score)), Some(recognition)) => {
                self.faces = Some(FacesEntry { detection, recognition, min_score });
                Ok(())
            }
            (None, Some(_)) => Err(EntriesError::RecognitionWithoutDetection),
            (Some(_), None) => Err(EntriesError::DetectionAlone),
            (None, None) => Ok(()),
        }
    }

    /// Checks that every task of the plan works on the request's input.
    pub fn check_input(&self, input: Input) -> Result<(), EntriesError> {
        let sent = match input {
            Input::Image => "image",
            Input::Text => "text",
        };
        let wrong = |task, needs| Err(EntriesError::WrongInput { task, needs, sent });
        match input {
            Input::Image if self.textual.is_some() => wrong("clip `textual`", "text"),
            Input::Text if self.visual.is_some() => wrong("clip `visual`", "image"),
            Input::Text if self.faces.is_some() => wrong("facial-recognition", "image"),
            _ => Ok(()),
        }
    }
}

/// An embedding as Immich's service sends it: the JSON text of the array
/// (`orjson.dumps` of the float32 array), each value the shortest decimal
/// that reads back as the same f32.
pub fn embedding_string(values: &[f32]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_three_requests_parse() {
        let visual = Plan::parse(r#"{"clip":{"visual":{"modelName":"ViT-B-32__openai"}}}"#).unwrap();
        assert_eq!(visual.visual.as_deref(), Some("ViT-B-32__openai"));
        let textual = Plan::parse(r#"{"clip":{"textual":{"modelName":"m","options":{"language":"de"}}}}"#).unwrap();
        assert_eq!(textual.textual, Some(TextualEntry { name: "m".into(), language: Some("de".into()) }));
        let faces = Plan::parse(
            r#"{"facial-recognition":{"detection":{"modelName":"buffalo_l","options":{"minScore":0.5}},"recognition":{"modelName":"buffalo_l"}}}"#,
        )
        .unwrap();
        let f = faces.faces.unwrap();
        assert_eq!((f.detection.as_str(), f.recognition.as_str(), f.min_score), ("buffalo_l", "buffalo_l", 0.5));
        let default =
            Plan::parse(r#"{"facial-recognition":{"detection":{"modelName":"b"},"recognition":{"modelName":"b"}}}"#)
                .unwrap();
        assert_eq!(default.faces.unwrap().min_score, DEFAULT_MIN_SCORE);
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let err = |s: &str| Plan::parse(s).unwrap_err();
        assert!(matches!(err("{"), EntriesError::NotJson { .. }));
        assert!(matches!(err("[]"), EntriesError::NotObject { .. }));
        assert_eq!(err("{}"), EntriesError::Empty);
        assert!(
            matches!(err(r#"{"ocr":{"detection":{"modelName":"x"}}}"#), EntriesError::UnknownTask { task } if task == "ocr")
        );
        assert!(matches!(err(r#"{"clip":{"pipeline":{"modelName":"x"}}}"#), EntriesError::UnknownType { .. }));
        assert!(matches!(err(r#"{"clip":{"visual":{}}}"#), EntriesError::MissingName { .. }));
        assert!(matches!(err(r#"{"clip":{"visual":{"modelName":3}}}"#), EntriesError::MissingName { .. }));
        assert!(matches!(err(r#"{"clip":{"visual":{"modelName":"m","options":[]}}}"#), EntriesError::NotObject { .. }));
        let rec = err(r#"{"facial-recognition":{"recognition":{"modelName":"b"}}}"#);
        assert!(rec.is_bad_request() && rec == EntriesError::RecognitionWithoutDetection);
        let score = r#"{"facial-recognition":{"detection":{"modelName":"b","options":{"minScore":"high"}},"recognition":{"modelName":"b"}}}"#;
        assert!(matches!(err(score), EntriesError::BadOption { option: "minScore", .. }));
        let huge = r#"{"facial-recognition":{"detection":{"modelName":"b","options":{"minScore":1e300}},"recognition":{"modelName":"b"}}}"#;
        assert!(matches!(err(huge), EntriesError::BadOption { option: "minScore", .. }), "an infinite f32 threshold");
        let tiny = r#"{"facial-recognition":{"detection":{"modelName":"b","options":{"minScore":-3.4e38}},"recognition":{"modelName":"b"}}}"#;
        assert_eq!(Plan::parse(tiny).unwrap().faces.unwrap().min_score, -3.4e38f32);
        assert!(err(r#"{"ocr":{}}"#).to_string().contains("`clip`"));
    }

    #[test]
    fn the_input_must_fit_the_tasks() {
        let visual = Plan::parse(r#"{"clip":{"visual":{"modelName":"m"}}}"#).unwrap();
        assert!(visual.check_input(Input::Image).is_ok());
        assert!(matches!(visual.check_input(Input::Text), Err(EntriesError::WrongInput { needs: "image", .. })));
        let textual = Plan::parse(r#"{"clip":{"textual":{"modelName":"m"}}}"#).unwrap();
        assert!(textual.check_input(Input::Text).is_ok());
        assert!(textual.check_input(Input::Image).is_err());
    }

    #[test]
    fn embeddings_are_json_array_text_that_reads_back_exactly() {
        let v = [0.1f32, -1.5e-7, 3.0, f32::MIN_POSITIVE];
        let s = embedding_string(&v);
        let back: Vec<f32> = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
        assert!(s.starts_with("[0.1,"), "{s}");
    }
}
