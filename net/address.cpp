#include "net/address.hpp"

#include "core/error.hpp"

#include <cctype>
#include <charconv>

namespace apiary {

namespace {

constexpr std::string_view scheme = "apiary://";
constexpr std::string_view expected_form =
    "expected apiary://<40-hex-digit peer id>@<host>:<port> "
    "(IPv6 hosts in brackets: apiary://<peer id>@[::1]:31337)";

[[noreturn]] void bad_address(std::string_view text, const std::string& why) {
  throw Error(Errc::invalid_argument, "bad peer address '" + std::string(text) + "': " + why +
                                          "; " + std::string(expected_form));
}

bool is_host_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

bool is_ipv6_char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.' || c == '%' ||
         std::isalnum(static_cast<unsigned char>(c));  // zone ids (fe80::1%eth0)
}

}  // namespace

std::string PeerAddress::to_string() const {
  std::string out(scheme);
  out += peer.to_string();
  out += '@';
  if (host.find(':') != std::string::npos) {
    out += '[';
    out += host;
    out += ']';
  } else {
    out += host;
  }
  out += ':';
  out += std::to_string(port);
  return out;
}

PeerAddress PeerAddress::parse(std::string_view text) {
  if (!text.starts_with(scheme)) bad_address(text, "it does not start with apiary://");
  std::string_view rest = text.substr(scheme.size());
  auto at = rest.find('@');
  if (at == std::string_view::npos) bad_address(text, "missing '@' between peer id and host");
  auto id = PeerId::parse(rest.substr(0, at));
  if (!id)
    bad_address(text, "the peer id must be exactly 40 hex digits, got '" +
                          std::string(rest.substr(0, at)) + "'");
  rest.remove_prefix(at + 1);

  PeerAddress address;
  address.peer = *id;
  std::string_view host, port_text;
  if (rest.starts_with('[')) {
    auto close = rest.find(']');
    if (close == std::string_view::npos) bad_address(text, "missing ']' after the IPv6 host");
    host = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    if (!rest.starts_with(':')) bad_address(text, "missing ':<port>' after ']'");
    port_text = rest.substr(1);
    if (host.empty()) bad_address(text, "empty IPv6 host");
    // Only IPv6 hosts are printed in brackets; any other would not print back
    // to an address that parses (found by tests/fuzz/fuzz_address.cpp).
    if (host.find(':') == std::string_view::npos) bad_address(text, "no IPv6 host in brackets");
    for (char c : host)
      if (!is_ipv6_char(c)) bad_address(text, "invalid character in the IPv6 host");
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) bad_address(text, "missing ':<port>'");
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
    if (host.empty()) bad_address(text, "empty host");
    if (host.find(':') != std::string_view::npos)
      bad_address(text, "IPv6 hosts must be written in brackets");
    for (char c : host)
      if (!is_host_name_char(c)) bad_address(text, "invalid character in the host");
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() ||
      port > 65535)
    bad_address(text,
                "the port must be a number from 1 to 65535, got '" + std::string(port_text) + "'");
  // In-process transports number their peers from 0; a real host needs a real port.
  if (port == 0 && host != "inproc") bad_address(text, "port 0 cannot be dialled");
  address.host = std::string(host);
  address.port = static_cast<std::uint16_t>(port);
  return address;
}

}  // namespace apiary
