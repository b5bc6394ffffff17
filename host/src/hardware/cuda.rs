//! Asks the NVIDIA driver API (libcuda) directly for the visible devices.

use std::ffi::{c_char, c_int, CStr};

use serde::Serialize;
use switchyard_core::select::Availability;

/// One GPU as the driver reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CudaDevice {
    /// Index as in `cuda:N` (after `CUDA_VISIBLE_DEVICES`).
    pub index: u32,
    /// e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Total memory in bytes.
    pub total_memory: u64,
    /// e.g. `9.0`.
    pub compute_capability: String,
}

/// The driver's answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CudaReport {
    /// The driver library that answered, if one was found.
    pub driver_library: Option<String>,
    /// e.g. `13.0` (the CUDA version the driver supports).
    pub driver_version: Option<String>,
    /// The driver release, e.g. `580.95.05` (what `nvidia-smi` shows), from
    /// `/proc/driver/nvidia/version` on Linux; `None` elsewhere or without it.
    pub driver_release: Option<String>,
    /// The visible devices.
    pub devices: Vec<CudaDevice>,
    /// Why there are none, when there are none.
    pub unavailable_reason: Option<String>,
}

impl CudaReport {
    /// As the selection policy sees it.
    pub fn availability(&self) -> Availability {
        match &self.unavailable_reason {
            None if !self.devices.is_empty() => Availability::Available { devices: self.devices.len() as u32 },
            reason => Availability::Unavailable {
                reason: reason.clone().unwrap_or_else(|| "the CUDA driver reports no device".into()),
            },
        }
    }

    fn unavailable(driver_library: Option<String>, driver_version: Option<String>, reason: String) -> Self {
        CudaReport {
            driver_library,
            driver_version,
            driver_release: driver_release(),
            devices: vec![],
            unavailable_reason: Some(reason),
        }
    }
}

#[cfg(target_os = "windows")]
const DRIVER_NAMES: &[&str] = &["nvcuda.dll"];
#[cfg(not(target_os = "windows"))]
const DRIVER_NAMES: &[&str] = &["libcuda.so.1", "libcuda.so"];

const CUDA_SUCCESS: c_int = 0;
const CUDA_ERROR_NO_DEVICE: c_int = 100;
const ATTR_CC_MAJOR: c_int = 75;
const ATTR_CC_MINOR: c_int = 76;

type CuInit = unsafe extern "C" fn(u32) -> c_int;
type CuIntOut = unsafe extern "C" fn(*mut c_int) -> c_int;
type CuDeviceGet = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
type CuDeviceGetName = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
type CuDeviceTotalMem = unsafe extern "C" fn(*mut usize, c_int) -> c_int;
type CuDeviceGetAttribute = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;
type CuGetErrorString = unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int;

