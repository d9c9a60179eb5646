// `apiary average`: joins a DHT, matchmakes under a group key and averages a
// deterministic tensor with whoever it meets — a check of the averaging stack
// across real processes and machines (like nccl-tests for NCCL).
//
// Each peer's tensor is uniform in [-1, 1], generated from its --seed; its
// weight is --weight. Peers answer "average.describe" with (seed, weight, size),
// so once a group forms every member asks the others and can compute the exact
// weighted mean itself. Per round it prints one line (JSON with --json): group
// size, failed peers, bytes, a BLAKE2b hash of the result and one per part
// (parts reduced by a live reducer hash the same on every survivor), the
// number of non-finite values, and the error against the expected mean:
// max_abs_error and max_rel_error = max|got − expected| / max|expected|.
// The tensor is re-generated before every round. Exit code 0 when every round
// formed a group, kept every value finite and stayed within the error bound
// (fp32: 1e-6 relative; lossy codecs: twice codec_error_bound plus 1e-6).
#include "averaging/averager.hpp"
#include "averaging/group_key_store.hpp"
#include "averaging/matchmaker.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"
#include "dht/runner.hpp"
#include "dht/validator.hpp"
#include "net/link_emulator.hpp"
#include "net/tcp_transport.hpp"
#include "tools/cli_common.hpp"
#include "tools/command.hpp"

#include <asio/this_coro.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace apiary::tools {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::string_view kDescribeMethod = "average.describe";

struct AverageOptions {
  std::vector<std::string> peers;
  std::string listen = "127.0.0.1:0";
  std::string identity_file;
  std::string group = "average";
  std::size_t group_size = 4;
  std::size_t min_group_size = 2;
  double matchmaking_time = 3.0;
  double timeout = 30.0;
  std::size_t size = 1u << 20;
  std::uint64_t seed = 0;  // 0: derived from the peer id
  float weight = 1.0f;
  std::string compression = "none";
  int rounds = 1;
  double link_mbps = 0;
  bool json = false;
};

// What a peer tells the others about its tensor.
struct Description {
  std::uint64_t seed = 0;
  float weight = 1.0f;
  std::uint64_t size = 0;
};

Bytes encode_description(const Description& d) {
  const nlohmann::json j{{"seed", d.seed}, {"weight", d.weight}, {"size", d.size}};
  const std::string text = j.dump();
  const ByteSpan bytes = as_bytes(text);
  return Bytes(bytes.begin(), bytes.end());
}

