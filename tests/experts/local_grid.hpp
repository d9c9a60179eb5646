#pragma once
// A rows × cols grid of in-process FFN experts ("ffn.i.j"), declared in a
// FakeDirectory. They take no optimizer step, so the function a gradient check
// differentiates stays fixed. Seeds count up from ffn.seed.
#include "experts/expert_backend.hpp"
#include "experts/expert_handle.hpp"
#include "experts/ffn_expert.hpp"
#include "fake_directory.hpp"

#include <map>
#include <memory>
#include <string>

namespace apiary::experts::testing {

inline std::map<std::string, ExpertHandlePtr> fixed_ffn_grid(FakeDirectory& directory,
                                                             std::uint32_t rows, std::uint32_t cols,
                                                             FfnConfig ffn) {
  std::map<std::string, ExpertHandlePtr> handles;
  for (std::uint32_t i = 0; i < rows; ++i) {
    for (std::uint32_t j = 0; j < cols; ++j) {
      auto uid = "ffn." + std::to_string(i) + "." + std::to_string(j);
      directory.declare(uid);
      BackendOptions options;
      options.optimizer.kind = ExpertOptimizerConfig::Kind::none;
      handles[uid] = std::make_shared<LocalExpert>(
          std::make_shared<ExpertBackend>(uid, std::make_unique<FfnExpert>(ffn), options));
      ++ffn.seed;
    }
  }
  return handles;
}

}  // namespace apiary::experts::testing
