// bench_crypto — which AEAD should the secure channel use, and what does the
// secure channel cost? Measures, on one core: FrameSealer/FrameOpener
// throughput (GB/s) for XChaCha20-Poly1305 and AES-256-GCM on 1 MiB messages
// (the frame path itself: header, in-place decryption), memcpy as a reference,
// and handshakes per second (the pure state machine, both sides in-process).
// Times are this thread's CPU time, so the figures are per core even when
// the machine is shared.
//
//   bench_crypto [--size BYTES] [--seconds S] [--json]
#include "net/frame_cipher.hpp"
#include "net/handshake.hpp"
#include "core/identity.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

using namespace apiary;

namespace {

// CPU time of this thread: on a shared, busy machine it measures what one core
// does while this thread actually runs, which wall time does not.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double seconds_since(double start) {
  return thread_cpu_seconds() - start;
}

struct Throughput {
  double seal_gbps = 0;
  double open_gbps = 0;
};

// Seals (and separately opens) `size`-byte messages for about `seconds` each.
Throughput measure_cipher(CipherSuite suite, std::size_t size, double seconds) {
  SessionKey key;
  key.fill(0x5a);
  Bytes message(size, 0x42);
  Bytes frame(size + frame_overhead);
  Throughput result;
  {
    FrameSealer sealer(suite, key);
    std::size_t bytes = 0;
    double start = thread_cpu_seconds();
    do {
      for (int i = 0; i < 16; ++i) {
        sealer.seal(message, frame);
        bytes += size;
      }
    } while (seconds_since(start) < seconds);
    result.seal_gbps = static_cast<double>(bytes) / seconds_since(start) / 1e9;
  }
  {
    // Pre-seal a batch, then time opening copies of it (opening is in place).
    FrameSealer sealer(suite, key);
    constexpr int batch = 16;
    std::vector<Bytes> frames;
    for (int i = 0; i < batch; ++i) frames.push_back(sealer.seal(message));
    std::size_t bytes = 0;
    double busy = 0;
    Bytes work(frame.size());
    do {
      FrameOpener opener(suite, key, size);
      for (int i = 0; i < batch; ++i) {
        std::memcpy(work.data(), frames[i].data(), work.size());  // untimed below
        std::array<std::uint8_t, frame_header_size> header;
        std::memcpy(header.data(), work.data(), frame_header_size);
        double start = thread_cpu_seconds();
        opener.open(header, MutableByteSpan(work.data() + frame_header_size,
                                            work.size() - frame_header_size));
        busy += seconds_since(start);
        bytes += size;
      }
    } while (busy < seconds);
    result.open_gbps = static_cast<double>(bytes) / busy / 1e9;
  }
  return result;
}

double measure_memcpy(std::size_t size, double seconds) {
  Bytes a(size, 1), b(size);
  std::size_t bytes = 0;
  double start = thread_cpu_seconds();
  do {
    for (int i = 0; i < 16; ++i) {
      std::memcpy(b.data(), a.data(), size);
      a[i] = b[size - 1 - i];  // keep the copy observable
      bytes += size;
    }
  } while (seconds_since(start) < seconds);
  return static_cast<double>(bytes) / seconds_since(start) / 1e9;
}

// Full handshakes (both sides, signatures, X25519, key derivation) per second.
double measure_handshakes(double seconds) {
  Identity client = Identity::generate(), server = Identity::generate();
  int count = 0;
  double start = thread_cpu_seconds();
  do {
    HandshakeConfig config;
    config.expected_peer = server.peer_id();
    Handshake initiator(Handshake::Role::initiator, client, config);
    Handshake responder(Handshake::Role::responder, server, {});
    while (!(initiator.done() && responder.done())) {
      if (auto m = initiator.take_outgoing()) responder.on_message(ByteSpan(*m).subspan(2));
      if (auto m = responder.take_outgoing()) initiator.on_message(ByteSpan(*m).subspan(2));
    }
    ++count;
  } while (seconds_since(start) < seconds);
  return count / seconds_since(start);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "bench_crypto: AEAD frame throughput (XChaCha20-Poly1305 vs AES-256-GCM) and handshake rate"};
  std::size_t size = 1u << 20;
  double seconds = 0.5;
  bool json = false;
  app.add_option("--size", size, "message size in bytes")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 28));
  app.add_option("--seconds", seconds, "time per measurement")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 60.0));
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);

  const bool aes = aes_gcm_available();
  const Throughput xchacha = measure_cipher(CipherSuite::xchacha20_poly1305, size, seconds);
  Throughput aes_gcm;
  if (aes) aes_gcm = measure_cipher(CipherSuite::aes256_gcm, size, seconds);
  const double memcpy_gbps = measure_memcpy(size, seconds);
  const double handshakes = measure_handshakes(seconds);
  const CipherSuite chosen = aes ? CipherSuite::aes256_gcm : CipherSuite::xchacha20_poly1305;

  if (json) {
    nlohmann::json out;
    out["benchmark"] = "crypto";
    out["message_bytes"] = size;
    out["timing"] = "thread_cpu_time";
    out["aes_gcm_available"] = aes;
    out["xchacha20_poly1305"] = {{"seal_gbps", xchacha.seal_gbps},
                                 {"open_gbps", xchacha.open_gbps}};
    if (aes)
      out["aes256_gcm"] = {{"seal_gbps", aes_gcm.seal_gbps}, {"open_gbps", aes_gcm.open_gbps}};
    out["memcpy_gbps"] = memcpy_gbps;
    out["handshakes_per_s"] = handshakes;
    out["chosen_cipher"] = std::string(cipher_name(chosen));
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf(
      "secure channel cost per core (thread CPU time), %zu-byte messages (GB/s = 1e9 bytes/s)\n",
      size);
  std::printf("%-22s %10s %10s\n", "", "seal GB/s", "open GB/s");
  std::printf("%-22s %10.2f %10.2f\n", "xchacha20-poly1305", xchacha.seal_gbps, xchacha.open_gbps);
  if (aes)
    std::printf("%-22s %10.2f %10.2f\n", "aes256-gcm", aes_gcm.seal_gbps, aes_gcm.open_gbps);
  else
    std::printf("%-22s %10s %10s\n", "aes256-gcm", "n/a", "n/a");
  std::printf("%-22s %10.2f\n", "memcpy (reference)", memcpy_gbps);
  std::printf("handshakes/s (both sides, one core): %.0f\n", handshakes);
  std::printf("chosen cipher: %s\n", std::string(cipher_name(chosen)).c_str());
  return 0;
}
