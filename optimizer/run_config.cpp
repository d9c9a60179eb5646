#include "optimizer/run_config.hpp"

#include "core/error.hpp"

#include <nlohmann/json.hpp>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

namespace apiary::optimizer {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& message) {
  throw Error(Errc::invalid_argument, "config: " + message);
}

// Reads fields from one JSON object, remembering which were consumed, so that
// unknown (misspelled) fields can be reported.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string path) : object_(object), path_(std::move(path)) {
    if (!object_.is_object()) bad(where() + " must be an object");
  }

  template <typename T>
  void read(const char* name, T& out) {
    seen_.insert(name);
    auto it = object_.find(name);
    if (it == object_.end()) return;
    try {
      if constexpr (std::is_same_v<T, bool>) {
        if (!it->is_boolean()) throw std::invalid_argument("");
      } else if constexpr (std::is_integral_v<T>) {
        if (!it->is_number_integer() ||
            (std::is_unsigned_v<T> && it->is_number_integer() && it->get<std::int64_t>() < 0))
          throw std::invalid_argument("");
      } else if constexpr (std::is_floating_point_v<T>) {
        if (!it->is_number()) throw std::invalid_argument("");
      } else if constexpr (std::is_same_v<T, std::string>) {
        if (!it->is_string()) throw std::invalid_argument("");
      }
      out = it->get<T>();
    } catch (const std::exception&) {
      bad(field(name) + " has the wrong type (" + it->type_name() + ")");
    }
  }

  const json* child(const char* name) {
    seen_.insert(name);
    auto it = object_.find(name);
    return it == object_.end() ? nullptr : &*it;
  }

  void finish() const {
    for (const auto& [key, value] : object_.items()) {
      if (!seen_.count(key)) bad("unknown field " + field(key.c_str()));
    }
  }

  std::string field(const char* name) const { return path_.empty() ? name : path_ + "." + name; }

 private:
  std::string where() const { return path_.empty() ? "the top level" : path_; }
  const json& object_;
  std::string path_;
  std::set<std::string> seen_;
};

void require(bool ok, const std::string& message) {
  if (!ok) bad(message);
}

bool one_of(const std::string& value, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (value == a) return true;
  return false;
}

std::vector<std::uint32_t> read_widths(const json& array, const char* field, std::uint32_t max) {
  if (!array.is_array()) bad(std::string(field) + " must be an array of integers");
  std::vector<std::uint32_t> out;
  for (const auto& w : array) {
    if (!w.is_number_unsigned() || w.get<std::uint64_t>() == 0 || w.get<std::uint64_t>() > max)
      bad(std::string(field) + " entries must be integers in [1, " + std::to_string(max) + "]");
    out.push_back(w.get<std::uint32_t>());
  }
  return out;
}

void read_moe(const json& object, MoeModelConfig& moe) {
  ObjectReader r(object, "model.moe");
  r.read("expert_prefix", moe.expert_prefix);
  if (const json* g = r.child("grid")) moe.grid = read_widths(*g, "model.moe.grid", 1024);
  r.read("expert_inner", moe.expert_inner);
  r.read("gating", moe.gating);
  r.read("k_best", moe.k_best);
  r.read("k_min", moe.k_min);
  r.read("backward_k_min", moe.backward_k_min);
  r.read("forward_timeout", moe.forward_timeout);
  r.read("timeout_after_k_min", moe.timeout_after_k_min);
  r.read("backward_timeout", moe.backward_timeout);
  r.read("balancing_loss_weight", moe.balancing_loss_weight);
  r.finish();
}

void validate_moe(const MoeModelConfig& moe) {
  const auto& name = moe.expert_prefix;
  bool name_ok = !name.empty() && name.size() <= 64 &&
                 (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_');
  for (char ch : name)
    name_ok = name_ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-');
  require(name_ok,
          "model.moe.expert_prefix must be a grid name like ffn ([A-Za-z_][A-Za-z0-9_-]*)");
  require(!moe.grid.empty() && moe.grid.size() <= 4, "model.moe.grid must have 1 to 4 dimensions");
  std::uint64_t cells = 1;
  for (auto g : moe.grid) cells *= g;
  require(one_of(moe.gating, {"softmax_top_k", "switch_top1"}),
          "model.moe.gating must be softmax_top_k or switch_top1");
  require(moe.k_best >= 1 && moe.k_best <= 64 && moe.k_best <= cells,
          "model.moe.k_best must be in [1, 64] and at most the number of grid cells");
  require(moe.k_min <= moe.k_best && moe.backward_k_min <= moe.k_best,
          "model.moe.k_min and backward_k_min must be in [0, k_best]");
  require(moe.forward_timeout > 0 && moe.forward_timeout <= 600 && moe.backward_timeout > 0 &&
              moe.backward_timeout <= 600,
          "model.moe.forward_timeout and backward_timeout must be in (0, 600] seconds");
  require(moe.timeout_after_k_min >= 0 && moe.timeout_after_k_min <= moe.forward_timeout,
          "model.moe.timeout_after_k_min must be in [0, forward_timeout]");
  require(moe.balancing_loss_weight >= 0 && moe.balancing_loss_weight <= 100,
          "model.moe.balancing_loss_weight must be in [0, 100]");
}

}  // namespace

