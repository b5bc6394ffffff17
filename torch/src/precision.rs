//! oneDNN's float32 precision on the CPU, per model, over a process-wide switch.
//!
//! `fp32_matmul=bf16` in a model's spec (the CLIP engine `torchscript-bf16`)
//! runs its float32 matmuls and convolutions the way
//! `torch.backends.mkldnn.matmul.fp32_precision = "bf16"` does: inputs
//! rounded to bfloat16, float32 accumulation and outputs, on AMX tiles.
//! Everything else (LayerNorm, softmax, GELU, the residual stream) stays
//! float32. libtorch keeps that switch in its global context, so one
//! process holding an exact model and a bf16 one must not let them overlap:
//! [`with_precision`] lets calls of the same precision run together and
//! makes a call of the other precision wait until they are done, then flips
//! the switch.
//!
//! Only AMX makes it pay. Measured on a Sapphire Rapids-class Xeon with
//! oneDNN capped by `ONEDNN_MAX_CPU_ISA` (docs/benchmarks.md): below
//! `AVX512_CORE_AMX` (AVX-512-BF16, VNNI, plain AVX-512) oneDNN computes
//! float32 anyway, the same numbers as the exact path, and 23-25% slower
//! than libtorch's own float32 GEMMs; on AVX2 the switch changes nothing.
//! So the torch backend turns it on only where [`amx_bf16`] says so and
//! runs exact float32 elsewhere.

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

/// Whether oneDNN will run bf16 matmuls on AMX tiles here: the CPU reports
/// AMX-TILE and AMX-BF16, the OS keeps the tile state (XCR0 bits 17 and 18;
/// oneDNN asks Linux for the permission itself), and `ONEDNN_MAX_CPU_ISA`
/// (or its old name `DNNL_MAX_CPU_ISA`) does not cap oneDNN below AMX.
pub fn amx_bf16() -> bool {
    let cap = std::env::var("ONEDNN_MAX_CPU_ISA").or_else(|_| std::env::var("DNNL_MAX_CPU_ISA")).ok();
    isa_cap_allows_amx(cap.as_deref()) && cpu_has_amx_bf16()
}

/// Whether a `ONEDNN_MAX_CPU_ISA` value leaves AMX to oneDNN (unset, `ALL`,
/// `DEFAULT`, or an ISA name with AMX in it such as `AVX512_CORE_AMX`).
fn isa_cap_allows_amx(cap: Option<&str>) -> bool {
    match cap.map(str::trim) {
        None | Some("") => true,
        Some(cap) => {
            let cap = cap.to_ascii_uppercase();
            cap == "ALL" || cap == "DEFAULT" || cap.contains("AMX")
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_amx_bf16() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    if __cpuid(0).eax < 7 {
        return false;
    }
    let (leaf1, leaf7) = (__cpuid(1), __cpuid_count(7, 0));
    let amx_bf16 = leaf7.edx & (1 << 22) != 0;
    let amx_tile = leaf7.edx & (1 << 24) != 0;
    let osxsave = leaf1.ecx & (1 << 27) != 0;
    if !(amx_bf16 && amx_tile && osxsave) {
        return false;
    }
    #[target_feature(enable = "xsave")]
    unsafe fn xcr0() -> u64 {
        std::arch::x86_64::_xgetbv(0)
    }
    // SAFETY: OSXSAVE is set, so XGETBV is available and XCR0 readable.
    let xcr0 = unsafe { xcr0() };
    xcr0 & (0b11 << 17) == 0b11 << 17
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_amx_bf16() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::isa_cap_allows_amx;

    #[test]
    fn an_isa_cap_below_amx_turns_bf16_matmuls_off() {
        for cap in [None, Some(""), Some("ALL"), Some("default"), Some("AVX512_CORE_AMX"), Some("avx10_1_512_amx_fp16")]
        {
            assert!(isa_cap_allows_amx(cap), "{cap:?}");
        }
        for cap in ["AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE", "AVX2", "SSE41"] {
            assert!(!isa_cap_allows_amx(Some(cap)), "{cap}");
        }
    }
}
