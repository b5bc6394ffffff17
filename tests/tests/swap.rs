//! Plugin swaps while serving, end to end: a plugin folder whose
//! `libbackend_cpu.so` is replaced by another file, then SIGHUP or
//! `POST /admin/reload`, under client threads that keep sending text and
//! image requests over keep-alive connections. The swap re-executes the
//! server in place: same PID, new plugin, not one failed request.
//!
//! The first plugin is the run-fails fixture (it delegates every call to the
//! real backend-cpu and fails only when its trigger file exists, which these
//! tests never create), so the two plugins serve identically but differ in
//! sha256, which `/info` shows.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard::plugins::load::sha256_hex;
use switchyard_core::DeviceKind;
use switchyard_tests::http::{make_images, post_json, send, Load, Reply, Server};
use switchyard_tests::{fixture, plugin, temp_dir};

const ADMIN_KEY: &str = "admin-secret-7f3a";

/// A plugin folder holding a copy of `first` as `libbackend_cpu.so`.
fn folder_with(name: &str, first: &Path) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::copy(first, dir.join("libbackend_cpu.so")).expect("copy the first plugin");
    dir
}

/// Drops `new` into the folder as `libbackend_cpu.so`, as an operator would: copy, then rename over.
fn replace_plugin(dir: &Path, new: &Path) {
    let incoming = dir.join("incoming.tmp");
    std::fs::copy(new, &incoming).expect("copy the new plugin");
    std::fs::rename(&incoming, dir.join("libbackend_cpu.so")).expect("rename it into place");
}

fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
    let delegate = plugin(DeviceKind::Cpu);
    let trigger = dir.join("never-created");
    let mut all = vec![
        ("DEVICE", "cpu"),
        ("SWITCHYARD_FIXTURE_DELEGATE", delegate.to_str().unwrap()),
        ("SWITCHYARD_FIXTURE_TRIGGER", trigger.to_str().unwrap()),
        ("SWITCHYARD_FIXTURE_MODEL", ""),
    ];
    all.extend_from_slice(env);
    let mut server = Server::spawn_with_plugins(dir.to_path_buf(), &["--no-faces"], &all);
    server.wait_ready();
    server
}

fn info(server: &Server) -> Value {
    let r = send("GET", &format!("{}/info", server.url), &[], &[]);
    assert_eq!(r.status, 200, "{:?}\n{}", r.body, server.log_text());
    r.body
}

fn jpeg() -> Vec<u8> {
    std::fs::read(&make_images(&temp_dir("swap-image"), 1, 320, 240)[0]).unwrap()
}

fn hangup(pid: u64) {
    let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill -HUP {pid} failed");
}

fn reload(server: &Server, token: Option<&str>) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    send("POST", &format!("{}/admin/reload", server.url), &headers, b"")
}

