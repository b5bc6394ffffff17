//! What a new user runs into first, through the real binary: boolean
//! settings spelled as shells and Kubernetes spell them, the renamed face
//! variables, JSON logs and `RUST_LOG`, `probe | head`, and `embed` under
//! SIGTERM (what Kubernetes, systemd and `docker stop` send).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_core::DeviceKind;
use switchyard_tests::http::{make_images, post_json, Server};
use switchyard_tests::{plugin, plugin_folder, root, switchyard_bin, temp_dir};

/// `switchyard ARGS` with `env` on top of a clean selection environment.
fn switchyard(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(switchyard_bin());
    cmd.args(args);
    for var in ["DEVICE", "FORCE_CPU", "SWITCHYARD_LOG", "RUST_LOG", "SWITCHYARD_LOG_FORMAT"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied()).stdin(Stdio::null());
    cmd.output().expect("switchyard runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn boolean_variables_take_1_yes_and_on_in_any_case() {
    // SWITCHYARD_RESUME=1 is read as true: --resume without --out is refused for what it is.
    for value in ["1", "YES", "On", "true"] {
        let o = switchyard(&["embed", "x.jpg"], &[("SWITCHYARD_RESUME", value), ("SWITCHYARD_QUIET", value)]);
        assert!(stderr(&o).contains("--resume needs --out FILE"), "SWITCHYARD_RESUME={value}: {}", stderr(&o));
    }
    // ... and 0 / off as false: the run goes on to the next check.
    let o = switchyard(&["embed"], &[("SWITCHYARD_RESUME", "0"), ("SWITCHYARD_QUIET", "off")]);
    assert!(stderr(&o).contains("nothing to embed"), "{}", stderr(&o));
    // SWITCHYARD_PROBE_JSON=yes prints JSON.
    let o = switchyard(&["probe", "--no-inspect", "--plugin-dir", "/nonexistent"], &[("SWITCHYARD_PROBE_JSON", "yes")]);
    let json: Result<Value, _> = serde_json::from_slice(&o.stdout);
    assert!(json.is_ok(), "not JSON: {}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn serve_takes_numeric_booleans_for_its_switches() {
    // Parsing passes (SWITCHYARD_NO_BATCHING=1, SWITCHYARD_FACES=0, SWITCHYARD_SCALED_DECODE=NO);
    // the bad DEVICE stops it after, with its own message.
    let o = switchyard(
        &["serve"],
        &[
            ("SWITCHYARD_NO_BATCHING", "1"),
            ("SWITCHYARD_FACES", "0"),
            ("SWITCHYARD_SCALED_DECODE", "NO"),
            ("DEVICE", "tpu"),
        ],
    );
    assert!(stderr(&o).contains("`DEVICE=tpu` is not a device"), "{}", stderr(&o));
}

#[test]
fn a_value_that_is_not_a_boolean_names_the_variable_and_the_accepted_values() {
    let o = switchyard(&["embed", "x.jpg"], &[("SWITCHYARD_QUIET", "maybe")]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("the value comes from the environment: `SWITCHYARD_QUIET=maybe`"), "{e}");
    assert!(e.contains("true/false, 1/0, yes/no or on/off"), "{e}");
}

#[test]
fn the_help_says_once_what_a_boolean_takes() {
    let o = switchyard(&["--help"], &[]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert_eq!(help.matches("true/false, 1/0, yes/no or on/off").count(), 1, "{help}");
}

#[test]
fn the_old_face_variables_still_work_with_a_deprecation_line() {
    // FACE_MAX_NUM=abc is now read as SWITCHYARD_FACE_MAX_NUM: its error names the new variable.
    let o = switchyard(&["embed", "x.jpg", "--faces"], &[("FACE_MAX_NUM", "abc")]);
    let e = stderr(&o);
    assert!(e.contains("`FACE_MAX_NUM` is deprecated; set `SWITCHYARD_FACE_MAX_NUM`"), "{e}");
    assert!(e.contains("SWITCHYARD_FACE_MAX_NUM=abc"), "{e}");
    // serve reads it too: one name for one setting.
    let o = switchyard(&["serve"], &[("FACE_DET_THRESHOLD", "high")]);
    assert!(stderr(&o).contains("SWITCHYARD_FACE_DET_THRESHOLD=high"), "{}", stderr(&o));
    // When both are set the new one wins, and the line says so.
    let o = switchyard(&["serve"], &[("FACE_MAX_NUM", "3"), ("SWITCHYARD_FACE_MAX_NUM", "bad"), ("DEVICE", "tpu")]);
    let e = stderr(&o);
    assert!(e.contains("`FACE_MAX_NUM` is deprecated and ignored"), "{e}");
    assert!(e.contains("SWITCHYARD_FACE_MAX_NUM=bad"), "{e}");
}

#[test]
fn rust_log_is_honoured_when_switchyard_log_is_unset() {
    let plugins = plugin_folder("rust-log", &[("libbackend_cpu.so", plugin(DeviceKind::Cpu))]);
    let args = ["probe", "--no-inspect", "--plugin-dir", plugins.to_str().unwrap()];
    let quiet = switchyard(&args, &[]);
    assert!(!stderr(&quiet).contains("candidate rejected"), "probe logs at warn by default: {}", stderr(&quiet));
    let o = switchyard(&args, &[("RUST_LOG", "info")]);
    assert!(stderr(&o).contains("candidate rejected"), "{}", stderr(&o));
    // SWITCHYARD_LOG wins over it.
    let o = switchyard(&args, &[("RUST_LOG", "info"), ("SWITCHYARD_LOG", "error")]);
    assert!(!stderr(&o).contains("candidate rejected"), "{}", stderr(&o));
    // A filter that does not parse is said, not silently replaced.
    let o = switchyard(&args, &[("RUST_LOG", "switchyard=loud")]);
    assert!(stderr(&o).contains("`RUST_LOG=switchyard=loud` is not a log filter"), "{}", stderr(&o));
}

#[test]
fn json_logs_are_one_object_a_line_with_the_request_span() {
    let mut server = Server::start(
        "json-logs",
        &[],
        &[("SWITCHYARD_LOG_FORMAT", "json"), ("SWITCHYARD_LOG", "info,switchyard::server=debug")],
    );
    let reply = post_json(&format!("{}/v1/embed/text", server.url), &serde_json::json!({"texts": ["a dog"]}), &[]);
    assert_eq!(reply.status, 200);
    server.terminate();
    let _ = server.child.wait();
    let log = server.log_text();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["message"] == "ready"), "{log}");
    let done = lines
        .iter()
        .find(|l| l["message"] == "request done" && l["span"]["route"] == "/v1/embed/text")
        .unwrap_or_else(|| panic!("no request line: {log}"));
    assert_eq!(done["status"], 200, "{done}");
    let spans = done["spans"].as_array().expect("span list");
    let request = spans.iter().find(|s| s["name"] == "request").expect("the request span");
    assert_eq!(request["route"], "/v1/embed/text", "{request}");
    assert!(request["id"].as_str().is_some_and(|id| !id.is_empty()), "{request}");
}

#[test]
fn probe_into_a_closed_pipe_ends_quietly() {
    // `switchyard probe | head -1`: the reader goes away; no panic, no backtrace.
    let mut child = Command::new(switchyard_bin())
        .args(["probe", "--no-inspect", "--json", "--plugin-dir", "/nonexistent"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("switchyard runs");
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("waits");
    let e = stderr(&o);
    assert!(!e.contains("panicked"), "{e}");
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

/// `switchyard embed FOLDER --out OUT` in the background, with the CPU plugin.
fn embed_in_background(images: &Path, out: &Path, extra: &[&str]) -> std::process::Child {
    let plugins = plugin_folder("sigterm-plugins", &[("libbackend_cpu.so", plugin(DeviceKind::Cpu))]);
    let mut cmd = Command::new(switchyard_bin());
    cmd.arg("embed").arg(images).arg("--out").arg(out).args(["--batch-size", "4", "--quiet"]).args(extra);
    cmd.arg("--plugin-dir").arg(&plugins).arg("--model-dir").arg(root().join("models"));
    for var in ["DEVICE", "FORCE_CPU", "CLIP_ENGINE"] {
        cmd.env_remove(var);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("switchyard embed starts")
}

fn sigterm(child: &std::process::Child) {
    let ok = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill runs");
    assert!(ok.success());
}

/// Waits until `out` holds a first line (the run is embedding).
fn wait_for_output(out: &Path, child: &mut std::process::Child) {
    let start = Instant::now();
    while lines(out) == 0 {
        assert!(child.try_wait().unwrap().is_none(), "embed ended before writing anything");
        assert!(start.elapsed() < Duration::from_secs(120), "no output after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_finishes_the_batch_writes_the_metadata_and_resume_continues() {
    let dir = temp_dir("sigterm");
    let images = dir.join("photos");
    make_images(&images, 80, 320, 240);
    let out = dir.join("out.jsonl");
    let mut child = embed_in_background(&images, &out, &[]);
    wait_for_output(&out, &mut child);
    sigterm(&child);
    let o = child.wait_with_output().expect("embed ends");
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(143), "128 + SIGTERM, a failure a Job retries: {e}");
    assert!(e.contains("SIGTERM: finishing the batch in flight"), "{e}");
    assert!(e.contains("STOPPED by SIGTERM: run again with --resume"), "the summary is printed: {e}");
    let meta: Value = serde_json::from_slice(&std::fs::read(dir.join("out.meta.json")).expect("metadata written"))
        .expect("metadata is JSON");
    assert_eq!(meta["stopped_by"], "SIGTERM");
    assert_eq!(meta["summary"]["interrupted"], true);
    let done = lines(&out);
    assert!(done > 0 && done < 80, "stopped early with whole lines: {done}");
    assert_eq!(meta["summary"]["images"].as_u64(), Some(done as u64), "the metadata counts what the output holds");

    let o = embed_in_background(&images, &out, &["--resume"]).wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let mut paths: Vec<String> =
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["path"].as_str().unwrap().to_string()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 80, "every image once after the resume");
    assert_eq!(text.lines().count(), 80);
}

#[test]
fn a_second_sigterm_exits_at_once_and_resume_still_continues() {
    let dir = temp_dir("sigterm-twice");
    let images = dir.join("photos");
    make_images(&images, 60, 320, 240);
    let out = dir.join("out.jsonl");
    let mut child = embed_in_background(&images, &out, &[]);
    wait_for_output(&out, &mut child);
    sigterm(&child);
    std::thread::sleep(Duration::from_millis(20));
    sigterm(&child);
    let o = child.wait_with_output().expect("embed ends");
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(143), "{e}");
    assert!(e.contains("exiting now; --resume continues the output"), "{e}");
    let o = embed_in_background(&images, &out, &["--resume"]).wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(lines(&out), 60, "every image once: {}", stderr(&o));
}
