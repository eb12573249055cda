// The verification rule: may registrant X perform activity A on date D? Pure function of the
// stored record, so it is unit-testable and the same for single and batch verification.
#ifndef PHYSIOREG_SERVICE_CORE_VERIFICATION_H_
#define PHYSIOREG_SERVICE_CORE_VERIFICATION_H_

#include <optional>
#include <string>

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

// Applies the rule to `practitioner` (nullptr when the id is unknown) for `activity` on `as_of`
// (a valid YYYY-MM-DD). Fills authorized, reason, registration_id, display_name,
// permit_status, authorization and as_of of an empty `response` (which may live on a per-call
// arena); the caller adds revision, time and attestation.
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
