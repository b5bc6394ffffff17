//! Where the ML runtimes a plugin needs are found: libtorch (for its torch
//! companion) and ONNX Runtime. One search order for both, so that a plugin
//! package runs on a machine that did not build it, at any path, and nobody
//! sets `LD_LIBRARY_PATH`:
//!
//! 1. an explicit setting: `LIBTORCH` (a folder holding `lib/libtorch_cpu.so`,
//!    as tch reads it, e.g. a pip install's `site-packages/torch`) or
//!    `ORT_DYLIB_PATH` / `--ort-dylib` (the ONNX Runtime library file). A
//!    setting that names nothing usable is an error, never skipped;
//! 2. a Python environment: `SWITCHYARD_PYTHON` (a python executable, or the
//!    environment's folder), else an active `VIRTUAL_ENV`; its site-packages
//!    are read from the file system (a python executable is asked for them),
//!    torch is never imported (that costs seconds);
//! 3. libraries bundled beside the plugin, laid out like site-packages
//!    (`torch/lib/...`, `onnxruntime/capi/...`, and `nvidia/` beside `torch/`
//!    for a CUDA torch), or a C++ libtorch unpacked as `libtorch/`;
//! 4. the system's loader path (the name alone, for dlopen).
//!
//! This module looks at files (shared by the plugins, which load what it
//! finds, and the host, which reports it in `probe` and `plugin install`),
//! and holds the one way libtorch is opened before a companion
//! ([`preload_torch`], used by the plugins and by the host's `FALLBACK=cpu`
//! check); the version checks are the engine's.

use std::path::{Path, PathBuf};

/// A runtime library family a plugin may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// libtorch, for the torch companion (TorchScript models).
    Torch,
    /// ONNX Runtime, for ONNX models.
    OnnxRuntime,
}

impl Runtime {
    /// The name used in reports and keys: `libtorch` or `onnxruntime`.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Torch => "libtorch",
            Runtime::OnnxRuntime => "onnxruntime",
        }
    }

    /// How to install it, for error messages.
    pub fn fix(self, torch_version: Option<&str>) -> String {
        match self {
            Runtime::Torch => format!(
                "install torch with `pip install torch=={}` into a Python environment and activate it or set \
                 SWITCHYARD_PYTHON to its python, or set LIBTORCH to a folder holding lib/{}",
                torch_version.map(base_version).unwrap_or("<the version in the plugin's manifest>"),
                lib_file("torch_cpu")
            ),
            Runtime::OnnxRuntime => format!(
                "install ONNX Runtime with `pip install onnxruntime=={ORT_TESTED_VERSION}` (onnxruntime-gpu for CUDA) \
                 into a Python environment and activate it or set SWITCHYARD_PYTHON to its python, or set \
                 ORT_DYLIB_PATH to its library file ({})",
                ort_file_hint()
            ),
        }
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ONNX Runtime release the plugins are built and tested with.
pub const ORT_TESTED_VERSION: &str = "1.31.1";

/// Which rule found a runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `LIBTORCH`, `ORT_DYLIB_PATH` or `--ort-dylib`.
    Setting,
    /// `SWITCHYARD_PYTHON` or `VIRTUAL_ENV`.
    Python,
    /// Beside the plugin.
    Bundled,
    /// The system's loader path.
    System,
}

impl Rule {
    /// A short tag for reports: `setting`, `python`, `bundled`, `system`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Setting => "setting",
            Rule::Python => "python",
            Rule::Bundled => "bundled",
            Rule::System => "system",
        }
    }
}

/// A runtime found by the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub runtime: Runtime,
    /// libtorch: the folder holding `lib/` (e.g. `site-packages/torch`);
    /// ONNX Runtime: the library file. For [`Rule::System`], the file name alone.
    pub path: PathBuf,
    pub rule: Rule,
    /// What the rule read, e.g. `VIRTUAL_ENV=/srv/venv` or `LIBTORCH`.
    pub via: String,
}

impl Found {
    /// One line for reports: `/x/torch (python: VIRTUAL_ENV=/x)`.
    pub fn describe(&self) -> String {
        format!("{} ({}: {})", self.path.display(), self.rule.as_str(), self.via)
    }
}

