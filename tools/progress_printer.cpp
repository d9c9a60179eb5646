#include "tools/progress_printer.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace apiary::tools {
namespace {

std::size_t terminal_columns(std::FILE* out) {
  winsize size{};
  if (ioctl(fileno(out), TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 120;
}

}  // namespace

ProgressPrinter::ProgressPrinter(std::FILE* out) : out_(out), live_(isatty(fileno(out)) == 1) {}

void ProgressPrinter::update(const std::string& line) {
  std::lock_guard lock(mutex_);
  if (!live_) {
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
    return;
  }
  // Clipped by one column so the cursor never wraps onto a new line.
  const std::size_t width = terminal_columns(out_) - 1;
  const std::string shown = line.size() > width ? line.substr(0, width) : line;
  std::fprintf(out_, "\r\033[K%s", shown.c_str());
  std::fflush(out_);
  pending_ = true;
}

void ProgressPrinter::print_line(const std::string& line) {
  std::lock_guard lock(mutex_);
  if (pending_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
  pending_ = false;
}

void ProgressPrinter::finish() {
  std::lock_guard lock(mutex_);
  if (!pending_) return;
  std::fprintf(out_, "\n");
  std::fflush(out_);
  pending_ = false;
}

std::string duration_text(std::optional<double> duration) {
  if (!duration || !(*duration >= 0) || !std::isfinite(*duration)) return "–";
  const double seconds = *duration;
  char text[32];
  if (seconds < 90)
    std::snprintf(text, sizeof text, "%.0f s", seconds);
  else if (seconds < 5400)
    std::snprintf(text, sizeof text, "%.1f min", seconds / 60);
  else
    std::snprintf(text, sizeof text, "%.1f h", seconds / 3600);
  return text;
}

std::optional<double> seconds_to_next_epoch(double target_batch_size, double samples_this_epoch,
                                            double samples_per_second) {
  if (!(samples_per_second > 0)) return std::nullopt;
  return std::max(0.0, target_batch_size - samples_this_epoch) / samples_per_second;
}

}  // namespace apiary::tools
