//! oneDNN's float32 precision on the CPU, per model, over a process-wide switch.
//!
//! `fp32_matmul=bf16` in a model's spec (the CLIP engine `torchscript-bf16`)
//! runs its float32 matmuls and convolutions the way
//! `torch.backends.mkldnn.matmul.fp32_precision = "bf16"` does: inputs
//! rounded to bfloat16, float32 accumulation and outputs, on AMX or
//! AVX-512-BF16. Everything else (LayerNorm, softmax, GELU, the residual
//! stream) stays float32. libtorch keeps that switch in its global context,
//! so one process holding an exact model and a bf16 one must not let them
//! overlap: [`with_precision`] lets calls of the same precision run together
//! and makes a call of the other precision wait until they are done, then
//! flips the switch. Without bfloat16 hardware there is nothing to gain:
//! libtorch runs float32 on CPUs below AVX-512, and on AVX-512 without BF16
//! oneDNN may emulate the rounding (unmeasured; [`bf16_hardware`] says
//! which case this is, for the model notes).

use std::sync::{Condvar, Mutex};

/// The switch as last set, and how many calls run under it now.
struct State {
    bf16: bool,
    running: usize,
}

static STATE: Mutex<State> = Mutex::new(State { bf16: false, running: 0 });
static TURN: Condvar = Condvar::new();

/// Runs `body` with oneDNN's float32 precision at bf16 (`bf16`) or IEEE float32.
pub fn with_precision<T>(bf16: bool, body: impl FnOnce() -> T) -> Result<T, cxx::Exception> {
    {
        let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
        while state.running > 0 && state.bf16 != bf16 {
            state = TURN.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.bf16 != bf16 {
            crate::bridge::set_mkldnn_bf16(bf16)?;
            state.bf16 = bf16;
        }
        state.running += 1;
    }
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
            state.running -= 1;
            if state.running == 0 {
                TURN.notify_all();
            }
        }
    }
    let _done = Done;
    Ok(body())
}

/// Whether this CPU has the bfloat16 instructions that make oneDNN's bf16
/// matmuls pay (AVX-512-BF16, which every AMX-BF16 CPU has too).
pub fn bf16_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