/// Polls `/info` until it reports `count` swaps (each poll a new connection, which must not fail either).
fn wait_for_swaps(server: &Server, count: u64) -> Value {
    let start = Instant::now();
    loop {
        let body = info(server);
        if body["swaps"]["count"].as_u64() == Some(count) {
            return body;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no swap after 120 s:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a swap started by `trigger` under load and checks everything the swap promises.
fn swap_under_load(name: &str, env: &[(&str, &str)], trigger: impl FnOnce(&Server, u64)) -> Server {
    let dir = folder_with(name, &fixture("fixture-run-fails"));
    let server = start(&dir, env);
    let before = info(&server);
    let pid = before["pid"].as_u64().expect("pid in /info");
    assert_eq!(before["swaps"]["count"], 0, "{before:?}");
    assert_eq!(before["plugin"]["name"], "fixture-run-fails", "{before:?}");

    let load = Load::start(&server.url, 6, jpeg());
    load.wait_for_more(30);
    replace_plugin(&dir, &plugin(DeviceKind::Cpu));
    trigger(&server, pid);
    let after = wait_for_swaps(&server, 1);
    load.wait_for_more(30);
    let counts = load.stop();

    assert!(
        counts.failures.is_empty(),
        "{} failed requests across the swap: {:#?}\n{}",
        counts.failures.len(),
        counts.failures,
        server.log_text()
    );
    assert!(counts.ok >= 60, "{counts:?}");
    assert_eq!(after["pid"].as_u64(), Some(pid), "the swap must keep the PID");
    let real = sha256_hex(&plugin(DeviceKind::Cpu)).unwrap();
    assert_eq!(after["plugin_sha256"], real, "{after:?}");
    assert_eq!(after["plugin"]["name"], "backend-cpu", "{after:?}");
    assert_eq!(after["swaps"]["previous_plugin_sha256"], before["plugin_sha256"], "{after:?}");
    assert_ne!(before["plugin_sha256"], after["plugin_sha256"]);
    assert!(after["swaps"]["last_unix_ms"].as_u64().is_some(), "{after:?}");
    let log = server.log_text();
    assert!(log.contains("plugin swap validated") && log.contains("plugin swap complete"), "{log}");
    assert!(log.contains(before["plugin_sha256"].as_str().unwrap()) && log.contains(&real), "{log}");
    server
}

#[test]
fn sighup_swaps_to_the_new_plugin_file_with_no_failed_request_and_the_same_pid() {
    swap_under_load("swap-sighup", &[], |_, pid| hangup(pid));
}

#[test]
fn the_admin_route_swaps_with_no_failed_request_and_never_logs_its_key() {
    let server = swap_under_load("swap-admin", &[("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)], |server, _| {
        let accepted = reload(server, Some(ADMIN_KEY));
        assert_eq!(accepted.status, 202, "{:?}\n{}", accepted.body, server.log_text());
        assert_eq!(accepted.body["status"], "swapping");
        assert_eq!(accepted.body["to"]["plugin_sha256"], sha256_hex(&plugin(DeviceKind::Cpu)).unwrap());
        assert_eq!(accepted.header("connection"), Some("close"), "drain answers carry Connection: close");
    });
    assert!(!server.log_text().contains(ADMIN_KEY), "the admin key is in the log");
}

#[test]
fn the_admin_route_refuses_a_missing_or_wrong_token_and_is_off_without_a_key() {
    let dir = folder_with("swap-auth", &plugin(DeviceKind::Cpu));
    let server = start(&dir, &[("SWITCHYARD_ADMIN_KEY", ADMIN_KEY), ("SWITCHYARD_API_KEY", "api-key")]);
    for token in [None, Some("wrong"), Some("api-key")] {
        let r = reload(&server, token);
        assert_eq!(r.status, 401, "{token:?}: {:?}", r.body);
        assert_eq!(r.body["error_type"], "unauthorized");
        assert!(r.body["error"].as_str().unwrap().contains("SWITCHYARD_ADMIN_KEY"), "{:?}", r.body);
    }
    drop(server);

    let dir = folder_with("swap-off", &plugin(DeviceKind::Cpu));
    let server = start(&dir, &[]);
    let r = reload(&server, Some(ADMIN_KEY));
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(r.body["error_type"], "admin_disabled");
    assert!(
        r.body["error"].as_str().unwrap().contains("SWITCHYARD_ADMIN_KEY (--admin-key) is not set"),
        "{:?}",
        r.body
    );
    assert_eq!(info(&server)["swaps"]["count"], 0);
}

fn assert_still_serving(server: &Server, sha: &Value, pid: &Value) {
    let r = post_json(&format!("{}/v1/embed/text", server.url), &json!({"text": "still here"}), &[]);
    assert_eq!(r.status, 200, "{:?}\n{}", r.body, server.log_text());
    assert_eq!(r.header("connection"), None, "no drain after a refused swap");
    let now = info(server);
    assert_eq!(&now["plugin_sha256"], sha, "{now:?}");
    assert_eq!(&now["pid"], pid, "{now:?}");
    assert_eq!(now["swaps"]["count"], 0, "{now:?}");
}

#[test]
fn a_swap_to_a_broken_or_missing_plugin_is_refused_and_the_old_one_keeps_serving() {
    let dir = folder_with("swap-broken", &plugin(DeviceKind::Cpu));
    let server = start(&dir, &[("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)]);
    let before = info(&server);
    let (sha, pid) = (before["plugin_sha256"].clone(), before["pid"].clone());

    replace_plugin(&dir, &fixture("fixture-not-a-plugin"));
    let refused = reload(&server, Some(ADMIN_KEY));
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert_eq!(refused.body["error_type"], "swap_refused");
    let message = refused.body["error"].as_str().unwrap();
    assert!(message.contains("swap is refused") && message.contains("keeps serving"), "{message}");
    assert!(message.contains("not a switchyard plugin") || message.contains("plugin"), "{message}");
    assert_still_serving(&server, &sha, &pid);

    hangup(pid.as_u64().unwrap());
    let start = Instant::now();
    while server.log_text().matches("plugin swap refused").count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "SIGHUP was not refused:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log_text().contains("trigger=\"SIGHUP\""), "{}", server.log_text());
    assert_still_serving(&server, &sha, &pid);

    std::fs::remove_file(dir.join("libbackend_cpu.so")).unwrap();
    let refused = reload(&server, Some(ADMIN_KEY));
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert!(refused.body["error"].as_str().unwrap().contains("keeps serving"), "{:?}", refused.body);
    assert_still_serving(&server, &sha, &pid);
}
