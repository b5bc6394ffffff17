//! ONNX Runtime execution providers: the order to try them in, and which one
//! a session actually got.
//!
//! Each plugin has a default order (backend-cuda: CUDA then CPU; backend-mps:
//! CoreML then CPU; backend-cpu: CPU). `ONNX_PROVIDERS`, validated by the
//! host, replaces it. A provider this ONNX Runtime build lacks, or one whose
//! registration fails (no GPU, missing CUDA libraries), is skipped with its
//! reason recorded; the CPU provider is always last and always works.
//!
//! ONNX Runtime's CUDA provider (`libonnxruntime_providers_cuda.so`, beside
//! `libonnxruntime.so` in the onnxruntime-gpu wheel) has no RUNPATH: it needs
//! `libcublasLt.so.13`, `libcublas.so.13`, `libcurand.so.10`, `libcudart.so.13`
//! (onnxruntime-gpu 1.31.1 is built for CUDA 13.0) and opens cuDNN 9 and cuFFT
//! by name. In Python, `onnxruntime.preload_dlls()` or an earlier `import
//! torch` loads them; here, before the provider registers, the libraries of
//! the nvidia wheels beside that onnxruntime (`site-packages/nvidia/*/lib`,
//! torch 2.11.0's CUDA 13 wheels) are loaded by full path, each one only if
//! no library of its name is loaded yet (libtorch may have loaded it). The
//! loader then resolves the provider's names to them, whether or not libtorch
//! was loaded first. An onnxruntime with no nvidia folder beside it relies on
//! the system's loader path (a CUDA toolkit in ldconfig or LD_LIBRARY_PATH).

use std::path::{Path, PathBuf};

use ort::ep::{CoreML, ExecutionProvider as _, CPU, CUDA};
use ort::session::builder::SessionBuilder;
use switchyard_core::settings::ExecutionProvider;

/// The order to try: `requested` (ORT names from the host) or the plugin's default, CPU appended.
pub fn plan(requested: &[String], default: &[ExecutionProvider]) -> Vec<ExecutionProvider> {
    let mut order: Vec<ExecutionProvider> =
        if requested.is_empty() { default.to_vec() } else { requested.iter().filter_map(|r| r.parse().ok()).collect() };
    order.retain(|p| *p != ExecutionProvider::Cpu);
    order.push(ExecutionProvider::Cpu);
    order
}

/// The providers this ONNX Runtime build was compiled with, of those switchyard knows.
pub fn compiled_in() -> Vec<ExecutionProvider> {
    let mut out = Vec::new();
    if CUDA::is_available().unwrap_or(false) {
        out.push(ExecutionProvider::Cuda);
    }
    if CoreML::is_available().unwrap_or(false) {
        out.push(ExecutionProvider::CoreMl);
    }
    if CPU::is_available().unwrap_or(true) {
        out.push(ExecutionProvider::Cpu);
    }
    out
}

/// What registration gave.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The provider the session runs on (first registered).
    pub provider: ExecutionProvider,
    /// Providers passed over, with the reason.
    pub skipped: Vec<(ExecutionProvider, String)>,
}

/// Registers the first provider in `order` that works; CPU needs no registration.
pub fn register(
    mut builder: SessionBuilder,
    order: &[ExecutionProvider],
    cuda_device: i32,
) -> (SessionBuilder, Registered) {
    let mut skipped = Vec::new();
    let compiled = compiled_in();
    for &provider in order {
        if provider == ExecutionProvider::Cpu {
            return (builder, Registered { provider, skipped });
        }
        if !compiled.contains(&provider) {
            let hint = match provider {
                ExecutionProvider::Cuda => {
                    "install the onnxruntime-gpu wheel (Linux + NVIDIA) and point ORT_DYLIB_PATH at its library"
                }
                _ => "ONNX Runtime's macOS build has it; other platforms do not",
            };
            skipped.push((provider, format!("this ONNX Runtime build has no {provider}; {hint}")));
            continue;
        }
        let dispatch = match provider {
            ExecutionProvider::Cuda => CUDA::default().with_device_id(cuda_device).build(),
            _ => CoreML::default().build(),
        };
        let preloaded = (provider == ExecutionProvider::Cuda).then(preload_cuda_libraries);
        match builder.with_execution_providers([dispatch.error_on_failure()]) {
            Ok(b) => return (b, Registered { provider, skipped }),
            Err(e) => {
                let libraries = preloaded.map(|p| format!(" ({p})")).unwrap_or_default();
                let why = e.to_string();
                skipped.push((provider, format!("registering {provider} failed: {}{libraries}", why.trim_end())));
                builder = e.recover();
            }
        }
    }
    (builder, Registered { provider: ExecutionProvider::Cpu, skipped })
}

