//! switchyard-torch: the libtorch half of a plugin. TorchScript models run
//! here, through tch, on the plugin's device.
//!
//! Why a separate library: linking libtorch costs ~110 MB of resident memory
//! the moment a library that needs it is loaded (relocations of
//! libtorch_cpu and its static operator registry), even when every model
//! runs on ONNX Runtime. So each plugin (`libbackend_<kind>`) is ONNX Runtime
//! plus routing, and its TorchScript support is a companion cdylib
//! (`libswitchyard_torch_<kind>`, crates `companions/torch-<kind>`) built from
//! this crate and loaded by the plugin only when it needs libtorch
//! (`switchyard_engine::companion`). The companion exports the same root
//! module as a plugin (switchyard-plugin-sdk's `export_plugin!`), so the
//! same abi_stable checks guard that boundary; it depends on the SDK, not on
//! the engine, so no companion links `ort`.
//!
//! What tch does not wrap (the caching allocator's figures and cache
//! release, TF32 and cuDNN settings, oneDNN's float32 precision on the CPU)
//! goes through a small cxx bridge to libtorch's C++ API ([`bridge`], used
//! through [`gpu`] and [`precision`]).

pub mod backend;
pub mod bridge;
pub mod error;
pub mod gpu;
pub mod model;
pub mod precision;
pub mod tensor;

pub use backend::TorchBackend;
pub use error::TorchError;
