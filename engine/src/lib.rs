//! switchyard-engine: runs ONNX models with ort on one device and hands
//! TorchScript models to the plugin's torch companion. Linked only by the
//! plugins (`backend-cpu`, `backend-cuda`, `backend-mps`) and their
//! companions, never by the host; it links no ML runtime itself (ONNX
//! Runtime is loaded on first use, libtorch lives in the companion).
//!
//! A plugin is thin: it implements [`plugin::Flavor`] (what device, how to
//! probe it) and calls [`export_plugin!`]; everything else (model table,
//! tensor checks, ORT loading, the companion link, panic barriers) lives
//! here once.

pub mod backend;
pub mod common;
pub mod companion;
pub mod error;
pub mod onnx;
pub mod plugin;
pub mod providers;
pub mod runtimes;
pub mod tensor;

pub use error::EngineError;
