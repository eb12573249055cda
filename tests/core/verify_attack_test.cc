// Attacks on this session's Verify read path (issue 13, helper attack6): registrants with every
// activity authorized, long and many conditions, non-ASCII preferred names and multi-entry
// histories, stored by the import (public view serialized ahead of the writer) and by Upsert,
// verified single and batched on every date where an answer may change. Every answer must be
// core::Verify's over the whole stored public view (GetPractitioner).
#include <random>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "gtest/gtest.h"
#include "physioreg/v1/practitioner.pb.h"
#include "physioreg/v1/registry.pb.h"
#include "service/core/registry.h"
#include "service/core/verification.h"
#include "storage/store.h"
#include "tests/support/fixed_registry.h"
#include "tests/support/temp_dir.h"
#include "tools/generator/generator.h"

namespace physioreg::core {
namespace {

namespace v1 = physioreg::v1;
using physioreg::testing::TempDir;

const std::vector<v1::RestrictedActivity>& Activities() {
  static const auto* activities = new std::vector<v1::RestrictedActivity>{
      v1::DRY_NEEDLING, v1::ACUPUNCTURE, v1::SPINAL_MANIPULATION, v1::PELVIC_HEALTH_INTERNAL_EXAM,
      v1::DIAGNOSTIC_IMAGING_ORDERING};
  return *activities;
}

std::string DayBefore(const std::string& date) {
  absl::CivilDay day;
  if (!absl::ParseCivilTime(date, &day)) return date;
  return absl::FormatCivilTime(day - 1);
}

std::string DayAfter(const std::string& date) {
  absl::CivilDay day;
  if (!absl::ParseCivilTime(date, &day)) return date;
  return absl::FormatCivilTime(day + 1);
}

// A generated registrant made heavy: an authorization for every activity its register allows
// (copies of its own, so their histories stay valid), many long conditions, a non-ASCII
// preferred name on every other one.
v1::Practitioner Heavy(int64_t index) {
  v1::Practitioner record = tools::GenerateRegistrant(21, index);
  const bool provisional = record.permit().register_() == v1::PROVISIONAL;
  if (record.authorizations_size() > 0) {
    const v1::Authorization model = record.authorizations(0);
    std::vector<bool> held(8, false);
    for (const v1::Authorization& a : record.authorizations()) held[a.activity()] = true;
    for (v1::RestrictedActivity activity : Activities()) {
      if (held[activity]) continue;
      if (provisional && (activity == v1::DRY_NEEDLING || activity == v1::SPINAL_MANIPULATION))
        continue;
      v1::Authorization& added = *record.add_authorizations();
      added = model;
      added.set_activity(activity);
      if (activity != v1::DRY_NEEDLING) added.clear_techniques();
    }
  }
  for (v1::Authorization& a : *record.mutable_authorizations()) {
    for (int c = 0; c < 1 + index % 6; ++c) {
      a.add_conditions(absl::StrCat("Condition ", c, " \xC3\xA9t\xC3\xA9 \xE6\xB2\xBB\xE7\x99\x82 ",
                                    std::string(100 * (c + 1), 'x')));
    }
  }
  if (index % 2 == 0) record.set_preferred_name("\xC3\x89lo\xC3\xAFse \xF0\x9F\x98\x80");
  return record;
}

// Dates where an answer may change: around every granted_on, expires_on and history entry,
// the range's ends and the registry's today (as_of empty).
std::vector<std::string> EdgeDates(const v1::Practitioner& p) {
  std::vector<std::string> dates = {"", "1900-01-01", "2999-12-31", "2026-11-25", "2026-11-26"};
  auto around = [&dates](const std::string& date) {
    if (date.empty()) return;
    dates.push_back(DayBefore(date));
    dates.push_back(date);
    dates.push_back(DayAfter(date));
  };
  around(p.permit().registered_on());
  around(p.permit().expires_on());
  for (const auto& change : p.permit().status_history()) around(change.effective_on());
  for (const v1::Authorization& a : p.authorizations()) {
    around(a.granted_on());
    around(a.expires_on());
    for (const auto& change : a.status_history()) around(change.effective_on());
  }
  return dates;
}

class VerifyAttackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(physioreg::testing::OpenFixedClockRegistry(dir_, &store_, &registry_));
  }

