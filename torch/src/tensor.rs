//! Conversions between the ABI's tensors and tch tensors.
//!
//! Inputs arrive as borrowed bytes and libtorch copies them once into its own
//! storage (on the target device); outputs are copied once into an `RVec`
//! owned by the caller.

use abi_stable::std_types::RVec;
use switchyard_core::abi::{DType, Tensor};

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
