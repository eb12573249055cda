// Tests of the verification rule (physioreg::core::Verify) and its helpers StatusOn,
// DisplayName and PublicView. Verify works on STORED records, whose timelines are always filled
// in, so every record here carries explicit permit and authorization histories.
#include "service/core/verification.h"

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "physioreg/v1/practitioner.pb.h"
#include "physioreg/v1/registry.pb.h"
#include "service/core/validation.h"
#include "storage/store.h"
#include "tests/support/records.h"

namespace physioreg::core {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::physioreg::testing::ValidPractitioner;
using ::physioreg::v1::Authorization;
using ::physioreg::v1::Permit;
using ::physioreg::v1::Practitioner;
using ::physioreg::v1::RestrictedActivity;
using ::physioreg::v1::StatusChange;
using ::physioreg::v1::VerificationReason;
using ::physioreg::v1::VerifyAuthorizationResponse;
using ::testing::ElementsAre;

constexpr absl::string_view kId = "PT-1001";
// After every date used below: the records are ones the registry would have accepted.
constexpr absl::string_view kToday = "2026-11-25";

struct TimelineEntry {
  std::string status;
  std::string effective_on;
};

google::protobuf::RepeatedPtrField<StatusChange> Timeline(
    std::initializer_list<TimelineEntry> entries) {
  google::protobuf::RepeatedPtrField<StatusChange> history;
  for (const TimelineEntry& entry : entries) {
    StatusChange* change = history.Add();
    change->set_status(entry.status);
    change->set_effective_on(entry.effective_on);
    change->set_reason("test");
  }
  return history;
}

// Sets the permit's current status and its timeline (whose last entry must match).
void SetPermitTimeline(Practitioner& p, Permit::Status current,
                       std::initializer_list<TimelineEntry> entries) {
  p.mutable_permit()->set_status(current);
  *p.mutable_permit()->mutable_status_history() = Timeline(entries);
}

void SetAuthorizationTimeline(Authorization* a, Authorization::Status current,
                              std::initializer_list<TimelineEntry> entries) {
  a->set_status(current);
  *a->mutable_status_history() = Timeline(entries);
}

Authorization* DryNeedling(Practitioner& p) { return p.mutable_authorizations(0); }

// ValidPractitioner() as the registry stores it: GENERAL, permit ACTIVE since 2015-04-01
// (expires after kToday), DRY_NEEDLING AUTHORIZED since 2019-04-02.
Practitioner StoredPractitioner() {
  Practitioner p = ValidPractitioner(std::string(kId));
  SetPermitTimeline(p, Permit::ACTIVE, {{"ACTIVE", "2015-04-01"}});
  SetAuthorizationTimeline(DryNeedling(p), Authorization::AUTHORIZED,
                           {{"AUTHORIZED", "2019-04-02"}});
  return p;
}

std::vector<std::string> ViolationsOf(const Practitioner& p) {
  Violations violations;
  ValidatePractitioner(p, "", kToday, &violations);
  std::vector<std::string> out;
  for (const auto& v : violations.bad_request().field_violations()) {
    out.push_back(v.field() + ": " + v.description());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The rule, one row per (record, activity, date).

struct VerifyCase {
  std::string name;
  std::function<void(Practitioner&)> mutate;
  RestrictedActivity activity;
  std::string as_of;
  VerificationReason reason;
  Permit::Status permit_status;
};

void PrintTo(const VerifyCase& row, std::ostream* os) { *os << row.name; }

std::vector<VerifyCase> VerifyCases() {
  using physioreg::v1::ACUPUNCTURE;
  using physioreg::v1::DRY_NEEDLING;
  using physioreg::v1::PELVIC_HEALTH_INTERNAL_EXAM;
  using physioreg::v1::SPINAL_MANIPULATION;
  namespace v1 = physioreg::v1;
  const auto unchanged = [](Practitioner&) {};
  const auto suspend_permit = [](Practitioner& p) {
    SetPermitTimeline(p, Permit::SUSPENDED,
                      {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2026-01-10"}});
  };
  const auto make_provisional = [](Practitioner& p) {
    p.mutable_permit()->set_register_(v1::PROVISIONAL);
    p.clear_authorizations();
  };
  const auto add_acupuncture = [](Practitioner& p) {
    Authorization* a = p.add_authorizations();
    a->set_activity(ACUPUNCTURE);
    a->set_granted_on("2020-06-15");
    a->add_conditions("Supervised for the first 50 treatments");
    SetAuthorizationTimeline(a, Authorization::AUTHORIZED, {{"AUTHORIZED", "2020-06-15"}});
  };
  // AUTHORIZED 2019-04-02 -> SUSPENDED 2026-06-01 -> AUTHORIZED 2026-09-01, recorded later.
  const auto back_dated_suspension = [](Practitioner& p) {
    SetAuthorizationTimeline(
        DryNeedling(p), Authorization::AUTHORIZED,
        {{"AUTHORIZED", "2019-04-02"}, {"SUSPENDED", "2026-06-01"}, {"AUTHORIZED", "2026-09-01"}});
  };
  // Permit ACTIVE 2015-04-01 -> SUSPENDED 2025-01-10 -> ACTIVE 2025-03-01.
  const auto permit_suspended_in_2025 = [](Practitioner& p) {
    SetPermitTimeline(
        p, Permit::ACTIVE,
        {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2025-01-10"}, {"ACTIVE", "2025-03-01"}});
  };
  return {
      // PERMIT_NOT_ACTIVE
      {"PermitInactive",
       [](Practitioner& p) {
         SetPermitTimeline(p, Permit::INACTIVE,
                           {{"ACTIVE", "2015-04-01"}, {"INACTIVE", "2026-01-01"}});
       },
       DRY_NEEDLING, "2026-04-01", v1::PERMIT_NOT_ACTIVE, Permit::INACTIVE},
      {"PermitSuspended", suspend_permit, DRY_NEEDLING, "2026-04-01", v1::PERMIT_NOT_ACTIVE,
       Permit::SUSPENDED},
      {"PermitCancelled",
       [](Practitioner& p) {
         SetPermitTimeline(p, Permit::CANCELLED,
                           {{"ACTIVE", "2015-04-01"}, {"CANCELLED", "2026-02-01"}});
       },
       DRY_NEEDLING, "2026-04-01", v1::PERMIT_NOT_ACTIVE, Permit::CANCELLED},
      {"PermitSuspendedOnTheDayItTakesEffect", suspend_permit, DRY_NEEDLING, "2026-01-10",
       v1::PERMIT_NOT_ACTIVE, Permit::SUSPENDED},
      {"PermitSuspendedLaterWasActiveBefore", suspend_permit, DRY_NEEDLING, "2026-01-09",
       v1::AUTHORIZED, Permit::ACTIVE},
      {"PermitExpiredTheDayBefore",
       [](Practitioner& p) { p.mutable_permit()->set_expires_on("2026-03-31"); }, DRY_NEEDLING,
       "2026-04-01", v1::PERMIT_NOT_ACTIVE, Permit::INACTIVE},
      {"PermitExpiringThatDayStillActive",
       [](Practitioner& p) { p.mutable_permit()->set_expires_on("2026-03-31"); }, DRY_NEEDLING,
       "2026-03-31", v1::AUTHORIZED, Permit::ACTIVE},
      {"BeforeRegisteredOn", unchanged, DRY_NEEDLING, "2015-03-31", v1::PERMIT_NOT_ACTIVE,
       Permit::STATUS_UNSPECIFIED},
      {"BeforeRegisteredOnForAnUnauthorizedActivity", unchanged, ACUPUNCTURE, "2010-01-01",
       v1::PERMIT_NOT_ACTIVE, Permit::STATUS_UNSPECIFIED},
      {"SuspendedPermitBeatsRevokedAuthorization",
       [](Practitioner& p) {
         SetPermitTimeline(p, Permit::SUSPENDED,
                           {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2026-01-10"}});
         SetAuthorizationTimeline(DryNeedling(p), Authorization::REVOKED,
                                  {{"AUTHORIZED", "2019-04-02"}, {"REVOKED", "2026-01-05"}});
       },
       DRY_NEEDLING, "2026-04-01", v1::PERMIT_NOT_ACTIVE, Permit::SUSPENDED},
      {"ExpiredPermitBeatsExpiredAuthorization",
       [](Practitioner& p) {
         p.mutable_permit()->set_expires_on("2026-03-31");
         DryNeedling(p)->set_expires_on("2026-03-31");
       },
       DRY_NEEDLING, "2026-04-01", v1::PERMIT_NOT_ACTIVE, Permit::INACTIVE},
      {"SuspendedPermitBeatsProvisionalRegister",
       [suspend_permit, make_provisional](Practitioner& p) {
         make_provisional(p);
         suspend_permit(p);
       },
       DRY_NEEDLING, "2026-04-01", v1::PERMIT_NOT_ACTIVE, Permit::SUSPENDED},
      // REGISTER_RESTRICTS_ACTIVITY
      {"ProvisionalAskingDryNeedling", make_provisional, DRY_NEEDLING, "2026-04-01",
       v1::REGISTER_RESTRICTS_ACTIVITY, Permit::ACTIVE},
      {"ProvisionalAskingSpinalManipulation", make_provisional, SPINAL_MANIPULATION, "2026-04-01",
       v1::REGISTER_RESTRICTS_ACTIVITY, Permit::ACTIVE},
      {"ProvisionalAskingAcupunctureWithAuthorization",
       [make_provisional, add_acupuncture](Practitioner& p) {
         make_provisional(p);
         add_acupuncture(p);
       },
       ACUPUNCTURE, "2026-04-01", v1::AUTHORIZED, Permit::ACTIVE},
      {"ProvisionalAskingAcupunctureWithoutAuthorization", make_provisional, ACUPUNCTURE,
       "2026-04-01", v1::NO_AUTHORIZATION, Permit::ACTIVE},
      {"CourtesyAskingDryNeedling",
       [](Practitioner& p) { p.mutable_permit()->set_register_(v1::COURTESY); }, DRY_NEEDLING,
       "2026-04-01", v1::AUTHORIZED, Permit::ACTIVE},
      // NO_AUTHORIZATION
      {"OnlyAnotherActivityAuthorized", unchanged, ACUPUNCTURE, "2026-04-01", v1::NO_AUTHORIZATION,
       Permit::ACTIVE},
      {"NoAuthorizationsAtAll", [](Practitioner& p) { p.clear_authorizations(); },
       PELVIC_HEALTH_INTERNAL_EXAM, "2026-04-01", v1::NO_AUTHORIZATION, Permit::ACTIVE},
      {"NoAuthorizationBeatsNotYetEffective", unchanged, SPINAL_MANIPULATION, "2019-04-01",
       v1::NO_AUTHORIZATION, Permit::ACTIVE},
      // AUTHORIZATION_NOT_YET_EFFECTIVE
      {"DayBeforeGrantedOn", unchanged, DRY_NEEDLING, "2019-04-01",
       v1::AUTHORIZATION_NOT_YET_EFFECTIVE, Permit::ACTIVE},
      {"OnGrantedOn", unchanged, DRY_NEEDLING, "2019-04-02", v1::AUTHORIZED, Permit::ACTIVE},
      {"GrantedButTimelineStartsLater",
       [](Practitioner& p) {
         SetAuthorizationTimeline(DryNeedling(p), Authorization::AUTHORIZED,
                                  {{"AUTHORIZED", "2019-05-01"}});
       },
       DRY_NEEDLING, "2019-04-15", v1::AUTHORIZATION_NOT_YET_EFFECTIVE, Permit::ACTIVE},
      {"NotYetEffectiveBeatsLaterRevocation",
       [](Practitioner& p) {
         SetAuthorizationTimeline(DryNeedling(p), Authorization::REVOKED,
                                  {{"AUTHORIZED", "2019-04-02"}, {"REVOKED", "2020-01-01"}});
       },
       DRY_NEEDLING, "2019-04-01", v1::AUTHORIZATION_NOT_YET_EFFECTIVE, Permit::ACTIVE},
      // AUTHORIZATION_PENDING / _SUSPENDED / _REVOKED
      {"AuthorizationPending",
       [](Practitioner& p) {
         SetAuthorizationTimeline(DryNeedling(p), Authorization::PENDING,
                                  {{"PENDING", "2019-04-02"}});
       },
       DRY_NEEDLING, "2026-04-01", v1::AUTHORIZATION_PENDING, Permit::ACTIVE},
      {"AuthorizationSuspended",
       [](Practitioner& p) {
         SetAuthorizationTimeline(DryNeedling(p), Authorization::SUSPENDED,
                                  {{"AUTHORIZED", "2019-04-02"}, {"SUSPENDED", "2026-01-15"}});
       },
       DRY_NEEDLING, "2026-04-01", v1::AUTHORIZATION_SUSPENDED, Permit::ACTIVE},
      {"AuthorizationRevoked",
       [](Practitioner& p) {
         SetAuthorizationTimeline(DryNeedling(p), Authorization::REVOKED,
                                  {{"AUTHORIZED", "2019-04-02"}, {"REVOKED", "2026-01-15"}});
       },
       DRY_NEEDLING, "2026-04-01", v1::AUTHORIZATION_REVOKED, Permit::ACTIVE},
      {"RevokedLaterWasAuthorizedBefore",
       [](Practitioner& p) {
         SetAuthorizationTimeline(DryNeedling(p), Authorization::REVOKED,
                                  {{"AUTHORIZED", "2019-04-02"}, {"REVOKED", "2026-01-15"}});
       },
       DRY_NEEDLING, "2026-01-14", v1::AUTHORIZED, Permit::ACTIVE},
      {"RevokedBeatsExpired",
       [](Practitioner& p) {
         SetAuthorizationTimeline(DryNeedling(p), Authorization::REVOKED,
                                  {{"AUTHORIZED", "2019-04-02"}, {"REVOKED", "2026-01-15"}});
         DryNeedling(p)->set_expires_on("2026-03-31");
       },
       DRY_NEEDLING, "2026-04-01", v1::AUTHORIZATION_REVOKED, Permit::ACTIVE},
      {"SuspendedBeatsExpired",
       [](Practitioner& p) {
         SetAuthorizationTimeline(DryNeedling(p), Authorization::SUSPENDED,
                                  {{"AUTHORIZED", "2019-04-02"}, {"SUSPENDED", "2026-01-15"}});
         DryNeedling(p)->set_expires_on("2026-03-31");
       },
       DRY_NEEDLING, "2026-04-01", v1::AUTHORIZATION_SUSPENDED, Permit::ACTIVE},
      {"PendingBeatsExpired",
       [](Practitioner& p) {
         SetAuthorizationTimeline(DryNeedling(p), Authorization::PENDING,
                                  {{"PENDING", "2019-04-02"}});
         DryNeedling(p)->set_expires_on("2026-03-31");
       },
       DRY_NEEDLING, "2026-04-01", v1::AUTHORIZATION_PENDING, Permit::ACTIVE},
      // AUTHORIZATION_EXPIRED
      {"AuthorizationExpiredTheDayBefore",
       [](Practitioner& p) { DryNeedling(p)->set_expires_on("2026-03-31"); }, DRY_NEEDLING,
       "2026-04-01", v1::AUTHORIZATION_EXPIRED, Permit::ACTIVE},
      {"AuthorizationExpiringThatDayStillAuthorized",
       [](Practitioner& p) { DryNeedling(p)->set_expires_on("2026-03-31"); }, DRY_NEEDLING,
       "2026-03-31", v1::AUTHORIZED, Permit::ACTIVE},
      // AUTHORIZED
      {"Authorized", unchanged, DRY_NEEDLING, "2026-04-01", v1::AUTHORIZED, Permit::ACTIVE},
      {"AuthorizedForTheSecondAuthorization", add_acupuncture, ACUPUNCTURE, "2026-04-01",
       v1::AUTHORIZED, Permit::ACTIVE},
      // Back-dated authorization timeline.
      {"BackDatedSuspensionDayBefore", back_dated_suspension, DRY_NEEDLING, "2026-05-31",
       v1::AUTHORIZED, Permit::ACTIVE},
      {"BackDatedSuspensionFirstDay", back_dated_suspension, DRY_NEEDLING, "2026-06-01",
       v1::AUTHORIZATION_SUSPENDED, Permit::ACTIVE},
      {"BackDatedSuspensionLastDay", back_dated_suspension, DRY_NEEDLING, "2026-08-31",
       v1::AUTHORIZATION_SUSPENDED, Permit::ACTIVE},
      {"BackDatedSuspensionReinstated", back_dated_suspension, DRY_NEEDLING, "2026-09-01",
       v1::AUTHORIZED, Permit::ACTIVE},
      // Back-dated permit timeline.
      {"PermitSuspensionDayBefore", permit_suspended_in_2025, DRY_NEEDLING, "2025-01-09",
       v1::AUTHORIZED, Permit::ACTIVE},
      {"PermitSuspensionFirstDay", permit_suspended_in_2025, DRY_NEEDLING, "2025-01-10",
       v1::PERMIT_NOT_ACTIVE, Permit::SUSPENDED},
      {"PermitSuspensionLastDay", permit_suspended_in_2025, DRY_NEEDLING, "2025-02-28",
       v1::PERMIT_NOT_ACTIVE, Permit::SUSPENDED},
      {"PermitSuspensionReinstated", permit_suspended_in_2025, DRY_NEEDLING, "2025-03-01",
       v1::AUTHORIZED, Permit::ACTIVE},
      // Two entries on the same day: the later one wins.
      {"SameDayAuthorizationChangesLaterWins",
       [](Practitioner& p) {
         SetAuthorizationTimeline(DryNeedling(p), Authorization::AUTHORIZED,
                                  {{"AUTHORIZED", "2019-04-02"},
                                   {"SUSPENDED", "2026-06-01"},
                                   {"AUTHORIZED", "2026-06-01"}});
       },
       DRY_NEEDLING, "2026-06-01", v1::AUTHORIZED, Permit::ACTIVE},
      {"SameDayAuthorizationChangesLaterWinsReversed",
       [](Practitioner& p) {
         SetAuthorizationTimeline(DryNeedling(p), Authorization::SUSPENDED,
                                  {{"AUTHORIZED", "2019-04-02"},
                                   {"AUTHORIZED", "2026-06-01"},
                                   {"SUSPENDED", "2026-06-01"}});
       },
       DRY_NEEDLING, "2026-06-01", v1::AUTHORIZATION_SUSPENDED, Permit::ACTIVE},
      {"SameDayPermitChangesLaterWins",
       [](Practitioner& p) {
         SetPermitTimeline(
             p, Permit::CANCELLED,
             {{"ACTIVE", "2015-04-01"}, {"ACTIVE", "2025-01-10"}, {"CANCELLED", "2025-01-10"}});
       },
       DRY_NEEDLING, "2025-01-10", v1::PERMIT_NOT_ACTIVE, Permit::CANCELLED},
  };
}

class VerifyTableTest : public ::testing::TestWithParam<VerifyCase> {};

TEST_P(VerifyTableTest, AnswersWithTheFirstReasonThatApplies) {
  const VerifyCase& row = GetParam();
  Practitioner practitioner = StoredPractitioner();
  row.mutate(practitioner);
  ASSERT_THAT(ViolationsOf(practitioner), ::testing::IsEmpty())
      << "the row builds a record the registry would not store";

  const VerifyAuthorizationResponse response = Verify(&practitioner, kId, row.activity, row.as_of);
  EXPECT_EQ(physioreg::v1::VerificationReason_Name(response.reason()),
            physioreg::v1::VerificationReason_Name(row.reason));
  EXPECT_EQ(response.authorized(), row.reason == physioreg::v1::AUTHORIZED);
  EXPECT_EQ(Permit::Status_Name(response.permit_status()), Permit::Status_Name(row.permit_status));
  EXPECT_EQ(response.registration_id(), kId);
  EXPECT_EQ(response.as_of(), row.as_of);
  EXPECT_EQ(response.display_name(), "Léna O'Brien-Smith");

  // The answer carries the authorization it is about whenever one exists, even when the permit
  // already decides the answer.
  switch (row.reason) {
    case physioreg::v1::PERMIT_NOT_ACTIVE:
      EXPECT_EQ(
          response.has_authorization(),
          std::any_of(practitioner.authorizations().begin(), practitioner.authorizations().end(),
                      [&](const Authorization& a) { return a.activity() == row.activity; }));
      break;
    case physioreg::v1::REGISTER_RESTRICTS_ACTIVITY:
    case physioreg::v1::NO_AUTHORIZATION:
      EXPECT_FALSE(response.has_authorization());
      break;
    case physioreg::v1::AUTHORIZATION_NOT_YET_EFFECTIVE:
    case physioreg::v1::AUTHORIZATION_PENDING:
    case physioreg::v1::AUTHORIZATION_SUSPENDED:
    case physioreg::v1::AUTHORIZATION_REVOKED:
    case physioreg::v1::AUTHORIZATION_EXPIRED:
    case physioreg::v1::AUTHORIZED:
      ASSERT_TRUE(response.has_authorization());
      EXPECT_EQ(response.authorization().activity(), row.activity);
      break;
    default:
      break;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, VerifyTableTest, ::testing::ValuesIn(VerifyCases()),
                         [](const ::testing::TestParamInfo<VerifyCase>& row_info) {
                           return row_info.param.name;
                         });

// Every VerificationReason but UNSPECIFIED is the expected answer of at least one row.
TEST(VerifyTableCoverageTest, EveryReasonHasARow) {
  std::vector<bool> covered(physioreg::v1::VerificationReason_MAX + 1, false);
  covered[physioreg::v1::NOT_REGISTERED] = true;  // VerifyTest.UnknownIdIsNotRegistered.
  for (const VerifyCase& row : VerifyCases()) covered[row.reason] = true;
  for (int reason = 1; reason <= physioreg::v1::VerificationReason_MAX; ++reason) {
    EXPECT_TRUE(covered[reason]) << physioreg::v1::VerificationReason_Name(
        static_cast<VerificationReason>(reason));
  }
}

// ---------------------------------------------------------------------------------------------
// The rest of the answer.

TEST(VerifyTest, UnknownIdIsNotRegistered) {
  const VerifyAuthorizationResponse response =
      Verify(nullptr, "PT-404", physioreg::v1::DRY_NEEDLING, "2026-04-01");
  EXPECT_FALSE(response.authorized());
  EXPECT_EQ(response.reason(), physioreg::v1::NOT_REGISTERED);
  EXPECT_EQ(response.registration_id(), "PT-404");
  EXPECT_EQ(response.as_of(), "2026-04-01");
  EXPECT_EQ(response.display_name(), "");
  EXPECT_EQ(response.permit_status(), Permit::STATUS_UNSPECIFIED);
  EXPECT_FALSE(response.has_authorization());
}

TEST(VerifyTest, AuthorizedAnswerShowsTheAuthorizationAndItsConditions) {
  Practitioner practitioner = StoredPractitioner();
  DryNeedling(practitioner)->add_conditions("Only at Bow River Physiotherapy");

  const VerifyAuthorizationResponse response =
      Verify(&practitioner, kId, physioreg::v1::DRY_NEEDLING, "2026-04-01");
  EXPECT_TRUE(response.authorized());
  EXPECT_EQ(response.reason(), physioreg::v1::AUTHORIZED);
  EXPECT_EQ(response.permit_status(), Permit::ACTIVE);
  EXPECT_EQ(response.display_name(), "Léna O'Brien-Smith");
  EXPECT_EQ(response.as_of(), "2026-04-01");
  EXPECT_THAT(
      response.authorization().conditions(),
      ElementsAre("Must not needle the thoracic region", "Only at Bow River Physiotherapy"));
  EXPECT_THAT(response.authorization().techniques(), ElementsAre(physioreg::v1::IMS));
  // Compact: what a clinic needs, not the training or the whole timeline (those are on Get).
  Authorization expected = practitioner.authorizations(0);
  expected.clear_training();
  expected.clear_status_history();
  EXPECT_TRUE(MessageDifferencer::Equals(response.authorization(), expected))
      << response.authorization().DebugString();
}

// Every field of an answer describes the as_of date, not today.
TEST(VerifyTest, AuthorizationStatusIsTheOneInForceOnTheDate) {
  Practitioner practitioner = StoredPractitioner();
  Authorization* dn = DryNeedling(practitioner);
  StatusChange* suspended = dn->add_status_history();
  suspended->set_status("SUSPENDED");
  suspended->set_effective_on("2026-06-01");
  dn->set_status(Authorization::SUSPENDED);

  const VerifyAuthorizationResponse before =
      Verify(&practitioner, kId, physioreg::v1::DRY_NEEDLING, "2026-05-31");
  EXPECT_EQ(before.reason(), physioreg::v1::AUTHORIZED);
  EXPECT_EQ(before.authorization().status(), Authorization::AUTHORIZED);
  const VerifyAuthorizationResponse after =
      Verify(&practitioner, kId, physioreg::v1::DRY_NEEDLING, "2026-06-01");
  EXPECT_EQ(after.reason(), physioreg::v1::AUTHORIZATION_SUSPENDED);
  EXPECT_EQ(after.authorization().status(), Authorization::SUSPENDED);
}

TEST(VerifyTest, BeforeTheAuthorizationTookEffectItHasNoStatus) {
  Practitioner practitioner = StoredPractitioner();
  const std::string granted = DryNeedling(practitioner)->granted_on();
  const VerifyAuthorizationResponse response =
      Verify(&practitioner, kId, physioreg::v1::DRY_NEEDLING, "2016-01-01");
  ASSERT_LT(std::string("2016-01-01"), granted);
  EXPECT_EQ(response.reason(), physioreg::v1::AUTHORIZATION_NOT_YET_EFFECTIVE);
  EXPECT_EQ(response.authorization().status(), Authorization::STATUS_UNSPECIFIED);
}

TEST(VerifyTest, ExpiredPermitSaysWhenItExpired) {
  Practitioner practitioner = StoredPractitioner();
  practitioner.mutable_permit()->set_expires_on("2026-03-31");
  const VerifyAuthorizationResponse response =
      Verify(&practitioner, kId, physioreg::v1::DRY_NEEDLING, "2026-04-01");
  EXPECT_EQ(response.reason(), physioreg::v1::PERMIT_NOT_ACTIVE);
  EXPECT_EQ(response.permit_status(), Permit::INACTIVE);
  EXPECT_EQ(response.permit_expires_on(), "2026-03-31");
}

TEST(VerifyTest, PicksTheAuthorizationForTheAskedActivity) {
  Practitioner practitioner = StoredPractitioner();
  Authorization* acupuncture = practitioner.add_authorizations();
  acupuncture->set_activity(physioreg::v1::ACUPUNCTURE);
  acupuncture->set_granted_on("2020-06-15");
  acupuncture->add_conditions("Supervised");
  SetAuthorizationTimeline(acupuncture, Authorization::SUSPENDED,
                           {{"AUTHORIZED", "2020-06-15"}, {"SUSPENDED", "2026-01-01"}});

  const VerifyAuthorizationResponse dry_needling =
      Verify(&practitioner, kId, physioreg::v1::DRY_NEEDLING, "2026-04-01");
  EXPECT_EQ(dry_needling.reason(), physioreg::v1::AUTHORIZED);
  EXPECT_EQ(dry_needling.authorization().activity(), physioreg::v1::DRY_NEEDLING);

  const VerifyAuthorizationResponse acupuncture_answer =
      Verify(&practitioner, kId, physioreg::v1::ACUPUNCTURE, "2026-04-01");
  EXPECT_EQ(acupuncture_answer.reason(), physioreg::v1::AUTHORIZATION_SUSPENDED);
  EXPECT_EQ(acupuncture_answer.authorization().activity(), physioreg::v1::ACUPUNCTURE);
  EXPECT_THAT(acupuncture_answer.authorization().conditions(), ElementsAre("Supervised"));
}

TEST(VerifyTest, DisplayNameFallsBackToTheGivenName) {
  Practitioner practitioner = StoredPractitioner();
  practitioner.clear_preferred_name();
  const VerifyAuthorizationResponse response =
      Verify(&practitioner, kId, physioreg::v1::DRY_NEEDLING, "2026-04-01");
  EXPECT_EQ(response.display_name(), "Hélène O'Brien-Smith");
}

TEST(VerifyTest, EchoesTheAskedIdAndDate) {
  Practitioner practitioner = StoredPractitioner();
  const VerifyAuthorizationResponse response =
      Verify(&practitioner, "PT-1001", physioreg::v1::DRY_NEEDLING, "2019-04-02");
  EXPECT_EQ(response.registration_id(), "PT-1001");
  EXPECT_EQ(response.as_of(), "2019-04-02");
  EXPECT_EQ(response.register_revision(), 0);  // The caller fills it in.
  EXPECT_FALSE(response.has_attestation());
}

// ---------------------------------------------------------------------------------------------
// StatusOn

TEST(StatusOnTest, EmptyHistoryHasNoStatus) {
  EXPECT_EQ(StatusOn(Timeline({}), "2026-04-01"), std::nullopt);
}

TEST(StatusOnTest, BeforeTheFirstEntryHasNoStatus) {
  EXPECT_EQ(StatusOn(Timeline({{"ACTIVE", "2015-04-01"}}), "2015-03-31"), std::nullopt);
}

TEST(StatusOnTest, TakesEffectOnItsDate) {
  const auto history = Timeline({{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2025-01-10"}});
  EXPECT_EQ(StatusOn(history, "2015-04-01"), std::optional<std::string>("ACTIVE"));
  EXPECT_EQ(StatusOn(history, "2025-01-10"), std::optional<std::string>("SUSPENDED"));
}

TEST(StatusOnTest, BetweenAndAfterEntries) {
  const auto history =
      Timeline({{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2025-01-10"}, {"ACTIVE", "2025-03-01"}});
  EXPECT_EQ(StatusOn(history, "2020-06-30"), std::optional<std::string>("ACTIVE"));
  EXPECT_EQ(StatusOn(history, "2025-02-28"), std::optional<std::string>("SUSPENDED"));
  EXPECT_EQ(StatusOn(history, "2999-12-31"), std::optional<std::string>("ACTIVE"));
}

TEST(StatusOnTest, LaterEntryOfTheSameDayWins) {
  const auto history = Timeline(
      {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2025-01-10"}, {"CANCELLED", "2025-01-10"}});
  EXPECT_EQ(StatusOn(history, "2025-01-10"), std::optional<std::string>("CANCELLED"));
  EXPECT_EQ(StatusOn(history, "2025-01-09"), std::optional<std::string>("ACTIVE"));
}

// ---------------------------------------------------------------------------------------------
// DisplayName and PublicView

TEST(DisplayNameTest, PreferredNameAndFamilyName) {
  EXPECT_EQ(DisplayName(ValidPractitioner()), "Léna O'Brien-Smith");
}

TEST(DisplayNameTest, GivenNameWhenNoPreferredName) {
  Practitioner practitioner = ValidPractitioner();
  practitioner.clear_preferred_name();
  EXPECT_EQ(DisplayName(practitioner), "Hélène O'Brien-Smith");
}

TEST(DisplayNameTest, KeepsUnicodeNames) {
  Practitioner practitioner = ValidPractitioner();
  practitioner.set_given_name("ਗੁਰਪ੍ਰੀਤ");
  practitioner.clear_preferred_name();
  practitioner.set_family_name("Nguyễn");
  EXPECT_EQ(DisplayName(practitioner), "ਗੁਰਪ੍ਰੀਤ Nguyễn");
}

TEST(PublicViewTest, DropsPrivateContact) {
  const Practitioner view = PublicView(StoredPractitioner());
  EXPECT_FALSE(view.has_private_contact());
  EXPECT_EQ(view.SerializeAsString().find("helene.obrien@example.ca"), std::string::npos);
  EXPECT_EQ(view.SerializeAsString().find("403-555-0199"), std::string::npos);
}

TEST(PublicViewTest, KeepsEverythingElse) {
  Practitioner practitioner = StoredPractitioner();
  practitioner.add_conditions("Practice under supervision");
  practitioner.set_revision(42);
  practitioner.mutable_update_time()->set_seconds(1764000000);

  Practitioner expected = practitioner;
  expected.clear_private_contact();
  const Practitioner view = PublicView(practitioner);
  EXPECT_TRUE(MessageDifferencer::Equals(view, expected)) << view.DebugString();
  EXPECT_TRUE(practitioner.has_private_contact()) << "PublicView takes a copy";
}

TEST(PublicViewTest, RecordWithoutPrivateContactIsUnchanged) {
  Practitioner practitioner = StoredPractitioner();
  practitioner.clear_private_contact();
  EXPECT_TRUE(MessageDifferencer::Equals(PublicView(practitioner), practitioner));
}

// Sets every field of `message`, recursively, to a value that is not its default.
void FillEveryField(google::protobuf::Message* message, int depth = 0) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message->GetReflection();
  const google::protobuf::Descriptor* descriptor = message->GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    const std::string text = std::string(field->name()) + "-value";
    if (field->is_repeated()) {
      switch (field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING:
          reflection->AddString(message, field, text);
          break;
        case FieldDescriptor::CPPTYPE_ENUM:
          reflection->AddEnumValue(message, field, 1);
          break;
        case FieldDescriptor::CPPTYPE_MESSAGE:
          if (depth < 4) FillEveryField(reflection->AddMessage(message, field), depth + 1);
          break;
        default:
          FAIL() << "repeated field of an unexpected type: " << field->full_name();
      }
      continue;
    }
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        reflection->SetString(message, field, text);
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        reflection->SetEnumValue(message, field, 1);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        reflection->SetDouble(message, field, 1.5);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        reflection->SetInt64(message, field, 7);
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        reflection->SetInt32(message, field, 7);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        reflection->SetBool(message, field, true);
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        FillEveryField(reflection->MutableMessage(message, field), depth + 1);
        break;
      default:
        FAIL() << "field of an unexpected type: " << field->full_name();
    }
  }
}

// The store keeps a record as its public view plus the private details: whatever the public
// view leaves out must be what the store keeps apart, or a regulator's whole read (exports,
// every write's read-modify-write) would lose it. A field added to Practitioner is covered here.
TEST(PublicViewTest, TheStoredPublicViewAndPrivateDetailsGiveBackTheWholeRecord) {
  Practitioner record;
  FillEveryField(&record);
  const Practitioner view = PublicView(record);
  Practitioner whole;
  ASSERT_TRUE(storage::DecodeRegistrant(storage::EncodeRegistrant(record, view),
                                        storage::Detail::kWithPrivate, &whole)
                  .ok());
  EXPECT_TRUE(MessageDifferencer::Equals(whole, record)) << whole.DebugString();
  Practitioner public_read;
  ASSERT_TRUE(storage::DecodeRegistrant(storage::EncodeRegistrant(record, view),
                                        storage::Detail::kPublic, &public_read)
                  .ok());
  EXPECT_TRUE(MessageDifferencer::Equals(public_read, view));
  EXPECT_FALSE(public_read.has_private_contact());
}

}  // namespace
}  // namespace physioreg::core
