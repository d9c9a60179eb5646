#pragma once
// Checks a training state must pass before it replaces this peer's, is written
// to a checkpoint or is resumed from one: a state from a donor or a file is a
// stranger's input, and one NaN poisons every peer that averages with it.
// Errors: throws apiary::Error{invalid_argument} naming the first bad value.
#include "optimizer/swarm_services.hpp"

namespace apiary::optimizer {

void require_finite(const StateSnapshot& state);

}  // namespace apiary::optimizer
