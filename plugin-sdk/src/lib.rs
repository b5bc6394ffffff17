//! switchyard-plugin-sdk: what makes a cdylib a switchyard plugin, and
//! nothing that runs a model. A backend for another vendor's runtime, or a
//! torch companion, depends on this crate (and switchyard-core) alone; it
//! links no ML runtime and no `ort`.
//!
//! - [`plugin`]: the [`plugin::Flavor`] trait (which device, how to probe
//!   and open it) and [`export_plugin!`], which exports the abi_stable root
//!   module with every call behind the panic barrier and the build facts
//!   collected from the plugin crate's build script;
//! - [`device`]: probe answers every flavor of a device kind gives alike;
//! - [`tensor`]: checks of the ABI's borrowed tensors, and owned outputs;
//! - [`error`]: the failures every backend shares and their ABI error kinds.
//!
//! The ONNX Runtime engine that the three shipped plugins use is
//! switchyard-engine, built on this crate.

pub mod device;
pub mod error;
pub mod plugin;
pub mod tensor;

pub use error::PluginError;
