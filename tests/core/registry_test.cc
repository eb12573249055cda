#include "service/core/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/civil_time.h"
#include "tests/support/bad_request.h"
#include "tests/support/records.h"
#include "tests/support/temp_dir.h"

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
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::TimeZone zone;
    ASSERT_TRUE(absl::LoadTimeZone("America/Edmonton", &zone));
    const absl::Time now = absl::FromCivil(absl::CivilSecond(2026, 11, 25, 12, 0, 0), zone);
    registry_ = std::make_unique<Registry>(store_.get(), zone, [now] { return now; });
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
    v1::GetPractitionerRequest request;
    request.set_registration_id(id);
    v1::Practitioner p;
    absl::Status found = registry_->GetPractitioner(request, &p);
    EXPECT_TRUE(found.ok()) << found;
    return p;
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
  v1::Practitioner changed = ValidPractitioner("PT-1");
  changed.set_family_name("Different");
  v1::UpsertPractitionersResponse replay = UpsertOk({changed, ValidPractitioner("PT-9")}, "req-1");
  EXPECT_EQ(replay.SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(store_->revision(), 1);
  EXPECT_EQ(Get("PT-1").family_name(), "O'Brien-Smith");
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

}  // namespace
}  // namespace physioreg::core
