//! The companion's `Backend`: a table of loaded TorchScript models on one
//! libtorch device. The plugin's `EngineBackend` routes `torchscript` models
//! here; every method runs behind the panic barrier.
//!
//! A model runs in the backend's dtype (`DTYPE`, the plugin's default) unless
//! its spec says `dtype=...`. A spec may also say which dtypes its file can
//! run in (`dtypes=float32,float16,bfloat16`, from the CLIP export's
//! config.json): a trace that froze casts to float32 fails in half precision
//! with "mixed dtype" on its first call, so a dtype outside that list is
//! refused at load, with the spec's `export_hint` (the command that makes an
//! export for it).
//!
//! On a GPU, `info` carries the allocator's figures for the device
//! (`switchyard_core::memory`), and every `unload` hands the allocator's
//! unused cache back to the driver: the host unloads idle models
//! (`SWITCHYARD_MODEL_IDLE_TTL_S`) so that other processes get that memory,
//! and CUDA's caching allocator would otherwise keep it reserved.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use abi_stable::std_types::{RResult, RSlice, RString, RVec};
use switchyard_core::abi::{
    kv, Backend, BackendConfig, BackendError, BackendInfo, DType, ModelInfo, ModelSpec, Tensor, TensorView,
};
use switchyard_core::guard::guard;
use switchyard_core::memory::{RELEASED_BYTES_KEY, RELEASES_KEY};
use switchyard_plugin_sdk::PluginError;

use crate::gpu::{cuda_flags_report, GpuDevice, GpuError};
use crate::model::{dtype_name, parse_dtype, TorchModel};
use crate::TorchError;

/// TorchScript models on one device.
pub struct TorchBackend {
    device: tch::Device,
    label: String,
    dtype: Option<DType>,
    models: RwLock<HashMap<u64, Arc<TorchModel>>>,
    next_handle: AtomicU64,
    gpu: GpuDevice,
    releases: Releases,
}

/// What the cache releases after unloads did.
#[derive(Default)]
struct Releases {
    count: AtomicU64,
    bytes: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl TorchBackend {
    /// A backend on `device` (reported as `label`), applying the host's
    /// thread count and the `dtype` option (`default_dtype` when unset).
    pub fn new(
        config: &BackendConfig,
        device: tch::Device,
        label: String,
        default_dtype: &str,
    ) -> Result<Self, PluginError> {
        if config.threads > 0 {
            tch::set_num_threads(config.threads as i32);
        }
        let dtype = parse_dtype(config.get("dtype").unwrap_or(default_dtype))?;
        Ok(TorchBackend {
            device,
            label,
            dtype,
            models: RwLock::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            gpu: GpuDevice::of(device),
            releases: Releases::default(),
        })
    }

    /// Empties the allocator's cache after an unload. A failure does not
    /// fail the unload (the model is gone either way); `info` reports it.
    fn release_cache(&self) {
        let outcome = self.gpu.release_cache();
        let mut last_error = self.releases.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(bytes) => {
                self.releases.count.fetch_add(1, Ordering::Relaxed);
                self.releases.bytes.fetch_add(bytes, Ordering::Relaxed);
                *last_error = None;
            }
            Err(GpuError::NotAGpu { .. }) => {}
            Err(e) => *last_error = Some(e.to_string()),
        }
    }

