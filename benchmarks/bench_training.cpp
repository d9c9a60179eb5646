// bench_training — what does training together cost in accuracy and time?
// Trains the Fashion-MNIST MLP for --epochs epochs of --target-batch samples
// with --peers collaborating processes (`apiary demo`: a coordinator and N
// `apiary join` on loopback), once per --runs entry (gradient compression,
// with or without averaging.overlap), and alone
// (`apiary train --solo --config`, the same run with a swarm of one): once for
// the same number of epochs (the speed reference), and once per collaborative
// run on the same total number of samples that run processed (peers overshoot
// the target batch while an epoch closes), for the accuracy comparison.
// Reports test accuracy (whole test set, at the end), samples/s (all peers
// together: total samples over the slowest peer's training time) and the
// fraction of each peer's wall time its training thread was blocked in
// communication not overlapped with compute (TrainerStatus::communication_seconds).
//
// The default epoch (16,384 samples) takes 0.3-0.4 s of compute for 4 peers
// on a 2-core machine: long next to matchmaking (~0.1 s settle) and an
// all-reduce (~10 ms), as a volunteer run's epochs are (seconds to minutes).
// With --target-batch 4096 an epoch is ~20 ms of compute per peer, shorter
// than one matchmaking, and the run measures coordination latency instead.
//
//   bench_training [--epochs 30] [--target-batch 16384] [--peers 4]
//                  [--batch-size 64] [--lr 0.003] [--runs none,8bit,none+overlap]
//                  [--average-state-every 10] [--time-limit 150] [--out DIR] [--json]
#include "core/subprocess.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct BenchOptions {
  std::string apiary = APIARY_BIN;
  std::uint32_t epochs = 30;
  int peers = 4;
  std::uint64_t target_batch = 16384;
  std::uint32_t batch_size = 64;
  double lr = 0.003;
  std::uint32_t average_state_every = 10;  // as `apiary demo`
  // Collaborative runs: gradient compression, "+overlap" for averaging.overlap.
  std::vector<std::string> variants = {"none", "8bit", "none+overlap"};
  double time_limit = 150;
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string out_dir;
  bool json = false;
};

// The demo's run (apiary demo), sized by the options; one file per variant.
fs::path write_config(const BenchOptions& o, const fs::path& dir, const std::string& compression,
                      bool overlap) {
  const std::string name = "bench-" + compression + (overlap ? "-overlap" : "");
  json config{
      {"run", name},
      {"model", {{"type", "mlp"}, {"hidden", {256, 128}}, {"activation", "relu"}, {"seed", 1}}},
      {"dataset", {{"name", "fashion-mnist"}, {"path", o.data_dir}}},
      {"target_batch_size", o.target_batch},
      {"batch_size", o.batch_size},
      {"optimizer", {{"name", "adam"}, {"lr", o.lr}, {"lr_decay_per_epoch", 0.995}}},
      {"averaging",
       {{"mode", "target_batch"},
        {"average_state_every", o.average_state_every},
        {"target_group_size", 16},
        {"min_group_size", 2},
        {"matchmaking_time", 1.0},
        {"averaging_timeout", 10.0},
        {"overlap", overlap}}},
      {"compression", {{"gradients", compression}, {"state", "none"}}},
      {"max_epochs", o.epochs}};
  const fs::path file = dir / (name + ".json");
  std::ofstream(file) << config.dump(2) << '\n';
  return file;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `apiary ARGS…` to completion (bounded by `limit`); its stdout as text.
std::string run_apiary(const BenchOptions& o, std::vector<std::string> args, const fs::path& log,
                       double limit) {
  args.insert(args.begin(), "apiary");
  const fs::path out = log.string() + ".out";
  auto child = apiary::Subprocess::spawn(o.apiary, args, {.stdout_file = out, .stderr_file = log});
  const auto code = child.wait_for(std::chrono::duration<double>(limit));
  if (!code || *code != 0) {
    std::fprintf(stderr, "bench_training: `apiary %s` %s (log: %s)\n", args[1].c_str(),
                 code ? ("exited with " + std::to_string(*code)).c_str() : "timed out",
                 log.c_str());
  }
  return read_text(out);
}

// The last line of `text` that parses as a JSON object (null if none).
json last_json_line(const std::string& text) {
  std::istringstream in(text);
  json found;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.front() != '{') continue;
    json parsed = json::parse(line, nullptr, false);
    if (parsed.is_object()) found = std::move(parsed);
  }
  return found;
}

