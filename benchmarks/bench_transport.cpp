// bench_transport — what does the secure RPC stack cost on loopback?
// In one run, with the receiver in a separate process (forked):
//   * throughput of an encrypted RPC stream (TcpTransport + RpcNode streams)
//     vs plain asio TCP sockets moving the same messages without crypto or RPC,
//     and their ratio (target: encrypted >= 70 % of plain);
//   * peak RSS (VmHWM) of the stream's sender and receiver processes;
//   * unary RPC round trip p50/p99 (µs) and handshakes per second;
//   * CPU seconds per GiB (sender + receiver), which a loaded machine distorts
//     less than wall-clock throughput, and the transport alone without RPC.
//
//   bench_transport [--bytes N] [--chunk N] [--pings N] [--handshakes N] [--json]
#include "core/clock.hpp"
#include "core/identity.hpp"
#include "net/rpc.hpp"
#include "net/tcp_transport.hpp"

#include <CLI/CLI.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <nlohmann/json.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace apiary;

namespace {

long status_kib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

void reset_peak_rss() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

// CPU time (user + system) of this process, seconds.
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

Bytes to_bytes(const std::string& text) {
  return Bytes(text.begin(), text.end());
}

// A forked helper process: `serve(address_out_fd, control_in_fd)` runs in the child
// and must write one line (its address) to address_out_fd; it stops when the
// control pipe closes.
class Child {
 public:
  template <typename Serve>
  explicit Child(Serve serve) {
    int to_parent[2];
    int to_child[2];
    if (pipe(to_parent) != 0 || pipe(to_child) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      close(to_parent[0]);
      close(to_child[1]);
      int code = 0;
      try {
        serve(to_parent[1], to_child[0]);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_transport child: %s\n", e.what());
        code = 1;
      }
      _exit(code);
    }
    close(to_parent[1]);
    close(to_child[0]);
    from_child_ = to_parent[0];
    control_ = to_child[1];
    std::string line;
    char c;
    while (read(from_child_, &c, 1) == 1 && c != '\n') line += c;
    if (line.empty()) throw std::runtime_error("child printed no address");
    address_ = line;
  }
  ~Child() {
    close(control_);  // EOF tells the child to stop
    int status = 0;
    waitpid(pid_, &status, 0);
    close(from_child_);
  }
  const std::string& address() const { return address_; }

 private:
  pid_t pid_ = -1;
  int from_child_ = -1;
  int control_ = -1;
  std::string address_;
};

void write_line(int fd, const std::string& line) {
  const std::string text = line + "\n";
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    throw std::runtime_error("cannot write to the parent");
  }
}

// Stops `ctx` when the control pipe reaches EOF.
asio::awaitable<void> wait_for_eof(int control_fd) {
  asio::posix::stream_descriptor control(co_await asio::this_coro::executor, control_fd);
  std::array<char, 16> buffer;
  std::error_code ec;
  while (!ec) {
    co_await control.async_read_some(asio::buffer(buffer),
                                     asio::redirect_error(asio::use_awaitable, ec));
  }
}

// ---- encrypted RPC server (child) --------------------------------------------------

std::size_t g_window = 4u << 20;  // RpcOptions::stream_window_bytes for both sides

rpc::RpcOptions rpc_options() {
  rpc::RpcOptions options;
  options.stream_window_bytes = g_window;
  return options;
}

void serve_rpc(int address_fd, int control_fd) {
  asio::io_context ctx;
  rpc::RpcNode node(make_tcp_transport(ctx.get_executor(), Identity::generate(), TcpEndpoint{}),
                    rpc_options());
  node.add_method(
      "echo", [](const rpc::RequestContext&, Bytes r) -> asio::awaitable<Bytes> { co_return r; });
  node.add_stream_method(
      "sink", [](const rpc::RequestContext&, rpc::StreamPtr stream) -> asio::awaitable<void> {
        reset_peak_rss();
        const double cpu_start = cpu_seconds();
        std::uint64_t received = 0;
        while (auto chunk = co_await stream->read(std::chrono::seconds{60})) {
          received += chunk->size();
        }
        nlohmann::json reply{{"received", received},
                             {"peak_rss_kib", status_kib("VmHWM")},
                             {"cpu_s", cpu_seconds() - cpu_start}};
        co_await stream->write(to_bytes(reply.dump()));
      });
  node.start();
  write_line(address_fd, node.local_address().to_string());
  asio::co_spawn(ctx, wait_for_eof(control_fd), [&](std::exception_ptr) {
    node.stop();
    ctx.stop();
  });
  ctx.run();
}

// ---- encrypted transport without RPC (child) ------------------------------------------

