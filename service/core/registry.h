// The register's domain operations, free of gRPC: reads, the verification rule with the
// register revision, and writes that assign gap-free revisions under a single writer.
#ifndef PHYSIOREG_SERVICE_CORE_REGISTRY_H_
#define PHYSIOREG_SERVICE_CORE_REGISTRY_H_

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "physioreg/v1/registry.pb.h"
#include "service/core/validation.h"
#include "storage/store.h"

namespace physioreg::core {

class Registry {
 public:
  using Clock = std::function<absl::Time()>;

  // `store` must outlive the registry. `zone` decides what "today" is.
  Registry(storage::Store* store, absl::TimeZone zone, Clock clock = absl::Now);

  // Today in the registry's time zone, YYYY-MM-DD.
  std::string Today() const;

  // Full record (private details included) into an empty `out`; the caller decides what view
  // leaves. Answers are written into the caller's message, which may live on a per-call arena.
  [[nodiscard]] absl::Status GetPractitioner(const physioreg::v1::GetPractitionerRequest& request,
                                             physioreg::v1::Practitioner* out) const;

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

  // Streaming import, one chunk at a time. The summary of a finished import, when `import_id`
  // names one (replays answer with it); INVALID_ARGUMENT for a malformed import_id.
  [[nodiscard]] absl::StatusOr<std::optional<physioreg::v1::ImportPractitionersResponse>>
  FindImport(const std::string& import_id) const;
  // Validates each record (its stream index is `first_index` + its position), commits the
  // valid ones in one atomic, durable batch, and adds counts and rejections to `summary`.
  [[nodiscard]] absl::Status ImportChunk(
      const google::protobuf::RepeatedPtrField<physioreg::v1::Practitioner>& records,
      int64_t first_index, const std::string& actor,
      physioreg::v1::ImportPractitionersResponse* summary);
  // Sets the summary's revision and, for a named import, keeps the summary for replays.
  [[nodiscard]] absl::Status FinishImport(const std::string& import_id,
                                          physioreg::v1::ImportPractitionersResponse* summary);

  // A consistent point-in-time view of the register (for exports).
  std::unique_ptr<storage::ReadView> Snapshot() const { return store_->View(); }

 private:
  // Validates a verification request; fills the normalized id and the as_of date.
  [[nodiscard]] absl::Status CheckVerifyRequest(
      const physioreg::v1::VerifyAuthorizationRequest& request, absl::string_view field_prefix,
      std::string* id, std::string* as_of) const;
  // The checks both status changes share (id, effective_on not in the future, reason), added
  // to `violations`; fills the normalized id and the effective date (today when empty).
  template <typename Request>
  [[nodiscard]] absl::Status CheckStatusChange(const Request& request, Violations* violations,
                                               std::string* id, std::string* effective_on) const;
  // Loads a record for a status change; NOT_FOUND when unknown.
  [[nodiscard]] absl::StatusOr<physioreg::v1::Practitioner> LoadForUpdate(
      const std::string& id) const;
  struct ApplyCounts {
    int64_t created = 0;
    int64_t updated = 0;
    int64_t unchanged = 0;
  };
  // Under write_mu_: adds to `commit` the changes `records` (valid; ids may repeat, later wins)
  // make to the stored register, with the next revisions, and counts them.
  [[nodiscard]] absl::Status PrepareChanges(
      const std::vector<const physioreg::v1::Practitioner*>& records, const std::string& actor,
      const std::string& today, ApplyCounts* counts, storage::Commit* commit) const;
  // Appends `record` as a change with `revision` (and its event) to `commit`.
  static void AddChange(physioreg::v1::Practitioner record, physioreg::v1::ChangeEvent::Kind kind,
                        const std::string& actor, int64_t revision, absl::Time now,
                        storage::Commit* commit);
  // Commits one changed record as the next revision and returns what was stored.
  [[nodiscard]] absl::StatusOr<physioreg::v1::Practitioner> CommitOne(
      physioreg::v1::Practitioner record, physioreg::v1::ChangeEvent::Kind kind,
      const std::string& actor);

  storage::Store* store_;
  absl::TimeZone zone_;
  Clock clock_;
  // The single writer: held across read-modify-write so revisions are assigned gap-free.
  std::mutex write_mu_;
};

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_REGISTRY_H_
