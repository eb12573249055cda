#include "service/core/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "service/core/verification.h"
#include "tests/support/bad_request.h"
#include "tests/support/fixed_registry.h"
#include "tests/support/records.h"
#include "tests/support/temp_dir.h"
#include "tools/generator/generator.h"

namespace physioreg::core {
namespace {

using physioreg::testing::TempDir;
using physioreg::testing::ValidPractitioner;
using physioreg::testing::ViolationFields;
using ::testing::Contains;
using ::testing::ElementsAre;
namespace v1 = physioreg::v1;

// A registry over a real RocksDB in a temp dir, with "now" fixed at noon, 2026-11-25, Edmonton.
class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(physioreg::testing::OpenFixedClockRegistry(dir_, &store_, &registry_));
  }

  v1::UpsertPractitionersResponse UpsertOk(std::vector<v1::Practitioner> records,
                                           const std::string& request_id = "") {
    v1::UpsertPractitionersRequest request;
    for (auto& r : records) *request.add_practitioners() = std::move(r);
    request.set_request_id(request_id);
    absl::StatusOr<v1::UpsertPractitionersResponse> response = registry_->Upsert(request, "k1");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::UpsertPractitionersResponse();
  }

  v1::Practitioner Get(const std::string& id) {
    return physioreg::testing::GetOrFail(*registry_, id);
  }

  v1::VerificationReason VerifyReason(const std::string& id, const std::string& as_of) {
    v1::VerifyAuthorizationRequest request;
    request.set_registration_id(id);
    request.set_activity(v1::DRY_NEEDLING);
    request.set_as_of(as_of);
    v1::VerifyAuthorizationResponse r;
    absl::Status verified = registry_->Verify(request, &r);
    EXPECT_TRUE(verified.ok()) << verified;
    return verified.ok() ? r.reason() : v1::VERIFICATION_REASON_UNSPECIFIED;
  }

  TempDir dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(RegistryTest, TodayIsInTheRegistryTimeZone) { EXPECT_EQ(registry_->Today(), "2026-11-25"); }

TEST_F(RegistryTest, UpsertCreatesWithNormalizedIdAndStartedTimelines) {
  v1::Practitioner sent = ValidPractitioner("pt-1001");
  sent.set_revision(999);  // Server-set fields from a client are ignored.
  sent.mutable_update_time()->set_seconds(1);
  v1::UpsertPractitionersResponse response = UpsertOk({sent});
  EXPECT_EQ(response.created(), 1);
  EXPECT_EQ(response.revision(), 1);

  v1::Practitioner stored = Get("Pt-1001");
  EXPECT_EQ(stored.registration_id(), "PT-1001");
  EXPECT_EQ(stored.revision(), 1);
  EXPECT_NE(stored.update_time().seconds(), 1);
  ASSERT_EQ(stored.permit().status_history_size(), 1);
  EXPECT_EQ(stored.permit().status_history(0).status(), "ACTIVE");
  EXPECT_EQ(stored.permit().status_history(0).effective_on(), "2015-04-01");
  ASSERT_EQ(stored.authorizations(0).status_history_size(), 1);
  EXPECT_EQ(stored.authorizations(0).status_history(0).effective_on(), "2019-04-02");
}

TEST_F(RegistryTest, AuthorizationWithoutGrantedOnStartsOnTheUploadDate) {
  v1::Practitioner sent = ValidPractitioner();
  sent.mutable_authorizations(0)->clear_granted_on();
  UpsertOk({sent});
  EXPECT_EQ(Get("PT-1001").authorizations(0).status_history(0).effective_on(), "2026-11-25");
}

TEST_F(RegistryTest, IdenticalRecordIsUnchangedAndAddsNoRevision) {
  UpsertOk({ValidPractitioner("PT-1"), ValidPractitioner("PT-2")});
  v1::UpsertPractitionersResponse again = UpsertOk({ValidPractitioner("PT-1")});
  EXPECT_EQ(again.unchanged(), 1);
  EXPECT_EQ(again.created() + again.updated(), 0);
  EXPECT_EQ(again.revision(), 2);
  EXPECT_EQ(store_->revision(), 2);
}

TEST_F(RegistryTest, ReplayedRequestIdReturnsFirstAnswerAndWritesNothing) {
  v1::UpsertPractitionersResponse first = UpsertOk({ValidPractitioner("PT-1")}, "req-1");
  // Something else changes the record in between: a replay still writes nothing.
  v1::Practitioner other = ValidPractitioner("PT-1");
  other.set_family_name("Between");
  UpsertOk({other});
  v1::UpsertPractitionersResponse replay = UpsertOk({ValidPractitioner("PT-1")}, "req-1");
  EXPECT_EQ(replay.SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(store_->revision(), 2);
  EXPECT_EQ(Get("PT-1").family_name(), "Between");
}

TEST_F(RegistryTest, DifferentRequestUnderAUsedRequestIdIsRefusedAndWritesNothing) {
  UpsertOk({ValidPractitioner("PT-1")}, "req-1");
  v1::Practitioner changed = ValidPractitioner("PT-1");
  changed.set_family_name("Different");
  v1::UpsertPractitionersRequest request;
  *request.add_practitioners() = changed;
  *request.add_practitioners() = ValidPractitioner("PT-9");
  request.set_request_id("req-1");
  absl::StatusOr<v1::UpsertPractitionersResponse> response = registry_->Upsert(request, "k1");
  EXPECT_EQ(response.status().code(), absl::StatusCode::kAlreadyExists) << response.status();
  EXPECT_EQ(store_->revision(), 1);
  EXPECT_EQ(Get("PT-1").family_name(), "O'Brien-Smith");
}

TEST_F(RegistryTest, RequestIdsBelongToTheKeyThatUsedThem) {
  v1::UpsertPractitionersRequest request;
  *request.add_practitioners() = ValidPractitioner("PT-1");
  request.set_request_id("nightly");
  ASSERT_TRUE(registry_->Upsert(request, "k1").ok());
  // Another key's "nightly" is its own request, not a replay of k1's.
  request.mutable_practitioners(0)->set_family_name("Second");
  absl::StatusOr<v1::UpsertPractitionersResponse> other = registry_->Upsert(request, "k2");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->updated(), 1);
  EXPECT_EQ(Get("PT-1").family_name(), "Second");
}

TEST_F(RegistryTest, StatusChangedByUpsertIsAppendedOnTheUploadDate) {
  UpsertOk({ValidPractitioner()});
  v1::Practitioner suspended = ValidPractitioner();
  suspended.mutable_authorizations(0)->set_status(v1::Authorization::SUSPENDED);
  v1::UpsertPractitionersResponse response = UpsertOk({suspended});
  EXPECT_EQ(response.updated(), 1);
  const v1::Practitioner stored = Get("PT-1001");
  const v1::Authorization& a = stored.authorizations(0);
  ASSERT_EQ(a.status_history_size(), 2);
  EXPECT_EQ(a.status_history(1).status(), "SUSPENDED");
  EXPECT_EQ(a.status_history(1).effective_on(), "2026-11-25");
  EXPECT_EQ(VerifyReason("PT-1001", "2026-11-24"), v1::AUTHORIZED);
  EXPECT_EQ(VerifyReason("PT-1001", ""), v1::AUTHORIZATION_SUSPENDED);
}

TEST_F(RegistryTest, UploadedHistoryIsKept) {
  v1::Practitioner migrated = ValidPractitioner();
  auto* history = migrated.mutable_authorizations(0)->mutable_status_history();
  for (auto [status, on] : {std::pair{"AUTHORIZED", "2019-04-02"},
                            {"SUSPENDED", "2024-02-10"},
                            {"AUTHORIZED", "2024-08-01"}}) {
    auto* change = history->Add();
    change->set_status(status);
    change->set_effective_on(on);
  }
  UpsertOk({migrated});
  EXPECT_EQ(Get("PT-1001").authorizations(0).status_history_size(), 3);
  EXPECT_EQ(VerifyReason("PT-1001", "2024-03-01"), v1::AUTHORIZATION_SUSPENDED);
  EXPECT_EQ(VerifyReason("PT-1001", "2024-08-01"), v1::AUTHORIZED);
}

TEST_F(RegistryTest, BadRecordRejectsTheWholeRequestWithFieldPaths) {
  UpsertOk({ValidPractitioner("PT-1")});
  v1::Practitioner bad = ValidPractitioner("PT-3");
  bad.mutable_authorizations(0)->set_granted_on("2026-02-30");
  v1::Practitioner renamed = ValidPractitioner("PT-1");
  renamed.set_family_name("Renamed");
  v1::UpsertPractitionersRequest request;
  *request.add_practitioners() = ValidPractitioner("PT-2");
  *request.add_practitioners() = renamed;
  *request.add_practitioners() = bad;
  absl::StatusOr<v1::UpsertPractitionersResponse> response = registry_->Upsert(request, "k1");
  ASSERT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(response.status()),
              ElementsAre("practitioners[2].authorizations[0].granted_on"));
  // Nothing written: revision, the valid new record and the valid update all untouched.
  EXPECT_EQ(store_->revision(), 1);
  EXPECT_EQ(Get("PT-1").family_name(), "O'Brien-Smith");
  v1::GetPractitionerRequest get;
  get.set_registration_id("PT-2");
  v1::Practitioner none;
  EXPECT_EQ(registry_->GetPractitioner(get, &none).code(), absl::StatusCode::kNotFound);
}

