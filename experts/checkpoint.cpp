#include "experts/checkpoint.hpp"

#include "core/error.hpp"
#include "core/hash.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

namespace apiary::experts {
namespace {

constexpr char kMagic[8] = {'A', 'P', 'X', 'E', 'X', 'P', '0', '1'};
constexpr std::size_t kMaxFileBytes = std::size_t{8} << 30;

[[noreturn]] void io_fail(const std::string& what, const std::filesystem::path& path) {
  throw Error(Errc::io_error, what + " " + path.string() + ": " + std::strerror(errno));
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Appends raw bytes (resize + memcpy: GCC 12 misreads vector::insert of small ranges).
void put_raw(Bytes& out, const void* data, std::size_t size) {
  const auto at = out.size();
  out.resize(at + size);
  if (size > 0) std::memcpy(out.data() + at, data, size);
}

template <typename T>
void put(Bytes& out, const T& value) {
  put_raw(out, &value, sizeof(T));
}

void put_floats(Bytes& out, const std::vector<float>& values) {
  put<std::uint64_t>(out, values.size());
  put_raw(out, values.data(), values.size() * sizeof(float));
}

class Cursor {
 public:
  explicit Cursor(ByteSpan bytes) : bytes_(bytes) {}
  ByteSpan take(std::size_t n) {
    if (n > bytes_.size() - pos_) throw Error(Errc::bad_message, "expert checkpoint truncated");
    auto out = bytes_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  template <typename T>
  T get() {
    T value;
    std::memcpy(&value, take(sizeof(T)).data(), sizeof(T));
    return value;
  }
  std::vector<float> floats() {
    auto n = get<std::uint64_t>();
    if (n > (bytes_.size() - pos_) / sizeof(float)) {
      throw Error(Errc::bad_message, "expert checkpoint: tensor longer than the file");
    }
    std::vector<float> out(n);
    const ByteSpan bytes = take(n * sizeof(float));
    // An empty vector's data() may be null, which memcpy must not get (fuzz finding).
    if (n != 0) std::memcpy(out.data(), bytes.data(), n * sizeof(float));
    return out;
  }
  bool done() const { return pos_ == bytes_.size(); }

 private:
  ByteSpan bytes_;
  std::size_t pos_ = 0;
};

}  // namespace

void write_file_atomically(const std::filesystem::path& file, ByteSpan bytes) {
  auto dir = file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path();
  std::random_device rd;
  auto tmp = dir / (file.filename().string() + ".tmp." + std::to_string(rd()));
  {
    Fd fd{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
    if (fd.fd < 0) io_fail("cannot create", tmp);
    std::size_t written = 0;
    while (written < bytes.size()) {
      auto n = ::write(fd.fd, bytes.data() + written, bytes.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        auto saved = errno;
        ::unlink(tmp.c_str());
        errno = saved;
        io_fail("cannot write", tmp);
      }
      written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.fd) != 0) {
      auto saved = errno;
      ::unlink(tmp.c_str());
      errno = saved;
      io_fail("cannot fsync", tmp);
    }
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    auto saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    io_fail("cannot rename into", file);
  }
  Fd dir_fd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir_fd.fd >= 0) ::fsync(dir_fd.fd);  // best effort: the rename is durable once this runs
}

Bytes encode_expert_state(const std::string& uid, const ExpertState& state) {
  Bytes out;
  out.reserve(64 + uid.size() + 4 * (state.parameters.size() + state.optimizer_state.size()));
  put_raw(out, kMagic, sizeof(kMagic));
  put<std::uint32_t>(out, static_cast<std::uint32_t>(uid.size()));
  put_raw(out, uid.data(), uid.size());
  put<std::uint64_t>(out, state.update_count);
  put_floats(out, state.parameters);
  put_floats(out, state.optimizer_state);
  auto digest = hash256(out);
  put_raw(out, digest.data(), digest.size());
  return out;
}

ExpertState decode_expert_state(const std::string& uid, ByteSpan bytes) {
  if (bytes.size() < sizeof(kMagic) + 32)
    throw Error(Errc::bad_message, "expert checkpoint too short");
  auto body = bytes.first(bytes.size() - 32);
  auto digest = hash256(body);
  if (std::memcmp(digest.data(), bytes.data() + body.size(), 32) != 0) {
    throw Error(Errc::bad_message, "expert checkpoint hash mismatch (corrupt file)");
  }
  Cursor in(body);
  if (std::memcmp(in.take(sizeof(kMagic)).data(), kMagic, sizeof(kMagic)) != 0) {
    throw Error(Errc::bad_message, "not an expert checkpoint (bad magic)");
  }
  auto uid_len = in.get<std::uint32_t>();
  if (uid_len > 1024) throw Error(Errc::bad_message, "expert checkpoint: uid too long");
  auto stored_uid = as_string_view(in.take(uid_len));
  if (stored_uid != uid) {
    throw Error(Errc::bad_message,
                "expert checkpoint belongs to '" + std::string(stored_uid) + "', not " + uid);
  }
  ExpertState state;
  state.update_count = in.get<std::uint64_t>();
  state.parameters = in.floats();
  state.optimizer_state = in.floats();
  if (!in.done()) throw Error(Errc::bad_message, "expert checkpoint: trailing bytes");
  return state;
}

std::filesystem::path checkpoint_path(const std::filesystem::path& dir, const std::string& uid) {
  return dir / (uid + ".expert");
}

void save_checkpoint(const std::filesystem::path& dir, const ExpertBackend& backend) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(Errc::io_error, "cannot create " + dir.string() + ": " + ec.message());
  auto bytes = encode_expert_state(backend.uid(), backend.state());
  write_file_atomically(checkpoint_path(dir, backend.uid()), bytes);
}

bool load_checkpoint(const std::filesystem::path& dir, ExpertBackend& backend) {
  auto path = checkpoint_path(dir, backend.uid());
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(Errc::io_error, "cannot open " + path.string());
  auto size = std::filesystem::file_size(path, ec);
  if (ec || size > kMaxFileBytes) throw Error(Errc::io_error, "cannot size " + path.string());
  Bytes bytes(size);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    throw Error(Errc::io_error, "cannot read " + path.string());
  }
  backend.load_state(decode_expert_state(backend.uid(), bytes));
  return true;
}

}  // namespace apiary::experts
