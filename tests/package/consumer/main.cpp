// Uses three layers of an installed Apiary (kernels, core, optimizer) and
// prints what it computed, so the test can check that it really ran.
#include "core/identity.hpp"
#include "kernels/device.hpp"
#include "kernels/reduce.hpp"
#include "optimizer/run_config.hpp"

#include <cstdio>
#include <vector>

int main() {
  std::vector<float> acc = {1.0f, 2.0f};
  const std::vector<float> x = {3.0f, 4.0f};
  apiary::kernels::weighted_accumulate(acc, x, 0.5f);  // {2.5, 4}
  const auto config = apiary::optimizer::RunConfig::parse_json(
      R"({"run": "outside", "target_batch_size": 256, "batch_size": 32})");
  const auto identity = apiary::Identity::generate();
  std::printf("consumer ok run=%s target=%llu sum=%.2f id=%s cuda_built=%d\n", config.run.c_str(),
              static_cast<unsigned long long>(config.target_batch_size), acc[0] + acc[1],
              identity.peer_id().to_string().c_str(), apiary::kernels::cuda_built() ? 1 : 0);
  return 0;
}
