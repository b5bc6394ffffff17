//! The libtorch C++ calls tch does not wrap, through a cxx bridge: the
//! caching allocator's figures and cache release (CUDA, MPS) and the CUDA
//! precision/kernel switches (TF32, cuDNN benchmark), oneDNN's float32
//! precision on the CPU (bf16 matmul inputs). The C++ half is
//! `bridge.cc`, compiled by build.rs against the headers of the libtorch tch
//! links (`DEP_TCH_LIBTORCH_LIB`/../include), with torch's C++ ABI flag.
//!
//! Every call is declared returning `Result`: the C++ side catches whatever
//! libtorch throws (`guarded` in bridge.cc) and cxx turns it into
//! [`cxx::Exception`], so a libtorch failure is an error, never an abort.
//! These are the raw calls; [`crate::gpu`] is what the backend uses (it
//! knows which device it is on and answers "not a GPU" on the CPU).

#[cxx::bridge(namespace = "switchyard::bridge")]
mod ffi {
    /// Allocator figures of one device, in bytes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct MemoryFigures {
        /// Held by live tensors now.
        allocated: u64,
        /// Held by the allocator now (allocated plus its cache).
        reserved: u64,
        /// The most `allocated` has been since the last reset (when `has_peak`).
        peak: u64,
        /// Whether libtorch keeps a peak for this device (CUDA yes, MPS no).
        has_peak: bool,
    }

    /// libtorch's CUDA precision and kernel-choice switches.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct CudaFlags {
        /// TF32 in cuBLAS float32 matmuls (`allowTF32CuBLAS`).
        tf32_matmul: bool,
        /// TF32 in cuDNN float32 convolutions (`allowTF32CuDNN`).
        tf32_cudnn: bool,
        /// cuDNN autotuning per input shape (`benchmarkCuDNN`).
        cudnn_benchmark: bool,
    }

    unsafe extern "C++" {
        include!("switchyard-torch/src/bridge.h");

        fn cuda_memory(device: i32) -> Result<MemoryFigures>;
        fn cuda_empty_cache() -> Result<()>;
        fn cuda_reset_peak(device: i32) -> Result<()>;
        fn cuda_device_count() -> Result<i32>;
        fn set_cuda_flags(tf32_matmul: bool, tf32_cudnn: bool, cudnn_benchmark: bool) -> Result<()>;
        fn cuda_flags() -> Result<CudaFlags>;
        fn set_mkldnn_bf16(on: bool) -> Result<()>;
        fn mkldnn_bf16() -> Result<bool>;
        fn mps_memory() -> Result<MemoryFigures>;
        fn mps_empty_cache() -> Result<()>;
        fn throw_for_test(kind: u8) -> Result<()>;
    }
}

pub use ffi::{
    cuda_device_count, cuda_empty_cache, cuda_flags, cuda_memory, cuda_reset_peak, mkldnn_bf16, mps_empty_cache,
    mps_memory, set_cuda_flags, set_mkldnn_bf16, throw_for_test, CudaFlags, MemoryFigures,
};
