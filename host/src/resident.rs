//! Models on the backend that may leave it when idle and come back on demand.
//!
//! CLIP (two towers) and faces (detector + recognizer) each hold a
//! [`ResidentSet`]: the specs of their model files, the handles while they
//! are loaded, and when they were last used. A server with a model idle TTL
//! (`SWITCHYARD_MODEL_IDLE_TTL_S`) calls [`ResidentSet::unload_if_idle`] from
//! a janitor thread, which frees the weights and ONNX Runtime's arenas in the
//! plugin; the next call loads them again before it runs (the request that
//! finds them gone pays the load). The plugin itself stays: plugins are never
//! unloaded. Loading and running take the same lock, so a model is never
//! unloaded under a running call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use switchyard_core::abi::{BackendBox, BackendError, ModelInfo, ModelSpec};

/// Which model of the set failed to load, and why.
#[derive(Debug)]
pub struct LoadFailure {
    pub index: usize,
    pub source: BackendError,
}

/// A set of models loaded together on one backend.
pub struct ResidentSet {
    backend: Arc<BackendBox>,
    specs: Vec<ModelSpec>,
    loaded: RwLock<Option<Vec<ModelInfo>>>,
    epoch: Instant,
    /// Milliseconds after `epoch` of the last use.
    last_used_ms: AtomicU64,
    reloads: AtomicU64,
}

impl ResidentSet {
    /// Loads every spec now, in order.
    pub fn load(backend: Arc<BackendBox>, specs: Vec<ModelSpec>) -> Result<Self, LoadFailure> {
        let infos = load_all(&backend, &specs)?;
        Ok(ResidentSet {
            backend,
            specs,
            loaded: RwLock::new(Some(infos)),
            epoch: Instant::now(),
            last_used_ms: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
        })
    }

    /// The backend the models run on.
    pub fn backend(&self) -> &BackendBox {
        &self.backend
    }

    /// Runs `f` with the loaded models' infos, loading them first if they were unloaded.
    /// The idle clock counts from the end of the last call, set while the
    /// lock is still held, so the janitor (which re-checks under the lock)
    /// never unloads right behind a long call or a reload.
    pub fn with<R>(&self, f: impl FnOnce(&[ModelInfo]) -> R) -> Result<R, LoadFailure> {
        self.touch();
        {
            let guard = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if let Some(infos) = guard.as_deref() {
                let out = f(infos);
                self.touch();
                return Ok(out);
            }
        }
        let mut guard = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            tracing::info!(models = ?self.names(), "loading models again after an idle unload");
            *guard = Some(load_all(&self.backend, &self.specs)?);
            self.reloads.fetch_add(1, Ordering::Relaxed);
        }
        let out = f(guard.as_deref().expect("just loaded"));
        self.touch();
        Ok(out)
    }

    /// Unloads the models if they have not been used for `ttl`; true if it did.
    pub fn unload_if_idle(&self, ttl: Duration) -> bool {
        if self.idle_for() < ttl {
            return false;
        }
        let mut guard = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        // Checked again under the lock: a call may have started meanwhile.
        if self.idle_for() < ttl {
            return false;
        }
        let Some(infos) = guard.take() else { return false };
        for info in infos {
            if let Err(e) = self.backend.unload(info.handle).into_result() {
                tracing::warn!(handle = info.handle, error = %e, "unloading an idle model failed");
            }
        }
        tracing::info!(models = ?self.names(), idle_s = self.idle_for().as_secs(), "unloaded idle models");
        true
    }

    /// Whether the models are on the backend now.
    pub fn is_loaded(&self) -> bool {
        self.loaded.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// How many times the models were loaded again after an idle unload.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        self.last_used_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        self.epoch.elapsed().saturating_sub(Duration::from_millis(self.last_used_ms.load(Ordering::Relaxed)))
    }

    fn names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.to_string()).collect()
    }
}

fn load_all(backend: &BackendBox, specs: &[ModelSpec]) -> Result<Vec<ModelInfo>, LoadFailure> {
    let mut infos = Vec::with_capacity(specs.len());
    for (index, spec) in specs.iter().enumerate() {
        match backend.load_model(spec).into_result() {
            Ok(info) => infos.push(info),
            Err(source) => {
                for info in infos {
                    let _ = backend.unload(info.handle);
                }
                return Err(LoadFailure { index, source });
            }
        }
    }
    Ok(infos)
}
