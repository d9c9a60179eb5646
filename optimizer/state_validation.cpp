#include "optimizer/state_validation.hpp"

#include "core/error.hpp"

#include <cmath>
#include <string>

namespace apiary::optimizer {

void require_finite(const StateSnapshot& state) {
  for (std::size_t t = 0; t < state.tensors.size(); ++t) {
    const auto& values = state.tensors[t];
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) {
        throw Error(Errc::invalid_argument,
                    "state of epoch " + std::to_string(state.epoch) + " has a non-finite value (" +
                        std::to_string(values[i]) + " in tensor " + std::to_string(t) +
                        ", element " + std::to_string(i) + ")");
      }
    }
  }
}

}  // namespace apiary::optimizer
