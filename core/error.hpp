#pragma once
// Errors of the core layer.
//
// Convention for core/ and net/: coroutine and blocking network APIs report failure by
// throwing apiary::Error (a code plus a message). Decoders of untrusted input
// throw apiary::Error{Errc::bad_message}; the RPC layer turns that into an error
// for that one request or connection, never a crash.
#include <stdexcept>
#include <string>
#include <string_view>

namespace apiary {

enum class Errc : int {
  ok = 0,
  cancelled = 1,
  deadline_exceeded = 2,
  unavailable = 3,         // peer unreachable, connection refused, no route
  connection_closed = 4,   // the connection dropped while a call was pending
  bad_message = 5,         // malformed frame or message (decode failure)
  invalid_argument = 6,    // a well-formed request that the handler refuses
  not_found = 7,           // unknown method, key, …
  permission_denied = 8,   // bad signature, missing token, wrong peer id
  resource_exhausted = 9,  // size limit, memory cap, group full
  failed_precondition = 10,
  internal = 11,
  io_error = 12,  // local file system / OS failure
};

std::string_view errc_name(Errc code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
  Errc code() const noexcept { return code_; }

 private:
  Errc code_;
};

}  // namespace apiary
