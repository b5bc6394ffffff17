//! Dynamic batching: one queue per model, one worker thread per queue.
//!
//! Requests put their items (texts, or preprocessed images) on the queue; the
//! worker takes up to `max_batch_size` items at once, waiting at most
//! `max_wait` after the oldest waiting item arrived, so items from many
//! clients run through the model together. The model call is blocking
//! (libtorch or ONNX Runtime behind the plugin), hence a plain thread and not
//! a task on the async runtime.
//!
//! The queue counts items, not requests: a request of 40 texts may be split
//! over two batches, and the request is answered when its last item is done.
//! A request that would push the queue over its capacity is refused whole
//! (429) before anything is queued.
//!
//! A request waits at most the configured deadline (queue + inference);
//! then it gets 504 and the worker goes on. A worker stuck in one backend
//! call for longer than the deadline makes [`Batcher::stuck`] say so: new
//! requests for that model are refused with 503 at once and `/ready` turns
//! 503, while the other models keep serving.
//!
//! Each batch runs in a `batch` span whose parent is the span of the request
//! that waited longest, so the request's trace continues into the worker; the
//! span also lists every request id in the batch.
//!
//! The batcher knows nothing of HTTP: it answers with a [`QueueError`], which
//! the route layer maps to its status table (`server::error`).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::Span;

use super::config::BatchConfig;
use super::metrics::{Metrics, Queue};

