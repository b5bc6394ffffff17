//! switchyard-engine: runs TorchScript models with tch and ONNX models with
//! ort on one device. Linked only by the plugins (`backend-cpu`,
//! `backend-cuda`, `backend-mps`), never by the host.
//!
//! A plugin is thin: it implements [`plugin::Flavor`] (what device, how to
//! probe it) and calls [`export_plugin!`]; everything else (model table,
//! tensor conversion, ORT loading, panic barriers) lives here once.

pub mod backend;
pub mod common;
pub mod error;
pub mod onnx;
pub mod plugin;
pub mod providers;
pub mod tensor;
pub mod torch;

pub use error::EngineError;
