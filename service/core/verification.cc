#include "service/core/verification.h"

#include "absl/strings/str_cat.h"

namespace physioreg::core {

using physioreg::v1::Authorization;
using physioreg::v1::Permit;
using physioreg::v1::Practitioner;
using physioreg::v1::VerificationReason;
using physioreg::v1::VerifyAuthorizationResponse;

std::optional<std::string> StatusOn(
    const google::protobuf::RepeatedPtrField<physioreg::v1::StatusChange>& history,
    absl::string_view date) {
  // Histories are short and ordered; scanning from the newest entry finds it soonest.
  for (int i = history.size() - 1; i >= 0; --i) {
    if (history[i].effective_on() <= date) return history[i].status();
  }
  return std::nullopt;
}

std::string DisplayName(const Practitioner& p) {
  const std::string& first = p.preferred_name().empty() ? p.given_name() : p.preferred_name();
  return absl::StrCat(first, " ", p.family_name());
}

Practitioner PublicView(Practitioner practitioner) {
  practitioner.clear_private_contact();
  return practitioner;
}

void Verify(const Practitioner* p, absl::string_view registration_id,
            physioreg::v1::RestrictedActivity activity, absl::string_view as_of,
            VerifyAuthorizationResponse* out) {
  VerifyAuthorizationResponse& response = *out;
  response.set_as_of(std::string(as_of));
  response.set_registration_id(std::string(registration_id));
  auto answer = [&response](VerificationReason reason) {
    response.set_reason(reason);
    response.set_authorized(reason == physioreg::v1::AUTHORIZED);
  };
  if (p == nullptr) return answer(physioreg::v1::NOT_REGISTERED);

  response.set_display_name(DisplayName(*p));
  const Authorization* authorization = nullptr;
  for (const Authorization& a : p->authorizations()) {
    if (a.activity() == activity) authorization = &a;
  }
  // Whatever the answer, a clinic sees the authorization it asked about as it stood on as_of:
  // its status that day, not today's, and only what a verification needs.
  std::optional<std::string> status;
  Authorization::Status status_value = Authorization::STATUS_UNSPECIFIED;
  if (authorization != nullptr) {
    status = StatusOn(authorization->status_history(), as_of);
    if (status) Authorization::Status_Parse(*status, &status_value);
    Authorization& shown = *response.mutable_authorization();
    shown.set_activity(authorization->activity());
    shown.set_status(status_value);
    *shown.mutable_techniques() = authorization->techniques();
    shown.set_granted_on(authorization->granted_on());
    shown.set_expires_on(authorization->expires_on());
    *shown.mutable_conditions() = authorization->conditions();
  }
  const Permit& permit = p->permit();
  response.set_permit_expires_on(permit.expires_on());
  const std::optional<std::string> permit_status = StatusOn(permit.status_history(), as_of);
  Permit::Status permit_status_value = Permit::STATUS_UNSPECIFIED;
  if (permit_status) Permit::Status_Parse(*permit_status, &permit_status_value);
  const bool permit_expired = !permit.expires_on().empty() && permit.expires_on() < as_of;
  // An expired permit is not in force, whatever its last recorded status.
  if (permit_expired && permit_status_value == Permit::ACTIVE) {
    permit_status_value = Permit::INACTIVE;
  }
  response.set_permit_status(permit_status_value);
  if (permit_status_value != Permit::ACTIVE || permit_expired) {
    return answer(physioreg::v1::PERMIT_NOT_ACTIVE);
  }
  if (permit.register_() == physioreg::v1::PROVISIONAL &&
      (activity == physioreg::v1::DRY_NEEDLING || activity == physioreg::v1::SPINAL_MANIPULATION)) {
    return answer(physioreg::v1::REGISTER_RESTRICTS_ACTIVITY);
  }
  if (authorization == nullptr) return answer(physioreg::v1::NO_AUTHORIZATION);

  if ((!authorization->granted_on().empty() && as_of < authorization->granted_on()) || !status) {
    return answer(physioreg::v1::AUTHORIZATION_NOT_YET_EFFECTIVE);
  }
  switch (status_value) {
    case Authorization::PENDING:
      return answer(physioreg::v1::AUTHORIZATION_PENDING);
    case Authorization::SUSPENDED:
      return answer(physioreg::v1::AUTHORIZATION_SUSPENDED);
    case Authorization::REVOKED:
      return answer(physioreg::v1::AUTHORIZATION_REVOKED);
    case Authorization::AUTHORIZED:
      break;
    default:
      // Stored histories are validated, so this is unreachable; answer conservatively.
      return answer(physioreg::v1::AUTHORIZATION_PENDING);
  }
  if (!authorization->expires_on().empty() && authorization->expires_on() < as_of) {
    return answer(physioreg::v1::AUTHORIZATION_EXPIRED);
  }
  return answer(physioreg::v1::AUTHORIZED);
}

}  // namespace physioreg::core
