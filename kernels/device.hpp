#pragma once
// Where compute runs. CUDA is used only when the library was built with it
// (APIARY_WITH_CUDA) and a device answers at run time; any CUDA error while
// probing means "no device" and the CPU path is used.
#include <string>

namespace apiary::kernels {

enum class Device { cpu, cuda };

bool cuda_built() noexcept;
bool cuda_available() noexcept;  // probed once, cached
// Why CUDA is unavailable ("built without CUDA", the driver's error text), or
// the device name when it is.
std::string cuda_status();

}  // namespace apiary::kernels
