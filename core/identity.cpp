// Ed25519 identities (libsodium) and the key file.
//
// Key file: a small text file, so that `cat` shows which peer it belongs to:
//   apiary-ed25519-key v1\n
//   seed <64 lowercase hex digits>\n
//   peer-id <40 lowercase hex digits>\n
// Only the seed matters; the peer-id line is redundant and checked on load so a
// damaged seed is reported as corruption instead of silently becoming another
// identity. The file must be private to its owner (mode 0600).
#include "core/identity.hpp"

#include "core/error.hpp"
#include "core/hash.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace apiary {

namespace {

constexpr std::string_view key_magic = "apiary-ed25519-key v1";
constexpr std::size_t max_key_file_size = 4096;

std::string errno_text(int err) {
  return std::strerror(err);
}

// Closes a POSIX file descriptor on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string mode_text(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

[[noreturn]] void corrupt(const std::filesystem::path& file, const std::string& why) {
  throw Error(Errc::bad_message, "key file " + file.string() + " is corrupt: " + why +
                                     " (expected the lines '" + std::string(key_magic) +
                                     "', 'seed <64 hex>', 'peer-id <40 hex>')");
}

void write_all(int fd, std::string_view data, const std::filesystem::path& file) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw Error(Errc::io_error, "cannot write " + file.string() + ": " + errno_text(errno));
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void fsync_directory(const std::filesystem::path& dir) {
  Fd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.fd >= 0) ::fsync(fd.fd);  // best effort: some file systems refuse it
}

}  // namespace

std::string PeerId::to_string() const {
  return to_hex(bytes);
}

std::optional<PeerId> PeerId::parse(std::string_view text) {
  if (text.size() != 2 * size) return std::nullopt;
  auto raw = from_hex(text);
  if (!raw) return std::nullopt;
  PeerId id;
  std::memcpy(id.bytes.data(), raw->data(), size);
  return id;
}

PeerId PublicKey::peer_id() const {
  PeerId id;
  id.bytes = hash160(bytes);
  return id;
}

bool PublicKey::verify(ByteSpan message, ByteSpan signature) const noexcept {
  if (signature.size() != crypto_sign_BYTES) return false;
  if (sodium_init() < 0) return false;
  static const std::uint8_t empty = 0;  // libsodium wants non-null pointers
  return crypto_sign_verify_detached(signature.data(), message.empty() ? &empty : message.data(),
                                     message.size(), bytes.data()) == 0;
}

Identity Identity::generate() {
  ensure_sodium();
  std::array<std::uint8_t, crypto_sign_SEEDBYTES> seed;
  randombytes_buf(seed.data(), seed.size());
  Identity id = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return id;
}

Identity Identity::from_seed(ByteSpan seed) {
  ensure_sodium();
  if (seed.size() != crypto_sign_SEEDBYTES)
    throw Error(Errc::invalid_argument,
                "an Ed25519 seed has 32 bytes, got " + std::to_string(seed.size()));
  Identity id;
  crypto_sign_seed_keypair(id.public_key_.bytes.data(), id.secret_key_.data(), seed.data());
  id.peer_id_ = id.public_key_.peer_id();
  return id;
}

Signature Identity::sign(ByteSpan message) const {
  Signature sig;
  static const std::uint8_t empty = 0;  // libsodium wants non-null pointers
  crypto_sign_detached(sig.data(), nullptr, message.empty() ? &empty : message.data(),
                       message.size(), secret_key_.data());
  return sig;
}

Identity Identity::load(const std::filesystem::path& file) {
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0)
    throw Error(Errc::io_error, "cannot open key file " + file.string() + ": " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0)
    throw Error(Errc::io_error, "cannot stat key file " + file.string() + ": " + errno_text(errno));
  if (!S_ISREG(st.st_mode))
    throw Error(Errc::io_error, "key file " + file.string() + " is not a regular file");
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    throw Error(Errc::permission_denied,
                "key file " + file.string() + " is accessible by group or others (mode " +
                    mode_text(st.st_mode) + "); a private key must be private: run `chmod 600 " +
                    file.string() + "`");
  if (st.st_size > static_cast<off_t>(max_key_file_size)) corrupt(file, "file too large");

  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw Error(Errc::io_error,
                  "cannot read key file " + file.string() + ": " + errno_text(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  text.resize(got);
  struct Wipe {  // the text holds the private seed
    std::string& text;
    ~Wipe() { sodium_memzero(text.data(), text.size()); }
  } wipe{text};

  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    auto line = rest.substr(0, nl);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (!line.empty()) lines.push_back(line);
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  if (lines.size() != 3) corrupt(file, "expected 3 lines, found " + std::to_string(lines.size()));
  if (lines[0] != key_magic) corrupt(file, "unknown header line");
  constexpr std::string_view seed_tag = "seed ", id_tag = "peer-id ";
  if (!lines[1].starts_with(seed_tag)) corrupt(file, "missing 'seed' line");
  if (!lines[2].starts_with(id_tag)) corrupt(file, "missing 'peer-id' line");
  auto seed_hex = lines[1].substr(seed_tag.size());
  auto seed = from_hex(seed_hex);
  if (!seed || seed->size() != crypto_sign_SEEDBYTES) corrupt(file, "seed is not 64 hex digits");
  auto stated = PeerId::parse(lines[2].substr(id_tag.size()));
  if (!stated) corrupt(file, "peer-id is not 40 hex digits");
  Identity id = from_seed(*seed);
  sodium_memzero(seed->data(), seed->size());
  if (id.peer_id() != *stated)
    corrupt(file, "the seed does not match the recorded peer-id " + stated->to_string());
  return id;
}

void Identity::save(const std::filesystem::path& file, bool overwrite) const {
  if (!overwrite && std::filesystem::exists(file))
    throw Error(Errc::failed_precondition,
                "key file " + file.string() + " already exists; refusing to overwrite it");
  std::string text = std::string(key_magic) + "\nseed " +
                     to_hex(ByteSpan(secret_key_.data(), crypto_sign_SEEDBYTES)) + "\npeer-id " +
                     peer_id_.to_string() + "\n";
  struct Wipe {  // the text holds the private seed
    std::string& text;
    ~Wipe() { sodium_memzero(text.data(), text.size()); }
  } wipe{text};
  std::filesystem::path tmp = file;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd.fd < 0)
      throw Error(Errc::io_error, "cannot create " + tmp.string() + ": " + errno_text(errno));
    try {
      ::fchmod(fd.fd, 0600);  // umask cannot widen it, but be explicit
      write_all(fd.fd, text, tmp);
      if (::fsync(fd.fd) != 0)
        throw Error(Errc::io_error, "cannot fsync " + tmp.string() + ": " + errno_text(errno));
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  }
  // link() fails atomically if the target appeared meanwhile; rename() replaces it.
  int rc = overwrite ? ::rename(tmp.c_str(), file.c_str()) : ::link(tmp.c_str(), file.c_str());
  int err = errno;
  if (!overwrite || rc != 0) ::unlink(tmp.c_str());
  if (rc != 0) {
    if (!overwrite && err == EEXIST)
      throw Error(Errc::failed_precondition,
                  "key file " + file.string() + " already exists; refusing to overwrite it");
    throw Error(Errc::io_error, "cannot write key file " + file.string() + ": " + errno_text(err));
  }
  fsync_directory(file.parent_path());
}

}  // namespace apiary
