#pragma once
// A strict reader of the Prometheus text exposition format (0.0.4) for tests:
// every sample belongs to a family declared by a preceding "# TYPE" line (one
// per family), names are valid, no series (name + labels) appears twice,
// values parse, counters are named *_total, histograms have cumulative
// _bucket{le} series ending at le="+Inf" equal to _count, plus _sum.
// Returns the problems found (empty: the text is valid) and the families.
#include <cmath>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace apiary::testing {

struct PrometheusText {
  std::vector<std::string> problems;
  std::map<std::string, std::string> family_types;  // name → counter|gauge|histogram|…
  std::map<std::string, double> samples;            // "name{labels}" → value
};

inline PrometheusText parse_prometheus_text(const std::string& text) {
  PrometheusText out;
  const std::regex name_re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  const std::regex sample_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$)");
  std::istringstream in(text);
  std::string line;
  std::string current;  // the family of the latest # TYPE
  std::map<std::string, std::vector<double>> buckets;
  int number = 0;
  auto problem = [&](const std::string& what) {
    out.problems.push_back("line " + std::to_string(number) + ": " + what + ": " + line);
  };
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      if (!std::regex_match(name, name_re)) problem("bad family name");
      if (out.family_types.count(name)) problem("family declared twice");
      if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
          type != "untyped")
        problem("unknown type");
      if (type == "counter" && !name.ends_with("_total")) problem("counter not named *_total");
      out.family_types[name] = type;
      current = name;
      continue;
    }
    if (line[0] == '#') {
      if (line.rfind("# HELP ", 0) != 0) problem("unknown comment");
      continue;
    }
    std::smatch m;
    if (!std::regex_match(line, m, sample_re)) {
      problem("not a sample");
      continue;
    }
    const std::string name = m[1], labels = m[2], value_text = m[3];
    const std::string series = name + labels;
    if (out.samples.count(series)) problem("duplicate series");
    char* end = nullptr;
    double value = std::strtod(value_text.c_str(), &end);
    if (value_text == "+Inf")
      value = INFINITY;
    else if (*end != '\0')
      problem("value does not parse");
    out.samples[series] = value;
    std::string family = name;
    const auto type = out.family_types.count(current) ? out.family_types[current] : "";
    if (type == "histogram") {
      for (const char* suffix : {"_bucket", "_sum", "_count"})
        if (name == current + suffix) family = current;
      if (name == current + "_bucket") {
        if (labels.find("le=\"") == std::string::npos) problem("bucket without le");
        auto& b = buckets[current];
        if (!b.empty() && value < b.back()) problem("buckets not cumulative");
        b.push_back(value);
      }
      if (name == current + "_count" && !buckets[current].empty() &&
          (labels.size() || buckets[current].back() != value))
        problem("+Inf bucket differs from _count");
    }
    if (family != current) problem("sample outside its family's TYPE block");
  }
  return out;
}

}  // namespace apiary::testing