double number(const json& row, const char* field) {
  return row.contains(field) && row[field].is_number() ? row[field].get<double>() : -1.0;
}

// The run alone for `epochs` epochs.
json run_solo(const BenchOptions& o, const fs::path& dir, std::uint64_t epochs) {
  const auto config = write_config(o, dir, "none", false);
  const fs::path log = dir / ("solo-" + std::to_string(epochs) + ".log");
  const std::string text = run_apiary(
      o,
      {"train", "--solo", "--config", config.string(), "--json", "--quiet", "--eval-every", "0",
       "--max-epochs", std::to_string(epochs), "--time-limit", std::to_string(o.time_limit)},
      log, o.time_limit + 120);
  json s = last_json_line(text);
  if (!s.is_object()) return json{{"error", "no summary (see " + log.string() + ")"}};
  return json{{"test_accuracy", s["test_accuracy"]},
              {"epochs", s["epochs"]},
              {"samples", s["local_samples"]},
              {"samples_per_s", s["samples_per_s"]},
              {"seconds", s["seconds"]},
              {"communication_fraction", s["communication_fraction"]},
              {"hit_time_limit", s["hit_time_limit"]}};
}

json run_swarm(const BenchOptions& o, const fs::path& dir, const std::string& compression,
               bool overlap) {
  const auto config = write_config(o, dir, compression, overlap);
  const fs::path out = dir / (compression + (overlap ? "-overlap" : ""));
  run_apiary(o,
             {"demo", "--peers", std::to_string(o.peers), "--config", config.string(), "--out",
              out.string(), "--time-limit", std::to_string(o.time_limit), "--target-accuracy", "0",
              "--eval-every", "0"},
             out.string() + ".log", o.time_limit + 180);
  json summary = json::parse(read_text(out / "summary.json"), nullptr, false);
  json row{{"compression", compression}, {"overlap", overlap}};
  if (!summary.is_object() || summary["peer_summaries"].empty()) {
    row["error"] = "no summary (see " + out.string() + ")";
    return row;
  }
  double accuracy = 0, min_accuracy = 1, seconds = 0, fraction = 0, max_fraction = 0;
  std::uint64_t samples = 0, epochs = 0, averaged = 0, local = 0;
  bool time_limit = false;
  const auto& peers = summary["peer_summaries"];
  for (const auto& p : peers) {
    const double a = p["test_accuracy"].get<double>();
    accuracy += a / static_cast<double>(peers.size());
    min_accuracy = std::min(min_accuracy, a);
    samples += p["local_samples"].get<std::uint64_t>();
    seconds = std::max(seconds, p["seconds"].get<double>());
    const double f = p["communication_fraction"].get<double>();
    fraction += f / static_cast<double>(peers.size());
    max_fraction = std::max(max_fraction, f);
    epochs = std::max(epochs, p["epochs"].get<std::uint64_t>());
    averaged += p["averaged_rounds"].get<std::uint64_t>();
    local += p["local_rounds"].get<std::uint64_t>();
    time_limit = time_limit || p["hit_time_limit"].get<bool>();
  }
  row.update(json{{"test_accuracy", accuracy},
                  {"test_accuracy_min", min_accuracy},
                  {"epochs", epochs},
                  {"samples", samples},
                  {"samples_per_s", seconds > 0 ? static_cast<double>(samples) / seconds : 0.0},
                  {"seconds", seconds},
                  {"communication_fraction", fraction},
                  {"communication_fraction_max", max_fraction},
                  {"averaged_rounds", averaged},
                  {"local_rounds", local},
                  {"finished_peers", peers.size()},
                  {"hit_time_limit", time_limit}});
  return row;
}

