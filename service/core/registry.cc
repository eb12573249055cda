#include "service/core/registry.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "service/core/dates.h"
#include "service/core/validation.h"
#include "service/core/verification.h"
#include "storage/key_codec.h"

namespace physioreg::core {
namespace {

using google::protobuf::RepeatedPtrField;
using physioreg::v1::Authorization;
using physioreg::v1::ChangeEvent;
using physioreg::v1::Permit;
using physioreg::v1::Practitioner;
using physioreg::v1::StatusChange;

constexpr int kDefaultPageSize = 20;
constexpr int kMaxPageSize = 100;
constexpr absl::string_view kUpsertRequestPrefix = "upsert_request/";
constexpr absl::string_view kImportPrefix = "import/";
// Rejections listed in an import summary; rejected_count counts them all.
constexpr int kMaxListedRejections = 100'000;

StatusChange MakeChange(absl::string_view status, absl::string_view effective_on,
                        absl::string_view reason) {
  StatusChange change;
  change.set_status(std::string(status));
  change.set_effective_on(std::string(effective_on));
  change.set_reason(std::string(reason));
  return change;
}

// Keeps a timeline in step with the status a client uploaded. An uploaded history is kept as
// sent (it was validated); otherwise the stored one is carried over and a change of status is
// appended on `today`; a timeline without a past starts on `start`.
void MergeHistory(absl::string_view status, const RepeatedPtrField<StatusChange>* stored,
                  absl::string_view start, absl::string_view today,
                  RepeatedPtrField<StatusChange>* history) {
  if (!history->empty()) return;
  if (stored == nullptr || stored->empty()) {
    *history->Add() = MakeChange(status, start, "");
    return;
  }
  *history = *stored;
  const StatusChange& last = (*stored)[stored->size() - 1];
  if (last.status() != status) {
    // Never before the last entry, so the timeline stays ordered.
    const absl::string_view on = std::max(today, absl::string_view(last.effective_on()));
    *history->Add() = MakeChange(status, on, "changed by upload");
  }
}

// The record to store for an upload: normalized id, server-set fields cleared, timelines kept.
Practitioner PrepareUpload(const Practitioner& sent, const Practitioner* stored,
                           absl::string_view today) {
  Practitioner record = sent;
  record.set_registration_id(*NormalizeRegistrationId(sent.registration_id()));
  record.clear_revision();
  record.clear_update_time();
  // One order whatever the source (JSON lists, CSV columns): authorizations by activity.
  std::sort(
      record.mutable_authorizations()->begin(), record.mutable_authorizations()->end(),
      [](const Authorization& a, const Authorization& b) { return a.activity() < b.activity(); });
  Permit* permit = record.mutable_permit();
  MergeHistory(Permit::Status_Name(permit->status()),
               stored ? &stored->permit().status_history() : nullptr, permit->registered_on(),
               today, permit->mutable_status_history());
  for (Authorization& a : *record.mutable_authorizations()) {
    const Authorization* previous = nullptr;
    if (stored != nullptr) {
      for (const Authorization& s : stored->authorizations()) {
        if (s.activity() == a.activity()) previous = &s;
      }
    }
    MergeHistory(Authorization::Status_Name(a.status()),
                 previous ? &previous->status_history() : nullptr,
                 a.granted_on().empty() ? today : absl::string_view(a.granted_on()), today,
                 a.mutable_status_history());
  }
  return record;
}

bool SameContent(Practitioner a, Practitioner b) {
  a.clear_revision();
  a.clear_update_time();
  b.clear_revision();
  b.clear_update_time();
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

absl::StatusOr<int> PageSize(int requested, absl::string_view field) {
  if (requested < 0) {
    Violations v;
    v.Add(std::string(field), "must not be negative");
    return v.ToStatus();
  }
  if (requested == 0) return kDefaultPageSize;
  return std::min(requested, kMaxPageSize);
}

std::string HistoryPageToken(absl::string_view id, int64_t last_revision) {
  std::string raw;
  storage::AppendString(&raw, id);
  storage::AppendInt64(&raw, last_revision);
  return absl::WebSafeBase64Escape(raw);
}

// The revision after which the page starts; fails when the token is not one we issued for `id`.
absl::StatusOr<int64_t> ParseHistoryPageToken(absl::string_view token, absl::string_view id) {
  if (token.empty()) return 0;
  std::string raw;
  absl::string_view in;
  std::optional<std::string> token_id;
  std::optional<int64_t> revision;
  if (absl::WebSafeBase64Unescape(token, &raw)) {
    in = raw;
    token_id = storage::ConsumeString(&in);
    revision = storage::ConsumeInt64(&in);
  }
  if (!token_id || !revision || !in.empty() || *token_id != id || *revision < 0) {
    Violations v;
    v.Add("page_token", "is not a page token of this registrant's history");
    return v.ToStatus();
  }
  return *revision;
}

}  // namespace

Registry::Registry(storage::Store* store, absl::TimeZone zone, Clock clock)
    : store_(store), zone_(zone), clock_(std::move(clock)) {}

std::string Registry::Today() const { return DateIn(clock_(), zone_); }

absl::Status Registry::GetPractitioner(const physioreg::v1::GetPractitionerRequest& request,
                                       Practitioner* out) const {
  Violations v;
  ValidateRegistrationId(request.registration_id(), "registration_id", &v);
  if (!v.empty()) return v.ToStatus();
  const std::string id = *NormalizeRegistrationId(request.registration_id());
  absl::StatusOr<bool> found = store_->GetPractitionerInto(id, out);
  if (!found.ok()) return found.status();
  if (!*found) return absl::NotFoundError(absl::StrCat("no registrant ", id));
  return absl::OkStatus();
}

absl::Status Registry::CheckVerifyRequest(const physioreg::v1::VerifyAuthorizationRequest& request,
                                          absl::string_view prefix, std::string* id,
                                          std::string* as_of) const {
  Violations v;
  ValidateRegistrationId(request.registration_id(), absl::StrCat(prefix, "registration_id"), &v);
  ValidateActivity(request.activity(), absl::StrCat(prefix, "activity"), &v);
  if (!request.as_of().empty() && !IsValidDate(request.as_of())) {
    v.Add(absl::StrCat(prefix, "as_of"), "is not a real date in YYYY-MM-DD form");
  }
  if (!v.empty()) return v.ToStatus();
  *id = *NormalizeRegistrationId(request.registration_id());
  *as_of = request.as_of().empty() ? Today() : request.as_of();
  return absl::OkStatus();
}

absl::Status Registry::Verify(const physioreg::v1::VerifyAuthorizationRequest& request,
                              physioreg::v1::VerifyAuthorizationResponse* out) const {
  std::string id, as_of;
  if (absl::Status s = CheckVerifyRequest(request, "", &id, &as_of); !s.ok()) return s;
  // The revision reported is the one the answer was computed from.
  absl::Status read =
      store_->VisitPractitionerWithRevision(id, [&](const Practitioner* record, int64_t revision) {
        core::Verify(record, id, request.activity(), as_of, out);
        out->set_register_revision(revision);
      });
  if (!read.ok()) return read;
  *out->mutable_checked_at() = ToTimestamp(clock_());
  return absl::OkStatus();
}

absl::StatusOr<physioreg::v1::BatchVerifyAuthorizationsResponse> Registry::BatchVerify(
    const physioreg::v1::BatchVerifyAuthorizationsRequest& request) const {
  Violations v;
  if (request.requests_size() > kMaxRecordsPerRequest) {
    v.Add("requests", absl::StrCat("at most ", kMaxRecordsPerRequest, " per call"));
    return v.ToStatus();
  }
  std::vector<std::pair<std::string, std::string>> checked(request.requests_size());
  for (int i = 0; i < request.requests_size(); ++i) {
    absl::Status s = CheckVerifyRequest(request.requests(i), absl::StrCat("requests[", i, "]."),
                                        &checked[i].first, &checked[i].second);
    if (!s.ok()) {
      auto payload = s.GetPayload(kBadRequestTypeUrl);
      google::rpc::BadRequest bad;
      if (payload && bad.ParseFromString(std::string(*payload))) {
        for (const auto& f : bad.field_violations()) v.Add(f.field(), f.description());
      }
    }
  }
  if (!v.empty()) return v.ToStatus();
  std::unique_ptr<storage::ReadView> view = store_->View();
  const google::protobuf::Timestamp now = ToTimestamp(clock_());
  physioreg::v1::BatchVerifyAuthorizationsResponse response;
  response.mutable_responses()->Reserve(request.requests_size());
  // One batched read for the whole request instead of a Get per id.
  std::vector<std::string> ids;
  ids.reserve(checked.size());
  for (const auto& [id, as_of] : checked) ids.push_back(id);
  absl::Status read = view->VisitPractitioners(ids, [&](size_t i, const Practitioner* record) {
    auto* answer = response.add_responses();
    core::Verify(record, checked[i].first, request.requests(i).activity(), checked[i].second,
                 answer);
    answer->set_register_revision(view->revision());
    *answer->mutable_checked_at() = now;
  });
  if (!read.ok()) return read;
  return response;
}

absl::StatusOr<physioreg::v1::ListPractitionerHistoryResponse> Registry::ListHistory(
    const physioreg::v1::ListPractitionerHistoryRequest& request, bool include_actor) const {
  Violations v;
  ValidateRegistrationId(request.registration_id(), "registration_id", &v);
  if (!v.empty()) return v.ToStatus();
  const std::string id = *NormalizeRegistrationId(request.registration_id());
  absl::StatusOr<int> page_size = PageSize(request.page_size(), "page_size");
  if (!page_size.ok()) return page_size.status();
  absl::StatusOr<int64_t> after = ParseHistoryPageToken(request.page_token(), id);
  if (!after.ok()) return after.status();

  std::unique_ptr<storage::ReadView> view = store_->View();
  // One extra event tells whether another page follows.
  absl::StatusOr<std::vector<ChangeEvent>> events = view->ListHistory(id, *after, *page_size + 1);
  if (!events.ok()) return events.status();
  if (events->empty() && *after == 0) {
    return absl::NotFoundError(absl::StrCat("no registrant ", id));
  }
  physioreg::v1::ListPractitionerHistoryResponse response;
  for (int i = 0; i < static_cast<int>(events->size()) && i < *page_size; ++i) {
    ChangeEvent& event = (*events)[i];
    if (!include_actor) event.clear_actor();
    *response.add_events() = std::move(event);
  }
  if (static_cast<int>(events->size()) > *page_size) {
    response.set_next_page_token(
        HistoryPageToken(id, response.events(response.events_size() - 1).revision()));
  }
  return response;
}

absl::StatusOr<physioreg::v1::UpsertPractitionersResponse> Registry::Upsert(
    const physioreg::v1::UpsertPractitionersRequest& request, const std::string& actor) {
  const std::string today = Today();
  Violations v;
  ValidateText(request.request_id(), "request_id", kMaxRequestIdBytes, &v);
  if (request.practitioners_size() > kMaxRecordsPerRequest) {
    v.Add("practitioners",
          absl::StrCat("has ", request.practitioners_size(), " records; at most ",
                       kMaxRecordsPerRequest, " per request (use ImportPractitioners for more)"));
    return v.ToStatus();
  }
  std::map<std::string, int> first_index_of_id;
  for (int i = 0; i < request.practitioners_size(); ++i) {
    const std::string path = absl::StrCat("practitioners[", i, "]");
    const Practitioner& p = request.practitioners(i);
    ValidatePractitioner(p, path, today, &v);
    if (std::optional<std::string> id = NormalizeRegistrationId(p.registration_id())) {
      auto [it, inserted] = first_index_of_id.emplace(*id, i);
      if (!inserted) {
        v.Add(absl::StrCat(path, ".registration_id"),
              absl::StrCat("duplicates practitioners[", it->second, "].registration_id"));
      }
    }
  }
  if (!v.empty()) return v.ToStatus();

  std::lock_guard<std::mutex> lock(write_mu_);
  std::string request_key;
  if (!request.request_id().empty()) {
    request_key = absl::StrCat(kUpsertRequestPrefix, request.request_id());
    absl::StatusOr<std::optional<std::string>> replay = store_->GetMeta(request_key);
    if (!replay.ok()) return replay.status();
    if (replay->has_value()) {
      physioreg::v1::UpsertPractitionersResponse first;
      if (!first.ParseFromString(**replay)) return absl::DataLossError("bad idempotency record");
      return first;
    }
  }

  ApplyCounts counts;
  storage::Commit commit;
  std::vector<const Practitioner*> records;
  for (const Practitioner& p : request.practitioners()) records.push_back(&p);
  if (absl::Status s = PrepareChanges(records, actor, today, &counts, &commit); !s.ok()) return s;
  physioreg::v1::UpsertPractitionersResponse response;
  response.set_created(counts.created);
  response.set_updated(counts.updated);
  response.set_unchanged(counts.unchanged);
  const int64_t revision = store_->revision() + static_cast<int64_t>(commit.changes.size());
  response.set_revision(revision);
  if (!request_key.empty())
    commit.meta_puts.emplace_back(request_key, response.SerializeAsString());
  if (!commit.changes.empty() || !commit.meta_puts.empty()) {
    if (absl::Status s = store_->Write(commit); !s.ok()) return s;
  }
  return response;
}

absl::StatusOr<Practitioner> Registry::LoadForUpdate(const std::string& id) const {
  absl::StatusOr<std::optional<Practitioner>> stored = store_->GetPractitioner(id);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return absl::NotFoundError(absl::StrCat("no registrant ", id));
  return std::move(**stored);
}

absl::StatusOr<Practitioner> Registry::CommitOne(Practitioner record, ChangeEvent::Kind kind,
                                                 const std::string& actor) {
  storage::Commit commit;
  AddChange(std::move(record), kind, actor, store_->revision() + 1, clock_(), &commit);
  if (absl::Status s = store_->Write(commit); !s.ok()) return s;
  return commit.changes.back().record;
}

void Registry::AddChange(Practitioner record, ChangeEvent::Kind kind, const std::string& actor,
                         int64_t revision, absl::Time now, storage::Commit* commit) {
  record.set_revision(revision);
  *record.mutable_update_time() = ToTimestamp(now);
  storage::RecordChange& change = commit->changes.emplace_back();
  change.event.set_revision(revision);
  change.event.set_registration_id(record.registration_id());
  *change.event.mutable_change_time() = ToTimestamp(now);
  change.event.set_kind(kind);
  change.event.set_actor(actor);
  *change.event.mutable_practitioner() = PublicView(record);
  change.record = std::move(record);
}

absl::Status Registry::PrepareChanges(const std::vector<const Practitioner*>& records,
                                      const std::string& actor, const std::string& today,
                                      ApplyCounts* counts, storage::Commit* commit) const {
  const absl::Time now = clock_();
  // A registrant may appear twice in one import chunk: the later record is compared with the
  // earlier one's pending change, so the chunk behaves like the records applied in order.
  std::map<std::string, size_t> pending;  // id -> index in commit->changes
  for (const Practitioner* sent : records) {
    const std::string id = *NormalizeRegistrationId(sent->registration_id());
    std::optional<Practitioner> stored;
    if (auto it = pending.find(id); it != pending.end()) {
      stored = commit->changes[it->second].record;
    } else {
      absl::StatusOr<std::optional<Practitioner>> found = store_->GetPractitioner(id);
      if (!found.ok()) return found.status();
      stored = *std::move(found);
    }
    const Practitioner* previous = stored.has_value() ? &*stored : nullptr;
    Practitioner record = PrepareUpload(*sent, previous, today);
    if (previous != nullptr && SameContent(record, *previous)) {
      ++counts->unchanged;
      continue;
    }
    ++(previous == nullptr ? counts->created : counts->updated);
    const int64_t revision = store_->revision() + static_cast<int64_t>(commit->changes.size()) + 1;
    pending[id] = commit->changes.size();
    AddChange(std::move(record), previous == nullptr ? ChangeEvent::CREATED : ChangeEvent::UPDATED,
              actor, revision, now, commit);
  }
  return absl::OkStatus();
}

namespace {

// Appends a status change to a timeline. Returns false (and changes nothing) when the status
// is already in force; FAILED_PRECONDITION when it would rewrite the past.
absl::StatusOr<bool> AppendStatus(RepeatedPtrField<StatusChange>* history, absl::string_view status,
                                  absl::string_view effective_on, absl::string_view reason) {
  if (!history->empty()) {
    const StatusChange& last = (*history)[history->size() - 1];
    if (last.status() == status) return false;
    if (effective_on < last.effective_on()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "effective_on ", effective_on, " is before the last recorded change (", last.status(),
          " on ", last.effective_on(), "); upload a full status_history to rewrite the past"));
    }
  }
  *history->Add() = MakeChange(status, effective_on, reason);
  return true;
}

}  // namespace

