//! Settings shared by every subcommand, as clap argument groups: each option
//! is a flag with an environment variable behind it.
//!
//! Values are kept as given and validated by [`DeviceArgs::resolve`], so that
//! the error names the variable and lists the accepted values (clap's own
//! messages would not say how to fix `DEVICE=tpu`).

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use switchyard_core::abi::{kv, BackendConfig};
use switchyard_core::select::SelectSettings;
use switchyard_core::settings::{parse_bool_flag, parse_onnx_providers, ExecutionProvider};
use switchyard_core::DeviceSpec;

/// What every boolean setting accepts, said once in `--help`.
pub const BOOLEAN_VALUES_HELP: &str =
    "Boolean settings (a flag or its environment variable) take true/false, 1/0, yes/no or on/off, in any case.";

/// The value parser of every boolean flag: the values `FORCE_CPU` takes, so that
/// `SWITCHYARD_QUIET=1` works as `FORCE_CPU=1` does (clap's own bool parser takes
/// only `true` and `false`).
pub fn boolish(raw: &str) -> Result<bool, String> {
    if raw.trim().is_empty() {
        return Err("an empty value is not a boolean; use true/false, 1/0, yes/no or on/off".into());
    }
    parse_bool_flag("", raw)
        .map_err(|_| format!("`{raw}` is not a boolean; use true/false, 1/0, yes/no or on/off (any case)"))
}

/// Which device to use.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// auto, cpu, mps, cuda or cuda:N. An explicit device that is unavailable is an error.
    #[arg(long, env = "DEVICE", default_value = "auto")]
    pub device: String,
    /// true/1/yes: use the CPU even if a GPU is there (DEVICE, when set, wins).
    #[arg(long, env = "FORCE_CPU", default_value = "")]
    pub force_cpu: String,
    /// Comma list of ONNX execution providers in preference order (CPU is always appended).
    #[arg(long, env = "ONNX_PROVIDERS", default_value = "")]
    pub onnx_providers: String,
    /// Intra-op threads for libtorch and ONNX Runtime (0: one per core).
    #[arg(long, env = "SWITCHYARD_THREADS", default_value_t = 0)]
    pub threads: u32,
    /// The ONNX Runtime library (default: the one baked into the plugin by ci/setup.sh).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib: Option<PathBuf>,
    /// TorchScript dtype on GPUs: float16 (default on CUDA), bfloat16 or float32.
    #[arg(long, env = "DTYPE")]
    pub dtype: Option<String>,
    /// CUDA: TF32 in float32 matmuls and cuDNN convolutions (off: IEEE float32, exact).
    #[arg(long, env = "SWITCHYARD_CUDA_TF32", default_value = "")]
    pub cuda_tf32: String,
    /// CUDA: cuDNN benchmark mode, timing kernels per input shape (off by default).
    #[arg(long, env = "SWITCHYARD_CUDNN_BENCHMARK", default_value = "")]
    pub cudnn_benchmark: String,
    /// ONNX Runtime's intra-op threads busy-wait between ops (off: they sleep, leaving the
    /// cores to image decoding; docs/benchmarks.md has the measurement).
    #[arg(long, env = "SWITCHYARD_ORT_SPINNING", default_value = "")]
    pub ort_spinning: String,
}

/// Where plugins are.
#[derive(Debug, Clone, Args)]
pub struct PluginArgs {
    /// The plugin folder (default: `plugins` beside the executable, else `./plugins`).
    #[arg(long, env = "SWITCHYARD_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Explicit plugin files, in preference order, instead of scanning the folder.
    #[arg(long = "plugin", env = "SWITCHYARD_PLUGINS", value_delimiter = ',')]
    pub plugins: Vec<PathBuf>,
}

