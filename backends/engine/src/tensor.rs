//! Conversions between the ABI's tensors and tch / ort tensors.
//!
//! Inputs arrive as borrowed bytes; libtorch copies them once into its own
//! storage (on the target device), ORT reads them in place when they are
//! aligned. Outputs are copied once into an `RVec` owned by the caller.

use abi_stable::std_types::RVec;
use switchyard_core::abi::{DType, Tensor, TensorView};

use crate::EngineError;

/// Checks a view's dtype and that its byte length matches its shape.
pub fn validate(index: usize, view: &TensorView<'_>) -> Result<DType, EngineError> {
    let bad = |reason: String| EngineError::BadInput { index, reason };
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

/// The tch kind for a dtype.
pub fn tch_kind(dtype: DType) -> tch::Kind {
    match dtype {
        DType::F32 => tch::Kind::Float,
        DType::F16 => tch::Kind::Half,
        DType::BF16 => tch::Kind::BFloat16,
        DType::I64 => tch::Kind::Int64,
        DType::I32 => tch::Kind::Int,
        DType::U8 => tch::Kind::Uint8,
    }
}

/// The ABI dtype for a tch kind, if it has one.
pub fn from_tch_kind(kind: tch::Kind) -> Option<DType> {
    Some(match kind {
        tch::Kind::Float => DType::F32,
        tch::Kind::Half => DType::F16,
        tch::Kind::BFloat16 => DType::BF16,
        tch::Kind::Int64 => DType::I64,
        tch::Kind::Int => DType::I32,
        tch::Kind::Uint8 => DType::U8,
        _ => return None,
    })
}

/// Copies a tch tensor (any device) into an owned ABI tensor.
pub fn from_tch(t: &tch::Tensor) -> Result<Tensor, tch::TchError> {
    let t = t.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
    let (t, dtype) = match from_tch_kind(t.f_kind()?) {
        Some(d) => (t, d),
        None => (t.f_to_kind(tch::Kind::Float)?, DType::F32),
    };
    let numel = t.numel();
    let mut data = vec![0u8; numel * dtype.size()];
    t.f_copy_data_u8(&mut data, numel)?;
    Ok(Tensor { dtype: dtype.code(), shape: RVec::from(t.size()), data: RVec::from(data) })
}

/// Copies `values` into an owned f32 ABI tensor (helper for ORT outputs and tests).
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
