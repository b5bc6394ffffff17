//! Parsing of the selection variables other than `DEVICE`: `FORCE_CPU` and
//! `ONNX_PROVIDERS`.
//!
//! Both are strict: a value that is neither a recognised boolean nor a known
//! execution provider is a startup error that lists what is accepted.

use std::fmt;
use std::str::FromStr;

/// Parses `FORCE_CPU`: true/1/yes/on force the CPU, false/0/no/off/empty do not.
pub fn parse_bool_flag(name: &str, raw: &str) -> Result<bool, BoolFlagError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(BoolFlagError { name: name.to_string(), value: raw.to_string() }),
    }
}

/// A boolean environment flag held something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}={value}` is not a boolean; use true/false, 1/0, yes/no or on/off (any case)")]
pub struct BoolFlagError {
    /// The variable's name, e.g. `FORCE_CPU`.
    pub name: String,
    /// The rejected value.
    pub value: String,
}

/// An ONNX Runtime execution provider switchyard knows how to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ExecutionProvider {
    /// `CUDAExecutionProvider` (onnxruntime-gpu, NVIDIA).
    #[serde(rename = "CUDAExecutionProvider")]
    Cuda,
    /// `CoreMLExecutionProvider` (macOS, Apple Neural Engine / GPU).
    #[serde(rename = "CoreMLExecutionProvider")]
    CoreMl,
    /// `CPUExecutionProvider`, always available and always last.
    #[serde(rename = "CPUExecutionProvider")]
    Cpu,
}

impl ExecutionProvider {
    /// Every provider, in default preference order.
    pub const ALL: [ExecutionProvider; 3] =
        [ExecutionProvider::Cuda, ExecutionProvider::CoreMl, ExecutionProvider::Cpu];

    /// ONNX Runtime's name for the provider.
    pub fn ort_name(self) -> &'static str {
        match self {
            ExecutionProvider::Cuda => "CUDAExecutionProvider",
            ExecutionProvider::CoreMl => "CoreMLExecutionProvider",
            ExecutionProvider::Cpu => "CPUExecutionProvider",
        }
    }
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ort_name())
    }
}

impl FromStr for ExecutionProvider {
    type Err = ProviderError;

    /// Accepts ONNX Runtime's names and the short forms `cuda`, `coreml`, `cpu`.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let lower = raw.trim().to_ascii_lowercase();
        let short = lower.strip_suffix("executionprovider").unwrap_or(&lower);
        match short {
            "cuda" => Ok(ExecutionProvider::Cuda),
            "coreml" => Ok(ExecutionProvider::CoreMl),
            "cpu" => Ok(ExecutionProvider::Cpu),
            _ => Err(ProviderError { value: raw.trim().to_string() }),
        }
    }
}

/// `ONNX_PROVIDERS` named a provider switchyard does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`ONNX_PROVIDERS` names `{value}`, which is not an execution provider; use a comma list of \
     CUDAExecutionProvider, CoreMLExecutionProvider, CPUExecutionProvider (or cuda, coreml, cpu)"
)]
pub struct ProviderError {
    /// The rejected entry.
    pub value: String,
}

/// Parses `ONNX_PROVIDERS` into a de-duplicated list that always ends with CPU.
///
/// An empty value yields `None`: the plugin's own default order applies.
pub fn parse_onnx_providers(raw: &str) -> Result<Option<Vec<ExecutionProvider>>, ProviderError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ep = part.parse::<ExecutionProvider>()?;
        if !out.contains(&ep) {
            out.push(ep);
        }
    }
    out.retain(|ep| *ep != ExecutionProvider::Cpu);
    out.push(ExecutionProvider::Cpu);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("true", true)]
    #[test_case("TRUE", true)]
    #[test_case("1", true)]
    #[test_case("yes", true)]
    #[test_case("false", false)]
    #[test_case("0", false)]
    #[test_case("", false)]
    fn bool_flags(raw: &str, expected: bool) {
        assert_eq!(parse_bool_flag("FORCE_CPU", raw), Ok(expected));
    }

    #[test]
    fn bool_flag_rejects_garbage_and_names_the_variable() {
        let err = parse_bool_flag("FORCE_CPU", "maybe").unwrap_err().to_string();
        assert!(err.contains("`FORCE_CPU=maybe`") && err.contains("1/0, yes/no or on/off"), "{err}");
    }

    #[test]
    fn providers_append_cpu_and_dedupe() {
        let got = parse_onnx_providers("cuda, CUDAExecutionProvider,CPUExecutionProvider,coreml").unwrap().unwrap();
        assert_eq!(got, vec![ExecutionProvider::Cuda, ExecutionProvider::CoreMl, ExecutionProvider::Cpu]);
    }

    #[test]
    fn providers_empty_means_default() {
        assert_eq!(parse_onnx_providers("  "), Ok(None));
    }

    #[test]
    fn providers_unknown_is_an_error_naming_valid_ones() {
        let err = parse_onnx_providers("cuda,TensorrtExecutionProvider").unwrap_err().to_string();
        assert!(err.contains("`TensorrtExecutionProvider`") && err.contains("CoreMLExecutionProvider"), "{err}");
    }
}
