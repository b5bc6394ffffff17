//! The models behind `POST /predict` (Immich's protocol): loaded from the
//! Immich model cache on first use, each behind its own queue and worker.
//!
//! Immich's server names a model in every request (`ViT-B-32__openai`,
//! `buffalo_l`, ...), so nothing is loaded at startup: the first request for
//! a name loads it (on the blocking pool; requests for the same name wait for
//! that one load, and a failed load is retried by the next request), starts
//! its [`Batcher`], and keeps it for the life of the process. With
//! `SWITCHYARD_MODEL_IDLE_TTL_S` a janitor unloads idle weights as it does
//! for the other models; the next request loads them again. With
//! `FALLBACK=cpu` each model is loaded on the CPU plugin too, and a batch the
//! selected device fails is retried there ([`Devices`]).
//!
//! Immich exports its CLIP towers with a batch of 1, so their batches run
//! item by item on the worker (still one device call at a time, in queue
//! order); the face worker embeds the faces of all its images together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_core::abi::BackendBox;
use tokio::sync::OnceCell;

use super::batcher::{Batcher, QueueError};
use super::config::BatchConfig;
use super::devices::Devices;
use super::error::ApiError;
use super::metrics::{Metrics, Queue};
use crate::image::RgbImage;
use crate::immich::clip::{Textual, Tokens, Visual};
use crate::immich::faces::{Faces, ImmichFace};
use crate::immich::{ImmichError, ModelCache};
use crate::resident::ResidentSet;

/// A loaded model, on the selected device (and the fallback), and its queue.
pub struct Served<P, I, O> {
    pub model: Arc<P>,
    pub devices: Arc<Devices<P>>,
    pub queue: Batcher<I, O>,
}

pub type VisualModel = Served<Visual, Vec<f32>, Vec<f32>>;
pub type TextualModel = Served<Textual, Tokens, Vec<f32>>;
/// A face request's item: the decoded image and its `minScore`.
pub type FaceItem = (Arc<RgbImage>, f32);
pub type FacesModel = Served<Faces, FaceItem, Vec<ImmichFace>>;

/// Models by cleaned name, each loaded once.
struct Registry<T> {
    slots: Mutex<HashMap<String, Arc<OnceCell<Arc<T>>>>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry { slots: Mutex::new(HashMap::new()) }
    }
}

impl<T: Send + Sync + 'static> Registry<T> {
    /// The model `key`, loaded by `load` on the blocking pool the first time.
    async fn get(
        &self,
        key: String,
        load: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<Arc<T>, ApiError> {
        let slot = self.slots.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_default().clone();
        let got = slot
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(load)
                    .await
                    .map_err(|e| ApiError::Internal(format!("loading an Immich model stopped: {e}")))?
                    .map(Arc::new)
            })
            .await
            .cloned();
        if got.is_err() {
            // Unknown names must not pile up; the next request for it tries again.
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.get(&key).is_some_and(|s| s.get().is_none()) {
                slots.remove(&key);
            }
        }
        got
    }

    /// The loaded models, by name.
    fn loaded(&self) -> Vec<(String, Arc<T>)> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = slots.iter().filter_map(|(k, s)| s.get().map(|m| (k.clone(), m.clone()))).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Maps a model failure to the answer: a missing model is 404 `model_not_found`.
pub fn api_error(e: ImmichError) -> ApiError {
    match e {
        ImmichError::ModelMissing { .. } | ImmichError::BadName { .. } => ApiError::ModelUnavailable(e.to_string()),
        ImmichError::Unsupported { .. } | ImmichError::Tokenize { .. } => ApiError::Validation(e.to_string()),
        other => ApiError::Internal(crate::util::error_chain(&other)),
    }
}

/// The Immich routes' models.
pub struct ImmichService {
    pub cache: ModelCache,
    primary: (Arc<BackendBox>, String),
    fallback: Option<(Arc<BackendBox>, String)>,
    batch: BatchConfig,
    metrics: Arc<Metrics>,
    visual: Registry<VisualModel>,
    textual: Registry<TextualModel>,
    faces: Registry<FacesModel>,
}

impl ImmichService {
    /// No model is loaded yet; with a `ttl`, a janitor thread unloads idle weights.
    pub fn new(
        cache: ModelCache,
        primary: (Arc<BackendBox>, String),
        fallback: Option<(Arc<BackendBox>, String)>,
        batch: BatchConfig,
        metrics: Arc<Metrics>,
        ttl: Option<Duration>,
    ) -> std::io::Result<Arc<ImmichService>> {
        let service = Arc::new(ImmichService {
            cache,
            primary,
            fallback,
            batch,
            metrics,
            visual: Registry::default(),
            textual: Registry::default(),
            faces: Registry::default(),
        });
        if let Some(ttl) = ttl {
            start_janitor(ttl, Arc::downgrade(&service))?;
        }
        Ok(service)
    }

