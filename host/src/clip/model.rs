//! A CLIP model on the selected backend: the visual and textual towers
//! (TorchScript or ONNX files written by tools/export_clip.py), run through
//! the plugin, with L2 normalization in the host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use abi_stable::std_types::RSlice;
use serde::{Deserialize, Serialize};
use switchyard_core::abi::{kv, BackendBox, BackendError, DType, ModelSpec, TensorView};

use crate::resident::{LoadFailure, ResidentSet};

/// The model folder's `config.json`, as written by tools/export_clip.py.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClipConfig {
    /// open_clip model name, e.g. `ViT-B-32`.
    #[serde(alias = "model_name")]
    pub model: String,
    /// The pretrained tag (`none` for random weights).
    #[serde(default)]
    pub pretrained: Option<String>,
    /// Whether the weights are random (the offline default).
    #[serde(default)]
    pub random_weights: bool,
    pub embed_dim: usize,
    pub image_size: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    #[serde(default = "default_interpolation")]
    pub interpolation: String,
    #[serde(default = "default_resize_mode")]
    pub resize_mode: String,
    pub context_length: usize,
    /// Whether the text tower takes `[batch, L]` tokens for any `L <=
    /// context_length` (exports since format 2); then the zero padding after
    /// the longest row's EOT is cut before the call (see [`cut_padding`]).
    #[serde(default)]
    pub text_dynamic_length: bool,
    /// The dtypes the TorchScript towers run in (exports since format 3:
    /// float32, float16, bfloat16). Older exports traced open_clip's casts to
    /// float32 into the graph and run in float32 only.
    #[serde(default = "default_torchscript_dtypes")]
    pub torchscript_dtypes: Vec<String>,
    /// The BPE vocabulary file in the folder.
    #[serde(default = "default_tokenizer", alias = "tokenizer_file")]
    pub tokenizer: String,
}

impl ClipConfig {
    /// What the torch backend needs to refuse a dtype the export cannot run
    /// in, with the command that makes one that can (the backend picks the
    /// dtype: `DTYPE`, else float16 on CUDA, float32 elsewhere).
    fn torchscript_options(&self, dir: &Path) -> Vec<(String, String)> {
        let out = dir.parent().and_then(Path::parent).unwrap_or(Path::new("models"));
        let pretrained = self.pretrained.as_deref().unwrap_or("none");
        let hint = format!(
            "re-export it with `python tools/export_clip.py --model {} --pretrained {pretrained} --out {}` \
             (ci/make-models.sh does for ViT-B-32), or set `DTYPE=float32`",
            self.model,
            out.display()
        );
        vec![("dtypes".into(), self.torchscript_dtypes.join(",")), ("export_hint".into(), hint)]
    }
}

fn default_interpolation() -> String {
    "bicubic".into()
}
fn default_resize_mode() -> String {
    "shortest".into()
}
fn default_torchscript_dtypes() -> Vec<String> {
    vec!["float32".into()]
}
fn default_tokenizer() -> String {
    "bpe_simple_vocab_16e6.txt.gz".into()
}

/// Which exported files to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipEngine {
    /// `visual.pt` / `textual.pt` through libtorch.
    Torchscript,
    /// `visual.onnx` / `textual.onnx` through ONNX Runtime.
    Onnx,
    /// `visual.int8.onnx` / `textual.int8.onnx` (`tools/quantize_clip.py`): int8 weights,
    /// about 3x the images/s of float32 on a CPU with VNNI/AMX and close to, not equal to,
    /// the float32 embeddings. Only when asked (`CLIP_ENGINE=onnx-int8`), never by `auto`.
    #[serde(rename = "onnx-int8")]
    OnnxInt8,
    /// `visual.pt` / `textual.pt` through libtorch on the CPU, their float32
    /// matmuls and convolutions fed bfloat16 inputs (oneDNN's fpmath mode on
    /// AMX, float32 accumulation; torch/src/precision.rs): about 1.3-1.4x the
    /// images/s of float32 TorchScript where the CPU has AMX, cosine about
    /// 0.99999 to float32 (docs/benchmarks.md); exact float32 where it has not.
    /// Only when asked (`CLIP_ENGINE=torchscript-bf16`), never by `auto`.
    #[serde(rename = "torchscript-bf16")]
    TorchscriptBf16,
}

impl ClipEngine {
    fn files(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ClipEngine::Torchscript | ClipEngine::TorchscriptBf16 => ("visual.pt", "textual.pt", "torchscript"),
            ClipEngine::Onnx => ("visual.onnx", "textual.onnx", "onnx"),
            ClipEngine::OnnxInt8 => ("visual.int8.onnx", "textual.int8.onnx", "onnx"),
        }
    }
}

