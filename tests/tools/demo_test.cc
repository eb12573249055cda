// The demo register's dates move with today (tools/demo), and the register means the same on
// every date: each registrant gets the same verdict as on the day it was written for.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "service/core/dates.h"
#include "service/core/registry.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tools/demo/demo_dates.h"

namespace physioreg::tools {
namespace {

using physioreg::testing::CommandResult;
using physioreg::testing::RunCommand;
using physioreg::testing::TempDir;
using ::testing::HasSubstr;
namespace v1 = physioreg::v1;

absl::CivilDay Day(absl::string_view text) { return *core::ParseDate(text); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DemoDatesTest, ShiftByYearsMapsLeapDayToTheTwentyEighth) {
  EXPECT_EQ(ShiftByYears(Day("2024-02-29"), 1), Day("2025-02-28"));
  EXPECT_EQ(ShiftByYears(Day("2024-02-29"), 4), Day("2028-02-29"));
  EXPECT_EQ(ShiftByYears(Day("2024-02-29"), -1), Day("2023-02-28"));
  EXPECT_EQ(ShiftByYears(Day("2026-03-01"), 2), Day("2028-03-01"));
  EXPECT_EQ(ShiftByYears(Day("2026-11-25"), 0), Day("2026-11-25"));
}

TEST(DemoDatesTest, AnchorBecomesTheLatestSuchDayOnOrBeforeToday) {
  const absl::CivilDay anchor = Day("2026-11-25");
  EXPECT_EQ(YearsToShift(anchor, Day("2026-11-25")), 0);
  EXPECT_EQ(YearsToShift(anchor, Day("2027-11-24")), 0);
  EXPECT_EQ(YearsToShift(anchor, Day("2027-11-25")), 1);
  EXPECT_EQ(YearsToShift(anchor, Day("2031-06-15")), 4);
  EXPECT_EQ(YearsToShift(anchor, Day("2026-11-24")), -1);
  EXPECT_EQ(YearsToShift(anchor, Day("2020-01-01")), -7);
  EXPECT_EQ(YearsToShift(Day("2024-02-29"), Day("2025-02-28")), 1);
  EXPECT_EQ(YearsToShift(Day("2024-02-29"), Day("2025-02-27")), 0);
}

TEST(DemoDatesTest, ShiftsEveryDateFieldAndNothingElse) {
  const std::string line =
      R"({"registrationId":"PT-2020-01-01","givenName":"A","familyName":"B",)"
      R"("permit":{"register":"GENERAL","status":"ACTIVE","registeredOn":"2020-02-29",)"
      R"("expiresOn":"2027-03-31","statusHistory":[{"status":"ACTIVE","effectiveOn":"2020-02-29",)"
      R"("reason":"on 2020-02-29"}]},"authorizations":[{"activity":"DRY_NEEDLING",)"
      R"("status":"AUTHORIZED","grantedOn":"2026-11-25","training":[{"provider":"P","course":"C",)"
      R"("hours":10,"completedOn":"2025-06-01"}]}]})";
  absl::StatusOr<std::string> shifted =
      ShiftDemoRegister(line + "\n\n", Day("2026-11-25"), Day("2029-01-10"));
  ASSERT_TRUE(shifted.ok()) << shifted.status();
  v1::Practitioner p;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(absl::StripSuffix(*shifted, "\n").data(), &p)
          .ok())
      << *shifted;
  EXPECT_EQ(p.registration_id(), "PT-2020-01-01");
  EXPECT_EQ(p.permit().registered_on(), "2022-02-28");
  EXPECT_EQ(p.permit().expires_on(), "2029-03-31");
  EXPECT_EQ(p.permit().status_history(0).effective_on(), "2022-02-28");
  EXPECT_EQ(p.permit().status_history(0).reason(), "on 2020-02-29");
  EXPECT_EQ(p.authorizations(0).granted_on(), "2028-11-25");
  EXPECT_EQ(p.authorizations(0).training(0).completed_on(), "2027-06-01");
  EXPECT_EQ(std::count(shifted->begin(), shifted->end(), '\n'), 1) << "blank lines dropped";
}

TEST(DemoDatesTest, RefusesDatesThatWouldLieInTheFutureAndBadLines) {
  const absl::CivilDay anchor = Day("2026-11-25");
  const std::string late_grant =
      R"({"registrationId":"PT-1","authorizations":[{"grantedOn":"2026-11-26"}]})";
  absl::StatusOr<std::string> shifted =
      ShiftDemoRegister("{}\n" + late_grant, anchor, Day("2030-01-01"));
  ASSERT_FALSE(shifted.ok());
  EXPECT_THAT(shifted.status().message(), HasSubstr("line 2 (PT-1)"));
  EXPECT_THAT(shifted.status().message(), HasSubstr("authorizations[0].granted_on 2026-11-26"));

  EXPECT_FALSE(
      ShiftDemoRegister(R"({"permit":{"registeredOn":"2026-02-30"}})", anchor, anchor).ok());
  absl::StatusOr<std::string> not_json = ShiftDemoRegister("{}\n{\"nope\":1}", anchor, anchor);
  ASSERT_FALSE(not_json.ok());
  EXPECT_THAT(not_json.status().message(), HasSubstr("line 2"));
  EXPECT_TRUE(ShiftDemoRegister(R"({"permit":{"expiresOn":"2099-03-31"}})", anchor, anchor).ok());
}

// Every verdict (each registrant, each activity) on the shifted register's today is the one
// the demo register gives on its anchor: the demo shows the same cases whatever the date.
class DemoRegisterTest : public ::testing::Test {
 protected:
  // Loads the demo register shifted to `today` into a fresh registry whose clock says noon on
  // `today`, and returns each registrant's verdict per activity.
  std::map<std::string, v1::VerificationReason> VerdictsOn(absl::CivilDay today) {
    std::map<std::string, v1::VerificationReason> verdicts;
    absl::StatusOr<std::string> shifted =
        ShiftDemoRegister(ReadFile(PHYSIOREG_DEMO_PATH), kDemoAnchor, today);
    EXPECT_TRUE(shifted.ok()) << shifted.status();
    if (!shifted.ok()) return verdicts;

    TempDir dir;
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(dir.path());
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return verdicts;
    absl::TimeZone zone;
    EXPECT_TRUE(absl::LoadTimeZone("America/Edmonton", &zone));
    const absl::Time noon = absl::FromCivil(absl::CivilSecond(today) + 12 * 3600, zone);
    core::Registry registry(store->get(), zone, [noon] { return noon; });

    v1::UpsertPractitionersRequest upsert;
    for (absl::string_view line : absl::StrSplit(*shifted, '\n', absl::SkipEmpty())) {
      EXPECT_TRUE(
          google::protobuf::util::JsonStringToMessage(
              google::protobuf::StringPiece(line.data(), line.size()), upsert.add_practitioners())
              .ok());
    }
    absl::StatusOr<v1::UpsertPractitionersResponse> loaded = registry.Upsert(upsert, "demo");
    EXPECT_TRUE(loaded.ok()) << core::FormatDate(today) << ": " << loaded.status();
    if (!loaded.ok()) return verdicts;
    EXPECT_EQ(loaded->created(), upsert.practitioners_size());

    for (const v1::Practitioner& p : upsert.practitioners()) {
      for (int activity = v1::RestrictedActivity_MIN; activity <= v1::RestrictedActivity_MAX;
           ++activity) {
        if (!v1::RestrictedActivity_IsValid(activity) ||
            activity == v1::RESTRICTED_ACTIVITY_UNSPECIFIED)
          continue;
        v1::VerifyAuthorizationRequest request;
        request.set_registration_id(p.registration_id());
        request.set_activity(static_cast<v1::RestrictedActivity>(activity));
        v1::VerifyAuthorizationResponse response;
        EXPECT_TRUE(registry.Verify(request, &response).ok());
        verdicts[p.registration_id() + " " + v1::RestrictedActivity_Name(activity)] =
            response.reason();
      }
    }
    return verdicts;
  }
};

TEST_F(DemoRegisterTest, ShowsEveryCaseOnItsAnchor) {
  const std::map<std::string, v1::VerificationReason> verdicts = VerdictsOn(kDemoAnchor);
  ASSERT_EQ(verdicts.size() % 200, 0u);
  const std::map<std::string, v1::VerificationReason> expected = {
      {"PT-100331 DRY_NEEDLING", v1::AUTHORIZED},               // IMS, French, Calgary T2P
      {"PT-101394 DRY_NEEDLING", v1::AUTHORIZED},               // trigger point, Hélène O'Brien
      {"PT-103414 DRY_NEEDLING", v1::AUTHORIZATION_SUSPENDED},  // back-dated history
      {"PT-100505 DRY_NEEDLING", v1::AUTHORIZATION_REVOKED},
      {"PT-101496 DRY_NEEDLING", v1::AUTHORIZATION_PENDING},
      {"PT-100256 DRY_NEEDLING", v1::PERMIT_NOT_ACTIVE},  // permit expired 2026-03-31
      {"PT-101001 DRY_NEEDLING", v1::AUTHORIZATION_EXPIRED},
      {"PT-105174 DRY_NEEDLING", v1::NO_AUTHORIZATION},  // John Smith, Calgary
  };
  for (const auto& [key, reason] : expected) {
    auto found = verdicts.find(key);
    ASSERT_NE(found, verdicts.end()) << key;
    EXPECT_EQ(v1::VerificationReason_Name(found->second), v1::VerificationReason_Name(reason))
        << key;
  }
}

TEST_F(DemoRegisterTest, MeansTheSameOnAnyDate) {
  const std::map<std::string, v1::VerificationReason> on_anchor = VerdictsOn(kDemoAnchor);
  ASSERT_FALSE(on_anchor.empty());
  for (const char* today : {"2026-11-26", "2027-11-24", "2027-11-25", "2028-02-29", "2031-06-15",
                            "2040-01-01", "2026-11-24", "2021-03-01"}) {
    SCOPED_TRACE(today);
    const std::map<std::string, v1::VerificationReason> verdicts = VerdictsOn(Day(today));
    ASSERT_EQ(verdicts.size(), on_anchor.size());
    for (const auto& [key, reason] : on_anchor) {
      EXPECT_EQ(v1::VerificationReason_Name(verdicts.at(key)), v1::VerificationReason_Name(reason))
          << key;
    }
  }
}

TEST(DemoToolTest, WritesTheShiftedRegisterAndRefusesBadArguments) {
  TempDir dir;
  const std::string out = dir.Sub("demo.jsonl");
  CommandResult run = RunCommand({PHYSIOREG_DEMO_TOOL_PATH, "--today", "2031-06-15", "--input",
                                  PHYSIOREG_DEMO_PATH, "--output", out});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  absl::StatusOr<std::string> expected =
      ShiftDemoRegister(ReadFile(PHYSIOREG_DEMO_PATH), kDemoAnchor, Day("2031-06-15"));
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(ReadFile(out), *expected);

  CommandResult bad_day = RunCommand({PHYSIOREG_DEMO_TOOL_PATH, "--today", "2031-02-30"});
  EXPECT_EQ(bad_day.exit_code, 2);
  EXPECT_THAT(bad_day.output, HasSubstr("--today"));
  EXPECT_NE(RunCommand({PHYSIOREG_DEMO_TOOL_PATH, "--as_of", "2031-01-01"}).exit_code, 0);
  EXPECT_EQ(RunCommand({PHYSIOREG_DEMO_TOOL_PATH, "extra"}).exit_code, 2);
  CommandResult missing =
      RunCommand({PHYSIOREG_DEMO_TOOL_PATH, "--input", dir.Sub("none.jsonl"), "--output", out});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(ReadFile(out), *expected) << "a failed run leaves the output as it was";
}

}  // namespace
}  // namespace physioreg::tools
