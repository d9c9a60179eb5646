#pragma once
// ProgressPrinter: progress for long work. On a terminal one live line,
// rewritten in place (clipped to the terminal's width); otherwise (a pipe, a
// log file) one plain line per update, as scripts and tests read them.
// Threading: any threads (a lock orders their lines). Errors: none.
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>

namespace apiary::tools {

class ProgressPrinter {
 public:
  explicit ProgressPrinter(std::FILE* out);
  ProgressPrinter(std::FILE* out, bool live) : out_(out), live_(live) {}
  ~ProgressPrinter() { finish(); }
  ProgressPrinter(const ProgressPrinter&) = delete;
  ProgressPrinter& operator=(const ProgressPrinter&) = delete;

  void update(const std::string& line);
  // A line that stays (a warning, a summary) above the live line.
  void print_line(const std::string& line);
  // Ends the live line (a newline), so what follows starts on its own.
  void finish();
  bool live() const noexcept { return live_; }

 private:
  std::FILE* out_;
  bool live_;
  std::mutex mutex_;
  bool pending_ = false;  // a live line is on screen without its newline
};

// A duration for people: "12 s", "3.5 min", "2.0 h" ("–" when unknown:
// nullopt, negative or not finite).
std::string duration_text(std::optional<double> seconds);

// Seconds until the swarm's `samples_this_epoch` reach `target_batch_size` at
// `samples_per_second` (nullopt when nothing is being processed).
std::optional<double> seconds_to_next_epoch(double target_batch_size, double samples_this_epoch,
                                            double samples_per_second);

}  // namespace apiary::tools