/// The validated device settings.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSettings {
    /// `DEVICE`.
    #[serde(serialize_with = "display")]
    pub device: DeviceSpec,
    /// `FORCE_CPU`.
    pub force_cpu: bool,
    /// `ONNX_PROVIDERS`, parsed (`None`: the plugin's default order).
    pub onnx_providers: Option<Vec<ExecutionProvider>>,
    /// Threads.
    pub threads: u32,
    /// `ORT_DYLIB_PATH`.
    pub ort_dylib: Option<PathBuf>,
    /// `DTYPE`.
    pub dtype: Option<String>,
    /// `SWITCHYARD_CUDA_TF32`.
    pub cuda_tf32: bool,
    /// `SWITCHYARD_CUDNN_BENCHMARK`.
    pub cudnn_benchmark: bool,
    /// `SWITCHYARD_ORT_SPINNING`.
    pub ort_spinning: bool,
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl DeviceArgs {
    /// Validates every value; the error says which variable is wrong and what is accepted.
    pub fn resolve(&self) -> anyhow::Result<DeviceSettings> {
        Ok(DeviceSettings {
            device: self.device.parse()?,
            force_cpu: parse_bool_flag("FORCE_CPU", &self.force_cpu)?,
            onnx_providers: parse_onnx_providers(&self.onnx_providers)?,
            threads: self.threads,
            ort_dylib: self.ort_dylib.clone(),
            dtype: self.dtype.clone(),
            cuda_tf32: parse_bool_flag("SWITCHYARD_CUDA_TF32", &self.cuda_tf32)?,
            cudnn_benchmark: parse_bool_flag("SWITCHYARD_CUDNN_BENCHMARK", &self.cudnn_benchmark)?,
            ort_spinning: parse_bool_flag("SWITCHYARD_ORT_SPINNING", &self.ort_spinning)?,
        })
    }
}

impl DeviceSettings {
    /// What the selection policy reads.
    pub fn select_settings(&self) -> SelectSettings {
        SelectSettings { device: self.device, force_cpu: self.force_cpu }
    }

    /// The config passed to a plugin's probe and open.
    pub fn backend_config(&self, device_index: Option<u32>) -> BackendConfig {
        let mut extra = Vec::new();
        if let Some(p) = &self.ort_dylib {
            extra.push(("ort_dylib".to_string(), p.display().to_string()));
        }
        if let Some(d) = &self.dtype {
            extra.push(("dtype".to_string(), d.clone()));
        }
        // Applied by the CUDA companion when it opens (switchyard_torch::gpu::CudaSettings).
        extra.push(("cuda_tf32".to_string(), self.cuda_tf32.to_string()));
        extra.push(("cudnn_benchmark".to_string(), self.cudnn_benchmark.to_string()));
        extra.push(("ort_spinning".to_string(), self.ort_spinning.to_string()));
        BackendConfig {
            device_index: device_index.into(),
            onnx_providers: self.onnx_providers.iter().flatten().map(|p| p.ort_name().into()).collect(),
            threads: self.threads,
            extra: kv(extra),
        }
    }
}

impl PluginArgs {
    /// The plugin folder to scan.
    pub fn folder(&self) -> PathBuf {
        if let Some(dir) = &self.plugin_dir {
            return dir.clone();
        }
        let beside_exe = std::env::current_exe().ok().and_then(|e| e.parent().map(|p| p.join("plugins")));
        match beside_exe {
            Some(dir) if dir.is_dir() => dir,
            _ => PathBuf::from("plugins"),
        }
    }
}

/// Where the models are and which to use.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// The model folder (clip/<name>/, faces/<name>/).
    #[arg(long, env = "MODEL_DIR", default_value = "models")]
    pub model_dir: PathBuf,
    /// The CLIP model (a folder under MODEL_DIR/clip/).
    #[arg(long, env = "CLIP_MODEL_NAME", default_value = "ViT-B-32")]
    pub clip_model_name: String,
    /// The pretrained tag the CLIP folder must hold (checked against its config.json); empty: any.
    #[arg(long, env = "CLIP_PRETRAINED", default_value = "")]
    pub clip_pretrained: String,
    /// The face models (a folder under MODEL_DIR/faces/ holding det_10g.onnx and w600k_r50.onnx).
    #[arg(long, env = "FACE_MODEL_NAME", default_value = "buffalo_l")]
    pub face_model_name: String,
    /// Which exported CLIP files to run: auto (the faster on this device, by measurement), torchscript, onnx, or
    /// onnx-int8 (opt-in int8 towers from tools/quantize_clip.py: faster, close to but not equal to float32), or
    /// torchscript-bf16 (opt-in, CPU: float32 towers whose matmuls take bfloat16 inputs on AMX; exact float32 without AMX).
    #[arg(long, env = "CLIP_ENGINE", default_value = "auto")]
    pub clip_engine: String,
}

