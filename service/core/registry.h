// The register's domain operations, free of gRPC: reads, the verification rule with the
// register revision, and writes (the store's writer assigns their gap-free revisions).
#ifndef PHYSIOREG_SERVICE_CORE_REGISTRY_H_
#define PHYSIOREG_SERVICE_CORE_REGISTRY_H_

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "physioreg/v1/registry.pb.h"
#include "service/core/digest.h"
#include "service/core/validation.h"
#include "storage/store.h"

namespace physioreg::core {

// What one ImportPractitioners stream carries from chunk to chunk.
struct ImportSession {
  std::string import_id;
  bool allow_status_lift = false;
  // The import_id names a finished import: the stream is only hashed, to be compared with it.
  bool replay = false;
  std::string replay_sha256;
  // Of every message's bytes as received (the caller feeds it), to tell a replay of the same
  // records from different records under a used import_id.
  Sha256 digest;
  // One record per registrant per import, as in one UpsertPractitioners request: a hash of each
  // id seen and its stream index (8 + 8 bytes a registrant rather than the id itself).
  absl::flat_hash_map<size_t, int64_t> first_index_of_id;
  physioreg::v1::ImportPractitionersResponse summary;
  // Records CheckImportChunk has seen (it may run a chunk ahead of ApplyImportChunk, which
  // counts summary.received).
  int64_t checked = 0;
  // Holds the import_id for this stream while it runs: a second stream under the same id is
  // refused until this one ends. Reset it before answering the client (it is also released
  // when the session is destroyed).
  std::shared_ptr<void> reservation;
};

class Registry {
 public:
  using Clock = std::function<absl::Time()>;

  // `store` must outlive the registry. `zone` decides what "today" is.
  Registry(storage::Store* store, absl::TimeZone zone, Clock clock = absl::Now);

  // Today in the registry's time zone, YYYY-MM-DD.
  std::string Today() const;

  // The public view (core::PublicView, as stored) into an empty `out`. Answers are written into
  // the caller's message, which may live on a per-call arena.
  [[nodiscard]] absl::Status GetPractitioner(const physioreg::v1::GetPractitionerRequest& request,
                                             physioreg::v1::Practitioner* out) const;
  // The same answer as serialized bytes (the stored public view, never parsed): `fn` sees them
  // during the call only. For gRPC's Get, which sends them as they are.
  [[nodiscard]] absl::Status GetPublicViewBytes(
      const physioreg::v1::GetPractitionerRequest& request,
      absl::FunctionRef<void(absl::string_view)> fn) const;

  [[nodiscard]] absl::Status Verify(const physioreg::v1::VerifyAuthorizationRequest& request,
                                    physioreg::v1::VerifyAuthorizationResponse* out) const;

  [[nodiscard]] absl::StatusOr<physioreg::v1::BatchVerifyAuthorizationsResponse> BatchVerify(
      const physioreg::v1::BatchVerifyAuthorizationsRequest& request) const;

  // Events oldest first; `include_actor` only for REGULATOR callers.
  [[nodiscard]] absl::StatusOr<physioreg::v1::ListPractitionerHistoryResponse> ListHistory(
      const physioreg::v1::ListPractitionerHistoryRequest& request, bool include_actor) const;

  // Writes; `actor` is the key id of the authenticated writer.
  [[nodiscard]] absl::StatusOr<physioreg::v1::UpsertPractitionersResponse> Upsert(
      const physioreg::v1::UpsertPractitionersRequest& request, const std::string& actor);
  [[nodiscard]] absl::StatusOr<physioreg::v1::Practitioner> SetAuthorizationStatus(
      const physioreg::v1::SetAuthorizationStatusRequest& request, const std::string& actor);
  [[nodiscard]] absl::StatusOr<physioreg::v1::Practitioner> SetPermitStatus(
      const physioreg::v1::SetPermitStatusRequest& request, const std::string& actor);

