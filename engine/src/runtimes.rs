//! Loading the ML runtimes that [`switchyard_core::runtimes`] finds, with the
//! version checks that make a mismatch a clear refusal instead of a crash
//! deep inside libtorch or ONNX Runtime.
//!
//! - libtorch is loaded before the torch companion
//!   ([`switchyard_core::runtimes::preload_torch`]: by full path, with
//!   `RTLD_GLOBAL`), so no RUNPATH or `LD_LIBRARY_PATH` is involved. Its
//!   version must be the one the companion was built for (tch needs it).
//! - ONNX Runtime is opened once to read its version (`OrtGetApiBase`), which
//!   must provide the C API this plugin was built for, then handed to ort.
//!
//! What was loaded, from where and by which rule, is kept for `info()`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use switchyard_core::runtimes::{self, Found, Inputs, NotFound, Rule, Runtime};
use switchyard_core::DeviceKind;

use crate::EngineError;

/// A runtime this process has loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// How it was found.
    pub found: Found,
    /// The file that was loaded (libtorch: `libtorch_cpu`; ONNX Runtime: the library).
    pub file: PathBuf,
    /// Its version, e.g. `2.11.0+cu130` or `1.31.1`.
    pub version: String,
}

static TORCH: Mutex<Option<Loaded>> = Mutex::new(None);
static ORT: Mutex<Option<Loaded>> = Mutex::new(None);

/// The ONNX Runtime C API version this plugin needs (ort's `api-22`).
pub const ORT_API_VERSION: u32 = ort::MINOR_VERSION;

/// The path this library (the plugin, or a companion) was loaded from.
#[cfg(unix)]
pub fn own_path() -> Option<PathBuf> {
    let here = own_path as *const () as *const libc::c_void;
    object_of(here)
}

#[cfg(not(unix))]
pub fn own_path() -> Option<PathBuf> {
    None
}

/// The file of the loaded object that holds `address`, from the dynamic loader.
#[cfg(unix)]
fn object_of(address: *const libc::c_void) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables.
    if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes())))
}

/// The search inputs for this plugin: the process's settings and its own folder.
pub fn inputs(ort_setting: Option<&str>) -> Inputs {
    let dir = own_path().and_then(|p| p.parent().map(Path::to_path_buf));
    let mut inputs = Inputs::from_env(dir, ort_setting.map(PathBuf::from));
    inputs.torch_version = switchyard_plugin_sdk::plugin::built_torch_version().map(str::to_string);
    inputs
}

/// A hint for a libtorch file that fails to load.
fn torch_load_hint(detail: &str) -> &'static str {
    if detail.contains("libcu") || detail.contains("libnv") || detail.contains("nvidia") {
        "a pip-installed torch finds its CUDA libraries in the `nvidia/` folder beside `torch/` (site-packages/nvidia): \
         copy or link that folder too, or install torch with pip into the environment"
    } else {
        "reinstall torch with pip, or point LIBTORCH at a complete libtorch"
    }
}

/// Loads libtorch for the companion of `kind` (once per process), checking its version.
pub fn load_torch(kind: DeviceKind) -> Result<Loaded, EngineError> {
    let mut slot = TORCH.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(loaded) = &*slot {
        return Ok(loaded.clone());
    }
    let inputs = inputs(None);
    let needed = switchyard_plugin_sdk::plugin::built_torch_version();
    let found = runtimes::find(Runtime::Torch, &inputs)?;
    if found.rule == Rule::System {
        return Err(NotFound::Nowhere {
            runtime: Runtime::Torch,
            looked: runtimes::looked_before_system(Runtime::Torch, &inputs),
            fix: Runtime::Torch.fix(needed),
        }
        .into());
    }
    let root = found.path.clone();
    let version =
        runtimes::torch_version(&root).ok_or_else(|| EngineError::TorchVersionUnknown { dir: root.clone() })?;
    if let Some(needed) = needed {
        if runtimes::base_version(&version) != runtimes::base_version(needed) {
            return Err(EngineError::TorchVersion {
                found: version,
                needed: needed.to_string(),
                dir: root,
                rule: found.describe(),
            });
        }
    }
    if kind == DeviceKind::Cuda && !runtimes::torch_has_cuda(&root) {
        return Err(EngineError::TorchWithoutCuda { version, dir: root });
    }
    runtimes::preload_torch(&root, kind).map_err(|(path, detail)| EngineError::RuntimeLoad {
        runtime: Runtime::Torch,
        hint: torch_load_hint(&detail),
        path,
        detail,
    })?;
    let loaded = Loaded { file: root.join("lib").join(runtimes::lib_file("torch_cpu")), found, version };
    *slot = Some(loaded.clone());
    Ok(loaded)
}

