//! How close a device must come to PyTorch's own output on the contract
//! model (tools/make_test_models.py: conv, batch norm, GELU, layer norm,
//! attention-style matmuls, linear; an L2-normalised output, so every value
//! is in [-1, 1] and an absolute bar is also a relative one).
//!
//! One bar per place a model runs, chosen by what ran it (the `device` a
//! plugin's `ModelInfo` reports: `cpu`, `cuda:0`, `mps`, or an ONNX Runtime
//! execution provider), each with its reason. The reference is PyTorch on the
//! CPU in float32.
//!
//! The figures below come from `tools/emulate_precision.py`, which reruns the
//! contract model on the CPU with the inputs of its convolutions and matmuls
//! rounded as the device would round them, and with faults put in (max abs
//! diff to PyTorch's output):
//!
//! | emulated rounding                          | max abs diff |
//! |--------------------------------------------|--------------|
//! | TF32, convolutions only (libtorch default) | 1.1e-4       |
//! | TF32, convolutions and matmuls (ORT CUDA)  | 2.5e-4       |
//! | float16 weights and activations            | 4.1e-4       |
//!
//! | fault                                      | max abs diff |
//! |--------------------------------------------|--------------|
//! | GELU's tanh approximation                  | 8.5e-5       |
//! | input scaled by 1.01                       | 2.5e-3       |
//! | one input pixel off by 1.0                 | 2.9e-3       |
//! | input scaled by 1.1                        | 2.4e-2       |
//! | colour channels swapped (BGR)              | 1.9e-1       |
//! | the two batch rows swapped                 | 2.1e-1       |
//! | batch norm left out                        | 3.3e-1       |
//! | batch norm in training mode                | 3.7e-1       |
//! | another model's weights                    | 5.3e-1       |
//!
//! Each bar sits at least 8 times above its device's emulated rounding and
//! at least 19 times below the smallest gross fault (a layout, batch or
//! weights mistake, 1.9e-1). What a bar gives up: on CUDA and MPS (2e-3) a
//! kernel as close as GELU's tanh form passes; under CoreML (1e-2) so does
//! a 1 % error in the input. The CPU's bar (1e-5) catches all of these.
//! None of the GPU bars has been checked on the hardware yet
//! (docs/platform-setup.md, "Unverified until it runs on the hardware"): the
//! contract prints the diff it saw, to set them by.

/// A bar and the reason for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// The largest absolute difference to PyTorch's output accepted.
    pub max_abs: f32,
    pub why: &'static str,
}

const CPU: Tolerance = Tolerance {
    max_abs: 1e-5,
    why: "float32 on the CPU, the reference's own kernels (oneDNN / MLAS): only summation order differs",
};

/// libtorch lets cuDNN run float32 convolutions in TF32 by default
/// (`torch.backends.cudnn.allow_tf32 = True`), and ONNX Runtime's CUDA
/// provider has `use_tf32` on by default, for convolutions and matmuls
/// alike. TF32 keeps 10 mantissa bits of each input (float32: 23). Nothing in
/// switchyard turns it off (that is the cxx bridge's job, issue 21); once it
/// can, a contract run with TF32 off could go back to about 1e-5.
const CUDA_TF32: Tolerance = Tolerance {
    max_abs: 2e-3,
    why: "CUDA float32 with TF32 on (cuDNN's default in libtorch, `use_tf32` in ONNX Runtime's CUDA provider): \
          10-bit mantissas in convolutions and matmuls, emulated at 1.1e-4 to 2.5e-4 on this model",
};

const MPS: Tolerance = Tolerance {
    max_abs: 2e-3,
    why: "MPS float32: Metal Performance Shaders kernels, fused and reordered, with fast-math where Apple chose it; \
          not bit-comparable with the CPU",
};

/// CoreML may place a model on the Neural Engine, which computes in float16
/// only, or on the GPU in float16; ONNX Runtime's CoreML provider does not
/// force float32 unless asked.
const COREML_F16: Tolerance = Tolerance {
    max_abs: 1e-2,
    why: "CoreML may run the model on the Neural Engine or the GPU in float16 (10-bit mantissas in every \
          activation, not only in the products), emulated at 4.1e-4 on this model",
};

/// The bar for a model that ran on `runs_on` (a `ModelInfo::device`). A place
/// not listed gets the CPU's bar: a new device must state its own.
pub fn for_runs_on(runs_on: &str) -> Tolerance {
    match runs_on {
        "CUDAExecutionProvider" => CUDA_TF32,
        "CoreMLExecutionProvider" => COREML_F16,
        "mps" => MPS,
        _ if runs_on == "cuda" || runs_on.starts_with("cuda:") => CUDA_TF32,
        _ => CPU,
    }
}

