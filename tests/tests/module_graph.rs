//! tools/module_graph.py, the check ci/test.sh runs on the host's modules:
//! it passes on the real tree, and fails on a synthetic crate with a cycle or
//! an upward import (so a new one fails CI).

use std::path::Path;
use std::process::{Command, Output};

use switchyard_tests::{root, temp_dir, venv_python};

/// Runs the check on `src` with the layers in `layers` (no crate graph).
fn check(src: &Path, layers: &Path) -> Output {
    Command::new(venv_python())
        .arg(root().join("tools/module_graph.py"))
        .args(["--check", "--no-crates", "--src"])
        .arg(src)
        .arg("--layers")
        .arg(layers)
        .output()
        .expect("python runs")
}

/// A crate `lib.rs` with the given files, and a layers file.
fn tree(name: &str, files: &[(&str, &str)], layers: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (file, text) in files {
        std::fs::write(src.join(file), text).unwrap();
    }
    let layers_file = dir.join("layers.toml");
    std::fs::write(&layers_file, layers).unwrap();
    (src, layers_file)
}

const LAYERS: &str = "[modules]\nroots = [\"lib.rs\"]\nexterns = [\"std\"]\n\n[modules.scopes.lib.crate]\nlayers = [[\"low\"], [\"high\"]]\n";

#[test]
fn the_host_has_no_module_cycle_and_no_upward_import() {
    let out = Command::new(venv_python())
        .arg(root().join("tools/module_graph.py"))
        .arg("--check")
        .current_dir(root())
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_downward_import_passes() {
    let (src, layers) = tree(
        "graph-ok",
        &[
            ("lib.rs", "pub mod high;\npub mod low;\n"),
            ("high.rs", "use crate::low::Low;\n"),
            ("low.rs", "pub struct Low;\n"),
        ],
        LAYERS,
    );
    let out = check(&src, &layers);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_module_cycle_fails_and_names_both_ends() {
    let (src, layers) = tree(
        "graph-cycle",
        &[
            ("lib.rs", "pub mod high;\npub mod low;\n"),
            ("high.rs", "use crate::low::Low;\npub struct High;\n"),
            ("low.rs", "pub struct Low;\nfn f() -> Option<super::high::High> { None }\n"),
        ],
        LAYERS,
    );
    let out = check(&src, &layers);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("module cycle") && err.contains("high") && err.contains("low"), "{err}");
}

#[test]
fn an_upward_import_fails_with_the_line() {
    let (src, layers) = tree(
        "graph-upward",
        &[
            ("lib.rs", "pub mod high;\npub mod low;\n"),
            ("high.rs", "pub struct High;\n"),
            ("low.rs", "\nuse crate::high::High;\n"),
        ],
        LAYERS,
    );
    let out = check(&src, &layers);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("low.rs:2") && err.contains("upward import"), "{err}");
}

#[test]
fn a_module_in_no_layer_fails() {
    let (src, layers) = tree(
        "graph-unlisted",
        &[("lib.rs", "pub mod high;\npub mod low;\npub mod new;\n"), ("high.rs", ""), ("low.rs", ""), ("new.rs", "")],
        LAYERS,
    );
    let out = check(&src, &layers);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`new` is in no layer"), "{err}");
}
