//! `switchyard plugin pack`: a built plugin and its torch companion into one
//! package (ci/package.sh calls it for each backend).
//!
//! The plugin is loaded in this process to read its ABI and description (a
//! plugin links no ML runtime, so this maps nothing heavy), and the package
//! is written reproducibly: fixed order, fixed times, fixed modes.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::manifest::{self, FileEntry, Manifest, RuntimeNeeds, FORMAT};
use crate::plugins::load::{sha256_hex, LoadError, LoadedPlugin};

/// Why a package could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("cannot pack `{}`: it is not a usable plugin", path.display())]
    Plugin {
        path: PathBuf,
        #[source]
        source: LoadError,
    },
    #[error("cannot pack `{}`: its torch companion `{companion}` is not beside it; build both with ci/build.sh", plugin.display())]
    NoCompanion { plugin: PathBuf, companion: String },
    #[error("cannot pack: {what} `{}`", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PackError + 'a {
    move |source| PackError::Io { what, path: path.to_path_buf(), source }
}

/// The manifest for `plugin` and the files it lists (plugin first).
pub fn manifest_for(plugin: &Path) -> Result<(Manifest, Vec<PathBuf>), PackError> {
    let fail = |source| PackError::Plugin { path: plugin.to_path_buf(), source };
    let loaded = LoadedPlugin::load(plugin).map_err(fail)?;
    let described = loaded.describe().map_err(fail)?;
    let build = |k: &str| described.build.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let mut files = vec![plugin.to_path_buf()];
    if let Some(name) = build("torch_companion") {
        let companion = plugin.with_file_name(&name);
        if !companion.is_file() {
            return Err(PackError::NoCompanion { plugin: plugin.to_path_buf(), companion: name });
        }
        files.push(companion);
    }
    let mut entries = Vec::new();
    let mut glibc: Option<String> = None;
    for (i, file) in files.iter().enumerate() {
        let bytes = std::fs::read(file).map_err(io("cannot read", file))?;
        if let Some(v) = manifest::glibc_needed(&bytes) {
            if glibc.as_deref().is_none_or(|g| !manifest::version_at_least(g, &v)) {
                glibc = Some(v);
            }
        }
        entries.push(FileEntry {
            name: file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            role: if i == 0 { "plugin" } else { "companion" }.into(),
            sha256: sha256_hex(file).map_err(io("cannot read", file))?,
            size: bytes.len() as u64,
        });
    }
    let api = build("onnxruntime_api").unwrap_or_else(|| "22".into());
    let manifest = Manifest {
        format: FORMAT,
        name: described.name.clone(),
        device_kind: described.device_kind.clone(),
        version: described.version.clone(),
        abi: loaded.abi,
        platform: manifest::platform(),
        target: build("target"),
        glibc,
        runtimes: RuntimeNeeds {
            torch: build("torch"),
            torch_cuda: described.device_kind == "cuda",
            onnxruntime_min: format!("1.{api}"),
            onnxruntime_tested: switchyard_core::runtimes::ORT_TESTED_VERSION.into(),
        },
        files: entries,
    };
    Ok((manifest, files))
}

/// Writes `out_dir/<package name>` for `plugin`; returns its path and manifest.
pub fn pack(plugin: &Path, out_dir: &Path) -> Result<(PathBuf, Manifest), PackError> {
    let (manifest, files) = manifest_for(plugin)?;
    std::fs::create_dir_all(out_dir).map_err(io("cannot create", out_dir))?;
    let out = out_dir.join(manifest.package_name());
    let tmp = out.with_extension("partial");
    let file = std::fs::File::create(&tmp).map_err(io("cannot create", &tmp))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    append(&mut tar, manifest::FILE_NAME, 0o644, &json).map_err(io("cannot write", &tmp))?;
    for (path, entry) in files.iter().zip(&manifest.files) {
        let bytes = std::fs::read(path).map_err(io("cannot read", path))?;
        append(&mut tar, &entry.name, 0o755, &bytes).map_err(io("cannot write", &tmp))?;
    }
    let gz = tar.into_inner().map_err(io("cannot write", &tmp))?;
    let mut file = gz.finish().map_err(io("cannot write", &tmp))?;
    file.flush().and_then(|_| file.sync_all()).map_err(io("cannot write", &tmp))?;
    std::fs::rename(&tmp, &out).map_err(io("cannot write", &out))?;
    Ok((out, manifest))
}

fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, mode: u32, bytes: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, bytes)
}
