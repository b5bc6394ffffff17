//! Small helpers shared across the host.

use std::time::Duration;

/// Serializes a duration as fractional milliseconds.
pub fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

pub use switchyard_core::guard::error_chain;

/// Scales a vector to unit length (a zero vector stays zero), in f32 as numpy does.
pub fn l2_normalize(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

/// Logs what the plugin noted while loading a model (e.g. execution providers
/// skipped, with the reason), so an operator sees why a model runs where it runs.
pub fn log_model_notes(model: &str, info: &switchyard_core::abi::ModelInfo) {
    tracing::info!(model, engine = %info.engine, runs_on = %info.device, "model loaded");
    for (key, value) in switchyard_core::abi::kv_to_vec(&info.extra) {
        tracing::warn!(model, "{key}: {value}");
    }
}
