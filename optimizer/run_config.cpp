#include "optimizer/run_config.hpp"

#include "core/error.hpp"
#include "optimizer/progress_estimate.hpp"

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

void require(bool ok, const std::string& message) {
  if (!ok) bad(message);
}

std::vector<std::uint32_t> read_widths(const json& array, const std::string& field,
                                       std::uint32_t max) {
  if (!array.is_array()) bad(field + " must be an array of integers");
  std::vector<std::uint32_t> out;
  for (const auto& w : array) {
    if (!w.is_number_unsigned() || w.get<std::uint64_t>() == 0 || w.get<std::uint64_t>() > max)
      bad(field + " entries must be integers in [1, " + std::to_string(max) + "]");
    out.push_back(w.get<std::uint32_t>());
  }
  return out;
}

// The field lists below are walked by two visitors: Reader (parse_json) and
// Writer (to_json). A visitor has
//   field(name, value)                  a scalar, string or named choice
//   widths(name, vector, max)           an array of positive integers
//   section(name, present, fields, why) a nested object; `present` says whether
//                                       it belongs (printed only then; read
//                                       otherwise it is an error: `why`)
//   optional(name, value, set)          a scalar printed only when `set`

// Reads fields from one JSON object, remembering which were consumed, so that
// unknown (misspelled) fields can be reported.
class Reader {
 public:
  Reader(const json& object, std::string path) : object_(object), path_(std::move(path)) {
    if (!object_.is_object()) bad((path_.empty() ? "the top level" : path_) + " must be an object");
  }

  template <typename T>
  void field(const char* name, T& out) {
    const json* value = find(name);
    if (!value) return;
    if constexpr (ConfigEnum<T>) {
      std::string text;
      read_scalar(name, *value, text);
      auto parsed = parse_name<T>(text);
      if (!parsed) bad(path(name) + " must be " + names_list<T>());
      out = *parsed;
    } else {
      read_scalar(name, *value, out);
    }
  }
  template <typename T>
  void optional(const char* name, T& out, bool /*set*/) {
    field(name, out);
  }
  void widths(const char* name, std::vector<std::uint32_t>& out, std::uint32_t max) {
    if (const json* value = find(name)) out = read_widths(*value, path(name), max);
  }
  template <typename S, typename Fields>
  void section(const char* name, S& out, Fields fields, bool present = true,
               const char* why = nullptr) {
    const json* value = find(name);
    if (!value) return;
    if (!present) bad(why);
    Reader child(*value, path(name));
    fields(child, out);
    child.finish();
  }
  // A JSON object taken as it is (its canonical text), for fields the
  // configuration only carries.
  void object(const char* name, std::string& out, bool present, const char* why) {
    const json* value = find(name);
    if (!value) return;
    if (!present) bad(why);
    if (!value->is_object()) bad(path(name) + " must be an object");
    out = value->dump();
  }
  void finish() const {
    for (const auto& [key, value] : object_.items()) {
      if (!seen_.count(key)) bad("unknown field " + path(key.c_str()));
    }
  }

 private:
  const json* find(const char* name) {
    seen_.insert(name);
    auto it = object_.find(name);
    return it == object_.end() ? nullptr : &*it;
  }
  std::string path(const char* name) const { return path_.empty() ? name : path_ + "." + name; }

  template <typename T>
  void read_scalar(const char* name, const json& value, T& out) const {
    bool ok = true;
    if constexpr (std::is_same_v<T, bool>) {
      ok = value.is_boolean();
    } else if constexpr (std::is_integral_v<T>) {
      ok = value.is_number_integer() && !(std::is_unsigned_v<T> && value.get<std::int64_t>() < 0);
    } else if constexpr (std::is_floating_point_v<T>) {
      ok = value.is_number();
    } else if constexpr (std::is_same_v<T, std::string>) {
      ok = value.is_string();
    }
    try {
      if (ok) out = value.get<T>();
    } catch (const std::exception&) {
      ok = false;
    }
    if (!ok) bad(path(name) + " has the wrong type (" + value.type_name() + ")");
  }

