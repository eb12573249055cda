// Reads the field paths out of an INVALID_ARGUMENT absl::Status's BadRequest payload.
#ifndef PHYSIOREG_TESTS_SUPPORT_BAD_REQUEST_H_
#define PHYSIOREG_TESTS_SUPPORT_BAD_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "google/rpc/error_details.pb.h"
#include "service/core/validation.h"

namespace physioreg::testing {

inline std::vector<std::string> ViolationFields(const absl::Status& status) {
  std::vector<std::string> fields;
  auto payload = status.GetPayload(core::kBadRequestTypeUrl);
  google::rpc::BadRequest bad_request;
  if (payload && bad_request.ParseFromString(std::string(*payload))) {
    for (const auto& violation : bad_request.field_violations()) {
      fields.push_back(violation.field());
    }
  }
  return fields;
}

}  // namespace physioreg::testing

#endif  // PHYSIOREG_TESTS_SUPPORT_BAD_REQUEST_H_
