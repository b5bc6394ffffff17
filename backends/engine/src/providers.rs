//! ONNX Runtime execution providers: the order to try them in, and which one
//! a session actually got.
//!
//! Each plugin has a default order (backend-cuda: CUDA then CPU; backend-mps:
//! CoreML then CPU; backend-cpu: CPU). `ONNX_PROVIDERS`, validated by the
//! host, replaces it. A provider this ONNX Runtime build lacks, or one whose
//! registration fails (no GPU, missing CUDA libraries), is skipped with its
//! reason recorded; the CPU provider is always last and always works.

use ort::ep::{CoreML, ExecutionProvider as _, CPU, CUDA};
use ort::session::builder::SessionBuilder;
use switchyard_core::settings::ExecutionProvider;

/// The order to try: `requested` (ORT names from the host) or the plugin's default, CPU appended.
pub fn plan(requested: &[String], default: &[ExecutionProvider]) -> Vec<ExecutionProvider> {
    let mut order: Vec<ExecutionProvider> =
        if requested.is_empty() { default.to_vec() } else { requested.iter().filter_map(|r| r.parse().ok()).collect() };
    order.retain(|p| *p != ExecutionProvider::Cpu);
    order.push(ExecutionProvider::Cpu);
    order
}

/// The providers this ONNX Runtime build was compiled with, of those switchyard knows.
pub fn compiled_in() -> Vec<ExecutionProvider> {
    let mut out = Vec::new();
    if CUDA::is_available().unwrap_or(false) {
        out.push(ExecutionProvider::Cuda);
    }
    if CoreML::is_available().unwrap_or(false) {
        out.push(ExecutionProvider::CoreMl);
    }
    if CPU::is_available().unwrap_or(true) {
        out.push(ExecutionProvider::Cpu);
    }
    out
}

/// What registration gave.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The provider the session runs on (first registered).
    pub provider: ExecutionProvider,
    /// Providers passed over, with the reason.
    pub skipped: Vec<(ExecutionProvider, String)>,
}

/// Registers the first provider in `order` that works; CPU needs no registration.
pub fn register(
    mut builder: SessionBuilder,
    order: &[ExecutionProvider],
    cuda_device: i32,
) -> (SessionBuilder, Registered) {
    let mut skipped = Vec::new();
    let compiled = compiled_in();
    for &provider in order {
        if provider == ExecutionProvider::Cpu {
            return (builder, Registered { provider, skipped });
        }
        if !compiled.contains(&provider) {
            let hint = match provider {
                ExecutionProvider::Cuda => {
                    "install the onnxruntime-gpu wheel (Linux + NVIDIA) and point ORT_DYLIB_PATH at its library"
                }
                _ => "ONNX Runtime's macOS build has it; other platforms do not",
            };
            skipped.push((provider, format!("this ONNX Runtime build has no {provider}; {hint}")));
            continue;
        }
        let dispatch = match provider {
            ExecutionProvider::Cuda => CUDA::default().with_device_id(cuda_device).build(),
            _ => CoreML::default().build(),
        };
        match builder.with_execution_providers([dispatch.error_on_failure()]) {
            Ok(b) => return (b, Registered { provider, skipped }),
            Err(e) => {
                skipped.push((provider, format!("registering {provider} failed: {e}")));
                builder = e.recover();
            }
        }
    }
    (builder, Registered { provider: ExecutionProvider::Cpu, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_uses_the_default_and_always_ends_with_cpu() {
        let d = [ExecutionProvider::Cuda];
        assert_eq!(plan(&[], &d), vec![ExecutionProvider::Cuda, ExecutionProvider::Cpu]);
        let r = vec!["CPUExecutionProvider".to_string(), "CoreMLExecutionProvider".to_string()];
        assert_eq!(plan(&r, &d), vec![ExecutionProvider::CoreMl, ExecutionProvider::Cpu]);
    }
}