/// Opens ONNX Runtime (once per process) and checks that it has the C API
/// this plugin needs; returns the file to hand to `ort::init_from`.
pub fn load_ort(configured: Option<&str>) -> Result<Loaded, EngineError> {
    let mut slot = ORT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(loaded) = &*slot {
        return Ok(loaded.clone());
    }
    let inputs = inputs(configured);
    let found = runtimes::find(Runtime::OnnxRuntime, &inputs)?;
    let names: Vec<PathBuf> = if found.rule == Rule::System {
        let mut names = vec![found.path.clone()];
        if !cfg!(target_os = "macos") {
            names.push(PathBuf::from("libonnxruntime.so"));
        }
        names
    } else {
        vec![found.path.clone()]
    };
    let mut last = String::new();
    let mut library = None;
    for name in &names {
        // SAFETY: ONNX Runtime's initialisers; kept loaded for the process.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => {
                library = Some(lib);
                break;
            }
            Err(e) => last = e.to_string(),
        }
    }
    let Some(library) = library else {
        if found.rule == Rule::System {
            return Err(NotFound::Nowhere {
                runtime: Runtime::OnnxRuntime,
                looked: runtimes::looked_before_system(Runtime::OnnxRuntime, &inputs),
                fix: Runtime::OnnxRuntime.fix(None),
            }
            .into());
        }
        return Err(EngineError::RuntimeLoad {
            runtime: Runtime::OnnxRuntime,
            path: found.path.clone(),
            detail: last,
            hint: "reinstall onnxruntime with pip, or point ORT_DYLIB_PATH at a working library",
        });
    };
    let (version, file) = ort_version(&library, &found.path)?;
    let minor = version.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
    if minor < ORT_API_VERSION {
        return Err(EngineError::OrtVersion { found: version, path: file, rule: found.describe() });
    }
    std::mem::forget(library);
    let loaded = Loaded { found, file, version };
    *slot = Some(loaded.clone());
    Ok(loaded)
}

type ApiBaseFn = unsafe extern "C" fn() -> *const ApiBase;

/// The first two members of ONNX Runtime's `OrtApiBase` (stable since 1.0).
#[repr(C)]
struct ApiBase {
    get_api: unsafe extern "C" fn(u32) -> *const libc::c_void,
    get_version_string: unsafe extern "C" fn() -> *const libc::c_char,
}

/// The version string of a loaded ONNX Runtime and the file it came from.
fn ort_version(library: &libloading::Library, path: &Path) -> Result<(String, PathBuf), EngineError> {
    let not_ort = || EngineError::RuntimeLoad {
        runtime: Runtime::OnnxRuntime,
        path: path.to_path_buf(),
        detail: "it exports no `OrtGetApiBase`, so it is not ONNX Runtime".into(),
        hint: "point ORT_DYLIB_PATH at libonnxruntime itself",
    };
    // SAFETY: the symbol's type is ONNX Runtime's documented C entry point.
    let symbol: libloading::Symbol<ApiBaseFn> = unsafe { library.get(b"OrtGetApiBase\0") }.map_err(|_| not_ort())?;
    let base = unsafe { symbol() };
    if base.is_null() {
        return Err(not_ort());
    }
    let text = unsafe { std::ffi::CStr::from_ptr(((*base).get_version_string)()) };
    #[cfg(unix)]
    let file = object_of(*symbol as *const libc::c_void).unwrap_or_else(|| path.to_path_buf());
    #[cfg(not(unix))]
    let file = path.to_path_buf();
    Ok((text.to_string_lossy().into_owned(), file))
}

/// What this process has loaded, or would find, for each runtime, as
/// key/values for `probe` and `info()`: `<runtime>_path`, `_rule`, `_version`,
/// `_loaded`, or `<runtime>_error` with what to do.
pub fn report(ort_setting: Option<&str>) -> Vec<(String, String)> {
    let inputs = inputs(ort_setting);
    let mut out = Vec::new();
    for runtime in [Runtime::Torch, Runtime::OnnxRuntime] {
        let slot = if runtime == Runtime::Torch { &TORCH } else { &ORT };
        let loaded = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let key = |k: &str| format!("{}_{k}", runtime.as_str());
        if let Some(l) = loaded {
            out.push((key("path"), l.file.display().to_string()));
            out.push((key("rule"), format!("{}: {}", l.found.rule.as_str(), l.found.via)));
            out.push((key("version"), l.version));
            out.push((key("loaded"), "true".into()));
            continue;
        }
        match runtimes::find(runtime, &inputs) {
            // libtorch is never taken from the system path (its version could not be checked).
            Ok(found) if runtime == Runtime::Torch && found.rule == Rule::System => out.push((
                key("error"),
                NotFound::Nowhere {
                    runtime,
                    looked: runtimes::looked_before_system(runtime, &inputs),
                    fix: runtime.fix(inputs.torch_version.as_deref()),
                }
                .to_string(),
            )),
            Ok(found) => {
                let version = match runtime {
                    Runtime::Torch => runtimes::torch_version(&found.path),
                    Runtime::OnnxRuntime => runtimes::ort_version_from_name(&found.path),
                };
                out.push((key("path"), found.path.display().to_string()));
                out.push((key("rule"), format!("{}: {}", found.rule.as_str(), found.via)));
                if let Some(v) = version {
                    out.push((key("version"), v));
                }
                out.push((key("loaded"), "false".into()));
            }
            Err(e) => out.push((key("error"), e.to_string())),
        }
    }
    out
}
