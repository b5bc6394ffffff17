//! Issue 6: a batch run over a generated photo library of 2,000+ real-photo
//! derived files (sizes up to 4000x3000, corrupt files, non-images, nested
//! folders, a symlink loop), interrupted twice (Ctrl-C, then SIGKILL) and
//! resumed: exactly one record per file, correct counts, valid output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_core::DeviceKind;
use switchyard_tests::{plugin, plugin_folder, root, switchyard_bin, temp_dir};

fn make_library(dir: &Path) -> Value {
    let out = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tools/make_library.py"))
        .arg("--out")
        .arg(dir)
        .output()
        .expect("python runs; run ci/setup.sh if the venv is missing");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(out.stdout.trim_ascii()).unwrap()
}

fn embed(library: &Path, out: &Path, extra: &[&str]) -> Command {
    let plugins = plugin_folder("library-plugins", &[("libbackend_cpu.so", plugin(DeviceKind::Cpu))]);
    let mut cmd = Command::new(switchyard_bin());
    cmd.arg("embed")
        .arg(library)
        .arg("--out")
        .arg(out)
        .args(["--quiet", "--batch-size", "32"])
        .args(extra)
        .arg("--plugin-dir")
        .arg(plugins)
        .arg("--model-dir")
        .arg(root().join("models"))
        .env_remove("DEVICE")
        .env_remove("FORCE_CPU")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn lines(out: &Path) -> usize {
    std::fs::read(out).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0)
}

/// Waits until the output holds `n` lines, then sends `signal`; returns the exit code.
fn interrupt_after(mut child: Child, out: &Path, n: usize, signal: i32) -> Option<i32> {
    let start = Instant::now();
    while lines(out) < n {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be interrupted");
        assert!(start.elapsed() < Duration::from_secs(600), "no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc_kill(child.id() as i32, signal) };
    let status = child.wait_with_output().unwrap();
    eprintln!(
        "interrupted with signal {signal}: {}",
        String::from_utf8_lossy(&status.stderr).lines().last().unwrap_or("")
    );
    status.status.code()
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn a_library_run_survives_interrupts_and_resumes_to_exactly_one_record_per_file() {
    let work = temp_dir("library");
    let library = work.join("library");
    let facts = make_library(&library);
    let (good, corrupt) = (facts["good"].as_u64().unwrap() as usize, facts["corrupt"].as_u64().unwrap() as usize);
    assert!(good >= 2000);
    let out = work.join("out.jsonl");

    // 1. Ctrl-C: the run finishes its batch, writes metadata and exits 130.
    let child = embed(&library, &out, &[]).spawn().unwrap();
    assert_eq!(interrupt_after(child, &out, 150, 2), Some(130));
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(work.join("out.meta.json")).unwrap()).unwrap();
    assert_eq!(meta["summary"]["interrupted"], true);

    // 2. Resume, then SIGKILL mid-run: at most a partial last line is left.
    let child = embed(&library, &out, &["--resume"]).spawn().unwrap();
    assert_eq!(interrupt_after(child, &out, 600, 9), None);

    // 3. Resume to the end.
    let done = embed(&library, &out, &["--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(3), "exit 3: some files are corrupt\n{stderr}");

    let mut per_path: HashMap<PathBuf, usize> = HashMap::new();
    let (mut ok, mut errors) = (0, 0);
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let r: Value = serde_json::from_str(line).expect("every line is complete JSON");
        *per_path.entry(PathBuf::from(r["path"].as_str().unwrap())).or_default() += 1;
        if r.get("error").is_some() {
            errors += 1;
        } else {
            assert_eq!(r["embedding"].as_array().unwrap().len(), 512);
            ok += 1;
        }
    }
    assert!(per_path.values().all(|n| *n == 1), "a file has more than one record");
    assert_eq!((ok, errors), (good, corrupt), "every good file embedded once, every corrupt one reported once");
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(work.join("out.meta.json")).unwrap()).unwrap();
    assert_eq!(
        meta["inputs"]["images_listed"].as_u64().unwrap() as usize,
        good + corrupt,
        "non-images and the symlink loop are not listed"
    );
    assert!(meta["inputs"]["images_already_done"].as_u64().unwrap() >= 600);
    assert_eq!(meta["summary"]["interrupted"], false);
    let s = &meta["summary"];
    eprintln!(
        "final run: {} images, wall {:.1} s, io {:.1} s, compute {:.1} s (io + compute = {:.1} s)",
        s["images"],
        s["wall_s"].as_f64().unwrap(),
        s["io_s"].as_f64().unwrap(),
        s["image_compute_s"].as_f64().unwrap(),
        s["io_s"].as_f64().unwrap() + s["image_compute_s"].as_f64().unwrap()
    );

    // 4. Shards split the library without overlap.
    let sub = library.join("2020");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    for shard in ["0/3", "1/3", "2/3"] {
        let o = work.join(format!("shard{}.jsonl", &shard[..1]));
        let r = embed(&sub, &o, &["--shard", shard]).output().unwrap();
        assert!(matches!(r.status.code(), Some(0) | Some(3)), "{}", String::from_utf8_lossy(&r.stderr));
        for line in std::fs::read_to_string(&o).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            *seen.entry(v["path"].as_str().unwrap().to_string()).or_default() += 1;
            total += 1;
        }
    }
    let listed = switchyard::embed::expand_paths(&[sub]).unwrap().len();
    assert_eq!(total, listed);
    assert!(seen.values().all(|n| *n == 1));
}
