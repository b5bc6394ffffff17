//! The stable plugin ABI: what crosses the cdylib boundary.
//!
//! One prefix-type root module per plugin ([`BackendRoot`]); new functions go
//! only after `last_prefix_field`, so an older host can open a newer plugin.
//! The semantic version is explicit ([`ABI_VERSION`]): the host needs an equal
//! major and a plugin minor at least its own. abi_stable additionally checks
//! the type layout when the library is loaded.
//!
//! Values that may grow (error kinds, dtypes) are `u8` newtypes with named
//! constants rather than Rust enums, so a newer plugin returning a new kind
//! does not fail an older host's layout check; they convert into
//! `#[non_exhaustive]` Rust enums on each side.
//!
//! Tensors cross as shape + dtype + a borrowed byte slice in, an owned `RVec`
//! out: at most one copy each way.

// abi_stable's derive and root-module macros generate impls inside consts.
#![allow(non_local_definitions)]

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2};
use abi_stable::{declare_root_module_statics, sabi_trait, StableAbi};

/// An ABI version: the host needs `major` equal and the plugin's `minor` at least its own.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AbiVersion {
    /// Incompatible changes.
    pub major: u32,
    /// Compatible additions (fields after `last_prefix_field`, new constants).
    pub minor: u32,
}

/// The ABI this build of core speaks.
pub const ABI_VERSION: AbiVersion = AbiVersion { major: 1, minor: 0 };

impl AbiVersion {
    /// Whether a host speaking `self` can use a plugin speaking `plugin`.
    pub fn accepts(self, plugin: AbiVersion) -> bool {
        self.major == plugin.major && plugin.minor >= self.minor
    }
}

impl std::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A stable error kind code; see the associated constants and [`ErrorKind`].
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub u8);

/// The kinds of error a plugin returns, as the host sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The device or runtime is not there (no GPU, wrong platform, missing library).
    Unavailable,
    /// The plugin cannot do this (model format, dtype, option).
    Unsupported,
    /// The caller sent something wrong (shape, dtype, handle).
    InvalidInput,
    /// A file or model does not exist.
    NotFound,
    /// The device ran out of memory.
    OutOfMemory,
    /// Anything else went wrong inside the plugin.
    Internal,
    /// The plugin panicked; the panic was caught at the boundary.
    Panicked,
    /// A kind this host does not know (a newer plugin), with its code.
    Other(u8),
}

impl ErrorCode {
    pub const UNAVAILABLE: ErrorCode = ErrorCode(1);
    pub const UNSUPPORTED: ErrorCode = ErrorCode(2);
    pub const INVALID_INPUT: ErrorCode = ErrorCode(3);
    pub const NOT_FOUND: ErrorCode = ErrorCode(4);
    pub const OUT_OF_MEMORY: ErrorCode = ErrorCode(5);
    pub const INTERNAL: ErrorCode = ErrorCode(6);
    pub const PANICKED: ErrorCode = ErrorCode(7);

    /// The Rust-side kind.
    pub fn kind(self) -> ErrorKind {
        match self {
            ErrorCode::UNAVAILABLE => ErrorKind::Unavailable,
            ErrorCode::UNSUPPORTED => ErrorKind::Unsupported,
            ErrorCode::INVALID_INPUT => ErrorKind::InvalidInput,
            ErrorCode::NOT_FOUND => ErrorKind::NotFound,
            ErrorCode::OUT_OF_MEMORY => ErrorKind::OutOfMemory,
            ErrorCode::INTERNAL => ErrorKind::Internal,
            ErrorCode::PANICKED => ErrorKind::Panicked,
            ErrorCode(other) => ErrorKind::Other(other),
        }
    }
}

/// An error crossing the boundary: a stable kind and a message saying what to do.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    /// The kind; see [`ErrorCode::kind`].
    pub code: ErrorCode,
    /// A sentence for the operator.
    pub message: RString,
}