template <typename Request>
absl::Status Registry::CheckStatusChange(const Request& request, Violations* v, std::string* id,
                                         std::string* effective_on) const {
  const std::string today = Today();
  ValidateRegistrationId(request.registration_id(), "registration_id", v);
  ValidatePastDate(request.effective_on(), "effective_on", today, v);
  ValidateText(request.reason(), "reason", kMaxLongTextBytes, v);
  if (!v->empty()) return v->ToStatus();
  *id = *NormalizeRegistrationId(request.registration_id());
  *effective_on = request.effective_on().empty() ? today : request.effective_on();
  return absl::OkStatus();
}

absl::StatusOr<Practitioner> Registry::SetAuthorizationStatus(
    const physioreg::v1::SetAuthorizationStatusRequest& request, const std::string& actor) {
  Violations v;
  ValidateActivity(request.activity(), "activity", &v);
  if (request.status() == Authorization::STATUS_UNSPECIFIED ||
      !Authorization::Status_IsValid(request.status())) {
    v.Add("status", "must be AUTHORIZED, PENDING, SUSPENDED or REVOKED");
  }
  std::string id, effective_on;
  if (absl::Status s = CheckStatusChange(request, &v, &id, &effective_on); !s.ok()) return s;

  std::lock_guard<std::mutex> lock(write_mu_);
  absl::StatusOr<Practitioner> record = LoadForUpdate(id);
  if (!record.ok()) return record.status();
  Authorization* authorization = nullptr;
  for (Authorization& a : *record->mutable_authorizations()) {
    if (a.activity() == request.activity()) authorization = &a;
  }
  if (authorization == nullptr) {
    return absl::NotFoundError(
        absl::StrCat(id, " holds no ", physioreg::v1::RestrictedActivity_Name(request.activity()),
                     " authorization"));
  }
  if (!authorization->granted_on().empty() && effective_on < authorization->granted_on()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "effective_on ", effective_on, " is before granted_on ", authorization->granted_on()));
  }
  absl::StatusOr<bool> changed =
      AppendStatus(authorization->mutable_status_history(),
                   Authorization::Status_Name(request.status()), effective_on, request.reason());
  if (!changed.ok()) return changed.status();
  if (!*changed) return record;
  authorization->set_status(request.status());
  return CommitOne(*std::move(record), ChangeEvent::AUTHORIZATION_STATUS_CHANGED, actor);
}

