//! Loading one plugin file in this process through abi_stable, with the
//! checks that make a mismatch a clear error: abi_stable's own layout check,
//! then the explicit ABI version, then the device kind the file claims.
//!
//! Libraries are never unloaded (abi_stable leaks them on purpose): a plugin
//! file is opened at most once per process.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::RResult;
use switchyard_core::abi::{
    kv_to_vec, AbiVersion, BackendBox, BackendConfig, BackendError, BackendRootRef, PluginDescription, ProbeReport,
    ABI_VERSION,
};
use switchyard_core::DeviceKind;

/// Why a plugin file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is missing.
    #[error("`{}` does not exist", path.display())]
    Missing { path: PathBuf },
    /// dlopen failed (not a shared library, or a dependency such as libtorch is missing).
    #[error("`{}` cannot be loaded: {source}. A plugin links no ML runtime (it finds libtorch and ONNX Runtime itself when it needs them), so this is a broken or foreign file: reinstall it from its package (`switchyard plugin install`) or rebuild it (ci/build.sh)", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: LibraryError,
    },
    /// dlopen failed because a library the plugin needs is not where the
    /// dynamic loader looks (the plugin's RUNPATH, LD_LIBRARY_PATH, the
    /// system folders).
    #[error("`{}` needs the shared library `{library}`, which the dynamic loader cannot find; install it, or add the folder that holds it to {var} (switchyard's own plugins need no such library: libtorch and ONNX Runtime are found when they load, see `switchyard plugin list`)", path.display(), var = LIBRARY_PATH_VAR)]
    MissingLibrary { path: PathBuf, library: String },
    /// The library has no abi_stable root module. `detail` is the loader's
    /// last line (abi_stable's own message spans several lines).
    #[error("`{}` is not a switchyard plugin: it exports no root module ({detail}); build plugins with switchyard_engine::export_plugin!", path.display())]
    NotAPlugin { path: PathBuf, detail: String },
    /// abi_stable rejected the module (layout or version mismatch). `detail`
    /// is the gist of abi_stable's report, which runs to hundreds of lines.
    #[error("`{}` was built against an incompatible switchyard-core ({detail}); rebuild the plugin against this host's version (ci/build.sh)", path.display())]
    Incompatible { path: PathBuf, detail: String },
    /// The file or its folder can be written by other users: anyone who can
    /// replace it runs code in this process.
    #[error("`{}` is refused: {what} is writable by other users, so anyone on this machine could replace the code this process runs; run `chmod o-w {}`", path.display(), target.display())]
    InsecurePermissions { path: PathBuf, what: &'static str, target: PathBuf },
    /// The explicit ABI version does not match.
    #[error("`{}` speaks plugin ABI {plugin}, this host speaks {host}: the major versions must match and the plugin's minor must be at least the host's; rebuild the plugin (or the host) from the same switchyard release", path.display())]
    AbiVersion { path: PathBuf, plugin: AbiVersion, host: AbiVersion },
    /// A call into the plugin failed.
    #[error("`{}` failed in {call}: {source}", path.display())]
    Call {
        path: PathBuf,
        call: &'static str,
        #[source]
        source: BackendError,
    },
    /// The plugin's torch companion (its libtorch half) exists but cannot be loaded.
    #[error("`{}` is the torch companion of `{}` and cannot be loaded: {source}; install the plugin and its companion from one build (ci/build.sh)", companion.display(), path.display())]
    Companion {
        path: PathBuf,
        companion: PathBuf,
        #[source]
        source: libloading::Error,
    },
    /// The plugin describes itself as another device than its file name says.
    #[error("`{}` is named for {named} but describes itself as `{described}`; rename the file libbackend_{described}.so", path.display())]
    KindMismatch { path: PathBuf, named: DeviceKind, described: String },
}

/// The variable the dynamic loader reads for extra library folders.
pub const LIBRARY_PATH_VAR: &str = if cfg!(target_os = "macos") { "DYLD_LIBRARY_PATH" } else { "LD_LIBRARY_PATH" };

