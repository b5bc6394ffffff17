//! Run-time and load-time faults, end to end: `switchyard serve` and
//! `switchyard probe` with the fault fixtures (tests/fixtures/run-fails,
//! run-hangs, missing-library) in front of the real CPU plugin.
//!
//! The run-time fixtures serve the real backend-cpu until a trigger file
//! appears (see tests/fixtures/fixture_delegate.rs), so each test shows a
//! healthy request, the fault, and what still works afterwards.
//!
//! Linux only, each marked: the missing-library tests (on macOS the
//! fixture's dependency is linked by its absolute install name, so nothing
//! goes missing when the fixture is copied, and the variable is
//! DYLD_LIBRARY_PATH), and the `FALLBACK=cpu` ones that need it to start
//! (it checks the libraries the loader mapped in `/proc/self/maps`; where
//! there is none it is refused, which the last test shows off Linux).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
#[cfg(target_os = "linux")]
use serde_json::Value;
use switchyard_core::DeviceKind;
#[cfg(target_os = "linux")]
use switchyard_tests::artifacts;
use switchyard_tests::http::{assert_error_saying, make_images, post_json, send, Reply, Server};
#[cfg(target_os = "linux")]
use switchyard_tests::http::{cosine, vectors};
use switchyard_tests::{fixture, plugin, plugin_folder, switchyard_bin, temp_dir};

/// A plugin folder with `fixture_crate` as `libbackend_cpu-<suffix>.so` (tried
/// before `libbackend_cpu.so`, which is there too), and a trigger path in it.
fn fault_folder(fixture_crate: &str, suffix: &str) -> (PathBuf, PathBuf) {
    let dir = plugin_folder(
        suffix,
        &[
            (&format!("libbackend_cpu-{suffix}.so"), fixture(fixture_crate)),
            ("libbackend_cpu.so", plugin(DeviceKind::Cpu)),
        ],
    );
    let trigger = dir.join("trigger");
    (dir, trigger)
}

/// Starts a server on the fault fixture; `model`: which models the fault hits ("" for all).
fn fault_server(folder: &Path, trigger: &Path, model: &str, args: &[&str]) -> Server {
    let delegate = plugin(DeviceKind::Cpu);
    let env = [
        ("DEVICE", "cpu"),
        ("SWITCHYARD_FIXTURE_DELEGATE", delegate.to_str().unwrap()),
        ("SWITCHYARD_FIXTURE_TRIGGER", trigger.to_str().unwrap()),
        ("SWITCHYARD_FIXTURE_MODEL", model),
    ];
    let mut server = Server::spawn_with_plugins(folder.to_path_buf(), args, &env);
    server.wait_ready();
    server
}

fn text(server: &Server, t: &str) -> Reply {
    post_json(&format!("{}/v1/embed/text", server.url), &json!({"text": t}), &[])
}

fn jpeg() -> Vec<u8> {
    std::fs::read(&make_images(&temp_dir("fault-image"), 1, 160, 120)[0]).unwrap()
}

fn image(server: &Server) -> Reply {
    send("POST", &format!("{}/v1/embed/image", server.url), &[("content-type", "image/jpeg")], &jpeg())
}

fn get(server: &Server, path: &str) -> Reply {
    send("GET", &format!("{}{path}", server.url), &[], &[])
}

fn assert_ok(r: &Reply, server: &Server) {
    assert_eq!(r.status, 200, "{:?}\n{}", r.body, server.log_text());
}

#[test]
fn a_run_time_device_error_fails_those_requests_cleanly_and_the_rest_keeps_serving() {
    let (folder, trigger) = fault_folder("fixture-run-fails", "run-fails");
    let server = fault_server(&folder, &trigger, "textual", &["--no-faces"]);
    let info = get(&server, "/info");
    assert!(info.body["plugin_path"].as_str().unwrap().ends_with("libbackend_cpu-run-fails.so"), "{:?}", info.body);
    assert_ok(&text(&server, "before the fault"), &server);

    std::fs::write(&trigger, "").unwrap();
    let failed = text(&server, "during the fault");
    assert_error_saying(&failed, 500, "inference_failed", "the device failed while running `clip/ViT-B-32/textual`");
    assert_ok(&image(&server), &server);
    assert_eq!(get(&server, "/ready").status, 200);

    std::fs::remove_file(&trigger).unwrap();
    assert_ok(&text(&server, "after the fault"), &server);
}