void print_table(const BenchOptions& o, const json& solo, const json& rows) {
  std::printf(
      "bench_training: MLP 784-256-128-10 on Fashion-MNIST, Adam lr %g, epochs of %llu "
      "samples (batch %u), state averaged every %u epochs\n",
      o.lr, static_cast<unsigned long long>(o.target_batch), o.batch_size, o.average_state_every);
  std::printf("%-28s %7s %9s %9s %10s %8s %12s %9s\n", "run", "epochs", "samples", "test_acc",
              "samples/s", "seconds", "comm_blocked", "avg/local");
  auto print_solo = [](const char* name, const json& r) {
    std::printf("%-28s %7.0f %9.0f %8.2f%% %10.0f %8.1f %11.1f%% %9s\n", name, number(r, "epochs"),
                number(r, "samples"), 100 * number(r, "test_accuracy"), number(r, "samples_per_s"),
                number(r, "seconds"), 100 * number(r, "communication_fraction"), "-");
  };
  print_solo("solo, same epochs", solo);
  for (const auto& r : rows) {
    const std::string name = std::to_string(o.peers) + " processes, " +
                             r["compression"].get<std::string>() +
                             (r["overlap"].get<bool>() ? " +overlap" : "");
    if (r.contains("error")) {
      std::printf("%-28s %s\n", name.c_str(), r["error"].get<std::string>().c_str());
      continue;
    }
    std::printf("%-28s %7.0f %9.0f %8.2f%% %10.0f %8.1f %11.1f%% %5.0f/%-3.0f\n", name.c_str(),
                number(r, "epochs"), number(r, "samples"), 100 * number(r, "test_accuracy"),
                number(r, "samples_per_s"), number(r, "seconds"),
                100 * number(r, "communication_fraction"), number(r, "averaged_rounds"),
                number(r, "local_rounds"));
    if (r.contains("solo_same_samples")) print_solo("  solo, same samples", r["solo_same_samples"]);
    std::printf(
        "  accuracy vs solo: %+.2f points at equal samples, %+.2f at equal epochs; samples/s "
        "%.2fx solo's; blocked in communication: mean %.1f%%, worst peer %.1f%%\n",
        -number(r, "accuracy_gap_points"), -number(r, "accuracy_gap_same_epochs_points"),
        number(r, "speedup_vs_solo"), 100 * number(r, "communication_fraction"),
        100 * number(r, "communication_fraction_max"));
  }
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions o;
  CLI::App app{"solo vs. collaborating processes on the same total samples"};
  app.add_option("--apiary", o.apiary, "the apiary executable")->capture_default_str();
  app.add_option("--epochs", o.epochs, "collaborative epochs (each --target-batch samples)")
      ->capture_default_str();
  app.add_option("--peers", o.peers, "collaborating `apiary join` processes")
      ->capture_default_str();
  app.add_option("--target-batch", o.target_batch, "samples per epoch")->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "samples per local step")->capture_default_str();
  app.add_option("--lr", o.lr, "Adam learning rate")->capture_default_str();
  app.add_option("--average-state-every", o.average_state_every,
                 "epochs between averages of parameters and Adam statistics")
      ->capture_default_str();
  app.add_option("--runs", o.variants,
                 "collaborative runs: gradient compression (none|fp16|bf16|8bit), with "
                 "+overlap for averaging.overlap")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--time-limit", o.time_limit, "seconds each run may train")->capture_default_str();
  app.add_option("--data", o.data_dir, "Fashion-MNIST directory")->capture_default_str();
  app.add_option("--out", o.out_dir, "folder for configurations and logs (default: a temp dir)");
  app.add_flag("--json", o.json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);

  const fs::path dir = o.out_dir.empty() ? fs::temp_directory_path() /
                                               ("apiary-bench-training-" + std::to_string(getpid()))
                                         : fs::path(o.out_dir);
  fs::create_directories(dir);
  const auto started = std::chrono::steady_clock::now();
  auto progress = [&](const std::string& what) {
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::fprintf(stderr, "bench_training [%5.0f s] %s\n", t, what.c_str());
  };

  progress("solo: " + std::to_string(o.epochs) + " epochs of " + std::to_string(o.target_batch) +
           " samples in one process");
  const json solo = run_solo(o, dir, o.epochs);
  json rows = json::array();
  for (const auto& variant : o.variants) {
    {
      const auto plus = variant.find("+overlap");
      const bool overlap = plus != std::string::npos;
      const std::string compression = variant.substr(0, plus);
      progress(std::to_string(o.peers) + " processes, gradients " + compression +
               (overlap ? ", overlap" : ""));
      json row = run_swarm(o, dir, compression, overlap);
      if (!row.contains("samples")) {
        rows.push_back(row);
        continue;
      }
      // Alone on as many samples (rounded to whole epochs) as the swarm processed.
      const auto samples = row["samples"].get<std::uint64_t>();
      const std::uint64_t epochs =
          std::max<std::uint64_t>(1, (samples + o.target_batch / 2) / o.target_batch);
      progress("solo: " + std::to_string(epochs) + " epochs, the swarm's " +
               std::to_string(samples) + " samples");
      row["solo_same_samples"] = run_solo(o, dir, epochs);
      if (row["solo_same_samples"].contains("test_accuracy")) {
        row["accuracy_gap_points"] =
            100 * (row["solo_same_samples"]["test_accuracy"].get<double>() -
                   row["test_accuracy"].get<double>());
      }
      // The same number of optimizer steps (epochs), whatever the samples.
      if (number(solo, "test_accuracy") >= 0) {
        row["accuracy_gap_same_epochs_points"] =
            100 * (number(solo, "test_accuracy") - number(row, "test_accuracy"));
      }
      if (number(solo, "samples_per_s") > 0)
        row["speedup_vs_solo"] = number(row, "samples_per_s") / number(solo, "samples_per_s");
      rows.push_back(row);
    }
  }
  progress("done; logs in " + dir.string());

  // Targets: within 1 point of solo at equal samples; <= 10 % blocked in communication.
  std::string accuracy_met, communication_met;  // the runs that meet each
  for (auto& r : rows) {
    const std::string name =
        r["compression"].get<std::string>() + (r["overlap"].get<bool>() ? "+overlap" : "");
    r["accuracy_target_met"] =
        r.contains("accuracy_gap_points") && number(r, "accuracy_gap_points") <= 1.0;
    r["communication_target_met"] =
        number(r, "communication_fraction") >= 0 && number(r, "communication_fraction") <= 0.10;
    if (r["accuracy_target_met"].get<bool>()) accuracy_met += " " + name;
    if (r["communication_target_met"].get<bool>()) communication_met += " " + name;
  }
  if (o.json) {
    json out{{"epochs", o.epochs},
             {"target_batch_size", o.target_batch},
             {"batch_size", o.batch_size},
             {"lr", o.lr},
             {"average_state_every", o.average_state_every},
             {"peers", o.peers},
             {"solo", solo},
             {"collaborative", rows},
             {"logs", dir.string()}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  print_table(o, solo, rows);
  std::printf(
      "targets met by: accuracy within 1 point of solo at equal samples:%s; blocked in "
      "communication <= 10 %% of wall time:%s\n",
      accuracy_met.empty() ? " no run" : accuracy_met.c_str(),
      communication_met.empty() ? " no run" : communication_met.c_str());
  return 0;
}
