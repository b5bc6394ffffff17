//! Shared helpers for the contract and end-to-end tests: where the built
//! plugins, fixtures, binary and reference models are.
//!
//! Everything here is built by `ci/test.sh` before `cargo test` runs (the
//! plugins and fixtures are cdylibs, which cargo cannot build as test
//! dependencies). A missing file panics with the command that makes it.

use std::path::{Path, PathBuf};

use switchyard_core::DeviceKind;

pub mod http;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The cargo profile folder the artifacts are in (`target/release` unless overridden).
pub fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    let target = if target.is_absolute() { target } else { root().join(target) };
    target.join(std::env::var("SWITCHYARD_TEST_PROFILE").unwrap_or_else(|_| "release".into()))
}

fn must_exist(path: PathBuf, how: &str) -> PathBuf {
    assert!(path.exists(), "`{}` is missing; {how}", path.display());
    path
}

/// The folder the plugins under test are in: `SWITCHYARD_TEST_PLUGIN_DIR`
/// (e.g. plugins installed from packages, tests/relocated.sh), else the build's.
fn plugin_folder_under_test() -> PathBuf {
    std::env::var_os("SWITCHYARD_TEST_PLUGIN_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(artifacts)
}

/// A built plugin, e.g. `target/release/libbackend_cpu.so`.
pub fn plugin(kind: DeviceKind) -> PathBuf {
    let name = format!("{}backend_{}.{}", std::env::consts::DLL_PREFIX, kind.as_str(), std::env::consts::DLL_EXTENSION);
    must_exist(plugin_folder_under_test().join(name), "build the plugins with ci/build.sh (ci/test.sh does)")
}

/// A plugin's built torch companion, e.g. `target/release/libswitchyard_torch_cpu.so`.
pub fn torch_companion(kind: DeviceKind) -> PathBuf {
    let name = format!(
        "{}switchyard_torch_{}.{}",
        std::env::consts::DLL_PREFIX,
        kind.as_str(),
        std::env::consts::DLL_EXTENSION
    );
    must_exist(plugin_folder_under_test().join(name), "build the plugins with ci/build.sh (ci/test.sh does)")
}

/// A built failure fixture, e.g. `fixture_open_panics`.
pub fn fixture(crate_name: &str) -> PathBuf {
    let name =
        format!("{}{}.{}", std::env::consts::DLL_PREFIX, crate_name.replace('-', "_"), std::env::consts::DLL_EXTENSION);
    must_exist(artifacts().join(name), "build the fixtures with ci/build.sh --fixtures (ci/test.sh does)")
}

/// The `switchyard` binary.
pub fn switchyard_bin() -> PathBuf {
    must_exist(artifacts().join("switchyard"), "build it with ci/build.sh (ci/test.sh does)")
}

/// The contract models made by tools/make_test_models.py.
pub fn test_models() -> PathBuf {
    // SWITCHYARD_TEST_MODELS: where a copied test binary finds them on another machine (the GPU bundle).
    let dir =
        std::env::var_os("SWITCHYARD_TEST_MODELS").map(PathBuf::from).unwrap_or_else(|| root().join("models/test"));
    must_exist(dir.join("meta.json"), "run `.venv/bin/python tools/make_test_models.py` (ci/test.sh does)")
        .parent()
        .expect("file has a folder")
        .to_path_buf()
}

/// Reads a little-endian f32 file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A fresh, empty temporary folder, unique per call (tests run in parallel threads).
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("switchyard-test-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Makes a plugin folder holding the given files under the given names (symlinks).
pub fn plugin_folder(name: &str, files: &[(&str, PathBuf)]) -> PathBuf {
    let dir = temp_dir(name);
    for (file_name, target) in files {
        #[cfg(unix)]
        std::os::unix::fs::symlink(target, dir.join(file_name)).expect("symlink");
        #[cfg(not(unix))]
        std::fs::copy(target, dir.join(file_name)).expect("copy");
    }
    dir
}

/// The venv's site-packages, `.venv/lib/python3.N/site-packages` for
/// whichever Python made the venv (`version` in `.venv/pyvenv.cfg`; the
/// first `python3*` folder where that says nothing).
pub fn site_packages() -> PathBuf {
    let venv = root().join(".venv");
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap_or_default();
    let version = cfg.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        let mut parts = value.trim().split('.');
        (key.trim() == "version" || key.trim() == "version_info")
            .then(|| format!("python{}.{}", parts.next().unwrap_or(""), parts.next().unwrap_or("")))
    });
    let mut found: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    let by_version = version.map(|v| venv.join("lib").join(v).join("site-packages")).filter(|p| p.is_dir());
    let site =
        by_version.or_else(|| found.into_iter().next()).unwrap_or_else(|| venv.join("lib/python3/site-packages"));
    must_exist(site, "make the venv with ci/setup-venv.sh (ci/test.sh does)")
}

/// The venv's python (open_clip, insightface: the parity references).
pub fn venv_python() -> PathBuf {
    must_exist(root().join(".venv/bin/python"), "run ci/setup.sh")
}

/// Runs the venv's python with `args` in the workspace root and returns its
/// standard output; panics with its standard error (and the fix for a
/// missing module) when it fails.
pub fn run_python<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    String::from_utf8(python_output(args, b"")).expect("python prints UTF-8")
}

/// [`run_python`] with `stdin` fed to it (from another thread, so a full
/// stdout pipe cannot block the write), its output as bytes.
pub fn python_output<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let shown = args.iter().map(|a| a.as_ref().to_string_lossy()).collect::<Vec<_>>().join(" ");
    let mut child = Command::new(venv_python())
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `python {shown}`: {e}"));
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let out = child.wait_with_output().expect("python runs to completion");
    writer.join().expect("the writer thread does not panic").expect("python reads its input");
    assert!(
        out.status.success(),
        "`python {shown}` failed ({}):\n{}\nIf a module is missing (open_clip, insightface, Pillow), run `bash ci/setup-venv.sh`.",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The CLIP export the tests use (models/clip/ViT-B-32).
pub fn clip_model_dir() -> PathBuf {
    let dir = root().join("models/clip/ViT-B-32");
    must_exist(dir.join("config.json"), "no CLIP export; run ci/make-models.sh (ci/test.sh does)");
    dir
}
