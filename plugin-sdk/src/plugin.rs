//! What makes a cdylib a switchyard plugin: a [`Flavor`] (which device, how
//! to probe and open it) and [`export_plugin!`], which exports the abi_stable
//! root module with every function behind the panic barrier.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RBox, RResult, RString};
use switchyard_core::abi::{
    kv, AbiVersion, BackendBox, BackendConfig, BackendError, BackendRoot, BackendRootRef, Backend_TO,
    PluginDescription, ProbeReport, ABI_VERSION,
};
use switchyard_core::guard::guard;
use switchyard_core::DeviceKind;

/// Facts fixed when the plugin was built (from its build script).
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
    /// Build facts (use [`build_info!`]).
    fn build_info() -> BuildInfo;
    /// A cheap check of the device: never loads a model.
    fn probe(config: &BackendConfig) -> Result<ProbeReport, BackendError>;
    /// Opens a backend, or says why not (`Unavailable`).
    fn open(config: &BackendConfig) -> Result<Self::Backend, BackendError>;
}

/// Collects [`BuildInfo`] from the plugin crate's build-time environment.
#[macro_export]
macro_rules! build_info {
    () => {
        $crate::plugin::BuildInfo {
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
            torch_version: option_env!("SWITCHYARD_TORCH_VERSION"),
            target: option_env!("SWITCHYARD_TARGET"),
            profile: option_env!("SWITCHYARD_PROFILE"),
        }
    };
}

/// Exports `$flavor` as this cdylib's switchyard root module.
#[macro_export]
macro_rules! export_plugin {
    ($flavor:ty) => {
        /// The abi_stable root module of this plugin.
        #[::abi_stable::export_root_module]
        pub fn get_library() -> ::switchyard_core::abi::BackendRootRef {
            $crate::plugin::root_module::<$flavor>()
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
pub fn root_module<F: Flavor>() -> BackendRootRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    let _ = BUILD.set(F::build_info());
    BackendRoot { abi_version, describe: describe::<F>, probe: probe::<F>, open: open::<F> }.leak_into_prefix()
}

extern "C" fn abi_version() -> AbiVersion {
    ABI_VERSION
}

/// Describes the plugin from its build facts (shared with fixtures and tests).
pub fn description(kind: DeviceKind, build: BuildInfo) -> PluginDescription {
    let mut facts = vec![("abi", ABI_VERSION.to_string())];
    let mut add = |k: &'static str, v: Option<&str>| {
        if let Some(v) = v {
            facts.push((k, v.to_string()));
        }
    };
    add("torch", build.torch_version);
    add("torch_companion", Some(&crate::companion::file_name(kind)));
    add("onnxruntime_api", Some(&crate::runtimes::ORT_API_VERSION.to_string()));
    add("target", build.target);
    add("profile", build.profile);
    PluginDescription {
        name: RString::from(build.name),
        device_kind: RString::from(kind.as_str()),
        version: RString::from(build.version),
        build: kv(facts),
    }
}

extern "C" fn describe<F: Flavor>() -> RResult<PluginDescription, BackendError> {
    guard("describe", || Ok(description(F::KIND, F::build_info())))
}

extern "C" fn probe<F: Flavor>(config: &BackendConfig) -> RResult<ProbeReport, BackendError> {
    guard("probe", || {
        let mut report = F::probe(config)?;
        // Where each runtime would come from (or why it is missing): this
        // library's own view; a companion's copy of it is dropped by its plugin.
        let mut extra = abi_stable::std_types::RVec::from(report.extra.to_vec());
        extra.extend(kv(crate::runtimes::report(config.get("ort_dylib"))));
        report.extra = extra;
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