  const json& object_;
  std::string path_;
  std::set<std::string> seen_;
};

// Prints fields into a JSON object (nlohmann::json sorts the keys: the text is canonical).
class Writer {
 public:
  json out = json::object();

  template <typename T>
  void field(const char* name, const T& value) {
    if constexpr (ConfigEnum<T>) {
      out[name] = name_of(value);
    } else {
      out[name] = value;
    }
  }
  template <typename T>
  void optional(const char* name, const T& value, bool set) {
    if (set) field(name, value);
  }
  void widths(const char* name, const std::vector<std::uint32_t>& value, std::uint32_t) {
    out[name] = value;
  }
  template <typename S, typename Fields>
  void section(const char* name, const S& value, Fields fields, bool present = true,
               const char* = nullptr) {
    if (!present) return;
    Writer child;
    fields(child, value);
    out[name] = std::move(child.out);
  }
  void object(const char* name, const std::string& value, bool present, const char*) {
    if (present) out[name] = json::parse(value);
  }
};

// fields(v, "a", x.a, "b", x.b, …): v.field for each name and member.
template <typename V>
void fields(V&) {}
template <typename V, typename T, typename... Rest>
void fields(V& v, const char* name, T& value, Rest&&... rest) {
  v.field(name, value);
  fields(v, std::forward<Rest>(rest)...);
}

// The one list of each section's fields (C is the section, const or not).
template <typename V, typename C>
void moe_fields(V& v, C& moe) {
  fields(v, "expert_prefix", moe.expert_prefix);
  v.widths("grid", moe.grid, 1024);
  fields(v, "expert_inner", moe.expert_inner, "gating", moe.gating, "k_best", moe.k_best, "k_min",
         moe.k_min, "backward_k_min", moe.backward_k_min, "forward_timeout", moe.forward_timeout,
         "timeout_after_k_min", moe.timeout_after_k_min, "backward_timeout", moe.backward_timeout,
         "balancing_loss_weight", moe.balancing_loss_weight);
}

template <typename V, typename C>
void model_fields(V& v, C& model) {
  fields(v, "type", model.type);
  v.widths("hidden", model.hidden, 65536);
  fields(v, "activation", model.activation, "seed", model.seed);
  // mlp configs have no moe section: their canonical text predates it.
  v.section(
      "moe", model.moe, [](auto& sv, auto& s) { moe_fields(sv, s); }, model.type == "moe-mlp",
      "model.moe is only for model.type moe-mlp");
  v.object("options", model.options, model.type == "external",
           "model.options is only for model.type external");
}

template <typename V, typename C>
void dataset_fields(V& v, C& dataset) {
  fields(v, "name", dataset.name, "path", dataset.path);
}

template <typename V, typename C>
void optimizer_fields(V& v, C& o) {
  fields(v, "name", o.name, "lr", o.lr, "momentum", o.momentum, "nesterov", o.nesterov, "beta1",
         o.beta1, "beta2", o.beta2, "eps", o.eps, "weight_decay", o.weight_decay, "clip_grad_norm",
         o.clip_grad_norm, "warmup_epochs", o.warmup_epochs, "lr_decay_per_epoch",
         o.lr_decay_per_epoch);
}

template <typename V, typename C>
void averaging_fields(V& v, C& a) {
  fields(v, "mode", a.mode, "average_state_every", a.average_state_every, "target_group_size",
         a.target_group_size, "min_group_size", a.min_group_size, "matchmaking_time",
         a.matchmaking_time, "averaging_timeout", a.averaging_timeout);
  // Printed only when set: configurations without it keep their canonical text.
  v.optional("held_round_window", a.held_round_window, a.held_round_window > 0);
  fields(v, "overlap", a.overlap, "local_steps", a.local_steps, "outer_lr", a.outer_lr,
         "outer_momentum", a.outer_momentum);
}

template <typename V, typename C>
void compression_fields(V& v, C& k) {
  fields(v, "gradients", k.gradients, "state", k.state, "min_compress_elements",
         k.min_compress_elements);
}