/// The library a failed dlopen could not find, from the loader's message:
/// glibc says `libfoo.so: cannot open shared object file`, macOS says
/// `Library not loaded: @rpath/libfoo.dylib`.
pub fn missing_library(loader_message: &str) -> Option<String> {
    if let Some((before, _)) = loader_message.split_once(": cannot open shared object file") {
        let name = before.rsplit([' ', '\n', '(', '"', '`']).next()?.trim();
        return (!name.is_empty()).then(|| name.to_string());
    }
    let (_, after) = loader_message.split_once("Library not loaded: ")?;
    let name = after.split(['\n', ' ', '\'']).next()?.trim();
    (!name.is_empty()).then(|| name.rsplit('/').next().unwrap_or(name).to_string())
}

/// Refuses a plugin file (after symlinks) or its folder that others can write.
#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), LoadError> {
    use std::os::unix::fs::PermissionsExt;
    let refuse = |what, target: &Path| LoadError::InsecurePermissions {
        path: path.to_path_buf(),
        what,
        target: target.to_path_buf(),
    };
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let writable_by_others =
        |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o002 != 0).unwrap_or(false);
    if writable_by_others(&real) {
        return Err(refuse("the file", &real));
    }
    for dir in [real.parent(), path.parent()].into_iter().flatten() {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        if writable_by_others(dir) {
            return Err(refuse("its folder", dir));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), LoadError> {
    Ok(())
}

/// The sha256 of a file, hex; logged and reported for the plugin in use.
pub fn sha256_hex(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The sha256 of a plugin file for the reports (`/info`, run metadata, swap
/// logs): `None`, with a warning that says why, when the file cannot be read
/// (it was loaded, so that is a file removed or made unreadable since).
pub fn plugin_sha256(path: &Path) -> Option<String> {
    match sha256_hex(path) {
        Ok(sha) => Some(sha),
        Err(e) => {
            tracing::warn!(plugin = %path.display(), error = %e, "cannot read the plugin file for its sha256; reported as null");
            None
        }
    }
}

/// The `Error:` lines of an abi_stable report with their expected/found values, on one line.
fn gist(source: &LibraryError) -> String {
    let text = source.to_string();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut parts = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(what) = line.strip_prefix("Error:") {
            let mut part = what.trim().to_string();
            if lines.get(i + 1) == Some(&"Expected:") && lines.get(i + 3) == Some(&"Found:") {
                part = format!("{part}: expected {}, found {}", lines[i + 2], lines[i + 4]);
            }
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
    }
    if parts.is_empty() {
        return lines.first().copied().unwrap_or("no detail").chars().take(200).collect();
    }
    parts.join("; ")
}

fn not_a_plugin(path: &Path, source: &LibraryError) -> LoadError {
    let text = source.to_string();
    let detail = text.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("no detail").to_string();
    LoadError::NotAPlugin { path: path.to_path_buf(), detail }
}

/// A plugin loaded into this process. Dropping it unloads nothing: the
/// library stays mapped for the life of the process (abi_stable leaks it).
#[derive(Clone)]
pub struct LoadedPlugin {
    /// The file.
    pub path: PathBuf,
    root: BackendRootRef,
    /// The ABI version it reported.
    pub abi: AbiVersion,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("path", &self.path).field("abi", &self.abi).finish()
    }
}

impl LoadedPlugin {
    /// Loads `path` and checks its ABI.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let path_buf = path.to_path_buf();
        if !path.exists() {
            return Err(LoadError::Missing { path: path_buf });
        }
        check_permissions(path)?;
        let header = lib_header_from_path(path).map_err(|source| match source {
            LibraryError::OpenError { .. } => match missing_library(&source.to_string()) {
                Some(library) => LoadError::MissingLibrary { path: path_buf.clone(), library },
                None => LoadError::Open { path: path_buf.clone(), source },
            },
            other => not_a_plugin(&path_buf, &other),
        })?;
        let root = header.init_root_module::<BackendRootRef>().map_err(|source| match source {
            LibraryError::GetSymbolError { .. } => not_a_plugin(&path_buf, &source),
            other => LoadError::Incompatible { path: path_buf.clone(), detail: gist(&other) },
        })?;
        let abi = (root.abi_version())();
        if !ABI_VERSION.accepts(abi) {
            return Err(LoadError::AbiVersion { path: path_buf, plugin: abi, host: ABI_VERSION });
        }
        Ok(LoadedPlugin { path: path_buf, root, abi })
    }

    fn call<T>(&self, call: &'static str, r: RResult<T, BackendError>) -> Result<T, LoadError> {
        r.into_result().map_err(|source| LoadError::Call { path: self.path.clone(), call, source })
    }

    /// Name, device kind and build info.
    pub fn describe(&self) -> Result<Description, LoadError> {
        let d: PluginDescription = self.call("describe", (self.root.describe())())?;
        Ok(Description {
            name: d.name.into(),
            device_kind: d.device_kind.into(),
            version: d.version.into(),
            build: kv_to_vec(&d.build),
        })
    }

    /// Checks that the plugin is for the device its file name claims.
    pub fn check_kind(&self, named: DeviceKind, described: &Description) -> Result<(), LoadError> {
        if described.device_kind == named.as_str() {
            Ok(())
        } else {
            Err(LoadError::KindMismatch { path: self.path.clone(), named, described: described.device_kind.clone() })
        }
    }

    /// The plugin's cheap device probe.
    pub fn probe(&self, config: &BackendConfig) -> Result<ProbeReport, LoadError> {
        self.call("probe", (self.root.probe())(config))
    }

    /// Opens a backend.
    pub fn open(&self, config: &BackendConfig) -> Result<BackendBox, LoadError> {
        self.call("open", (self.root.open())(config))
    }

    /// Loads the plugin's torch companion into this process as the plugin
    /// would with its first TorchScript model, so that everything the pair
    /// can map is mapped (the `FALLBACK=cpu` check). Where the plugin names
    /// no companion, or it is not installed (TorchScript would then fail
    /// with that reason, loading nothing), returns `Ok(None)`.
    pub fn load_companion(&self, described: &Description) -> Result<Option<PathBuf>, LoadError> {
        let Some((_, name)) = described.build.iter().find(|(k, _)| k == "torch_companion") else {
            return Ok(None);
        };
        let found = switchyard_core::companion::locations(&self.path, name).into_iter().find(|p| p.is_file());
        let Some(companion) = found else {
            return Ok(None);
        };
        // The plugin opens libtorch by path before its companion (no RUNPATH):
        // do the same, from the same search, or the companion cannot load.
        // Where no libtorch is found the plugin would load nothing either.
        use switchyard_core::runtimes::{self, Rule, Runtime};
        let inputs = runtimes::Inputs::from_env(self.path.parent().map(Path::to_path_buf), None);
        let kind = crate::plugins::discover::kind_from_name(&self.path).unwrap_or(DeviceKind::Cpu);
        match runtimes::find(Runtime::Torch, &inputs) {
            Ok(found) if found.rule != Rule::System => {
                if let Err((file, why)) = runtimes::preload_torch(&found.path, kind) {
                    tracing::warn!(file = %file.display(), reason = %why, "libtorch for the companion cannot be loaded");
                    return Ok(None);
                }
            }
            _ => return Ok(None),
        }
        // SAFETY: the same library the plugin itself would load; its
        // initialisers are libtorch's. Kept loaded like every plugin.
        let library = unsafe { libloading::Library::new(&companion) }.map_err(|source| LoadError::Companion {
            path: self.path.clone(),
            companion: companion.clone(),
            source,
        })?;
        std::mem::forget(library);
        Ok(Some(companion))
    }
}

/// `describe()` in Rust types.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Description {
    pub name: String,
    pub device_kind: String,
    pub version: String,
    pub build: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::missing_library;

    #[test]
    fn the_missing_library_is_named() {
        let glibc = "Could not open library at:\n    /p/libbackend_cpu.so\n    because: libfoo.so.1: cannot open shared object file: No such file or directory";
        assert_eq!(missing_library(glibc).as_deref(), Some("libfoo.so.1"));
        let mac = "dlopen(/p/libbackend_mps.dylib, 0x0005): Library not loaded: @rpath/libtorch_cpu.dylib\n  Referenced from: ...";
        assert_eq!(missing_library(mac).as_deref(), Some("libtorch_cpu.dylib"));
        assert_eq!(missing_library("/p/x.so: invalid ELF header"), None);
    }
}
