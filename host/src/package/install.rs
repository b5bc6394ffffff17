//! `switchyard plugin install` and `switchyard plugin list`.
//!
//! Install reads the archive as untrusted: only regular files with plain
//! names (no folders, no `..`, no links), at most [`MAX_FILES`] of them and
//! [`MAX_FILE_BYTES`] each, none writable by others, no name twice. Files are
//! unpacked into a private staging folder inside the plugin folder (so the
//! final renames stay on one file system and are atomic) and checked against
//! the manifest's sha256s and sizes: that half is [`stage`], which loads
//! nothing (the `plugin_package` fuzz target runs it). Then the plugin is
//! loaded in a child process to check that its real ABI and description are
//! what the manifest says. Only then are the files renamed into place:
//! companion, manifest, plugin last, so the folder never shows a plugin
//! without its companion.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_core::ABI_VERSION;

use super::manifest::{self, Manifest, FILE_NAME, FORMAT};
use crate::plugins::inspect::{inspect_in_child, ChildInspect, PluginReport};
use crate::plugins::load::sha256_hex;

/// At most this many entries in a package.
pub const MAX_FILES: usize = 8;
/// At most this many bytes a file (a CUDA companion is tens of MB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// At most this many bytes of manifest.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Why a package was refused.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot read the package `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the package `{}` is refused: its entry `{entry}` {problem}; a package holds only plain files with plain names (make packages with ci/package.sh)", package.display())]
    BadEntry { package: PathBuf, entry: String, problem: String },
    #[error("the package `{}` is refused: `{entry}` is writable by other users (mode {mode:o}), so anyone could change the code it installs; repack it with ci/package.sh", package.display())]
    WritableByOthers { package: PathBuf, entry: String, mode: u32 },
    #[error("the package `{}` has no valid {FILE_NAME}: {problem}; make packages with ci/package.sh", package.display())]
    BadManifest { package: PathBuf, problem: String },
    #[error("the package `{}` is refused: `{file}` has sha256 {found}, its manifest says {expected}; the download is damaged or was tampered with, fetch it again", package.display())]
    Sha256 { package: PathBuf, file: String, expected: String, found: String },
    #[error("the package `{}` speaks plugin ABI {plugin}, this host speaks {host}: the major versions must match and the plugin's minor must be at least the host's; install a package from the same switchyard release as this host (`switchyard --version`)", package.display())]
    Abi { package: PathBuf, plugin: switchyard_core::AbiVersion, host: switchyard_core::AbiVersion },
    #[error("the package `{}` is for {theirs}, this machine is {ours}; install the package built for {ours}", package.display())]
    Platform { package: PathBuf, theirs: String, ours: String },
    #[error("the package `{}` is refused: its manifest says {claimed}, but the plugin in it {real}; the manifest does not describe its files", package.display())]
    ManifestLies { package: PathBuf, claimed: String, real: String },
    #[error("the package `{}` is refused: its plugin cannot be loaded here: {reason}", package.display())]
    Unloadable { package: PathBuf, reason: String },
    #[error("cannot install into `{}`", dir.display())]
    Write {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What an install did.
#[derive(Debug, Clone)]
pub struct InstallReport {
    pub manifest: Manifest,
    /// The plugin file as installed.
    pub plugin: PathBuf,
    /// The files written into the plugin folder.
    pub installed: Vec<PathBuf>,
    /// What the plugin's probe said about its runtimes (key, value).
    pub runtimes: Vec<(String, String)>,
}

/// A staging folder removed on drop (a refused package leaves nothing behind).
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255
}

/// A package read into a staging folder and checked against its manifest:
/// everything [`install`] checks before it loads the plugin.
#[derive(Debug)]
pub struct Staged {
    pub manifest: Manifest,
    /// The manifest as the package holds it (installed beside the plugin).
    pub manifest_bytes: Vec<u8>,
    /// Each staged file (the manifest aside) by name.
    pub files: BTreeMap<String, StagedFile>,
}

