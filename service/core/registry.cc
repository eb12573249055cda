#include "service/core/registry.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/util/field_mask_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "physioreg/storage/v1/records.pb.h"
#include "service/core/changed_activities.h"
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
using physioreg::v1::RestrictedActivity;
using physioreg::v1::StatusChange;

constexpr int kDefaultPageSize = 20;
constexpr int kMaxPageSize = 100;
// Idempotency records, keyed by the writer's key id and the id it chose (both length-prefixed).
constexpr absl::string_view kUpsertRequestPrefix = "idempotency/upsert/";
constexpr absl::string_view kImportPrefix = "idempotency/import/";
// Rejections listed in an import summary (rejected_count counts them all), and the violations
// listed per rejected record: the summary stays a few MB at most, below gRPC's 4 MiB default.
constexpr int kMaxListedRejections = 1000;
constexpr int kMaxViolationsPerRejection = 10;
// Answers are cut (history pages) or refused (batches) past this many bytes, below the 4 MiB a
// gRPC client accepts by default.
constexpr size_t kMaxResponseBytes = 3 << 20;
// The fields an update_mask may name.
constexpr absl::string_view kMaskablePaths[] = {
    "given_name",     "family_name", "preferred_name", "former_names", "permit",
    "authorizations", "locations",   "languages",      "conditions",   "private_contact"};

std::string IdempotencyKey(absl::string_view prefix, absl::string_view actor,
                           absl::string_view id) {
  std::string key(prefix);
  storage::AppendString(&key, actor);
  storage::AppendString(&key, id);
  return key;
}

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
// appended on `today`; a timeline without a past starts on `start`. A stored timeline whose
// first entry is the server's own start entry follows a corrected start date when it can.
void MergeHistory(absl::string_view status, const RepeatedPtrField<StatusChange>* stored,
                  absl::string_view stored_start, absl::string_view start, absl::string_view today,
                  RepeatedPtrField<StatusChange>* history) {
  if (!history->empty()) return;
  if (stored == nullptr || stored->empty()) {
    *history->Add() = MakeChange(status, start, "");
    return;
  }
  *history = *stored;
  StatusChange& first = (*history)[0];
  if (start != stored_start && first.effective_on() == stored_start && first.reason().empty() &&
      IsValidDate(start) &&
      (history->size() == 1 || start <= absl::string_view((*history)[1].effective_on()))) {
    first.set_effective_on(std::string(start));
  }
  const StatusChange& last = (*history)[history->size() - 1];
  if (last.status() != status) {
    // Never before the last entry, so the timeline stays ordered.
    const absl::string_view on = std::max(today, absl::string_view(last.effective_on()));
    *history->Add() = MakeChange(status, on, "changed by upload");
  }
}

const Authorization* FindAuthorization(const Practitioner& p, int activity) {
  for (const Authorization& a : p.authorizations()) {
    if (a.activity() == activity) return &a;
  }
  return nullptr;
}

// Where a stored authorization's timeline started when the server began it: granted_on, or
// the upload date (its first entry) when it had none.
absl::string_view StoredStart(const Authorization* a) {
  if (a == nullptr) return "";
  if (!a->granted_on().empty() || a->status_history().empty()) return a->granted_on();
  return a->status_history(0).effective_on();
}

// The record to store for an upload: normalized id, server-set fields cleared, timelines kept.
Practitioner PrepareUpload(const Practitioner& sent, const Practitioner* stored,
                           absl::string_view today) {
  Practitioner record = sent;
  record.set_registration_id(*NormalizeRegistrationId(sent.registration_id()));
  record.clear_revision();
  record.clear_update_time();
  // One order whatever the source (JSON lists, CSV columns): authorizations by activity.
  std::stable_sort(
      record.mutable_authorizations()->begin(), record.mutable_authorizations()->end(),
      [](const Authorization& a, const Authorization& b) { return a.activity() < b.activity(); });
  Permit* permit = record.mutable_permit();
  MergeHistory(Permit::Status_Name(permit->status()),
               stored ? &stored->permit().status_history() : nullptr,
               stored ? stored->permit().registered_on() : "", permit->registered_on(), today,
               permit->mutable_status_history());
  for (Authorization& a : *record.mutable_authorizations()) {
    const Authorization* previous = stored ? FindAuthorization(*stored, a.activity()) : nullptr;
    const absl::string_view start = a.granted_on().empty() ? today : a.granted_on();
    MergeHistory(Authorization::Status_Name(a.status()),
                 previous ? &previous->status_history() : nullptr, StoredStart(previous), start,
                 today, a.mutable_status_history());
  }
  return record;
}