#[test]
fn a_device_out_of_memory_is_503_with_retry_after_and_a_refused_input_422() {
    let (folder, trigger) = fault_folder("fixture-run-fails", "run-fails-kinds");
    let server = fault_server(&folder, &trigger, "textual", &["--no-faces"]);
    std::fs::write(&trigger, "oom").unwrap();
    let oom = text(&server, "while the device is full");
    assert_error_saying(&oom, 503, "device_out_of_memory", "CUDA out of memory while running `clip/ViT-B-32/textual`");
    assert_eq!(oom.header("retry-after"), Some("1"), "a client may retry an out-of-memory batch");
    assert!(oom.body["error"].as_str().unwrap().contains("send fewer or smaller items"), "{:?}", oom.body);
    // The OpenAI route says the same in OpenAI's shape.
    let oa = post_json(&format!("{}/v1/embeddings", server.url), &json!({"input": "x"}), &[]);
    assert_eq!(oa.status, 503, "{:?}", oa.body);
    assert_eq!(oa.body["error"]["code"], "device_out_of_memory", "{:?}", oa.body);
    assert_eq!(oa.body["error"]["type"], "server_error", "{:?}", oa.body);

    std::fs::write(&trigger, "invalid").unwrap();
    let bad = text(&server, "refused by the model");
    assert_error_saying(&bad, 422, "invalid_input", "refused its input");
    assert_eq!(bad.header("retry-after"), None);

    std::fs::write(&trigger, "").unwrap();
    assert_error_saying(&text(&server, "a fault"), 500, "inference_failed", "a simulated run-time fault");
    std::fs::remove_file(&trigger).unwrap();
    assert_ok(&text(&server, "after the faults"), &server);
}