impl ModelArgs {
    /// `MODEL_DIR/clip/CLIP_MODEL_NAME`.
    pub fn clip_dir(&self) -> PathBuf {
        self.model_dir.join("clip").join(&self.clip_model_name)
    }

    /// `MODEL_DIR/faces/FACE_MODEL_NAME`.
    pub fn face_dir(&self) -> PathBuf {
        self.model_dir.join("faces").join(&self.face_model_name)
    }
}

impl ModelArgs {
    /// The CLIP engine asked for (`None`: auto, decided per device).
    pub fn engine(&self) -> anyhow::Result<Option<crate::clip::model::ClipEngine>> {
        use crate::clip::model::ClipEngine;
        match self.clip_engine.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(None),
            "torchscript" | "ts" => Ok(Some(ClipEngine::Torchscript)),
            "onnx" => Ok(Some(ClipEngine::Onnx)),
            "onnx-int8" | "int8" => Ok(Some(ClipEngine::OnnxInt8)),
            "torchscript-bf16" | "bf16" => Ok(Some(ClipEngine::TorchscriptBf16)),
            other => anyhow::bail!(
                "`CLIP_ENGINE={other}` is not an engine; use auto, torchscript, onnx, onnx-int8 or torchscript-bf16"
            ),
        }
    }
}

/// How images are decoded, the same flags and variables for `serve` and `embed`.
#[derive(Debug, Clone, Args)]
pub struct DecodeArgs {
    /// Refuse images with more pixels than this (decompression bombs; `serve` answers 413).
    #[arg(long, env = "SWITCHYARD_MAX_PIXELS", default_value_t = crate::image::decode::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Decode large JPEGs for CLIP at reduced DCT scale (Pillow's `draft`) where faces do not need
    /// the full pixels: several times faster for camera photos, cosine >= 0.999 to the full decode;
    /// `false` keeps PIL's exact pixels.
    #[arg(long, env = "SWITCHYARD_SCALED_DECODE", default_value_t = true, action = clap::ArgAction::Set, value_parser = boolish)]
    pub scaled_decode: bool,
}

/// The face detector's settings, the same flags and variables for `serve` and
/// `embed` (insightface's `FaceAnalysis` defaults).
#[derive(Debug, Clone, Args)]
pub struct FaceDetectArgs {
    /// Detector input size, `WxH` or `N` for a square (multiples of 32).
    #[arg(long, env = "SWITCHYARD_FACE_DET_SIZE", default_value = "640x640", value_parser = parse_det_size)]
    pub face_det_size: (usize, usize),
    /// Minimum detection score (insightface `det_thresh`; `FACE_DET_THRESHOLD` is the deprecated name).
    #[arg(long, alias = "face-threshold", env = "SWITCHYARD_FACE_DET_THRESHOLD", default_value_t = 0.5)]
    pub face_det_threshold: f32,
    /// NMS IoU above which the lower-scored of two boxes is dropped.
    #[arg(long, env = "SWITCHYARD_FACE_NMS_THRESHOLD", default_value_t = 0.4)]
    pub face_nms_threshold: f32,
    /// Keep at most this many faces per image, largest and most central first (0: all;
    /// `FACE_MAX_NUM` is the deprecated name).
    #[arg(long, env = "SWITCHYARD_FACE_MAX_NUM", default_value_t = 0)]
    pub face_max_num: usize,
}