/// Compares `got` with PyTorch's `want` under `tolerance`: the max abs diff
/// when within the bar, otherwise what is wrong. A NaN or an infinity is
/// always wrong (a plain max over `abs(a - b)` would pass over NaN).
pub fn check(got: &[f32], want: &[f32], tolerance: Tolerance) -> Result<f32, String> {
    if got.len() != want.len() {
        return Err(format!("{} values where PyTorch gave {}", got.len(), want.len()));
    }
    if let Some(i) = got.iter().position(|v| !v.is_finite()) {
        return Err(format!("value {i} is {} (PyTorch: {})", got[i], want[i]));
    }
    let (worst, diff) = got.iter().zip(want).map(|(a, b)| (a - b).abs()).enumerate().fold((0, 0.0f32), |m, (i, d)| {
        if d > m.1 {
            (i, d)
        } else {
            m
        }
    });
    if diff > tolerance.max_abs {
        return Err(format!(
            "max abs diff {diff:e} at value {worst} ({} vs PyTorch's {}) is over the bar {:e} ({})",
            got[worst], want[worst], tolerance.max_abs, tolerance.why
        ));
    }
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands in for the contract model's output: 2 rows of 10, each L2-normalised.
    fn output() -> Vec<f32> {
        let mut v: Vec<f32> = (0..20).map(|i| ((i * 7 % 11) as f32 - 5.0) / 7.0).collect();
        for row in v.chunks_mut(10) {
            let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= n);
        }
        v
    }

    const EVERY_PLACE: [&str; 8] = [
        "cpu",
        "CPUExecutionProvider",
        "cuda:0",
        "cuda:3",
        "CUDAExecutionProvider",
        "mps",
        "CoreMLExecutionProvider",
        "tpu:0",
    ];

    #[test]
    fn each_place_gets_its_stated_bar() {
        assert_eq!(for_runs_on("cpu"), CPU);
        assert_eq!(for_runs_on("CPUExecutionProvider"), CPU);
        assert_eq!(for_runs_on("cuda:0"), CUDA_TF32);
        assert_eq!(for_runs_on("CUDAExecutionProvider"), CUDA_TF32);
        assert_eq!(for_runs_on("mps"), MPS);
        assert_eq!(for_runs_on("CoreMLExecutionProvider"), COREML_F16);
        // An unknown place is held to the CPU's bar until it states its own.
        assert_eq!(for_runs_on("tpu:0"), CPU);
        assert_eq!(for_runs_on("cudagraph"), CPU);
    }

    #[test]
    fn the_bars_sit_above_the_emulated_rounding_and_far_below_gross_faults() {
        // tools/emulate_precision.py
        const SMALLEST_GROSS_FAULT: f32 = 1.9e-1; // colour channels swapped
        for (place, emulated) in
            [("cuda:0", 2.5e-4), ("CUDAExecutionProvider", 2.5e-4), ("CoreMLExecutionProvider", 4.1e-4)]
        {
            assert!(for_runs_on(place).max_abs >= 8.0 * emulated, "{place}");
        }
        for place in EVERY_PLACE {
            let bar = for_runs_on(place).max_abs;
            assert!(bar * 19.0 <= SMALLEST_GROSS_FAULT, "{place}: {bar}");
        }
        assert!(for_runs_on("cpu").max_abs < 8.5e-5, "the CPU's bar catches a GELU approximation");
    }

    #[test]
    fn the_reference_itself_and_rounding_within_the_bar_pass() {
        let want = output();
        for place in EVERY_PLACE {
            let tolerance = for_runs_on(place);
            assert_eq!(check(&want, &want, tolerance), Ok(0.0), "{place}");
            let rounded: Vec<f32> = want.iter().map(|x| x + tolerance.max_abs * 0.5).collect();
            let diff = check(&rounded, &want, tolerance).unwrap_or_else(|e| panic!("{place}: {e}"));
            assert!(diff > 0.0 && diff <= tolerance.max_abs, "{place}: {diff}");
        }
    }

    #[test]
    fn clearly_wrong_outputs_fail_on_every_device() {
        let want = output();
        let swapped_rows: Vec<f32> = want[10..].iter().chain(&want[..10]).copied().collect();
        let zeros = vec![0.0; want.len()];
        let negated: Vec<f32> = want.iter().map(|x| -x).collect();
        let scaled: Vec<f32> = want.iter().map(|x| x * 1.05).collect();
        let mut one_off = want.clone();
        one_off[13] += 0.03;
        let mut nan = want.clone();
        nan[4] = f32::NAN;
        let mut inf = want.clone();
        inf[0] = f32::INFINITY;
        let faults = [
            ("rows swapped", swapped_rows),
            ("zeros", zeros),
            ("negated", negated),
            ("scaled by 1.05", scaled),
            ("one value off by 0.03", one_off),
            ("a NaN", nan),
            ("an infinity", inf),
            ("one value short", want[..19].to_vec()),
        ];
        for place in EVERY_PLACE {
            for (fault, got) in &faults {
                let r = check(got, &want, for_runs_on(place));
                assert!(r.is_err(), "{place}: {fault} passed with {r:?}");
            }
        }
        let over = want.iter().map(|x| x + 2.0 * CUDA_TF32.max_abs).collect::<Vec<_>>();
        let e = check(&over, &want, for_runs_on("cuda:0")).unwrap_err();
        assert!(e.contains("over the bar") && e.contains("TF32"), "{e}");
        let e = check(&faults[5].1, &want, CPU).unwrap_err();
        assert!(e.contains("value 4 is NaN"), "{e}");
    }
}
