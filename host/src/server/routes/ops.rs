//! Operational routes: liveness, readiness, the device report, metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::runtime::gpu_report;
use crate::server::error::ApiError;
use crate::server::face_service::FaceService;
use crate::server::state::AppState;

/// `GET /health`: the process answers.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: 200 once the models are loaded and warmed up, 503 before,
/// and 503 `backend_stuck` while a model worker is stuck in a device call.
pub async fn ready(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    state.models()?.check_healthy()?;
    Ok(Json(json!({"status": "ready"})))
}

/// `GET /info`: the device report, the models and the serving settings.
pub async fn info(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let models = state.models()?;
    let report = &models.runtime.report;
    // Batches per device and model (text and image batches both count for clip).
    let mut served_by = json!({"clip": models.clip_devices.report()});
    if let FaceService::Ready(f) = &models.faces {
        served_by["faces"] = f.devices.report();
    }
    // Live facts (the runtimes load with the first model; memory moves with every call).
    let live = models.runtime.backend.info().extra;
    let mut out = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "platform": report.platform,
        "machine": report.machine,
        "device": report.device,
        "reason": report.reason,
        "rejected": report.rejected,
        "plugin_path": report.plugin_path,
        "plugin_sha256": report.plugin_sha256,
        "plugin": report.plugin,
        "pid": std::process::id(),
        "swaps": state.swap.history,
        "hardware": report.hardware,
        "onnx_providers": report.onnx_providers,
        "backend_extra": report.backend_extra,
        // What each runtime's file is and which rule found it, now (they load with the first model).
        "runtimes": runtimes(&live),
        "startup_ms": report.startup_ms,
        "fallback": models.fallback.as_ref().map(|f| &f.report),
        "served_by": served_by,
        "models": models.report,
        "residency": models.residency(),
        "immich": models.immich.report(),
        "model_idle_ttl_s": state.config.model_idle_ttl_s,
        "random_weights": models.report.iter().any(|m| m.random_weights()),
        "batching": state.config.batch,
        "limits": state.config.limits,
        "faces": state.config.faces,
        "connections": state.config.connections,
    });
    for (key, value) in gpu_report::info_fields(&live) {
        out[key] = value;
    }
    Ok(Json(out))
}

/// `GET /metrics`: Prometheus text format, with the device memory gauges
/// of the backend in use once it is up.
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    if let Ok(models) = state.models() {
        gpu_report::render_metrics(&mut text, &gpu_report::memory(&models.runtime.backend.info().extra));
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// The `libtorch_*` / `onnxruntime_*` facts of a backend's info, as an object per runtime.
fn runtimes(extra: &switchyard_core::abi::KeyValues) -> Value {
    let mut out = serde_json::Map::new();
    for rt in ["libtorch", "onnxruntime"] {
        let facts: serde_json::Map<String, Value> = extra
            .iter()
            .filter_map(|kv| {
                kv.0.as_str()
                    .strip_prefix(rt)
                    .and_then(|k| k.strip_prefix('_'))
                    .map(|k| (k.to_string(), json!(kv.1.as_str())))
            })
            .collect();
        out.insert(rt.to_string(), Value::Object(facts));
    }
    Value::Object(out)
}
