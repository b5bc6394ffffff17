// The C++ half of the libtorch bridge: see bridge.h and src/bridge.rs.

#include "switchyard-torch/src/bridge.h"
#include "switchyard-torch/src/bridge.rs.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/detail/MPSHooksInterface.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/util/Exception.h>

#include <new>
#include <stdexcept>
#include <string>

namespace switchyard {
namespace bridge {
namespace {

// Runs `body`; whatever it throws leaves as a std::runtime_error naming
// `call`, which cxx turns into the Rust side's Err. c10::Error keeps only its
// message (its backtrace names the build machine's files and says nothing to
// an operator).
template <typename F>
auto guarded(const char* call, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string(call) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(call) + ": " + e.what());
  } catch (...) {
    throw std::runtime_error(std::string(call) + ": a C++ exception that is not a std::exception");
  }
}

void check_cuda_index(int32_t device) {
  const int32_t count = at::detail::getCUDAHooks().deviceCount();
  if (device < 0 || device >= count) {
    throw std::out_of_range("cuda:" + std::to_string(device) + " does not exist: libtorch sees " +
                            std::to_string(count) + " CUDA device(s)");
  }
}

constexpr size_t kAggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);

}  // namespace

MemoryFigures cuda_memory(int32_t device) {
  return guarded("CUDA allocator statistics", [&] {
    check_cuda_index(device);
    MemoryFigures out{};
    out.has_peak = true;
    auto* allocator = c10::getDeviceAllocator(c10::DeviceType::CUDA);
    // Before libtorch's first CUDA allocation the allocator is not set up,
    // and nothing is allocated.
    if (!allocator->initialized()) return out;
    const auto stats = allocator->getDeviceStats(static_cast<c10::DeviceIndex>(device));
    out.allocated = static_cast<uint64_t>(stats.allocated_bytes[kAggregate].current);
    out.reserved = static_cast<uint64_t>(stats.reserved_bytes[kAggregate].current);
    out.peak = static_cast<uint64_t>(stats.allocated_bytes[kAggregate].peak);
    return out;
  });
}

void cuda_empty_cache() {
  guarded("CUDA emptyCache", [] {
    auto* allocator = c10::getDeviceAllocator(c10::DeviceType::CUDA);
    if (allocator->initialized()) allocator->emptyCache();
  });
}

void cuda_reset_peak(int32_t device) {
  guarded("CUDA resetPeakStats", [&] {
    check_cuda_index(device);
    auto* allocator = c10::getDeviceAllocator(c10::DeviceType::CUDA);
    if (allocator->initialized()) allocator->resetPeakStats(static_cast<c10::DeviceIndex>(device));
  });
}

int32_t cuda_device_count() {
  return guarded("CUDA device count", [] { return static_cast<int32_t>(at::detail::getCUDAHooks().deviceCount()); });
}

// The legacy setters on purpose: each sets both the legacy flag and the
// torch 2.9+ float32 precision it maps to, and libtorch's kernels still read
// the legacy getters, which fail when the two disagree.
void set_cuda_flags(bool tf32_matmul, bool tf32_cudnn, bool cudnn_benchmark) {
  guarded("setting TF32 and cuDNN benchmark", [&] {
    auto& ctx = at::globalContext();
    ctx.setAllowTF32CuBLAS(tf32_matmul);
    ctx.setAllowTF32CuDNN(tf32_cudnn);
    ctx.setBenchmarkCuDNN(cudnn_benchmark);
  });
}

void set_mkldnn_bf16(bool on) {
  guarded("setting oneDNN's float32 precision", [&] {
    auto p = on ? at::Float32Precision::BF16 : at::Float32Precision::IEEE;
    auto& ctx = at::globalContext();
    ctx.setFloat32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL, p);
    ctx.setFloat32Precision(at::Float32Backend::MKLDNN, at::Float32Op::CONV, p);
  });
}

bool mkldnn_bf16() {
  return guarded("reading oneDNN's float32 precision", [] {
    return at::globalContext().float32Precision(at::Float32Backend::MKLDNN, at::Float32Op::MATMUL) ==
           at::Float32Precision::BF16;
  });
}

CudaFlags cuda_flags() {
  return guarded("reading TF32 and cuDNN benchmark", [] {
    auto& ctx = at::globalContext();
    CudaFlags out{};
    out.tf32_matmul = ctx.allowTF32CuBLAS();
    out.tf32_cudnn = ctx.allowTF32CuDNN();
    out.cudnn_benchmark = ctx.benchmarkCuDNN();
    return out;
  });
}

MemoryFigures mps_memory() {
  return guarded("MPS allocator statistics", [] {
    const auto& hooks = at::detail::getMPSHooks();
    MemoryFigures out{};
    out.allocated = static_cast<uint64_t>(hooks.getCurrentAllocatedMemory());
    out.reserved = static_cast<uint64_t>(hooks.getDriverAllocatedMemory());
    out.has_peak = false;  // libtorch keeps no peak for MPS
    return out;
  });
}

void mps_empty_cache() {
  guarded("MPS emptyCache", [] { at::detail::getMPSHooks().emptyCache(); });
}

void throw_for_test(uint8_t kind) {
  guarded("the bridge's test fixture", [&] {
    switch (kind) {
      case 0:
        // What TORCH_CHECK throws, with a location that names no build path.
        throw c10::Error(c10::SourceLocation{"throw_for_test", "bridge.cc", __LINE__}, "a c10::Error thrown on purpose");
      case 1:
        throw std::bad_alloc();
      case 2:
        throw 42;
      default:
        break;
    }
  });
}

}  // namespace bridge
}  // namespace switchyard
