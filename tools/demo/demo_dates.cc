#include "tools/demo/demo_dates.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "physioreg/v1/practitioner.pb.h"
#include "service/core/dates.h"

namespace physioreg::tools {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

bool IsLeapYear(absl::civil_year_t year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

struct Shifter {
  absl::CivilDay anchor;
  int years;

  // Shifts one date field in place; `path` names it in errors.
  absl::Status ShiftDate(const std::string& path, bool may_follow_anchor, std::string* text) const {
    if (text->empty()) return absl::OkStatus();
    const std::optional<absl::CivilDay> day = core::ParseDate(*text);
    if (!day) return absl::InvalidArgumentError(absl::StrCat(path, ": not a date: ", *text));
    if (!may_follow_anchor && *day > anchor) {
      return absl::InvalidArgumentError(absl::StrCat(path, " ", *text, " is after the anchor ",
                                                     core::FormatDate(anchor),
                                                     "; only expires_on may be"));
    }
    *text = core::FormatDate(ShiftByYears(*day, years));
    return absl::OkStatus();
  }

  // Walks every field by reflection so a date field added to the API later is shifted too.
  absl::Status ShiftMessage(const std::string& path, Message* message) const {
    const Reflection* reflection = message->GetReflection();
    std::vector<const FieldDescriptor*> fields;
    reflection->ListFields(*message, &fields);
    for (const FieldDescriptor* field : fields) {
      const std::string name = absl::StrCat(path, path.empty() ? "" : ".", field->name());
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        if (field->is_repeated()) {
          for (int i = 0; i < reflection->FieldSize(*message, field); ++i) {
            absl::Status s = ShiftMessage(absl::StrCat(name, "[", i, "]"),
                                          reflection->MutableRepeatedMessage(message, field, i));
            if (!s.ok()) return s;
          }
        } else {
          absl::Status s = ShiftMessage(name, reflection->MutableMessage(message, field));
          if (!s.ok()) return s;
        }
      } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING && !field->is_repeated() &&
                 absl::EndsWith(field->name(), "_on")) {
        std::string text = reflection->GetString(*message, field);
        absl::Status s = ShiftDate(name, field->name() == "expires_on", &text);
        if (!s.ok()) return s;
        reflection->SetString(message, field, std::move(text));
      }
    }
    return absl::OkStatus();
  }
};

}  // namespace

absl::CivilDay ShiftByYears(absl::CivilDay day, int years) {
  const absl::civil_year_t year = day.year() + years;
  if (day.month() == 2 && day.day() == 29 && !IsLeapYear(year)) return absl::CivilDay(year, 2, 28);
  return absl::CivilDay(year, day.month(), day.day());
}

int YearsToShift(absl::CivilDay anchor, absl::CivilDay today) {
  int years = static_cast<int>(today.year() - anchor.year());
  if (ShiftByYears(anchor, years) > today) --years;
  return years;
}

absl::StatusOr<std::string> ShiftDemoRegister(absl::string_view jsonl, absl::CivilDay anchor,
                                              absl::CivilDay today) {
  const Shifter shifter{anchor, YearsToShift(anchor, today)};
  std::string out;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(jsonl, '\n')) {
    ++line_number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    physioreg::v1::Practitioner record;
    const auto parsed = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(line.data(), line.size()), &record);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", parsed.message().as_string()));
    }
    absl::Status shifted = shifter.ShiftMessage("", &record);
    if (!shifted.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, " (", record.registration_id(), "): ", shifted.message()));
    }
    std::string json;
    const auto printed = google::protobuf::util::MessageToJsonString(record, &json);
    if (!printed.ok()) {
      return absl::InternalError(
          absl::StrCat("line ", line_number, ": ", printed.message().as_string()));
    }
    absl::StrAppend(&out, json, "\n");
  }
  return out;
}

}  // namespace physioreg::tools
