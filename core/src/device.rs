//! Device kinds and the `DEVICE` spec.
//!
//! Every [`DeviceKind`] exists in every build (as candle's `Device` does):
//! whether a plugin for it was built, and whether the hardware is there, are
//! separate facts reported elsewhere. [`DeviceSpec`] is what an operator asks
//! for; parsing it is strict so that a typo is a startup error, not a silent
//! fallback to the CPU.

use std::fmt;
use std::str::FromStr;

/// A kind of device a plugin can drive. Present in every build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// NVIDIA GPUs through CUDA (`backend-cuda`).
    Cuda,
    /// Apple GPUs through Metal Performance Shaders (`backend-mps`).
    Mps,
    /// The host CPU (`backend-cpu`), always the last resort.
    Cpu,
}

impl DeviceKind {
    /// Every kind, in auto-selection preference order (best first).
    pub const PREFERENCE: [DeviceKind; 3] = [DeviceKind::Cuda, DeviceKind::Mps, DeviceKind::Cpu];

    /// The lowercase name used in `DEVICE`, plugin file names and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Cuda => "cuda",
            DeviceKind::Mps => "mps",
            DeviceKind::Cpu => "cpu",
        }
    }

    /// The plugin's crate name, e.g. `backend-cuda` (file `libbackend_cuda.so`).
    pub fn plugin_name(self) -> &'static str {
        match self {
            DeviceKind::Cuda => "backend-cuda",
            DeviceKind::Mps => "backend-mps",
            DeviceKind::Cpu => "backend-cpu",
        }
    }

    /// Parses a bare kind name (`cpu`, `cuda`, `mps`), as plugins report it.
    pub fn from_name(name: &str) -> Option<DeviceKind> {
        match name {
            "cuda" => Some(DeviceKind::Cuda),
            "mps" => Some(DeviceKind::Mps),
            "cpu" => Some(DeviceKind::Cpu),
            _ => None,
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `DEVICE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// Pick the best available device (`auto`, or `DEVICE` unset/empty).
    #[default]
    Auto,
    /// `cpu`.
    Cpu,
    /// `mps`.
    Mps,
    /// `cuda` (index `None`: the first visible device) or `cuda:N`.
    Cuda(Option<u32>),
}

impl DeviceSpec {
    /// The device kind this spec names, or `None` for `auto`.
    pub fn kind(self) -> Option<DeviceKind> {
        match self {
            DeviceSpec::Auto => None,
            DeviceSpec::Cpu => Some(DeviceKind::Cpu),
            DeviceSpec::Mps => Some(DeviceKind::Mps),
            DeviceSpec::Cuda(_) => Some(DeviceKind::Cuda),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Mps => f.write_str("mps"),
            DeviceSpec::Cuda(None) => f.write_str("cuda"),
            DeviceSpec::Cuda(Some(i)) => write!(f, "cuda:{i}"),
        }
    }
}

/// `DEVICE` held something that is not a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`DEVICE={value}` is not a device; use auto, cpu, mps, cuda or cuda:N (N a GPU index such as 0)")]
pub struct DeviceSpecError {
    /// The rejected value, as given.
    pub value: String,
}

impl FromStr for DeviceSpec {
    type Err = DeviceSpecError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let err = || DeviceSpecError { value: raw.to_string() };
        let value = raw.trim().to_ascii_lowercase();
        match value.as_str() {
            "" | "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "mps" => Ok(DeviceSpec::Mps),
            "cuda" => Ok(DeviceSpec::Cuda(None)),
            other => {
                let index = other.strip_prefix("cuda:").ok_or_else(err)?;
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err());
                }
                index.parse::<u32>().map(|i| DeviceSpec::Cuda(Some(i))).map_err(|_| err())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("", DeviceSpec::Auto; "empty is auto")]
    #[test_case("auto", DeviceSpec::Auto; "auto")]
    #[test_case("AUTO", DeviceSpec::Auto; "case insensitive")]
    #[test_case("cpu", DeviceSpec::Cpu; "cpu")]
    #[test_case(" cpu ", DeviceSpec::Cpu; "trimmed")]
    #[test_case("mps", DeviceSpec::Mps; "mps")]
    #[test_case("cuda", DeviceSpec::Cuda(None); "cuda")]
    #[test_case("cuda:0", DeviceSpec::Cuda(Some(0)); "cuda 0")]
    #[test_case("cuda:7", DeviceSpec::Cuda(Some(7)); "cuda 7")]
    fn parses(raw: &str, expected: DeviceSpec) {
        assert_eq!(raw.parse::<DeviceSpec>(), Ok(expected));
    }

    #[test_case("tpu"; "unknown device")]
    #[test_case("cuda:"; "missing index")]
    #[test_case("cuda:-1"; "negative index")]
    #[test_case("cuda:x"; "non numeric index")]
    #[test_case("cuda:99999999999"; "index overflow")]
    #[test_case("gpu"; "gpu is not a name")]
    #[test_case("cuda0"; "missing colon")]
    fn rejects(raw: &str) {
        let err = raw.parse::<DeviceSpec>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(raw), "{msg}");
        assert!(msg.contains("auto, cpu, mps, cuda or cuda:N"), "{msg}");
    }

    #[test]
    fn display_round_trips() {
        for spec in
            [DeviceSpec::Auto, DeviceSpec::Cpu, DeviceSpec::Mps, DeviceSpec::Cuda(None), DeviceSpec::Cuda(Some(3))]
        {
            assert_eq!(spec.to_string().parse::<DeviceSpec>(), Ok(spec));
        }
    }
}