RunConfig RunConfig::parse_json(const std::string& text) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    bad(std::string("not valid JSON: ") + e.what());
  }
  RunConfig c;
  ObjectReader top(doc, "");
  top.read("run", c.run);
  top.read("target_batch_size", c.target_batch_size);
  top.read("batch_size", c.batch_size);
  top.read("max_epochs", c.max_epochs);
  top.read("target_accuracy", c.target_accuracy);
  if (const json* m = top.child("model")) {
    ObjectReader r(*m, "model");
    r.read("type", c.model.type);
    if (const json* h = r.child("hidden")) c.model.hidden = read_widths(*h, "model.hidden", 65536);
    r.read("activation", c.model.activation);
    r.read("seed", c.model.seed);
    if (const json* e = r.child("moe")) {
      if (c.model.type != "moe-mlp") bad("model.moe is only for model.type moe-mlp");
      read_moe(*e, c.model.moe);
    }
    r.finish();
  }
  if (const json* d = top.child("dataset")) {
    ObjectReader r(*d, "dataset");
    r.read("name", c.dataset.name);
    r.read("path", c.dataset.path);
    r.finish();
  }
  if (const json* o = top.child("optimizer")) {
    ObjectReader r(*o, "optimizer");
    r.read("name", c.optimizer.name);
    r.read("lr", c.optimizer.lr);
    r.read("momentum", c.optimizer.momentum);
    r.read("nesterov", c.optimizer.nesterov);
    r.read("beta1", c.optimizer.beta1);
    r.read("beta2", c.optimizer.beta2);
    r.read("eps", c.optimizer.eps);
    r.read("weight_decay", c.optimizer.weight_decay);
    r.read("clip_grad_norm", c.optimizer.clip_grad_norm);
    r.read("warmup_epochs", c.optimizer.warmup_epochs);
    r.read("lr_decay_per_epoch", c.optimizer.lr_decay_per_epoch);
    r.finish();
  }
  if (const json* a = top.child("averaging")) {
    ObjectReader r(*a, "averaging");
    r.read("mode", c.averaging.mode);
    r.read("average_state_every", c.averaging.average_state_every);
    r.read("target_group_size", c.averaging.target_group_size);
    r.read("min_group_size", c.averaging.min_group_size);
    r.read("matchmaking_time", c.averaging.matchmaking_time);
    r.read("averaging_timeout", c.averaging.averaging_timeout);
    r.read("held_round_window", c.averaging.held_round_window);
    r.read("overlap", c.averaging.overlap);
    r.read("local_steps", c.averaging.local_steps);
    r.read("outer_lr", c.averaging.outer_lr);
    r.read("outer_momentum", c.averaging.outer_momentum);
    r.finish();
  }
  if (const json* k = top.child("compression")) {
    ObjectReader r(*k, "compression");
    r.read("gradients", c.compression.gradients);
    r.read("state", c.compression.state);
    r.read("min_compress_elements", c.compression.min_compress_elements);
    r.finish();
  }
  top.finish();
  c.validate();
  return c;
}

RunConfig RunConfig::load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(Errc::invalid_argument, "config: cannot read " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return parse_json(buffer.str());
  } catch (const Error& e) {
    throw Error(e.code(), std::string(e.what()) + " (in " + path + ")");
  }
}

