#include "core/subprocess.hpp"

#include "core/error.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <thread>
#include <utility>

extern char** environ;

namespace apiary {

namespace {

int decode_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

Subprocess Subprocess::spawn(const std::string& program, const std::vector<std::string>& args,
                             const SpawnOptions& options) {
  const bool pipe_stdout = options.stdout_file.empty();
  int fds[2] = {-1, -1};
  if (pipe_stdout && pipe(fds) != 0) throw Error(Errc::io_error, "pipe() failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (pipe_stdout) {
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, options.stdout_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  if (!options.stderr_file.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, options.stderr_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  Subprocess child;
  const int rc = posix_spawn(&child.pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (pipe_stdout) {
    close(fds[1]);
    if (rc == 0)
      child.out_ = fdopen(fds[0], "r");
    else
      close(fds[0]);
  }
  if (rc != 0) {
    child.pid_ = -1;
    throw Error(Errc::io_error, "cannot start " + program);
  }
  return child;
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      out_(std::exchange(other.out_, nullptr)),
      exit_code_(std::exchange(other.exit_code_, std::nullopt)) {}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = std::exchange(other.pid_, -1);
    out_ = std::exchange(other.out_, nullptr);
    exit_code_ = std::exchange(other.exit_code_, std::nullopt);
  }
  return *this;
}

Subprocess::~Subprocess() {
  reset();
}

void Subprocess::reset() noexcept {
  if (pid_ > 0 && !exit_code()) {
    ::kill(pid_, SIGKILL);
    wait();
  }
  if (out_) std::fclose(out_);
  out_ = nullptr;
  pid_ = -1;
}

std::optional<int> Subprocess::exit_code() {
  int status = 0;
  if (pid_ > 0 && !exit_code_ && waitpid(pid_, &status, WNOHANG) == pid_)
    exit_code_ = decode_status(status);
  return exit_code_;
}

bool Subprocess::running() {
  return pid_ > 0 && !exit_code();
}

std::optional<int> Subprocess::wait_for(std::chrono::duration<double> limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  // Polls: there is no child-exit event to wait on without a SIGCHLD handler.
  while (running() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return exit_code();
}

int Subprocess::wait() {
  int status = 0;
  if (pid_ > 0 && !exit_code_ && waitpid(pid_, &status, 0) == pid_)
    exit_code_ = decode_status(status);
  return exit_code_.value_or(-1);
}

void Subprocess::signal(int number) {
  if (running()) ::kill(pid_, number);
}

}  // namespace apiary
