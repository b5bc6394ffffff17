//! Log output: the filter (`SWITCHYARD_LOG`, else `RUST_LOG`, else a default
//! per subcommand) and the line format (`SWITCHYARD_LOG_FORMAT`: text for a
//! terminal, json for a log collector: one object a line, with the fields of
//! the event and of every span it is in, so a request's id, batch, device and
//! timings can be queried).

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

static JSON_LINES: AtomicBool = AtomicBool::new(false);

/// Whether standard error carries JSON lines: then nothing else may be
/// printed there (a collector would fail on a plain line).
pub fn json_lines() -> bool {
    JSON_LINES.load(Ordering::Relaxed)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal).
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, the event's
    /// fields (`message` among them), `span` (the innermost) and `spans` (all).
    Json,
}

/// Where the filter came from, for the warning when it does not parse.
fn filter_source(explicit: Option<&str>) -> (Option<String>, &'static str) {
    match explicit {
        Some(f) => (Some(f.to_string()), "SWITCHYARD_LOG"),
        None => (std::env::var("RUST_LOG").ok().filter(|f| !f.trim().is_empty()), "RUST_LOG"),
    }
}

/// Installs the global subscriber on standard error. `explicit` is
/// `SWITCHYARD_LOG` / `--log`; `RUST_LOG` is read when it is unset. Returns a
/// warning to print when the filter does not parse (the default is used).
pub fn init(explicit: Option<&str>, default: &str, format: LogFormat) -> Option<String> {
    let (wanted, source) = filter_source(explicit);
    let (filter, warning) = match wanted {
        None => (EnvFilter::new(default), None),
        Some(f) => match EnvFilter::try_new(&f) {
            Ok(filter) => (filter, None),
            Err(e) => (
                EnvFilter::new(default),
                Some(format!(
                    "warning: `{source}={f}` is not a log filter ({e}); logging at `{default}`. Use a level (error, warn, info, debug, trace) or `target=level` pairs, e.g. `switchyard=debug`"
                )),
            ),
        },
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => {
            JSON_LINES.store(true, Ordering::Relaxed);
            builder.json().flatten_event(true).with_current_span(true).with_span_list(true).init()
        }
    }
    warning
}
