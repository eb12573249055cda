#include "tools/generator/csv.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/core/dates.h"
#include "service/core/search/normalize.h"
#include "service/core/verification.h"

namespace physioreg::tools {
namespace {

namespace v1 = physioreg::v1;

void AddDate(const std::string& date, int offset, std::vector<absl::CivilDay>* days) {
  if (std::optional<absl::CivilDay> day = core::ParseDate(date)) days->push_back(*day + offset);
}

}  // namespace

v1::Practitioner AsStored(v1::Practitioner record) {
  v1::Permit* permit = record.mutable_permit();
  if (permit->status_history().empty()) {
    v1::StatusChange* start = permit->add_status_history();
    start->set_status(v1::Permit::Status_Name(permit->status()));
    start->set_effective_on(permit->registered_on());
  }
  std::stable_sort(record.mutable_authorizations()->begin(), record.mutable_authorizations()->end(),
                   [](const v1::Authorization& a, const v1::Authorization& b) {
                     return a.activity() < b.activity();
                   });
  for (v1::Authorization& a : *record.mutable_authorizations()) {
    if (!a.status_history().empty() || a.granted_on().empty()) continue;
    v1::StatusChange* start = a.add_status_history();
    start->set_status(v1::Authorization::Status_Name(a.status()));
    start->set_effective_on(a.granted_on());
  }
  return record;
}

std::string CsvField(absl::string_view value) {
  if (!value.empty() && value.find_first_of(",\"\r\n") == absl::string_view::npos) {
    return std::string(value);
  }
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::vector<DayInterval> AuthorizedDays(const v1::Practitioner& record,
                                        v1::RestrictedActivity activity) {
  std::vector<absl::CivilDay> days;
  AddDate(record.permit().registered_on(), 0, &days);
  AddDate(record.permit().expires_on(), 1, &days);
  for (const v1::StatusChange& c : record.permit().status_history()) {
    AddDate(c.effective_on(), 0, &days);
  }
  for (const v1::Authorization& a : record.authorizations()) {
    if (a.activity() != activity) continue;
    AddDate(a.granted_on(), 0, &days);
    AddDate(a.expires_on(), 1, &days);
    for (const v1::StatusChange& c : a.status_history()) AddDate(c.effective_on(), 0, &days);
  }
  std::sort(days.begin(), days.end());
  days.erase(std::unique(days.begin(), days.end()), days.end());
  std::vector<DayInterval> intervals;
  for (size_t i = 0; i < days.size(); ++i) {
    if (!core::Verify(&record, record.registration_id(), activity, core::FormatDate(days[i]))
             .authorized()) {
      continue;
    }
    std::optional<absl::CivilDay> to;
    if (i + 1 < days.size()) to = days[i + 1];
    if (!intervals.empty() && intervals.back().to == days[i]) {
      intervals.back().to = to;
    } else {
      intervals.push_back(DayInterval{days[i], to});
    }
  }
  return intervals;
}

std::string DateMultirange(const std::vector<DayInterval>& intervals) {
  std::string out = "{";
  for (size_t i = 0; i < intervals.size(); ++i) {
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, "[", core::FormatDate(intervals[i].from), ",",
                    intervals[i].to ? core::FormatDate(*intervals[i].to) : "", ")");
  }
  out.push_back('}');
  return out;
}

std::string CsvHeader() {
  return "registration_id,given_name,family_name,given_norm,family_norm,name_tokens,city,"
         "register,permit_status,dry_needling,record\n";
}

absl::StatusOr<std::string> CsvRow(const v1::Practitioner& upload) {
  const v1::Practitioner record = AsStored(upload);
  std::vector<std::string> tokens;
  auto add_name = [&](const std::string& name) {
    for (std::string& token : search::IndexTokens(name)) tokens.push_back(std::move(token));
  };
  add_name(record.given_name());
  add_name(record.family_name());
  add_name(record.preferred_name());
  for (const std::string& former : record.former_names()) add_name(former);
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());

  std::string json;
  if (auto printed = google::protobuf::util::MessageToJsonString(core::PublicView(record), &json);
      !printed.ok()) {
    return absl::InternalError(std::string(printed.message()));
  }
  const std::string city = record.locations().empty() ? "" : record.locations(0).city();
  const std::string fields[] = {
      record.registration_id(),
      record.given_name(),
      record.family_name(),
      search::NormalizeKey(record.given_name()),
      search::NormalizeKey(record.family_name()),
      absl::StrJoin(tokens, " "),
      city,
      v1::Register_Name(record.permit().register_()),
      v1::Permit::Status_Name(record.permit().status()),
      DateMultirange(AuthorizedDays(record, v1::DRY_NEEDLING)),
      json,
  };
  std::string row;
  for (const std::string& field : fields) {
    row += CsvField(field);
    row.push_back(',');
  }
  row.back() = '\n';
  return row;
}

}  // namespace physioreg::tools