absl::StatusOr<Practitioner> Registry::SetPermitStatus(
    const physioreg::v1::SetPermitStatusRequest& request, const std::string& actor) {
  Violations v;
  if (request.status() == Permit::STATUS_UNSPECIFIED || !Permit::Status_IsValid(request.status())) {
    v.Add("status", "must be ACTIVE, INACTIVE, SUSPENDED or CANCELLED");
  }
  std::string id, effective_on;
  if (absl::Status s = CheckStatusChange(request, &v, &id, &effective_on); !s.ok()) return s;

  std::lock_guard<std::mutex> lock(write_mu_);
  absl::StatusOr<Practitioner> record = LoadForUpdate(id);
  if (!record.ok()) return record.status();
  Permit* permit = record->mutable_permit();
  if (effective_on < permit->registered_on()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "effective_on ", effective_on, " is before registered_on ", permit->registered_on()));
  }
  absl::StatusOr<bool> changed =
      AppendStatus(permit->mutable_status_history(), Permit::Status_Name(request.status()),
                   effective_on, request.reason());
  if (!changed.ok()) return changed.status();
  if (!*changed) return record;
  permit->set_status(request.status());
  return CommitOne(*std::move(record), ChangeEvent::PERMIT_STATUS_CHANGED, actor);
}