void serve_raw(int address_fd, int control_fd) {
  asio::io_context ctx;
  auto transport = make_tcp_transport(ctx.get_executor(), Identity::generate(), TcpEndpoint{});
  transport->listen([&ctx](ConnectionPtr connection) {
    asio::co_spawn(
        ctx,
        [](ConnectionPtr c) -> asio::awaitable<void> {
          std::uint64_t received = 0;
          double cpu_start = -1;
          for (;;) {
            Bytes message = co_await c->receive();
            if (cpu_start < 0) cpu_start = cpu_seconds();
            if (message.size() == 1) break;  // end marker
            received += message.size();
          }
          nlohmann::json reply{{"received", received}, {"cpu_s", cpu_seconds() - cpu_start}};
          co_await c->send(to_bytes(reply.dump()));
        }(connection),
        asio::detached);
  });
  write_line(address_fd, transport->local_address().to_string());
  asio::co_spawn(ctx, wait_for_eof(control_fd), [&](std::exception_ptr) {
    transport->close();
    ctx.stop();
  });
  ctx.run();
}

// ---- plain TCP server (child) ------------------------------------------------------

void serve_plain(int address_fd, int control_fd) {
  asio::io_context ctx;
  asio::ip::tcp::acceptor acceptor(ctx, {asio::ip::make_address("127.0.0.1"), 0});
  write_line(address_fd, std::to_string(acceptor.local_endpoint().port()));
  asio::co_spawn(
      ctx,
      [](asio::ip::tcp::acceptor& acceptor) -> asio::awaitable<void> {
        for (;;) {
          auto socket = co_await acceptor.async_accept(asio::use_awaitable);
          socket.set_option(asio::ip::tcp::no_delay(true));
          // [u64 total] then [u32 length][body]… ; answers 8 bytes when done.
          std::uint64_t total = 0;
          co_await asio::async_read(socket, asio::buffer(&total, sizeof total),
                                    asio::use_awaitable);
          const double cpu_start = cpu_seconds();
          std::uint64_t received = 0;
          Bytes body;
          while (received < total) {
            std::uint32_t length = 0;
            co_await asio::async_read(socket, asio::buffer(&length, sizeof length),
                                      asio::use_awaitable);
            body.resize(length);
            co_await asio::async_read(socket, asio::buffer(body), asio::use_awaitable);
            received += length;
          }
          const double cpu = cpu_seconds() - cpu_start;
          std::array<asio::const_buffer, 2> answer{asio::buffer(&received, sizeof received),
                                                   asio::buffer(&cpu, sizeof cpu)};
          co_await asio::async_write(socket, answer, asio::use_awaitable);
        }
      }(acceptor),
      asio::detached);
  asio::co_spawn(ctx, wait_for_eof(control_fd), [&](std::exception_ptr) { ctx.stop(); });
  ctx.run();
}

// ---- measurements (parent) ---------------------------------------------------------

struct StreamResult {
  double gbps = 0;
  double cpu_s = 0;  // sender + receiver
  long sender_peak_rss_kib = 0;
  long receiver_peak_rss_kib = 0;
};

StreamResult encrypted_stream(const std::string& address, std::uint64_t bytes, std::size_t chunk) {
  asio::io_context ctx;
  TransportOptions options;
  options.client_mode = true;
  rpc::RpcNode node(
      make_tcp_transport(ctx.get_executor(), Identity::generate(), TcpEndpoint{}, options),
      rpc_options());
  StreamResult result;
  std::exception_ptr failure;
  auto run = [](rpc::RpcNode& node, PeerAddress to, std::uint64_t bytes, std::size_t chunk,
                StreamResult& result) -> asio::awaitable<void> {
    co_await node.connect(to);
    reset_peak_rss();
    const auto start = SteadyClock::now();
    const double cpu_start = cpu_seconds();
    auto stream = co_await node.open_stream(to, "sink");
    for (std::uint64_t sent = 0; sent < bytes; sent += chunk) {
      co_await stream->write(Bytes(std::min<std::uint64_t>(chunk, bytes - sent), 0x5a));
    }
    co_await stream->close_write();
    auto reply = co_await stream->read(std::chrono::seconds{60});
    const double seconds = seconds_since(start);
    if (!reply) throw std::runtime_error("no reply from the stream sink");
    auto json = nlohmann::json::parse(std::string(reply->begin(), reply->end()));
    if (json["received"].get<std::uint64_t>() != bytes) throw std::runtime_error("bytes lost");
    result.gbps = static_cast<double>(bytes) * 8 / seconds / 1e9;
    result.receiver_peak_rss_kib = json["peak_rss_kib"].get<long>();
    result.sender_peak_rss_kib = status_kib("VmHWM");
    result.cpu_s = cpu_seconds() - cpu_start + json["cpu_s"].get<double>();
  };
  asio::co_spawn(ctx, run(node, PeerAddress::parse(address), bytes, chunk, result),
                 [&](std::exception_ptr error) {
                   failure = error;
                   node.stop();
                   ctx.stop();
                 });
  ctx.run();
  if (failure) std::rethrow_exception(failure);
  return result;
}

