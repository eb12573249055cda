// The verification rule: may registrant X perform activity A on date D? Pure function of the
// stored record, so it is unit-testable and the same for single and batch verification.
#ifndef PHYSIOREG_SERVICE_CORE_VERIFICATION_H_
#define PHYSIOREG_SERVICE_CORE_VERIFICATION_H_

#include <optional>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "physioreg/v1/practitioner.pb.h"
#include "physioreg/v1/registry.pb.h"

namespace physioreg::core {

// The status in force on `date` (YYYY-MM-DD): the last entry with effective_on <= date;
// nullopt before the first entry.
std::optional<std::string> StatusOn(
    const google::protobuf::RepeatedPtrField<physioreg::v1::StatusChange>& history,
    absl::string_view date);

// The name patients and clinics see: preferred name (else given name) and family name.
std::string DisplayName(const physioreg::v1::Practitioner& practitioner);

// The record as any non-regulator may see it (private contact details removed). The one place
// that decides it: the registry stores this view beside the private details when a record is
// written (storage keeps them apart), and every public read (Get, Search, Verify, History,
// WatchChanges, public exports, HTTP) reads only the stored view.
physioreg::v1::Practitioner PublicView(physioreg::v1::Practitioner practitioner);

// One entry of a status history as the rule reads it.
struct StatusEntry {
  absl::string_view status;
  absl::string_view effective_on;
};

// What the rule reads of one registrant for one activity: views into a Practitioner message
// (FactsOf) or straight into its serialized bytes (ParseVerificationFacts), valid while those
// live. The bytes path lets VerifyAuthorization answer without building the record as a message.
struct VerificationFacts {
  absl::string_view given_name;
  absl::string_view family_name;
  absl::string_view preferred_name;
  physioreg::v1::Register permit_register = physioreg::v1::REGISTER_UNSPECIFIED;
  absl::string_view permit_expires_on;
  absl::InlinedVector<StatusEntry, 4> permit_history;
  // The registrant's (last) authorization for the activity, if any.
  bool has_authorization = false;
  int authorization_activity = 0;
  absl::InlinedVector<int, 4> techniques;
  absl::string_view granted_on;
  absl::string_view expires_on;
  absl::InlinedVector<absl::string_view, 2> conditions;
  absl::InlinedVector<StatusEntry, 4> authorization_history;
};

// The facts of `practitioner` for `activity`.
VerificationFacts FactsOf(const physioreg::v1::Practitioner& practitioner,
                          physioreg::v1::RestrictedActivity activity);

// The facts for `activity` read from a serialized Practitioner (a stored public view) as
// protobuf would parse it (a repeated permit merges, the last authorization for the activity
// counts, unknown fields are skipped); nullopt when the bytes are not a well-formed message.
[[nodiscard]] std::optional<VerificationFacts> ParseVerificationFacts(
    absl::string_view serialized_practitioner, physioreg::v1::RestrictedActivity activity);

// Applies the rule to `facts` (nullptr when the id is unknown) for `activity` on `as_of`
// (a valid YYYY-MM-DD). Fills authorized, reason, registration_id, display_name,
// permit_status, authorization and as_of of an empty `response` (which may live on a per-call
// arena); the caller adds revision, time and attestation.
void Verify(const VerificationFacts* facts, absl::string_view registration_id,
            physioreg::v1::RestrictedActivity activity, absl::string_view as_of,
            physioreg::v1::VerifyAuthorizationResponse* response);

// The same for a whole record (nullptr when the id is unknown).
void Verify(const physioreg::v1::Practitioner* practitioner, absl::string_view registration_id,
            physioreg::v1::RestrictedActivity activity, absl::string_view as_of,
            physioreg::v1::VerifyAuthorizationResponse* response);

inline physioreg::v1::VerifyAuthorizationResponse Verify(
    const physioreg::v1::Practitioner* practitioner, absl::string_view registration_id,
    physioreg::v1::RestrictedActivity activity, absl::string_view as_of) {
  physioreg::v1::VerifyAuthorizationResponse response;
  Verify(practitioner, registration_id, activity, as_of, &response);
  return response;
}

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_VERIFICATION_H_