TEST_F(RegistryTest, DuplicateIdsAndOversizedRequestsAreRejected) {
  v1::UpsertPractitionersRequest duplicates;
  *duplicates.add_practitioners() = ValidPractitioner("PT-1");
  *duplicates.add_practitioners() = ValidPractitioner("pt-1");
  absl::Status status = registry_->Upsert(duplicates, "k1").status();
  EXPECT_THAT(ViolationFields(status), ElementsAre("practitioners[1].registration_id"));

  v1::UpsertPractitionersRequest oversized;
  for (int i = 0; i < 1001; ++i) {
    *oversized.add_practitioners() = ValidPractitioner("PT-" + std::to_string(i));
  }
  status = registry_->Upsert(oversized, "k1").status();
  EXPECT_THAT(ViolationFields(status), ElementsAre("practitioners"));
  EXPECT_EQ(store_->revision(), 0);
}

TEST_F(RegistryTest, BackDatedSuspensionChangesVerificationFromThatDate) {
  UpsertOk({ValidPractitioner()});
  v1::SetAuthorizationStatusRequest suspend;
  suspend.set_registration_id("pt-1001");
  suspend.set_activity(v1::DRY_NEEDLING);
  suspend.set_status(v1::Authorization::SUSPENDED);
  suspend.set_effective_on("2026-06-01");
  suspend.set_reason("Audit of needling records");
  absl::StatusOr<v1::Practitioner> updated = registry_->SetAuthorizationStatus(suspend, "k1");
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->revision(), 2);
  EXPECT_EQ(updated->authorizations(0).status(), v1::Authorization::SUSPENDED);
  EXPECT_EQ(VerifyReason("PT-1001", "2026-05-31"), v1::AUTHORIZED);
  EXPECT_EQ(VerifyReason("PT-1001", "2026-06-01"), v1::AUTHORIZATION_SUSPENDED);
  EXPECT_EQ(VerifyReason("PT-1001", ""), v1::AUTHORIZATION_SUSPENDED);

  // Same status again: nothing to record, no revision.
  ASSERT_TRUE(registry_->SetAuthorizationStatus(suspend, "k1").ok());
  EXPECT_EQ(store_->revision(), 2);

  // Before the last recorded change: refused, nothing written.
  v1::SetAuthorizationStatusRequest earlier = suspend;
  earlier.set_status(v1::Authorization::AUTHORIZED);
  earlier.set_effective_on("2026-05-01");
  EXPECT_EQ(registry_->SetAuthorizationStatus(earlier, "k1").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->revision(), 2);
}

TEST_F(RegistryTest, StatusChangeErrors) {
  UpsertOk({ValidPractitioner()});
  v1::SetAuthorizationStatusRequest request;
  request.set_registration_id("PT-404");
  request.set_activity(v1::DRY_NEEDLING);
  request.set_status(v1::Authorization::REVOKED);
  EXPECT_EQ(registry_->SetAuthorizationStatus(request, "k1").status().code(),
            absl::StatusCode::kNotFound);
  request.set_registration_id("PT-1001");
  request.set_activity(v1::ACUPUNCTURE);
  EXPECT_EQ(registry_->SetAuthorizationStatus(request, "k1").status().code(),
            absl::StatusCode::kNotFound);
  request.set_activity(v1::DRY_NEEDLING);
  request.set_effective_on("2026-11-26");  // Tomorrow.
  EXPECT_THAT(ViolationFields(registry_->SetAuthorizationStatus(request, "k1").status()),
              ElementsAre("effective_on"));
  request.set_effective_on("");
  request.set_status(v1::Authorization::STATUS_UNSPECIFIED);
  EXPECT_THAT(ViolationFields(registry_->SetAuthorizationStatus(request, "k1").status()),
              ElementsAre("status"));
  v1::SetPermitStatusRequest permit;
  permit.set_registration_id("PT-404");
  permit.set_status(v1::Permit::SUSPENDED);
  EXPECT_EQ(registry_->SetPermitStatus(permit, "k1").status().code(), absl::StatusCode::kNotFound);
  permit.set_registration_id("bad id!");
  EXPECT_THAT(ViolationFields(registry_->SetPermitStatus(permit, "k1").status()),
              ElementsAre("registration_id"));
  EXPECT_EQ(store_->revision(), 1);
}

TEST_F(RegistryTest, PermitSuspensionAndReinstatement) {
  UpsertOk({ValidPractitioner()});
  v1::SetPermitStatusRequest request;
  request.set_registration_id("PT-1001");
  request.set_status(v1::Permit::SUSPENDED);
  request.set_effective_on("2026-01-10");
  ASSERT_TRUE(registry_->SetPermitStatus(request, "k1").ok());
  request.set_status(v1::Permit::ACTIVE);
  request.set_effective_on("2026-03-01");
  absl::StatusOr<v1::Practitioner> p = registry_->SetPermitStatus(request, "k1");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->permit().status_history_size(), 3);
  EXPECT_EQ(VerifyReason("PT-1001", "2026-01-09"), v1::AUTHORIZED);
  EXPECT_EQ(VerifyReason("PT-1001", "2026-02-01"), v1::PERMIT_NOT_ACTIVE);
  EXPECT_EQ(VerifyReason("PT-1001", "2026-03-01"), v1::AUTHORIZED);
}

TEST_F(RegistryTest, VerifyReportsRevisionAndRejectsBadInput) {
  UpsertOk({ValidPractitioner()});
  v1::VerifyAuthorizationRequest request;
  request.set_registration_id("PT-999");
  request.set_activity(v1::DRY_NEEDLING);
  v1::VerifyAuthorizationResponse unknown;
  ASSERT_TRUE(registry_->Verify(request, &unknown).ok());
  EXPECT_EQ(unknown.reason(), v1::NOT_REGISTERED);
  EXPECT_FALSE(unknown.authorized());
  EXPECT_EQ(unknown.register_revision(), 1);
  EXPECT_EQ(unknown.as_of(), "2026-11-25");

  request.set_as_of("2026-13-01");
  request.set_activity(v1::RESTRICTED_ACTIVITY_UNSPECIFIED);
  v1::VerifyAuthorizationResponse rejected;
  EXPECT_THAT(ViolationFields(registry_->Verify(request, &rejected)),
              ElementsAre("activity", "as_of"));
}