// The same messages through TcpTransport connections directly (crypto, no RPC).
StreamResult raw_stream(const std::string& address, std::uint64_t bytes, std::size_t chunk) {
  asio::io_context ctx;
  TransportOptions options;
  options.client_mode = true;
  auto transport =
      make_tcp_transport(ctx.get_executor(), Identity::generate(), TcpEndpoint{}, options);
  StreamResult result;
  std::exception_ptr failure;
  auto run = [](TransportPtr transport, PeerAddress to, std::uint64_t bytes, std::size_t chunk,
                StreamResult& result) -> asio::awaitable<void> {
    auto connection = co_await transport->connect(to);
    const auto start = SteadyClock::now();
    const double cpu_start = cpu_seconds();
    for (std::uint64_t sent = 0; sent < bytes; sent += chunk) {
      co_await connection->send(Bytes(std::min<std::uint64_t>(chunk, bytes - sent), 0x5a));
    }
    co_await connection->send(Bytes(1, 0));
    Bytes reply = co_await connection->receive();
    auto json = nlohmann::json::parse(std::string(reply.begin(), reply.end()));
    if (json["received"].get<std::uint64_t>() != bytes) {
      throw std::runtime_error("raw transport lost bytes");
    }
    result.gbps = static_cast<double>(bytes) * 8 / seconds_since(start) / 1e9;
    result.cpu_s = cpu_seconds() - cpu_start + json["cpu_s"].get<double>();
    connection->close();
  };
  asio::co_spawn(ctx, run(transport, PeerAddress::parse(address), bytes, chunk, result),
                 [&](std::exception_ptr error) {
                   failure = error;
                   transport->close();
                   ctx.stop();
                 });
  ctx.run();
  if (failure) std::rethrow_exception(failure);
  return result;
}

StreamResult plain_stream(std::uint16_t port, std::uint64_t bytes, std::size_t chunk) {
  asio::io_context ctx;
  asio::ip::tcp::socket socket(ctx);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  socket.set_option(asio::ip::tcp::no_delay(true));
  const auto start = SteadyClock::now();
  const double cpu_start = cpu_seconds();
  asio::write(socket, asio::buffer(&bytes, sizeof bytes));
  for (std::uint64_t sent = 0; sent < bytes; sent += chunk) {
    // A fresh message per send, as the RPC path allocates one too.
    Bytes body(std::min<std::uint64_t>(chunk, bytes - sent), 0x5a);
    const auto length = static_cast<std::uint32_t>(body.size());
    std::array<asio::const_buffer, 2> buffers{asio::buffer(&length, sizeof length),
                                              asio::buffer(body)};
    asio::write(socket, buffers);
  }
  std::uint64_t received = 0;
  double receiver_cpu = 0;
  std::array<asio::mutable_buffer, 2> answer{asio::buffer(&received, sizeof received),
                                             asio::buffer(&receiver_cpu, sizeof receiver_cpu)};
  asio::read(socket, answer);
  const double seconds = seconds_since(start);
  if (received != bytes) throw std::runtime_error("plain TCP lost bytes");
  StreamResult result;
  result.gbps = static_cast<double>(bytes) * 8 / seconds / 1e9;
  result.cpu_s = cpu_seconds() - cpu_start + receiver_cpu;
  return result;
}

struct LatencyResult {
  double p50_us = 0;
  double p99_us = 0;
  double handshakes_per_s = 0;
};