/// Why a request got no outputs from its queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue holds `capacity` items already (with this request's, more).
    #[error("the `{model}` queue is full ({capacity} items)")]
    Full { model: &'static str, capacity: usize },
    /// The queue is closed: the server is stopping.
    #[error("the `{model}` queue is closed")]
    Closed { model: &'static str },
    /// The request waited `after` (queue + inference) and gave up.
    #[error("no answer from the `{model}` model within {after:?}")]
    Timeout { model: &'static str, after: Duration },
    /// The worker has been inside one backend call for `running`, longer than the deadline.
    #[error("the `{model}` worker has been in one backend call for {running:?}")]
    Stuck { model: &'static str, running: Duration },
    /// The worker ended without answering (it cannot, short of a bug).
    #[error("the `{model}` worker stopped before answering")]
    WorkerGone { model: &'static str },
    /// The batch the request's items ran in failed.
    #[error("the batch failed: {}", .0.message)]
    Failed(BatchFailure),
}

/// Runs one batch on the model; one output per input, in order.
pub type RunBatch<I, O> = Box<dyn Fn(Vec<I>) -> Result<Ran<O>, BatchFailure> + Send>;

/// Why a batch failed, as its requests are told: the kind (from the plugin's
/// error, carried across the batch boundary) picks the answer's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFailure {
    pub kind: FailureKind,
    /// The whole error chain, for the answer and the log.
    pub message: String,
}

/// The kinds of batch failure a client can act on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The device ran out of memory: retry later, or send less.
    OutOfMemory,
    /// The model refused the input: sending it again will not help.
    InvalidInput,
    /// Anything else (a device fault, a panic, a plugin bug).
    Other,
}

impl BatchFailure {
    /// A failure of no particular kind.
    pub fn other(message: impl Into<String>) -> Self {
        BatchFailure { kind: FailureKind::Other, message: message.into() }
    }
}

/// A batch's outputs and the device that computed them (the selected one, or the fallback).
#[derive(Debug)]
pub struct Ran<O> {
    pub outputs: Vec<O>,
    pub device: Arc<str>,
}

/// A request's results with its timings.
#[derive(Debug)]
pub struct Done<O> {
    pub outputs: Vec<O>,
    /// Longest time one of its items waited in the queue.
    pub queue: Duration,
    /// Model time of the batches its items ran in (summed when split).
    pub inference: Duration,
    /// Size of the largest batch its items ran in.
    pub batch_size: usize,
    /// The device that served it (of its last batch, when split).
    pub device: Arc<str>,
}

struct Pending<O> {
    outputs: Vec<Option<O>>,
    remaining: usize,
    queue: Duration,
    inference: Duration,
    batch_size: usize,
    device: Option<Arc<str>>,
    last_batch: Option<Instant>,
    reply: Option<oneshot::Sender<Result<Done<O>, QueueError>>>,
}

struct Request<O> {
    pending: Mutex<Pending<O>>,
    span: Span,
    id: String,
    enqueued: Instant,
}

struct Item<I, O> {
    input: I,
    index: usize,
    request: Arc<Request<O>>,
}

struct State<I, O> {
    items: VecDeque<Item<I, O>>,
    closed: bool,
}

struct Shared<I, O> {
    state: Mutex<State<I, O>>,
    wake: Condvar,
    /// When the batch the worker is running started (`None`: idle).
    running_since: Mutex<Option<Instant>>,
}

/// One model queue and its worker.
pub struct Batcher<I, O> {
    shared: Arc<Shared<I, O>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    queue: Queue,
    capacity: usize,
    deadline: Option<Duration>,
    metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the worker thread for `queue`, running batches with `run` on `device`.
    pub fn start(
        queue: Queue,
        config: BatchConfig,
        device: String,
        metrics: Arc<Metrics>,
        run: RunBatch<I, O>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { items: VecDeque::new(), closed: false }),
            wake: Condvar::new(),
            running_since: Mutex::new(None),
        });
        let worker = {
            let shared = shared.clone();
            let metrics = metrics.clone();
            std::thread::Builder::new()
                .name(format!("batch-{}", queue.name()))
                .spawn(move || worker(&shared, queue, config, &device, &metrics, run))?
        };
        Ok(Self {
            shared,
            worker: Mutex::new(Some(worker)),
            queue,
            capacity: config.queue_capacity,
            deadline: config.request_timeout,
            metrics,
        })
    }

    /// How long the worker has been inside one batch, when that is longer than the deadline.
    pub fn stuck(&self) -> Option<Duration> {
        let deadline = self.deadline?;
        let since = (*lock(&self.shared.running_since))?;
        Some(since.elapsed()).filter(|running| *running > deadline)
    }

    /// [`QueueError::Stuck`] when the worker is stuck (see [`Batcher::stuck`]).
    pub fn check_healthy(&self) -> Result<(), QueueError> {
        match self.stuck() {
            Some(running) => Err(QueueError::Stuck { model: self.queue.name(), running }),
            None => Ok(()),
        }
    }

    /// Queues `inputs` for the current request (its span and id) and waits for their outputs.
    pub async fn submit(&self, inputs: Vec<I>, request_id: &str) -> Result<Done<O>, QueueError> {
        let n = inputs.len();
        let (tx, rx) = oneshot::channel();
        if n == 0 {
            let device = Arc::from("none");
            return Ok(Done {
                outputs: Vec::new(),
                queue: Duration::ZERO,
                inference: Duration::ZERO,
                batch_size: 0,
                device,
            });
        }
        self.check_healthy()?;
        let request = Arc::new(Request {
            pending: Mutex::new(Pending {
                outputs: (0..n).map(|_| None).collect(),
                remaining: n,
                queue: Duration::ZERO,
                inference: Duration::ZERO,
                batch_size: 0,
                device: None,
                last_batch: None,
                reply: Some(tx),
            }),
            span: Span::current(),
            id: request_id.to_string(),
            enqueued: Instant::now(),
        });
        {
            let mut state = lock(&self.shared.state);
            if state.closed {
                return Err(QueueError::Closed { model: self.queue.name() });
            }
            if state.items.len() + n > self.capacity {
                return Err(QueueError::Full { model: self.queue.name(), capacity: self.capacity });
            }
            state.items.extend(inputs.into_iter().enumerate().map(|(index, input)| Item {
                input,
                index,
                request: request.clone(),
            }));
            self.metrics.queue_add(self.queue, n as i64);
        }
        self.shared.wake.notify_one();
        let answer = match self.deadline {
            Some(after) => tokio::time::timeout(after, rx)
                .await
                .map_err(|_| QueueError::Timeout { model: self.queue.name(), after })?,
            None => rx.await,
        };
        answer.map_err(|_| QueueError::WorkerGone { model: self.queue.name() })?
    }

    /// Refuses new items, lets the worker finish what is queued, and waits
    /// for it; a worker stuck in a backend call is left behind (it cannot be
    /// interrupted), after the deadline, so that the process can exit.
    pub fn close(&self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake.notify_all();
        let Some(handle) = lock(&self.worker).take() else { return };
        loop {
            if handle.is_finished() {
                let _ = handle.join();
                return;
            }
            if let Some(running) = self.stuck() {
                tracing::error!(
                    model = self.queue.name(),
                    running_s = running.as_secs_f64(),
                    "model worker stuck in a backend call; leaving it behind"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn take_batch<I, O>(shared: &Shared<I, O>, config: &BatchConfig) -> Option<Vec<Item<I, O>>> {
    let mut state = lock(&shared.state);
    loop {
        if let Some(oldest) = state.items.front() {
            let deadline = oldest.request.enqueued + config.max_wait;
            let now = Instant::now();
            if state.items.len() >= config.max_batch_size || now >= deadline || state.closed {
                let n = state.items.len().min(config.max_batch_size);
                return Some(state.items.drain(..n).collect());
            }
            state = shared.wake.wait_timeout(state, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        } else if state.closed {
            return None;
        } else {
            state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn worker<I, O>(
    shared: &Shared<I, O>,
    queue: Queue,
    config: BatchConfig,
    device: &str,
    metrics: &Metrics,
    run: RunBatch<I, O>,
) {
    while let Some(items) = take_batch(shared, &config) {
        let size = items.len();
        metrics.queue_add(queue, -(size as i64));
        let started = Instant::now();
        let queued = started.saturating_duration_since(items[0].request.enqueued);
        let mut ids: Vec<&str> = items.iter().map(|i| i.request.id.as_str()).collect();
        ids.dedup();
        let span = tracing::info_span!(parent: &items[0].request.span, "batch", model = queue.name(), size, device, requests = %ids.join(","), queue_ms = queued.as_secs_f64() * 1e3, inference_ms = tracing::field::Empty);
        for item in &items[1..] {
            span.follows_from(&item.request.span);
        }
        let _entered = span.enter();
        let (meta, inputs): (Vec<_>, Vec<_>) = items.into_iter().map(|i| ((i.index, i.request), i.input)).unzip();
        *lock(&shared.running_since) = Some(started);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| run(inputs)))
            .unwrap_or_else(|_| Err(BatchFailure::other("the model worker panicked")))
            .and_then(|ran| {
                if ran.outputs.len() == size {
                    Ok(ran)
                } else {
                    Err(BatchFailure::other(format!(
                        "the model returned {} outputs for {size} inputs",
                        ran.outputs.len()
                    )))
                }
            });
        *lock(&shared.running_since) = None;
        let inference = started.elapsed();
        span.record("inference_ms", inference.as_secs_f64() * 1e3);
        metrics.batch(queue, size, queued, inference);
        let served_by = result.as_ref().map(|ran| ran.device.clone()).unwrap_or_else(|_| Arc::from(device));
        metrics.served(queue, &served_by, result.is_ok());
        let batch = BatchRun { started, size, queued, inference, device: served_by };
        match result {
            Ok(ran) => {
                tracing::debug!(served_by = %batch.device, "batch done");
                for ((index, request), output) in meta.into_iter().zip(ran.outputs) {
                    deliver(&request, index, Ok(output), &batch);
                }
            }
            Err(failure) => {
                tracing::error!(error = %failure.message, kind = ?failure.kind, "batch failed");
                for (index, request) in meta {
                    deliver(&request, index, Err(failure.clone()), &batch);
                }
            }
        }
    }
}

/// What one batch tells each of its items.
struct BatchRun {
    started: Instant,
    size: usize,
    queued: Duration,
    inference: Duration,
    device: Arc<str>,
}

fn deliver<O>(request: &Request<O>, index: usize, output: Result<O, BatchFailure>, run: &BatchRun) {
    let mut p = lock(&request.pending);
    let Some(reply) = p.reply.as_ref() else { return };
    if reply.is_closed() {
        p.reply = None;
        return;
    }
    let o = match output {
        Ok(o) => o,
        Err(failure) => {
            if let Some(reply) = p.reply.take() {
                let _ = reply.send(Err(QueueError::Failed(failure)));
            }
            return;
        }
    };
    // Several items of one request may share a batch: count its time once.
    if p.last_batch != Some(run.started) {
        p.last_batch = Some(run.started);
        p.inference += run.inference;
    }
    p.queue = p.queue.max(run.queued);
    p.batch_size = p.batch_size.max(run.size);
    p.device = Some(run.device.clone());
    if let Some(slot) = p.outputs.get_mut(index) {
        *slot = Some(o);
    }
    p.remaining = p.remaining.saturating_sub(1);
    if p.remaining == 0 {
        if let Some(reply) = p.reply.take() {
            let outputs: Vec<O> = p.outputs.drain(..).flatten().collect();
            let device = p.device.take().unwrap_or_else(|| Arc::from("none"));
            let done = Done { outputs, queue: p.queue, inference: p.inference, batch_size: p.batch_size, device };
            let _ = reply.send(Ok(done));
        }
    }
}