  // Streaming import, one chunk at a time (the import reactor runs StartImport and
  // CheckImportChunk on the stream's thread, the rest on the writer). StartImport checks the first
  // message's import_id and finds a finished import under it (then the session replays);
  // ImportChunk validates each record (its stream index is summary.received + its position),
  // commits the valid ones in one atomic, durable batch and adds counts and rejections to the
  // summary; FinishImport sets the revision and keeps the summary for replays (or, replaying,
  // answers the first summary when the stream was the same and ALREADY_EXISTS when not).
  [[nodiscard]] absl::Status StartImport(const std::string& import_id, bool allow_status_lift,
                                         const std::string& actor, ImportSession* session) const;
  [[nodiscard]] absl::Status ImportChunk(
      const google::protobuf::RepeatedPtrField<physioreg::v1::Practitioner>& records,
      const std::string& actor, ImportSession* session);
  [[nodiscard]] absl::Status FinishImport(const std::string& actor, ImportSession* session);
  // ImportChunk in two steps, so that a chunk can be checked (on any thread, without the
  // store) while the previous one is committed: CheckImportChunk validates each record and
  // the one-record-per-registrant rule (chunks in stream order); ApplyImportChunk (on the
  // writer, chunks in the same order) compares with what is stored, commits and counts.
  // Each step touches its own part of the session, so the two may run at the same time.
  // CheckImportChunk also builds, for each valid record, the change it makes if its registrant
  // is not stored yet (the stored record, its public view and event): the writer then only
  // confirms the registrant is still absent (one batched read per chunk) and stamps the time.
  // A record whose registrant is stored, or whose new-record form is refused, goes the whole
  // way on the writer (compare with the stored record, no silent lift).
  struct CheckedChunk {
    int64_t first_index = 0;
    std::vector<int> valid;
    std::vector<std::pair<int, Violations>> rejected;
    // Per entry of `valid`: the normalized id, and whether created[k] holds its change.
    std::vector<std::string> ids;
    std::vector<char> created_ok;
    std::vector<storage::RecordChange> created;
    // The committed changes and their published events, left by ApplyImportChunk for the
    // caller to free.
    std::vector<storage::RecordChange> spent;
    std::vector<storage::SharedEvent> spent_events;
  };
  void CheckImportChunk(
      const google::protobuf::RepeatedPtrField<physioreg::v1::Practitioner>& records,
      ImportSession* session, CheckedChunk* checked) const;
  // Takes the prepared changes out of `checked` and leaves the commit's spent changes in
  // `checked->spent`, so the caller may free them off the writer's thread.
  [[nodiscard]] absl::Status ApplyImportChunk(
      const google::protobuf::RepeatedPtrField<physioreg::v1::Practitioner>& records,
      CheckedChunk* checked, const std::string& actor, ImportSession* session);

  // A consistent point-in-time view of the register (for exports).
  std::unique_ptr<storage::ReadView> Snapshot() const { return store_->View(); }

 private:
  // Validates a verification request into `violations` (field paths after `field_prefix`);
  // fills the normalized id and the as_of date when it is valid.
  void CheckVerifyRequest(const physioreg::v1::VerifyAuthorizationRequest& request,
                          absl::string_view field_prefix, Violations* violations, std::string* id,
                          std::string* as_of) const;
  // The checks both status changes share (id, effective_on not in the future, reason), added
  // to `violations`; fills the normalized id and the effective date (today when empty).
  template <typename Request>
  [[nodiscard]] absl::Status CheckStatusChange(const Request& request, Violations* violations,
                                               std::string* id, std::string* effective_on) const;
  // Loads a record for a status change; NOT_FOUND when unknown.
  [[nodiscard]] absl::StatusOr<physioreg::v1::Practitioner> LoadForUpdate(
      const std::string& id) const;

  // One uploaded record and where its problems are reported.
  struct Upload {
    const physioreg::v1::Practitioner* record;
    std::string path;  // "practitioners[3]" in an upsert, "" in an import
    int index;         // position in the request or chunk
  };
  struct UploadOptions {
    const google::protobuf::FieldMask* update_mask = nullptr;  // null: whole records
    bool allow_status_lift = false;
  };
  struct ApplyCounts {
    int64_t created = 0;
    int64_t updated = 0;
    int64_t unchanged = 0;
  };
  // What PrepareChanges refused: per upload index, its violations (paths under its path).
  struct Refusal {
    int index;
    Violations violations;
    // Valid in itself; refused only for what is stored (e.g. a suspension it would lift).
    bool conflict = false;
  };
  // Under write_mu_: builds the record each upload stores (mask applied, timelines kept),
  // checks it against the same rules as any stored record and against the stored one (no
  // silent lifting of a suspension), and adds the changes of the accepted ones to `commit`
  // (the store numbers them when it writes). Ids may repeat: later wins.
  [[nodiscard]] absl::Status PrepareChanges(const std::vector<Upload>& uploads,
                                            const UploadOptions& options, const std::string& actor,
                                            const std::string& today, ApplyCounts* counts,
                                            storage::Commit* commit,
                                            std::vector<Refusal>* refusals) const;
  // Appends `record` as a change with `revision` (and its event) to `commit`; `changed` are
  // the activities whose authorization the change added, changed or removed.
  static void AddChange(physioreg::v1::Practitioner record, physioreg::v1::ChangeEvent::Kind kind,
                        const std::string& actor, int64_t revision, absl::Time now,
                        std::vector<physioreg::v1::RestrictedActivity> changed,
                        storage::Commit* commit);
  // Validates the record a status change produced, then commits it (the store gives it the
  // next revision) and returns what was stored.
  [[nodiscard]] absl::StatusOr<physioreg::v1::Practitioner> CommitOne(
      physioreg::v1::Practitioner record, physioreg::v1::ChangeEvent::Kind kind,
      const std::string& actor, const std::string& today, WriteKind write,
      std::vector<physioreg::v1::RestrictedActivity> changed = {});

  storage::Store* store_;
  absl::TimeZone zone_;
  Clock clock_;
  // Held across read-modify-write: what an upload is checked against is what it replaces.
  std::mutex write_mu_;
  // Idempotency keys of the imports running now.
  mutable absl::Mutex imports_mu_;
  mutable absl::flat_hash_set<std::string> imports_running_ ABSL_GUARDED_BY(imports_mu_);
};

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_REGISTRY_H_
