#include "service/http/query_string.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/core/validation.h"

namespace physioreg::service::http {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

absl::StatusOr<std::string> PercentDecode(absl::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      const int high_digit = i + 2 < text.size() ? HexValue(text[i + 1]) : -1;
      const int low_digit = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
      if (high_digit < 0 || low_digit < 0) {
        return absl::InvalidArgumentError("a '%' must be followed by two hexadecimal digits");
      }
      out.push_back(static_cast<char>(high_digit * 16 + low_digit));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  if (!core::IsValidUtf8(out)) return absl::InvalidArgumentError("not valid UTF-8 once decoded");
  return out;
}

absl::StatusOr<std::vector<QueryParameter>> ParseQueryString(absl::string_view query) {
  std::vector<QueryParameter> parameters;
  for (absl::string_view piece : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const size_t equals = piece.find('=');
    const absl::string_view raw_name = piece.substr(0, equals);
    const absl::string_view raw_value =
        equals == absl::string_view::npos ? absl::string_view() : piece.substr(equals + 1);
    absl::StatusOr<std::string> name = PercentDecode(raw_name, true);
    if (!name.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a parameter's name is malformed: ", name.status().message()));
    }
    absl::StatusOr<std::string> value = PercentDecode(raw_value, true);
    if (!value.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter ", core::Quote(*name), ": ", value.status().message()));
    }
    parameters.push_back({*std::move(name), *std::move(value)});
  }
  return parameters;
}

}  // namespace physioreg::service::http
