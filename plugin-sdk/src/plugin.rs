//! What makes a cdylib a switchyard plugin: a [`Flavor`] (which device, how
//! to probe and open it) and [`export_plugin!`], which exports the abi_stable
//! root module with every function behind the panic barrier, and the build
//! facts read from the plugin crate's build script (`SWITCHYARD_TORCH_VERSION`,
//! `SWITCHYARD_TARGET`, `SWITCHYARD_PROFILE`). What a family of plugins adds
//! to `describe` and `probe` (the engine: its torch companion, the ONNX
//! Runtime API, where the runtimes would come from) is a [`Facts`] type
//! named in the macro.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RBox, RResult, RString};
use switchyard_core::abi::{
    kv, AbiVersion, BackendBox, BackendConfig, BackendError, BackendRoot, BackendRootRef, Backend_TO,
    PluginDescription, ProbeReport, ABI_VERSION,
};
use switchyard_core::guard::guard;
use switchyard_core::DeviceKind;

/// Facts fixed when the plugin was built (from its build script), collected
/// by [`export_plugin!`] in the plugin crate.
#[derive(Debug, Clone, Copy)]
pub struct BuildInfo {
    /// The crate name, e.g. `backend-cpu`.
    pub name: &'static str,
    /// The crate version.
    pub version: &'static str,
    /// The libtorch version it was built against.
    pub torch_version: Option<&'static str>,
    /// The target triple.
    pub target: Option<&'static str>,
    /// The cargo profile.
    pub profile: Option<&'static str>,
}

/// One device family's plugin logic (a plugin's, or its torch companion's).
pub trait Flavor: 'static {
    /// The device kind this plugin drives.
    const KIND: DeviceKind;
    /// What `open` returns.
    type Backend: switchyard_core::abi::Backend + Send + Sync + 'static;
    /// A cheap check of the device: never loads a model.
    fn probe(config: &BackendConfig) -> Result<ProbeReport, BackendError>;
    /// Opens a backend, or says why not (`Unavailable`).
    fn open(config: &BackendConfig) -> Result<Self::Backend, BackendError>;
}

/// What a family of plugins adds to the SDK's answers, after its own.
pub trait Facts: 'static {
    /// Build facts for `describe`, between `torch` and `target`.
    fn build(kind: DeviceKind) -> Vec<(&'static str, String)>;
    /// Key/values appended to every successful `probe` report.
    fn probe(config: &BackendConfig) -> Vec<(String, String)>;
}

/// No facts beyond the SDK's (a torch companion, a fixture).
impl Facts for () {
    fn build(_kind: DeviceKind) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn probe(_config: &BackendConfig) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Exports `$flavor` as this cdylib's switchyard root module, with the build
/// facts of the crate that calls it and, optionally, a [`Facts`] type.
#[macro_export]
macro_rules! export_plugin {
    ($flavor:ty) => {
        $crate::export_plugin!($flavor, ());
    };
    ($flavor:ty, $facts:ty) => {
        /// The abi_stable root module of this plugin.
        #[::abi_stable::export_root_module]
        pub fn get_library() -> ::switchyard_core::abi::BackendRootRef {
            $crate::plugin::root_module::<$flavor, $facts>($crate::plugin::BuildInfo {
                name: env!("CARGO_PKG_NAME"),
                version: env!("CARGO_PKG_VERSION"),
                torch_version: option_env!("SWITCHYARD_TORCH_VERSION"),
                target: option_env!("SWITCHYARD_TARGET"),
                profile: option_env!("SWITCHYARD_PROFILE"),
            })
        }
    };
}

static BUILD: std::sync::OnceLock<BuildInfo> = std::sync::OnceLock::new();

/// The torch version this library's companion was built against (set when
/// the root module is made; the runtime search checks it).
pub fn built_torch_version() -> Option<&'static str> {
    BUILD.get().and_then(|b| b.torch_version)
}

/// Builds the root module for a flavor (called by [`export_plugin!`]).
pub fn root_module<F: Flavor, X: Facts>(build: BuildInfo) -> BackendRootRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    let _ = BUILD.set(build);
    BackendRoot { abi_version, describe: describe::<F, X>, probe: probe::<F, X>, open: open::<F> }.leak_into_prefix()
}

/// The build facts [`root_module`] was given.
fn build() -> BuildInfo {
    *BUILD.get().expect("the root module is made before any of its functions is called")
}

extern "C" fn abi_version() -> AbiVersion {
    ABI_VERSION
}

/// Describes the plugin from its build facts and its family's.
pub fn description(kind: DeviceKind, build: BuildInfo, family: Vec<(&'static str, String)>) -> PluginDescription {
    let mut facts = vec![("abi", ABI_VERSION.to_string())];
    let mut add = |k: &'static str, v: Option<&str>| {
        if let Some(v) = v {
            facts.push((k, v.to_string()));
        }
    };
    add("torch", build.torch_version);
    for (k, v) in &family {
        add(k, Some(v));
    }
    add("target", build.target);
    add("profile", build.profile);
    PluginDescription {
        name: RString::from(build.name),
        device_kind: RString::from(kind.as_str()),
        version: RString::from(build.version),
        build: kv(facts),
    }
}

extern "C" fn describe<F: Flavor, X: Facts>() -> RResult<PluginDescription, BackendError> {
    guard("describe", || Ok(description(F::KIND, build(), X::build(F::KIND))))
}

extern "C" fn probe<F: Flavor, X: Facts>(config: &BackendConfig) -> RResult<ProbeReport, BackendError> {
    guard("probe", || {
        let mut report = F::probe(config)?;
        let family = X::probe(config);
        if !family.is_empty() {
            let mut extra = abi_stable::std_types::RVec::from(report.extra.to_vec());
            extra.extend(kv(family));
            report.extra = extra;
        }
        Ok(report)
    })
}

extern "C" fn open<F: Flavor>(config: &BackendConfig) -> RResult<BackendBox, BackendError> {
    guard("open", || {
        let backend = F::open(config)?;
        Ok(Backend_TO::from_value(backend, TD_Opaque))
    })
}

/// Boxes any backend value (for fixtures).
pub fn boxed<B: switchyard_core::abi::Backend + Send + Sync + 'static>(backend: B) -> BackendBox {
    Backend_TO::from_ptr(RBox::new(backend), TD_Opaque)
}
