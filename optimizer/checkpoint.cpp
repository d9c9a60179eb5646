#include "optimizer/checkpoint.hpp"

#include "core/error.hpp"
#include "core/log.hpp"

#include <sodium.h>

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstring>

namespace apiary::optimizer {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'A', 'P', 'I', 'A', 'R', 'Y', 'C', 'K'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHashSize = 32;
constexpr std::uint32_t kMaxRank = 8;
constexpr std::uint32_t kMaxName = 4096;

template <typename T>
void put(std::vector<std::uint8_t>& out, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  const auto* p = reinterpret_cast<const std::uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof(T));
}

void put_bytes(std::vector<std::uint8_t>& out, const void* data, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  out.insert(out.end(), p, p + n);
}

class Cursor {
 public:
  Cursor(const std::vector<std::uint8_t>& buf, std::size_t end, const fs::path& file)
      : buf_(buf), end_(end), file_(file) {}
  template <typename T>
  T get() {
    T value;
    std::memcpy(&value, take(sizeof(T)), sizeof(T));
    return value;
  }
  const std::uint8_t* take(std::size_t n) {
    if (n > end_ - pos_) fail("truncated");
    const std::uint8_t* p = buf_.data() + pos_;
    pos_ += n;
    return p;
  }
  std::size_t remaining() const { return end_ - pos_; }
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(Errc::bad_message, "corrupt checkpoint " + file_.string() + ": " + why);
  }

 private:
  const std::vector<std::uint8_t>& buf_;
  std::size_t end_;
  std::size_t pos_ = 0;
  const fs::path& file_;
};

std::vector<std::uint8_t> serialize(const Checkpoint& ck) {
  std::vector<std::uint8_t> out;
  std::size_t total = 64 + ck.metadata_json.size();
  for (const auto& t : ck.tensors)
    total += 16 + t.name.size() + 8 * t.shape.size() + 4 * t.data.size();
  out.reserve(total + kHashSize);
  put_bytes(out, kMagic, sizeof(kMagic));
  put(out, kVersion);
  put(out, static_cast<std::uint32_t>(ck.metadata_json.size()));
  put_bytes(out, ck.metadata_json.data(), ck.metadata_json.size());
  put(out, static_cast<std::uint64_t>(ck.epoch));
  put(out, static_cast<std::uint32_t>(ck.tensors.size()));
  for (const auto& t : ck.tensors) {
    std::uint64_t elements = 1;
    for (auto d : t.shape) elements *= d;
    if (elements != t.data.size()) {
      throw Error(Errc::invalid_argument, "checkpoint tensor '" + t.name + "': shape has " +
                                              std::to_string(elements) + " elements but data has " +
                                              std::to_string(t.data.size()));
    }
    put(out, static_cast<std::uint32_t>(t.name.size()));
    put_bytes(out, t.name.data(), t.name.size());
    put(out, static_cast<std::uint32_t>(t.shape.size()));
    for (auto d : t.shape) put(out, d);
    put_bytes(out, t.data.data(), t.data.size() * sizeof(float));
  }
  std::uint8_t hash[kHashSize];
  crypto_generichash(hash, kHashSize, out.data(), out.size(), nullptr, 0);
  put_bytes(out, hash, kHashSize);
  return out;
}

[[noreturn]] void throw_io(const std::string& what, const fs::path& file) {
  throw Error(Errc::io_error, what + " " + file.string() + ": " + std::strerror(errno));
}

// RAII file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

void fsync_dir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY));
  if (fd.get() >= 0) ::fsync(fd.get());
}

}  // namespace

void write_checkpoint(const fs::path& file, const Checkpoint& checkpoint) {
  const auto bytes = serialize(checkpoint);
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + file.filename().string() + ".tmp-XXXXXX")).string();
  Fd fd(::mkstemp(tmpl.data()));
  if (fd.get() < 0) throw_io("cannot create a temporary file for", file);
  const fs::path tmp = tmpl;
  try {
    std::size_t written = 0;
    while (written < bytes.size()) {
      ssize_t n = ::write(fd.get(), bytes.data() + written, bytes.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw_io("cannot write checkpoint", tmp);
      written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) throw_io("cannot fsync checkpoint", tmp);
    if (::close(fd.release()) != 0) throw_io("cannot close checkpoint", tmp);
    if (::rename(tmp.c_str(), file.c_str()) != 0) throw_io("cannot rename checkpoint to", file);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);  // never leave partial files behind (full disk)
    throw;
  }
  fsync_dir(dir);
}

