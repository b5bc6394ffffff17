//! Plugins that ship: tests/relocated.sh packs the plugins, installs them
//! with `switchyard plugin install` into a fresh folder, and runs probe, CLIP
//! on both engines, faces and the contract tests from there with the build
//! venv and target/ hidden (tmpfs in a private mount namespace) and the
//! runtimes at another path, without LD_LIBRARY_PATH. Linux only: it needs
//! mount namespaces, which take root.

#[cfg(target_os = "linux")]
#[test]
fn installed_packages_run_on_a_machine_that_did_not_build_them() {
    use std::path::PathBuf;
    use std::process::Command;
    use switchyard_tests::{artifacts, root};

    if unsafe { libc_geteuid() } != 0 {
        panic!("this test needs root (it hides the build venv with a tmpfs in a private mount namespace); run ci/test.sh as root");
    }
    // The contract test binary, to run over the installed plugins.
    let deps = artifacts().join("deps");
    let mut contracts: Vec<PathBuf> = std::fs::read_dir(&deps)
        .expect("target/release/deps")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("contract-") && p.extension().is_none()
        })
        .collect();
    contracts.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let contract = contracts.pop().expect("the contract test binary is built with the other tests");
    let out = Command::new("bash").arg(root().join("tests/relocated.sh")).arg(&contract).output().expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(out.status.success(), "tests/relocated.sh failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("PASS contract_tests_over_installed_plugins"), "{stdout}");
    assert!(stdout.contains(", 0 failed"), "{stdout}");
}

#[cfg(target_os = "linux")]
extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