impl BackendError {
    /// Builds an error of the given code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BackendError { code, message: RString::from(message.into()) }
    }
    /// Shorthand for `Unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UNAVAILABLE, message)
    }
    /// Shorthand for `InvalidInput`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::INVALID_INPUT, message)
    }
    /// Shorthand for `Internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::INTERNAL, message)
    }
    /// The Rust-side kind.
    pub fn kind(&self) -> ErrorKind {
        self.code.kind()
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind(), self.message)
    }
}

impl std::error::Error for BackendError {}

/// A stable element type code; see the associated constants and [`DType`].
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DTypeCode(pub u8);

/// Element types, Rust side.
///
/// Exhaustive on purpose: a new dtype is a new core version, and every match
/// in the plugins should be revisited; the ABI code ([`DTypeCode`]) is what
/// stays compatible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DType {
    F32,
    F16,
    BF16,
    I64,
    I32,
    U8,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I64 => 8,
            DType::U8 => 1,
        }
    }
    /// The ABI code.
    pub fn code(self) -> DTypeCode {
        DTypeCode(match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::BF16 => 2,
            DType::I64 => 3,
            DType::I32 => 4,
            DType::U8 => 5,
        })
    }
}

impl DTypeCode {
    /// The Rust-side dtype, or `None` for a code this build does not know.
    pub fn dtype(self) -> Option<DType> {
        Some(match self.0 {
            0 => DType::F32,
            1 => DType::F16,
            2 => DType::BF16,
            3 => DType::I64,
            4 => DType::I32,
            5 => DType::U8,
            _ => return None,
        })
    }
}

/// A tensor lent to the plugin for one call: little-endian bytes, row-major.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct TensorView<'a> {
    pub dtype: DTypeCode,
    pub shape: RSlice<'a, i64>,
    pub data: RSlice<'a, u8>,
}

/// A tensor returned by the plugin, owned by the caller.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Tensor {
    pub dtype: DTypeCode,
    pub shape: RVec<i64>,
    pub data: RVec<u8>,
}

impl Tensor {
    /// Lends this tensor as a view.
    pub fn view(&self) -> TensorView<'_> {
        TensorView { dtype: self.dtype, shape: self.shape.as_rslice(), data: self.data.as_rslice() }
    }
}

/// Key/value pairs: the forward-compatible part of every struct below.
pub type KeyValues = RVec<Tuple2<RString, RString>>;

/// What the host passes to `probe` and `open`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default)]
pub struct BackendConfig {
    /// The GPU index (`cuda:N`); `None` for the first visible / not applicable.
    pub device_index: ROption<u32>,
    /// ONNX execution providers in preference order (ORT names); empty: the plugin's default.
    pub onnx_providers: RVec<RString>,
    /// Intra-op threads for libtorch and ORT; 0: the runtime's default.
    pub threads: u32,
    /// Further settings (e.g. `dtype=float16`, `ort_dylib=/path`).
    pub extra: KeyValues,
}

impl BackendConfig {
    /// Looks up a key in [`BackendConfig::extra`].
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extra.iter().find(|kv| kv.0.as_str() == key).map(|kv| kv.1.as_str())
    }
}

/// What a plugin says about itself without touching any device.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginDescription {
    /// The crate name, e.g. `backend-cuda`.
    pub name: RString,
    /// `cpu`, `cuda` or `mps`.
    pub device_kind: RString,
    /// The plugin's version.
    pub version: RString,
    /// Build info: torch, ORT, CUDA versions, target, profile.
    pub build: KeyValues,
}

/// One device a plugin can see.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Index as used in `cuda:N`.
    pub index: u32,
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: RString,
    /// Total memory in bytes (0 when unknown).
    pub total_memory: u64,
    /// Further facts (compute capability, driver version...).
    pub extra: KeyValues,
}

/// The result of a cheap probe: never loads a model.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct ProbeReport {
    /// Whether `open` can succeed with this config.
    pub available: bool,
    /// Why not (or a short note when available).
    pub reason: RString,
    /// The devices the plugin sees.
    pub devices: RVec<DeviceInfo>,
    /// Further facts (mps_built, ORT providers compiled in...).
    pub extra: KeyValues,
}