/// Why a runtime was not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotFound {
    /// An explicit setting names nothing usable.
    #[error("{var}=`{}` is set but {problem}; fix or unset {var}", value.display())]
    BadSetting { var: &'static str, value: PathBuf, problem: String },
    /// No rule found it. `looked` lists every place tried, in order.
    #[error("{runtime} was not found (looked at {}); {fix}", looked.join(", "))]
    Nowhere { runtime: Runtime, looked: Vec<String>, fix: String },
}

/// What the search reads: the settings and where the plugin is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// `LIBTORCH`.
    pub libtorch: Option<PathBuf>,
    /// `--ort-dylib`, else `ORT_DYLIB_PATH`.
    pub ort_dylib: Option<PathBuf>,
    /// `SWITCHYARD_PYTHON`: a python executable or an environment folder.
    pub python: Option<PathBuf>,
    /// `VIRTUAL_ENV`.
    pub virtual_env: Option<PathBuf>,
    /// The folder the plugin file is in.
    pub plugin_dir: Option<PathBuf>,
    /// The torch version the companion was built for (for messages).
    pub torch_version: Option<String>,
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from)
}

impl Inputs {
    /// The settings of this process, for a plugin in `plugin_dir`; `ort_setting`
    /// (the host's `--ort-dylib`) wins over `ORT_DYLIB_PATH`.
    pub fn from_env(plugin_dir: Option<PathBuf>, ort_setting: Option<PathBuf>) -> Self {
        Inputs {
            libtorch: env_path("LIBTORCH"),
            ort_dylib: ort_setting.or_else(|| env_path("ORT_DYLIB_PATH")),
            python: env_path("SWITCHYARD_PYTHON"),
            virtual_env: env_path("VIRTUAL_ENV"),
            plugin_dir,
            torch_version: None,
        }
    }
}

/// A shared library's file name on this platform, e.g. `libtorch_cpu.so`.
pub fn lib_file(stem: &str) -> String {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    format!("{DLL_PREFIX}{stem}{DLL_SUFFIX}")
}

fn ort_file_hint() -> &'static str {
    if cfg!(target_os = "macos") {
        "libonnxruntime.1.31.1.dylib"
    } else {
        "libonnxruntime.so.1.31.1"
    }
}

/// `2.11.0` of `2.11.0+cu130`.
pub fn base_version(v: &str) -> &str {
    v.split('+').next().unwrap_or(v)
}

/// Whether `dir` looks like a libtorch folder (it holds `lib/libtorch_cpu`).
pub fn is_torch_dir(dir: &Path) -> bool {
    dir.join("lib").join(lib_file("torch_cpu")).is_file()
}

/// The version of the libtorch in `dir`: a pip install's `version.py`
/// (`__version__ = '2.11.0+cu130'`), or a C++ distribution's `build-version`.
pub fn torch_version(dir: &Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(dir.join("version.py")) {
        let v = text.lines().find_map(|l| l.strip_prefix("__version__ = "))?;
        return Some(v.trim().trim_matches(|c| c == '\'' || c == '"').to_string());
    }
    let text = std::fs::read_to_string(dir.join("build-version")).ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

/// Whether the libtorch in `dir` has CUDA (`lib/libtorch_cuda`).
pub fn torch_has_cuda(dir: &Path) -> bool {
    dir.join("lib").join(lib_file("torch_cuda")).is_file()
}

/// The ONNX Runtime library in a folder (`libonnxruntime.so.1.*` on Linux,
/// `libonnxruntime.1.*.dylib` on macOS), newest name first.
pub fn ort_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_ort_name))
        .collect();
    found.sort();
    found.pop()
}

fn is_ort_name(name: &str) -> bool {
    if cfg!(target_os = "macos") {
        name.starts_with("libonnxruntime.1.") && name.ends_with(".dylib")
    } else {
        name.starts_with("libonnxruntime.so.1.")
    }
}

