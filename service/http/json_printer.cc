#include "service/http/json_printer.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include <charconv>
#include <cmath>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "service/core/validation.h"

namespace physioreg::service::http {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

}  // namespace

// Escapes as protobuf does for the characters stored text may hold: also <, > and DEL (so a
// body is inert if a careless client puts it in HTML), and U+2028 / U+2029 (line breaks to
// JavaScript). Text the register refuses (other format characters) is never stored.
void AppendJsonString(absl::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    // U+2028 and U+2029 are E2 80 A8 / E2 80 A9.
    if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(text[i + 2]) == 0xA8 ||
         static_cast<unsigned char>(text[i + 2]) == 0xA9)) {
      *out += static_cast<unsigned char>(text[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
      i += 2;
      continue;
    }
    switch (c) {
      case '<':
        *out += "\\u003c";
        break;
      case '>':
        *out += "\\u003e";
        break;
      case 0x7f:
        *out += "\\u007f";
        break;
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20) {
          *out += "\\u00";
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

namespace {

// Shortest text that reads back as the same double; proto3 JSON's names for the rest.
void AppendDouble(double value, std::string* out) {
  if (std::isnan(value)) {
    *out += "\"NaN\"";
  } else if (std::isinf(value)) {
    *out += value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else {
    char buffer[32];
    const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
    out->append(buffer, result.ptr);
  }
}

void AppendFloat(float value, std::string* out) {
  if (std::isnan(value) || std::isinf(value)) return AppendDouble(value, out);
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out->append(buffer, result.ptr);
}

// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protobuf prints Timestamps.
bool AppendTimestamp(const Message& message, std::string* out) {
  const Descriptor* descriptor = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  const FieldDescriptor* seconds_field = descriptor->FindFieldByNumber(1);
  const FieldDescriptor* nanos_field = descriptor->FindFieldByNumber(2);
  if (seconds_field == nullptr || nanos_field == nullptr) return false;
  const int64_t seconds = reflection->GetInt64(message, seconds_field);
  const int32_t nanos = reflection->GetInt32(message, nanos_field);
  // The range protobuf accepts: years 0001 to 9999.
  if (seconds < -62135596800 || seconds > 253402300799 || nanos < 0 || nanos > 999999999) {
    return false;
  }
  out->push_back('"');
  *out +=
      absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(seconds), absl::UTCTimeZone());
  if (nanos != 0) {
    char digits[10];
    std::snprintf(digits, sizeof(digits), "%09d", nanos);
    int length = 9;
    if (nanos % 1000000 == 0) {
      length = 3;
    } else if (nanos % 1000 == 0) {
      length = 6;
    }
    out->push_back('.');
    out->append(digits, length);
  }
  *out += "Z\"";
  return true;
}

bool AppendMessage(const Message& message, std::string* out);

// One value of `field` (element `index` when repeated, else -1).
bool AppendValue(const Message& message, const FieldDescriptor* field, int index,
                 std::string* out) {
  const Reflection* reflection = message.GetReflection();
  const bool repeated = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(out, repeated ? reflection->GetRepeatedInt32(message, field, index)
                                    : reflection->GetInt32(message, field));
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out, repeated ? reflection->GetRepeatedUInt32(message, field, index)
                                    : reflection->GetUInt32(message, field));
      return true;
    case FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(out, "\"",
                      repeated ? reflection->GetRepeatedInt64(message, field, index)
                               : reflection->GetInt64(message, field),
                      "\"");
      return true;
    case FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(out, "\"",
                      repeated ? reflection->GetRepeatedUInt64(message, field, index)
                               : reflection->GetUInt64(message, field),
                      "\"");
      return true;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      AppendDouble(repeated ? reflection->GetRepeatedDouble(message, field, index)
                            : reflection->GetDouble(message, field),
                   out);
      return true;
    case FieldDescriptor::CPPTYPE_FLOAT:
      AppendFloat(repeated ? reflection->GetRepeatedFloat(message, field, index)
                           : reflection->GetFloat(message, field),
                  out);
      return true;
    case FieldDescriptor::CPPTYPE_BOOL:
      *out += (repeated ? reflection->GetRepeatedBool(message, field, index)
                        : reflection->GetBool(message, field))
                  ? "true"
                  : "false";
      return true;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number = repeated ? reflection->GetRepeatedEnumValue(message, field, index)
                                  : reflection->GetEnumValue(message, field);
      const auto* value = field->enum_type()->FindValueByNumber(number);
      if (value == nullptr) {
        absl::StrAppend(out, number);  // A number this build does not name.
      } else {
        AppendJsonString(value->name(), out);
      }
      return true;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& text =
          repeated ? reflection->GetRepeatedStringReference(message, field, index, &scratch)
                   : reflection->GetStringReference(message, field, &scratch);
      if (field->type() == FieldDescriptor::TYPE_BYTES) {
        AppendJsonString(absl::Base64Escape(text), out);
        return true;
      }
      if (!core::IsValidUtf8(text)) return false;
      AppendJsonString(text, out);
      return true;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return AppendMessage(repeated ? reflection->GetRepeatedMessage(message, field, index)
                                    : reflection->GetMessage(message, field),
                           out);
  }
  return false;
}

bool AppendMessage(const Message& message, std::string* out) {
  const Descriptor* descriptor = message.GetDescriptor();
  if (descriptor->file()->package() == "google.protobuf") {
    if (descriptor->full_name() == "google.protobuf.Timestamp") {
      return AppendTimestamp(message, out);
    }
    return false;  // Other well-known types have JSON forms of their own.
  }
  const Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  // Set fields in field-number order: in proto3, the ones that differ from their defaults.
  reflection->ListFields(message, &fields);
  out->push_back('{');
  bool first = true;
  for (const FieldDescriptor* field : fields) {
    if (field->is_map()) return false;
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(field->json_name(), out);
    out->push_back(':');
    if (field->is_repeated()) {
      out->push_back('[');
      const int size = reflection->FieldSize(message, field);
      for (int i = 0; i < size; ++i) {
        if (i > 0) out->push_back(',');
        if (!AppendValue(message, field, i, out)) return false;
      }
      out->push_back(']');
    } else if (!AppendValue(message, field, -1, out)) {
      return false;
    }
  }
  out->push_back('}');
  return true;
}

}  // namespace

bool AppendJson(const Message& message, std::string* out) {
  const size_t size = out->size();
  if (AppendMessage(message, out)) return true;
  out->resize(size);
  return false;
}

}  // namespace physioreg::service::http
