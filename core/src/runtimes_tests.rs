//! The search order of [`super::find`], one test per rule, on folders made here.

use std::path::{Path, PathBuf};

use super::*;

fn temp(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("switchyard-runtimes-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"").unwrap();
}

/// A site-packages folder with torch (at `version`) and ONNX Runtime 1.31.1.
fn site(root: &Path, version: &str) -> PathBuf {
    let site = root.join("lib/python3.12/site-packages");
    touch(&site.join("torch/lib").join(lib_file("torch_cpu")));
    std::fs::write(site.join("torch/version.py"), format!("__version__ = '{version}'\ngit_version = 'x'\n")).unwrap();
    let ort = if cfg!(target_os = "macos") { "libonnxruntime.1.31.1.dylib" } else { "libonnxruntime.so.1.31.1" };
    touch(&site.join("onnxruntime/capi").join(ort));
    site
}

#[test]
fn an_explicit_setting_wins() {
    let dir = temp("setting");
    let venv = dir.join("venv");
    site(&venv, "2.11.0");
    let torch = dir.join("mine/torch");
    touch(&torch.join("lib").join(lib_file("torch_cpu")));
    let inputs = Inputs { libtorch: Some(torch.clone()), virtual_env: Some(venv), ..Default::default() };
    let found = find(Runtime::Torch, &inputs).unwrap();
    assert_eq!((found.path, found.rule), (torch, Rule::Setting));
}

#[test]
fn a_wrong_setting_is_an_error_not_skipped() {
    let dir = temp("bad-setting");
    let venv = dir.join("venv");
    site(&venv, "2.11.0");
    let inputs = Inputs { libtorch: Some(dir.join("nothing")), virtual_env: Some(venv.clone()), ..Default::default() };
    let err = find(Runtime::Torch, &inputs).unwrap_err().to_string();
    assert!(err.contains("LIBTORCH=") && err.contains("holds no lib/"), "{err}");
    let inputs =
        Inputs { ort_dylib: Some(dir.join("libonnxruntime.so")), virtual_env: Some(venv), ..Default::default() };
    let err = find(Runtime::OnnxRuntime, &inputs).unwrap_err().to_string();
    assert!(err.contains("ORT_DYLIB_PATH=") && err.contains("no such file"), "{err}");
}

#[test]
fn an_active_virtual_env_is_read_without_python() {
    let dir = temp("venv");
    let site = site(&dir, "2.11.0+cu130");
    let inputs = Inputs { virtual_env: Some(dir.clone()), ..Default::default() };
    let torch = find(Runtime::Torch, &inputs).unwrap();
    assert_eq!((torch.path.clone(), torch.rule), (site.join("torch"), Rule::Python));
    assert!(torch.via.starts_with("VIRTUAL_ENV="), "{}", torch.via);
    assert_eq!(torch_version(&torch.path).as_deref(), Some("2.11.0+cu130"));
    let ort = find(Runtime::OnnxRuntime, &inputs).unwrap();
    assert_eq!(ort.rule, Rule::Python);
    assert_eq!(ort_version_from_name(&ort.path).as_deref(), Some("1.31.1"));
}

#[test]
fn switchyard_python_beats_virtual_env() {
    let dir = temp("python");
    site(&dir.join("active"), "2.11.0");
    let chosen = site(&dir.join("chosen"), "2.11.0");
    let inputs =
        Inputs { python: Some(dir.join("chosen")), virtual_env: Some(dir.join("active")), ..Default::default() };
    assert_eq!(find(Runtime::Torch, &inputs).unwrap().path, chosen.join("torch"));
}

#[test]
fn bundled_libraries_come_after_python() {
    let dir = temp("bundled");
    let plugins = dir.join("plugins");
    touch(&plugins.join("torch/lib").join(lib_file("torch_cpu")));
    let inputs = Inputs { plugin_dir: Some(plugins.clone()), ..Default::default() };
    let found = find(Runtime::Torch, &inputs).unwrap();
    assert_eq!((found.path, found.rule), (plugins.join("torch"), Rule::Bundled));
    let venv = dir.join("venv");
    let site = site(&venv, "2.11.0");
    let inputs = Inputs { plugin_dir: Some(plugins), virtual_env: Some(venv), ..Default::default() };
    assert_eq!(find(Runtime::Torch, &inputs).unwrap().path, site.join("torch"));
}

#[test]
fn the_system_loader_is_last_and_the_message_lists_every_place() {
    let dir = temp("system");
    let inputs = Inputs { plugin_dir: Some(dir.clone()), ..Default::default() };
    let found = find(Runtime::OnnxRuntime, &inputs).unwrap();
    assert_eq!(found.rule, Rule::System);
    assert_eq!(found.path, PathBuf::from(system_name(Runtime::OnnxRuntime)));
    let looked = looked_before_system(Runtime::OnnxRuntime, &inputs).join(", ");
    assert!(looked.contains("no Python environment") && looked.contains("beside the plugin"), "{looked}");
}

#[test]
fn versions_are_read_from_the_files() {
    assert_eq!(base_version("2.11.0+cu130"), "2.11.0");
    assert_eq!(ort_version_from_name(Path::new("/x/libonnxruntime.so.1.31.1")).as_deref(), Some("1.31.1"));
    assert_eq!(ort_version_from_name(Path::new("/x/libonnxruntime.1.31.1.dylib")).as_deref(), Some("1.31.1"));
    assert_eq!(ort_version_from_name(Path::new("libonnxruntime.so.1")), None);
    let dir = temp("build-version");
    std::fs::write(dir.join("build-version"), "2.11.0+cpu\n").unwrap();
    assert_eq!(torch_version(&dir).as_deref(), Some("2.11.0+cpu"));
}