std::optional<Description> decode_description(ByteSpan bytes) {
  const auto j = nlohmann::json::parse(as_string_view(bytes), nullptr, false);
  if (!j.is_object() || !j.contains("seed") || !j.contains("weight") || !j.contains("size"))
    return std::nullopt;
  try {
    return Description{j["seed"].get<std::uint64_t>(), j["weight"].get<float>(),
                       j["size"].get<std::uint64_t>()};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The tensor of the peer with `seed`: uniform in [-1, 1], the same on every machine.
std::vector<float> seeded_tensor(std::uint64_t seed, std::size_t size) {
  std::mt19937_64 rng(seed);
  std::vector<float> values(size);
  for (auto& v : values) v = float(double(rng() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
  return values;
}

// Wraps the matchmaker: remembers the group of the last round and asks its
// members for their descriptions before the all-reduce starts.
class DescribingGroupSource final : public averaging::GroupSource {
 public:
  DescribingGroupSource(rpc::RpcNode& node, std::unique_ptr<averaging::GroupSource> inner)
      : node_(node), inner_(std::move(inner)) {}

  asio::awaitable<std::optional<averaging::GroupInfo>> find_group(
      float weight, std::uint64_t schema_hash, Clock::time_point deadline) override {
    group_.reset();
    descriptions_.clear();
    auto group = co_await inner_->find_group(weight, schema_hash, deadline);
    if (!group) co_return group;
    log::info("group of {} formed", group->members.size());
    for (const auto& m : group->members) {
      std::optional<Description> d;
      if (m.address.peer == node_.peer_id()) {
        d = self;
      } else {
        try {
          rpc::CallOptions options;
          options.timeout = std::chrono::milliseconds(2000);
          Bytes empty;
          Bytes answer = co_await node_.call(m.address, kDescribeMethod, std::move(empty), options);
          d = decode_description(answer);
        } catch (const std::exception& e) {
          log::warn("member {} did not describe itself: {}", m.address.to_string(), e.what());
        }
      }
      descriptions_.push_back(d);
    }
    group_ = group;
    co_return group;
  }

  Description self;
  const std::optional<averaging::GroupInfo>& group() const { return group_; }
  const std::vector<std::optional<Description>>& descriptions() const { return descriptions_; }

 private:
  rpc::RpcNode& node_;
  std::unique_ptr<averaging::GroupSource> inner_;
  std::optional<averaging::GroupInfo> group_;
  std::vector<std::optional<Description>> descriptions_;
};

std::string hash_hex(std::span<const float> values) {
  const Hash256 digest =
      hash256(ByteSpan(reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes()));
  return to_hex(ByteSpan(digest.data(), 16));
}

// Everything one round reports.
nlohmann::json round_report(const DescribingGroupSource& groups, const averaging::StepResult& step,
                            std::span<const float> got, averaging::Codec codec, bool& ok) {
  nlohmann::json out{{"group_size", step.group_size},     {"seconds", step.seconds},
                     {"bytes_sent", step.bytes_sent},     {"bytes_received", step.bytes_received},
                     {"chunks_local", step.chunks_local}, {"deadline_hit", step.deadline_hit}};
  std::vector<std::string> failed;
  for (const auto& p : step.failed_peers) failed.push_back(p.to_string());
  out["failed_peers"] = failed;
  std::size_t non_finite = 0;
  for (float v : got) non_finite += !std::isfinite(v);
  out["non_finite"] = non_finite;
  out["hash"] = hash_hex(got);
  if (!groups.group() || step.group_size < 2) {
    ok = false;
    return out;
  }
  const auto& group = *groups.group();
  std::vector<std::string> members, part_hashes;
  const auto parts = averaging::group_part_sizes(group, got.size(), 0);
  std::size_t begin = 0;
  for (std::size_t i = 0; i < group.members.size(); ++i) {
    members.push_back(group.members[i].address.peer.to_string());
    part_hashes.push_back(hash_hex(got.subspan(begin, parts[i])));
    begin += parts[i];
  }
  out["members"] = members;
  out["part_hashes"] = part_hashes;

  // The exact weighted mean, when every member described itself (equal
  // weights when they are all 0, as the reducer does).
  bool described = true;
  double total_weight = 0;
  for (const auto& d : groups.descriptions()) {
    described = described && d && d->size == got.size();
    if (d) total_weight += d->weight;
  }
  if (!described) {
    out["max_abs_error"] = nullptr;
    ok = ok && non_finite == 0;
    return out;
  }
  std::vector<double> expected(got.size(), 0.0);
  for (const auto& d : groups.descriptions()) {
    const auto values = seeded_tensor(d->seed, got.size());
    const double w =
        total_weight > 0 ? d->weight / total_weight : 1.0 / double(groups.descriptions().size());
    for (std::size_t k = 0; k < values.size(); ++k) expected[k] += w * values[k];
  }
  double max_abs = 0, max_expected = 0;
  for (std::size_t k = 0; k < got.size(); ++k) {
    max_abs = std::max(max_abs, std::fabs(double(got[k]) - expected[k]));
    max_expected = std::max(max_expected, std::fabs(expected[k]));
  }
  const double rel = max_expected > 0 ? max_abs / max_expected : max_abs;
  // Inputs lie in [-1, 1]: two codec passes, plus fp32 rounding.
  const double bound = 2 * averaging::codec_error_bound(codec, 1.0) + 1e-6;
  out["max_abs_error"] = max_abs;
  out["max_rel_error"] = rel;
  out["error_bound"] = bound;
  const bool within = averaging::is_lossy(codec) ? max_abs <= bound : rel <= 1e-6;
  out["within_bound"] = within;
  // A failed peer leaves parts local or averaged without it: no exact mean then.
  if (step.failed_peers.empty() && step.chunks_local == 0) ok = ok && within;
  ok = ok && non_finite == 0;
  return out;
}

// What a running `apiary average` keeps on the network thread.
struct Peer {
  Description self;
  averaging::MatchmakingOptions matchmaking;
  averaging::AveragerOptions averager_options;
  std::vector<float>* tensor = nullptr;
  DescribingGroupSource* groups = nullptr;  // owned by the averager
  std::unique_ptr<averaging::Averager> averager;
};

asio::awaitable<Bytes> describe(Description self) {
  co_return encode_description(self);
}

// Runs on the network thread: the describe method, matchmaker and averager.
asio::awaitable<void> set_up(dht::DhtNode& node, Peer* peer) {
  auto& rpc = node.rpc();
  rpc.add_method(std::string(kDescribeMethod),
                 [self = peer->self](const rpc::RequestContext&, Bytes) { return describe(self); });
  auto matchmaker = std::make_unique<averaging::Matchmaker>(
      rpc, std::make_shared<averaging::DhtGroupKeyStore>(node.shared_from_this()),
      peer->matchmaking);
  auto describing = std::make_unique<DescribingGroupSource>(rpc, std::move(matchmaker));
  describing->self = peer->self;
  peer->groups = describing.get();
  peer->averager =
      std::make_unique<averaging::Averager>(rpc, std::vector<std::span<float>>{*peer->tensor},
                                            std::move(describing), peer->averager_options);
  co_return;
}

asio::awaitable<void> tear_down(Peer* peer) {
  peer->averager.reset();
  co_return;
}

int run_average(const AverageOptions& o) {
  const auto codec = averaging::parse_codec(o.compression);
  if (!codec) {
    std::fprintf(stderr, "apiary average: unknown --compression %s\n", o.compression.c_str());
    return 2;
  }
  install_stop_handler();
  const Identity identity = load_or_create_identity(o.identity_file);
  const TcpEndpoint endpoint = parse_listen(o.listen);
  dht::DhtOptions dht_options;
  dht_options.validator = std::make_shared<dht::OwnerSignatureValidator>(identity);
  auto factory = [&](asio::any_io_executor executor) {
    TransportPtr transport = make_tcp_transport(std::move(executor), identity, endpoint);
    if (o.link_mbps > 0) {
      LinkProfile link;
      link.bandwidth_bytes_per_s = o.link_mbps * 1e6 / 8;
      transport = make_link_emulator(std::move(transport), link);
    }
    return transport;
  };
  dht::DhtRunner runner(factory, parse_peers(o.peers), dht_options);
  std::printf("%s\n", runner.address().to_string().c_str());
  std::fflush(stdout);

  std::vector<float> tensor(o.size);
  Description self{o.seed, o.weight, o.size};
  if (self.seed == 0) {
    const Hash256 h = hash256(as_bytes(identity.peer_id().to_string()));
    std::memcpy(&self.seed, h.data(), sizeof(self.seed));
  }
  averaging::AveragerOptions averager_options;
  averager_options.allreduce.compression.codec = *codec;
  averager_options.allreduce.compression.min_compressed_elements = 0;
  averaging::MatchmakingOptions mm;
  mm.prefix = o.group;
  mm.target_group_size = o.group_size;
  mm.min_group_size = o.min_group_size;
  mm.matchmaking_time = std::chrono::milliseconds(static_cast<long>(o.matchmaking_time * 1000));
  Peer peer{self, mm, averager_options, &tensor, nullptr, nullptr};
  // (a coroutine function, not a capturing coroutine lambda: the frame must
  // not refer to a lambda object that co_spawn may destroy)
  runner.run([&peer](dht::DhtNode& node) { return set_up(node, &peer); }).get();
  DescribingGroupSource* groups = peer.groups;
  auto& averager = peer.averager;

  bool ok = true;
  for (int round = 0; round < o.rounds && !stop_requested(); ++round) {
    // Copied into the buffer the averager holds a span of (never reallocated).
    const auto fresh = seeded_tensor(self.seed, o.size);
    std::copy(fresh.begin(), fresh.end(), tensor.begin());
    const auto deadline =
        Clock::now() +
        std::chrono::milliseconds(static_cast<long>((o.matchmaking_time + o.timeout) * 1000));
    const auto step = averager->step(self.weight, deadline);
    auto report = round_report(*groups, step, tensor, *codec, ok);
    report["round"] = round;
    report["peer"] = identity.peer_id().to_string();
    if (o.json) {
      std::printf("%s\n", report.dump().c_str());
    } else {
      std::printf("round %d: group of %zu, %zu failed, %.3f s, sent %llu B, hash %s", round,
                  step.group_size, step.failed_peers.size(), step.seconds,
                  static_cast<unsigned long long>(step.bytes_sent),
                  report["hash"].get<std::string>().c_str());
      if (report.contains("max_rel_error"))
        std::printf(", max error %.3g (rel %.3g, %s)", report["max_abs_error"].get<double>(),
                    report["max_rel_error"].get<double>(),
                    report["within_bound"].get<bool>() ? "within bound" : "OUT OF BOUND");
      std::printf("\n");
    }
    std::fflush(stdout);
  }
  runner.run([&peer](dht::DhtNode&) { return tear_down(&peer); }).get();
  runner.shutdown();
  return ok ? 0 : 1;
}

const Registration registration{
    "average", 60, [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<AverageOptions>();
      auto* cmd = app.add_subcommand(
          "average",
          "Average a seeded test tensor with the peers met through the DHT and check the result "
          "against the exact weighted mean (prints the own address first)");
      cmd->add_option("--peers", o->peers, "DHT peers apiary://<peer-id>@host:port (none: first)");
      cmd->add_option("--listen", o->listen, "HOST:PORT to listen on")->capture_default_str();
      cmd->add_option("--identity", o->identity_file, "key file (default: ephemeral key)");
      cmd->add_option("--group", o->group, "group key prefix for matchmaking")
          ->capture_default_str();
      cmd->add_option("--group-size", o->group_size, "target group size")->capture_default_str();
      cmd->add_option("--min-group-size", o->min_group_size, "smallest group that averages")
          ->capture_default_str();
      cmd->add_option("--matchmaking-time", o->matchmaking_time, "seconds to form a group")
          ->capture_default_str();
      cmd->add_option("--timeout", o->timeout, "seconds the all-reduce may take")
          ->capture_default_str();
      cmd->add_option("--size", o->size, "fp32 elements in the tensor")->capture_default_str();
      cmd->add_option("--seed", o->seed, "tensor seed (0: derived from the peer id)");
      cmd->add_option("--weight", o->weight, "this peer's weight (e.g. samples)")
          ->capture_default_str();
      cmd->add_option("--compression", o->compression, "none|fp16|bf16|8bit")
          ->capture_default_str();
      cmd->add_option("--rounds", o->rounds, "rounds to run")->capture_default_str();
      cmd->add_option("--link-mbps", o->link_mbps, "emulate a link of X Mbit/s per connection");
      cmd->add_flag("--json", o->json, "one JSON object per round");
      return [o] { return run_average(*o); };
    }};

}  // namespace
}  // namespace apiary::tools
