//! A `switchyard serve` process for tests and the load generator: started on
//! a free port with the CPU plugin and the shared models, stopped (SIGTERM,
//! then SIGKILL) when dropped, plus a tiny blocking HTTP client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
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

/// An answer: status, headers we look at, and the body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn reply(result: Result<ureq::Response, ureq::Error>) -> Reply {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("HTTP transport error: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let text = response.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply { status, headers, body }
}

/// A request: method, URL, headers, body.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(120));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    reply(if body.is_empty() && method == "GET" { req.call() } else { req.send_bytes(body) })
}

/// A `POST` sent with `Expect: 100-continue` over a raw socket: the body
/// goes out only if the server asks for it, so a server that refuses the
/// size up front (413) is read cleanly instead of failing with a broken pipe.
pub fn post_expect_continue(url: &str, content_type: &str, body: &[u8]) -> Reply {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.starts_with(b"HTTP/1.1 100") {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                got.drain(..end + 4);
                let _ = stream.write_all(body);
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    Reply { status, headers, body: serde_json::from_str(body).unwrap_or(Value::String(body.to_string())) }
}

/// `POST` of a JSON value.
pub fn post_json(url: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    send("POST", url, &h, body.to_string().as_bytes())
}

/// A `multipart/form-data` body with one part per file; returns (content type, body).
pub fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "switchyard-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Embeddings from an `embeddings` array.
pub fn vectors(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .expect("an array of embeddings")
        .iter()
        .map(|e| e.as_array().expect("an embedding").iter().map(|x| x.as_f64().expect("a number") as f32).collect())
        .collect()
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// Writes `n` synthetic photos-like JPEGs (gradients and blocks, `w`x`h`) into `dir`; returns their paths.
pub fn make_images(dir: &Path, n: usize, w: u32, h: u32) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("image folder");
    (0..n)
        .map(|i| {
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let k = i as u32 * 37;
                image::Rgb([
                    ((x + k) % 256) as u8,
                    ((y * 2 + k) % 256) as u8,
                    (((x / 16 + y / 16) * 40 + k) % 256) as u8,
                ])
            });
            let path = dir.join(format!("img{i:03}.jpg"));
            img.save(&path).expect("write a JPEG");
            path
        })
        .collect()
}

/// What a [`Load`] saw: answers with status 200, and every other outcome.
#[derive(Debug, Default)]
pub struct LoadCounts {
    pub ok: usize,
    /// `thread N: status 503: {...}` or `thread N: transport: ...`.
    pub failures: Vec<String>,
}

/// Client threads sending text and image embedding requests in a loop, each
/// over its own keep-alive connection pool (one ureq agent per thread), as
/// real clients do: no retries beyond ureq's own, which re-sends a request
/// only when it could not be written to a reused connection (never a POST
/// whose response was lost).
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<LoadCounts>>,
}

impl Load {
    /// `threads` clients against `url`: even ones embed texts, odd ones post `jpeg`.
    pub fn start(url: &str, threads: usize, jpeg: Vec<u8>) -> Load {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let jpeg = Arc::new(jpeg);
        let threads = (0..threads)
            .map(|t| {
                let (stop, ok, jpeg, url) = (stop.clone(), ok.clone(), jpeg.clone(), url.to_string());
                std::thread::spawn(move || {
                    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build();
                    let mut counts = LoadCounts::default();
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        let result = if t % 2 == 0 {
                            agent
                                .post(&format!("{url}/v1/embed/text"))
                                .set("content-type", "application/json")
                                .send_string(
                                    &serde_json::json!({"text": format!("client {t} request {i}")}).to_string(),
                                )
                        } else {
                            agent
                                .post(&format!("{url}/v1/embed/image"))
                                .set("content-type", "image/jpeg")
                                .send_bytes(&jpeg)
                        };
                        match result {
                            Ok(r) if r.status() == 200 => match r.into_string() {
                                Ok(_) => {
                                    counts.ok += 1;
                                    ok.fetch_add(1, Ordering::SeqCst);
                                }
                                Err(e) => counts.failures.push(format!("thread {t}: reading the body: {e}")),
                            },
                            Ok(r) => counts.failures.push(format!("thread {t}: status {}", r.status())),
                            Err(ureq::Error::Status(code, r)) => counts
                                .failures
                                .push(format!("thread {t}: status {code}: {}", r.into_string().unwrap_or_default())),
                            Err(e) => counts.failures.push(format!("thread {t}: transport: {e}")),
                        }
                    }
                    counts
                })
            })
            .collect();
        Load { stop, ok, threads }
    }

    /// Answers with status 200 so far, over all threads.
    pub fn ok(&self) -> usize {
        self.ok.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `n` more requests have succeeded (panics after 120 s).
    pub fn wait_for_more(&self, n: usize) {
        let target = self.ok() + n;
        let start = Instant::now();
        while self.ok() < target {
            assert!(start.elapsed() < Duration::from_secs(120), "the load made no progress in 120 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the clients and sums what they saw.
    pub fn stop(self) -> LoadCounts {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut total = LoadCounts::default();
        for t in self.threads {
            let c = t.join().expect("a load thread panicked");
            total.ok += c.ok;
            total.failures.extend(c.failures);
        }
        total
    }
}