TEST_F(RegistryTest, BatchVerifyKeepsOrderAndNamesBadItems) {
  UpsertOk({ValidPractitioner("PT-1")});
  v1::BatchVerifyAuthorizationsRequest batch;
  for (const char* id : {"PT-404", "pt-1"}) {
    auto* r = batch.add_requests();
    r->set_registration_id(id);
    r->set_activity(v1::DRY_NEEDLING);
  }
  absl::StatusOr<v1::BatchVerifyAuthorizationsResponse> answers = registry_->BatchVerify(batch);
  ASSERT_TRUE(answers.ok()) << answers.status();
  ASSERT_EQ(answers->responses_size(), 2);
  EXPECT_EQ(answers->responses(0).reason(), v1::NOT_REGISTERED);
  EXPECT_EQ(answers->responses(1).reason(), v1::AUTHORIZED);
  EXPECT_EQ(answers->responses(1).registration_id(), "PT-1");

  batch.mutable_requests(1)->set_as_of("yesterday");
  EXPECT_THAT(ViolationFields(registry_->BatchVerify(batch).status()),
              ElementsAre("requests[1].as_of"));
}

TEST_F(RegistryTest, HistoryPagesThroughEveryEventOldestFirst) {
  UpsertOk({ValidPractitioner()});
  UpsertOk({ValidPractitioner("PT-2")});
  for (auto [status, on] : {std::pair{v1::Authorization::SUSPENDED, "2026-01-01"},
                            {v1::Authorization::AUTHORIZED, "2026-02-01"},
                            {v1::Authorization::REVOKED, "2026-03-01"}}) {
    v1::SetAuthorizationStatusRequest request;
    request.set_registration_id("PT-1001");
    request.set_activity(v1::DRY_NEEDLING);
    request.set_status(status);
    request.set_effective_on(on);
    ASSERT_TRUE(registry_->SetAuthorizationStatus(request, "k1").ok());
  }
  v1::ListPractitionerHistoryRequest request;
  request.set_registration_id("pt-1001");
  request.set_page_size(3);
  std::vector<int64_t> revisions;
  int pages = 0;
  do {
    absl::StatusOr<v1::ListPractitionerHistoryResponse> page =
        registry_->ListHistory(request, /*include_actor=*/false);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& event : page->events()) {
      revisions.push_back(event.revision());
      EXPECT_TRUE(event.actor().empty());
      EXPECT_FALSE(event.practitioner().has_private_contact());
    }
    request.set_page_token(page->next_page_token());
    ++pages;
  } while (!request.page_token().empty());
  EXPECT_THAT(revisions, ElementsAre(1, 3, 4, 5));
  EXPECT_EQ(pages, 2);

  request.set_page_token("");
  absl::StatusOr<v1::ListPractitionerHistoryResponse> with_actor =
      registry_->ListHistory(request, /*include_actor=*/true);
  ASSERT_TRUE(with_actor.ok());
  EXPECT_EQ(with_actor->events(0).actor(), "k1");
  EXPECT_EQ(with_actor->events(0).kind(), v1::ChangeEvent::CREATED);
}

TEST_F(RegistryTest, HistoryRejectsForeignOrTamperedTokensAndUnknownIds) {
  UpsertOk({ValidPractitioner("PT-1"), ValidPractitioner("PT-2")});
  v1::ListPractitionerHistoryRequest request;
  request.set_registration_id("PT-1");
  request.set_page_size(1);
  // PT-1 has one event, so make a token by paging PT-2 after adding a second event there.
  v1::SetPermitStatusRequest change;
  change.set_registration_id("PT-2");
  change.set_status(v1::Permit::INACTIVE);
  ASSERT_TRUE(registry_->SetPermitStatus(change, "k1").ok());
  v1::ListPractitionerHistoryRequest pt2 = request;
  pt2.set_registration_id("PT-2");
  absl::StatusOr<v1::ListPractitionerHistoryResponse> page = registry_->ListHistory(pt2, false);
  ASSERT_TRUE(page.ok());
  ASSERT_FALSE(page->next_page_token().empty());

  request.set_page_token(page->next_page_token());  // Another registrant's token.
  EXPECT_THAT(ViolationFields(registry_->ListHistory(request, false).status()),
              ElementsAre("page_token"));
  request.set_page_token("not-a-token");
  EXPECT_THAT(ViolationFields(registry_->ListHistory(request, false).status()),
              ElementsAre("page_token"));
  request.set_page_token("");
  request.set_page_size(-1);
  EXPECT_THAT(ViolationFields(registry_->ListHistory(request, false).status()),
              ElementsAre("page_size"));
  request.set_page_size(0);
  request.set_registration_id("PT-404");
  EXPECT_EQ(registry_->ListHistory(request, false).status().code(), absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------------------------
// One rule set for what may be stored, on every write path.

namespace hardening {

v1::UpsertPractitionersRequest Request(std::vector<v1::Practitioner> records) {
  v1::UpsertPractitionersRequest request;
  for (auto& r : records) *request.add_practitioners() = std::move(r);
  return request;
}

absl::Status SetPermit(Registry& registry, const std::string& id, v1::Permit::Status status,
                       const std::string& effective_on, const std::string& reason = "") {
  v1::SetPermitStatusRequest request;
  request.set_registration_id(id);
  request.set_status(status);
  request.set_effective_on(effective_on);
  request.set_reason(reason);
  return registry.SetPermitStatus(request, "k1").status();
}

}  // namespace hardening

TEST_F(RegistryTest, FutureStartDatesAndGrantsBeforeRegistrationAreRefused) {
  v1::Practitioner future_permit = ValidPractitioner("PT-1");
  future_permit.mutable_permit()->set_registered_on("2026-11-26");
  v1::Practitioner future_grant = ValidPractitioner("PT-2");
  future_grant.mutable_authorizations(0)->set_granted_on("2027-01-01");
  v1::Practitioner early_grant = ValidPractitioner("PT-3");
  early_grant.mutable_authorizations(0)->set_granted_on("2014-01-01");
  early_grant.mutable_authorizations(0)->mutable_training(0)->set_completed_on("2013-01-01");
  absl::StatusOr<v1::UpsertPractitionersResponse> response =
      registry_->Upsert(hardening::Request({future_permit, future_grant, early_grant}), "k1");
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(response.status()),
              ::testing::IsSupersetOf({"practitioners[0].permit.registered_on",
                                       "practitioners[1].authorizations[0].granted_on",
                                       "practitioners[2].authorizations[0].granted_on"}));
  EXPECT_EQ(store_->revision(), 0);
}

TEST_F(RegistryTest, MovingRegisteredOnMovesTheServersStartEntryOnly) {
  UpsertOk({ValidPractitioner("PT-1")});
  v1::Practitioner later = ValidPractitioner("PT-1");
  later.mutable_permit()->set_registered_on("2016-05-01");
  UpsertOk({later});
  EXPECT_EQ(Get("PT-1").permit().status_history(0).effective_on(), "2016-05-01");

  // Once a real change is recorded, registered_on cannot move past it: the stored timeline
  // would start before the permit.
  ASSERT_TRUE(hardening::SetPermit(*registry_, "PT-1", v1::Permit::SUSPENDED, "2018-01-01").ok());
  const int64_t revision = store_->revision();
  v1::Practitioner much_later = ValidPractitioner("PT-1");
  much_later.mutable_permit()->set_status(v1::Permit::SUSPENDED);
  much_later.mutable_permit()->set_registered_on("2019-01-01");
  absl::StatusOr<v1::UpsertPractitionersResponse> response =
      registry_->Upsert(hardening::Request({much_later}), "k1");
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument) << response.status();
  EXPECT_THAT(ViolationFields(response.status()),
              Contains("practitioners[0].permit.status_history[0].effective_on"));
  EXPECT_EQ(store_->revision(), revision);
}