fn parse_det_size(value: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{value}` is not a detector size; use WxH or N with multiples of 32, e.g. 640x640");
    let (w, h) = match value.trim().split_once(['x', 'X']) {
        Some((w, h)) => (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?),
        None => {
            let n = value.trim().parse().map_err(|_| bad())?;
            (n, n)
        }
    };
    if w == 0 || h == 0 || w % 32 != 0 || h % 32 != 0 {
        return Err(bad());
    }
    Ok((w, h))
}

/// For a clap "invalid value" error whose value came from an environment
/// variable (clap names only the flag), the line that names the variable and
/// its value, so that `SWITCHYARD_QUIET=maybe` is found where it was set.
pub fn env_source_note(error: &clap::Error, command: &clap::Command) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(error.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else { return None };
    let long = flag.trim_start_matches('-').split([' ', '=']).next().unwrap_or_default().to_string();
    let given: Vec<String> = std::env::args().collect();
    if given.iter().any(|a| a == &format!("--{long}") || a.starts_with(&format!("--{long}="))) {
        return None;
    }
    let mut stack = vec![command];
    while let Some(c) = stack.pop() {
        for arg in c.get_arguments().filter(|a| a.get_long() == Some(long.as_str())) {
            let Some(var) = arg.get_env() else { continue };
            if let Some(value) = std::env::var_os(var) {
                let var = var.to_string_lossy();
                return Some(format!(
                    "note: the value comes from the environment: `{var}={}`; fix or unset `{var}`",
                    value.to_string_lossy()
                ));
            }
        }
        stack.extend(c.get_subcommands());
    }
    None
}

/// Variables renamed so that one setting has one name in every subcommand:
/// `(old, new)`. The old name still works, with a deprecation line.
pub const RENAMED_VARIABLES: [(&str, &str); 2] =
    [("FACE_DET_THRESHOLD", "SWITCHYARD_FACE_DET_THRESHOLD"), ("FACE_MAX_NUM", "SWITCHYARD_FACE_MAX_NUM")];

/// Copies each set old variable of [`RENAMED_VARIABLES`] to its new name
/// (when that is unset) and returns the deprecation lines to print. Call it
/// before parsing the command line, while the process has one thread.
pub fn apply_renamed_variables() -> Vec<String> {
    let mut lines = Vec::new();
    for (old, new) in RENAMED_VARIABLES {
        let Some(value) = std::env::var_os(old) else { continue };
        match std::env::var_os(new) {
            None => {
                std::env::set_var(new, &value);
                lines.push(format!("warning: `{old}` is deprecated; set `{new}` instead (it is read as `{new}` now)"));
            }
            Some(set) if set != value => lines.push(format!(
                "warning: `{old}` is deprecated and ignored: `{new}` is set too and wins; unset `{old}`"
            )),
            Some(_) => lines.push(format!("warning: `{old}` is deprecated; unset it, `{new}` holds the same value")),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detector_sizes_are_multiples_of_32() {
        assert_eq!(parse_det_size("640"), Ok((640, 640)));
        assert_eq!(parse_det_size("640x480"), Ok((640, 480)));
        assert!(parse_det_size("650").is_err());
        assert!(parse_det_size("0x640").is_err());
        assert!(parse_det_size("big").is_err());
    }

    #[test]
    fn every_spelling_of_a_boolean_is_accepted() {
        for yes in ["true", "TRUE", "1", "yes", "Yes", "on", "ON", " true "] {
            assert_eq!(boolish(yes), Ok(true), "{yes}");
        }
        for no in ["false", "False", "0", "no", "NO", "off", "Off"] {
            assert_eq!(boolish(no), Ok(false), "{no}");
        }
    }

    #[test]
    fn a_value_that_is_not_a_boolean_says_what_is() {
        for bad in ["maybe", "2", "", "y e s"] {
            let e = boolish(bad).unwrap_err();
            assert!(e.contains("1/0, yes/no or on/off"), "{bad}: {e}");
        }
    }
}
