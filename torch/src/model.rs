//! TorchScript models through tch (libtorch), on the plugin's device.
//!
//! Models are loaded straight onto the device and switched to eval mode;
//! every call runs under no-grad. An optional dtype (float16/bfloat16)
//! converts the module's float weights and buffers once at load and float
//! inputs per call; outputs go back as float32. That is all a graph without
//! dtype constants needs to run in that dtype (the CLIP exports since format
//! 3, tools/clip_common.py); one with frozen casts to float32 fails with
//! "mixed dtype", which the `dtypes` spec option catches at load
//! (crate::backend).

use std::path::Path;

use switchyard_core::abi::{DType, Tensor, TensorView};

use switchyard_plugin_sdk::tensor::validate;
use switchyard_plugin_sdk::PluginError;

use crate::tensor::{from_tch, tch_kind};
use crate::TorchError;

/// A loaded TorchScript module.
pub struct TorchModel {
    name: String,
    module: tch::CModule,
    device: tch::Device,
    float_kind: tch::Kind,
    /// oneDNN bf16 matmul inputs for this model's float32 matmuls (CPU only; [`crate::precision`]).
    bf16_matmul: bool,
}

impl TorchModel {
    /// Loads `path` onto `device`, converting float weights to `dtype` when given.
    /// `bf16_matmul`: run its float32 matmuls with bfloat16 inputs (the CPU only).
    pub fn load(
        name: &str,
        path: &Path,
        device: tch::Device,
        dtype: Option<DType>,
        bf16_matmul: bool,
    ) -> Result<Self, TorchError> {
        let torch_err = |source| TorchError::Torch { during: "loading", model: name.to_string(), source };
        let mut module = tch::CModule::load_on_device(path, device).map_err(torch_err)?;
        module.f_set_eval().map_err(torch_err)?;
        let float_kind = dtype.map(tch_kind).unwrap_or(tch::Kind::Float);
        if float_kind != tch::Kind::Float {
            module.to(device, float_kind, false);
        }
        Ok(TorchModel { name: name.to_string(), module, device, float_kind, bf16_matmul })
    }

    /// Runs `forward` on the inputs; returns every tensor the module returned, flattened.
    pub fn run(&self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>, TorchError> {
        let torch_err = |source| TorchError::Torch { during: "running", model: self.name.clone(), source };
        let _no_grad = tch::no_grad_guard();
        let mut ivalues = Vec::with_capacity(inputs.len());
        for (index, view) in inputs.iter().enumerate() {
            let dtype = validate(index, view)?;
            let mut t = tch::Tensor::f_from_data_size(view.data.as_slice(), view.shape.as_slice(), tch_kind(dtype))
                .map_err(torch_err)?;
            if dtype == DType::F32 && self.float_kind != tch::Kind::Float {
                t = t.f_to_kind(self.float_kind).map_err(torch_err)?;
            }
            if self.device != tch::Device::Cpu {
                t = t.f_to_device(self.device).map_err(torch_err)?;
            }
            ivalues.push(tch::IValue::Tensor(t));
        }
        let out = if self.device == tch::Device::Cpu {
            crate::precision::with_precision(self.bf16_matmul, || self.module.forward_is(&ivalues))
                .map_err(|source| TorchError::Precision { model: self.name.clone(), source })?
        } else {
            self.module.forward_is(&ivalues)
        }
        .map_err(torch_err)?;
        let mut tensors = Vec::new();
        self.flatten(out, &mut tensors)?;
        // Half-precision outputs go back as float32: the host's pipelines read f32.
        let widen = |t: &tch::Tensor| match t.f_kind()? {
            tch::Kind::Half | tch::Kind::BFloat16 => t.f_to_kind(tch::Kind::Float),
            _ => Ok(t.shallow_clone()),
        };
        tensors.iter().map(|t| widen(t).and_then(|t| from_tch(&t))).collect::<Result<_, _>>().map_err(torch_err)
    }

    fn flatten(&self, value: tch::IValue, out: &mut Vec<tch::Tensor>) -> Result<(), TorchError> {
        match value {
            tch::IValue::Tensor(t) => out.push(t),
            tch::IValue::TensorList(ts) => out.extend(ts),
            tch::IValue::Tuple(vs) | tch::IValue::GenericList(vs) => {
                for v in vs {
                    self.flatten(v, out)?;
                }
            }
            other => {
                let what = format!("{other:?}");
                return Err(PluginError::UnsupportedOutput { model: self.name.clone(), what }.into());
            }
        }
        Ok(())
    }
}

/// The option spelling of a parsed dtype (`float32` for `None`).
pub fn dtype_name(dtype: Option<DType>) -> &'static str {
    match dtype {
        Some(DType::F16) => "float16",
        Some(DType::BF16) => "bfloat16",
        _ => "float32",
    }
}

/// Parses a `dtype` option (`float32`, `float16`, `bfloat16`).
pub fn parse_dtype(raw: &str) -> Result<Option<DType>, PluginError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "" | "float32" | "fp32" | "f32" => Ok(None),
        "float16" | "fp16" | "f16" | "half" => Ok(Some(DType::F16)),
        "bfloat16" | "bf16" => Ok(Some(DType::BF16)),
        other => Err(PluginError::BadInput {
            index: 0,
            reason: format!("`DTYPE={other}` is not a dtype; use float32, float16 or bfloat16"),
        }),
    }
}