// Uploads stop below the caps so that a suspension always fits; reinstating does not get the
// headroom, and nothing passes the hard caps.
TEST_F(RegistryTest, ASuspensionAlwaysFitsWhateverWasUploaded) {
  v1::Practitioner full = ValidPractitioner("PT-1");
  auto* history = full.mutable_permit()->mutable_status_history();
  for (int i = 0; i < kMaxUploadStatusHistory; ++i) {
    auto* change = history->Add();
    change->set_status(i % 2 == 0 ? "ACTIVE" : "INACTIVE");
    change->set_effective_on("2016-01-01");
  }
  full.mutable_permit()->set_status(v1::Permit::INACTIVE);
  v1::Practitioner too_long = full;
  too_long.mutable_permit()->set_status(v1::Permit::ACTIVE);
  *too_long.mutable_permit()->add_status_history() = history->Get(0);
  absl::StatusOr<v1::UpsertPractitionersResponse> refused =
      registry_->Upsert(hardening::Request({too_long}), "k1");
  EXPECT_THAT(ViolationFields(refused.status()),
              Contains("practitioners[0].permit.status_history"));
  UpsertOk({full});
  const int64_t revision = store_->revision();
  v1::SetPermitStatusRequest activate;
  activate.set_registration_id("PT-1");
  activate.set_status(v1::Permit::ACTIVE);
  absl::StatusOr<v1::Practitioner> result = registry_->SetPermitStatus(activate, "k1");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition) << result.status();
  EXPECT_THAT(ViolationFields(result.status()), Contains("permit.status_history"));
  EXPECT_EQ(store_->revision(), revision);
  EXPECT_EQ(Get("PT-1").permit().status(), v1::Permit::INACTIVE);

  ASSERT_TRUE(hardening::SetPermit(*registry_, "PT-1", v1::Permit::SUSPENDED, "", "Harm").ok());
  EXPECT_EQ(Get("PT-1").permit().status(), v1::Permit::SUSPENDED);
}

TEST_F(RegistryTest, ASuspensionFitsARecordUploadedAtTheSizeLimit) {
  v1::Practitioner big = ValidPractitioner("PT-1");
  // Conditions up to just under the upload cap, over every activity's authorization.
  for (int activity = v1::ACUPUNCTURE; activity <= v1::DIAGNOSTIC_IMAGING_ORDERING; ++activity) {
    auto* a = big.add_authorizations();
    a->set_activity(static_cast<v1::RestrictedActivity>(activity));
    a->set_status(v1::Authorization::AUTHORIZED);
    a->set_granted_on("2019-04-02");
  }
  for (int i = 0; big.ByteSizeLong() + kMaxLongTextBytes + 8 < kMaxUploadRecordBytes; ++i) {
    big.mutable_authorizations(i % big.authorizations_size())
        ->add_conditions(std::string(kMaxLongTextBytes, 'c'));
  }
  ASSERT_GT(big.ByteSizeLong(), kMaxUploadRecordBytes - 2 * kMaxLongTextBytes);
  UpsertOk({big});
  v1::SetAuthorizationStatusRequest revoke;
  revoke.set_registration_id("PT-1");
  revoke.set_activity(v1::DRY_NEEDLING);
  revoke.set_status(v1::Authorization::REVOKED);
  revoke.set_reason(std::string(kMaxLongTextBytes, 'r'));
  ASSERT_TRUE(registry_->SetAuthorizationStatus(revoke, "k1").ok());
  ASSERT_TRUE(hardening::SetPermit(*registry_, "PT-1", v1::Permit::SUSPENDED, "",
                                   std::string(kMaxLongTextBytes, 's'))
                  .ok());
  EXPECT_EQ(VerifyReason("PT-1", "2026-11-25"), v1::PERMIT_NOT_ACTIVE);
}

TEST_F(RegistryTest, OversizedRecordWithinEveryFieldLimitIsRefused) {
  v1::Practitioner big = ValidPractitioner("PT-1");
  const std::string condition(kMaxLongTextBytes, 'c');
  for (int activity = v1::ACUPUNCTURE; activity <= v1::DIAGNOSTIC_IMAGING_ORDERING; ++activity) {
    auto* a = big.add_authorizations();
    a->set_activity(static_cast<v1::RestrictedActivity>(activity));
    a->set_status(v1::Authorization::AUTHORIZED);
    a->set_granted_on("2019-04-02");
    for (int i = 0; i < kMaxListItems; ++i) a->add_conditions(condition);
  }
  for (int i = 0; i < kMaxListItems; ++i) big.add_conditions(condition);
  for (int i = 0; i < kMaxListItems; ++i) {
    auto* location = big.add_locations();
    *location = big.locations(0);
    location->set_street_address(std::string(kMaxTextBytes, 's'));
    location->set_clinic_name(std::string(kMaxTextBytes, 'c'));
  }
  big.mutable_locations()->DeleteSubrange(0, 1);
  ASSERT_GT(big.ByteSizeLong(), kMaxRecordBytes);
  absl::StatusOr<v1::UpsertPractitionersResponse> response =
      registry_->Upsert(hardening::Request({big}), "k1");
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(response.status()), Contains("practitioners[0]"));
  EXPECT_EQ(store_->revision(), 0);
}

TEST_F(RegistryTest, ErrorDetailsStaySmallWhateverTheInput) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 200; ++i) {
    v1::Practitioner bad = ValidPractitioner(absl::StrCat("PT-", i));
    bad.mutable_permit()->set_registered_on(std::string(100'000, '9'));
    bad.set_given_name("");
    records.push_back(bad);
  }
  absl::StatusOr<v1::UpsertPractitionersResponse> response =
      registry_->Upsert(hardening::Request(records), "k1");
  ASSERT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  const absl::optional<absl::Cord> payload = response.status().GetPayload(kBadRequestTypeUrl);
  ASSERT_TRUE(payload.has_value());
  EXPECT_LT(payload->size() + response.status().message().size(), 8192u);
  google::rpc::BadRequest details;
  ASSERT_TRUE(details.ParseFromString(std::string(*payload)));
  EXPECT_EQ(details.field_violations_size(), kMaxReportedViolations + 1);
  EXPECT_THAT(details.field_violations(kMaxReportedViolations).description(),
              ::testing::HasSubstr("380 more violations not listed"));
  EXPECT_THAT(std::string(response.status().message()), ::testing::HasSubstr("and 397 more"));
}

TEST_F(RegistryTest, UploadDoesNotSilentlyLiftASuspension) {
  UpsertOk({ValidPractitioner("PT-1")});
  ASSERT_TRUE(hardening::SetPermit(*registry_, "PT-1", v1::Permit::SUSPENDED, "2026-11-02",
                                   "Complaint under investigation")
                  .ok());
  v1::SetAuthorizationStatusRequest revoke;
  revoke.set_registration_id("PT-1");
  revoke.set_activity(v1::DRY_NEEDLING);
  revoke.set_status(v1::Authorization::REVOKED);
  revoke.set_effective_on("2026-11-03");
  ASSERT_TRUE(registry_->SetAuthorizationStatus(revoke, "k1").ok());
  const int64_t revision = store_->revision();

  // The nightly upload still says ACTIVE / AUTHORIZED: refused, nothing written.
  absl::StatusOr<v1::UpsertPractitionersResponse> nightly =
      registry_->Upsert(hardening::Request({ValidPractitioner("PT-1")}), "k1");
  EXPECT_EQ(nightly.status().code(), absl::StatusCode::kFailedPrecondition) << nightly.status();
  EXPECT_THAT(ViolationFields(nightly.status()),
              ::testing::UnorderedElementsAre("practitioners[0].permit.status",
                                              "practitioners[0].authorizations[0].status"));
  // Dropping the revoked authorization would erase it just the same.
  v1::Practitioner without = ValidPractitioner("PT-1");
  without.clear_authorizations();
  without.mutable_permit()->set_status(v1::Permit::SUSPENDED);
  absl::StatusOr<v1::UpsertPractitionersResponse> dropped =
      registry_->Upsert(hardening::Request({without}), "k1");
  EXPECT_THAT(ViolationFields(dropped.status()), Contains("practitioners[0].authorizations"));
  EXPECT_EQ(store_->revision(), revision);
  EXPECT_EQ(VerifyReason("PT-1", "2026-11-25"), v1::PERMIT_NOT_ACTIVE);

  // Explicitly allowed, it goes through.
  v1::UpsertPractitionersRequest allowed = hardening::Request({ValidPractitioner("PT-1")});
  allowed.set_allow_status_lift(true);
  absl::StatusOr<v1::UpsertPractitionersResponse> lifted = registry_->Upsert(allowed, "k1");
  ASSERT_TRUE(lifted.ok()) << lifted.status();
  EXPECT_EQ(VerifyReason("PT-1", "2026-11-25"), v1::AUTHORIZED);
}

TEST_F(RegistryTest, UploadThatKnowsTheSuspensionMayLiftIt) {
  UpsertOk({ValidPractitioner("PT-1")});
  ASSERT_TRUE(hardening::SetPermit(*registry_, "PT-1", v1::Permit::SUSPENDED, "2026-11-02").ok());
  v1::Practitioner reinstated = ValidPractitioner("PT-1");
  auto* history = reinstated.mutable_permit()->mutable_status_history();
  for (auto [status, on] : {std::pair{"ACTIVE", "2015-04-01"}, std::pair{"SUSPENDED", "2026-11-02"},
                            std::pair{"ACTIVE", "2026-11-20"}}) {
    auto* change = history->Add();
    change->set_status(status);
    change->set_effective_on(on);
  }
  UpsertOk({reinstated});
  EXPECT_EQ(Get("PT-1").permit().status(), v1::Permit::ACTIVE);
}

// The registry answers public views itself: no layer above has to remember to strip them.
TEST_F(RegistryTest, ReadsAnswerThePublicViewOnly) {
  UpsertOk({ValidPractitioner("PT-1")});
  EXPECT_FALSE(Get("PT-1").has_private_contact());
  EXPECT_FALSE(Get("PT-1").given_name().empty());
  v1::SetAuthorizationStatusRequest suspend;
  suspend.set_registration_id("PT-1");
  suspend.set_activity(v1::DRY_NEEDLING);
  suspend.set_status(v1::Authorization::SUSPENDED);
  suspend.set_reason("Audit");
  ASSERT_TRUE(registry_->SetAuthorizationStatus(suspend, "k1").ok());
  v1::ListPractitionerHistoryRequest history;
  history.set_registration_id("PT-1");
  absl::StatusOr<v1::ListPractitionerHistoryResponse> events =
      registry_->ListHistory(history, /*include_actor=*/true);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->events_size(), 2);
  for (const v1::ChangeEvent& event : events->events()) {
    EXPECT_FALSE(event.practitioner().has_private_contact());
  }
  absl::StatusOr<std::optional<v1::Practitioner>> whole =
      store_->GetPractitioner("PT-1", storage::Detail::kWithPrivate);
  ASSERT_TRUE(whole.ok() && whole->has_value());
  EXPECT_EQ((*whole)->private_contact().email(), "helene.obrien@example.ca")
      << "a status change keeps the private details";
}

