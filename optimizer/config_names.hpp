#pragma once
// The named choices of a run configuration as enums, with the one table of
// their names that the JSON parser and printer and the CLI use.
// Errors: parse_name returns nullopt for an unknown name (the caller says
// which field held it); names_list() is the text of an error message.
#include "averaging/compression.hpp"

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace apiary::optimizer {

enum class AveragingMode { target_batch, local_updates /* DiLoCo */ };
enum class OptimizerName { sgd, adam, adamw, lamb };
using averaging::Codec;

template <typename E>
struct ConfigNames;  // specialized below: `table`, every value with its name

template <>
struct ConfigNames<AveragingMode> {
  static constexpr std::array<std::pair<AveragingMode, std::string_view>, 2> table{
      {{AveragingMode::target_batch, "target_batch"},
       {AveragingMode::local_updates, "local_updates"}}};
};

template <>
struct ConfigNames<OptimizerName> {
  static constexpr std::array<std::pair<OptimizerName, std::string_view>, 4> table{
      {{OptimizerName::sgd, "sgd"},
       {OptimizerName::adam, "adam"},
       {OptimizerName::adamw, "adamw"},
       {OptimizerName::lamb, "lamb"}}};
};

// The names a run configuration accepts (averaging::parse_codec accepts aliases too).
template <>
struct ConfigNames<Codec> {
  static constexpr std::array<std::pair<Codec, std::string_view>, 4> table{
      {{Codec::none, "none"},
       {Codec::fp16, "fp16"},
       {Codec::bf16, "bf16"},
       {Codec::blockwise8, "8bit"}}};
};

template <typename E>
concept ConfigEnum = requires {
  ConfigNames<E>::table;
};

template <ConfigEnum E>
constexpr std::string_view name_of(E value) noexcept {
  for (const auto& [v, name] : ConfigNames<E>::table)
    if (v == value) return name;
  return "?";
}

template <ConfigEnum E>
constexpr std::optional<E> parse_name(std::string_view name) noexcept {
  for (const auto& [v, n] : ConfigNames<E>::table)
    if (n == name) return v;
  return std::nullopt;
}

// "a, b or c": for error messages and help texts.
template <ConfigEnum E>
std::string names_list() {
  std::string out;
  const auto& table = ConfigNames<E>::table;
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (i > 0) out += i + 1 == table.size() ? " or " : ", ";
    out += table[i].second;
  }
  return out;
}

// Every name, for the CLI (e.g. CLI::IsMember).
template <ConfigEnum E>
std::vector<std::string> all_names() {
  std::vector<std::string> out;
  for (const auto& entry : ConfigNames<E>::table) out.emplace_back(entry.second);
  return out;
}

}  // namespace apiary::optimizer