#[test]
fn a_hanging_backend_call_hits_the_deadline_and_marks_the_server_unready() {
    let (folder, trigger) = fault_folder("fixture-run-hangs", "run-hangs");
    let mut server = fault_server(&folder, &trigger, "textual", &["--no-faces", "--request-timeout-ms", "1500"]);
    assert_ok(&text(&server, "before the fault"), &server);

    std::fs::write(&trigger, "").unwrap();
    let start = Instant::now();
    let hung = text(&server, "this call never returns");
    assert_error_saying(&hung, 504, "timeout", "did not answer within 1500 ms");
    assert!(start.elapsed() < Duration::from_secs(10), "the deadline took {:?}", start.elapsed());

    std::thread::sleep(Duration::from_millis(300));
    let ready = get(&server, "/ready");
    assert_error_saying(&ready, 503, "backend_stuck", "the text model has been stuck");
    let start = Instant::now();
    assert_error_saying(&text(&server, "refused at once"), 503, "backend_stuck", "Restart the server");
    assert!(start.elapsed() < Duration::from_secs(1), "a stuck model must refuse at once");
    assert_ok(&image(&server), &server);
    assert_eq!(get(&server, "/health").status, 200);

    // Shutdown leaves the stuck worker behind instead of waiting for it forever.
    server.terminate();
    let start = Instant::now();
    while server.child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(8), "the server did not stop:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A folder with the missing-library fixture copied in (its dependency stays behind) and the CPU plugin.
#[cfg(target_os = "linux")]
fn missing_library_folder() -> PathBuf {
    let dir = plugin_folder("missing-lib", &[("libbackend_cpu.so", plugin(DeviceKind::Cpu))]);
    let copy = dir.join("libbackend_cpu-needs-lib.so");
    std::fs::copy(fixture("fixture-missing-library"), &copy).unwrap();
    dir
}

#[cfg(target_os = "linux")]
fn probe_json(folder: &Path, env: &[(&str, &str)]) -> Value {
    let mut cmd = Command::new(switchyard_bin());
    cmd.args(["probe", "--json", "--plugin-dir"]).arg(folder).env("DEVICE", "cpu").env_remove("LD_LIBRARY_PATH");
    let out = cmd.envs(env.iter().copied()).output().expect("switchyard probe runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[cfg(target_os = "linux")]
fn fixture_report(report: &Value) -> &Value {
    let plugins = report["plugins"].as_array().expect("plugins");
    plugins.iter().find(|p| p["path"].as_str().unwrap().ends_with("needs-lib.so")).expect("the fixture's report")
}

#[cfg(target_os = "linux")]
#[test]
fn a_plugin_missing_a_shared_library_is_passed_over_naming_the_library_and_the_fix() {
    let report = probe_json(&missing_library_folder(), &[]);
    let failure = &fixture_report(&report)["failure"];
    assert_eq!(failure["stage"], "missing_library", "{failure:?}");
    let message = failure["message"].as_str().unwrap();
    for says in ["needs the shared library `libswitchyard_fixture_dep.so`", "LD_LIBRARY_PATH", "install it"] {
        assert!(message.contains(says), "`{message}` does not say `{says}`");
    }
    assert!(report["selection"]["plugin"].as_str().unwrap().ends_with("/libbackend_cpu.so"), "{report:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn the_missing_library_on_ld_library_path_makes_the_plugin_load() {
    let build = artifacts().join("build");
    let dep_dir = std::fs::read_dir(&build)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path().join("out"))
        .find(|out| out.join("libswitchyard_fixture_dep.so").is_file())
        .expect("the fixture's dependency in target/release/build/fixture-missing-library-*/out");
    let report = probe_json(&missing_library_folder(), &[("LD_LIBRARY_PATH", dep_dir.to_str().unwrap())]);
    let fixture = fixture_report(&report);
    // It loads and describes itself; only `open` fails, as in every fixture built on fixture_common.rs.
    assert_eq!(fixture["description"]["name"], "fixture-missing-library", "{fixture:?}");
    assert_eq!(fixture["failure"]["stage"], "call", "{fixture:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn the_server_keeps_serving_past_a_plugin_missing_a_library() {
    let folder = missing_library_folder();
    // `cargo test --workspace` puts every build script's link-search folder on LD_LIBRARY_PATH,
    // the fixture's dependency's among them: clear it, as probe_json does.
    let env = [("DEVICE", "cpu"), ("LD_LIBRARY_PATH", "")];
    let mut server = Server::spawn_with_plugins(folder, &["--no-faces"], &env);
    server.wait_ready();
    let info = get(&server, "/info");
    assert!(info.body["plugin_path"].as_str().unwrap().ends_with("/libbackend_cpu.so"), "{:?}", info.body);
    let rejected = info.body["rejected"].to_string();
    assert!(rejected.contains("libswitchyard_fixture_dep.so") && rejected.contains("LD_LIBRARY_PATH"), "{rejected}");
    assert_ok(&text(&server, "served by the real plugin"), &server);
}

#[cfg(target_os = "linux")]
#[test]
fn fallback_cpu_serves_the_requests_the_selected_device_fails() {
    let (folder, trigger) = fault_folder("fixture-run-fails", "fallback");
    let server = fault_server(&folder, &trigger, "", &["--fallback", "cpu"]);
    let healthy = text(&server, "a photo of a cat");
    assert_ok(&healthy, &server);
    assert_eq!(healthy.header("x-device"), Some("cpu"));

    std::fs::write(&trigger, "").unwrap();
    let rescued = text(&server, "a photo of a cat");
    assert_ok(&rescued, &server);
    assert_eq!(rescued.header("x-device"), Some("cpu (fallback)"));
    let (a, b) = (vectors(&healthy.body["embeddings"]), vectors(&rescued.body["embeddings"]));
    assert!(cosine(&a[0], &b[0]) > 0.9999, "the fallback gives the same embedding");
    let img = image(&server);
    assert_ok(&img, &server);
    assert_eq!(img.header("x-device"), Some("cpu (fallback)"));
    let faces = send("POST", &format!("{}/v1/faces", server.url), &[("content-type", "image/jpeg")], &jpeg());
    assert_ok(&faces, &server);
    assert_eq!(faces.header("x-device"), Some("cpu (fallback)"));

    let info = get(&server, "/info").body;
    assert!(info["fallback"]["plugin_path"].as_str().unwrap().ends_with("/libbackend_cpu.so"), "{info:?}");
    assert!(!info["fallback"]["shared_libraries"].as_array().unwrap().is_empty(), "{info:?}");
    assert_eq!(info["served_by"]["clip"]["cpu (fallback)"], 2, "{info:?}");
    assert_eq!(info["served_by"]["faces"]["cpu (fallback)"], 1, "{info:?}");
    let metrics = get(&server, "/metrics").body;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(r#"switchyard_batches_total{model="text",device="cpu (fallback)",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(server.log_text().contains("retrying the batch on the CPU fallback"));
}

#[test]
fn an_unknown_fallback_is_a_startup_error() {
    let out = Command::new(switchyard_bin())
        .args(["serve", "--port", "0"])
        .env("FALLBACK", "gpu")
        .output()
        .expect("switchyard runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`FALLBACK=gpu` is not a fallback device; use cpu"), "{stderr}");
}

#[cfg(target_os = "linux")]
#[test]
fn fallback_cpu_is_refused_at_startup_when_the_cpu_plugin_maps_another_libtorch() {
    let folder = plugin_folder(
        "other-libtorch",
        &[
            ("libbackend_cpu-fails.so", fixture("fixture-run-fails")),
            ("libbackend_cpu-other-libtorch.so", fixture("fixture-other-libtorch")),
        ],
    );
    let trigger = folder.join("trigger");
    let delegate = plugin(DeviceKind::Cpu);
    let env = [
        ("DEVICE", "cpu"),
        ("SWITCHYARD_FIXTURE_DELEGATE", delegate.to_str().unwrap()),
        ("SWITCHYARD_FIXTURE_TRIGGER", trigger.to_str().unwrap()),
        ("FALLBACK", "cpu"),
    ];
    let mut server = Server::spawn_with_plugins(folder, &["--no-faces"], &env);
    let status = exit_status(&mut server);
    assert!(!status.success());
    let log = server.log_text();
    for says in [
        "`FALLBACK=cpu` is refused: the CPU plugin",
        "libbackend_cpu-other-libtorch.so` would load",
        "libtorch_other_build.so`, but this process already runs",
        "/torch/lib/",
        "must never hold two libtorch or ONNX Runtime builds",
    ] {
        assert!(log.contains(says), "the log does not say `{says}`:\n{log}");
    }
}

/// Off Linux there is no `/proc/self/maps` to check the CPU plugin's libraries
/// against this process's: `FALLBACK=cpu` stops startup and says so.
#[cfg(not(target_os = "linux"))]
#[test]
fn fallback_cpu_is_refused_where_the_mapped_libraries_cannot_be_checked() {
    let (folder, trigger) = fault_folder("fixture-run-fails", "fallback-unchecked");
    let delegate = plugin(DeviceKind::Cpu);
    let env = [
        ("DEVICE", "cpu"),
        ("SWITCHYARD_FIXTURE_DELEGATE", delegate.to_str().unwrap()),
        ("SWITCHYARD_FIXTURE_TRIGGER", trigger.to_str().unwrap()),
        ("FALLBACK", "cpu"),
    ];
    let mut server = Server::spawn_with_plugins(folder, &["--no-faces"], &env);
    let status = exit_status(&mut server);
    assert!(!status.success());
    let log = server.log_text();
    assert!(log.contains("`FALLBACK=cpu` is refused: this platform gives no way to check"), "{log}");
}

/// Waits (at most 60 s) for a server that must refuse to start, and returns how it exited.
fn exit_status(server: &mut Server) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the server did not stop:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}
