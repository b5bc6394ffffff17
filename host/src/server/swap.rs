//! Plugin swaps while serving: SIGHUP or `POST /admin/reload` switch the
//! running service to the plugin that selection picks now (a new file in the
//! plugin folder, or another one chosen), with no failed request.
//!
//! A swap is validated before anything stops: the settings are read again
//! from the command line and environment the process was started with (what
//! the next image will read), and selection runs with every candidate checked
//! in a child process (`switchyard inspect-plugin`), as at startup. If no
//! plugin would be selected the swap is refused and the old plugin keeps
//! serving. Otherwise the server drains (responses carry `Connection: close`,
//! then it stops accepting and finishes the requests in flight, bounded) and
//! re-executes itself in place with the listening socket ([`super::handoff`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use super::handoff::SwapHistory;
use super::listener::Phase;
use crate::loader::LoadPlan;
use crate::runtime::{select, RuntimeError};

/// Reads the serve settings again, as the next image will: from this
/// process's command line and environment.
pub type Replan = Arc<dyn Fn() -> Result<LoadPlan, String> + Send + Sync>;

/// Why a swap was refused; the old plugin keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("the models are still loading; swap once /ready answers 200")]
    NotReady,
    #[error("a swap is already under way; wait for it (the server re-executes and /info shows the new plugin)")]
    InProgress,
    #[error(
        "the settings cannot be read again: {reason}; fix them (DEVICE, FORCE_CPU, SWITCHYARD_PLUGIN_DIR) and retry"
    )]
    Settings { reason: String },
    #[error("the switchyard executable is unknown, so candidates cannot be checked in a child process; restart the service instead")]
    NoExecutable,
    #[error("no plugin would be selected, so the swap is refused and `{}` keeps serving: {reason}", current.display())]
    Selection { current: PathBuf, reason: String },
    #[error("plugin swaps re-execute the process keeping its listening socket, which needs a Unix system; restart the service to change plugins")]
    Unsupported,
    #[error("the swap check stopped unexpectedly; the old plugin keeps serving")]
    Panicked,
}

/// A plugin as a swap reports it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginId {
    pub plugin_path: PathBuf,
    /// `None` when the file could not be read ([`crate::plugins::load::plugin_sha256`]).
    pub plugin_sha256: Option<String>,
}

/// A validated swap, answered by `POST /admin/reload` (202).
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub status: &'static str,
    pub from: PluginId,
    pub to: PluginId,
    /// The device the new plugin was checked on.
    pub device: String,
    /// Swaps this process will have been through once this one is done.
    pub swap: u64,
}

/// The swap state shared by the signal handler, the admin route and the server loop.
pub struct SwapControl {
    replan: Replan,
    /// What the previous images passed on.
    pub history: SwapHistory,
    in_progress: AtomicBool,
    /// Set once a swap is validated: responses get `Connection: close`.
    pub draining: AtomicBool,
    phase: watch::Sender<Phase>,
    /// Filled when a swap is validated, for the next image.
    next: std::sync::Mutex<Option<SwapHistory>>,
}

impl SwapControl {
    pub fn new(replan: Replan, history: SwapHistory, phase: watch::Sender<Phase>) -> Self {
        SwapControl {
            replan,
            history,
            in_progress: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            phase,
            next: std::sync::Mutex::new(None),
        }
    }

    /// The history to hand to the next image (set by a validated swap).
    pub fn next_history(&self) -> Option<SwapHistory> {
        self.next.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Validates a swap away from the plugin serving now (`None` while the
    /// models load) and, if it would work, starts the drain; `trigger` is for the log.
    pub async fn request(&self, current: Option<PluginId>, trigger: &'static str) -> Result<Planned, SwapError> {
        let result = self.try_request(current, trigger).await;
        if let Err(e) = &result {
            tracing::warn!(trigger, error = %e, "plugin swap refused; still serving the old plugin");
        }
        result
    }

    async fn try_request(&self, current: Option<PluginId>, trigger: &'static str) -> Result<Planned, SwapError> {
        let control = self;
        if !cfg!(unix) {
            return Err(SwapError::Unsupported);
        }
        let from = current.ok_or(SwapError::NotReady)?;
        if control.in_progress.swap(true, Ordering::SeqCst) {
            return Err(SwapError::InProgress);
        }
        tracing::info!(trigger, "plugin swap requested; checking the candidate in a child process");
        let replan = control.replan.clone();
        let current = from.plugin_path.clone();
        let checked = tokio::task::spawn_blocking(move || validate(&replan, current)).await;
        let (to, device) = match checked {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return Err(control.refuse(e)),
            Err(_) => return Err(control.refuse(SwapError::Panicked)),
        };
        let swap = control.history.count + 1;
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        *control.next.lock().unwrap_or_else(|e| e.into_inner()) = Some(SwapHistory {
            count: swap,
            last_unix_ms: Some(now_ms),
            previous_plugin_path: Some(from.plugin_path.clone()),
            previous_plugin_sha256: from.plugin_sha256.clone(),
        });
        tracing::info!(
            trigger,
            swap,
            from = %from.plugin_path.display(),
            from_sha256 = from.plugin_sha256.as_deref().unwrap_or("unreadable"),
            to = %to.plugin_path.display(),
            to_sha256 = to.plugin_sha256.as_deref().unwrap_or("unreadable"),
            device = %device,
            "plugin swap validated; draining, then re-executing with the listening socket"
        );
        control.draining.store(true, Ordering::SeqCst);
        let _ = control.phase.send(Phase::Swap);
        Ok(Planned { status: "swapping", from, to, device, swap })
    }

    fn refuse(&self, e: SwapError) -> SwapError {
        self.in_progress.store(false, Ordering::SeqCst);
        e
    }
}

/// Selection as the next image would run it, every candidate checked in a child process.
fn validate(replan: &Replan, current: PathBuf) -> Result<(PluginId, String), SwapError> {
    let plan = replan().map_err(|reason| SwapError::Settings { reason })?;
    if plan.runtime.inspect_exe.is_none() {
        return Err(SwapError::NoExecutable);
    }
    let hardware = crate::hardware::probe();
    let selection = select(&plan.settings, &plan.runtime, &hardware)
        .map_err(|e: RuntimeError| SwapError::Selection { current, reason: crate::util::error_chain(&e) })?;
    let sha = crate::plugins::load::plugin_sha256(&selection.plugin);
    let device = selection.device().to_string();
    Ok((PluginId { plugin_path: selection.plugin.clone(), plugin_sha256: sha }, device))
}
