// Compiles the libtorch bridge (src/bridge.rs + src/bridge.cc) with cxx-build
// against the headers of the libtorch tch links: torch-sys reports its lib
// folder (`DEP_TCH_LIBTORCH_LIB`, e.g. site-packages/torch/lib), and the
// headers are beside it, where torch-sys itself found them
// (`torch/include`, `torch/include/torch/csrc/api/include`). The C++ ABI
// flag must be torch's: asked of the same python torch-sys asks
// (LIBTORCH_USE_PYTORCH), else LIBTORCH_CXX11_ABI, else 1 (torch-sys's
// default). No path of this machine goes into the library: CXXFLAGS from
// ci/env.sh maps the venv's, and this maps the crate's and OUT_DIR's.

use std::path::PathBuf;
use std::process::Command;

fn cxx11_abi() -> String {
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    if let Ok(v) = std::env::var("LIBTORCH_CXX11_ABI") {
        return v;
    }
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        // The interpreter torch-sys runs: `python` inside a venv, else `python3`.
        let python = if std::env::var_os("VIRTUAL_ENV").is_some() { "python" } else { "python3" };
        let out = Command::new(python)
            .args(["-c", "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{python}` to ask torch for its C++ ABI: {e}; source ci/env.sh"));
        let abi = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            abi == "0" || abi == "1",
            "`{python}` did not say torch's C++ ABI ({}); source ci/env.sh so the venv's python has torch",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return abi;
    }
    "1".into()
}

fn main() {
    println!("cargo:rerun-if-changed=src/bridge.rs");
    println!("cargo:rerun-if-changed=src/bridge.cc");
    println!("cargo:rerun-if-changed=src/bridge.h");
    let lib = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect(
        "torch-sys did not report its libtorch folder; build through ci/build.sh (it sets LIBTORCH_USE_PYTORCH=1 and the venv)",
    ));
    let include = lib.parent().expect("libtorch's lib folder has a parent").join("include");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    cxx_build::bridge("src/bridge.rs")
        .file("src/bridge.cc")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .std("c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", cxx11_abi().as_str())
        .flag_if_supported(format!("-ffile-prefix-map={manifest}/=switchyard-torch/"))
        .flag_if_supported(format!("-ffile-prefix-map={out}/=out/"))
        .warnings(false)
        .compile("switchyard-torch-bridge");
    // The bridge's own test (tests/bridge.rs) is a plain executable linking
    // libtorch: it finds it through a RUNPATH to the build's libtorch. Only
    // test targets get it; the companions carry none (see plugin-sdk/plugin_build.rs).
    println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{}", lib.display());
}
