//! The one `Backend` implementation every plugin shares: a table of loaded
//! models (TorchScript or ONNX) on one device.
//!
//! Every method runs through [`switchyard_core::guard::guard`], so a panic in
//! tch or ort comes back to the host as a `Panicked` error.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use abi_stable::std_types::{RResult, RSlice, RString, RVec};
use switchyard_core::abi::{kv, Backend, BackendError, BackendInfo, DType, ModelInfo, ModelSpec, Tensor, TensorView};
use switchyard_core::guard::guard;

use crate::onnx::{OnnxModel, OnnxOptions};
use crate::torch::{parse_dtype, TorchModel};
use crate::EngineError;

enum Model {
    Torch(TorchModel),
    Onnx(OnnxModel),
}

/// How an [`EngineBackend`] is set up by its plugin.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The libtorch device.
    pub device: tch::Device,
    /// The device as reported, e.g. `cuda:0`.
    pub label: String,
    /// Default dtype for TorchScript float weights (`None`: float32).
    pub torch_dtype: Option<DType>,
    /// ORT settings, including the execution providers to try.
    pub onnx: OnnxOptions,
}

/// A backend on one device.
pub struct EngineBackend {
    config: EngineConfig,
    models: RwLock<HashMap<u64, Arc<Model>>>,
    next_handle: AtomicU64,
}

impl EngineBackend {
    /// Creates an empty backend.
    pub fn new(config: EngineConfig) -> Self {
        EngineBackend { config, models: RwLock::new(HashMap::new()), next_handle: AtomicU64::new(1) }
    }

    fn load(&self, spec: &ModelSpec) -> Result<ModelInfo, EngineError> {
        let path = Path::new(spec.path.as_str());
        if !path.is_file() {
            return Err(EngineError::ModelNotFound { path: spec.path.to_string() });
        }
        let option = |key: &str| spec.options.iter().find(|kv| kv.0.as_str() == key).map(|kv| kv.1.to_string());
        let (model, info) = match spec.format.as_str() {
            "torchscript" => {
                let dtype = match option("dtype") {
                    Some(raw) => parse_dtype(&raw)?,
                    None => self.config.torch_dtype,
                };
                let model = TorchModel::load(&spec.name, path, self.config.device, dtype)?;
                (Model::Torch(model), ("torchscript", self.config.label.clone(), RVec::new(), RVec::new(), RVec::new()))
            }
            "onnx" => {
                let model = OnnxModel::load(&spec.name, path, &self.config.onnx)?;
                let device = model.registered.provider.ort_name().to_string();
                let notes = kv(model.registered.skipped.iter().map(|(p, why)| (format!("skipped {p}"), why.clone())));
                let (i, o) = (RVec::from(model.inputs.clone()), RVec::from(model.outputs.clone()));
                (Model::Onnx(model), ("onnx", device, i, o, notes))
            }
            other => return Err(EngineError::UnknownFormat { format: other.to_string() }),
        };
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.models.write().unwrap_or_else(|p| p.into_inner()).insert(handle, Arc::new(model));
        let (engine, device, inputs, outputs, extra) = info;
        Ok(ModelInfo { handle, engine: engine.into(), device: device.into(), inputs, outputs, extra })
    }

    fn model(&self, handle: u64) -> Result<Arc<Model>, EngineError> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        models.get(&handle).cloned().ok_or(EngineError::UnknownHandle { handle })
    }
}

impl Backend for EngineBackend {
    fn info(&self) -> BackendInfo {
        // Which provider ONNX models will get: the first of the plan this
        // ONNX Runtime build has (registration can still fail per session;
        // ModelInfo then says so). Loading ORT here is cheap (~50 ms, once).
        let onnx = match crate::onnx::environment(self.config.onnx.ort_dylib.as_deref()) {
            Ok(_) => {
                let compiled = crate::providers::compiled_in();
                let runs_on = self.config.onnx.providers.iter().find(|p| compiled.contains(p));
                let names: Vec<&str> = compiled.iter().map(|p| p.ort_name()).collect();
                vec![
                    ("onnx_runs_on", runs_on.map(|p| p.ort_name()).unwrap_or("CPUExecutionProvider").to_string()),
                    ("onnx_providers_compiled_in", names.join(",")),
                ]
            }
            Err(e) => vec![("onnx_unavailable", crate::error::describe(e))],
        };
        let mut extra = vec![
            ("torch_dtype", format!("{:?}", self.config.torch_dtype.unwrap_or(DType::F32))),
            ("threads", self.config.onnx.threads.to_string()),
        ];
        extra.extend(onnx);
        BackendInfo {
            device: RString::from(self.config.label.as_str()),
            onnx_providers: self.config.onnx.providers.iter().map(|p| RString::from(p.ort_name())).collect(),
            extra: kv(extra),
        }
    }

    fn load_model(&self, spec: &ModelSpec) -> RResult<ModelInfo, BackendError> {
        guard("load_model", || self.load(spec).map_err(Into::into))
    }

    fn run(&self, model: u64, inputs: RSlice<'_, TensorView<'_>>) -> RResult<RVec<Tensor>, BackendError> {
        guard("run", || {
            let outputs = match &*self.model(model)? {
                Model::Torch(m) => m.run(inputs.as_slice())?,
                Model::Onnx(m) => m.run(inputs.as_slice())?,
            };
            Ok(RVec::from(outputs))
        })
    }

    fn unload(&self, model: u64) -> RResult<(), BackendError> {
        guard("unload", || {
            let removed = self.models.write().unwrap_or_else(|p| p.into_inner()).remove(&model);
            removed.map(drop).ok_or_else(|| EngineError::UnknownHandle { handle: model }.into())
        })
    }

    fn health(&self) -> RResult<(), BackendError> {
        guard("health", || {
            let t = tch::Tensor::f_ones([2], (tch::Kind::Float, self.config.device))
                .and_then(|t| t.f_sum(tch::Kind::Float))
                .and_then(|t| t.f_double_value(&[]))
                .map_err(|e| BackendError::unavailable(format!("{} is not healthy: {e}", self.config.label)))?;
            if t == 2.0 {
                Ok(())
            } else {
                Err(BackendError::internal(format!("{} computed 1+1={t}", self.config.label)))
            }
        })
    }
}