absl::StatusOr<std::optional<physioreg::v1::ImportPractitionersResponse>> Registry::FindImport(
    const std::string& import_id) const {
  Violations v;
  ValidateText(import_id, "import_id", kMaxRequestIdBytes, &v);
  if (!v.empty()) return v.ToStatus();
  if (import_id.empty()) return std::nullopt;
  absl::StatusOr<std::optional<std::string>> stored =
      store_->GetMeta(absl::StrCat(kImportPrefix, import_id));
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return std::nullopt;
  physioreg::v1::ImportPractitionersResponse summary;
  if (!summary.ParseFromString(**stored)) return absl::DataLossError("bad import summary");
  return summary;
}

absl::Status Registry::ImportChunk(const RepeatedPtrField<Practitioner>& records,
                                   int64_t first_index, const std::string& actor,
                                   physioreg::v1::ImportPractitionersResponse* summary) {
  const std::string today = Today();
  std::vector<const Practitioner*> valid;
  for (int i = 0; i < records.size(); ++i) {
    Violations v;
    ValidatePractitioner(records[i], "", today, &v);
    if (v.empty()) {
      valid.push_back(&records[i]);
      continue;
    }
    summary->set_rejected_count(summary->rejected_count() + 1);
    if (summary->rejected_size() < kMaxListedRejections) {
      physioreg::v1::RejectedRecord* rejected = summary->add_rejected();
      rejected->set_index(first_index + i);
      rejected->set_registration_id(records[i].registration_id());
      *rejected->mutable_violations() = v.bad_request().field_violations();
    }
  }
  summary->set_received(summary->received() + records.size());
  std::lock_guard<std::mutex> lock(write_mu_);
  ApplyCounts counts;
  storage::Commit commit;
  if (absl::Status s = PrepareChanges(valid, actor, today, &counts, &commit); !s.ok()) return s;
  if (!commit.changes.empty()) {
    if (absl::Status s = store_->Write(commit); !s.ok()) return s;
  }
  summary->set_applied(summary->applied() + counts.created + counts.updated);
  summary->set_unchanged(summary->unchanged() + counts.unchanged);
  return absl::OkStatus();
}

absl::Status Registry::FinishImport(const std::string& import_id,
                                    physioreg::v1::ImportPractitionersResponse* summary) {
  std::lock_guard<std::mutex> lock(write_mu_);
  summary->set_revision(store_->revision());
  if (import_id.empty()) return absl::OkStatus();
  storage::Commit commit;
  commit.meta_puts.emplace_back(absl::StrCat(kImportPrefix, import_id),
                                summary->SerializeAsString());
  return store_->Write(commit);
}

}  // namespace physioreg::core
