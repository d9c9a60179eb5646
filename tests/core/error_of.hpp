#pragma once
// Test helpers: what an apiary::Error thrown by a call says (code or message).
#include "core/error.hpp"

#include <string>

namespace apiary::testing {

// The code of the apiary::Error `call` throws, Errc::ok when it throws none.
inline Errc error_code_of(auto&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.code();
  }
  return Errc::ok;
}

// The message of the apiary::Error `call` throws, empty when it throws none.
inline std::string error_message_of(auto&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

}  // namespace apiary::testing
