// bench_kernels: memory-bound kernels against memcpy in the same run, sgemm and
// an MLP training step.
//
// Bytes are counted as bytes read + bytes written by the kernel, once each:
//   memcpy/copy            4N read + 4N written              = 8N
//   reduce (acc += w·x)    4N (acc) + 4N (x) read + 4N written = 12N
//   quantize               4N read + N + 4N/block written
//   dequantize             N + 4N/block read + 4N written
//   dequantize_accumulate  N + 4N/block + 4N read + 4N written
//   to_fp16                4N read + 2N written
// memcpy_gbps uses kernels::copy, i.e. memcpy split over the same threads as the
// other kernels (like with like); memcpy_1thread_gbps is a single std::memcpy;
// *_vs_best_memcpy compare against the faster of the two.
// Each figure is the median of --reps timed runs after one warm-up run.
#include "kernels/kernels.hpp"
#include "nn/local_optimizer.hpp"
#include "nn/mlp.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

using namespace apiary;
using Clock = std::chrono::steady_clock;

namespace {

template <typename Fn>
double median_seconds(int reps, Fn fn) {
  fn();  // warm-up: page faults, caches, thread start-up
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    auto start = Clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double gbps(double bytes, double seconds) {
  return bytes / seconds / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_kernels: reduce/quantize bandwidth vs memcpy, sgemm, MLP step"};
  std::size_t mib = 256;
  int reps = 5;
  unsigned threads = kernels::cpu_threads();
  std::size_t gemm_n = 1024;
  std::size_t mlp_batch = 128;
  int mlp_steps = 50;
  bool json = false;
  app.add_option("--mib", mib, "fp32 buffer size in MiB (far larger than cache)")
      ->capture_default_str();
  app.add_option("--reps", reps, "timed repetitions (median reported)")->capture_default_str();
  app.add_option("--threads", threads, "CPU kernel threads")->capture_default_str();
  app.add_option("--gemm-n", gemm_n, "square sgemm size")->capture_default_str();
  app.add_option("--mlp-batch", mlp_batch, "MLP batch size")->capture_default_str();
  app.add_option("--mlp-steps", mlp_steps, "MLP steps timed")->capture_default_str();
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  kernels::set_cpu_threads(threads);
  reps = std::max(reps, 1);

  const std::size_t n = mib * (std::size_t{1} << 20) / sizeof(float);
  const std::size_t block = kernels::kDefaultQuantBlock;
  std::vector<float> x(n), acc(n), out(n);
  std::vector<std::byte> encoded(kernels::quantized_size(n, block));
  std::vector<std::uint16_t> half(n);
  {
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (std::size_t i = 0; i < n; i += 1) x[i] = dist(rng);
  }
  kernels::fill(acc, 0.5f);
  kernels::fill(out, 0.0f);
  std::memset(encoded.data(), 0, encoded.size());
  std::memset(half.data(), 0, half.size() * sizeof(std::uint16_t));

  const double N = static_cast<double>(n);
  const double scales = 4.0 * static_cast<double>(kernels::quantized_block_count(n, block));
  double t_memcpy1 = median_seconds(reps, [&] { std::memcpy(out.data(), x.data(), n * 4); });
  double t_copy = median_seconds(reps, [&] { kernels::copy(out, x); });
  double t_reduce = median_seconds(reps, [&] { kernels::weighted_accumulate(acc, x, 1e-3f); });
  double t_quant = median_seconds(reps, [&] { kernels::quantize_blockwise(x, encoded, block); });
  double t_dequant =
      median_seconds(reps, [&] { kernels::dequantize_blockwise(encoded, out, block); });
  double t_deq_acc =
      median_seconds(reps, [&] { kernels::dequantize_accumulate(encoded, acc, 1e-3f, block); });
  double t_fp16 = median_seconds(reps, [&] { kernels::to_fp16(x, half); });
  double t_sum = median_seconds(reps, [&] {
    volatile float s = kernels::sum(x);
    (void)s;
  });

  const double memcpy1_gbps = gbps(8 * N, t_memcpy1);
  const double memcpy_gbps = gbps(8 * N, t_copy);
  // The stricter baseline: whichever memcpy variant was faster in this run.
  const double best_memcpy_gbps = std::max(memcpy_gbps, memcpy1_gbps);
  const double reduce_gbps = gbps(12 * N, t_reduce);
  const double quantize_gbps = gbps(5 * N + scales, t_quant);
  const double dequantize_gbps = gbps(5 * N + scales, t_dequant);
  const double deq_acc_gbps = gbps(9 * N + scales, t_deq_acc);
  const double fp16_gbps = gbps(6 * N, t_fp16);
  const double sum_gbps = gbps(4 * N, t_sum);
  x = {};
  acc = {};
  out = {};
  encoded = {};
  half = {};

  // sgemm: C = A·B, square.
  std::vector<float> a(gemm_n * gemm_n, 0.5f), b(gemm_n * gemm_n, 0.25f), c(gemm_n * gemm_n);
  double t_gemm = median_seconds(reps, [&] {
    kernels::gemm({gemm_n, gemm_n, gemm_n}, 1.0f, a, b, 0.0f, c);
  });
  const double sgemm_gflops = 2.0 * std::pow(static_cast<double>(gemm_n), 3) / t_gemm / 1e9;

  // MLP training step: forward + backward + Adam on random data.
  nn::Mlp model({.layer_sizes = {784, 256, 128, 10}, .seed = 1});
  nn::LocalOptimizer optimizer(model.parameters(), {});
  std::vector<float> images(mlp_batch * 784);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  for (auto& p : images) p = pixel(rng);
  nn::Tensor input = nn::Tensor::from_vector(images, {mlp_batch, 784});
  nn::Tensor labels = nn::Tensor::empty({mlp_batch}, nn::DType::i32);
  for (std::size_t i = 0; i < mlp_batch; ++i)
    labels.span<std::int32_t>()[i] = static_cast<std::int32_t>(i % 10);
  auto step = [&] {
    model.forward_backward(input, labels);
    optimizer.step();
  };
  for (int i = 0; i < 5; ++i) step();
  auto start = Clock::now();
  for (int i = 0; i < mlp_steps; ++i) step();
  const double step_seconds =
      std::chrono::duration<double>(Clock::now() - start).count() / std::max(mlp_steps, 1);
  const double mlp_samples_per_s = static_cast<double>(mlp_batch) / step_seconds;

  if (json) {
    nlohmann::json out_json = {
        {"benchmark", "kernels"},
        {"buffer_mib", mib},
        {"threads", threads},
        {"hardware_threads", std::thread::hardware_concurrency()},
        {"reps", reps},
        {"bytes_counted", "read + written"},
        {"memcpy_gbps", memcpy_gbps},
        {"memcpy_1thread_gbps", memcpy1_gbps},
        {"reduce_gbps", reduce_gbps},
        {"quantize_gbps", quantize_gbps},
        {"dequantize_gbps", dequantize_gbps},
        {"dequantize_accumulate_gbps", deq_acc_gbps},
        {"to_fp16_gbps", fp16_gbps},
        {"sum_gbps", sum_gbps},
        {"reduce_vs_memcpy", reduce_gbps / memcpy_gbps},
        {"reduce_vs_best_memcpy", reduce_gbps / best_memcpy_gbps},
        {"quantize_vs_best_memcpy", quantize_gbps / best_memcpy_gbps},
        {"quantize_vs_memcpy", quantize_gbps / memcpy_gbps},
        {"dequantize_vs_memcpy", dequantize_gbps / memcpy_gbps},
        {"sgemm_n", gemm_n},
        {"sgemm_gflops", sgemm_gflops},
        {"mlp_batch", mlp_batch},
        {"mlp_step_ms", step_seconds * 1e3},
        {"mlp_samples_per_s", mlp_samples_per_s},
        {"cuda", kernels::cuda_status()},
    };
    std::printf("%s\n", out_json.dump().c_str());
    return 0;
  }
  std::printf(
      "bench_kernels: %zu MiB fp32 buffers, %u threads, median of %d (bytes = read + written)\n",
      mib, threads, reps);
  std::printf("%-24s %10s %12s %12s\n", "kernel", "GB/s", "vs memcpy", "vs best");
  auto row = [&](const char* name, double value) {
    std::printf("%-24s %10.2f %11.0f%% %11.0f%%\n", name, value, 100.0 * value / memcpy_gbps,
                100.0 * value / best_memcpy_gbps);
  };
  row("memcpy (threads)", memcpy_gbps);
  row("memcpy (1 thread)", memcpy1_gbps);
  row("reduce acc+=w*x", reduce_gbps);
  row("quantize 8-bit", quantize_gbps);
  row("dequantize 8-bit", dequantize_gbps);
  row("dequantize+accumulate", deq_acc_gbps);
  row("to_fp16", fp16_gbps);
  row("sum (deterministic)", sum_gbps);
  std::printf("sgemm %zux%zux%zu: %.1f GFLOP/s\n", gemm_n, gemm_n, gemm_n, sgemm_gflops);
  std::printf("MLP 784-256-128-10 step (batch %zu, Adam): %.2f ms, %.0f samples/s\n", mlp_batch,
              step_seconds * 1e3, mlp_samples_per_s);
  std::printf("CUDA: %s\n", kernels::cuda_status().c_str());
  return 0;
}