/// One file written into the staging folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    pub path: PathBuf,
    /// Lower-case hex, of the bytes written.
    pub sha256: String,
    /// The bytes written.
    pub size: u64,
}

/// Reads the `.tar.gz` stream `gz` of `package` (the name errors give) into
/// `staging`, an existing private folder, and checks it against its manifest:
/// entries, names, modes, sizes, sha256s, format, ABI and platform. Writes
/// nothing outside `staging`; the plugin is not loaded. The pure half of
/// [`install`], and what the `plugin_package` fuzz target runs.
pub fn stage(package: &Path, gz: impl Read, staging: &Path) -> Result<Staged, InstallError> {
    let read_err = |source| InstallError::Read { path: package.to_path_buf(), source };
    let write_err = |source| InstallError::Write { dir: staging.to_path_buf(), source };
    let bad = |entry: &str, problem: String| InstallError::BadEntry {
        package: package.to_path_buf(),
        entry: entry.to_string(),
        problem,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut unpacked: BTreeMap<String, StagedFile> = BTreeMap::new();
    let mut manifest_bytes: Option<Vec<u8>> = None;
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            let what = if kind.is_symlink() || kind.is_hard_link() { "is a link" } else { "is not a regular file" };
            return Err(bad(&raw, format!("{what}; links and folders are refused")));
        }
        if !plain_name(&raw) {
            return Err(bad(
                &raw,
                "is not a plain file name (it has a folder, `..`, or a leading dot) and could escape the plugin folder"
                    .into(),
            ));
        }
        let mode = entry.header().mode().map_err(read_err)?;
        if mode & 0o002 != 0 {
            return Err(InstallError::WritableByOthers { package: package.to_path_buf(), entry: raw, mode });
        }
        if unpacked.contains_key(&raw) || (raw == FILE_NAME && manifest_bytes.is_some()) {
            return Err(bad(&raw, "appears twice".into()));
        }
        if unpacked.len() >= MAX_FILES {
            return Err(bad(&raw, format!("is one file too many (a package holds at most {MAX_FILES})")));
        }
        let limit = if raw == FILE_NAME { MAX_MANIFEST_BYTES } else { MAX_FILE_BYTES };
        if entry.header().size().map_err(read_err)? > limit {
            return Err(bad(&raw, format!("is larger than {limit} bytes")));
        }
        if raw == FILE_NAME {
            let mut bytes = Vec::new();
            entry.by_ref().take(limit + 1).read_to_end(&mut bytes).map_err(read_err)?;
            manifest_bytes = Some(bytes);
            continue;
        }
        let target = staging.join(&raw);
        let mut out = std::fs::File::create(&target).map_err(write_err)?;
        let copied = std::io::copy(&mut entry.by_ref().take(limit + 1), &mut out).map_err(read_err)?;
        if copied > limit {
            return Err(bad(&raw, format!("is larger than {limit} bytes")));
        }
        out.flush().and_then(|_| out.sync_all()).map_err(write_err)?;
        let sha256 = sha256_hex(&target).map_err(write_err)?;
        unpacked.insert(raw, StagedFile { path: target, sha256, size: copied });
    }
    let bad_manifest = |problem: String| InstallError::BadManifest { package: package.to_path_buf(), problem };
    let bytes = manifest_bytes.ok_or_else(|| bad_manifest("there is none".into()))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad_manifest(e.to_string()))?;
    check_manifest(package, &manifest, &unpacked)?;
    Ok(Staged { manifest, manifest_bytes: bytes, files: unpacked })
}

