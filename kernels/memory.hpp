#pragma once
// Owning buffers that live on one Device (host memory or CUDA device memory),
// plus copies between host and device.
//
// Error convention for kernels/: functions throw std::invalid_argument for bad
// arguments (sizes, ranges, non-finite values where they are forbidden) and
// std::runtime_error for device failures (e.g. CUDA requested but unavailable).
#include "kernels/device.hpp"

#include <cstddef>
#include <span>

namespace apiary::kernels {

// Throws std::runtime_error when `device` is cuda and no CUDA device is usable.
void require_device(Device device);

// A contiguous, uninitialised block of `bytes` bytes on `device`. Move-only.
class Buffer {
 public:
  Buffer() = default;
  Buffer(std::size_t bytes, Device device);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() noexcept { return data_; }
  const void* data() const noexcept { return data_; }
  std::size_t size_bytes() const noexcept { return bytes_; }
  Device device() const noexcept { return device_; }

 private:
  void release() noexcept;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_ = Device::cpu;
};

// Copies `bytes` bytes between any two locations; `dst_device`/`src_device`
// say where each pointer lives. Synchronous.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes);
// Sets `bytes` bytes at `dst` (on `device`) to zero. Synchronous.
void zero_bytes(void* dst, Device device, std::size_t bytes);
// Waits for all queued work on `device` (no-op on cpu).
void synchronize(Device device);

}  // namespace apiary::kernels