// The statuses that stop practice: only the regulator lifts them, and they always fit a record
// (see WriteKind).
bool Restricts(Permit::Status status) {
  return status == Permit::SUSPENDED || status == Permit::CANCELLED;
}
bool Restricts(Authorization::Status status) {
  return status == Authorization::SUSPENDED || status == Authorization::REVOKED;
}
template <typename Status>
bool Restricts(const std::string& status_name, bool (*parse)(const std::string&, Status*)) {
  Status status{};
  return parse(status_name, &status) && Restricts(status);
}

bool HistoryHas(const RepeatedPtrField<StatusChange>& history, const StatusChange& change) {
  for (const StatusChange& c : history) {
    if (c.status() == change.status() && c.effective_on() == change.effective_on()) return true;
  }
  return false;
}

// A nightly upload built from an upstream system that never heard of a suspension must not
// undo it: leaving SUSPENDED / CANCELLED (permit) or SUSPENDED / REVOKED (authorization), or
// dropping such an authorization, needs an uploaded status_history that records the change
// being lifted, or the request's allow_status_lift.
void CheckNoSilentLift(const Practitioner& sent, const Practitioner& record,
                       const Practitioner& stored, absl::string_view path, Violations* v) {
  const auto& stored_permit = stored.permit().status_history();
  if (!stored_permit.empty()) {
    const StatusChange& last = stored_permit[stored_permit.size() - 1];
    if (Restricts(last.status(), &Permit::Status_Parse) && !Restricts(record.permit().status()) &&
        !HistoryHas(sent.permit().status_history(), last)) {
      v->Add(absl::StrCat(path, path.empty() ? "" : ".", "permit.status"),
             absl::StrCat("would lift the permit's ", last.status(), " status of ",
                          last.effective_on(), " (", Quote(last.reason()),
                          "); use SetPermitStatus, send a status_history that includes it, or set "
                          "allow_status_lift"));
    }
  }
  for (const Authorization& previous : stored.authorizations()) {
    const auto& history = previous.status_history();
    if (history.empty()) continue;
    const StatusChange& last = history[history.size() - 1];
    if (!Restricts(last.status(), &Authorization::Status_Parse)) continue;
    const std::string activity = physioreg::v1::RestrictedActivity_Name(previous.activity());
    int index = -1;
    for (int i = 0; i < sent.authorizations_size(); ++i) {
      if (sent.authorizations(i).activity() == previous.activity()) index = i;
    }
    const std::string field = absl::StrCat(path, path.empty() ? "" : ".", "authorizations",
                                           index < 0 ? "" : absl::StrCat("[", index, "].status"));
    if (index < 0) {
      v->Add(field, absl::StrCat("would remove the ", last.status(), " ", activity,
                                 " authorization (", last.status(), " since ", last.effective_on(),
                                 "); set allow_status_lift to remove it"));
      continue;
    }
    const Authorization& now = *FindAuthorization(record, previous.activity());
    if (!Restricts(now.status()) &&
        !HistoryHas(sent.authorizations(index).status_history(), last)) {
      v->Add(field, absl::StrCat("would lift the ", activity, " authorization's ", last.status(),
                                 " status of ", last.effective_on(), " (", Quote(last.reason()),
                                 "); use SetAuthorizationStatus, send a status_history that "
                                 "includes it, or set allow_status_lift"));
    }
  }
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

namespace {

// A Get: the request's id checked and normalized, then `read(id)` (found or not) as the answer.
absl::Status GetById(const physioreg::v1::GetPractitionerRequest& request,
                     absl::FunctionRef<absl::StatusOr<bool>(const std::string&)> read) {
  Violations v;
  ValidateRegistrationId(request.registration_id(), "registration_id", &v);
  if (!v.empty()) return v.ToStatus();
  const std::string id = *NormalizeRegistrationId(request.registration_id());
  absl::StatusOr<bool> found = read(id);
  if (!found.ok()) return found.status();
  if (!*found) return absl::NotFoundError(absl::StrCat("no registrant ", id));
  return absl::OkStatus();
}

}  // namespace

absl::Status Registry::GetPractitioner(const physioreg::v1::GetPractitionerRequest& request,
                                       Practitioner* out) const {
  return GetById(request,
                 [&](const std::string& id) { return store_->GetPractitionerInto(id, out); });
}

absl::Status Registry::GetPublicViewBytes(const physioreg::v1::GetPractitionerRequest& request,
                                          absl::FunctionRef<void(absl::string_view)> fn) const {
  return GetById(request,
                 [&](const std::string& id) { return store_->VisitPublicViewBytes(id, fn); });
}

void Registry::CheckVerifyRequest(const physioreg::v1::VerifyAuthorizationRequest& request,
                                  absl::string_view prefix, Violations* v, std::string* id,
                                  std::string* as_of) const {
  const int before = v->count();
  ValidateRegistrationId(request.registration_id(), absl::StrCat(prefix, "registration_id"), v);
  ValidateActivity(request.activity(), absl::StrCat(prefix, "activity"), v);
  if (!request.as_of().empty() && !IsValidDate(request.as_of())) {
    v->Add(absl::StrCat(prefix, "as_of"),
           absl::StrCat(Quote(request.as_of()),
                        " is not a real date in YYYY-MM-DD form (years 1900-2999)"));
  }
  if (v->count() != before) return;
  *id = *NormalizeRegistrationId(request.registration_id());
  *as_of = request.as_of().empty() ? Today() : request.as_of();
}

absl::Status Registry::Verify(const physioreg::v1::VerifyAuthorizationRequest& request,
                              physioreg::v1::VerifyAuthorizationResponse* out) const {
  std::string id, as_of;
  Violations v;
  CheckVerifyRequest(request, "", &v, &id, &as_of);
  if (!v.empty()) return v.ToStatus();
  // The rule reads its facts straight from the stored public view's bytes (no message is
  // built); the revision reported is the one the answer was computed from.
  bool parsed = true;
  absl::Status read = store_->VisitPublicViewBytesWithRevision(
      id, [&](const absl::string_view* public_view, int64_t revision) {
        std::optional<VerificationFacts> facts;
        if (public_view != nullptr) {
          facts = ParseVerificationFacts(*public_view, request.activity());
          if (!(parsed = facts.has_value())) return;
        }
        core::Verify(facts ? &*facts : nullptr, id, request.activity(), as_of, out);
        out->set_register_revision(revision);
      });
  if (!read.ok()) return read;
  if (!parsed) return absl::DataLossError("stored registrant's public view does not parse");
  *out->mutable_checked_at() = ToTimestamp(clock_());
  return absl::OkStatus();
}

absl::StatusOr<physioreg::v1::BatchVerifyAuthorizationsResponse> Registry::BatchVerify(
    const physioreg::v1::BatchVerifyAuthorizationsRequest& request) const {
  Violations v;
  if (request.requests_size() > kMaxRecordsPerRequest) {
    v.Add("requests", absl::StrCat("has ", request.requests_size(), " items; at most ",
                                   kMaxRecordsPerRequest, " per call"));
    return v.ToStatus();
  }
  std::vector<std::pair<std::string, std::string>> checked(request.requests_size());
  for (int i = 0; i < request.requests_size(); ++i) {
    CheckVerifyRequest(request.requests(i), absl::StrCat("requests[", i, "]."), &v,
                       &checked[i].first, &checked[i].second);
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
  size_t bytes = 0;
  bool parsed = true;
  absl::Status read = view->VisitPublicViewsBytes(ids, [&](size_t i,
                                                           const absl::string_view* public_view) {
    if (bytes > kMaxResponseBytes || !parsed) return;
    const physioreg::v1::RestrictedActivity activity = request.requests(i).activity();
    std::optional<VerificationFacts> facts;
    if (public_view != nullptr) {
      facts = ParseVerificationFacts(*public_view, activity);
      if (!(parsed = facts.has_value())) return;
    }
    auto* answer = response.add_responses();
    core::Verify(facts ? &*facts : nullptr, checked[i].first, activity, checked[i].second, answer);
    answer->set_register_revision(view->revision());
    *answer->mutable_checked_at() = now;
    bytes += answer->ByteSizeLong();
  });
  if (!read.ok()) return read;
  if (!parsed) return absl::DataLossError("stored registrant's public view does not parse");
  if (bytes > kMaxResponseBytes) {
    return absl::OutOfRangeError(
        absl::StrCat("the answer would pass ", kMaxResponseBytes >> 20,
                     " MiB (registrants with long conditions); send fewer requests per call"));
  }
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
  size_t bytes = 0;
  bool more = static_cast<int>(events->size()) > *page_size;
  for (int i = 0; i < static_cast<int>(events->size()) && i < *page_size; ++i) {
    ChangeEvent& event = (*events)[i];
    if (!include_actor) event.clear_actor();
    // A page of large records is cut short (never below one event); the token goes on from it.
    bytes += event.ByteSizeLong();
    if (i > 0 && bytes > kMaxResponseBytes) {
      more = true;
      break;
    }
    *response.add_events() = std::move(event);
  }
  if (more) {
    response.set_next_page_token(
        HistoryPageToken(id, response.events(response.events_size() - 1).revision()));
  }
  return response;
}

namespace {

// The idempotency record under `key` when there is one.
absl::StatusOr<std::optional<physioreg::storage::v1::IdempotencyRecord>> FindIdempotencyRecord(
    const storage::Store& store, const std::string& key) {
  absl::StatusOr<std::optional<std::string>> stored = store.GetMeta(key);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return std::nullopt;
  physioreg::storage::v1::IdempotencyRecord record;
  if (!record.ParseFromString(**stored)) return absl::DataLossError("bad idempotency record");
  return record;
}

absl::Status ReusedId(absl::string_view field, absl::string_view id) {
  return absl::AlreadyExistsError(absl::StrCat(
      field, " ", Quote(id), " was already used for a different request by this key; choose a new ",
      field, " (a replay must send exactly the same request)"));
}

}  // namespace

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
  const bool masked = request.has_update_mask();
  if (masked) {
    if (request.update_mask().paths().empty()) v.Add("update_mask", "names no field");
    for (int i = 0; i < request.update_mask().paths_size(); ++i) {
      const std::string& path = request.update_mask().paths(i);
      if (std::find(std::begin(kMaskablePaths), std::end(kMaskablePaths), path) ==
          std::end(kMaskablePaths)) {
        v.Add(absl::StrCat("update_mask.paths[", i, "]"),
              absl::StrCat(Quote(path), " is not a field an update may name (",
                           absl::StrJoin(kMaskablePaths, ", "), ")"));
      }
    }
  }
  std::map<std::string, int> first_index_of_id;
  std::vector<Upload> uploads;
  for (int i = 0; i < request.practitioners_size(); ++i) {
    const std::string path = absl::StrCat("practitioners[", i, "]");
    const Practitioner& p = request.practitioners(i);
    // A partial record is checked once merged with the stored one (PrepareChanges).
    if (masked) {
      ValidateRegistrationId(p.registration_id(), absl::StrCat(path, ".registration_id"), &v);
    } else {
      ValidatePractitioner(p, path, today, &v);
    }
    if (std::optional<std::string> id = NormalizeRegistrationId(p.registration_id())) {
      auto [it, inserted] = first_index_of_id.emplace(*id, i);
      if (!inserted) {
        v.Add(absl::StrCat(path, ".registration_id"),
              absl::StrCat("duplicates practitioners[", it->second, "].registration_id"));
      }
    }
    uploads.push_back(Upload{&p, path, i});
  }
  if (!v.empty()) return v.ToStatus();

  std::lock_guard<std::mutex> lock(write_mu_);
  std::string request_key;
  std::string request_sha256;
  if (!request.request_id().empty()) {
    request_key = IdempotencyKey(kUpsertRequestPrefix, actor, request.request_id());
    request_sha256 = Sha256Of(request.SerializeAsString());
    absl::StatusOr<std::optional<physioreg::storage::v1::IdempotencyRecord>> replay =
        FindIdempotencyRecord(*store_, request_key);
    if (!replay.ok()) return replay.status();
    if (replay->has_value()) {
      if ((*replay)->request_sha256() != request_sha256) {
        return ReusedId("request_id", request.request_id());
      }
      physioreg::v1::UpsertPractitionersResponse first;
      if (!first.ParseFromString((*replay)->response())) {
        return absl::DataLossError("bad idempotency record");
      }
      return first;
    }
  }

  ApplyCounts counts;
  storage::Commit commit;
  std::vector<Refusal> refusals;
  UploadOptions options;
  options.update_mask = masked ? &request.update_mask() : nullptr;
  options.allow_status_lift = request.allow_status_lift();
  if (absl::Status s = PrepareChanges(uploads, options, actor, today, &counts, &commit, &refusals);
      !s.ok()) {
    return s;
  }
  if (!refusals.empty()) {
    // Atomic: one refused record refuses the request, and nothing is written.
    Violations all;
    bool conflicts_only = true;
    for (const Refusal& refusal : refusals) {
      all.Merge(refusal.violations);
      conflicts_only = conflicts_only && refusal.conflict;
    }
    // A request that is fine in itself but clashes with what is stored is a precondition
    // failure; a record that would be invalid once stored is an invalid argument.
    return all.ToStatus(conflicts_only ? absl::StatusCode::kFailedPrecondition
                                       : absl::StatusCode::kInvalidArgument);
  }
  physioreg::v1::UpsertPractitionersResponse response;
  response.set_created(counts.created);
  response.set_updated(counts.updated);
  response.set_unchanged(counts.unchanged);
  const int64_t revision = store_->revision() + static_cast<int64_t>(commit.changes.size());
  response.set_revision(revision);
  if (!request_key.empty()) {
    physioreg::storage::v1::IdempotencyRecord record;
    record.set_request_sha256(request_sha256);
    record.set_response(response.SerializeAsString());
    commit.meta_puts.emplace_back(request_key, record.SerializeAsString());
  }
  if (!commit.changes.empty() || !commit.meta_puts.empty()) {
    if (absl::Status s = store_->Write(&commit); !s.ok()) return s;
  }
  return response;
}

absl::StatusOr<Practitioner> Registry::LoadForUpdate(const std::string& id) const {
  absl::StatusOr<std::optional<Practitioner>> stored =
      store_->GetPractitioner(id, storage::Detail::kWithPrivate);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return absl::NotFoundError(absl::StrCat("no registrant ", id));
  return std::move(**stored);
}

absl::StatusOr<Practitioner> Registry::CommitOne(Practitioner record, ChangeEvent::Kind kind,
                                                 const std::string& actor, const std::string& today,
                                                 WriteKind write,
                                                 std::vector<RestrictedActivity> changed) {
  // The same rules as every stored record (e.g. a timeline at its length limit); a restriction
  // may use the headroom uploads leave, so a suspension always fits.
  Violations v;
  ValidatePractitioner(record, "", today, &v);
  ValidateStoredForm(record, "", write, &v);
  if (!v.empty()) return v.ToStatus(absl::StatusCode::kFailedPrecondition);
  storage::Commit commit;
  AddChange(std::move(record), kind, actor, /*revision=*/0, clock_(), std::move(changed), &commit);
  if (absl::Status s = store_->Write(&commit); !s.ok()) return s;
  return commit.changes.back().record;
}

namespace {

// A change of `record` and its event (see Registry::AddChange).
void FillChange(Practitioner record, ChangeEvent::Kind kind, const std::string& actor,
                int64_t revision, absl::Time now, std::vector<RestrictedActivity> changed,
                storage::RecordChange* out) {
  record.set_revision(revision);
  *record.mutable_update_time() = ToTimestamp(now);
  storage::RecordChange& change = *out;
  change.event.set_revision(revision);
  change.event.set_registration_id(record.registration_id());
  *change.event.mutable_change_time() = ToTimestamp(now);
  change.event.set_kind(kind);
  change.event.set_actor(actor);
  *change.event.mutable_practitioner() = PublicView(record);
  change.event.mutable_changed_activities()->Add(changed.begin(), changed.end());
  change.record = std::move(record);
}

// FillChange for a new registrant's import, without copying the record: the record itself
// becomes the event's practitioner (its public view once the private contact is moved out),
// and the change's `record` keeps only the id and the private contact, all that Store::Write
// reads of it besides the event (see storage::RecordChange). The view's revision and
// update_time are left for the writer (ApplyImportChunk, Store::Write), and the view is
// serialized here without them (RecordChange::public_view_head) unless it carries fields this
// build does not know, which protobuf would write after them.
void FillCreatedChange(Practitioner record, absl::Time now, std::vector<RestrictedActivity> changed,
                       storage::RecordChange* out) {
  record.clear_revision();
  record.clear_update_time();
  storage::RecordChange& change = *out;
  change.record.set_registration_id(record.registration_id());
  if (record.has_private_contact()) {
    change.record.set_allocated_private_contact(record.release_private_contact());
  }
  *change.record.mutable_update_time() = ToTimestamp(now);
  change.event.set_registration_id(record.registration_id());
  *change.event.mutable_change_time() = ToTimestamp(now);
  change.event.set_kind(ChangeEvent::CREATED);
  change.event.mutable_changed_activities()->Add(changed.begin(), changed.end());
  if (record.GetReflection()->GetUnknownFields(record).empty()) {
    change.public_view_head = record.SerializeAsString();
  }
  *change.event.mutable_practitioner() = std::move(record);
}

}  // namespace

void Registry::AddChange(Practitioner record, ChangeEvent::Kind kind, const std::string& actor,
                         int64_t revision, absl::Time now, std::vector<RestrictedActivity> changed,
                         storage::Commit* commit) {
  FillChange(std::move(record), kind, actor, revision, now, std::move(changed),
             &commit->changes.emplace_back());
}

absl::Status Registry::PrepareChanges(const std::vector<Upload>& uploads,
                                      const UploadOptions& options, const std::string& actor,
                                      const std::string& today, ApplyCounts* counts,
                                      storage::Commit* commit,
                                      std::vector<Refusal>* refusals) const {
  const absl::Time now = clock_();
  // A registrant may appear twice in one batch: the later record is compared with the
  // earlier one's pending change, so the batch behaves like the records applied in order.
  std::map<std::string, size_t> pending;  // id -> index in commit->changes
  for (const Upload& upload : uploads) {
    const std::string id = *NormalizeRegistrationId(upload.record->registration_id());
    std::optional<Practitioner> stored;
    if (auto it = pending.find(id); it != pending.end()) {
      stored = commit->changes[it->second].record;
    } else {
      absl::StatusOr<std::optional<Practitioner>> found =
          store_->GetPractitioner(id, storage::Detail::kWithPrivate);
      if (!found.ok()) return found.status();
      stored = *std::move(found);
    }
    const Practitioner* previous = stored.has_value() ? &*stored : nullptr;
    Violations v(kMaxViolationsPerRejection);
    const Practitioner* sent = upload.record;
    Practitioner merged;
    if (options.update_mask != nullptr) {
      if (previous == nullptr) {
        v.Add(absl::StrCat(upload.path, upload.path.empty() ? "" : ".", "registration_id"),
              absl::StrCat("no registrant ", id, "; an update_mask changes existing records only"));
        refusals->push_back(Refusal{upload.index, std::move(v), true});
        continue;
      }
      // Only the named fields come from the upload, each replaced whole.
      merged = *previous;
      google::protobuf::util::FieldMaskUtil::MergeOptions merge;
      merge.set_replace_message_fields(true);
      merge.set_replace_repeated_fields(true);
      google::protobuf::util::FieldMaskUtil::MergeMessageTo(*sent, *options.update_mask, merge,
                                                            &merged);
      sent = &merged;
    }
    Practitioner record = PrepareUpload(*sent, previous, today);
    // The rules every stored record keeps, checked on what would be stored.
    ValidatePractitioner(record, upload.path, today, &v);
    ValidateStoredForm(record, upload.path, WriteKind::kUpload, &v);
    const bool valid = v.empty();
    if (previous != nullptr && !options.allow_status_lift) {
      CheckNoSilentLift(*sent, record, *previous, upload.path, &v);
    }
    if (!v.empty()) {
      refusals->push_back(Refusal{upload.index, std::move(v), valid});
      continue;
    }
    if (previous != nullptr && SameContent(record, *previous)) {
      ++counts->unchanged;
      continue;
    }
    ++(previous == nullptr ? counts->created : counts->updated);
    pending[id] = commit->changes.size();
    std::vector<RestrictedActivity> changed = ChangedActivities(previous, &record);
    // The store's writer assigns the revision when it commits.
    AddChange(std::move(record), previous == nullptr ? ChangeEvent::CREATED : ChangeEvent::UPDATED,
              actor, /*revision=*/0, now, std::move(changed), commit);
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
  return CommitOne(*std::move(record), ChangeEvent::AUTHORIZATION_STATUS_CHANGED, actor, Today(),
                   Restricts(request.status()) ? WriteKind::kRestriction : WriteKind::kUpload,
                   {request.activity()});
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
  return CommitOne(*std::move(record), ChangeEvent::PERMIT_STATUS_CHANGED, actor, Today(),
                   Restricts(request.status()) ? WriteKind::kRestriction : WriteKind::kUpload);
}

absl::Status Registry::StartImport(const std::string& import_id, bool allow_status_lift,
                                   const std::string& actor, ImportSession* session) const {
  Violations v;
  ValidateText(import_id, "import_id", kMaxRequestIdBytes, &v);
  if (!v.empty()) return v.ToStatus();
  session->import_id = import_id;
  session->allow_status_lift = allow_status_lift;
  if (import_id.empty()) return absl::OkStatus();
  const std::string key = IdempotencyKey(kImportPrefix, actor, import_id);
  {
    // Two streams under one id at once: the second would apply records and then be refused.
    absl::MutexLock lock(&imports_mu_);
    if (!imports_running_.insert(key).second) {
      return absl::AbortedError(absl::StrCat("an import with import_id ", Quote(import_id),
                                             " is running; retry once it has finished"));
    }
  }
  session->reservation = std::shared_ptr<void>(nullptr, [this, key](void*) {
    absl::MutexLock lock(&imports_mu_);
    imports_running_.erase(key);
  });
  absl::StatusOr<std::optional<physioreg::storage::v1::IdempotencyRecord>> finished =
      FindIdempotencyRecord(*store_, key);
  if (!finished.ok()) return finished.status();
  if (!finished->has_value()) return absl::OkStatus();
  session->replay = true;
  session->replay_sha256 = (*finished)->request_sha256();
  if (!session->summary.ParseFromString((*finished)->response())) {
    return absl::DataLossError("bad import summary");
  }
  return absl::OkStatus();
}

absl::Status Registry::ImportChunk(const RepeatedPtrField<Practitioner>& records,
                                   const std::string& actor, ImportSession* session) {
  CheckedChunk checked;
  CheckImportChunk(records, session, &checked);
  return ApplyImportChunk(records, &checked, actor, session);
}

void Registry::CheckImportChunk(const RepeatedPtrField<Practitioner>& records,
                                ImportSession* session, CheckedChunk* checked) const {
  checked->first_index = session->checked;
  session->checked += records.size();
  if (session->replay) return;  // Compared at the end, never applied again.
  const std::string today = Today();
  const absl::Time now = clock_();
  const size_t size = static_cast<size_t>(records.size());
  checked->valid.reserve(size);
  checked->ids.reserve(size);
  checked->created_ok.reserve(size);
  checked->created.reserve(size);
  for (int i = 0; i < records.size(); ++i) {
    Violations v(kMaxViolationsPerRejection);
    ValidatePractitioner(records[i], "", today, &v);
    std::optional<std::string> id = NormalizeRegistrationId(records[i].registration_id());
    if (id.has_value()) {
      auto [it, inserted] = session->first_index_of_id.emplace(absl::Hash<std::string>{}(*id),
                                                               checked->first_index + i);
      if (!inserted) {
        v.Add("registration_id", absl::StrCat("appears again in this import (first at index ",
                                              it->second, "); one record per registrant"));
      }
    }
    if (!v.empty()) {
      checked->rejected.emplace_back(i, std::move(v));
      continue;
    }
    checked->valid.push_back(i);
    // The change this record makes if its registrant is new, as PrepareChanges would build it
    // with nothing stored; the writer sets the actor and the time. Refused here: the writer
    // takes the whole way, which refuses it with the same violations.
    storage::RecordChange& change = checked->created.emplace_back();
    bool ok = false;
    if (id.has_value()) {
      Practitioner record = PrepareUpload(records[i], nullptr, today);
      // Not validated again: with nothing stored, the prepared form passes ValidatePractitioner
      // whenever the upload did. It only upper-cases the id (still valid), clears revision and
      // update_time (never checked), sorts the authorizations (the checks do not depend on
      // order) and starts each empty status_history with one entry {current status,
      // registered_on / granted_on or today, no reason}: a valid status, a date already checked
      // (or today), equal to the timeline's start and ending in the current status.
      Violations stored(1);
      ValidateStoredForm(record, "", WriteKind::kUpload, &stored);
      if (stored.empty()) {
        std::vector<RestrictedActivity> changed = ChangedActivities(nullptr, &record);
        FillCreatedChange(std::move(record), now, std::move(changed), &change);
        ok = true;
      }
    }
    checked->ids.push_back(id.value_or(""));
    checked->created_ok.push_back(ok ? 1 : 0);
  }
}

absl::Status Registry::ApplyImportChunk(const RepeatedPtrField<Practitioner>& records,
                                        CheckedChunk* checked_chunk, const std::string& actor,
                                        ImportSession* session) {
  CheckedChunk& checked = *checked_chunk;
  if (session->replay) return absl::OkStatus();  // Compared at the end, never applied again.
  physioreg::v1::ImportPractitionersResponse* summary = &session->summary;
  const int64_t first_index = checked.first_index;
  if (first_index != summary->received()) {
    return absl::InternalError("import chunks applied out of order");
  }
  const std::string today = Today();
  auto reject = [&](int i, const Violations& v) {
    summary->set_rejected_count(summary->rejected_count() + 1);
    if (summary->rejected_size() >= kMaxListedRejections) return;
    physioreg::v1::RejectedRecord* rejected = summary->add_rejected();
    rejected->set_index(first_index + i);
    // Cut like any bad value: the id itself may be what is wrong with the record.
    rejected->set_registration_id(NormalizeRegistrationId(records[i].registration_id())
                                      .value_or(Excerpt(records[i].registration_id())));
    *rejected->mutable_violations() = v.bad_request().field_violations();
  };
  for (const auto& [i, v] : checked.rejected) reject(i, v);
  if (checked.ids.size() != checked.valid.size() ||
      checked.created_ok.size() != checked.valid.size() ||
      checked.created.size() != checked.valid.size()) {
    return absl::InternalError("import chunk applied without its checked changes");
  }
  summary->set_received(summary->received() + records.size());
  std::lock_guard<std::mutex> lock(write_mu_);
  // Which registrants are stored (under write_mu_, so no write comes between): one batched
  // read for the chunk. A stored one is not parsed here; the whole way reads it again.
  std::vector<char> stored(checked.valid.size(), 0);
  if (!checked.ids.empty()) {
    absl::StatusOr<std::vector<char>> which = store_->View()->WhichAreStored(checked.ids);
    if (!which.ok()) return which.status();
    stored = *std::move(which);
  }
  const absl::Time now = clock_();
  const google::protobuf::Timestamp stamp = ToTimestamp(now);
  ApplyCounts counts;
  storage::Commit commit;
  commit.changes.reserve(checked.valid.size());
  std::vector<Refusal> refusals;
  UploadOptions options;
  options.allow_status_lift = session->allow_status_lift;
  std::vector<Upload> one(1);
  for (size_t k = 0; k < checked.valid.size(); ++k) {
    const int i = checked.valid[k];
    if (!stored[k] && checked.created_ok[k] != 0) {
      storage::RecordChange& change = commit.changes.emplace_back(std::move(checked.created[k]));
      *change.record.mutable_update_time() = stamp;
      *change.event.mutable_change_time() = stamp;
      *change.event.mutable_practitioner()->mutable_update_time() = stamp;
      change.event.set_actor(actor);
      ++counts.created;
      continue;
    }
    // Stored (or refused as new): compared with what is stored, in stream order. Ids are
    // unique within an import, so no pending change of the chunk can be its previous record.
    one[0] = Upload{&records[i], "", i};
    if (absl::Status s = PrepareChanges(one, options, actor, today, &counts, &commit, &refusals);
        !s.ok()) {
      return s;
    }
  }
  for (const Refusal& refusal : refusals) reject(refusal.index, refusal.violations);
  if (!refusals.empty()) {
    // Keep the rejected list in stream order.
    std::stable_sort(summary->mutable_rejected()->begin(), summary->mutable_rejected()->end(),
                     [](const physioreg::v1::RejectedRecord& a,
                        const physioreg::v1::RejectedRecord& b) { return a.index() < b.index(); });
  }
  if (!commit.changes.empty()) {
    if (absl::Status s = store_->Write(&commit); !s.ok()) return s;
  }
  // Freed by the caller, off the writer's thread when it can.
  checked.spent = std::move(commit.changes);
  checked.spent_events = std::move(commit.published);
  summary->set_applied(summary->applied() + counts.created + counts.updated);
  summary->set_unchanged(summary->unchanged() + counts.unchanged);
  return absl::OkStatus();
}

absl::Status Registry::FinishImport(const std::string& actor, ImportSession* session) {
  const std::string sha256 = session->digest.Finish();
  if (session->replay) {
    if (sha256 != session->replay_sha256) return ReusedId("import_id", session->import_id);
    return absl::OkStatus();  // The first summary, as it was.
  }
  std::lock_guard<std::mutex> lock(write_mu_);
  session->summary.set_revision(store_->revision());
  if (session->import_id.empty()) return absl::OkStatus();
  const std::string key = IdempotencyKey(kImportPrefix, actor, session->import_id);
  // Another stream under the same id may have finished meanwhile.
  absl::StatusOr<std::optional<physioreg::storage::v1::IdempotencyRecord>> finished =
      FindIdempotencyRecord(*store_, key);
  if (!finished.ok()) return finished.status();
  if (finished->has_value()) {
    if ((*finished)->request_sha256() != sha256) {
      return ReusedId("import_id", session->import_id);
    }
    return absl::OkStatus();
  }
  physioreg::storage::v1::IdempotencyRecord record;
  record.set_request_sha256(sha256);
  record.set_response(session->summary.SerializeAsString());
  storage::Commit commit;
  commit.meta_puts.emplace_back(key, record.SerializeAsString());
  return store_->Write(&commit);
}

}  // namespace physioreg::core