/// The version in an ONNX Runtime file name, e.g. `1.31.1` of `libonnxruntime.so.1.31.1`.
pub fn ort_version_from_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let v = name.strip_prefix("libonnxruntime.so.").or_else(|| name.strip_prefix("libonnxruntime."))?;
    let v = v.strip_suffix(".dylib").unwrap_or(v);
    (v.split('.').count() == 3 && v.split('.').all(|p| p.parse::<u32>().is_ok())).then(|| v.to_string())
}

/// The site-packages folders of a Python environment folder (a venv's or
/// conda's prefix): `lib/python3.*/site-packages`, `lib64/...`.
pub fn site_packages_of_prefix(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for lib in ["lib", "lib64"] {
        let Ok(entries) = std::fs::read_dir(prefix.join(lib)) else { continue };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("python3")))
            .map(|e| e.path().join("site-packages"))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for d in dirs {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

/// The site-packages of a python executable, asked of it once per process
/// (no torch import: about 20 ms; `probe` and `/info` ask again and again).
fn site_packages_of_python(python: &Path) -> Vec<PathBuf> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static ASKED: Mutex<Option<HashMap<PathBuf, Vec<PathBuf>>>> = Mutex::new(None);
    let mut asked = ASKED.lock().unwrap_or_else(|p| p.into_inner());
    let asked = asked.get_or_insert_with(HashMap::new);
    if let Some(dirs) = asked.get(python) {
        return dirs.clone();
    }
    let dirs = ask_python(python);
    asked.insert(python.to_path_buf(), dirs.clone());
    dirs
}

fn ask_python(python: &Path) -> Vec<PathBuf> {
    let script = "import site,sysconfig\nfor p in site.getsitepackages()+[site.getusersitepackages(),sysconfig.get_paths()['purelib']]: print(p)";
    let Ok(out) = std::process::Command::new(python)
        .args(["-I", "-c", script])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    let mut dirs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let p = PathBuf::from(line.trim());
        if p.is_dir() && !dirs.contains(&p) {
            dirs.push(p);
        }
    }
    dirs
}

/// The Python environments to look in, with how each was named.
fn python_sites(inputs: &Inputs) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    if let Some(py) = &inputs.python {
        let via = format!("SWITCHYARD_PYTHON={}", py.display());
        let sites = if py.is_dir() { site_packages_of_prefix(py) } else { site_packages_of_python(py) };
        out.extend(sites.into_iter().map(|s| (s, via.clone())));
    } else if let Some(venv) = &inputs.virtual_env {
        let via = format!("VIRTUAL_ENV={}", venv.display());
        out.extend(site_packages_of_prefix(venv).into_iter().map(|s| (s, via.clone())));
    }
    out
}

/// Where a runtime would be found, per the rules in order. Falls through to
/// [`Rule::System`] (a bare name) unless an explicit setting is wrong.
pub fn find(runtime: Runtime, inputs: &Inputs) -> Result<Found, NotFound> {
    let found = |path: PathBuf, rule, via: String| Found { runtime, path, rule, via };
    // 1. The explicit setting.
    match runtime {
        Runtime::Torch => {
            if let Some(dir) = &inputs.libtorch {
                if is_torch_dir(dir) {
                    return Ok(found(dir.clone(), Rule::Setting, "LIBTORCH".into()));
                }
                return Err(NotFound::BadSetting {
                    var: "LIBTORCH",
                    value: dir.clone(),
                    problem: format!(
                        "it holds no lib/{} (LIBTORCH is the folder above lib/, e.g. site-packages/torch)",
                        lib_file("torch_cpu")
                    ),
                });
            }
        }
        Runtime::OnnxRuntime => {
            if let Some(file) = &inputs.ort_dylib {
                if file.is_file() {
                    return Ok(found(file.clone(), Rule::Setting, "ORT_DYLIB_PATH".into()));
                }
                return Err(NotFound::BadSetting {
                    var: "ORT_DYLIB_PATH",
                    value: file.clone(),
                    problem: format!("no such file (it names the library file itself, e.g. {})", ort_file_hint()),
                });
            }
        }
    }
    // 2. A Python environment.
    for (site, via) in python_sites(inputs) {
        if let Some(path) = in_site(runtime, &site) {
            return Ok(found(path, Rule::Python, via));
        }
    }
    // 3. Bundled beside the plugin.
    if let Some(dir) = &inputs.plugin_dir {
        if let Some(path) = in_site(runtime, dir) {
            return Ok(found(path, Rule::Bundled, format!("beside the plugin in {}", dir.display())));
        }
        if runtime == Runtime::Torch && is_torch_dir(&dir.join("libtorch")) {
            return Ok(found(dir.join("libtorch"), Rule::Bundled, format!("beside the plugin in {}", dir.display())));
        }
        if runtime == Runtime::OnnxRuntime {
            if let Some(path) = ort_in(dir) {
                return Ok(found(path, Rule::Bundled, format!("beside the plugin in {}", dir.display())));
            }
        }
    }
    // 4. The system's loader path: only the loader can tell, so the name is
    // returned; [`looked_before_system`] says where else it was not.
    Ok(found(PathBuf::from(system_name(runtime)), Rule::System, "the system's loader path".into()))
}