/// The engine `CLIP_ENGINE=auto` picks on each device, by measurement
/// (docs/benchmarks.md, `python tools/bench_clip.py`): on the CPU, ONNX
/// Runtime ran ViT-B-32 about 1.35x faster than libtorch for images and 1.6x
/// for texts; on GPUs TorchScript, where libtorch runs the towers in fp16.
pub fn default_engine(kind: switchyard_core::DeviceKind) -> ClipEngine {
    match kind {
        switchyard_core::DeviceKind::Cuda | switchyard_core::DeviceKind::Mps => ClipEngine::Torchscript,
        switchyard_core::DeviceKind::Cpu => ClipEngine::Onnx,
    }
}

/// What can go wrong loading or running CLIP.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("`{}` is missing; make the model with `python tools/export_clip.py --model {model}` (ci/setup.sh does for ViT-B-32), or point MODEL_DIR at the folder that holds clip/{model}/", path.display())]
    MissingFile { path: PathBuf, model: String },
    #[error("`{}` is missing: CLIP_ENGINE=onnx-int8 runs the int8 towers, made from the float32 export by `python tools/quantize_clip.py {}` (ci/setup.sh does for ViT-B-32); or use CLIP_ENGINE=auto", path.display(), dir.display())]
    MissingInt8 { path: PathBuf, dir: PathBuf },
    #[error("`{}` is not a valid CLIP config: {source}", path.display())]
    BadConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the backend failed while {during} {tower}")]
    Backend {
        during: &'static str,
        tower: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("the {tower} tower returned {got}, expected [batch, {dim}]")]
    BadOutput { tower: &'static str, got: String, dim: usize },
}

/// A loaded CLIP model.
pub struct ClipModel {
    /// The visual (0) and textual (1) towers; see [`crate::resident`].
    towers: ResidentSet,
    /// Where the towers run, as the backend reported at load.
    device: String,
    pub config: ClipConfig,
    pub engine: ClipEngine,
    pub dir: PathBuf,
}

const TOWERS: [&str; 2] = ["visual", "textual"];

