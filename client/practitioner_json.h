// A fast reader of one registrant in proto3 JSON (as `physioreg export` and the generator write
// it), for bulk imports: protobuf's JsonStringToMessage costs ~40 µs a record, this ~3 µs.
#ifndef PHYSIOREG_CLIENT_PRACTITIONER_JSON_H_
#define PHYSIOREG_CLIENT_PRACTITIONER_JSON_H_

#include "absl/strings/string_view.h"
#include "physioreg/v1/practitioner.pb.h"

namespace physioreg::client {

// Parses `json` (valid UTF-8) into `*record` (which must be empty) and returns true only when
// the text is in the plain form it understands and the result is exactly what
// google::protobuf::util::JsonStringToMessage gives for it. Anything else (unknown or
// snake_case field names, a field named twice, null, numbers as strings or in unusual forms,
// surrogate escapes, single quotes, invalid JSON...) returns false, leaving `*record` in an
// unspecified state: the caller clears it and asks JsonStringToMessage, so every outcome and
// error message stays protobuf's.
bool ParsePractitionerJsonFast(absl::string_view json, physioreg::v1::Practitioner* record);

}  // namespace physioreg::client

#endif  // PHYSIOREG_CLIENT_PRACTITIONER_JSON_H_