/// What [`preload_cuda_libraries`] found, said in a sentence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CudaPreload {
    /// The nvidia wheel folders searched (`site-packages/nvidia/*/lib`).
    pub searched: Vec<PathBuf>,
    /// Loaded by full path now.
    pub loaded: Vec<PathBuf>,
    /// Already in the process under that name (libtorch's, usually).
    pub already: Vec<String>,
    /// In none of the folders, and not loaded.
    pub missing: Vec<String>,
}

impl std::fmt::Display for CudaPreload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.searched.is_empty() {
            return write!(
                f,
                "no nvidia wheel folder beside this ONNX Runtime; its CUDA libraries come from the loader's path"
            );
        }
        let quoted = |dirs: &mut dyn Iterator<Item = &Path>| {
            let mut v: Vec<String> = dirs.map(|d| format!("`{}`", d.display())).collect();
            v.dedup();
            v.join(", ")
        };
        write!(f, "CUDA libraries: {} loaded", self.loaded.len())?;
        if !self.loaded.is_empty() {
            write!(f, " from {}", quoted(&mut self.loaded.iter().filter_map(|p| p.parent())))?;
        }
        write!(f, ", {} already loaded", self.already.len())?;
        if !self.missing.is_empty() {
            write!(
                f,
                ", missing {} (searched {})",
                self.missing.join(", "),
                quoted(&mut self.searched.iter().map(PathBuf::as_path))
            )?;
        }
        Ok(())
    }
}

/// The libraries the CUDA provider needs, dependencies first: ort's lists,
/// which match onnxruntime-gpu 1.31.1 (CUDA 13, cuDNN 9).
fn cuda_library_names() -> impl Iterator<Item = &'static str> {
    ort::ep::cuda::CUDA_DYLIBS.iter().chain(ort::ep::cuda::CUDNN_DYLIBS).copied()
}

/// The ONNX Runtime library mapped in this process, from `/proc/self/maps` text.
fn onnxruntime_in_maps(maps: &str) -> Option<PathBuf> {
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(Path::new)
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so")))
        .map(Path::to_path_buf)
}

/// `site-packages/nvidia/*/lib` for an ONNX Runtime at `site-packages/onnxruntime/capi/`, sorted.
fn nvidia_lib_dirs(onnxruntime: &Path) -> Vec<PathBuf> {
    let Some(site) = onnxruntime.parent().and_then(Path::parent).and_then(Path::parent) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(site.join("nvidia")) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path().join("lib")).filter(|d| d.is_dir()).collect();
    dirs.sort();
    dirs
}

/// Each name with the first of `dirs` that has it.
fn locate<'a>(names: impl Iterator<Item = &'a str>, dirs: &[PathBuf]) -> Vec<(&'a str, Option<PathBuf>)> {
    names.map(|name| (name, dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()))).collect()
}

/// Loads the CUDA provider's libraries from the nvidia wheels beside the
/// loaded ONNX Runtime (module docs), once per process.
pub fn preload_cuda_libraries() -> CudaPreload {
    static DONE: std::sync::OnceLock<CudaPreload> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let Some(ort) = onnxruntime_in_maps(&maps) else { return CudaPreload::default() };
        let searched = nvidia_lib_dirs(&ort);
        let mut report = CudaPreload { searched, ..Default::default() };
        if report.searched.is_empty() {
            return report;
        }
        for (name, path) in locate(cuda_library_names(), &report.searched) {
            if is_loaded(name) {
                report.already.push(name.to_string());
            } else if let Some(path) = path.filter(|p| ort::util::preload_dylib(p).is_ok()) {
                report.loaded.push(path);
            } else {
                report.missing.push(name.to_string());
            }
        }
        report
    })
    .clone()
}

/// Whether a library of this name is in the process already (not loading it).
#[cfg(unix)]
fn is_loaded(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else { return false };
    // SAFETY: RTLD_NOLOAD only looks the name up; the extra reference is dropped at once.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return false;
    }
    unsafe { libc::dlclose(handle) };
    true
}

