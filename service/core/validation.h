// Validation of everything a client sends. Each problem becomes a field violation with the
// full path of the offending field, e.g. "practitioners[3].authorizations[0].granted_on".
#ifndef PHYSIOREG_SERVICE_CORE_VALIDATION_H_
#define PHYSIOREG_SERVICE_CORE_VALIDATION_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/rpc/error_details.pb.h"
#include "physioreg/v1/practitioner.pb.h"

namespace physioreg::core {

// Limits of one record and of one request.
inline constexpr int kMaxRecordsPerRequest = 1000;
inline constexpr size_t kMaxNameBytes = 200;
inline constexpr size_t kMaxTextBytes = 200;
inline constexpr size_t kMaxLongTextBytes = 1000;
inline constexpr int kMaxListItems = 50;
inline constexpr int kMaxStatusHistory = 1000;
inline constexpr size_t kMaxRequestIdBytes = 128;

// The type URL under which an absl::Status carries a serialized google.rpc.BadRequest.
inline constexpr absl::string_view kBadRequestTypeUrl = "type.googleapis.com/google.rpc.BadRequest";

class Violations {
 public:
  void Add(std::string field, std::string description);
  bool empty() const { return bad_request_.field_violations().empty(); }
  const google::rpc::BadRequest& bad_request() const { return bad_request_; }

  // INVALID_ARGUMENT naming the violations, with the BadRequest as payload; OK when empty.
  [[nodiscard]] absl::Status ToStatus() const;

 private:
  google::rpc::BadRequest bad_request_;
};

// The upper-case form of a well-formed registration_id (1-32 of [A-Za-z0-9-]); nullopt if
// malformed.
[[nodiscard]] std::optional<std::string> NormalizeRegistrationId(absl::string_view id);

// Validates a practitioner as sent by a client. `path` prefixes every field path (e.g.
// "practitioners[3]"); `today` (YYYY-MM-DD) bounds status_history dates.
void ValidatePractitioner(const physioreg::v1::Practitioner& practitioner, absl::string_view path,
                          absl::string_view today, Violations* violations);

// A required registration_id field.
void ValidateRegistrationId(absl::string_view id, absl::string_view field, Violations* violations);
// A required restricted activity (not UNSPECIFIED, a known value).
void ValidateActivity(physioreg::v1::RestrictedActivity activity, absl::string_view field,
                      Violations* violations);
// An optional free-text field: valid UTF-8, at most `max_bytes`.
void ValidateText(absl::string_view text, absl::string_view field, size_t max_bytes,
                  Violations* violations);
// An optional effective_on date: real date, not after `today`.
void ValidatePastDate(absl::string_view date, absl::string_view field, absl::string_view today,
                      Violations* violations);

bool IsValidUtf8(absl::string_view text);

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_VALIDATION_H_
