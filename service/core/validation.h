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
// The largest record the register stores, serialized (its stored form, histories included).
inline constexpr size_t kMaxRecordBytes = 256 * 1024;
// Uploads (upsert, import) and status changes that lift a restriction stop below the caps, so
// that a suspension, cancellation or revocation always fits: at least 32 KiB and 100 entries
// are kept for them.
inline constexpr size_t kMaxUploadRecordBytes = 224 * 1024;
inline constexpr int kMaxUploadStatusHistory = 900;
// An error names at most this many violations (and says how many more there were), so its
// details stay far below gRPC's 8 KiB metadata limit whatever the input.
inline constexpr int kMaxReportedViolations = 20;
// Bad values are quoted in descriptions by at most this many bytes.
inline constexpr size_t kMaxQuotedBytes = 40;

// The type URL under which an absl::Status carries a serialized google.rpc.BadRequest.
inline constexpr absl::string_view kBadRequestTypeUrl = "type.googleapis.com/google.rpc.BadRequest";

// The field violations of one request or record. Keeps the first `limit` and counts the rest.
class Violations {
 public:
  explicit Violations(int limit = kMaxReportedViolations) : limit_(limit) {}
  void Add(std::string field, std::string description);
  // Adds every violation of `other` (its dropped ones are counted too).
  void Merge(const Violations& other);
  bool empty() const { return count_ == 0; }
  // Every violation found, the unlisted ones included.
  int count() const { return count_; }
  // The listed violations; when count() is larger, a last one says how many were left out.
  const google::rpc::BadRequest& bad_request() const { return bad_request_; }

  // INVALID_ARGUMENT (or `code`) naming the violations, with the BadRequest as payload; OK
  // when empty.
  [[nodiscard]] absl::Status ToStatus(
      absl::StatusCode code = absl::StatusCode::kInvalidArgument) const;

 private:
  int limit_;
  int count_ = 0;
  google::rpc::BadRequest bad_request_;
};

// A bad value as descriptions quote it: at most kMaxQuotedBytes (cut on a character
// boundary, "..." added), control characters escaped, in single quotes.
std::string Quote(absl::string_view value);
// The same without the quotes.
std::string Excerpt(absl::string_view value);

// The upper-case form of a well-formed registration_id (1-32 of [A-Za-z0-9-]); nullopt if
// malformed.
[[nodiscard]] std::optional<std::string> NormalizeRegistrationId(absl::string_view id);

// Validates a practitioner as sent by a client and, with the same rules, every record before it
// is stored (whatever the write path), so a stored record always re-validates and an export
// re-imports. `path` prefixes every field path (e.g. "practitioners[3]"); `today`
// (YYYY-MM-DD) bounds dates that may not lie in the future (registered_on, granted_on,
// completed_on, status_history).
void ValidatePractitioner(const physioreg::v1::Practitioner& practitioner, absl::string_view path,
                          absl::string_view today, Violations* violations);
// How much of the caps a write may use: uploads and lifting changes leave the headroom that
// restricting changes (suspend, cancel, revoke) may use.
enum class WriteKind { kUpload, kRestriction };

// The checks only a record about to be stored needs on top of ValidatePractitioner: timelines
// present, at most kMaxUploadStatusHistory / kMaxStatusHistory entries each, and a serialized
// size of at most kMaxUploadRecordBytes / kMaxRecordBytes.
void ValidateStoredForm(const physioreg::v1::Practitioner& practitioner, absl::string_view path,
                        WriteKind kind, Violations* violations);

// A required registration_id field.
void ValidateRegistrationId(absl::string_view id, absl::string_view field, Violations* violations);
// A required restricted activity (not UNSPECIFIED, a known value).
void ValidateActivity(physioreg::v1::RestrictedActivity activity, absl::string_view field,
                      Violations* violations);
// An optional free-text field: valid UTF-8, at most `max_bytes`, no control characters (line
// breaks and tabs included), no bidirectional-text controls, and not only invisible characters.
void ValidateText(absl::string_view text, absl::string_view field, size_t max_bytes,
                  Violations* violations);
// An optional effective_on date: real date, not after `today`.
void ValidatePastDate(absl::string_view date, absl::string_view field, absl::string_view today,
                      Violations* violations);

bool IsValidUtf8(absl::string_view text);

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_VALIDATION_H_
