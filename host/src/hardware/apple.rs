//! Apple silicon + Metal, the precondition for the MPS plugin.

use switchyard_core::select::Availability;

/// Whether this is a Mac on Apple silicon with a Metal device.
pub fn probe() -> Availability {
    if !(cfg!(target_os = "macos") && cfg!(target_arch = "aarch64")) {
        return Availability::Unavailable {
            reason: format!(
                "needs macOS on Apple silicon (this is {} {})",
                std::env::consts::OS,
                std::env::consts::ARCH
            ),
        };
    }
    metal_device()
}

#[cfg(target_os = "macos")]
fn metal_device() -> Availability {
    type CreateDevice = unsafe extern "C" fn() -> *mut std::ffi::c_void;
    const METAL: &str = "/System/Library/Frameworks/Metal.framework/Metal";
    // SAFETY: Metal is a system framework; MTLCreateSystemDefaultDevice takes no arguments.
    let lib = match unsafe { libloading::Library::new(METAL) } {
        Ok(lib) => lib,
        Err(e) => return Availability::Unavailable { reason: format!("the Metal framework could not be loaded: {e}") },
    };
    let device = unsafe { lib.get::<CreateDevice>(b"MTLCreateSystemDefaultDevice\0").map(|f| f()) };
    std::mem::forget(lib);
    match device {
        Ok(ptr) if !ptr.is_null() => Availability::Available { devices: 1 },
        Ok(_) => Availability::Unavailable { reason: "Metal reports no default device".into() },
        Err(e) => Availability::Unavailable { reason: format!("Metal lacks MTLCreateSystemDefaultDevice: {e}") },
    }
}

#[cfg(not(target_os = "macos"))]
fn metal_device() -> Availability {
    unreachable!("checked by the platform test above")
}