    /// Loads `load` on the selected device (and the fallback) and starts its worker.
    fn serve<P, I, O>(
        &self,
        queue: Queue,
        load: impl Fn(Arc<BackendBox>) -> Result<P, ImmichError>,
        run: impl Fn(&P, &[I]) -> Result<Vec<O>, ImmichError> + Send + Sync + 'static,
    ) -> Result<Served<P, I, O>, ApiError>
    where
        P: Send + Sync + 'static,
        I: Send + 'static,
        O: Send + 'static,
    {
        let model = Arc::new(load(self.primary.0.clone()).map_err(api_error)?);
        let fallback = match &self.fallback {
            Some((backend, label)) => Some((Arc::new(load(backend.clone()).map_err(api_error)?), label.clone())),
            None => None,
        };
        let devices = Arc::new(Devices::new(queue.name(), model.clone(), &self.primary.1, fallback));
        let on = devices.clone();
        let queue = Batcher::start(
            queue,
            self.batch,
            self.primary.1.clone(),
            self.metrics.clone(),
            Box::new(move |items: Vec<I>| on.run(|p| run(p, &items))),
        )
        .map_err(|e| ApiError::Internal(format!("cannot start a model worker thread: {e}")))?;
        Ok(Served { model, devices, queue })
    }

    /// The CLIP image tower `name`, loaded on first use.
    pub async fn visual(self: &Arc<Self>, name: &str) -> Result<Arc<VisualModel>, ApiError> {
        let files = self.cache.visual(name).map_err(api_error)?;
        let this = self.clone();
        self.visual
            .get(files.name.clone(), move || {
                this.serve(
                    Queue::ImmichVisual,
                    |b| Visual::load(b, &files),
                    |m, images: &[Vec<f32>]| m.embed(&images.iter().map(Vec::as_slice).collect::<Vec<_>>()),
                )
            })
            .await
    }

    /// The CLIP text tower `name` with its tokenizer, loaded on first use.
    pub async fn textual(self: &Arc<Self>, name: &str) -> Result<Arc<TextualModel>, ApiError> {
        let files = self.cache.textual(name).map_err(api_error)?;
        let this = self.clone();
        self.textual
            .get(files.name.clone(), move || {
                this.serve(
                    Queue::ImmichTextual,
                    |b| Textual::load(b, &files),
                    |m, texts: &[Tokens]| m.embed(&texts.iter().collect::<Vec<_>>()),
                )
            })
            .await
    }

    /// The face models `detection` + `recognition`, loaded on first use.
    pub async fn faces(self: &Arc<Self>, detection: &str, recognition: &str) -> Result<Arc<FacesModel>, ApiError> {
        let files = self.cache.faces(detection, recognition).map_err(api_error)?;
        let this = self.clone();
        let key = format!("{}\n{}", files.detection_name, files.recognition_name);
        self.faces
            .get(key, move || {
                this.serve(
                    Queue::ImmichFaces,
                    |b| Faces::load(b, &files),
                    |m, items: &[FaceItem]| {
                        m.detect_and_embed(&items.iter().map(|(img, score)| (&**img, *score)).collect::<Vec<_>>())
                    },
                )
            })
            .await
    }

    /// Unloads the weights of every model idle for `ttl`.
    fn unload_idle(&self, ttl: Duration) {
        for (_, m) in self.visual.loaded() {
            m.model.resident().unload_if_idle(ttl);
        }
        for (_, m) in self.textual.loaded() {
            m.model.resident().unload_if_idle(ttl);
        }
        for (_, m) in self.faces.loaded() {
            m.model.resident().unload_if_idle(ttl);
        }
    }

    /// 503 `backend_stuck` when a loaded model's worker is stuck in a device call.
    pub fn check_healthy(&self) -> Result<(), QueueError> {
        self.visual.loaded().iter().try_for_each(|(_, m)| m.queue.check_healthy())?;
        self.textual.loaded().iter().try_for_each(|(_, m)| m.queue.check_healthy())?;
        self.faces.loaded().iter().try_for_each(|(_, m)| m.queue.check_healthy())
    }

    /// The cache and what is loaded from it, for `/info`.
    pub fn report(&self) -> Value {
        let entry = |name: &str, r: &ResidentSet, device: Value, random: bool| json!({"name": name, "device": device, "loaded": r.is_loaded(), "reloads": r.reloads(), "random_weights": random});
        let visual: Vec<Value> = self
            .visual
            .loaded()
            .iter()
            .map(|(n, m)| entry(n, m.model.resident(), json!(m.model.device()), m.model.random_weights))
            .collect();
        let textual: Vec<Value> = self
            .textual
            .loaded()
            .iter()
            .map(|(n, m)| entry(n, m.model.resident(), json!(m.model.device()), m.model.random_weights))
            .collect();
        let faces: Vec<Value> = self
            .faces
            .loaded()
            .iter()
            .map(|(n, m)| {
                let (det, rec) = m.model.devices();
                let name = n.replace('\n', " + ");
                entry(
                    &name,
                    m.model.resident(),
                    json!({"detection": det, "recognition": rec}),
                    m.model.random_weights(),
                )
            })
            .collect();
        json!({"cache": self.cache.root(), "clip_visual": visual, "clip_textual": textual, "facial_recognition": faces})
    }

    /// Stops the workers after they finish what is queued.
    pub fn close(&self) {
        self.visual.loaded().iter().for_each(|(_, m)| m.queue.close());
        self.textual.loaded().iter().for_each(|(_, m)| m.queue.close());
        self.faces.loaded().iter().for_each(|(_, m)| m.queue.close());
    }
}

fn start_janitor(ttl: Duration, service: Weak<ImmichService>) -> std::io::Result<()> {
    let tick = (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    std::thread::Builder::new().name("immich-janitor".into()).spawn(move || loop {
        std::thread::sleep(tick);
        let Some(service) = service.upgrade() else { return };
        service.unload_idle(ttl);
    })?;
    Ok(())
}
