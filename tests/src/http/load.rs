//! The load generator: client threads sending text and image embedding
//! requests in a loop while a test does something to the server (a swap, a
//! fault), counting every answer.

use std::time::{Duration, Instant};

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