TEST_F(RegistryTest, UpdateMaskChangesOnlyTheNamedFields) {
  UpsertOk({ValidPractitioner("PT-1")});
  // What the public Get returns: no private contact.
  v1::Practitioner public_view = Get("PT-1");
  public_view.clear_private_contact();
  public_view.set_family_name("Tremblay");
  v1::UpsertPractitionersRequest request = hardening::Request({public_view});
  request.mutable_update_mask()->add_paths("family_name");
  absl::StatusOr<v1::UpsertPractitionersResponse> response = registry_->Upsert(request, "k1");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->updated(), 1);
  const v1::Practitioner stored = Get("PT-1");
  EXPECT_EQ(stored.family_name(), "Tremblay");
  EXPECT_FALSE(stored.has_private_contact());
  // The private details the masked upload did not name are kept.
  EXPECT_EQ(
      (*store_->GetPractitioner("PT-1", storage::Detail::kWithPrivate))->private_contact().email(),
      "helene.obrien@example.ca");

  // Only a partial record: the rest comes from the stored one.
  v1::Practitioner languages_only;
  languages_only.set_registration_id("pt-1");
  languages_only.add_languages("Cree");
  v1::UpsertPractitionersRequest partial = hardening::Request({languages_only});
  partial.mutable_update_mask()->add_paths("languages");
  ASSERT_TRUE(registry_->Upsert(partial, "k1").ok());
  EXPECT_THAT(Get("PT-1").languages(), ElementsAre("Cree"));
  EXPECT_EQ(Get("PT-1").given_name(), "Hélène");
}

TEST_F(RegistryTest, BadUpdateMasksAreRefusedAndWriteNothing) {
  UpsertOk({ValidPractitioner("PT-1")});
  v1::UpsertPractitionersRequest bad_path = hardening::Request({ValidPractitioner("PT-1")});
  bad_path.mutable_update_mask()->add_paths("revision");
  EXPECT_THAT(ViolationFields(registry_->Upsert(bad_path, "k1").status()),
              Contains("update_mask.paths[0]"));
  v1::UpsertPractitionersRequest unknown = hardening::Request({ValidPractitioner("PT-404")});
  unknown.mutable_update_mask()->add_paths("family_name");
  absl::StatusOr<v1::UpsertPractitionersResponse> response = registry_->Upsert(unknown, "k1");
  EXPECT_THAT(ViolationFields(response.status()), Contains("practitioners[0].registration_id"));
  // A mask that would leave an invalid record (no given name) is refused too.
  v1::Practitioner blank = ValidPractitioner("PT-1");
  blank.clear_given_name();
  v1::UpsertPractitionersRequest clearing = hardening::Request({blank});
  clearing.mutable_update_mask()->add_paths("given_name");
  EXPECT_THAT(ViolationFields(registry_->Upsert(clearing, "k1").status()),
              Contains("practitioners[0].given_name"));
  EXPECT_EQ(store_->revision(), 1);
}

TEST_F(RegistryTest, ImportRefusesASecondRecordForTheSameRegistrant) {
  ImportSession session;
  ASSERT_TRUE(registry_->StartImport("", false, "k1", &session).ok());
  google::protobuf::RepeatedPtrField<v1::Practitioner> first_chunk;
  *first_chunk.Add() = ValidPractitioner("PT-1");
  *first_chunk.Add() = ValidPractitioner("pt-1");
  ASSERT_TRUE(registry_->ImportChunk(first_chunk, "k1", &session).ok());
  google::protobuf::RepeatedPtrField<v1::Practitioner> second_chunk;
  *second_chunk.Add() = ValidPractitioner("PT-1");
  *second_chunk.Add() = ValidPractitioner("PT-2");
  ASSERT_TRUE(registry_->ImportChunk(second_chunk, "k1", &session).ok());
  ASSERT_TRUE(registry_->FinishImport("k1", &session).ok());
  EXPECT_EQ(session.summary.received(), 4);
  EXPECT_EQ(session.summary.applied(), 2);
  EXPECT_EQ(session.summary.rejected_count(), 2);
  ASSERT_EQ(session.summary.rejected_size(), 2);
  EXPECT_EQ(session.summary.rejected(0).index(), 1);
  EXPECT_EQ(session.summary.rejected(1).index(), 2);
  EXPECT_EQ(session.summary.rejected(0).violations(0).field(), "registration_id");
}

