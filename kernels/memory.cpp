#include "kernels/memory.hpp"

#include "kernels/dispatch.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

namespace apiary::kernels {

void require_device(Device device) {
  if (device == Device::cuda && !cuda_available()) {
    throw std::runtime_error("CUDA requested but unavailable (" + cuda_status() + ")");
  }
}

namespace {
constexpr std::size_t kHostAlignment = 64;  // cache line; lets loops vectorize aligned
}

Buffer::Buffer(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (bytes == 0) return;
  if (device == Device::cuda) {
    require_device(device);
    APIARY_CUDA_CALL(data_ = cuda::device_alloc(bytes));
    return;
  }
  std::size_t rounded = (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
  data_ = std::aligned_alloc(kHostAlignment, rounded);
  if (data_ == nullptr) throw std::bad_alloc();
}

Buffer::~Buffer() {
  release();
}

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      device_(other.device_) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    device_ = other.device_;
  }
  return *this;
}

void Buffer::release() noexcept {
  if (data_ == nullptr) return;
  if (device_ == Device::cuda) {
    APIARY_CUDA_CALL(cuda::device_free(data_));
  } else {
    std::free(data_);
  }
  data_ = nullptr;
  bytes_ = 0;
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes) {
  if (bytes == 0) return;
  if (dst_device == Device::cpu && src_device == Device::cpu) {
    std::memmove(dst, src, bytes);
    return;
  }
  require_device(Device::cuda);
  APIARY_CUDA_CALL(
      cuda::copy(dst, dst_device == Device::cuda, src, src_device == Device::cuda, bytes));
}

void zero_bytes(void* dst, Device device, std::size_t bytes) {
  if (bytes == 0) return;
  if (device == Device::cpu) {
    std::memset(dst, 0, bytes);
    return;
  }
  require_device(device);
  APIARY_CUDA_CALL(cuda::zero(dst, bytes));
}

void synchronize(Device device) {
  if (device == Device::cpu) return;
  require_device(device);
  APIARY_CUDA_CALL(cuda::synchronize());
}

}  // namespace apiary::kernels