    /// The device facts of `info`: memory figures, cache releases, CUDA switches.
    fn gpu_report(&self) -> Vec<(String, String)> {
        if self.gpu == GpuDevice::Cpu {
            return Vec::new();
        }
        let mut out = self.gpu.memory_report();
        out.push((RELEASES_KEY.into(), self.releases.count.load(Ordering::Relaxed).to_string()));
        out.push((RELEASED_BYTES_KEY.into(), self.releases.bytes.load(Ordering::Relaxed).to_string()));
        if let Some(e) = self.releases.last_error.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            out.push(("allocator_cache_release_error".into(), e.clone()));
        }
        if matches!(self.gpu, GpuDevice::Cuda(_)) {
            out.extend(cuda_flags_report());
        }
        out
    }

    fn load(&self, spec: &ModelSpec) -> Result<ModelInfo, TorchError> {
        let path = Path::new(spec.path.as_str());
        if !path.is_file() {
            return Err(PluginError::ModelNotFound { path: spec.path.to_string() }.into());
        }
        if spec.format.as_str() != "torchscript" {
            return Err(PluginError::UnknownFormat { format: spec.format.to_string() }.into());
        }
        let option = |key: &str| spec.options.iter().find(|kv| kv.0.as_str() == key).map(|kv| kv.1.as_str());
        let dtype = match option("dtype") {
            Some(raw) => parse_dtype(raw)?,
            None => self.dtype,
        };
        if let Some(exported) = option("dtypes") {
            let listed = exported.split(',').map(parse_dtype).any(|d| matches!(d, Ok(d) if d == dtype));
            if !listed {
                return Err(TorchError::DtypeNotExported {
                    path: spec.path.to_string(),
                    dtype: dtype_name(dtype),
                    exported: exported.to_string(),
                    hint: option("export_hint").unwrap_or("re-export the model for it, or set `DTYPE=float32`").into(),
                });
            }
        }
        let bf16_asked = match option("fp32_matmul").map(str::trim) {
            None | Some("" | "float32" | "ieee") => false,
            Some("bf16" | "bfloat16") => true,
            Some(other) => {
                return Err(PluginError::BadInput {
                    index: 0,
                    reason: format!("`fp32_matmul={other}` is not a precision; use float32 or bf16"),
                }
                .into())
            }
        };
        if bf16_asked && self.device != tch::Device::Cpu {
            return Err(TorchError::Bf16MatmulOnGpu { model: spec.name.to_string(), device: self.label.clone() });
        }
        // Without AMX oneDNN's bf16 mode computes float32 anyway, slower than libtorch's own
        // float32 GEMMs (src/precision.rs): there the model runs exact float32.
        let bf16_matmul = bf16_asked && crate::precision::amx_bf16();
        let model = TorchModel::load(&spec.name, path, self.device, dtype, bf16_matmul)?;
        let mut extra = Vec::new();
        if bf16_matmul {
            let note = "float32 matmuls and convolutions take bfloat16 inputs (oneDNN on AMX), \
                        float32 accumulation: close to, not equal to, float32";
            extra.push(("precision".to_string(), note.to_string()));
        } else if bf16_asked {
            let note = "bf16 matmul inputs were asked for, but oneDNN has no AMX-BF16 here (the CPU lacks it, \
                        or ONEDNN_MAX_CPU_ISA caps it): running exact float32, as CLIP_ENGINE=torchscript does, \
                        because oneDNN's bf16 mode computes float32 without AMX and 23-25% slower";
            extra.push(("precision".to_string(), note.to_string()));
        }
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.models.write().unwrap_or_else(|p| p.into_inner()).insert(handle, Arc::new(model));
        Ok(ModelInfo {
            handle,
            engine: "torchscript".into(),
            device: self.label.as_str().into(),
            inputs: RVec::new(),
            outputs: RVec::new(),
            extra: kv(extra),
        })
    }

    fn model(&self, handle: u64) -> Result<Arc<TorchModel>, PluginError> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        models.get(&handle).cloned().ok_or(PluginError::UnknownHandle { handle })
    }
}

impl Backend for TorchBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            device: RString::from(self.label.as_str()),
            onnx_providers: RVec::new(),
            extra: kv([
                ("torch_dtype".to_string(), format!("{:?}", self.dtype.unwrap_or(DType::F32))),
                ("torch_threads".to_string(), tch::get_num_threads().to_string()),
            ]
            .into_iter()
            .chain(self.gpu_report())),
        }
    }

    fn load_model(&self, spec: &ModelSpec) -> RResult<ModelInfo, BackendError> {
        guard("load_model", || self.load(spec).map_err(Into::into))
    }

    fn run(&self, model: u64, inputs: RSlice<'_, TensorView<'_>>) -> RResult<RVec<Tensor>, BackendError> {
        guard("run", || {
            let model = self.model(model)?;
            Ok(RVec::from(model.run(inputs.as_slice()).map_err(BackendError::from)?))
        })
    }

    fn unload(&self, model: u64) -> RResult<(), BackendError> {
        guard("unload", || {
            let removed = self.models.write().unwrap_or_else(|p| p.into_inner()).remove(&model);
            let removed = removed.ok_or_else(|| BackendError::from(PluginError::UnknownHandle { handle: model }))?;
            // The weights go back to the allocator here (unless a call still holds the model)...
            drop(removed);
            // ...and from its cache to the driver here.
            self.release_cache();
            Ok(())
        })
    }

    fn health(&self) -> RResult<(), BackendError> {
        guard("health", || {
            let t = tch::Tensor::f_ones([2], (tch::Kind::Float, self.device))
                .and_then(|t| t.f_sum(tch::Kind::Float))
                .and_then(|t| t.f_double_value(&[]))
                .map_err(|e| BackendError::unavailable(format!("{} is not healthy: {e}", self.label)))?;
            if t == 2.0 {
                Ok(())
            } else {
                Err(BackendError::internal(format!("{} computed 1+1={t}", self.label)))
            }
        })
    }
}
