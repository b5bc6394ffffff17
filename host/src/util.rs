//! Small helpers shared across the host.

use std::time::Duration;

/// Serializes a duration as fractional milliseconds.
pub fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

/// An error and all its sources, joined with ": " (skipping repeats).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// Logs what the plugin noted while loading a model (e.g. execution providers
/// skipped, with the reason), so an operator sees why a model runs where it runs.
pub fn log_model_notes(model: &str, info: &switchyard_core::abi::ModelInfo) {
    tracing::info!(model, engine = %info.engine, runs_on = %info.device, "model loaded");
    for (key, value) in switchyard_core::abi::kv_to_vec(&info.extra) {
        tracing::warn!(model, "{key}: {value}");
    }
}
