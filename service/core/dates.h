// Strict ISO-8601 calendar dates (YYYY-MM-DD). Validated dates compare correctly as strings.
#ifndef PHYSIOREG_SERVICE_CORE_DATES_H_
#define PHYSIOREG_SERVICE_CORE_DATES_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace physioreg::core {

// A real calendar date written exactly as YYYY-MM-DD (years 1900-2999); nullopt otherwise.
[[nodiscard]] std::optional<absl::CivilDay> ParseDate(absl::string_view text);
[[nodiscard]] bool IsValidDate(absl::string_view text);
std::string FormatDate(absl::CivilDay day);

// The calendar day `now` falls on in `zone`, as YYYY-MM-DD.
std::string DateIn(absl::Time now, const absl::TimeZone& zone);

google::protobuf::Timestamp ToTimestamp(absl::Time time);

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_DATES_H_
