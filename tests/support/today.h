// "Today" as a real physioregd sees it (the wall clock in America/Edmonton, its default time
// zone), for end-to-end tests that must not depend on the date they run on.
#ifndef PHYSIOREG_TESTS_SUPPORT_TODAY_H_
#define PHYSIOREG_TESTS_SUPPORT_TODAY_H_

#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace physioreg::testing {

inline absl::CivilDay TodayInEdmonton() {
  absl::TimeZone zone;
  if (!absl::LoadTimeZone("America/Edmonton", &zone)) zone = absl::UTCTimeZone();
  return absl::ToCivilDay(absl::Now(), zone);
}

// YYYY-MM-DD of today plus `days` (negative: in the past). Tests keep a margin of days around
// today so that a midnight between the test's clock and the server's changes nothing.
inline std::string DaysFromToday(int days) {
  const absl::CivilDay day = TodayInEdmonton() + days;
  return absl::StrFormat("%04d-%02d-%02d", day.year(), day.month(), day.day());
}

}  // namespace physioreg::testing

#endif  // PHYSIOREG_TESTS_SUPPORT_TODAY_H_