// The reactor checks chunk k+1 (validation, repeats) while the writer applies chunk k.
TEST_F(RegistryTest, ImportChunksCheckedAheadOfTheWriterApplyInStreamOrder) {
  ImportSession session;
  ASSERT_TRUE(registry_->StartImport("", false, "k1", &session).ok());
  google::protobuf::RepeatedPtrField<v1::Practitioner> first;
  *first.Add() = ValidPractitioner("PT-1");
  *first.Add() = ValidPractitioner("bad id!");
  *first.Add() = ValidPractitioner("PT-2");
  google::protobuf::RepeatedPtrField<v1::Practitioner> second;
  *second.Add() = ValidPractitioner("pt-1");
  *second.Add() = ValidPractitioner("PT-3");
  Registry::CheckedChunk first_checked;
  Registry::CheckedChunk second_checked;
  registry_->CheckImportChunk(first, &session, &first_checked);
  registry_->CheckImportChunk(second, &session, &second_checked);
  EXPECT_EQ(second_checked.first_index, 3);
  // Nothing is stored before a chunk is applied, and a chunk applied ahead of its turn is
  // refused without writing.
  EXPECT_EQ(store_->revision(), 0);
  EXPECT_EQ(registry_->ApplyImportChunk(second, &second_checked, "k1", &session).code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(store_->revision(), 0);
  ASSERT_TRUE(registry_->ApplyImportChunk(first, &first_checked, "k1", &session).ok());
  EXPECT_EQ(store_->revision(), 2);
  ASSERT_TRUE(registry_->ApplyImportChunk(second, &second_checked, "k1", &session).ok());
  ASSERT_TRUE(registry_->FinishImport("k1", &session).ok());
  EXPECT_EQ(session.summary.received(), 5);
  EXPECT_EQ(session.summary.applied(), 3);
  EXPECT_EQ(session.summary.rejected_count(), 2);
  ASSERT_EQ(session.summary.rejected_size(), 2);
  EXPECT_EQ(session.summary.rejected(0).index(), 1);
  EXPECT_EQ(session.summary.rejected(0).violations(0).field(), "registration_id");
  EXPECT_EQ(session.summary.rejected(1).index(), 3);
  EXPECT_EQ(session.summary.rejected(1).registration_id(), "PT-1");
  EXPECT_EQ(session.summary.revision(), 3);
  EXPECT_EQ(Get("PT-3").registration_id(), "PT-3");
}

// A chunk is checked (and its new records built) ahead of the writer: a registrant stored
// between the check and the apply is compared with what is stored then, not created over it.
TEST_F(RegistryTest, ImportChunkAppliedAfterAWriteComparesWithTheStoredRecord) {
  ImportSession session;
  ASSERT_TRUE(registry_->StartImport("", false, "k2", &session).ok());
  google::protobuf::RepeatedPtrField<v1::Practitioner> chunk;
  *chunk.Add() = ValidPractitioner("PT-1001");
  *chunk.Add() = ValidPractitioner("PT-2");
  *chunk.Add() = ValidPractitioner("PT-3");
  Registry::CheckedChunk checked;
  registry_->CheckImportChunk(chunk, &session, &checked);
  // Meanwhile: PT-1001 is registered and suspended, PT-3 registered as the import has it.
  UpsertOk({ValidPractitioner("PT-1001"), ValidPractitioner("PT-3")});
  v1::SetPermitStatusRequest suspend;
  suspend.set_registration_id("PT-1001");
  suspend.set_status(v1::Permit::SUSPENDED);
  suspend.set_effective_on("2026-01-10");
  ASSERT_TRUE(registry_->SetPermitStatus(suspend, "k1").ok());
  ASSERT_EQ(store_->revision(), 3);

  ASSERT_TRUE(registry_->ApplyImportChunk(chunk, &checked, "k2", &session).ok());
  ASSERT_TRUE(registry_->FinishImport("k2", &session).ok());
  EXPECT_EQ(session.summary.applied(), 1);
  EXPECT_EQ(session.summary.unchanged(), 1);
  ASSERT_EQ(session.summary.rejected_size(), 1);
  EXPECT_EQ(session.summary.rejected(0).index(), 0);
  EXPECT_EQ(session.summary.rejected(0).violations(0).field(), "permit.status");
  EXPECT_EQ(Get("PT-1001").permit().status(), v1::Permit::SUSPENDED);
  // The one change the chunk made: PT-2 created, by the import's actor, with the revision
  // after the others.
  EXPECT_EQ(store_->revision(), 4);
  const v1::Practitioner created = Get("PT-2");
  EXPECT_EQ(created.revision(), 4);
  absl::StatusOr<std::vector<v1::ChangeEvent>> events = store_->ReadChanges(3, 10);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].registration_id(), "PT-2");
  EXPECT_EQ((*events)[0].kind(), v1::ChangeEvent::CREATED);
  EXPECT_EQ((*events)[0].actor(), "k2");
  EXPECT_EQ((*events)[0].practitioner().revision(), 4);
  EXPECT_EQ((*events)[0].change_time().seconds(), created.update_time().seconds());
  EXPECT_GT((*events)[0].change_time().seconds(), 0);
}

TEST_F(RegistryTest, ImportIdReplaysTheSameStreamAndRefusesAnother) {
  auto run = [&](const std::string& bytes_seen, const std::string& family) {
    ImportSession session;
    absl::Status s = registry_->StartImport("nightly-1", false, "k1", &session);
    if (!s.ok()) return std::make_pair(s, session.summary);
    session.digest.Update(bytes_seen);
    google::protobuf::RepeatedPtrField<v1::Practitioner> chunk;
    *chunk.Add() = ValidPractitioner("PT-1");
    chunk[0].set_family_name(family);
    s = registry_->ImportChunk(chunk, "k1", &session);
    if (s.ok()) s = registry_->FinishImport("k1", &session);
    return std::make_pair(s, session.summary);
  };
  auto [first_status, first] = run("stream-a", "First");
  ASSERT_TRUE(first_status.ok()) << first_status;
  auto [replay_status, replay] = run("stream-a", "First");
  ASSERT_TRUE(replay_status.ok()) << replay_status;
  EXPECT_EQ(replay.SerializeAsString(), first.SerializeAsString());
  auto [other_status, other] = run("stream-b", "Other");
  EXPECT_EQ(other_status.code(), absl::StatusCode::kAlreadyExists) << other_status;
  EXPECT_EQ(Get("PT-1").family_name(), "First");
  EXPECT_EQ(store_->revision(), 1);
}

// Two streams under one import_id at once: the second is refused before it writes anything.
TEST_F(RegistryTest, ASecondStreamUnderARunningImportIdIsRefusedBeforeWriting) {
  auto first = std::make_unique<ImportSession>();
  ASSERT_TRUE(registry_->StartImport("race-1", false, "k1", first.get()).ok());
  ImportSession second;
  absl::Status refused = registry_->StartImport("race-1", false, "k1", &second);
  EXPECT_EQ(refused.code(), absl::StatusCode::kAborted) << refused;
  EXPECT_EQ(store_->revision(), 0);
  // Another key's id of the same name is its own.
  ImportSession other_key;
  EXPECT_TRUE(registry_->StartImport("race-1", false, "k2", &other_key).ok());
  // Once the first stream is gone, the id may be used again.
  first.reset();
  ImportSession later;
  EXPECT_TRUE(registry_->StartImport("race-1", false, "k1", &later).ok());
}

