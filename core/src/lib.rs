//! switchyard-core: what the host and every plugin agree on, and nothing that
//! needs an ML runtime.
//!
//! - [`abi`]: the stable plugin ABI (root module, `Backend` trait, tensors,
//!   errors) that crosses the cdylib boundary through abi_stable.
//! - [`companion`]: how a plugin's torch companion is named and found.
//! - [`guard`]: the panic barrier every exported function goes through, so a
//!   plugin can never take the host down with a panic.
//! - [`runtimes`]: where libtorch and ONNX Runtime are found on the machine a
//!   plugin lands on (settings, Python environment, bundled, system).
//! - [`memory`]: device memory figures and GPU settings as keys of a
//!   backend's info (what `/info`, `/metrics` and run metadata report).
//! - [`device`]: device kinds and the `DEVICE` spec parser.
//! - [`settings`]: parsing of the other selection variables (`FORCE_CPU`,
//!   `ONNX_PROVIDERS`).
//! - [`select`]: the device selection policy, a pure function of settings and
//!   probe results.
//!
//! The host links this crate and never links tch or ort; plugins link it
//! through `switchyard-engine`.

pub mod abi;
pub mod companion;
pub mod device;
pub mod guard;
pub mod memory;
pub mod runtimes;
pub mod select;
pub mod settings;

pub use abi::{AbiVersion, ABI_VERSION};
pub use device::{DeviceKind, DeviceSpec};
