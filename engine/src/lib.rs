//! switchyard-engine: runs ONNX models with ort on one device and hands
//! TorchScript models to the plugin's torch companion. Linked only by the
//! plugins (`backend-cpu`, `backend-cuda`, `backend-mps`), never by the host
//! nor by the companions; it links no ML runtime itself (ONNX Runtime is
//! loaded on first use, libtorch lives in the companion).
//!
//! A plugin is thin: it implements switchyard-plugin-sdk's `Flavor` (what
//! device, how to probe it) and calls its `export_plugin!` with
//! [`EngineFacts`]; the model table, ORT loading, the runtime search and
//! the companion link live here once.

pub mod backend;
pub mod common;
pub mod companion;
pub mod error;
pub mod onnx;
pub mod providers;
pub mod runtimes;

pub use error::EngineError;

use switchyard_core::abi::BackendConfig;
use switchyard_core::DeviceKind;

/// What an engine plugin adds to the SDK's `describe` and `probe`: the file
/// name of its torch companion and the ONNX Runtime C API it needs; where
/// each runtime would come from (or why it is missing), this library's own
/// view.
pub struct EngineFacts;

impl switchyard_plugin_sdk::plugin::Facts for EngineFacts {
    fn build(kind: DeviceKind) -> Vec<(&'static str, String)> {
        vec![
            ("torch_companion", companion::file_name(kind)),
            ("onnxruntime_api", runtimes::ORT_API_VERSION.to_string()),
        ]
    }

    fn probe(config: &BackendConfig) -> Vec<(String, String)> {
        runtimes::report(config.get("ort_dylib"))
    }
}
