// The register's domain operations, free of gRPC: reads, the verification rule with the
// register revision, and writes that assign gap-free revisions under a single writer.
#ifndef PHYSIOREG_SERVICE_CORE_REGISTRY_H_
#define PHYSIOREG_SERVICE_CORE_REGISTRY_H_

#include <functional>
#include <mutex>
#include <string>

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

  // Full record (private details included); the caller decides what view leaves.
  [[nodiscard]] absl::StatusOr<physioreg::v1::Practitioner> GetPractitioner(
      const physioreg::v1::GetPractitionerRequest& request) const;

  [[nodiscard]] absl::StatusOr<physioreg::v1::VerifyAuthorizationResponse> Verify(
      const physioreg::v1::VerifyAuthorizationRequest& request) const;

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
