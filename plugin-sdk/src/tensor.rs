//! Checks and helpers for the ABI's tensors, for any backend (the tch
//! conversions live in switchyard-torch, ORT's in switchyard-engine).
//!
//! Inputs arrive as borrowed bytes that ORT reads in place when they are
//! aligned; outputs are copied once into an `RVec` owned by the caller.

use abi_stable::std_types::RVec;
use switchyard_core::abi::{DType, Tensor, TensorView};

use crate::PluginError;

/// Checks a view's dtype and that its byte length matches its shape.
pub fn validate(index: usize, view: &TensorView<'_>) -> Result<DType, PluginError> {
    let bad = |reason: String| PluginError::BadInput { index, reason };
    let dtype = view.dtype.dtype().ok_or_else(|| bad(format!("unknown dtype code {}", view.dtype.0)))?;
    if view.shape.iter().any(|d| *d < 0) {
        return Err(bad(format!("negative dimension in shape {:?}", view.shape.as_slice())));
    }
    let numel = view.shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d as usize));
    let expected = numel.and_then(|n| n.checked_mul(dtype.size()));
    if expected != Some(view.data.len()) {
        return Err(bad(format!(
            "shape {:?} of {dtype:?} needs {expected:?} bytes, got {}",
            view.shape.as_slice(),
            view.data.len()
        )));
    }
    Ok(dtype)
}

/// Copies `values` into an owned f32 ABI tensor (outputs, tests).
pub fn from_f32(shape: &[i64], values: &[f32]) -> Tensor {
    Tensor {
        dtype: DType::F32.code(),
        shape: RVec::from(shape.to_vec()),
        data: RVec::from(bytemuck::cast_slice::<f32, u8>(values).to_vec()),
    }
}

/// Copies `values` into an owned i64 ABI tensor.
pub fn from_i64(shape: &[i64], values: &[i64]) -> Tensor {
    Tensor {
        dtype: DType::I64.code(),
        shape: RVec::from(shape.to_vec()),
        data: RVec::from(bytemuck::cast_slice::<i64, u8>(values).to_vec()),
    }
}