impl ClipModel {
    /// Reads `dir/config.json`.
    pub fn read_config(dir: &Path) -> Result<ClipConfig, ClipError> {
        let path = dir.join("config.json");
        let model = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text = std::fs::read_to_string(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ClipError::MissingFile { path: path.clone(), model: model.clone() },
            _ => ClipError::Io { path: path.clone(), source },
        })?;
        serde_json::from_str(&text).map_err(|source| ClipError::BadConfig { path, source })
    }

    /// Loads both towers of the model in `dir` on `backend`.
    pub fn load(backend: Arc<BackendBox>, dir: &Path, engine: ClipEngine) -> Result<Self, ClipError> {
        let config = Self::read_config(dir)?;
        let (visual_file, textual_file, format) = engine.files();
        let options = match engine {
            ClipEngine::Torchscript => config.torchscript_options(dir),
            ClipEngine::TorchscriptBf16 => {
                let mut options = config.torchscript_options(dir);
                options.push(("fp32_matmul".into(), "bf16".into()));
                options
            }
            ClipEngine::Onnx | ClipEngine::OnnxInt8 => Vec::new(),
        };
        let mut specs = Vec::new();
        for (file, tower) in [(visual_file, TOWERS[0]), (textual_file, TOWERS[1])] {
            let path = dir.join(file);
            if !path.is_file() {
                return Err(match engine {
                    ClipEngine::OnnxInt8 => ClipError::MissingInt8 { path, dir: dir.to_path_buf() },
                    _ => ClipError::MissingFile { path, model: config.model.clone() },
                });
            }
            specs.push(ModelSpec {
                name: format!("clip/{}/{tower}", config.model).into(),
                path: path.display().to_string().into(),
                format: format.into(),
                options: kv(options.clone()),
            });
        }
        let towers = ResidentSet::load(backend, specs).map_err(loading)?;
        let device = towers
            .with(|infos| {
                crate::util::log_model_notes("clip/visual", &infos[0]);
                crate::util::log_model_notes("clip/textual", &infos[1]);
                infos[0].device.to_string()
            })
            .map_err(loading)?;
        if config.random_weights {
            tracing::warn!(model = %config.model, "serving RANDOM CLIP weights (offline export): embeddings are meaningless; export real weights with tools/export_clip.py --pretrained <tag>");
        }
        let model = ClipModel { towers, device, config, engine, dir: dir.to_path_buf() };
        model.warm_up()?;
        Ok(model)
    }

    /// The towers' residency (idle unload, reloads).
    pub fn resident(&self) -> &ResidentSet {
        &self.towers
    }

    /// Runs each tower twice on a dummy input: libtorch's profiling executor
    /// optimizes a TorchScript graph on its first calls, and the service is
    /// ready only once that is done.
    pub fn warm_up(&self) -> Result<(), ClipError> {
        let s = self.config.image_size;
        let pixels = vec![0.0f32; 3 * s * s];
        let mut tokens = vec![0i64; self.config.context_length];
        tokens[0] = 49406;
        tokens[1] = 49407;
        for _ in 0..2 {
            self.embed_pixels(&pixels, 1)?;
            self.embed_tokens(&tokens, 1)?;
        }
        Ok(())
    }

    /// Where the towers run (e.g. `cpu`, `cuda:0`, `CPUExecutionProvider`).
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Embeds a batch of preprocessed images (`[batch, 3, S, S]`, row-major); L2-normalized rows.
    pub fn embed_pixels(&self, pixels: &[f32], batch: usize) -> Result<Vec<Vec<f32>>, ClipError> {
        let s = self.config.image_size as i64;
        let shape = [batch as i64, 3, s, s];
        let view = TensorView {
            dtype: DType::F32.code(),
            shape: RSlice::from_slice(&shape),
            data: RSlice::from_slice(bytemuck::cast_slice(pixels)),
        };
        self.run(0, view, batch)
    }

    /// Embeds a batch of token rows (`[batch, context_length]`); L2-normalized rows.
    pub fn embed_tokens(&self, tokens: &[i64], batch: usize) -> Result<Vec<Vec<f32>>, ClipError> {
        let ctx = self.config.context_length;
        let cut;
        let (tokens, len) = if self.config.text_dynamic_length {
            cut = cut_padding(tokens, batch, ctx);
            (cut.0.as_slice(), cut.1)
        } else {
            (tokens, ctx)
        };
        let shape = [batch as i64, len as i64];
        let view = TensorView {
            dtype: DType::I64.code(),
            shape: RSlice::from_slice(&shape),
            data: RSlice::from_slice(bytemuck::cast_slice(tokens)),
        };
        self.run(1, view, batch)
    }

    fn run(&self, index: usize, input: TensorView<'_>, batch: usize) -> Result<Vec<Vec<f32>>, ClipError> {
        let tower = TOWERS[index];
        let outputs = self
            .towers
            .with(|infos| self.towers.backend().run(infos[index].handle, RSlice::from_slice(&[input])).into_result())
            .map_err(loading)?
            .map_err(|source| ClipError::Backend { during: "running", tower, source })?;
        let dim = self.config.embed_dim;
        let out = outputs.first().ok_or_else(|| ClipError::BadOutput { tower, got: "no output".into(), dim })?;
        if out.shape.as_slice() != [batch as i64, dim as i64] || out.dtype != DType::F32.code() {
            return Err(ClipError::BadOutput {
                tower,
                got: format!("{:?} {:?}", out.shape.as_slice(), out.dtype),
                dim,
            });
        }
        let values: Vec<f32> = out.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(values.chunks_exact(dim).map(l2_normalize).collect())
    }
}

pub use crate::util::l2_normalize;

fn loading(f: LoadFailure) -> ClipError {
    ClipError::Backend { during: "loading", tower: TOWERS[f.index], source: f.source }
}

/// Cuts `[batch, ctx]` token rows to `[batch, L]`, L one past the last
/// non-zero token of the longest row (its EOT). The text tower's attention is
/// causal and pools at the EOT, so the padding after it never reaches the
/// embedding: a 5-word query runs 12 positions instead of 77, several times
/// faster, with the same result to float rounding (the export checks both).
pub fn cut_padding(tokens: &[i64], batch: usize, ctx: usize) -> (Vec<i64>, usize) {
    let len = tokens
        .chunks_exact(ctx)
        .take(batch)
        .map(|row| row.iter().rposition(|&t| t != 0).map_or(1, |p| p + 1))
        .max()
        .unwrap_or(1);
    let out = tokens.chunks_exact(ctx).take(batch).flat_map(|row| &row[..len]).copied().collect();
    (out, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_cut_after_the_longest_row() {
        let rows = [49406, 320, 49407, 0, 0, 0, 49406, 320, 321, 49407, 0, 0];
        assert_eq!(cut_padding(&rows, 2, 6), (vec![49406, 320, 49407, 0, 49406, 320, 321, 49407], 4));
        // a row that fills the context keeps all of it; an all-zero row keeps one
        let full = [1, 2, 3, 0, 0, 0];
        assert_eq!(cut_padding(&full, 2, 3).1, 3);
        assert_eq!(cut_padding(&[0, 0, 0], 1, 3), (vec![0], 1));
    }

    #[test]
    fn normalizes_to_unit_length() {
        let v = l2_normalize(&[3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
        assert_eq!(l2_normalize(&[0.0, 0.0]), vec![0.0, 0.0]);
    }
}
