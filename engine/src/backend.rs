//! The one `Backend` implementation every plugin shares: a table of loaded
//! models on one device. ONNX models run here through ort; TorchScript models
//! are handed to the plugin's torch companion ([`crate::companion`]), opened
//! on the first one.
//!
//! Every method runs through [`switchyard_core::guard::guard`], so a panic in
//! ort comes back to the host as a `Panicked` error (the companion has its
//! own barrier).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use abi_stable::std_types::{RResult, RSlice, RString, RVec};
use switchyard_core::abi::{kv, Backend, BackendError, BackendInfo, ModelInfo, ModelSpec, Tensor, TensorView};
use switchyard_core::guard::guard;

use crate::companion::TorchLink;
use crate::onnx::{OnnxModel, OnnxOptions};
use crate::EngineError;
use switchyard_plugin_sdk::PluginError;

enum Model {
    /// A TorchScript model: its handle in the companion's backend.
    Torch(u64),
    Onnx(OnnxModel),
}

/// How an [`EngineBackend`] is set up by its plugin.
pub struct EngineConfig {
    /// The device as reported, e.g. `cuda:0`.
    pub label: String,
    /// ORT settings, including the execution providers to try.
    pub onnx: OnnxOptions,
    /// The torch companion (TorchScript models, libtorch's health check).
    pub torch: TorchLink,
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

    fn load(&self, spec: &ModelSpec) -> Result<ModelInfo, BackendError> {
        let path = Path::new(spec.path.as_str());
        if !path.is_file() {
            return Err(PluginError::ModelNotFound { path: spec.path.to_string() }.into());
        }
        let (model, mut info) = match spec.format.as_str() {
            "torchscript" => {
                let info = self.config.torch.backend()?.load_model(spec).into_result()?;
                (Model::Torch(info.handle), info)
            }
            "onnx" => {
                let model = OnnxModel::load(&spec.name, path, &self.config.onnx)?;
                let info = ModelInfo {
                    handle: 0,
                    engine: "onnx".into(),
                    device: model.registered.provider.ort_name().into(),
                    inputs: RVec::from(model.inputs.clone()),
                    outputs: RVec::from(model.outputs.clone()),
                    extra: kv(model.registered.skipped.iter().map(|(p, why)| (format!("skipped {p}"), why.clone()))),
                };
                (Model::Onnx(model), info)
            }
            other => return Err(PluginError::UnknownFormat { format: other.to_string() }.into()),
        };
        info.handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.models.write().unwrap_or_else(|p| p.into_inner()).insert(info.handle, Arc::new(model));
        Ok(info)
    }

    fn model(&self, handle: u64) -> Result<Arc<Model>, EngineError> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        models.get(&handle).cloned().ok_or_else(|| PluginError::UnknownHandle { handle }.into())
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
                    ("onnx_runs_on".into(), runs_on.map(|p| p.ort_name()).unwrap_or("CPUExecutionProvider").into()),
                    ("onnx_providers_compiled_in".into(), names.join(",")),
                ]
            }
            Err(e) => vec![("onnx_unavailable".into(), crate::error::describe(e))],
        };
        let mut extra: Vec<(String, String)> = vec![("threads".into(), self.config.onnx.threads.to_string())];
        extra.extend(onnx);
        match self.config.torch.opened() {
            Some(torch) => {
                extra.push(("torch_loaded".into(), "true".into()));
                extra.extend(torch.info().extra.iter().map(|kv| (kv.0.to_string(), kv.1.to_string())));
            }
            None => extra.push(("torch_loaded".into(), "false".into())),
        }
        extra.extend(crate::runtimes::report(self.config.onnx.ort_dylib.as_deref()));
        BackendInfo {
            device: RString::from(self.config.label.as_str()),
            onnx_providers: self.config.onnx.providers.iter().map(|p| RString::from(p.ort_name())).collect(),
            extra: kv(extra),
        }
    }

    fn load_model(&self, spec: &ModelSpec) -> RResult<ModelInfo, BackendError> {
        guard("load_model", || self.load(spec))
    }

    fn run(&self, model: u64, inputs: RSlice<'_, TensorView<'_>>) -> RResult<RVec<Tensor>, BackendError> {
        guard("run", || match &*self.model(model)? {
            Model::Torch(inner) => self.config.torch.backend()?.run(*inner, inputs).into_result(),
            Model::Onnx(m) => Ok(RVec::from(m.run(inputs.as_slice())?)),
        })
    }

    fn unload(&self, model: u64) -> RResult<(), BackendError> {
        guard("unload", || {
            let removed = self.models.write().unwrap_or_else(|p| p.into_inner()).remove(&model);
            match removed.as_deref() {
                Some(Model::Torch(inner)) => self.config.torch.backend()?.unload(*inner).into_result(),
                Some(Model::Onnx(_)) => Ok(()),
                None => Err(PluginError::UnknownHandle { handle: model }.into()),
            }
        })
    }

    fn health(&self) -> RResult<(), BackendError> {
        guard("health", || match self.config.torch.opened() {
            // libtorch is in use: ask it to compute on the device.
            Some(torch) => torch.health().into_result(),
            // Only ONNX Runtime: healthy if it loads (once per process).
            None => crate::onnx::environment(self.config.onnx.ort_dylib.as_deref()).map(drop).map_err(|e| {
                BackendError::unavailable(format!(
                    "{} is not healthy: {}",
                    self.config.label,
                    crate::error::describe(e)
                ))
            }),
        })
    }
}
