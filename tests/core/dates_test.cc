#include "service/core/dates.h"

#include <gtest/gtest.h>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace physioreg::core {
namespace {

TEST(FormatDateTest, PadsEveryField) {
  EXPECT_EQ(FormatDate(absl::CivilDay(2026, 11, 29)), "2026-11-29");
  EXPECT_EQ(FormatDate(absl::CivilDay(2025, 1, 5)), "2025-01-05");
  EXPECT_EQ(FormatDate(absl::CivilDay(987, 10, 1)), "0987-10-01");
  EXPECT_EQ(FormatDate(absl::CivilDay(9999, 12, 31)), "9999-12-31");
  EXPECT_EQ(FormatDate(absl::CivilDay(10000, 1, 1)), "10000-01-01");
}

TEST(FormatDateTest, RoundTripsThroughParseDate) {
  for (absl::CivilDay day(1999, 12, 25); day < absl::CivilDay(2001, 3, 5); ++day) {
    std::optional<absl::CivilDay> parsed = ParseDate(FormatDate(day));
    ASSERT_TRUE(parsed.has_value()) << FormatDate(day);
    EXPECT_EQ(*parsed, day);
  }
}

TEST(DateInTest, IsTheDayInTheRegistrysZone) {
  absl::TimeZone edmonton;
  ASSERT_TRUE(absl::LoadTimeZone("America/Edmonton", &edmonton));
  // 05:30 UTC on 29 November is still the evening of the 28th in Edmonton (UTC-7).
  const absl::Time t =
      absl::FromCivil(absl::CivilSecond(2026, 11, 29, 5, 30, 0), absl::UTCTimeZone());
  EXPECT_EQ(DateIn(t, edmonton), "2026-11-28");
  EXPECT_EQ(DateIn(t, absl::UTCTimeZone()), "2026-11-29");
}

}  // namespace
}  // namespace physioreg::core
