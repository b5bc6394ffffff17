//! Immich's model cache layout, read as it is on disk (read-only).
//!
//! Immich's service keeps a model in `<cache>/<task>/<name>/<type>/model.onnx`
//! (`immich_ml/models/base.py`: `cache_folder / task / clean_name(name)`, then
//! the model type and `model.<format>`), with, for CLIP, `config.json` beside
//! the two type folders, `visual/preprocess_cfg.json`, and the tokenizer files
//! in `textual/`. `clean_name` (`immich_ml/config.py`) keeps the part after
//! the last `/` (so `immich-app/ViT-B-32__openai` works too), turns `:` and
//! `\` into `_` and drops `.`; that also keeps a name from leaving its folder.
//! Only ONNX files are read (`model.armnn` / `.rknn` are other runtimes').

use std::path::{Path, PathBuf};

use super::error::ImmichError;

/// Immich's model-name clean-up (`clean_name` in `immich_ml/config.py`).
pub fn clean_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or("");
    last.chars().filter(|&c| c != '.').map(|c| if c == ':' || c == '\\' { '_' } else { c }).collect()
}

/// The files of a CLIP image tower.
#[derive(Debug, Clone)]
pub struct VisualFiles {
    pub name: String,
    pub folder: PathBuf,
    pub model: PathBuf,
    pub preprocess_cfg: PathBuf,
}

/// The files of a CLIP text tower.
#[derive(Debug, Clone)]
pub struct TextualFiles {
    pub name: String,
    pub folder: PathBuf,
    pub model: PathBuf,
    pub config: PathBuf,
    pub tokenizer: PathBuf,
    pub tokenizer_config: PathBuf,
}

/// The files of a face detector and recognizer (two names: Immich's server sends one).
#[derive(Debug, Clone)]
pub struct FaceFiles {
    pub detection_name: String,
    pub recognition_name: String,
    pub folder: PathBuf,
    pub detection: PathBuf,
    pub recognition: PathBuf,
}

/// An Immich model cache folder.
#[derive(Debug, Clone)]
pub struct ModelCache {
    root: PathBuf,
}

impl ModelCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ModelCache { root: root.into() }
    }

    /// The cache folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn folder(&self, task: &str, name: &str) -> Result<(String, PathBuf), ImmichError> {
        let clean = clean_name(name);
        if clean.is_empty() {
            return Err(ImmichError::BadName { name: name.to_string() });
        }
        let folder = self.root.join(task).join(&clean);
        Ok((clean, folder))
    }

    fn need(&self, task: &'static str, name: &str, path: PathBuf) -> Result<PathBuf, ImmichError> {
        if path.is_file() {
            Ok(path)
        } else {
            Err(ImmichError::ModelMissing { task, name: name.to_string(), path, cache: self.root.clone() })
        }
    }

    /// `clip/<name>/visual/model.onnx` and `preprocess_cfg.json`.
    pub fn visual(&self, name: &str) -> Result<VisualFiles, ImmichError> {
        let (clean, folder) = self.folder("clip", name)?;
        let task = "CLIP visual";
        Ok(VisualFiles {
            model: self.need(task, &clean, folder.join("visual/model.onnx"))?,
            preprocess_cfg: self.need(task, &clean, folder.join("visual/preprocess_cfg.json"))?,
            name: clean,
            folder,
        })
    }

    /// `clip/<name>/textual/model.onnx`, the tokenizer files and `config.json`.
    pub fn textual(&self, name: &str) -> Result<TextualFiles, ImmichError> {
        let (clean, folder) = self.folder("clip", name)?;
        let task = "CLIP textual";
        Ok(TextualFiles {
            model: self.need(task, &clean, folder.join("textual/model.onnx"))?,
            config: self.need(task, &clean, folder.join("config.json"))?,
            tokenizer: self.need(task, &clean, folder.join("textual/tokenizer.json"))?,
            tokenizer_config: self.need(task, &clean, folder.join("textual/tokenizer_config.json"))?,
            name: clean,
            folder,
        })
    }

    /// `facial-recognition/<detection>/detection/model.onnx` and
    /// `facial-recognition/<recognition>/recognition/model.onnx`.
    pub fn faces(&self, detection: &str, recognition: &str) -> Result<FaceFiles, ImmichError> {
        let (det_name, det_folder) = self.folder("facial-recognition", detection)?;
        let (rec_name, rec_folder) = self.folder("facial-recognition", recognition)?;
        let task = "facial-recognition";
        Ok(FaceFiles {
            detection: self.need(task, &det_name, det_folder.join("detection/model.onnx"))?,
            recognition: self.need(task, &rec_name, rec_folder.join("recognition/model.onnx"))?,
            detection_name: det_name,
            recognition_name: rec_name,
            folder: det_folder,
        })
    }
}

/// Whether a model folder holds tools/make_immich_models.py's stand-ins (its `meta.json`).
pub fn random_weights(folder: &Path) -> bool {
    folder.join("meta.json").is_file()
}

/// Reads and parses a JSON file of the cache.
pub fn read_json(path: &Path) -> Result<serde_json::Value, ImmichError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImmichError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|e| ImmichError::BadFile { path: path.to_path_buf(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_as_immich_cleans_them() {
        assert_eq!(clean_name("ViT-B-32__openai"), "ViT-B-32__openai");
        assert_eq!(clean_name("immich-app/ViT-B-32__openai"), "ViT-B-32__openai");
        assert_eq!(clean_name("ViT-B-16-SigLIP2__webli"), "ViT-B-16-SigLIP2__webli");
        assert_eq!(clean_name("a:b\\c.d"), "a_b_cd");
        assert_eq!(clean_name("../.."), "");
        assert_eq!(clean_name("x/"), "");
    }

    #[test]
    fn a_missing_model_names_the_file_and_the_cache() {
        let cache = ModelCache::new("/nonexistent/cache");
        let err = cache.visual("immich-app/ViT-B-32__openai").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`/nonexistent/cache/clip/ViT-B-32__openai/visual/model.onnx` is missing"), "{msg}");
        assert!(msg.contains("SWITCHYARD_IMMICH_MODELS"), "{msg}");
        assert!(matches!(cache.faces("..", "buffalo_l"), Err(ImmichError::BadName { .. })));
    }
}
