// The proto3 JSON mapping, printed straight from the message by reflection. protobuf 3.21's
// MessageToJsonString serializes the message back to bytes and renders those through a
// type-resolving stream converter: 46 % of the server's CPU for an HTTP Get (BENCHMARKS.md).
// This covers what the API's messages use (scalars, enums, strings, bytes, nested and repeated
// messages, google.protobuf.Timestamp) with the same output rules: lowerCamelCase names, enum
// names, 64-bit integers as strings, fields at their default left out, field-number order.
#ifndef PHYSIOREG_SERVICE_HTTP_JSON_PRINTER_H_
#define PHYSIOREG_SERVICE_HTTP_JSON_PRINTER_H_

#include <google/protobuf/message.h>

#include <string>

#include "absl/strings/string_view.h"

namespace physioreg::service::http {

// Appends `message` as JSON to `out`. False (with `out` as it was) for what it does not cover:
// maps, other well-known types, invalid UTF-8; the caller then uses MessageToJsonString.
[[nodiscard]] bool AppendJson(const google::protobuf::Message& message, std::string* out);

// Appends `text` (UTF-8) as a JSON string literal, escaped as protobuf escapes it.
void AppendJsonString(absl::string_view text, std::string* out);

}  // namespace physioreg::service::http

#endif  // PHYSIOREG_SERVICE_HTTP_JSON_PRINTER_H_