/// What to load.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct ModelSpec {
    /// A name for logs and errors, e.g. `clip/ViT-B-32/visual`.
    pub name: RString,
    /// The file.
    pub path: RString,
    /// `torchscript` or `onnx`.
    pub format: RString,
    /// Options, e.g. `dtype=float16`.
    pub options: KeyValues,
}

/// A model's input or output.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: RString,
    pub dtype: DTypeCode,
    /// -1 for a dynamic dimension; empty when unknown (TorchScript).
    pub shape: RVec<i64>,
}

/// A loaded model.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct ModelInfo {
    /// Pass to `run` and `unload`.
    pub handle: u64,
    /// `torchscript` or `onnx`.
    pub engine: RString,
    /// Where it runs, e.g. `cpu`, `cuda:0`, or an ORT provider name.
    pub device: RString,
    pub inputs: RVec<TensorSpec>,
    pub outputs: RVec<TensorSpec>,
    /// Further facts (e.g. execution providers passed over, with the reason).
    pub extra: KeyValues,
}

/// What an open backend says about itself.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct BackendInfo {
    /// e.g. `cpu`, `cuda:0`.
    pub device: RString,
    /// ORT providers this backend will use, in order.
    pub onnx_providers: RVec<RString>,
    pub extra: KeyValues,
}

/// An open backend: loads and runs models on one device.
///
/// Every implementation must catch panics (see [`crate::guard`]).
#[sabi_trait]
pub trait Backend: Send + Sync {
    /// The device and providers in use.
    fn info(&self) -> BackendInfo;

    /// Loads a model; the returned handle is valid until `unload`.
    fn load_model(&self, spec: &ModelSpec) -> RResult<ModelInfo, BackendError>;

    /// Runs a model on the given inputs, in the model's input order.
    fn run(&self, model: u64, inputs: RSlice<'_, TensorView<'_>>) -> RResult<RVec<Tensor>, BackendError>;

    /// Frees a model.
    fn unload(&self, model: u64) -> RResult<(), BackendError>;

    /// Whether the device still works.
    #[sabi(last_prefix_field)]
    fn health(&self) -> RResult<(), BackendError>;
}

/// The owned trait object a plugin's `open` returns.
pub type BackendBox = Backend_TO<'static, RBox<()>>;

/// The root module every plugin exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = BackendRootRef)))]
#[sabi(missing_field(panic))]
pub struct BackendRoot {
    /// The ABI the plugin was built against. Must not fail.
    pub abi_version: extern "C" fn() -> AbiVersion,
    /// Name, device kind, build info. Touches no device.
    pub describe: extern "C" fn() -> RResult<PluginDescription, BackendError>,
    /// Whether the device is usable; cheap, never loads a model.
    pub probe: extern "C" fn(&BackendConfig) -> RResult<ProbeReport, BackendError>,
    /// Opens the backend on the configured device.
    #[sabi(last_prefix_field)]
    pub open: extern "C" fn(&BackendConfig) -> RResult<BackendBox, BackendError>,
}

impl RootModule for BackendRootRef {
    declare_root_module_statics! {BackendRootRef}
    const BASE_NAME: &'static str = "switchyard_backend";
    const NAME: &'static str = "switchyard backend plugin";
    // Tied to ABI_VERSION's major, not to this crate's version.
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.0.0");
}

/// Converts [`KeyValues`] to owned pairs.
pub fn kv_to_vec(kv: &KeyValues) -> Vec<(String, String)> {
    kv.iter().map(|t| (t.0.to_string(), t.1.to_string())).collect()
}

/// Builds [`KeyValues`] from pairs.
pub fn kv<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> KeyValues {
    pairs.into_iter().map(|(k, v)| Tuple2(RString::from(k.into()), RString::from(v.into()))).collect()
}

/// `RStr` helper for plugins building static strings.
pub fn rstr(s: &'static str) -> RStr<'static> {
    RStr::from_str(s)
}
