#pragma once
// Child processes for the CLI and the benchmarks (POSIX posix_spawn): stdout
// piped to the parent or written to a file, stderr to a file. A Subprocess
// still running when destroyed is killed (SIGKILL) and reaped, so an error
// path never leaves children behind.
// Errors: spawn throws apiary::Error{io_error}; the rest report through values.
#include <sys/types.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace apiary {

struct SpawnOptions {
  std::filesystem::path stdout_file;  // empty: a pipe, read through Subprocess::out()
  std::filesystem::path stderr_file;  // empty: the parent's stderr
};

class Subprocess {
 public:
  // Runs `program` with `args` (args[0] is the name the child sees).
  static Subprocess spawn(const std::string& program, const std::vector<std::string>& args,
                          const SpawnOptions& options);
  Subprocess() = default;
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  ~Subprocess();

  pid_t pid() const noexcept { return pid_; }
  // The read end of the stdout pipe (nullptr when stdout goes to a file).
  FILE* out() const noexcept { return out_; }
  bool running();
  // The exit status (128 + signal when killed), once the child has exited.
  std::optional<int> exit_code();
  // Waits up to `limit` for the child to exit.
  std::optional<int> wait_for(std::chrono::duration<double> limit);
  int wait();
  void signal(int number);

 private:
  void reset() noexcept;
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::optional<int> exit_code_;
};

}  // namespace apiary
