#include "tools/cli_common.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "optimizer/membership.hpp"

#include <unistd.h>
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>

namespace apiary::tools {

TcpEndpoint parse_listen(const std::string& text, const std::string& flag) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    throw Error(Errc::invalid_argument, flag + " " + text + ": expected HOST:PORT");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) throw Error(Errc::invalid_argument, flag + " " + text + ": empty host");
  unsigned long port = 0;
  try {
    std::size_t used = 0;
    port = std::stoul(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw Error(Errc::invalid_argument, flag + " " + text + ": port is not a number");
  }
  if (port > 65535) throw Error(Errc::invalid_argument, flag + " " + text + ": port > 65535");
  return TcpEndpoint{host, static_cast<std::uint16_t>(port)};
}

Identity load_or_create_identity(const std::string& file) {
  if (file.empty()) return Identity::generate();
  if (std::filesystem::exists(file)) return Identity::load(file);
  auto identity = Identity::generate();
  identity.save(file);
  log::info("created identity {} in {}", identity.peer_id().to_string(), file);
  return identity;
}

Membership load_membership(const std::string& token_file, const Identity& identity,
                           const std::string& run) {
  auto file = optimizer::load_token(token_file);
  if (file.token.peer != identity.peer_id()) {
    throw Error(Errc::permission_denied, "--token " + token_file + " was issued for peer " +
                                             file.token.peer.to_string() + ", not for this peer (" +
                                             identity.peer_id().to_string() + "; pass --identity)");
  }
  const std::string& run_name = run.empty() ? file.token.run : run;
  auto revocations = std::make_shared<optimizer::Revocations>(file.run_key, run_name);
  return {file.token.encode(), optimizer::make_admit_check(file.run_key, run_name, {}, revocations),
          file.run_key, revocations};
}

void add_revocation_option(CLI::App& command, double& seconds) {
  command
      .add_option("--revocation-refresh", seconds,
                  "token runs: seconds between fetches of the run's revocation list (apiary "
                  "coordinator revoke); connections of revoked or expired members are closed")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
}

optimizer::MembershipGuardOptions membership_guard_options(double refresh_seconds) {
  optimizer::MembershipGuardOptions options;
  options.refresh_period = std::chrono::milliseconds(static_cast<long>(refresh_seconds * 1000));
  options.sweep_period = std::min(options.refresh_period, std::chrono::milliseconds(5000));
  return options;
}

std::vector<PeerAddress> parse_peers(const std::vector<std::string>& texts) {
  std::vector<PeerAddress> peers;
  for (const auto& text : texts) {
    try {
      peers.push_back(PeerAddress::parse(text));
    } catch (const Error& e) {
      throw Error(Errc::invalid_argument, std::string("--peers: ") + e.what());
    }
  }
  return peers;
}

std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

namespace {
extern "C" void on_stop_signal(int) {
  if (stop_requested().exchange(true)) _exit(130);
}
}  // namespace

void install_stop_handler() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

}  // namespace apiary::tools
