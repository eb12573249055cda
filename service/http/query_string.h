// Query strings of the HTTP gateway: application/x-www-form-urlencoded pairs, decoded.
#ifndef PHYSIOREG_SERVICE_HTTP_QUERY_STRING_H_
#define PHYSIOREG_SERVICE_HTTP_QUERY_STRING_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace physioreg::service::http {

// Percent-decodes `text` ('+' is a space when `plus_is_space`). INVALID_ARGUMENT for a
// malformed escape or a result that is not UTF-8.
[[nodiscard]] absl::StatusOr<std::string> PercentDecode(absl::string_view text, bool plus_is_space);

struct QueryParameter {
  std::string name;
  std::string value;
};

// "a=1&b=&c" → {a,1} {b,""} {c,""}; empty pieces ("a=1&&b=2") are skipped. Errors name the
// parameter whose name or value does not decode.
[[nodiscard]] absl::StatusOr<std::vector<QueryParameter>> ParseQueryString(absl::string_view query);

}  // namespace physioreg::service::http

#endif  // PHYSIOREG_SERVICE_HTTP_QUERY_STRING_H_
