//! The panic barrier at the plugin boundary.
//!
//! abi_stable aborts the process when a panic unwinds out of an `extern "C"`
//! function, and tch panics on many errors. Every exported function and every
//! `Backend` method therefore runs its body through [`guard`], which turns a
//! panic into a `Panicked` error carrying the panic message.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::std_types::RResult;

use crate::abi::{BackendError, ErrorCode};

/// Runs `f`, converting a panic into `Err(Panicked)`.
pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, BackendError>) -> RResult<T, BackendError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => RResult::RErr(BackendError::new(
            ErrorCode::PANICKED,
            format!("the plugin panicked in {what}: {}", panic_message(payload.as_ref())),
        )),
    }
}

/// An error and all its sources, joined with ": " (skipping repeats). Used
/// where a chain must become one message: across the C ABI, in reports.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// Extracts the message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::ErrorKind;

    #[test]
    fn a_panic_becomes_a_panicked_error_with_its_message() {
        let got = guard::<()>("open", || panic!("boom {}", 42)).into_result().unwrap_err();
        assert_eq!(got.kind(), ErrorKind::Panicked);
        assert!(got.message.contains("boom 42") && got.message.contains("open"), "{}", got.message);
    }

    #[test]
    fn errors_and_values_pass_through() {
        assert_eq!(guard("x", || Ok(3)).into_result().unwrap(), 3);
        let e = guard::<()>("x", || Err(BackendError::invalid("bad"))).into_result().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