/// Probes the driver. Never panics; every failure becomes a reason.
pub fn probe() -> CudaReport {
    if cfg!(target_os = "macos") {
        return CudaReport::unavailable(None, None, "CUDA does not exist on macOS".into());
    }
    let mut errors = Vec::new();
    for name in DRIVER_NAMES {
        // SAFETY: loading the NVIDIA driver runs its initialisers, which is what CUDA itself does.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => {
                let report = unsafe { query(&lib, name) };
                // The driver stays loaded, as a CUDA program's would; unloading it is unsafe.
                std::mem::forget(lib);
                return report;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    CudaReport::unavailable(
        None,
        None,
        format!("the NVIDIA driver library is not installed ({})", errors.first().cloned().unwrap_or_default()),
    )
}

unsafe fn query(lib: &libloading::Library, name: &str) -> CudaReport {
    let library = Some(name.to_string());
    macro_rules! sym {
        ($t:ty, $s:literal) => {
            match lib.get::<$t>($s) {
                Ok(f) => *f,
                Err(e) => {
                    return CudaReport::unavailable(library, None, format!("{name} lacks a driver entry point: {e}"))
                }
            }
        };
    }
    let cu_init = sym!(CuInit, b"cuInit\0");
    let driver_get_version = sym!(CuIntOut, b"cuDriverGetVersion\0");
    let device_get_count = sym!(CuIntOut, b"cuDeviceGetCount\0");
    let device_get = sym!(CuDeviceGet, b"cuDeviceGet\0");
    let device_get_name = sym!(CuDeviceGetName, b"cuDeviceGetName\0");
    let device_total_mem = sym!(CuDeviceTotalMem, b"cuDeviceTotalMem_v2\0");
    let device_get_attribute = sym!(CuDeviceGetAttribute, b"cuDeviceGetAttribute\0");
    let get_error_string = lib.get::<CuGetErrorString>(b"cuGetErrorString\0").ok().map(|f| *f);
    let describe = |code: c_int| -> String {
        let mut text: *const c_char = std::ptr::null();
        match get_error_string {
            Some(f) if f(code, &mut text) == CUDA_SUCCESS && !text.is_null() => {
                format!("{} (CUresult {code})", CStr::from_ptr(text).to_string_lossy())
            }
            _ => format!("CUresult {code}"),
        }
    };

    let mut version: c_int = 0;
    let driver_version = (driver_get_version(&mut version) == CUDA_SUCCESS)
        .then(|| format!("{}.{}", version / 1000, (version % 1000) / 10));
    let rc = cu_init(0);
    if rc == CUDA_ERROR_NO_DEVICE {
        return CudaReport::unavailable(
            library,
            driver_version,
            "the CUDA driver is installed but sees no GPU (check CUDA_VISIBLE_DEVICES)".into(),
        );
    }
    if rc != CUDA_SUCCESS {
        return CudaReport::unavailable(library, driver_version, format!("cuInit failed: {}", describe(rc)));
    }
    let mut count: c_int = 0;
    let rc = device_get_count(&mut count);
    if rc != CUDA_SUCCESS {
        return CudaReport::unavailable(library, driver_version, format!("cuDeviceGetCount failed: {}", describe(rc)));
    }
    let mut devices = Vec::new();
    for index in 0..count {
        let mut dev: c_int = 0;
        if device_get(&mut dev, index) != CUDA_SUCCESS {
            continue;
        }
        let mut buf = [0 as c_char; 256];
        let name = if device_get_name(buf.as_mut_ptr(), buf.len() as c_int, dev) == CUDA_SUCCESS {
            CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
        } else {
            format!("cuda:{index}")
        };
        let mut bytes: usize = 0;
        let total_memory = if device_total_mem(&mut bytes, dev) == CUDA_SUCCESS { bytes as u64 } else { 0 };
        let (mut major, mut minor) = (0, 0);
        device_get_attribute(&mut major, ATTR_CC_MAJOR, dev);
        device_get_attribute(&mut minor, ATTR_CC_MINOR, dev);
        devices.push(CudaDevice {
            index: index as u32,
            name,
            total_memory,
            compute_capability: format!("{major}.{minor}"),
        });
    }
    let unavailable_reason = devices.is_empty().then(|| "the CUDA driver reports no device".to_string());
    CudaReport {
        driver_library: library,
        driver_version,
        driver_release: driver_release(),
        devices,
        unavailable_reason,
    }
}

/// The kernel module's release, from `/proc/driver/nvidia/version`
/// (`NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Tue ...`).
fn driver_release() -> Option<String> {
    parse_driver_release(&std::fs::read_to_string("/proc/driver/nvidia/version").ok()?)
}

fn parse_driver_release(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    line.split_whitespace()
        .find(|w| w.contains('.') && w.split('.').all(|p| p.parse::<u32>().is_ok()))
        .map(str::to_string)
}

#[cfg(test)]
mod release_tests {
    #[test]
    fn the_driver_release_is_read_from_the_kernel_module_line() {
        let text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Tue Sep 23 09:00:00 UTC 2025\nGCC version:  gcc 12.2.0\n";
        assert_eq!(super::parse_driver_release(text).as_deref(), Some("580.95.05"));
        assert_eq!(super::parse_driver_release("GCC version: 12.2.0"), None);
    }
}