/// The name dlopen is given for the system rule.
pub fn system_name(runtime: Runtime) -> String {
    match runtime {
        Runtime::Torch => lib_file("torch_cpu"),
        Runtime::OnnxRuntime if cfg!(target_os = "macos") => "libonnxruntime.dylib".into(),
        Runtime::OnnxRuntime => "libonnxruntime.so.1".into(),
    }
}

/// Every place the rules before the system one looked, for the message when
/// the system loader does not have it either.
pub fn looked_before_system(runtime: Runtime, inputs: &Inputs) -> Vec<String> {
    let mut looked = Vec::new();
    let sites = python_sites(inputs);
    if sites.is_empty() {
        looked.push("no Python environment (SWITCHYARD_PYTHON and VIRTUAL_ENV are unset)".to_string());
    }
    looked.extend(sites.into_iter().map(|(s, via)| format!("`{}` ({via})", s.display())));
    if let Some(dir) = &inputs.plugin_dir {
        looked.push(format!("`{}` (beside the plugin)", dir.display()));
    }
    looked.push(format!("`{}` on the system's loader path", system_name(runtime)));
    looked
}

/// The runtime inside a site-packages-like folder.
fn in_site(runtime: Runtime, site: &Path) -> Option<PathBuf> {
    match runtime {
        Runtime::Torch => Some(site.join("torch")).filter(|d| is_torch_dir(d)),
        Runtime::OnnxRuntime => ort_in(&site.join("onnxruntime").join("capi")),
    }
}

/// The libtorch files to open before a companion of `kind`, in dependency order.
pub fn torch_files(kind: crate::DeviceKind) -> Vec<String> {
    let cuda = kind == crate::DeviceKind::Cuda;
    let mut stems = vec!["c10"];
    if cuda {
        stems.push("c10_cuda");
    }
    stems.push("torch_cpu");
    if cuda {
        stems.push("torch_cuda");
    }
    stems.push("torch");
    stems.into_iter().map(lib_file).collect()
}

/// Opens the libtorch in `dir` (a folder holding `lib/`) for a companion of
/// `kind`: each of [`torch_files`] that exists, by full path, with
/// `RTLD_GLOBAL`, so the companion's `NEEDED` entries are satisfied by what
/// is loaded and no RUNPATH or `LD_LIBRARY_PATH` is involved; libtorch's own
/// RPATH finds the rest. Never closed. On failure: the file and the loader's
/// message.
#[cfg(unix)]
pub fn preload_torch(dir: &Path, kind: crate::DeviceKind) -> Result<(), (PathBuf, String)> {
    let lib = dir.join("lib");
    for name in torch_files(kind) {
        let file = lib.join(&name);
        if !file.is_file() {
            continue;
        }
        let flags = libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL;
        // SAFETY: loads libtorch, whose initialisers are libtorch's own.
        match unsafe { libloading::os::unix::Library::open(Some(&file), flags) } {
            Ok(library) => std::mem::forget(library),
            Err(e) => return Err((file, e.to_string())),
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn preload_torch(dir: &Path, _kind: crate::DeviceKind) -> Result<(), (PathBuf, String)> {
    Err((dir.to_path_buf(), "loading libtorch by path is only implemented on Linux and macOS".into()))
}

#[cfg(test)]
#[path = "runtimes_tests.rs"]
mod tests;