// The stream's thread validates each record once: the record it builds for a new registrant
// (id upper-cased, authorizations sorted, empty timelines started) must then pass every check
// the upload passed. Each variant here changes what PrepareUpload touches.
TEST_F(RegistryTest, ImportBuildsValidStoredRecordsFromValidatedUploads) {
  const std::string today = registry_->Today();
  google::protobuf::RepeatedPtrField<v1::Practitioner> chunk;
  *chunk.Add() = ValidPractitioner("pt-lower-1");
  {
    v1::Practitioner p = ValidPractitioner("PT-2");
    p.mutable_authorizations(0)->clear_granted_on();  // Its timeline starts today.
    v1::Authorization* spinal = p.add_authorizations();
    spinal->set_activity(v1::SPINAL_MANIPULATION);
    spinal->set_status(v1::Authorization::PENDING);
    std::swap(*p.mutable_authorizations(0), *p.mutable_authorizations(1));
    *chunk.Add() = p;
  }
  {
    v1::Practitioner p = ValidPractitioner("PT-3");
    p.mutable_permit()->set_registered_on(today);
    p.mutable_permit()->set_status(v1::Permit::SUSPENDED);
    p.mutable_authorizations(0)->set_granted_on(today);
    p.mutable_authorizations(0)->set_status(v1::Authorization::REVOKED);
    p.mutable_authorizations(0)->mutable_training(0)->set_completed_on(today);
    p.set_revision(41);
    *chunk.Add() = p;
  }
  {
    v1::Practitioner p = ValidPractitioner("PT-4");
    p.mutable_permit()->set_register_(v1::PROVISIONAL);
    p.clear_authorizations();
    *chunk.Add() = p;
  }
  {
    v1::Practitioner p = ValidPractitioner("PT-5");
    v1::StatusChange* first = p.mutable_permit()->add_status_history();
    first->set_status("INACTIVE");
    first->set_effective_on("2015-04-01");
    v1::StatusChange* last = p.mutable_permit()->add_status_history();
    last->set_status("ACTIVE");
    last->set_effective_on("2016-01-01");
    *chunk.Add() = p;
  }
  for (const v1::Practitioner& p : chunk) {
    Violations v;
    ValidatePractitioner(p, "", today, &v);
    ASSERT_TRUE(v.empty()) << p.registration_id() << ": " << v.ToStatus();
  }
  ImportSession session;
  ASSERT_TRUE(registry_->StartImport("", false, "k1", &session).ok());
  Registry::CheckedChunk checked;
  registry_->CheckImportChunk(chunk, &session, &checked);
  ASSERT_EQ(checked.valid.size(), 5u);
  // The record built for a new registrant: its public view is the event's practitioner, and
  // the change's record carries only the id and the private contact (see
  // storage::RecordChange).
  std::vector<v1::Practitioner> built_records;
  for (const storage::RecordChange& change : checked.created) {
    v1::Practitioner built = change.event.practitioner();
    EXPECT_FALSE(built.has_private_contact());
    EXPECT_EQ(change.record.registration_id(), built.registration_id());
    if (change.record.has_private_contact()) {
      *built.mutable_private_contact() = change.record.private_contact();
    }
    built_records.push_back(std::move(built));
  }
  for (size_t k = 0; k < checked.valid.size(); ++k) {
    EXPECT_EQ(checked.created_ok[k], 1) << checked.ids[k];
    const v1::Practitioner& built = built_records[k];
    EXPECT_EQ(built.private_contact().email(), "helene.obrien@example.ca") << checked.ids[k];
    Violations v;
    ValidatePractitioner(built, "", today, &v);
    ValidateStoredForm(built, "", WriteKind::kUpload, &v);
    EXPECT_TRUE(v.empty()) << checked.ids[k] << ": " << v.ToStatus();
  }
  EXPECT_EQ(built_records[0].registration_id(), "PT-LOWER-1");
  EXPECT_EQ(built_records[1].authorizations(0).activity(), v1::DRY_NEEDLING);
  ASSERT_EQ(built_records[1].authorizations(0).status_history_size(), 1);
  EXPECT_EQ(built_records[1].authorizations(0).status_history(0).effective_on(), today);
  ASSERT_TRUE(registry_->ApplyImportChunk(chunk, &checked, "k1", &session).ok());
  ASSERT_TRUE(registry_->FinishImport("k1", &session).ok());
  EXPECT_EQ(session.summary.applied(), 5);
  EXPECT_EQ(session.summary.rejected_count(), 0);
  EXPECT_EQ(Get("PT-3").permit().status(), v1::Permit::SUSPENDED);
}

// An imported new registrant is stored and announced exactly as an upsert of the same record
// stores and announces it: the whole record (private contact included) in the store, the
// public view in the change event.
TEST_F(RegistryTest, ImportStoresNewRegistrantsAsAnUpsertDoes) {
  v1::Practitioner imported = ValidPractitioner("pt-20");
  imported.add_languages("Cree");
  v1::Practitioner upserted = imported;
  upserted.set_registration_id("PT-21");
  // A field this build does not know (from a newer client) is kept as protobuf keeps it.
  v1::Practitioner unknown_field = imported;
  unknown_field.set_registration_id("PT-22");
  unknown_field.GetReflection()->MutableUnknownFields(&unknown_field)->AddVarint(99, 7);
  ImportSession session;
  ASSERT_TRUE(registry_->StartImport("", false, "k1", &session).ok());
  google::protobuf::RepeatedPtrField<v1::Practitioner> chunk;
  *chunk.Add() = imported;
  *chunk.Add() = unknown_field;
  ASSERT_TRUE(registry_->ImportChunk(chunk, "k1", &session).ok());
  ASSERT_TRUE(registry_->FinishImport("k1", &session).ok());
  ASSERT_EQ(session.summary.applied(), 2);
  UpsertOk({upserted});

  auto whole = [&](const std::string& id) {
    absl::StatusOr<std::optional<v1::Practitioner>> read =
        store_->GetPractitioner(id, storage::Detail::kWithPrivate);
    EXPECT_TRUE(read.ok() && read->has_value()) << id;
    v1::Practitioner p = read.ok() && read->has_value() ? **read : v1::Practitioner();
    p.clear_registration_id();
    p.clear_revision();
    return p;
  };
  const v1::Practitioner from_import = whole("PT-20");
  EXPECT_EQ(from_import.private_contact().email(), "helene.obrien@example.ca");
  EXPECT_EQ(from_import.private_contact().phone(), "403-555-0199");
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(from_import, whole("PT-21")))
      << from_import.DebugString() << "\nvs\n"
      << whole("PT-21").DebugString();

  const v1::Practitioner with_unknown = whole("PT-22");
  EXPECT_EQ(with_unknown.GetReflection()->GetUnknownFields(with_unknown).field_count(), 1);
  EXPECT_EQ(with_unknown.private_contact().email(), "helene.obrien@example.ca");

  absl::StatusOr<std::vector<v1::ChangeEvent>> events = store_->ReadChanges(0, 10);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 3u);
  events->erase(events->begin() + 1);  // PT-22's.
  for (v1::ChangeEvent& event : *events) {
    EXPECT_EQ(event.kind(), v1::ChangeEvent::CREATED);
    EXPECT_FALSE(event.practitioner().has_private_contact()) << event.registration_id();
    EXPECT_EQ(event.practitioner().revision(), event.revision());
    EXPECT_EQ(event.practitioner().update_time().seconds(), event.change_time().seconds());
    EXPECT_THAT(event.changed_activities(), ElementsAre(v1::DRY_NEEDLING));
    event.clear_revision();
    event.clear_registration_id();
    event.clear_actor();
    event.mutable_practitioner()->clear_registration_id();
    event.mutable_practitioner()->clear_revision();
  }
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals((*events)[0], (*events)[1]))
      << (*events)[0].DebugString() << "\nvs\n"
      << (*events)[1].DebugString();
}

