#include "core/error.hpp"

namespace apiary {

std::string_view errc_name(Errc code) noexcept {
  switch (code) {
    case Errc::ok:
      return "ok";
    case Errc::cancelled:
      return "cancelled";
    case Errc::deadline_exceeded:
      return "deadline_exceeded";
    case Errc::unavailable:
      return "unavailable";
    case Errc::connection_closed:
      return "connection_closed";
    case Errc::bad_message:
      return "bad_message";
    case Errc::invalid_argument:
      return "invalid_argument";
    case Errc::not_found:
      return "not_found";
    case Errc::permission_denied:
      return "permission_denied";
    case Errc::resource_exhausted:
      return "resource_exhausted";
    case Errc::failed_precondition:
      return "failed_precondition";
    case Errc::internal:
      return "internal";
    case Errc::io_error:
      return "io_error";
  }
  return "unknown";
}

}  // namespace apiary
