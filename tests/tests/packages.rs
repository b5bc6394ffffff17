//! Plugin packages (`switchyard plugin pack | install | list`) and the
//! runtime search, one behaviour per test: a good package installs, each kind
//! of bad package is refused with its reason and leaves nothing behind, and a
//! missing or wrong runtime is named with where it was looked for and the fix.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use switchyard_core::DeviceKind;
use switchyard_tests::{plugin, root, switchyard_bin, temp_dir, torch_companion};

/// A library's file name on this platform (`libfoo.so`, `libfoo.dylib`).
fn lib(stem: &str) -> String {
    switchyard_core::runtimes::lib_file(stem)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("switchyard runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The CPU plugin and its companion, packed into a fresh folder.
fn cpu_package(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    let out = run(Command::new(switchyard_bin())
        .arg("plugin")
        .arg("pack")
        .arg(plugin(DeviceKind::Cpu))
        .arg("--out")
        .arg(&dir));
    assert!(out.status.success(), "pack failed: {}", text(&out));
    let found: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

/// The entries of a package: (name, mode, bytes).
fn entries(package: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(package).unwrap()));
    let mut out = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mode = e.header().mode().unwrap();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        out.push((name, mode, bytes));
    }
    out
}

/// Writes a package from entries, names written raw (so `..` and links can be made).
fn write_package(path: &Path, items: &[(String, u32, Vec<u8>, tar::EntryType)]) {
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, mode, bytes, kind) in items {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(bytes.len() as u64);
        h.set_mode(*mode);
        h.set_entry_type(*kind);
        if kind.is_symlink() {
            h.set_link_name("/etc/passwd").unwrap();
        }
        h.set_cksum();
        tar.append(&h, bytes.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

/// A copy of the good package with `change` applied to its entries.
fn altered(name: &str, change: impl FnOnce(&mut Vec<(String, u32, Vec<u8>, tar::EntryType)>)) -> PathBuf {
    let good = cpu_package(name);
    let mut items: Vec<_> = entries(&good).into_iter().map(|(n, m, b)| (n, m, b, tar::EntryType::Regular)).collect();
    change(&mut items);
    let bad = good.with_file_name("altered.tar.gz");
    write_package(&bad, &items);
    bad
}

fn manifest_mut(items: &mut [(String, u32, Vec<u8>, tar::EntryType)], f: impl FnOnce(&mut serde_json::Value)) {
    let m = items.iter_mut().find(|i| i.0 == "manifest.json").expect("a manifest");
    let mut v: serde_json::Value = serde_json::from_slice(&m.2).unwrap();
    f(&mut v);
    m.2 = serde_json::to_vec(&v).unwrap();
}

/// Installs into a fresh folder; returns the output and the folder.
fn install(package: &Path, name: &str) -> (Output, PathBuf) {
    let dir = temp_dir(name).join("plugins");
    let out =
        run(Command::new(switchyard_bin()).arg("plugin").arg("install").arg(package).arg("--plugin-dir").arg(&dir));
    (out, dir)
}

/// Installing must fail with `needle` in the message and leave the folder empty.
fn refused(package: &Path, name: &str, needle: &str) {
    let (out, dir) = install(package, name);
    let msg = text(&out);
    assert!(!out.status.success(), "installed although it should not: {msg}");
    assert!(msg.contains(needle), "expected `{needle}` in: {msg}");
    let left: Vec<_> = std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "a refused package left files behind: {left:?}");
    eprintln!("refused as expected: {}", msg.trim());
}

#[test]
fn a_package_holds_plugin_companion_and_a_manifest_without_build_paths() {
    let package = cpu_package("pack");
    let name = package.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("switchyard-backend-cpu-") && name.ends_with(".tar.gz"), "{name}");
    let items = entries(&package);
    let names: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
    assert_eq!(names, ["manifest.json".to_string(), lib("backend_cpu"), lib("switchyard_torch_cpu")]);
    let m: serde_json::Value = serde_json::from_slice(&items[0].2).unwrap();
    assert_eq!(m["device_kind"], "cpu");
    assert_eq!(m["abi"]["major"], 1);
    assert!(m["runtimes"]["torch"].as_str().unwrap().starts_with("2.11.0"), "{m}");
    assert!(m["glibc"].as_str().is_some(), "{m}");
    let companion = std::fs::read(torch_companion(DeviceKind::Cpu)).unwrap();
    assert_eq!(items[2].2, companion);
    for needle in [root().join(".venv"), root().join("target")] {
        let needle = needle.display().to_string();
        for (n, _, bytes) in &items {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{n} contains `{needle}`");
        }
    }
}

#[test]
fn a_good_package_installs_and_is_listed() {
    let package = cpu_package("good");
    let (out, dir) = install(&package, "good");
    let msg = text(&out);
    assert!(out.status.success(), "{msg}");
    assert!(msg.contains("SIGHUP") && msg.contains("POST /admin/reload"), "{msg}");
    for f in [lib("backend_cpu"), lib("switchyard_torch_cpu"), format!("{}.manifest.json", lib("backend_cpu"))] {
        assert!(dir.join(&f).is_file(), "{f} missing: {msg}");
    }
    assert!(!std::fs::read_dir(&dir).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with('.')));
    let listed = run(Command::new(switchyard_bin()).args(["plugin", "list", "--plugin-dir"]).arg(&dir));
    let list = text(&listed);
    assert!(listed.status.success(), "{list}");
    assert!(list.contains(&lib("backend_cpu")) && list.contains("sha256 matches its manifest"), "{list}");
    assert!(list.contains("libtorch") && list.contains("onnxruntime"), "{list}");
}

