#pragma once
// Starting and stopping `apiary` processes from integration tests. Every
// process is killed when its handle goes away, so a failing test leaves none.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace apiary::testing {

class Process {
 public:
  // Runs `args` (args[0] is the program) with stdout and stderr in files.
  Process(std::vector<std::string> args, std::filesystem::path out, std::filesystem::path err)
      : out_(std::move(out)), err_(std::move(err)) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      wait_for(std::chrono::seconds(5));
    }
  }

  bool started() const { return pid_ > 0; }
  bool running() {
    if (pid_ <= 0 || exit_code_) return false;
    poll();
    return !exit_code_;
  }
  void signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }
  // Exit code (128+signal when killed), or nullopt if still running after `limit`.
  std::optional<int> wait_for(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!exit_code_ && std::chrono::steady_clock::now() < until) {
      poll();
      if (!exit_code_) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return exit_code_;
  }
  std::string stdout_text() const { return read(out_); }
  std::string stderr_text() const { return read(err_); }
  // Waits until stdout or stderr contains `needle`.
  bool wait_for_text(const std::string& needle, std::chrono::milliseconds limit,
                     bool in_stderr = false) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if ((in_stderr ? stderr_text() : stdout_text()).find(needle) != std::string::npos)
        return true;
      if (!running()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

 private:
  void poll() {
    int status = 0;
    if (pid_ > 0 && !exit_code_ && waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
  }
  static std::string read(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::filesystem::path out_, err_;
};

// The first line of `text` starting with apiary:// (an address a command printed).
inline std::string first_address(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto pos = line.find("apiary://");
    if (pos != std::string::npos) {
      auto end = line.find_first_of(" \t\r", pos);
      return line.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    }
  }
  return {};
}

// A fresh folder for one test's files (configurations, logs, checkpoints).
inline std::filesystem::path fresh_work_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("apiary-it-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Runs a short command to its end (bounded) and returns its stdout; a test
// failure if it does not exit 0.
inline std::string run_to_end(std::vector<std::string> args, const std::filesystem::path& dir,
                              const std::string& name) {
  Process p(std::move(args), dir / (name + ".out"), dir / (name + ".err"));
  auto code = p.wait_for(std::chrono::seconds(30));
  EXPECT_EQ(code.value_or(-1), 0) << name << ": " << p.stderr_text();
  return p.stdout_text();
}

// Every line of `text` that contains `needle`, in order.
inline std::vector<std::string> lines_with(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

// A JSON file a process wrote (a discarded value if missing or invalid).
inline nlohmann::json read_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  return nlohmann::json::parse(in, nullptr, false);
}

#ifdef APIARY_BIN
// `apiary coordinator --config DIR/run.json --status-period 1 [extra…]`, logs in DIR.
class Coordinator {
 public:
  explicit Coordinator(const std::filesystem::path& dir, std::vector<std::string> extra = {})
      : process_(args(dir, std::move(extra)), dir / "coordinator.out", dir / "coordinator.err") {
    if (process_.wait_for_text("apiary://", std::chrono::seconds(15)))
      address_ = first_address(process_.stdout_text());
  }
  // Its printed address; empty if it did not start.
  const std::string& address() const { return address_; }
  Process& process() { return process_; }
  // SIGTERM, and a clean exit expected.
  void stop() {
    process_.signal(SIGTERM);
    EXPECT_EQ(process_.wait_for(std::chrono::seconds(30)).value_or(-1), 0)
        << process_.stderr_text();
  }

 private:
  static std::vector<std::string> args(const std::filesystem::path& dir,
                                       std::vector<std::string> extra) {
    std::vector<std::string> a{
        APIARY_BIN, "coordinator", "--config", (dir / "run.json").string(), "--status-period", "1"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  Process process_;
  std::string address_;
};
#endif

}  // namespace apiary::testing
