#pragma once
// The `apiary expert-server` command lines a mixture-of-experts run needs,
// printed by `apiary coordinator` next to its `apiary join` line so that a
// user can paste them: the run's expert grid (model.moe) split between
// `servers` processes that join the run's DHT through `peers`.
#include "optimizer/run_config.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace apiary::tools {

// One line per server, each hosting a contiguous range of the grid's first
// dimension (--experts '<prefix>.[lo:hi].[0:g1]…'), with the width of the
// run's last hidden layer and model.moe.expert_inner; together they host every
// expert once. At most grid[0] lines (one row each); none unless model.type is
// "moe-mlp". `token_run`: each server needs its own key and token
// (`apiary coordinator token --for <its peer id>`).
std::vector<std::string> expert_server_lines(const optimizer::ModelConfig& model,
                                             const std::string& peers, std::size_t servers,
                                             bool token_run);

}  // namespace apiary::tools