#[cfg(not(unix))]
fn is_loaded(_name: &str) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapped_onnxruntime_is_found_and_its_providers_are_not_it() {
        let maps = "7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/libc.so.6\n\
                    7f01-7f02 r-xp 00000000 08:01 2 /v/site-packages/onnxruntime/capi/libonnxruntime_providers_shared.so\n\
                    7f02-7f03 r-xp 00000000 08:01 3 /v/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1\n\
                    7f03-7f04 rw-p 00000000 00:00 0 \n";
        assert_eq!(
            onnxruntime_in_maps(maps),
            Some(PathBuf::from("/v/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1"))
        );
        assert_eq!(onnxruntime_in_maps("7f00-7f01 r-xp 00000000 08:01 1 /usr/lib/libc.so.6\n"), None);
    }

    #[test]
    fn the_nvidia_wheel_libraries_beside_onnxruntime_are_located_in_either_layout() {
        let site = std::env::temp_dir().join(format!("switchyard-nvidia-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&site);
        let ort = site.join("onnxruntime/capi/libonnxruntime.so.1.31.1");
        // CUDA 13 wheels: one nvidia/cu13/lib; cuDNN keeps nvidia/cudnn/lib; CUDA 12 ones had nvidia/cublas/lib...
        for file in
            [&ort, &site.join("nvidia/cu13/lib/libcublasLt.so.13"), &site.join("nvidia/cudnn/lib/libcudnn.so.9")]
        {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, b"").unwrap();
        }
        std::fs::create_dir_all(site.join("nvidia/nccl")).unwrap(); // no lib/: not searched
        let dirs = nvidia_lib_dirs(&ort);
        assert_eq!(dirs, [site.join("nvidia/cu13/lib"), site.join("nvidia/cudnn/lib")]);
        let found = locate(["libcublasLt.so.13", "libcudnn.so.9", "libcufft.so.12"].into_iter(), &dirs);
        assert_eq!(
            found,
            [
                ("libcublasLt.so.13", Some(site.join("nvidia/cu13/lib/libcublasLt.so.13"))),
                ("libcudnn.so.9", Some(site.join("nvidia/cudnn/lib/libcudnn.so.9"))),
                ("libcufft.so.12", None),
            ]
        );
        assert!(nvidia_lib_dirs(Path::new("/nonexistent/onnxruntime/capi/libonnxruntime.so")).is_empty());
        std::fs::remove_dir_all(&site).unwrap();
    }

    #[test]
    fn the_preloaded_names_are_onnxruntime_gpu_1_31_1s_cuda_13_needs() {
        // readelf -d libonnxruntime_providers_cuda.so of the onnxruntime-gpu 1.31.1 wheel (NEEDED),
        // plus cuDNN and cuFFT, which it opens by name.
        let names: Vec<&str> = cuda_library_names().collect();
        for needed in [
            "libcublasLt.so.13",
            "libcublas.so.13",
            "libcurand.so.10",
            "libcudart.so.13",
            "libcudnn.so.9",
            "libcufft.so.12",
        ] {
            assert!(names.contains(&needed), "{needed} in {names:?}");
        }
        let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(at("libcublasLt.so.13") < at("libcublas.so.13"), "libcublas needs libcublasLt loaded first");
    }

    #[test]
    fn the_preload_report_says_where_from_and_what_is_missing() {
        let none = CudaPreload::default();
        assert!(none.to_string().contains("loader's path"), "{none}");
        let some = CudaPreload {
            searched: vec![PathBuf::from("/s/nvidia/cu13/lib"), PathBuf::from("/s/nvidia/nccl/lib")],
            loaded: vec![
                PathBuf::from("/s/nvidia/cu13/lib/libcudart.so.13"),
                PathBuf::from("/s/nvidia/cu13/lib/libcublas.so.13"),
            ],
            already: vec!["libcublasLt.so.13".into()],
            missing: vec!["libcudnn.so.9".into()],
        };
        assert_eq!(
            some.to_string(),
            "CUDA libraries: 2 loaded from `/s/nvidia/cu13/lib`, 1 already loaded, missing libcudnn.so.9 \
             (searched `/s/nvidia/cu13/lib`, `/s/nvidia/nccl/lib`)"
        );
        let all_there = CudaPreload {
            searched: some.searched.clone(),
            already: vec!["libcudart.so.13".into()],
            ..Default::default()
        };
        assert_eq!(all_there.to_string(), "CUDA libraries: 0 loaded, 1 already loaded");
    }

    #[test]
    fn plan_uses_the_default_and_always_ends_with_cpu() {
        let d = [ExecutionProvider::Cuda];
        assert_eq!(plan(&[], &d), vec![ExecutionProvider::Cuda, ExecutionProvider::Cpu]);
        let r = vec!["CPUExecutionProvider".to_string(), "CoreMLExecutionProvider".to_string()];
        assert_eq!(plan(&r, &d), vec![ExecutionProvider::CoreMl, ExecutionProvider::Cpu]);
    }
}
