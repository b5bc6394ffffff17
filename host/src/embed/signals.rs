//! Stop requests for `switchyard embed`: SIGINT (Ctrl-C) and SIGTERM (what
//! Kubernetes, systemd and `docker stop` send) both ask the run to finish
//! the batch in flight, write the output and the metadata and exit with
//! 128 + the signal (130, 143), so a Job sees a failure and its retry
//! continues with `--resume`. A second signal exits at once (the output
//! stays valid for `--resume`: whole lines only).
//!
//! The signals are read on a thread of their own (signal-hook's iterator),
//! so nothing but a pipe write runs in the signal handler itself.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The stop request a run polls, and which signal made it.
#[derive(Debug, Clone, Default)]
pub struct StopRequest {
    flag: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
}

impl StopRequest {
    /// The flag [`super::run`] polls.
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// The first signal received, if any.
    pub fn signal(&self) -> Option<i32> {
        Some(self.signal.load(Ordering::SeqCst)).filter(|s| *s != 0)
    }

    /// The signal's name, for the metadata and the summary.
    pub fn signal_name(&self) -> Option<&'static str> {
        self.signal().map(name)
    }

    /// The exit status of a run this request stopped: 128 + the signal.
    pub fn exit_code(&self) -> Option<u8> {
        self.signal().map(|s| (128 + s) as u8)
    }

    /// Records `signal`; true when it is the first one.
    fn record(&self, signal: i32) -> bool {
        let first = self.signal.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok();
        self.flag.store(true, Ordering::SeqCst);
        first
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Starts listening for SIGINT and SIGTERM. Call it before the models load,
/// so that a stop during loading is a clean stop too.
pub fn install() -> std::io::Result<StopRequest> {
    let stop = StopRequest::default();
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let seen = stop.clone();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            if seen.record(signal) {
                eprintln!(
                    "{}: finishing the batch in flight, then writing the output and the metadata (send it again to exit now)",
                    name(signal)
                );
            } else {
                eprintln!("{}: exiting now; --resume continues the output", name(signal));
                std::process::exit(128 + signal);
            }
        }
    })?;
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_names_the_exit_code() {
        let stop = StopRequest::default();
        assert_eq!(stop.exit_code(), None);
        assert!(stop.record(SIGTERM));
        assert!(!stop.record(SIGINT));
        assert!(stop.flag().load(Ordering::SeqCst));
        assert_eq!(stop.exit_code(), Some(143));
        assert_eq!(stop.signal_name(), Some("SIGTERM"));
    }
}
