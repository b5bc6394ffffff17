//! A `switchyard serve` process for tests: started on a free port with the
//! CPU plugin and the shared models, stopped (SIGTERM, then SIGKILL) when
//! dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_core::DeviceKind;

use crate::{plugin, plugin_folder, root, switchyard_bin};

/// Runs `"$0" "$@"` and sends it SIGTERM when a line arrives on stdin or stdin closes;
/// exits with the server's status.
const STOP_WITH_PARENT: &str =
    r#"exec 3<&0; "$0" "$@" </dev/null & pid=$!; (read _ <&3; kill -TERM $pid 2>/dev/null) & wait $pid"#;

/// A running server (`child` is the shell around it).
pub struct Server {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
    /// `/ready` statuses seen while waiting (503s, then 200).
    pub ready_polls: Vec<u16>,
}

/// A plugin folder holding only the CPU plugin.
pub fn cpu_plugins(name: &str) -> PathBuf {
    plugin_folder(name, &[("libbackend_cpu.so", plugin(DeviceKind::Cpu))])
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// The shared models folder (models/clip/ViT-B-32).
pub fn models() -> PathBuf {
    let dir = root().join("models");
    assert!(dir.join("clip/ViT-B-32/config.json").exists(), "no CLIP export; run ci/make-models.sh (ci/test.sh does)");
    dir
}

impl Server {
    /// Starts `switchyard serve` with `args` (plus plugin dir, models, port); does not wait.
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn_with_plugins(cpu_plugins(&format!("serve-{name}")), args, env)
    }

    /// Like [`Server::spawn`], with the plugin folder given (its log goes there too).
    pub fn spawn_with_plugins(plugins: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log = plugins.join("serve.log");
        // Through a small shell that stops the server when our stdin pipe closes: the shared
        // test server lives in a static, which is never dropped, and must not outlive the tests.
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(STOP_WITH_PARENT).arg(switchyard_bin());
        cmd.arg("serve").arg("--plugin-dir").arg(&plugins).arg("--model-dir").arg(models());
        cmd.arg("--port").arg(port.to_string()).args(args);
        for var in ["DEVICE", "FORCE_CPU", "SWITCHYARD_PLUGINS", "SWITCHYARD_API_KEY", "SWITCHYARD_LOG", "FALLBACK"] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(file);
        let child = cmd.spawn().expect("switchyard serve starts");
        Server { child, url: format!("http://127.0.0.1:{port}"), log, ready_polls: Vec::new() }
    }

    /// Waits until `/health` answers.
    pub fn wait_live(&mut self) {
        self.wait_for(|s| get_status(&format!("{}/health", s.url)).is_some());
    }

    /// Waits until `/ready` says 200, recording each status it saw.
    pub fn wait_ready(&mut self) {
        self.wait_for(|s| {
            let status = get_status(&format!("{}/ready", s.url));
            if let Some(code) = status {
                s.ready_polls.push(code);
            }
            status == Some(200)
        });
    }

    fn wait_for(&mut self, mut done: impl FnMut(&mut Server) -> bool) {
        let start = Instant::now();
        while !done(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("switchyard serve exited ({status}):\n{}", self.log_text());
            }
            assert!(start.elapsed() < Duration::from_secs(120), "server not up after 120 s:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts and waits for `/ready`.
    pub fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut s = Server::spawn(name, args, env);
        s.wait_ready();
        s
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends the server SIGTERM (graceful shutdown).
    pub fn terminate(&mut self) {
        use std::io::Write;
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
    }
}

/// `VmRSS` of a process in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.terminate();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get_status(url: &str) -> Option<u16> {
    match ureq::get(url).timeout(Duration::from_secs(5)).call() {
        Ok(r) => Some(r.status()),
        Err(ureq::Error::Status(code, _)) => Some(code),
        Err(_) => None,
    }
}
