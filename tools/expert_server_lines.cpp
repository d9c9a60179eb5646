#include "tools/expert_server_lines.hpp"

#include <algorithm>

namespace apiary::tools {

std::vector<std::string> expert_server_lines(const optimizer::ModelConfig& model,
                                             const std::string& peers, std::size_t servers,
                                             bool token_run) {
  const auto& moe = model.moe;
  if (model.type != "moe-mlp" || moe.grid.empty() || model.hidden.empty()) return {};
  const std::size_t rows = moe.grid.front();
  servers = std::clamp<std::size_t>(servers, 1, rows);
  std::string other_dims;
  for (std::size_t d = 1; d < moe.grid.size(); ++d)
    other_dims += ".[0:" + std::to_string(moe.grid[d]) + "]";
  std::string flags = " --hidden " + std::to_string(model.hidden.back());
  if (moe.expert_inner) flags += " --inner " + std::to_string(moe.expert_inner);
  if (token_run) flags += " --identity KEYFILE --token TOKENFILE";

  std::vector<std::string> lines;
  for (std::size_t s = 0; s < servers; ++s) {
    // Rows split as evenly as possible (range sizes differ by at most one).
    const std::size_t lo = s * rows / servers, hi = (s + 1) * rows / servers;
    lines.push_back("apiary expert-server --peers " + peers + " --experts '" + moe.expert_prefix +
                    ".[" + std::to_string(lo) + ":" + std::to_string(hi) + "]" + other_dims + "'" +
                    flags);
  }
  return lines;
}

}  // namespace apiary::tools
