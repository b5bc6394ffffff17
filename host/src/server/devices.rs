//! Where a model queue's batches run: the pipeline on the selected device
//! and, with `FALLBACK=cpu`, the same pipeline on the CPU plugin.
//!
//! A batch that fails on the selected device (a run-time device failure:
//! anything but a bad input) is retried once on the CPU; the batch, the log
//! line and the response's `x-device` header say which device served it, and
//! `/info` counts batches per device.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use switchyard_core::abi::{BackendError, ErrorKind};

use super::batcher::{BatchFailure, FailureKind, Ran};
use crate::util::error_chain;

/// One pipeline on one device, with the batches it served.
struct OnDevice<P> {
    pipeline: Arc<P>,
    device: Arc<str>,
    served: AtomicU64,
}

impl<P> OnDevice<P> {
    fn new(pipeline: Arc<P>, device: &str) -> Self {
        OnDevice { pipeline, device: Arc::from(device), served: AtomicU64::new(0) }
    }
}

/// A model's pipeline on the selected device, and on the CPU fallback if there is one.
pub struct Devices<P> {
    model: &'static str,
    primary: OnDevice<P>,
    fallback: Option<OnDevice<P>>,
}

/// The kind of the first plugin error in a failure's chain.
fn failure_kind(e: &(dyn std::error::Error + 'static)) -> FailureKind {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(b) = s.downcast_ref::<BackendError>() {
            return match b.kind() {
                ErrorKind::OutOfMemory => FailureKind::OutOfMemory,
                ErrorKind::InvalidInput => FailureKind::InvalidInput,
                _ => FailureKind::Other,
            };
        }
        source = s.source();
    }
    FailureKind::Other
}

impl<P> Devices<P> {
    /// `fallback`: the pipeline on the CPU plugin and its device label.
    pub fn new(model: &'static str, primary: Arc<P>, device: &str, fallback: Option<(Arc<P>, String)>) -> Self {
        Devices {
            model,
            primary: OnDevice::new(primary, device),
            fallback: fallback.map(|(p, d)| OnDevice::new(p, &format!("{d} (fallback)"))),
        }
    }

    /// The pipeline on the selected device.
    pub fn primary(&self) -> &Arc<P> {
        &self.primary.pipeline
    }

    /// Runs `f` on the selected device, and on the fallback if that fails.
    /// A bad input is not retried (no other device would take it); a failure
    /// keeps the selected device's kind, with the fallback's error added.
    pub fn run<T, E>(&self, f: impl Fn(&P) -> Result<Vec<T>, E>) -> Result<Ran<T>, BatchFailure>
    where
        E: std::error::Error + 'static,
    {
        let first = match f(&self.primary.pipeline) {
            Ok(outputs) => return Ok(self.served(&self.primary, outputs)),
            Err(e) => e,
        };
        let failure = BatchFailure { kind: failure_kind(&first), message: error_chain(&first) };
        let Some(fallback) = self.fallback.as_ref().filter(|_| failure.kind != FailureKind::InvalidInput) else {
            return Err(failure);
        };
        tracing::warn!(model = self.model, error = %failure.message, fallback = %fallback.device, "the selected device failed; retrying the batch on the CPU fallback");
        match f(&fallback.pipeline) {
            Ok(outputs) => Ok(self.served(fallback, outputs)),
            Err(e) => Err(BatchFailure {
                message: format!("{}; the CPU fallback failed too: {}", failure.message, error_chain(&e)),
                ..failure
            }),
        }
    }

    fn served<T>(&self, on: &OnDevice<P>, outputs: Vec<T>) -> Ran<T> {
        on.served.fetch_add(1, Ordering::Relaxed);
        Ran { outputs, device: on.device.clone() }
    }

    /// Batches served per device, for `/info`.
    pub fn report(&self) -> Value {
        let mut served = serde_json::Map::new();
        for on in std::iter::once(&self.primary).chain(&self.fallback) {
            served.insert(on.device.to_string(), json!(on.served.load(Ordering::Relaxed)));
        }
        Value::Object(served)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::abi::ErrorCode;

    /// A "pipeline" that is just the error it fails with (`None`: it works).
    type Fails = Option<ErrorCode>;

    fn run(devices: &Devices<Fails>) -> Result<Ran<u8>, BatchFailure> {
        devices.run(|fails: &Fails| match fails {
            Some(code) => Err(BackendError::new(*code, "boom")),
            None => Ok(vec![1]),
        })
    }

    fn devices(primary: Fails, fallback: Option<Fails>) -> Devices<Fails> {
        Devices::new("clip", Arc::new(primary), "cuda:0", fallback.map(|f| (Arc::new(f), "cpu".to_string())))
    }

    #[test]
    fn a_device_failure_is_served_by_the_fallback() {
        let d = devices(Some(ErrorCode::INTERNAL), Some(None));
        assert_eq!(&*run(&d).unwrap().device, "cpu (fallback)");
        assert_eq!(d.report(), json!({"cuda:0": 0, "cpu (fallback)": 1}));
        assert_eq!(&*run(&devices(None, Some(None))).unwrap().device, "cuda:0");
    }

    #[test]
    fn bad_input_and_no_fallback_fail_with_the_first_error() {
        let bad = run(&devices(Some(ErrorCode::INVALID_INPUT), Some(None))).unwrap_err();
        assert!(bad.message.contains("InvalidInput: boom") && !bad.message.contains("fallback"), "{bad:?}");
        assert_eq!(bad.kind, FailureKind::InvalidInput);
        assert!(run(&devices(Some(ErrorCode::INTERNAL), None)).is_err());
        let both = run(&devices(Some(ErrorCode::INTERNAL), Some(Some(ErrorCode::OUT_OF_MEMORY)))).unwrap_err();
        assert!(both.message.contains("the CPU fallback failed too: OutOfMemory: boom"), "{both:?}");
    }

    #[test]
    fn the_plugin_errors_kind_crosses_the_batch_boundary() {
        let oom = run(&devices(Some(ErrorCode::OUT_OF_MEMORY), None)).unwrap_err();
        assert_eq!(oom.kind, FailureKind::OutOfMemory);
        let fault = run(&devices(Some(ErrorCode::INTERNAL), None)).unwrap_err();
        assert_eq!(fault.kind, FailureKind::Other);
        // The selected device's kind stays when the fallback fails too.
        let both = run(&devices(Some(ErrorCode::OUT_OF_MEMORY), Some(Some(ErrorCode::INTERNAL)))).unwrap_err();
        assert_eq!(both.kind, FailureKind::OutOfMemory);
    }
}
