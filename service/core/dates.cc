#include "service/core/dates.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"

namespace physioreg::core {
namespace {

std::optional<int> Digits(absl::string_view text) {
  int value = 0;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

}  // namespace

std::optional<absl::CivilDay> ParseDate(absl::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  std::optional<int> year = Digits(text.substr(0, 4));
  std::optional<int> month = Digits(text.substr(5, 2));
  std::optional<int> day = Digits(text.substr(8, 2));
  if (!year || !month || !day || *year < 1900 || *year > 2999) return std::nullopt;
  absl::CivilDay civil(*year, *month, *day);
  // CivilDay normalizes out-of-range fields (Feb 30 -> Mar 2); a real date survives unchanged.
  if (civil.year() != *year || civil.month() != *month || civil.day() != *day) {
    return std::nullopt;
  }
  return civil;
}

bool IsValidDate(absl::string_view text) { return ParseDate(text).has_value(); }

std::string FormatDate(absl::CivilDay day) {
  if (day.year() < 0 || day.year() > 9999) {
    return absl::StrFormat("%04d-%02d-%02d", day.year(), day.month(), day.day());
  }
  // By hand: every Verify without as_of formats today, and StrFormat costs more than the rule.
  std::string text = "0000-00-00";
  auto put = [&text](size_t end, int64_t value) {
    for (size_t i = end; value > 0; value /= 10) text[--i] = static_cast<char>('0' + value % 10);
  };
  put(4, day.year());
  put(7, day.month());
  put(10, day.day());
  return text;
}

std::string DateIn(absl::Time now, const absl::TimeZone& zone) {
  return FormatDate(absl::ToCivilDay(now, zone));
}

google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(time);
  ts.set_seconds(nanos / 1'000'000'000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  return ts;
}

}  // namespace physioreg::core