LatencyResult latency(const std::string& address, int pings, int handshakes) {
  asio::io_context ctx;
  TransportOptions options;
  options.client_mode = true;
  auto transport =
      make_tcp_transport(ctx.get_executor(), Identity::generate(), TcpEndpoint{}, options);
  rpc::RpcNode node(transport);
  LatencyResult result;
  std::exception_ptr failure;
  auto run = [](rpc::RpcNode& node, PeerAddress to, int pings, int handshakes,
                LatencyResult& result) -> asio::awaitable<void> {
    std::vector<double> rtts;
    const Bytes payload(64, 1);
    for (int i = 0; i < pings + 100; ++i) {
      const auto start = SteadyClock::now();
      co_await node.call(to, "echo", payload);
      if (i >= 100) rtts.push_back(seconds_since(start) * 1e6);  // first 100: warm-up
    }
    std::sort(rtts.begin(), rtts.end());
    result.p50_us = rtts[rtts.size() / 2];
    result.p99_us = rtts[std::min(rtts.size() - 1, rtts.size() * 99 / 100)];
    // Fresh connections: TCP connect + authenticated key exchange each time.
    const auto start = SteadyClock::now();
    for (int i = 0; i < handshakes; ++i) {
      auto connection = co_await node.transport().connect(to);
      connection->close();
    }
    result.handshakes_per_s = handshakes / seconds_since(start);
  };
  asio::co_spawn(ctx, run(node, PeerAddress::parse(address), pings, handshakes, result),
                 [&](std::exception_ptr error) {
                   failure = error;
                   node.stop();
                   ctx.stop();
                 });
  ctx.run();
  if (failure) std::rethrow_exception(failure);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_transport: encrypted RPC stream vs plain TCP, RPC latency, handshakes"};
  std::uint64_t bytes = 1ull << 30;
  std::size_t chunk = 1u << 20;
  int pings = 2000;
  int handshakes = 200;
  bool json = false;
  app.add_option("--bytes", bytes, "bytes per stream")->capture_default_str();
  app.add_option("--chunk", chunk, "message size")
      ->capture_default_str()
      ->check(CLI::Range(1, 8 << 20));
  app.add_option("--pings", pings, "unary round trips")
      ->capture_default_str()
      ->check(CLI::Range(10, 1000000));
  app.add_option("--handshakes", handshakes, "fresh connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--window", g_window, "stream flow-control window (bytes)")->capture_default_str();
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);

  try {
    StreamResult encrypted;
    LatencyResult lat;
    {
      Child server(serve_rpc);
      encrypted = encrypted_stream(server.address(), bytes, chunk);
      lat = latency(server.address(), pings, handshakes);
    }
    StreamResult raw;
    {
      Child server(serve_raw);
      raw = raw_stream(server.address(), bytes, chunk);
    }
    StreamResult plain;
    {
      Child server(serve_plain);
      plain = plain_stream(static_cast<std::uint16_t>(std::stoi(server.address())), bytes, chunk);
    }
    const double plain_gbps = plain.gbps;
    const double gib = static_cast<double>(bytes) / (1u << 30);
    const double ratio = encrypted.gbps / plain_gbps;
    if (json) {
      nlohmann::json out{{"bytes", bytes},
                         {"chunk", chunk},
                         {"window", g_window},
                         {"encrypted_gbps", encrypted.gbps},
                         {"plain_gbps", plain_gbps},
                         {"transport_only_gbps", raw.gbps},
                         {"transport_only_cpu_s_per_gib", raw.cpu_s / gib},
                         {"encrypted_cpu_s_per_gib", encrypted.cpu_s / gib},
                         {"plain_cpu_s_per_gib", plain.cpu_s / gib},
                         {"ratio", ratio},
                         {"rtt_p50_us", lat.p50_us},
                         {"rtt_p99_us", lat.p99_us},
                         {"handshakes_per_s", lat.handshakes_per_s},
                         {"sender_peak_rss_mib", encrypted.sender_peak_rss_kib / 1024.0},
                         {"receiver_peak_rss_mib", encrypted.receiver_peak_rss_kib / 1024.0}};
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf(
          "bench_transport: %.0f MiB stream in %zu KiB messages, loopback, receiver in a child "
          "process\n",
          static_cast<double>(bytes) / (1 << 20), chunk / 1024);
      std::printf("%-34s %12s\n", "measure", "value");
      std::printf("%-34s %9.2f Gb/s\n", "encrypted RPC stream", encrypted.gbps);
      std::printf("%-34s %9.2f Gb/s\n", "encrypted transport, no RPC", raw.gbps);
      std::printf("%-34s %9.2f Gb/s\n", "plain TCP (no crypto, no RPC)", plain_gbps);
      std::printf("%-34s %10.0f %%\n", "encrypted / plain", 100 * ratio);
      std::printf("%-34s %9.2f s\n", "CPU per GiB, encrypted RPC", encrypted.cpu_s / gib);
      std::printf("%-34s %9.2f s\n", "CPU per GiB, transport, no RPC", raw.cpu_s / gib);
      std::printf("%-34s %9.2f s\n", "CPU per GiB, plain TCP", plain.cpu_s / gib);
      std::printf("%-34s %9.1f MiB\n", "stream sender peak RSS",
                  encrypted.sender_peak_rss_kib / 1024.0);
      std::printf("%-34s %9.1f MiB\n", "stream receiver peak RSS",
                  encrypted.receiver_peak_rss_kib / 1024.0);
      std::printf("%-34s %9.1f us\n", "unary RPC round trip p50", lat.p50_us);
      std::printf("%-34s %9.1f us\n", "unary RPC round trip p99", lat.p99_us);
      std::printf("%-34s %9.0f /s\n", "handshakes (connect + auth)", lat.handshakes_per_s);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_transport: %s\n", e.what());
    return 1;
  }
  return 0;
}