void RunConfig::validate() const {
  require(!run.empty() && run.size() <= 64, "run must be a name of 1 to 64 characters");
  for (char ch : run) {
    require(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.',
            "run may contain only letters, digits, '-', '_' and '.'");
  }
  require(one_of(model.type, {"mlp", "moe-mlp"}), "model.type must be mlp or moe-mlp");
  require(!model.hidden.empty(), "model.hidden must name at least one hidden layer");
  require(one_of(model.activation, {"relu", "gelu"}), "model.activation must be relu or gelu");
  if (model.type == "moe-mlp") validate_moe(model.moe);
  require(dataset.name == "fashion-mnist", "dataset.name must be fashion-mnist");
  require(target_batch_size > 0, "target_batch_size must be > 0");
  require(batch_size > 0 && batch_size <= target_batch_size,
          "batch_size must be in [1, target_batch_size]");
  require(one_of(optimizer.name, {"sgd", "adam", "adamw", "lamb"}),
          "optimizer.name must be sgd, adam, adamw or lamb");
  require(optimizer.lr > 0 && optimizer.lr < 100, "optimizer.lr must be > 0");
  require(
      optimizer.beta1 >= 0 && optimizer.beta1 < 1 && optimizer.beta2 >= 0 && optimizer.beta2 < 1,
      "optimizer.beta1 and beta2 must be in [0, 1)");
  require(optimizer.eps > 0, "optimizer.eps must be > 0");
  require(optimizer.weight_decay >= 0, "optimizer.weight_decay must be >= 0");
  require(optimizer.clip_grad_norm >= 0, "optimizer.clip_grad_norm must be >= 0");
  require(optimizer.lr_decay_per_epoch > 0 && optimizer.lr_decay_per_epoch <= 1,
          "optimizer.lr_decay_per_epoch must be in (0, 1]");
  require(one_of(averaging.mode, {"target_batch", "local_updates"}),
          "averaging.mode must be target_batch or local_updates");
  require(averaging.average_state_every >= 1, "averaging.average_state_every must be >= 1");
  require(averaging.min_group_size >= 1 && averaging.min_group_size <= averaging.target_group_size,
          "averaging.min_group_size must be in [1, target_group_size]");
  require(averaging.matchmaking_time > 0 && averaging.averaging_timeout > 0,
          "averaging.matchmaking_time and averaging_timeout must be > 0");
  require(averaging.held_round_window >= 0,
          "averaging.held_round_window must be >= 0 (0: averaging_timeout)");
  require(averaging.local_steps >= 1, "averaging.local_steps must be >= 1");
  require(averaging.outer_lr > 0 && averaging.outer_momentum >= 0 && averaging.outer_momentum < 1,
          "averaging.outer_lr must be > 0 and outer_momentum in [0, 1)");
  require(one_of(compression.gradients, {"none", "fp16", "bf16", "8bit"}),
          "compression.gradients must be none, fp16, bf16 or 8bit");
  require(one_of(compression.state, {"none", "fp16", "bf16", "8bit"}),
          "compression.state must be none, fp16, bf16 or 8bit");
  require(target_accuracy >= 0 && target_accuracy <= 1, "target_accuracy must be in [0, 1]");
}

std::string RunConfig::to_json() const {
  json j;  // nlohmann::json sorts object keys: the text is canonical
  j["run"] = run;
  j["target_batch_size"] = target_batch_size;
  j["batch_size"] = batch_size;
  j["max_epochs"] = max_epochs;
  j["target_accuracy"] = target_accuracy;
  j["model"] = {{"type", model.type},
                {"hidden", model.hidden},
                {"activation", model.activation},
                {"seed", model.seed}};
  if (model.type == "moe-mlp") {  // mlp configs keep their canonical text
    const auto& moe = model.moe;
    j["model"]["moe"] = {{"expert_prefix", moe.expert_prefix},
                         {"grid", moe.grid},
                         {"expert_inner", moe.expert_inner},
                         {"gating", moe.gating},
                         {"k_best", moe.k_best},
                         {"k_min", moe.k_min},
                         {"backward_k_min", moe.backward_k_min},
                         {"forward_timeout", moe.forward_timeout},
                         {"timeout_after_k_min", moe.timeout_after_k_min},
                         {"backward_timeout", moe.backward_timeout},
                         {"balancing_loss_weight", moe.balancing_loss_weight}};
  }
  j["dataset"] = {{"name", dataset.name}, {"path", dataset.path}};
  j["optimizer"] = {{"name", optimizer.name},
                    {"lr", optimizer.lr},
                    {"momentum", optimizer.momentum},
                    {"nesterov", optimizer.nesterov},
                    {"beta1", optimizer.beta1},
                    {"beta2", optimizer.beta2},
                    {"eps", optimizer.eps},
                    {"weight_decay", optimizer.weight_decay},
                    {"clip_grad_norm", optimizer.clip_grad_norm},
                    {"warmup_epochs", optimizer.warmup_epochs},
                    {"lr_decay_per_epoch", optimizer.lr_decay_per_epoch}};
  j["averaging"] = {{"mode", averaging.mode},
                    {"average_state_every", averaging.average_state_every},
                    {"target_group_size", averaging.target_group_size},
                    {"min_group_size", averaging.min_group_size},
                    {"matchmaking_time", averaging.matchmaking_time},
                    {"averaging_timeout", averaging.averaging_timeout},
                    {"overlap", averaging.overlap},
                    {"local_steps", averaging.local_steps},
                    {"outer_lr", averaging.outer_lr},
                    {"outer_momentum", averaging.outer_momentum}};
  if (averaging.held_round_window > 0)  // configs without it keep their canonical text
    j["averaging"]["held_round_window"] = averaging.held_round_window;
  j["compression"] = {{"gradients", compression.gradients},
                      {"state", compression.state},
                      {"min_compress_elements", compression.min_compress_elements}};
  return j.dump();
}

}  // namespace apiary::optimizer
