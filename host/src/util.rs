//! Small helpers shared across the host.

use std::time::Duration;

/// Serializes a duration as fractional milliseconds.
pub fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

pub use switchyard_core::guard::error_chain;

/// Scales a vector to unit length (a zero vector stays zero), in f32 as numpy does.
pub fn l2_normalize(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

/// Logs what the plugin noted while loading a model (e.g. execution providers
/// skipped, with the reason), so an operator sees why a model runs where it runs.
pub fn log_model_notes(model: &str, info: &switchyard_core::abi::ModelInfo) {
    tracing::info!(model, engine = %info.engine, runs_on = %info.device, "model loaded");
    for (key, value) in switchyard_core::abi::kv_to_vec(&info.extra) {
        tracing::warn!(model, "{key}: {value}");
    }
}

/// Defines a function that runs `$imp` compiled a second time for the x86-64
/// CPU feature `$feature` (`"avx2"`, `"fma"`) where the running CPU has it,
/// and as compiled for the baseline everywhere else: the binary stays
/// portable and a newer CPU still gets the wider instructions. `$imp` should
/// be `#[inline(always)]`, so that its body is compiled into the feature
/// version instead of called from it. Only for code whose results do not
/// depend on the instructions chosen (integer arithmetic, fused multiply-adds
/// written as `mul_add`); a test should compare the two where it matters.
///
/// ```text
/// cpu_dispatch!(fn sum(v: &[u32]) -> u32 = sum_impl if "avx2");
/// ```
macro_rules! cpu_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $imp:ident if $feature:tt) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = $feature)]
                unsafe fn with_feature($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!($feature) {
                    // SAFETY: the CPU has the feature, checked just above.
                    return unsafe { with_feature($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}
pub(crate) use cpu_dispatch;