TEST_F(RegistryTest, ImportSummaryStaysBounded) {
  ImportSession session;
  ASSERT_TRUE(registry_->StartImport("", false, "k1", &session).ok());
  google::protobuf::RepeatedPtrField<v1::Practitioner> chunk;
  for (int i = 0; i < 1500; ++i) {
    v1::Practitioner bad = ValidPractitioner(absl::StrCat("PT-", i));
    bad.set_given_name(std::string(50'000, 'x'));
    for (int k = 0; k < 30; ++k) bad.add_languages("");
    *chunk.Add() = bad;
  }
  ASSERT_TRUE(registry_->ImportChunk(chunk, "k1", &session).ok());
  EXPECT_EQ(session.summary.rejected_count(), 1500);
  EXPECT_EQ(session.summary.rejected_size(), 1000);
  EXPECT_LT(session.summary.ByteSizeLong(), size_t{2} << 20);
}

TEST_F(RegistryTest, BatchVerifyAnswerIsBoundedInBytes) {
  v1::Practitioner wordy = ValidPractitioner("PT-1");
  for (int i = 0; i < kMaxListItems; ++i) {
    wordy.mutable_authorizations(0)->add_conditions(std::string(kMaxLongTextBytes, 'w'));
  }
  wordy.mutable_authorizations(0)->mutable_conditions()->DeleteSubrange(0, 1);
  UpsertOk({wordy});
  v1::BatchVerifyAuthorizationsRequest request;
  for (int i = 0; i < kMaxRecordsPerRequest; ++i) {
    auto* item = request.add_requests();
    item->set_registration_id("PT-1");
    item->set_activity(v1::DRY_NEEDLING);
  }
  absl::StatusOr<v1::BatchVerifyAuthorizationsResponse> response = registry_->BatchVerify(request);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kOutOfRange) << response.status();
  request.mutable_requests()->DeleteSubrange(50, kMaxRecordsPerRequest - 50);
  response = registry_->BatchVerify(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->responses_size(), 50);
}

// Every record the server stores passes its own validation again, and re-importing what an
// export holds reproduces the register: after every kind of write, the stored records are
// validated, exported as proto JSON, imported into a fresh register and compared.
TEST_F(RegistryTest, EveryStoredRecordRevalidatesAndReimportsIdentically) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 30; ++i) {
    v1::Practitioner p = ValidPractitioner(absl::StrCat("pt-", i));
    if (i % 3 == 1) p.mutable_authorizations(0)->clear_granted_on();
    if (i % 4 == 2) p.mutable_permit()->set_register_(v1::COURTESY);
    if (i % 5 == 3) p.clear_private_contact();
    records.push_back(p);
  }
  UpsertOk(records);
  for (int i = 0; i < 30; i += 2) {
    v1::SetAuthorizationStatusRequest suspend;
    suspend.set_registration_id(absl::StrCat("PT-", i));
    suspend.set_activity(v1::DRY_NEEDLING);
    suspend.set_status(i % 4 == 0 ? v1::Authorization::SUSPENDED : v1::Authorization::PENDING);
    // Back-dated where the authorization's timeline allows it.
    if (i % 3 != 1) suspend.set_effective_on("2026-01-15");
    suspend.set_reason("Audit, 2026 \"needling\" records");
    ASSERT_TRUE(registry_->SetAuthorizationStatus(suspend, "k1").ok());
    v1::SetPermitStatusRequest permit;
    permit.set_registration_id(absl::StrCat("PT-", i));
    permit.set_status(v1::Permit::INACTIVE);
    ASSERT_TRUE(registry_->SetPermitStatus(permit, "k1").ok());
  }
  v1::Practitioner renamed = ValidPractitioner("PT-1");
  renamed.set_family_name("Renamed");
  renamed.mutable_permit()->set_registered_on("2014-02-02");
  UpsertOk({renamed});

  std::vector<v1::Practitioner> exported;
  ASSERT_TRUE(registry_->Snapshot()
                  ->ForEachPractitioner(
                      [&](const v1::Practitioner& p) {
                        Violations v;
                        ValidatePractitioner(p, p.registration_id(), registry_->Today(), &v);
                        ValidateStoredForm(p, p.registration_id(), WriteKind::kRestriction, &v);
                        EXPECT_TRUE(v.empty()) << v.ToStatus();
                        std::string json;
                        EXPECT_TRUE(google::protobuf::util::MessageToJsonString(p, &json).ok());
                        v1::Practitioner parsed;
                        EXPECT_TRUE(
                            google::protobuf::util::JsonStringToMessage(json, &parsed).ok());
                        exported.push_back(parsed);
                        return true;
                      },
                      storage::Detail::kWithPrivate)
                  .ok());
  ASSERT_EQ(exported.size(), 30u);

  TempDir other_dir;
  absl::StatusOr<std::unique_ptr<storage::Store>> other_store =
      storage::Store::Open(other_dir.path());
  ASSERT_TRUE(other_store.ok());
  absl::TimeZone zone;
  ASSERT_TRUE(absl::LoadTimeZone("America/Edmonton", &zone));
  const absl::Time now = absl::FromCivil(absl::CivilSecond(2026, 11, 25, 12, 0, 0), zone);
  Registry other(other_store->get(), zone, [now] { return now; });
  ImportSession session;
  ASSERT_TRUE(other.StartImport("", false, "k1", &session).ok());
  google::protobuf::RepeatedPtrField<v1::Practitioner> chunk(exported.begin(), exported.end());
  ASSERT_TRUE(other.ImportChunk(chunk, "k1", &session).ok());
  EXPECT_EQ(session.summary.rejected_count(), 0) << session.summary.DebugString();
  EXPECT_EQ(session.summary.applied(), 30);
  for (const v1::Practitioner& original : exported) {
    absl::StatusOr<std::optional<v1::Practitioner>> copy =
        (*other_store)->GetPractitioner(original.registration_id(), storage::Detail::kWithPrivate);
    ASSERT_TRUE(copy.ok() && copy->has_value());
    v1::Practitioner a = original, b = **copy;
    for (v1::Practitioner* p : {&a, &b}) {
      p->clear_revision();
      p->clear_update_time();
    }
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(a, b))
        << a.DebugString() << "\nvs\n"
        << b.DebugString();
  }
}

}  // namespace
}  // namespace physioreg::core

namespace physioreg::core {
namespace {

// Verify reads only part of each stored record (the rule's facts straight from the stored
// bytes, core::ParseVerificationFacts), single and batched: its answers
// must be core::Verify's over the whole public view, for every kind of generated registrant,
// activity and date. Fails when Verify starts reading a field the partial reads skip.
TEST_F(RegistryTest, VerifyFromThePartialReadAnswersAsFromTheWholeRecord) {
  std::vector<v1::Practitioner> generated;
  for (int i = 0; i < 400; ++i) generated.push_back(tools::GenerateRegistrant(7, i));
  UpsertOk(generated);
  const std::vector<std::string> dates = {"2012-03-01", "2020-06-15", "2025-12-31",
                                          "2026-11-25", "2027-04-01", "2033-01-01"};
  const std::vector<v1::RestrictedActivity> activities = {
      v1::DRY_NEEDLING, v1::ACUPUNCTURE, v1::SPINAL_MANIPULATION, v1::PELVIC_HEALTH_INTERNAL_EXAM,
      v1::DIAGNOSTIC_IMAGING_ORDERING};
  int authorized = 0, checked = 0;
  for (const v1::Practitioner& record : generated) {
    const std::string& id = record.registration_id();
    const v1::Practitioner whole = Get(id);
    v1::BatchVerifyAuthorizationsRequest batch;
    std::vector<v1::VerifyAuthorizationResponse> expected;
    for (v1::RestrictedActivity activity : activities) {
      for (const std::string& as_of : dates) {
        v1::VerifyAuthorizationRequest request;
        request.set_registration_id(id);
        request.set_activity(activity);
        request.set_as_of(as_of);
        *batch.add_requests() = request;
        v1::VerifyAuthorizationResponse want = core::Verify(&whole, id, activity, as_of);
        v1::VerifyAuthorizationResponse got;
        ASSERT_TRUE(registry_->Verify(request, &got).ok());
        EXPECT_TRUE(got.has_checked_at());
        got.clear_checked_at();
        want.set_register_revision(got.register_revision());
        EXPECT_EQ(got.SerializeAsString(), want.SerializeAsString()) << id << " " << as_of;
        authorized += got.authorized();
        ++checked;
        expected.push_back(want);
      }
    }
    absl::StatusOr<v1::BatchVerifyAuthorizationsResponse> answers = registry_->BatchVerify(batch);
    ASSERT_TRUE(answers.ok()) << answers.status();
    ASSERT_EQ(answers->responses_size(), static_cast<int>(expected.size()));
    for (size_t i = 0; i < expected.size(); ++i) {
      v1::VerifyAuthorizationResponse got = answers->responses(static_cast<int>(i));
      got.clear_checked_at();
      expected[i].set_register_revision(got.register_revision());
      EXPECT_EQ(got.SerializeAsString(), expected[i].SerializeAsString()) << id;
    }
  }
  // The generated register has every kind of answer, authorized ones included.
  EXPECT_GT(authorized, checked / 50);
  EXPECT_LT(authorized, checked / 2);
}

}  // namespace
}  // namespace physioreg::core