Checkpoint read_checkpoint(const fs::path& file) {
  std::vector<std::uint8_t> buf;
  {
    Fd fd(::open(file.c_str(), O_RDONLY));
    if (fd.get() < 0) throw_io("cannot open checkpoint", file);
    std::uint8_t chunk[1 << 16];
    for (;;) {
      ssize_t n = ::read(fd.get(), chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_io("cannot read checkpoint", file);
      if (n == 0) break;
      buf.insert(buf.end(), chunk, chunk + n);
    }
  }
  Cursor whole(buf, buf.size(), file);
  if (buf.size() < sizeof(kMagic) + kHashSize)
    whole.fail("truncated (" + std::to_string(buf.size()) + " bytes)");
  if (std::memcmp(buf.data(), kMagic, sizeof(kMagic)) != 0)
    whole.fail("not an apiary checkpoint (bad magic)");
  const std::size_t body = buf.size() - kHashSize;
  std::uint8_t hash[kHashSize];
  crypto_generichash(hash, kHashSize, buf.data(), body, nullptr, 0);
  if (sodium_memcmp(hash, buf.data() + body, kHashSize) != 0) {
    whole.fail("hash mismatch (truncated or modified)");
  }

  Cursor in(buf, body, file);
  in.take(sizeof(kMagic));
  if (auto version = in.get<std::uint32_t>(); version != kVersion) {
    in.fail("unsupported version " + std::to_string(version));
  }
  Checkpoint ck;
  const auto meta_len = in.get<std::uint32_t>();
  const auto* meta = in.take(meta_len);
  ck.metadata_json.assign(reinterpret_cast<const char*>(meta), meta_len);
  ck.epoch = in.get<std::uint64_t>();
  const auto count = in.get<std::uint32_t>();
  for (std::uint32_t i = 0; i < count; ++i) {
    NamedTensor t;
    const auto name_len = in.get<std::uint32_t>();
    if (name_len > kMaxName) in.fail("tensor name too long");
    const auto* name = in.take(name_len);
    t.name.assign(reinterpret_cast<const char*>(name), name_len);
    const auto rank = in.get<std::uint32_t>();
    if (rank > kMaxRank) in.fail("tensor rank " + std::to_string(rank) + " too large");
    std::uint64_t elements = 1;
    for (std::uint32_t d = 0; d < rank; ++d) {
      t.shape.push_back(in.get<std::uint64_t>());
      if (t.shape.back() != 0 && elements > in.remaining() / t.shape.back())
        in.fail("tensor larger than file");
      elements *= t.shape.back();
    }
    if (elements > in.remaining() / sizeof(float)) in.fail("tensor larger than file");
    t.data.resize(elements);
    const auto* bytes = in.take(elements * sizeof(float));
    // An empty tensor's data() may be null, which memcpy must not get (fuzz finding).
    if (elements != 0) std::memcpy(t.data.data(), bytes, elements * sizeof(float));
    ck.tensors.push_back(std::move(t));
  }
  if (in.remaining() != 0) in.fail("trailing bytes");
  return ck;
}

CheckpointDir::CheckpointDir(fs::path dir, std::size_t keep_last)
    : dir_(std::move(dir)), keep_last_(std::max<std::size_t>(keep_last, 1)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec)
    throw Error(Errc::io_error,
                "cannot create checkpoint folder " + dir_.string() + ": " + ec.message());
}

fs::path CheckpointDir::save(const Checkpoint& checkpoint) {
  char name[64];
  std::snprintf(name, sizeof(name), "ckpt-%010llu.apiary",
                static_cast<unsigned long long>(checkpoint.epoch));
  const fs::path file = dir_ / name;
  write_checkpoint(file, checkpoint);
  const auto files = list();
  for (std::size_t i = keep_last_; i < files.size(); ++i) {
    std::error_code ignored;
    fs::remove(files[i], ignored);
  }
  return file;
}

std::vector<fs::path> CheckpointDir::list() const {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("ckpt-") && name.ends_with(".apiary")) files.push_back(entry.path());
  }
  // Zero-padded epochs: lexicographic order is epoch order.
  std::sort(files.begin(), files.end(), std::greater<>());
  return files;
}

std::optional<Checkpoint> CheckpointDir::load_latest() const {
  for (const auto& file : list()) {
    try {
      return read_checkpoint(file);
    } catch (const Error& e) {
      log::warn("skipping checkpoint: {}", e.what());
    }
  }
  return std::nullopt;
}

}  // namespace apiary::optimizer