  v1::Practitioner Get(const std::string& id) {
    return physioreg::testing::GetOrFail(*registry_, id);
  }

  // The rule over the whole record, as the stored answer would carry it.
  v1::VerifyAuthorizationResponse Want(const v1::Practitioner* whole,
                                       const v1::VerifyAuthorizationRequest& request,
                                       const v1::VerifyAuthorizationResponse& got) {
    const std::string id = whole == nullptr ? request.registration_id() : whole->registration_id();
    v1::VerifyAuthorizationResponse want =
        core::Verify(whole, id, request.activity(),
                     request.as_of().empty() ? registry_->Today() : request.as_of());
    want.set_register_revision(got.register_revision());
    *want.mutable_checked_at() = got.checked_at();
    return want;
  }

  TempDir dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(VerifyAttackTest, HeavyImportedAndUpsertedRegistrantsAnswerAsTheirWholeRecords) {
  constexpr int kCount = 300;
  // Half by the import (two chunks), half by Upsert.
  ImportSession session;
  ASSERT_TRUE(registry_->StartImport("", false, "k1", &session).ok());
  for (int chunk = 0; chunk < 2; ++chunk) {
    google::protobuf::RepeatedPtrField<v1::Practitioner> records;
    for (int i = chunk * kCount / 4; i < (chunk + 1) * kCount / 4; ++i) *records.Add() = Heavy(i);
    ASSERT_TRUE(registry_->ImportChunk(records, "k1", &session).ok());
  }
  ASSERT_TRUE(registry_->FinishImport("k1", &session).ok());
  ASSERT_EQ(session.summary.rejected_count(), 0) << session.summary.rejected(0).ShortDebugString();
  ASSERT_EQ(session.summary.applied(), kCount / 2);
  v1::UpsertPractitionersRequest upsert;
  for (int i = kCount / 2; i < kCount; ++i) *upsert.add_practitioners() = Heavy(i);
  absl::StatusOr<v1::UpsertPractitionersResponse> upserted = registry_->Upsert(upsert, "k1");
  ASSERT_TRUE(upserted.ok()) << upserted.status();

  int authorized = 0, checked = 0;
  std::mt19937 rng(13);
  std::vector<v1::VerifyAuthorizationRequest> all;
  for (int i = 0; i < kCount; ++i) {
    const std::string id = Heavy(i).registration_id();
    const v1::Practitioner whole = Get(id);
    ASSERT_GT(whole.revision(), 0) << id;
    ASSERT_TRUE(whole.has_update_time()) << id;
    for (v1::RestrictedActivity activity : Activities()) {
      for (const std::string& as_of : EdgeDates(whole)) {
        v1::VerifyAuthorizationRequest request;
        request.set_registration_id(rng() % 2 ? id : absl::AsciiStrToLower(id));
        request.set_activity(activity);
        request.set_as_of(as_of);
        v1::VerifyAuthorizationResponse got;
        ASSERT_TRUE(registry_->Verify(request, &got).ok()) << id;
        ASSERT_EQ(got.SerializeAsString(), Want(&whole, request, got).SerializeAsString())
            << id << " " << v1::RestrictedActivity_Name(activity) << " on '" << as_of << "'";
        authorized += got.authorized();
        ++checked;
        if (rng() % 8 == 0) all.push_back(request);
      }
    }
  }
  EXPECT_GT(authorized, checked / 50);
  EXPECT_LT(authorized, checked / 2 + checked / 4);

  // Batches of 1,000: repeated ids, unknown ids, every activity, mixed attestation requests.
  for (int round = 0; round < 4; ++round) {
    v1::BatchVerifyAuthorizationsRequest batch;
    for (int k = 0; k < kMaxRecordsPerRequest; ++k) {
      v1::VerifyAuthorizationRequest& one = *batch.add_requests();
      if (k % 97 == 5) {
        one.set_registration_id(absl::StrCat("NOPE-", k));
        one.set_activity(Activities()[k % Activities().size()]);
      } else if (k % 10 == 3 && k > 0) {
        one = batch.requests(k - 1);  // The same id and question again.
      } else {
        one = all[rng() % all.size()];
      }
      one.set_include_attestation(k % 3 == 0);
    }
    absl::StatusOr<v1::BatchVerifyAuthorizationsResponse> answers = registry_->BatchVerify(batch);
    if (!answers.ok()) {
      // Long conditions may make the answer pass the size limit: a clear refusal then.
      ASSERT_EQ(answers.status().code(), absl::StatusCode::kOutOfRange) << answers.status();
      batch.mutable_requests()->DeleteSubrange(250, batch.requests_size() - 250);
      answers = registry_->BatchVerify(batch);
      ASSERT_TRUE(answers.ok()) << answers.status();
    }
    ASSERT_EQ(answers->responses_size(), batch.requests_size());
    for (int k = 0; k < batch.requests_size(); ++k) {
      const v1::VerifyAuthorizationRequest& one = batch.requests(k);
      const v1::VerifyAuthorizationResponse& got = answers->responses(k);
      v1::VerifyAuthorizationResponse want;
      if (absl::StartsWith(one.registration_id(), "NOPE-")) {
        want = Want(nullptr, one, got);
      } else {
        const v1::Practitioner whole = Get(one.registration_id());
        want = Want(&whole, one, got);
      }
      ASSERT_EQ(got.SerializeAsString(), want.SerializeAsString())
          << "round " << round << " #" << k;
    }
  }
}

// An imported registrant's history and change events carry the revision and update time the
// writer gave them (the view is serialized ahead without them), equal to the stored record's.
TEST_F(VerifyAttackTest, ImportedRegistrantsHistoryCarriesRevisionAndUpdateTime) {
  ImportSession session;
  ASSERT_TRUE(registry_->StartImport("", false, "k1", &session).ok());
  google::protobuf::RepeatedPtrField<v1::Practitioner> records;
  for (int i = 0; i < 20; ++i) *records.Add() = Heavy(i);
  ASSERT_TRUE(registry_->ImportChunk(records, "k1", &session).ok());
  ASSERT_TRUE(registry_->FinishImport("k1", &session).ok());
  ASSERT_EQ(session.summary.applied(), 20);
  for (int i = 0; i < 20; ++i) {
    const v1::Practitioner whole = Get(records[i].registration_id());
    v1::ListPractitionerHistoryRequest request;
    request.set_registration_id(whole.registration_id());
    absl::StatusOr<v1::ListPractitionerHistoryResponse> history =
        registry_->ListHistory(request, /*regulator=*/true);
    ASSERT_TRUE(history.ok()) << history.status();
    ASSERT_EQ(history->events_size(), 1);
    const v1::ChangeEvent& event = history->events(0);
    EXPECT_EQ(event.kind(), v1::ChangeEvent::CREATED);
    EXPECT_EQ(event.revision(), whole.revision());
    EXPECT_EQ(event.practitioner().revision(), whole.revision());
    EXPECT_TRUE(event.practitioner().has_update_time());
    EXPECT_EQ(event.practitioner().update_time().SerializeAsString(),
              whole.update_time().SerializeAsString());
    EXPECT_EQ(event.change_time().SerializeAsString(), whole.update_time().SerializeAsString());
    EXPECT_EQ(event.practitioner().SerializeAsString(), whole.SerializeAsString());
  }
}

}  // namespace
}  // namespace physioreg::core
