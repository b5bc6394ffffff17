//! Apple silicon + Metal, the precondition for the MPS plugin.
//!
//! Metal's devices are enumerated with `MTLCopyAllDevices`, the call
//! libtorch's own MPS backend makes (`at::mps::MPSDevice` takes the first
//! device of that list that is not low-power), so this probe and libtorch
//! agree on whether there is a device. `MTLCreateSystemDefaultDevice` is not
//! what decides: Apple documents that in macOS a command-line program must
//! link CoreGraphics to get a default device ("Getting the Default GPU"),
//! else the call returns nil, and switchyard links no Apple framework, so
//! auto would pass over MPS on every Mac. CoreGraphics is loaded (dlopen, for
//! the life of the process) before Metal all the same: the MPS plugin and
//! ONNX Runtime's CoreML provider run in this process and may ask Metal for
//! the default device themselves.

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

/// The answer from what Metal listed and whether CoreGraphics loaded.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn availability(devices: Result<usize, String>, core_graphics: Result<(), String>) -> Availability {
    match devices {
        Ok(n) if n > 0 => Availability::Available { devices: u32::try_from(n).unwrap_or(u32::MAX) },
        Ok(_) => Availability::Unavailable {
            reason: match core_graphics {
                Ok(()) => "Metal lists no device (MTLCopyAllDevices is empty)".into(),
                Err(e) => format!("Metal lists no device (MTLCopyAllDevices is empty), and {e}"),
            },
        },
        Err(e) => Availability::Unavailable { reason: e },
    }
}

#[cfg(target_os = "macos")]
fn metal_device() -> Availability {
    let core_graphics = framework("CoreGraphics").map(|_| ());
    availability(metal_devices(), core_graphics)
}

/// A system framework, loaded for the life of the process (libraries are never unloaded).
#[cfg(target_os = "macos")]
fn framework(name: &str) -> Result<&'static libloading::Library, String> {
    let path = format!("/System/Library/Frameworks/{name}.framework/{name}");
    // SAFETY: a system framework; loading it runs only Apple's initialisers.
    let lib = unsafe { libloading::Library::new(&path) }
        .map_err(|e| format!("the {name} framework (`{path}`) could not be loaded: {e}"))?;
    Ok(Box::leak(Box::new(lib)))
}

/// How many devices `MTLCopyAllDevices` lists.
#[cfg(target_os = "macos")]
fn metal_devices() -> Result<usize, String> {
    use std::ffi::c_void;
    // NSArray<id<MTLDevice>> *, returned retained (the Create/Copy rule).
    type CopyAllDevices = unsafe extern "C" fn() -> *const c_void;
    // NSArray is toll-free bridged with CFArrayRef: CFArrayGetCount and CFRelease take it.
    type ArrayGetCount = unsafe extern "C" fn(*const c_void) -> isize;
    type Release = unsafe extern "C" fn(*const c_void);
    let metal = framework("Metal")?;
    let core_foundation = framework("CoreFoundation")?;
    // SAFETY: the symbols have these C signatures (Metal/MTLDevice.h, CoreFoundation/CFArray.h, CFBase.h).
    unsafe {
        let copy_all = metal
            .get::<CopyAllDevices>(b"MTLCopyAllDevices\0")
            .map_err(|e| format!("Metal lacks MTLCopyAllDevices: {e}"))?;
        let count = core_foundation
            .get::<ArrayGetCount>(b"CFArrayGetCount\0")
            .map_err(|e| format!("CoreFoundation lacks CFArrayGetCount: {e}"))?;
        let release = core_foundation
            .get::<Release>(b"CFRelease\0")
            .map_err(|e| format!("CoreFoundation lacks CFRelease: {e}"))?;
        let devices = copy_all();
        if devices.is_null() {
            return Ok(0);
        }
        let n = count(devices);
        release(devices);
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

#[cfg(not(target_os = "macos"))]
fn metal_device() -> Availability {
    unreachable!("checked by the platform test above")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_a_mac_on_apple_silicon_the_reason_names_the_platform() {
        if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
            return;
        }
        let Availability::Unavailable { reason } = probe() else { panic!("available off a Mac") };
        assert!(reason.starts_with("needs macOS on Apple silicon (this is "), "{reason}");
    }

    #[test]
    fn listed_devices_are_available_and_none_is_a_reason() {
        assert_eq!(availability(Ok(1), Ok(())), Availability::Available { devices: 1 });
        assert_eq!(availability(Ok(2), Err("x".into())), Availability::Available { devices: 2 });
        let Availability::Unavailable { reason } = availability(Ok(0), Ok(())) else { panic!() };
        assert_eq!(reason, "Metal lists no device (MTLCopyAllDevices is empty)");
        let Availability::Unavailable { reason } =
            availability(Ok(0), Err("the CoreGraphics framework (`/S`) could not be loaded: gone".into()))
        else {
            panic!()
        };
        assert!(reason.ends_with("and the CoreGraphics framework (`/S`) could not be loaded: gone"), "{reason}");
        let Availability::Unavailable { reason } = availability(Err("Metal lacks MTLCopyAllDevices: x".into()), Ok(()))
        else {
            panic!()
        };
        assert_eq!(reason, "Metal lacks MTLCopyAllDevices: x");
    }
}
