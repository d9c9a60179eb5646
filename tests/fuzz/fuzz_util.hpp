#pragma once
// Helpers shared by the fuzz targets (fuzz_*.cpp). A target calls the
// production decoder on the input; a decoder may refuse the input only with
// the exception its header documents (expect_only<E>), anything else — a
// crash, a sanitizer report, another exception, a broken round trip
// (require) — is a finding.
#include "core/bytes.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "core/identity.hpp"

#include <unistd.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace apiary::fuzz {

// Runs `step`; an exception of type E is the decoder refusing the input.
// Returns true when the step completed.
template <typename E, typename F>
bool expect_only(F&& step) {
  try {
    step();
    return true;
  } catch (const E&) {
    return false;
  }
}

// A property that must hold for every input (aborts, which libFuzzer reports).
inline void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz property violated: %s\n", what);
    std::abort();
  }
}

// For decoders that read files: one scratch file per process and name, under
// $TMPDIR (or /tmp), rewritten for every input.
inline std::filesystem::path scratch_file(std::string_view name) {
  const char* dir = std::getenv("TMPDIR");
  std::filesystem::path base = dir && *dir ? dir : "/tmp";
  return base / ("apiary_fuzz_" + std::string(name) + "_" + std::to_string(::getpid()));
}

inline void write_file(const std::filesystem::path& file, ByteSpan bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  require(out.good(), "scratch file written");
}

// Checked files end in a BLAKE2b-256 of their body. When the input's first
// byte is odd, the file is the rest of the input with the correct hash
// appended (so the fuzzer reaches the body decoder); otherwise the rest as is.
inline Bytes file_with_optional_hash(const std::uint8_t* data, std::size_t size) {
  Bytes file(data + 1, data + size);
  if (data[0] & 1) {
    const Hash256 digest = hash256(file);
    file.insert(file.end(), digest.begin(), digest.end());
  }
  return file;
}

// The identities targets and make_corpus.cpp share: from a seed of 32 × `b`.
inline Identity seeded_identity(std::uint8_t b) {
  return Identity::from_seed(Bytes(32, b));
}

}  // namespace apiary::fuzz
