// PeerAddress: the one printable form, parsed strictly with clear errors.
#include "net/address.hpp"
#include "net/address_wire.hpp"

#include "core/identity.hpp"
#include "tests/core/error_of.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace apiary {
namespace {

TEST(PeerAddress, RoundTripIPv4HostnameAndIPv6) {
  Identity id = Identity::generate();
  const std::string pid = id.peer_id().to_string();
  for (std::string text :
       {"apiary://" + pid + "@127.0.0.1:31337", "apiary://" + pid + "@node-1.example.org:1",
        "apiary://" + pid + "@[::1]:65535", "apiary://" + pid + "@[fe80::1:2]:443",
        "apiary://" + pid + "@inproc:0"}) {
    PeerAddress address = PeerAddress::parse(text);
    EXPECT_EQ(address.peer, id.peer_id());
    EXPECT_EQ(address.to_string(), text);
    EXPECT_EQ(PeerAddress::parse(address.to_string()), address);
  }
  PeerAddress v6 = PeerAddress::parse("apiary://" + pid + "@[::1]:8080");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 8080);
  PeerAddress upper = PeerAddress::parse("apiary://" + id.peer_id().to_string() + "@h:2");
  EXPECT_EQ(upper.host, "h");
}

TEST(PeerAddress, BadInputsGiveClearErrors) {
  const std::string pid = Identity::generate().peer_id().to_string();
  const std::vector<std::string> bad = {
      "",
      "http://" + pid + "@127.0.0.1:1",
      "apiary://" + pid + "127.0.0.1:1",
      "apiary://" + pid.substr(2) + "@127.0.0.1:1",
      "apiary://" + std::string(40, 'z') + "@127.0.0.1:1",
      "apiary://" + pid + "@127.0.0.1",
      "apiary://" + pid + "@127.0.0.1:",
      "apiary://" + pid + "@127.0.0.1:0",
      "apiary://" + pid + "@127.0.0.1:65536",
      "apiary://" + pid + "@127.0.0.1:12x",
      "apiary://" + pid + "@:1",
      "apiary://" + pid + "@::1:80",
      "apiary://" + pid + "@[::1:80",
      "apiary://" + pid + "@[::1]80",
      "apiary://" + pid + "@[]:80",
      "apiary://" + pid + "@[host%1]:80",  // brackets hold IPv6 hosts only (fuzz finding)
      "apiary://" + pid + "@host name:80",
  };
  for (const auto& text : bad) {
    EXPECT_EQ(testing::error_code_of([&] { PeerAddress::parse(text); }), Errc::invalid_argument)
        << text;
    const std::string message = testing::error_message_of([&] { PeerAddress::parse(text); });
    EXPECT_NE(message.find("apiary://<40-hex-digit peer id>@<host>:<port>"), std::string::npos)
        << message;
  }
}

}  // namespace
}  // namespace apiary

namespace apiary {
namespace {

TEST(PeerAddressWire, RoundTripsAndRefusesMalformedAddresses) {
  const PeerAddress a{Identity::generate().peer_id(), "::1", 31337};
  codec::Writer w;
  write_peer_address(w, a);
  const Bytes good = w.take();  // parse() reads in place: keep the bytes alive
  const auto doc = codec::parse(good);
  EXPECT_EQ(read_peer_address(doc.root(), "addr"), a);

  codec::Writer short_id;
  short_id.array(3).bin(Bytes(19, 1)).str("h").uint(1);
  const Bytes short_id_bytes = short_id.take();
  const auto bad_id = codec::parse(short_id_bytes);
  EXPECT_EQ(testing::error_code_of([&] { read_peer_address(bad_id.root(), "addr"); }),
            Errc::bad_message);
  codec::Writer empty_host;
  empty_host.array(3).bin(a.peer.bytes).str("").uint(1);
  const Bytes empty_host_bytes = empty_host.take();
  const auto bad_host = codec::parse(empty_host_bytes);
  EXPECT_EQ(testing::error_code_of([&] { read_peer_address(bad_host.root(), "addr"); }),
            Errc::bad_message);
  codec::Writer big_port;
  big_port.array(3).bin(a.peer.bytes).str("h").uint(70000);
  const Bytes big_port_bytes = big_port.take();
  const auto bad_port = codec::parse(big_port_bytes);
  EXPECT_EQ(testing::error_code_of([&] { read_peer_address(bad_port.root(), "addr"); }),
            Errc::bad_message);
}

}  // namespace
}  // namespace apiary