#[test]
fn a_bad_sha256_is_refused() {
    let bad = altered("sha", |items| {
        let plugin = items.iter_mut().find(|i| i.0 == lib("backend_cpu")).unwrap();
        let last = plugin.2.len() - 1;
        plugin.2[last] ^= 0xff;
    });
    refused(&bad, "sha", "has sha256");
}

#[test]
fn an_abi_major_mismatch_is_refused() {
    let bad = altered("abi", |items| manifest_mut(items, |m| m["abi"]["major"] = 99.into()));
    refused(&bad, "abi", "speaks plugin ABI 99.0, this host speaks 1.0");
}

#[test]
fn a_manifest_that_lies_about_the_abi_is_refused() {
    let liar = switchyard_tests::fixture("fixture-abi-major-mismatch");
    let bytes = std::fs::read(&liar).unwrap();
    let sha = switchyard::plugins::load::sha256_hex(&liar).unwrap();
    let bad = altered("liar", |items| {
        items.retain(|i| i.0 != lib("switchyard_torch_cpu"));
        let plugin = items.iter_mut().find(|i| i.0 == lib("backend_cpu")).unwrap();
        plugin.2 = bytes.clone();
        manifest_mut(items, |m| {
            m["files"] =
                serde_json::json!([{"name": lib("backend_cpu"), "role": "plugin", "sha256": sha, "size": bytes.len()}]);
        });
    });
    refused(&bad, "liar", "manifest says ABI 1.0, but the plugin in it speaks ABI");
}

#[test]
fn a_file_writable_by_others_is_refused() {
    let bad = altered("mode", |items| items[1].1 = 0o777);
    refused(&bad, "mode", "writable by other users (mode 777)");
}

#[test]
fn a_path_escaping_the_folder_is_refused() {
    let escaping = format!("../{}", lib("backend_cpu"));
    let bad = altered("escape", |items| items[1].0 = escaping.clone());
    refused(&bad, "escape", &format!("`{escaping}` is not a plain file name"));
    let bad = altered("link", |items| {
        items.push(("libevil.so".into(), 0o755, Vec::new(), tar::EntryType::Symlink));
    });
    refused(&bad, "link", "`libevil.so` is a link");
}

/// A bare environment: no VIRTUAL_ENV, no LD_LIBRARY_PATH, the CPU plugin
/// and its companion alone in a fresh folder.
fn bare_embed(name: &str, engine: &str, env: &[(&str, &Path)]) -> Output {
    let dir = temp_dir(name);
    for f in [plugin(DeviceKind::Cpu), torch_companion(DeviceKind::Cpu)] {
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    let mut cmd = Command::new(switchyard_bin());
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SWITCHYARD_PLUGIN_DIR", &dir)
        .env("MODEL_DIR", root().join("models"))
        .env("CLIP_ENGINE", engine)
        .args(["embed", "--quiet", "--text", "a cat"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn venv_site() -> PathBuf {
    let lib = root().join(".venv/lib");
    std::fs::read_dir(&lib)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.join("torch").is_dir())
        .expect("the venv has torch (ci/setup.sh)")
}

fn venv_ort() -> PathBuf {
    switchyard_core::runtimes::ort_in(&venv_site().join("onnxruntime/capi")).expect("the venv has onnxruntime")
}

#[test]
fn a_missing_libtorch_is_named_with_the_fix() {
    let out = bare_embed("no-torch", "torchscript", &[("ORT_DYLIB_PATH", &venv_ort())]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("libtorch was not found (looked at no Python environment"), "{msg}");
    assert!(msg.contains("pip install torch==2.11.0"), "{msg}");
}

// `cp -al` (a hard-linked copy of torch/) is GNU cp's.
#[cfg(target_os = "linux")]
#[test]
fn a_wrong_torch_version_is_refused_with_both_versions() {
    let fake = temp_dir("old-torch").join("torch");
    let status = Command::new("cp").arg("-al").arg(venv_site().join("torch")).arg(&fake).status().unwrap();
    assert!(status.success());
    // A hard link shares the file: replace it, never write through it.
    std::fs::remove_file(fake.join("version.py")).unwrap();
    std::fs::write(fake.join("version.py"), "__version__ = '2.10.0+cpu'\n").unwrap();
    let out = bare_embed("old-torch", "torchscript", &[("LIBTORCH", &fake), ("ORT_DYLIB_PATH", &venv_ort())]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("libtorch 2.10.0+cpu at") && msg.contains("is not the torch 2.11.0"), "{msg}");
    assert!(msg.contains("pip install torch==2.11.0"), "{msg}");
}

#[test]
fn a_missing_onnx_runtime_is_named_with_the_fix() {
    let out = bare_embed("no-ort", "onnx", &[]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("onnxruntime was not found (looked at"), "{msg}");
    assert!(msg.contains("pip install onnxruntime==1.31.1"), "{msg}");
}

#[test]
fn a_wrong_ort_setting_is_an_error_not_a_fallback() {
    let missing = temp_dir("bad-ort").join("libonnxruntime.so.1.31.1");
    let out = bare_embed("bad-ort", "onnx", &[("ORT_DYLIB_PATH", &missing), ("VIRTUAL_ENV", &root().join(".venv"))]);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("ORT_DYLIB_PATH=") && msg.contains("no such file"), "{msg}");
}

#[test]
fn probe_says_which_file_each_runtime_comes_from_and_why() {
    let out = run(Command::new(switchyard_bin()).arg("probe").env("VIRTUAL_ENV", root().join(".venv")));
    let msg = text(&out);
    assert!(msg.contains("libtorch     2.11.0"), "{msg}");
    assert!(msg.contains("(python: VIRTUAL_ENV="), "{msg}");
    assert!(msg.contains("onnxruntime  1.31.1"), "{msg}");
}