/// Installs `package` into `dir` (created if missing). `exe` is the switchyard
/// executable that checks the plugin in a child process.
pub fn install(package: &Path, dir: &Path, exe: &Path) -> Result<InstallReport, InstallError> {
    let read_err = |source| InstallError::Read { path: package.to_path_buf(), source };
    let write_err = |source| InstallError::Write { dir: dir.to_path_buf(), source };
    let file = std::fs::File::open(package).map_err(read_err)?;
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let staging = Staging(dir.join(format!(".switchyard-install-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&staging.0);
    create_private_dir(&staging.0).map_err(write_err)?;
    let Staged { manifest, manifest_bytes: bytes, .. } = stage(package, file, &staging.0)?;

    let plugin_entry = manifest.plugin().expect("checked").clone();
    let staged_plugin = staging.0.join(&plugin_entry.name);
    let report = inspect_in_child(
        &staged_plugin,
        &ChildInspect {
            exe: exe.to_path_buf(),
            device_index: None,
            timeout: Duration::from_secs(60),
            with_companion: false,
        },
    );
    check_real_plugin(package, &manifest, &report)?;
    let runtimes = report
        .probe
        .as_ref()
        .map(|p| {
            p.extra
                .iter()
                .filter(|(k, _)| k.starts_with("libtorch_") || k.starts_with("onnxruntime_"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();

    // Into place: companion(s), manifest, plugin last.
    let mut order: Vec<&manifest::FileEntry> = manifest.files.iter().filter(|f| f.role != "plugin").collect();
    order.push(&plugin_entry);
    let manifest_name = installed_manifest_name(&plugin_entry.name);
    std::fs::write(staging.0.join(&manifest_name), &bytes).map_err(write_err)?;
    let mut installed = Vec::new();
    for (i, entry) in order.iter().enumerate() {
        if i == order.len() - 1 {
            place(&staging.0, dir, &manifest_name, 0o644).map_err(write_err)?;
            installed.push(dir.join(&manifest_name));
        }
        place(&staging.0, dir, &entry.name, 0o755).map_err(write_err)?;
        installed.push(dir.join(&entry.name));
    }
    sync_dir(dir);
    Ok(InstallReport { plugin: dir.join(&plugin_entry.name), manifest, installed, runtimes })
}

fn check_manifest(
    package: &Path,
    manifest: &Manifest,
    unpacked: &BTreeMap<String, StagedFile>,
) -> Result<(), InstallError> {
    let bad_manifest = |problem: String| InstallError::BadManifest { package: package.to_path_buf(), problem };
    if manifest.format != FORMAT {
        return Err(bad_manifest(format!(
            "format {} is not the format {FORMAT} this host reads; use a host from the same release",
            manifest.format
        )));
    }
    if !ABI_VERSION.accepts(manifest.abi) {
        return Err(InstallError::Abi { package: package.to_path_buf(), plugin: manifest.abi, host: ABI_VERSION });
    }
    if manifest.platform != manifest::platform() {
        return Err(InstallError::Platform {
            package: package.to_path_buf(),
            theirs: manifest.platform.clone(),
            ours: manifest::platform(),
        });
    }
    let plugins: Vec<_> = manifest.files.iter().filter(|f| f.role == "plugin").collect();
    if plugins.len() != 1 {
        return Err(bad_manifest(format!("it lists {} plugin files; a package holds exactly one", plugins.len())));
    }
    let named = crate::plugins::discover::kind_from_name(Path::new(&plugins[0].name));
    if named.map(|k| k.as_str()) != Some(manifest.device_kind.as_str()) {
        return Err(bad_manifest(format!(
            "its plugin file `{}` is not named for its device kind `{}` (libbackend_{}.so)",
            plugins[0].name, manifest.device_kind, manifest.device_kind
        )));
    }
    let installed_manifest = installed_manifest_name(&plugins[0].name);
    for (i, entry) in manifest.files.iter().enumerate() {
        if !plain_name(&entry.name) || !matches!(entry.role.as_str(), "plugin" | "companion") {
            return Err(bad_manifest(format!("it lists `{}` as `{}`", entry.name, entry.role)));
        }
        if manifest.files[..i].iter().any(|f| f.name == entry.name) {
            return Err(bad_manifest(format!("it lists `{}` twice", entry.name)));
        }
        if entry.name == installed_manifest {
            return Err(bad_manifest(format!("it lists `{}`, the name its manifest is installed under", entry.name)));
        }
        let Some(found) = unpacked.get(&entry.name) else {
            return Err(bad_manifest(format!("it lists `{}`, which the package does not hold", entry.name)));
        };
        if !found.sha256.eq_ignore_ascii_case(&entry.sha256) {
            return Err(InstallError::Sha256 {
                package: package.to_path_buf(),
                file: entry.name.clone(),
                expected: entry.sha256.clone(),
                found: found.sha256.clone(),
            });
        }
        if found.size != entry.size {
            return Err(bad_manifest(format!(
                "it says `{}` is {} bytes, but the file with that sha256 is {} bytes",
                entry.name, entry.size, found.size
            )));
        }
    }
    if let Some(extra) = unpacked.keys().find(|k| !manifest.files.iter().any(|f| &f.name == *k)) {
        return Err(bad_manifest(format!("the package holds `{extra}`, which it does not list")));
    }
    Ok(())
}

fn check_real_plugin(package: &Path, manifest: &Manifest, report: &PluginReport) -> Result<(), InstallError> {
    let lies =
        |claimed: String, real: String| InstallError::ManifestLies { package: package.to_path_buf(), claimed, real };
    if let Some(abi) = report.abi {
        if abi != manifest.abi {
            return Err(lies(format!("ABI {}", manifest.abi), format!("speaks ABI {abi}")));
        }
    }
    if let Some(f) = &report.failure {
        if f.stage != "call" {
            return Err(InstallError::Unloadable { package: package.to_path_buf(), reason: f.message.clone() });
        }
    }
    let Some(d) = &report.description else {
        return Err(InstallError::Unloadable { package: package.to_path_buf(), reason: report.rejection() });
    };
    let claimed = format!("{} {} for {}", manifest.name, manifest.version, manifest.device_kind);
    let real = format!("{} {} for {}", d.name, d.version, d.device_kind);
    if claimed != real {
        return Err(lies(claimed, format!("is {real}")));
    }
    Ok(())
}

/// The name the manifest is installed under, beside its plugin.
fn installed_manifest_name(plugin: &str) -> String {
    format!("{plugin}.manifest.json")
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir(path)
}

/// Sets the mode of a staged file and renames it into the plugin folder.
fn place(staging: &Path, dir: &Path, name: &str, mode: u32) -> std::io::Result<()> {
    let from = staging.join(name);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    std::fs::rename(&from, dir.join(name))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// One installed plugin, for `switchyard plugin list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub path: PathBuf,
    /// The manifest installed beside it, if any (a plugin copied by hand has none).
    pub manifest: Option<Manifest>,
    /// Whether the file still has the manifest's sha256.
    pub sha256_matches: Option<bool>,
    /// The child-process inspection: ABI, description, probe with runtimes.
    pub report: PluginReport,
}

/// Every plugin in `dir`, with its manifest and what a child process makes of it.
pub fn list(dir: &Path, exe: &Path) -> Result<Vec<Listed>, crate::plugins::discover::DiscoverError> {
    let how = ChildInspect {
        exe: exe.to_path_buf(),
        device_index: None,
        timeout: Duration::from_secs(60),
        with_companion: false,
    };
    let mut out = Vec::new();
    for found in crate::plugins::discover(dir, &[])? {
        let name = found.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let manifest: Option<Manifest> =
            std::fs::read(dir.join(installed_manifest_name(&name))).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let sha256_matches = manifest
            .as_ref()
            .and_then(|m| m.plugin())
            .map(|entry| sha256_hex(&found.path).map(|s| s.eq_ignore_ascii_case(&entry.sha256)).unwrap_or(false));
        let report = inspect_in_child(&found.path, &how);
        out.push(Listed { path: found.path, manifest, sha256_matches, report });
    }
    Ok(out)
}
