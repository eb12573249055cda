// Tests of physioreg::core::ValidatePractitioner and its helpers. The main table mutates one
// thing of a valid record per row and expects exactly that field path among the violations.
#include "service/core/validation.h"

#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "physioreg/v1/practitioner.pb.h"
#include "tests/support/records.h"

namespace physioreg::core {
namespace {

using ::physioreg::testing::ValidPractitioner;
using ::physioreg::v1::Authorization;
using ::physioreg::v1::Permit;
using ::physioreg::v1::Practitioner;
using ::physioreg::v1::StatusChange;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr absl::string_view kPath = "practitioners[0]";
constexpr absl::string_view kToday = "2026-11-25";

// One {status, effective_on} entry of a timeline.
struct TimelineEntry {
  std::string status;
  std::string effective_on;
};

void SetHistory(google::protobuf::RepeatedPtrField<StatusChange>* history,
                std::initializer_list<TimelineEntry> entries) {
  history->Clear();
  for (const TimelineEntry& entry : entries) {
    StatusChange* change = history->Add();
    change->set_status(entry.status);
    change->set_effective_on(entry.effective_on);
  }
}

Permit* MutablePermit(Practitioner& p) { return p.mutable_permit(); }
Authorization* MutableDryNeedling(Practitioner& p) { return p.mutable_authorizations(0); }

// The violations of `p` validated at kPath on kToday.
Violations Validate(const Practitioner& p, absl::string_view path = kPath) {
  Violations violations;
  ValidatePractitioner(p, path, kToday, &violations);
  return violations;
}

std::vector<std::string> FieldsOf(const Violations& violations) {
  std::vector<std::string> fields;
  for (const auto& violation : violations.bad_request().field_violations()) {
    fields.push_back(violation.field());
  }
  return fields;
}

std::string Describe(const Violations& violations) {
  return absl::StrJoin(violations.bad_request().field_violations(), "\n",
                       [](std::string* out, const google::rpc::BadRequest::FieldViolation& v) {
                         absl::StrAppend(out, "  ", v.field(), ": ", v.description());
                       });
}

std::string Repeat(absl::string_view unit, int times) {
  std::string text;
  for (int i = 0; i < times; ++i) absl::StrAppend(&text, unit);
  return text;
}

// ---------------------------------------------------------------------------------------------
// Bad records: one row per fault.

struct BadRecordCase {
  std::string name;
  std::function<void(Practitioner&)> mutate;
  // The full path that must be among the violations.
  std::string field;
  // Whether `field` must be the only violation (false for rows that break several rules).
  bool single_fault = true;
};

void PrintTo(const BadRecordCase& row, std::ostream* os) { *os << row.name; }

std::string P(absl::string_view suffix) { return absl::StrCat(kPath, ".", suffix); }

std::vector<BadRecordCase> BadRecordCases() {
  const double kNaN = std::numeric_limits<double>::quiet_NaN();
  return {
      // registration_id
      {"RegistrationIdEmpty", [](Practitioner& p) { p.set_registration_id(""); },
       P("registration_id")},
      {"RegistrationIdTooLong",
       [](Practitioner& p) { p.set_registration_id(std::string(33, 'A')); }, P("registration_id")},
      {"RegistrationIdUnderscore", [](Practitioner& p) { p.set_registration_id("PT_1"); },
       P("registration_id")},
      {"RegistrationIdSpace", [](Practitioner& p) { p.set_registration_id("PT 1"); },
       P("registration_id")},
      {"RegistrationIdNonAscii", [](Practitioner& p) { p.set_registration_id("PT-1é"); },
       P("registration_id")},
      // Names
      {"GivenNameEmpty", [](Practitioner& p) { p.set_given_name(""); }, P("given_name")},
      {"GivenNameBlank", [](Practitioner& p) { p.set_given_name(" \t "); }, P("given_name")},
      {"FamilyNameBlank", [](Practitioner& p) { p.set_family_name("  "); }, P("family_name")},
      {"GivenNameTooLong", [](Practitioner& p) { p.set_given_name(std::string(201, 'a')); },
       P("given_name")},
      {"GivenNameBadContinuationByte", [](Practitioner& p) { p.set_given_name("\xC3\x28"); },
       P("given_name")},
      {"GivenNameOverlongSlash", [](Practitioner& p) { p.set_given_name("\xC0\xAF"); },
       P("given_name")},
      {"GivenNameSurrogate", [](Practitioner& p) { p.set_given_name("\xED\xA0\x80"); },
       P("given_name")},
      {"GivenNameTruncatedSequence", [](Practitioner& p) { p.set_given_name("\xE2\x82"); },
       P("given_name")},
      // Characters that reach terminals and CSV files: controls, bidi overrides, nothing visible.
      {"GivenNameLineBreak", [](Practitioner& p) { p.set_given_name("Ann\nDrop"); },
       P("given_name")},
      {"GivenNameEscape", [](Practitioner& p) { p.set_given_name("Ann\x1b[31m"); },
       P("given_name")},
      {"GivenNameC1Control", [](Practitioner& p) { p.set_given_name("Ann\xC2\x85"); },
       P("given_name")},
      {"FamilyNameRightToLeftOverride",
       [](Practitioner& p) { p.set_family_name("Smith\xE2\x80\xAEtxt.exe"); }, P("family_name")},
      {"FamilyNameIsolate", [](Practitioner& p) { p.set_family_name("\xE2\x81\xA6Smith"); },
       P("family_name")},
      {"GivenNameZeroWidthOnly",
       [](Practitioner& p) { p.set_given_name("\xE2\x80\x8B\xE2\x80\x8B"); }, P("given_name")},
      {"GivenNameZeroWidthSpaceInside",
       [](Practitioner& p) {
         p.set_given_name(
             "Qu\xE2\x80\x8B"
             "entin");
       },
       P("given_name")},
      {"FamilyNameSoftHyphenInside", [](Practitioner& p) { p.set_family_name("Tre\xC2\xADmblay"); },
       P("family_name")},
      {"ConditionByteOrderMark", [](Practitioner& p) { p.add_conditions("\xEF\xBB\xBFNote"); },
       P("conditions[0]")},
      {"GivenNameHangulFillerOnly", [](Practitioner& p) { p.set_given_name("\xE3\x85\xA4"); },
       P("given_name")},
      {"GivenNameNoBreakSpacesOnly", [](Practitioner& p) { p.set_given_name("\xC2\xA0 \xC2\xA0"); },
       P("given_name")},
      {"ConditionTab", [](Practitioner& p) { p.add_conditions("No\tneedling"); },
       P("conditions[0]")},
      {"ReasonLineBreak",
       [](Practitioner& p) {
         SetHistory(MutablePermit(p)->mutable_status_history(), {{"ACTIVE", "2015-04-01"}});
         MutablePermit(p)->mutable_status_history(0)->set_reason("line one\nline two");
       },
       P("permit.status_history[0].reason")},
      {"RegisteredInTheFuture",
       [](Practitioner& p) { MutablePermit(p)->set_registered_on("2026-11-26"); },
       P("permit.registered_on"), false},
      {"GrantedInTheFuture",
       [](Practitioner& p) { MutableDryNeedling(p)->set_granted_on("2026-11-26"); },
       P("authorizations[0].granted_on")},
      {"GrantedBeforeRegistration",
       [](Practitioner& p) { MutableDryNeedling(p)->set_granted_on("2015-03-31"); },
       P("authorizations[0].granted_on")},
      {"TrainingCompletedInTheFuture",
       [](Practitioner& p) {
         MutableDryNeedling(p)->mutable_training(0)->set_completed_on("2027-01-01");
       },
       P("authorizations[0].training[0].completed_on")},
      {"FamilyNameEmpty", [](Practitioner& p) { p.set_family_name(""); }, P("family_name")},
      // 101 two-byte letters: 101 characters but 202 bytes.
      {"FamilyNameTooManyBytes", [](Practitioner& p) { p.set_family_name(Repeat("é", 101)); },
       P("family_name")},
      {"FamilyNameInvalidUtf8Inside",
       [](Practitioner& p) {
         p.set_family_name(
             "O\xC3\x28"
             "Brien");
       },
       P("family_name")},
      {"FamilyNameTruncatedAtEnd", [](Practitioner& p) { p.set_family_name("Smith\xF0\x9F\x98"); },
       P("family_name")},
      {"PreferredNameTooLong", [](Practitioner& p) { p.set_preferred_name(std::string(201, 'b')); },
       P("preferred_name")},
      {"PreferredNameInvalidUtf8", [](Practitioner& p) { p.set_preferred_name("L\xFF"); },
       P("preferred_name")},
      {"FormerNameEmpty", [](Practitioner& p) { p.add_former_names(""); }, P("former_names[1]")},
      {"FormerNameInvalidUtf8", [](Practitioner& p) { p.set_former_names(0, "\xC0\xAF"); },
       P("former_names[0]")},
      // Permit
      {"PermitMissing", [](Practitioner& p) { p.clear_permit(); }, P("permit")},
      {"RegisterUnspecified",
       [](Practitioner& p) {
         MutablePermit(p)->set_register_(physioreg::v1::REGISTER_UNSPECIFIED);
       },
       P("permit.register")},
      {"RegisterOutOfRange",
       [](Practitioner& p) {
         MutablePermit(p)->set_register_(static_cast<physioreg::v1::Register>(99));
       },
       P("permit.register")},
      {"PermitStatusUnspecified",
       [](Practitioner& p) { MutablePermit(p)->set_status(Permit::STATUS_UNSPECIFIED); },
       P("permit.status")},
      {"PermitStatusOutOfRange",
       [](Practitioner& p) { MutablePermit(p)->set_status(static_cast<Permit::Status>(99)); },
       P("permit.status")},
      {"RegisteredOnMissing", [](Practitioner& p) { MutablePermit(p)->clear_registered_on(); },
       P("permit.registered_on")},
      {"RegisteredOnFebruary30",
       [](Practitioner& p) { MutablePermit(p)->set_registered_on("2026-02-30"); },
       P("permit.registered_on")},
      {"RegisteredOnUnpadded",
       [](Practitioner& p) { MutablePermit(p)->set_registered_on("2026-2-3"); },
       P("permit.registered_on")},
      {"RegisteredOnBasicFormat",
       [](Practitioner& p) { MutablePermit(p)->set_registered_on("20260203"); },
       P("permit.registered_on")},
      {"RegisteredOnLeadingSpace",
       [](Practitioner& p) { MutablePermit(p)->set_registered_on(" 2026-02-03"); },
       P("permit.registered_on")},
      {"RegisteredOnWithTime",
       [](Practitioner& p) { MutablePermit(p)->set_registered_on("2015-04-01T00:00:00Z"); },
       P("permit.registered_on")},
      {"PermitExpiresOnNotADate",
       [](Practitioner& p) { MutablePermit(p)->set_expires_on("2027-04-31"); },
       P("permit.expires_on")},
      {"PermitExpiresBeforeRegistered",
       [](Practitioner& p) { MutablePermit(p)->set_expires_on("2015-03-31"); },
       P("permit.expires_on")},
      // Authorizations
      {"ActivityUnspecified",
       [](Practitioner& p) {
         MutableDryNeedling(p)->set_activity(physioreg::v1::RESTRICTED_ACTIVITY_UNSPECIFIED);
         MutableDryNeedling(p)->clear_techniques();
       },
       P("authorizations[0].activity")},
      {"ActivityOutOfRange",
       [](Practitioner& p) {
         MutableDryNeedling(p)->set_activity(static_cast<physioreg::v1::RestrictedActivity>(99));
         MutableDryNeedling(p)->clear_techniques();
       },
       P("authorizations[0].activity")},
      {"AuthorizationStatusUnspecified",
       [](Practitioner& p) {
         MutableDryNeedling(p)->set_status(Authorization::STATUS_UNSPECIFIED);
       },
       P("authorizations[0].status")},
      {"AuthorizationStatusOutOfRange",
       [](Practitioner& p) {
         MutableDryNeedling(p)->set_status(static_cast<Authorization::Status>(42));
       },
       P("authorizations[0].status")},
      {"TechniqueOnAcupuncture",
       [](Practitioner& p) { MutableDryNeedling(p)->set_activity(physioreg::v1::ACUPUNCTURE); },
       P("authorizations[0].techniques[0]")},
      {"TechniqueUnspecified",
       [](Practitioner& p) {
         MutableDryNeedling(p)->add_techniques(physioreg::v1::TECHNIQUE_UNSPECIFIED);
       },
       P("authorizations[0].techniques[1]")},
      {"GrantedOnNotADate",
       [](Practitioner& p) { MutableDryNeedling(p)->set_granted_on("2019-04-31"); },
       P("authorizations[0].granted_on")},
      {"AuthorizationExpiresBeforeGranted",
       [](Practitioner& p) { MutableDryNeedling(p)->set_expires_on("2019-04-01"); },
       P("authorizations[0].expires_on")},
      {"ProvisionalWithDryNeedling",
       [](Practitioner& p) { MutablePermit(p)->set_register_(physioreg::v1::PROVISIONAL); },
       P("authorizations[0].activity")},
      {"ProvisionalWithSpinalManipulation",
       [](Practitioner& p) {
         MutablePermit(p)->set_register_(physioreg::v1::PROVISIONAL);
         MutableDryNeedling(p)->set_activity(physioreg::v1::SPINAL_MANIPULATION);
         MutableDryNeedling(p)->clear_techniques();
       },
       P("authorizations[0].activity")},
      {"DuplicateActivity", [](Practitioner& p) { *p.add_authorizations() = p.authorizations(0); },
       P("authorizations[1].activity")},
      {"TrainingHoursNegative",
       [](Practitioner& p) { MutableDryNeedling(p)->mutable_training(0)->set_hours(-1); },
       P("authorizations[0].training[0].hours")},
      {"TrainingHoursNaN",
       [kNaN](Practitioner& p) { MutableDryNeedling(p)->mutable_training(0)->set_hours(kNaN); },
       P("authorizations[0].training[0].hours")},
      {"TrainingHoursInfinite",
       [](Practitioner& p) {
         MutableDryNeedling(p)->mutable_training(0)->set_hours(
             std::numeric_limits<double>::infinity());
       },
       P("authorizations[0].training[0].hours")},
      {"TrainingProviderEmpty",
       [](Practitioner& p) { MutableDryNeedling(p)->mutable_training(0)->clear_provider(); },
       P("authorizations[0].training[0].provider")},
      {"TrainingCompletedOnNotADate",
       [](Practitioner& p) {
         MutableDryNeedling(p)->mutable_training(0)->set_completed_on("2019-1-15");
       },
       P("authorizations[0].training[0].completed_on")},
      {"AuthorizationConditionTooLong",
       [](Practitioner& p) { MutableDryNeedling(p)->set_conditions(0, std::string(1001, 'c')); },
       P("authorizations[0].conditions[0]")},
      // Locations, languages, conditions, private contact
      {"LatitudeAbove90", [](Practitioner& p) { p.mutable_locations(0)->set_latitude(91); },
       P("locations[0].latitude")},
      {"LongitudeBelowMinus180",
       [](Practitioner& p) { p.mutable_locations(0)->set_longitude(-181); },
       P("locations[0].longitude")},
      {"LatitudeNaN", [kNaN](Practitioner& p) { p.mutable_locations(0)->set_latitude(kNaN); },
       P("locations[0].latitude")},
      {"LongitudeNaN", [kNaN](Practitioner& p) { p.mutable_locations(0)->set_longitude(kNaN); },
       P("locations[0].longitude")},
      {"TooManyLanguages",
       [](Practitioner& p) {
         while (p.languages_size() < 51)
           p.add_languages(absl::StrCat("Language ", p.languages_size()));
       },
       P("languages")},
      {"LanguageEmpty", [](Practitioner& p) { p.add_languages(""); }, P("languages[2]")},
      {"ConditionTooLong", [](Practitioner& p) { p.add_conditions(std::string(1001, 'x')); },
       P("conditions[0]")},
      {"EmailWithoutAt",
       [](Practitioner& p) { p.mutable_private_contact()->set_email("helene.example.ca"); },
       P("private_contact.email")},
      // Permit status_history
      {"PermitHistoryUnknownStatus",
       [](Practitioner& p) {
         SetHistory(MutablePermit(p)->mutable_status_history(),
                    {{"ACTIVATED", "2015-04-01"}, {"ACTIVE", "2020-01-01"}});
       },
       P("permit.status_history[0].status")},
      {"PermitHistoryLowerCaseStatus",
       [](Practitioner& p) {
         SetHistory(MutablePermit(p)->mutable_status_history(),
                    {{"active", "2015-04-01"}, {"ACTIVE", "2020-01-01"}});
       },
       P("permit.status_history[0].status")},
      {"PermitHistoryUnspecifiedStatus",
       [](Practitioner& p) {
         SetHistory(MutablePermit(p)->mutable_status_history(),
                    {{"STATUS_UNSPECIFIED", "2015-04-01"}, {"ACTIVE", "2020-01-01"}});
       },
       P("permit.status_history[0].status")},
      {"PermitHistoryDateNotReal",
       [](Practitioner& p) {
         SetHistory(
             MutablePermit(p)->mutable_status_history(),
             {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2021-02-29"}, {"ACTIVE", "2022-01-01"}});
       },
       P("permit.status_history[1].effective_on")},
      {"PermitHistoryDateMissing",
       [](Practitioner& p) {
         SetHistory(MutablePermit(p)->mutable_status_history(), {{"ACTIVE", ""}});
       },
       P("permit.status_history[0].effective_on")},
      {"PermitHistoryOutOfOrder",
       [](Practitioner& p) {
         SetHistory(
             MutablePermit(p)->mutable_status_history(),
             {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2025-01-10"}, {"ACTIVE", "2024-03-01"}});
       },
       P("permit.status_history[2].effective_on")},
      {"PermitHistoryInFuture",
       [](Practitioner& p) {
         SetHistory(
             MutablePermit(p)->mutable_status_history(),
             {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2026-01-10"}, {"ACTIVE", "2027-01-01"}});
       },
       P("permit.status_history[2].effective_on")},
      {"PermitHistoryTomorrow",
       [](Practitioner& p) {
         SetHistory(
             MutablePermit(p)->mutable_status_history(),
             {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2026-01-10"}, {"ACTIVE", "2026-11-26"}});
       },
       P("permit.status_history[2].effective_on")},
      {"PermitHistoryLastNotCurrent",
       [](Practitioner& p) {
         SetHistory(MutablePermit(p)->mutable_status_history(),
                    {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2025-01-10"}});
       },
       P("permit.status_history[1].status")},
      {"PermitHistoryBeforeRegisteredOn",
       [](Practitioner& p) {
         SetHistory(MutablePermit(p)->mutable_status_history(), {{"ACTIVE", "2015-03-31"}});
       },
       P("permit.status_history[0].effective_on")},
      // Authorization status_history
      {"AuthorizationHistoryPermitStatusName",
       [](Practitioner& p) {
         SetHistory(MutableDryNeedling(p)->mutable_status_history(),
                    {{"ACTIVE", "2019-04-02"}, {"AUTHORIZED", "2020-01-01"}});
       },
       P("authorizations[0].status_history[0].status")},
      {"AuthorizationHistoryDateNotReal",
       [](Practitioner& p) {
         SetHistory(MutableDryNeedling(p)->mutable_status_history(), {{"AUTHORIZED", "2019-4-2"}});
       },
       P("authorizations[0].status_history[0].effective_on")},
      {"AuthorizationHistoryOutOfOrder",
       [](Practitioner& p) {
         SetHistory(MutableDryNeedling(p)->mutable_status_history(),
                    {{"AUTHORIZED", "2019-04-02"},
                     {"SUSPENDED", "2024-02-10"},
                     {"AUTHORIZED", "2024-02-09"}});
       },
       P("authorizations[0].status_history[2].effective_on")},
      {"AuthorizationHistoryInFuture",
       [](Practitioner& p) {
         SetHistory(MutableDryNeedling(p)->mutable_status_history(),
                    {{"AUTHORIZED", "2019-04-02"},
                     {"SUSPENDED", "2024-02-10"},
                     {"AUTHORIZED", "2027-01-01"}});
       },
       P("authorizations[0].status_history[2].effective_on")},
      {"AuthorizationHistoryLastNotCurrent",
       [](Practitioner& p) {
         SetHistory(MutableDryNeedling(p)->mutable_status_history(), {{"AUTHORIZED", "2019-04-02"},
                                                                      {"SUSPENDED", "2024-02-10"},
                                                                      {"REVOKED", "2024-08-01"}});
       },
       P("authorizations[0].status_history[2].status")},
      {"AuthorizationHistoryBeforeGrantedOn",
       [](Practitioner& p) {
         SetHistory(MutableDryNeedling(p)->mutable_status_history(),
                    {{"AUTHORIZED", "2019-04-01"}});
       },
       P("authorizations[0].status_history[0].effective_on")},
      {"AuthorizationHistoryReasonInvalidUtf8",
       [](Practitioner& p) {
         SetHistory(MutableDryNeedling(p)->mutable_status_history(),
                    {{"AUTHORIZED", "2019-04-02"}});
         MutableDryNeedling(p)->mutable_status_history(0)->set_reason("\xED\xBF\xBF");
       },
       P("authorizations[0].status_history[0].reason")},
      // Rows that break several rules: the expected path is among the violations.
      {"PermitHistoryUnknownLastStatus",
       [](Practitioner& p) {
         SetHistory(MutablePermit(p)->mutable_status_history(), {{"ACTIVATED", "2015-04-01"}});
       },
       P("permit.status_history[0].status"), /*single_fault=*/false},
      {"ProvisionalWithDuplicateDryNeedling",
       [](Practitioner& p) {
         MutablePermit(p)->set_register_(physioreg::v1::PROVISIONAL);
         *p.add_authorizations() = p.authorizations(0);
       },
       P("authorizations[1].activity"), /*single_fault=*/false},
      {"EverythingMissing", [](Practitioner& p) { p = Practitioner(); }, P("family_name"),
       /*single_fault=*/false},
  };
}

class ValidationBadRecordTest : public ::testing::TestWithParam<BadRecordCase> {};

TEST_P(ValidationBadRecordTest, ReportsTheFieldPath) {
  const BadRecordCase& row = GetParam();
  Practitioner practitioner = ValidPractitioner();
  row.mutate(practitioner);

  const Violations violations = Validate(practitioner);
  const std::vector<std::string> fields = FieldsOf(violations);
  if (row.single_fault) {
    EXPECT_THAT(fields, ElementsAre(row.field)) << "violations:\n" << Describe(violations);
  } else {
    EXPECT_THAT(fields, Contains(row.field)) << "violations:\n" << Describe(violations);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ValidationBadRecordTest, ::testing::ValuesIn(BadRecordCases()),
                         [](const ::testing::TestParamInfo<BadRecordCase>& row_info) {
                           return row_info.param.name;
                         });

// ---------------------------------------------------------------------------------------------
// Valid records: no violations.

struct ValidRecordCase {
  std::string name;
  std::function<void(Practitioner&)> mutate;
};

void PrintTo(const ValidRecordCase& row, std::ostream* os) { *os << row.name; }

std::vector<ValidRecordCase> ValidRecordCases() {
  return {
      {"ValidPractitionerAsIs", [](Practitioner&) {}},
      {"UploadedAuthorizationHistory",
       [](Practitioner& p) {
         SetHistory(MutableDryNeedling(p)->mutable_status_history(),
                    {{"AUTHORIZED", "2019-04-02"},
                     {"SUSPENDED", "2024-02-10"},
                     {"AUTHORIZED", "2024-08-01"}});
       }},
      {"UploadedPermitHistory",
       [](Practitioner& p) {
         SetHistory(
             MutablePermit(p)->mutable_status_history(),
             {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2025-01-10"}, {"ACTIVE", "2025-03-01"}});
       }},
      {"HistoryEntryEffectiveToday",
       [](Practitioner& p) {
         MutablePermit(p)->set_status(Permit::SUSPENDED);
         SetHistory(MutablePermit(p)->mutable_status_history(),
                    {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2026-11-25"}});
       }},
      {"HistoryEntriesOnTheSameDay",
       [](Practitioner& p) {
         SetHistory(
             MutablePermit(p)->mutable_status_history(),
             {{"ACTIVE", "2015-04-01"}, {"SUSPENDED", "2025-01-10"}, {"ACTIVE", "2025-01-10"}});
       }},
      {"HistoryStartingAfterRegisteredOn",
       [](Practitioner& p) {
         SetHistory(MutablePermit(p)->mutable_status_history(), {{"ACTIVE", "2016-01-01"}});
       }},
      {"ChineseName",
       [](Practitioner& p) {
         p.set_given_name("李");
         p.set_family_name("王");
         p.clear_preferred_name();
       }},
      {"GurmukhiName",
       [](Practitioner& p) {
         p.set_given_name("ਗੁਰਪ੍ਰੀਤ");
         p.set_family_name("ਸਿੰਘ");
       }},
      {"VietnameseName",
       [](Practitioner& p) {
         p.set_given_name("Thị Minh");
         p.set_family_name("Nguyễn");
       }},
      {"NameOutsideTheBasicPlane", [](Practitioner& p) { p.set_family_name("𠮷野"); }},
      {"NamesOfExactly200Bytes",
       [](Practitioner& p) {
         p.set_given_name(std::string(200, 'a'));
         p.set_family_name(Repeat("é", 100));
         p.set_preferred_name(std::string(200, 'c'));
       }},
      {"RegistrationIdOf32LowerCaseCharacters",
       [](Practitioner& p) { p.set_registration_id("pt-" + std::string(29, 'x')); }},
      {"MinimalRecord",
       [](Practitioner& p) {
         p.clear_preferred_name();
         p.clear_former_names();
         MutablePermit(p)->clear_expires_on();
         p.clear_authorizations();
         p.clear_locations();
         p.clear_languages();
         p.clear_private_contact();
       }},
      {"ProvisionalWithAcupuncture",
       [](Practitioner& p) {
         MutablePermit(p)->set_register_(physioreg::v1::PROVISIONAL);
         MutableDryNeedling(p)->set_activity(physioreg::v1::ACUPUNCTURE);
         MutableDryNeedling(p)->clear_techniques();
       }},
      {"CourtesyWithDryNeedling",
       [](Practitioner& p) { MutablePermit(p)->set_register_(physioreg::v1::COURTESY); }},
      {"AuthorizationExpiringOnItsGrantDay",
       [](Practitioner& p) { MutableDryNeedling(p)->set_expires_on("2019-04-02"); }},
      {"LeapDay", [](Practitioner& p) { MutablePermit(p)->set_registered_on("2016-02-29"); }},
      {"CoordinatesAtTheirLimits",
       [](Practitioner& p) {
         p.mutable_locations(0)->set_latitude(-90);
         p.mutable_locations(0)->set_longitude(180);
         *p.add_locations() = p.locations(0);
         p.mutable_locations(1)->set_latitude(90);
         p.mutable_locations(1)->set_longitude(-180);
       }},
      {"FiftyLanguages",
       [](Practitioner& p) {
         while (p.languages_size() < 50)
           p.add_languages(absl::StrCat("Language ", p.languages_size()));
       }},
      {"ConditionOf1000Bytes", [](Practitioner& p) { p.add_conditions(std::string(1000, 'x')); }},
      {"ZeroTrainingHours",
       [](Practitioner& p) { MutableDryNeedling(p)->mutable_training(0)->set_hours(0); }},
  };
}

class ValidationValidRecordTest : public ::testing::TestWithParam<ValidRecordCase> {};

TEST_P(ValidationValidRecordTest, HasNoViolations) {
  Practitioner practitioner = ValidPractitioner();
  GetParam().mutate(practitioner);
  const Violations violations = Validate(practitioner);
  EXPECT_TRUE(violations.empty()) << "violations:\n" << Describe(violations);
}

INSTANTIATE_TEST_SUITE_P(Table, ValidationValidRecordTest, ::testing::ValuesIn(ValidRecordCases()),
                         [](const ::testing::TestParamInfo<ValidRecordCase>& row_info) {
                           return row_info.param.name;
                         });

// ---------------------------------------------------------------------------------------------
// Paths and helpers.

TEST(ValidationPathTest, PrefixesEveryFieldWithThePath) {
  Practitioner practitioner = ValidPractitioner();
  practitioner.mutable_authorizations(0)->set_granted_on("2019-02-30");
  EXPECT_THAT(FieldsOf(Validate(practitioner, "practitioners[7]")),
              ElementsAre("practitioners[7].authorizations[0].granted_on"));
}

TEST(ValidationPathTest, EmptyPathGivesBareFieldNames) {
  Practitioner practitioner = ValidPractitioner();
  practitioner.set_registration_id("PT_1");
  practitioner.mutable_permit()->set_registered_on("2015-4-1");
  EXPECT_THAT(FieldsOf(Validate(practitioner, "")),
              ElementsAre("registration_id", "permit.registered_on"));
}

TEST(ValidationPathTest, ReportsEveryFaultOfARecord) {
  Practitioner practitioner = ValidPractitioner();
  practitioner.set_given_name("");
  practitioner.mutable_permit()->set_status(Permit::STATUS_UNSPECIFIED);
  practitioner.mutable_locations(0)->set_latitude(-91);
  EXPECT_THAT(FieldsOf(Validate(practitioner)),
              ElementsAre(P("given_name"), P("permit.status"), P("locations[0].latitude")));
}

TEST(ValidateRegistrationIdTest, RequiredAndWellFormed) {
  Violations violations;
  ValidateRegistrationId("PT-1001", "id", &violations);
  EXPECT_TRUE(violations.empty());
  ValidateRegistrationId("", "empty", &violations);
  ValidateRegistrationId("PT/1", "slash", &violations);
  EXPECT_THAT(FieldsOf(violations), ElementsAre("empty", "slash"));
}

TEST(ValidateTextTest, OptionalButBoundedAndUtf8) {
  Violations violations;
  ValidateText("", "empty", 5, &violations);
  ValidateText("abcde", "at_limit", 5, &violations);
  ValidateText("abcdef", "over_limit", 5, &violations);
  ValidateText("a\xC3\x28", "bad_utf8", 5, &violations);
  EXPECT_THAT(FieldsOf(violations), ElementsAre("over_limit", "bad_utf8"));
}

TEST(ValidatePastDateTest, RealDateNotAfterToday) {
  Violations violations;
  ValidatePastDate("", "empty", kToday, &violations);
  ValidatePastDate("2026-11-25", "today", kToday, &violations);
  ValidatePastDate("2019-04-02", "past", kToday, &violations);
  ValidatePastDate("2026-11-26", "tomorrow", kToday, &violations);
  ValidatePastDate("2026-11-31", "not_real", kToday, &violations);
  EXPECT_THAT(FieldsOf(violations), ElementsAre("tomorrow", "not_real"));
}

TEST(NormalizeRegistrationIdTest, UpperCasesWellFormedIds) {
  EXPECT_EQ(NormalizeRegistrationId("pt-12"), std::optional<std::string>("PT-12"));
  EXPECT_EQ(NormalizeRegistrationId("PT-1001"), std::optional<std::string>("PT-1001"));
  EXPECT_EQ(NormalizeRegistrationId("a"), std::optional<std::string>("A"));
  EXPECT_EQ(NormalizeRegistrationId(std::string(32, 'z')),
            std::optional<std::string>(std::string(32, 'Z')));
}

TEST(NormalizeRegistrationIdTest, RejectsMalformedIds) {
  for (const std::string& id :
       {std::string(""), std::string(33, 'A'), std::string("PT_1"), std::string("PT 1"),
        std::string("PT-1é"), std::string(" PT-1"), std::string("PT-1\n"),
        std::string("PT\0"
                    "1",
                    4)}) {
    EXPECT_EQ(NormalizeRegistrationId(id), std::nullopt) << "id: '" << id << "'";
  }
}

TEST(IsValidUtf8Test, AcceptsWellFormedText) {
  for (const std::string& text :
       {std::string(""), std::string("O'Brien-Smith"), std::string("Hélène"), std::string("€"),
        std::string("\xF0\x9F\x98\x80"), std::string("李 ਗੁਰਪ੍ਰੀਤ Nguyễn"),
        std::string("\xF4\x8F\xBF\xBF"), std::string("\xEF\xBF\xBF"),
        std::string("nul\0inside", 10)}) {
    EXPECT_TRUE(IsValidUtf8(text)) << "text: '" << text << "'";
  }
}

TEST(IsValidUtf8Test, RejectsMalformedText) {
  for (const std::string& text : {
           std::string("\xC3\x28"),              // Continuation byte missing.
           std::string("\xC0\xAF"),              // Overlong '/'.
           std::string("\xE0\x80\xAF"),          // Overlong '/' in three bytes.
           std::string("\xF0\x80\x80\xAF"),      // Overlong '/' in four bytes.
           std::string("\xED\xA0\x80"),          // High surrogate U+D800.
           std::string("\xED\xBF\xBF"),          // Low surrogate U+DFFF.
           std::string("\xE2\x82"),              // Truncated euro sign.
           std::string("ok\xF0\x9F\x98"),        // Truncated emoji at the end.
           std::string("\x80"),                  // Lone continuation byte.
           std::string("\xFF"),                  // Never in UTF-8.
           std::string("\xF4\x90\x80\x80"),      // Past U+10FFFF.
           std::string("\xF8\x88\x80\x80\x80"),  // Five-byte form.
       }) {
    EXPECT_FALSE(IsValidUtf8(text)) << "text bytes: " << text.size();
  }
}

TEST(ValidateTextTest, AcceptsLettersOfEveryScriptAndJoiners) {
  Violations violations;
  ValidateText("Hélène O'Brien-Smith", "a", 200, &violations);
  ValidateText("ਗੁਰਪ੍ਰੀਤ", "b", 200, &violations);
  ValidateText("Νίκος Παπαδόπουλος", "c", 200, &violations);
  ValidateText("क्‍ष", "d", 200, &violations);  // A zero-width joiner inside a word.
  EXPECT_TRUE(violations.empty()) << violations.ToStatus();
}

// Plain ASCII takes a shortcut: it must give the same answers as the character-by-character
// check, wherever the character that matters is.
TEST(ValidateTextTest, AsciiValuesGetTheSameAnswersAsAnyOther) {
  for (size_t at = 0; at < 20; ++at) {
    const std::string before(at, 'a');
    const std::string after(19 - at, 'b');
    auto message_for = [](const std::string& text) {
      Violations v;
      ValidateText(text, "f", 200, &v);
      return v.empty() ? std::string() : std::string(v.ToStatus().message());
    };
    EXPECT_EQ(message_for(before + "x" + after), "") << at;
    EXPECT_EQ(message_for(before + "~ " + after), "") << at;
    for (const char control : {'\0', '\t', '\n', '\x1f', '\x7f'}) {
      const std::string text = before + std::string(1, control) + after;
      EXPECT_THAT(message_for(text), ::testing::HasSubstr("control character")) << at;
      EXPECT_THAT(message_for(text), ::testing::HasSubstr(absl::StrCat("at byte ", at))) << at;
    }
    EXPECT_THAT(message_for(before + "\xE9" + after), ::testing::HasSubstr("not valid UTF-8"));
    EXPECT_EQ(message_for(before + "\xC3\xA9" + after), "") << at;
    EXPECT_THAT(message_for(std::string(at + 1, ' ')), ::testing::HasSubstr("must not be blank"));
  }
}

TEST(QuoteTest, ShortPrefixWithControlsEscaped) {
  EXPECT_EQ(Quote("2026-13-01"), "'2026-13-01'");
  const std::string quoted = Quote(std::string(100'000, 'x'));
  EXPECT_LE(quoted.size(), kMaxQuotedBytes + 5);
  EXPECT_TRUE(absl::EndsWith(quoted, "...'"));
  EXPECT_EQ(Quote("a\nb"), "'a\\u{a}b'");
  EXPECT_EQ(Quote("\xE2\x80\xAE"), "'\\u{202e}'");
  EXPECT_EQ(Quote("caf\xE9"), "'caf\\xe9'");
  // Never cuts a character in two.
  const std::string accents = Quote(Repeat("é", 30));
  EXPECT_TRUE(IsValidUtf8(accents));
}

TEST(ViolationsTest, CapsTheListAndCountsTheRest) {
  Violations violations;
  for (int i = 0; i < 100; ++i) violations.Add(absl::StrCat("f", i), "bad");
  EXPECT_EQ(violations.count(), 100);
  ASSERT_EQ(violations.bad_request().field_violations_size(), kMaxReportedViolations + 1);
  EXPECT_EQ(violations.bad_request().field_violations(kMaxReportedViolations).description(),
            "80 more violations not listed");
  const absl::Status status = violations.ToStatus();
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("100 invalid fields"));
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("and 97 more"));
}

TEST(ViolationsTest, EmptyIsOk) {
  Violations violations;
  EXPECT_TRUE(violations.empty());
  EXPECT_TRUE(violations.ToStatus().ok());
}

TEST(ViolationsTest, ToStatusCarriesEveryFieldInABadRequest) {
  Violations violations;
  std::vector<std::string> expected;
  for (int i = 0; i < 7; ++i) {
    expected.push_back(absl::StrCat("practitioners[", i, "].registration_id"));
    violations.Add(expected.back(), absl::StrCat("problem ", i));
  }
  EXPECT_FALSE(violations.empty());

  const absl::Status status = violations.ToStatus();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("practitioners[0]"));

  const absl::optional<absl::Cord> payload = status.GetPayload(kBadRequestTypeUrl);
  ASSERT_TRUE(payload.has_value());
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(bad_request.ParseFromString(std::string(*payload)));
  ASSERT_EQ(bad_request.field_violations_size(), 7);
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(bad_request.field_violations(i).field(), expected[i]);
    EXPECT_EQ(bad_request.field_violations(i).description(), absl::StrCat("problem ", i));
  }
}

TEST(ViolationsTest, ValidationResultRoundTripsThroughTheStatus) {
  Practitioner practitioner = ValidPractitioner();
  practitioner.set_registration_id("");
  practitioner.mutable_authorizations(0)->set_granted_on("2019-04-31");
  const Violations violations = Validate(practitioner);

  const absl::Status status = violations.ToStatus();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const absl::optional<absl::Cord> payload = status.GetPayload(kBadRequestTypeUrl);
  ASSERT_TRUE(payload.has_value());
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(bad_request.ParseFromString(std::string(*payload)));
  std::vector<std::string> fields;
  for (const auto& v : bad_request.field_violations()) fields.push_back(v.field());
  EXPECT_THAT(fields, ElementsAre(P("registration_id"), P("authorizations[0].granted_on")));
  EXPECT_EQ(bad_request.SerializeAsString(), violations.bad_request().SerializeAsString());
}

TEST(ViolationsTest, NoFieldsForAValidRecord) {
  EXPECT_THAT(FieldsOf(Validate(ValidPractitioner())), IsEmpty());
}

}  // namespace
}  // namespace physioreg::core
