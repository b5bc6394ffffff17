// The C++ half of switchyard-torch's libtorch bridge (src/bridge.rs): the
// few libtorch calls tch does not wrap. Every function is declared in the
// cxx bridge as returning Result, and every body runs inside `guarded`
// (bridge.cc), so any C++ exception becomes a Rust error, never an abort.
//
// Only generic libtorch entry points are used (c10::getDeviceAllocator,
// at::detail::getCUDAHooks / getMPSHooks, at::globalContext), all in libc10
// and libtorch_cpu: the same object file links into the CPU, CUDA and MPS
// companions, and none of them needs libtorch_cuda to load. On a libtorch
// without CUDA (or MPS), the calls for that device throw, and come back as
// errors.
#pragma once

#include <cstdint>

#include "rust/cxx.h"

namespace switchyard {
namespace bridge {

struct MemoryFigures;
struct CudaFlags;

// Caching allocator statistics of cuda:`device` (aggregate pool): bytes
// allocated now, reserved now, and the peak allocated since the last reset.
MemoryFigures cuda_memory(int32_t device);
// Releases the CUDA caching allocator's unused cached blocks to the driver.
void cuda_empty_cache();
// Restarts the peak figures of cuda:`device` from what is allocated now.
void cuda_reset_peak(int32_t device);
// How many CUDA devices libtorch sees (0 without CUDA).
int32_t cuda_device_count();

// TF32 in cuBLAS matmuls and cuDNN convolutions, cuDNN's benchmark mode.
void set_cuda_flags(bool tf32_matmul, bool tf32_cudnn, bool cudnn_benchmark);
CudaFlags cuda_flags();

// oneDNN's float32 precision for matmuls and convolutions on the CPU
// (torch.backends.mkldnn.{matmul,conv}.fp32_precision): on, "bf16" (inputs
// rounded to bfloat16, float32 accumulation and outputs, AMX/AVX-512-BF16
// kernels); off, "ieee". Process-wide: at::globalContext().
void set_mkldnn_bf16(bool on);
bool mkldnn_bf16();

// The MPS allocator: bytes allocated now, and what the Metal driver holds for it.
MemoryFigures mps_memory();
void mps_empty_cache();

// A fixture (torch/tests/bridge.rs only): throws what libtorch or the
// C++ runtime can throw. 0: a c10::Error (TORCH_CHECK), 1: std::bad_alloc,
// 2: an int (no std::exception), else returns normally.
void throw_for_test(uint8_t kind);

}  // namespace bridge
}  // namespace switchyard