template <typename V, typename C>
void run_fields(V& v, C& c) {
  fields(v, "run", c.run, "target_batch_size", c.target_batch_size, "batch_size", c.batch_size,
         "max_epochs", c.max_epochs, "target_accuracy", c.target_accuracy);
  // Printed only when set: configurations without it keep their canonical text.
  v.optional("max_peer_samples_per_second", c.max_peer_samples_per_second,
             c.max_peer_samples_per_second > 0);
  v.section("model", c.model, [](auto& sv, auto& s) { model_fields(sv, s); });
  v.section("dataset", c.dataset, [](auto& sv, auto& s) { dataset_fields(sv, s); });
  v.section("optimizer", c.optimizer, [](auto& sv, auto& s) { optimizer_fields(sv, s); });
  v.section("averaging", c.averaging, [](auto& sv, auto& s) { averaging_fields(sv, s); });
  v.section("compression", c.compression, [](auto& sv, auto& s) { compression_fields(sv, s); });
}

bool one_of(const std::string& value, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (value == a) return true;
  return false;
}

bool is_grid_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 &&
            (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_');
  for (char ch : name)
    ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-');
  return ok;
}

void validate_moe(const MoeModelConfig& moe) {
  require(is_grid_name(moe.expert_prefix),
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

void validate_optimizer(const OptimizerConfig& optimizer) {
  require(optimizer.lr > 0 && optimizer.lr < 100, "optimizer.lr must be > 0");
  require(
      optimizer.beta1 >= 0 && optimizer.beta1 < 1 && optimizer.beta2 >= 0 && optimizer.beta2 < 1,
      "optimizer.beta1 and beta2 must be in [0, 1)");
  require(optimizer.eps > 0, "optimizer.eps must be > 0");
  require(optimizer.weight_decay >= 0, "optimizer.weight_decay must be >= 0");
  require(optimizer.clip_grad_norm >= 0, "optimizer.clip_grad_norm must be >= 0");
  require(optimizer.lr_decay_per_epoch > 0 && optimizer.lr_decay_per_epoch <= 1,
          "optimizer.lr_decay_per_epoch must be in (0, 1]");
}

void validate_averaging(const AveragingConfig& averaging) {
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
}

}  // namespace

RunConfig RunConfig::parse_json(const std::string& text) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e999 (fuzz finding)
    bad(std::string("not valid JSON: ") + e.what());
  }
  RunConfig c;
  Reader top(doc, "");
  run_fields(top, c);
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

// Named choices (mode, optimizer, codecs) are enums: valid once parsed.
void RunConfig::validate() const {
  require(!run.empty() && run.size() <= 64, "run must be a name of 1 to 64 characters");
  for (char ch : run) {
    require(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.',
            "run may contain only letters, digits, '-', '_' and '.'");
  }
  require(one_of(model.type, {"mlp", "moe-mlp", "external"}),
          "model.type must be mlp, moe-mlp or external");
  require(!model.hidden.empty(), "model.hidden must name at least one hidden layer");
  require(one_of(model.activation, {"relu", "gelu"}), "model.activation must be relu or gelu");
  if (model.type == "moe-mlp") validate_moe(model.moe);
  // An external model's script reads its own data: the name is its business.
  require(model.type == "external" || dataset.name == "fashion-mnist",
          "dataset.name must be fashion-mnist");
  require(target_batch_size > 0, "target_batch_size must be > 0");
  require(batch_size > 0 && batch_size <= target_batch_size,
          "batch_size must be in [1, target_batch_size]");
  validate_optimizer(optimizer);
  validate_averaging(averaging);
  require(target_accuracy >= 0 && target_accuracy <= 1, "target_accuracy must be in [0, 1]");
  require(max_peer_samples_per_second >= 0,
          "max_peer_samples_per_second must be >= 0 (0: " +
              std::to_string(static_cast<long long>(kDefaultMaxPeerSamplesPerSecond)) + ")");
}

std::string RunConfig::to_json() const {
  Writer top;
  run_fields(top, *this);
  return top.out.dump();
}

}  // namespace apiary::optimizer
