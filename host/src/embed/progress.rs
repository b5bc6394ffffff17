//! Progress while a run goes: a bar with rate and ETA on a terminal, a plain
//! log line every few seconds otherwise (CI logs, Kubernetes pods).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Reports progress over `total` images.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    start: Instant,
    last_log: Instant,
    every: Duration,
}

impl Progress {
    /// A bar on a terminal (unless `quiet`), log lines every `every` otherwise.
    pub fn new(total: u64, quiet: bool, every: Duration) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal() && total > 0).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} images {per_sec} ETA {eta} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Progress { bar, total, start: Instant::now(), last_log: Instant::now(), every }
    }

    /// Records that `done` images (of which `errors` failed) are finished.
    pub fn update(&mut self, done: u64, errors: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            if errors > 0 {
                bar.set_message(format!("({errors} errors)"));
            }
            return;
        }
        if self.last_log.elapsed() >= self.every && self.total > 0 {
            self.last_log = Instant::now();
            let rate = done as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            let eta = (self.total.saturating_sub(done)) as f64 / rate.max(1e-9);
            tracing::info!(
                done,
                total = self.total,
                errors,
                rate = format!("{rate:.1}/s"),
                eta_s = eta.round(),
                "progress"
            );
            eprintln!("progress: {done}/{} images ({errors} errors), {rate:.1} images/s, ETA {eta:.0} s", self.total);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
