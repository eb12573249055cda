#include "client/csv_records.h"

#include <charconv>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace physioreg::client {
namespace {

namespace v1 = physioreg::v1;
using google::protobuf::RepeatedPtrField;
using Getter = std::function<std::string(const v1::Practitioner&)>;
using Setter = std::function<absl::Status(const std::string&, v1::Practitioner*)>;

std::string Number(double value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);  // Shortest exact.
  return std::string(buffer, end);
}

// List cells hold one item per line. An item keeps its spaces; a line break or backslash in
// an item is written \n, \r or \\ (and, in training, a '|' inside a part \|), so that every
// item reads back exactly.
std::string EscapeItem(absl::string_view item, bool pipes = false) {
  std::string escaped;
  for (char c : item) {
    switch (c) {
      case '\\':
        escaped += "\\\\";
        break;
      case '\n':
        escaped += "\\n";
        break;
      case '\r':
        escaped += "\\r";
        break;
      case '|':
        escaped += pipes ? "\\|" : "|";
        break;
      default:
        escaped.push_back(c);
    }
  }
  return escaped;
}

// Undoes EscapeItem; a backslash before any other character is kept as it is.
std::string UnescapeItem(absl::string_view text) {
  std::string item;
  for (size_t i = 0; i < text.size(); ++i) {
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (text[i] == '\\' && (next == '\\' || next == 'n' || next == 'r' || next == '|')) {
      item.push_back(next == 'n' ? '\n' : next == 'r' ? '\r' : next);
      ++i;
    } else {
      item.push_back(text[i]);
    }
  }
  return item;
}

// The lines of a list cell, still escaped: blank lines are skipped (no item is blank), the CR
// of a CRLF line break dropped, and spaces kept.
std::vector<std::string> Lines(const std::string& cell) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(cell, '\n')) {
    if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
    if (!absl::StripAsciiWhitespace(line).empty()) lines.emplace_back(line);
  }
  return lines;
}

// `text` split at each '|' that is not escaped, each part unescaped.
std::vector<std::string> SplitParts(absl::string_view text) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      parts.back().append(text.data() + i, 2);
      ++i;
    } else if (text[i] == '|') {
      parts.emplace_back();
    } else {
      parts.back().push_back(text[i]);
    }
  }
  for (std::string& part : parts) part = UnescapeItem(part);
  return parts;
}

template <typename Enum>
absl::Status ParseEnum(const std::string& cell, bool (*parse)(const std::string&, Enum*),
                       Enum* value) {
  if (!parse(absl::AsciiStrToUpper(absl::StripAsciiWhitespace(cell)), value)) {
    return absl::InvalidArgumentError(absl::StrCat("'", cell, "' is not a known value"));
  }
  return absl::OkStatus();
}

absl::Status ParseDouble(const std::string& cell, double* value) {
  if (!absl::SimpleAtod(cell, value)) {
    return absl::InvalidArgumentError(absl::StrCat("'", cell, "' is not a number"));
  }
  return absl::OkStatus();
}

// Status history cells: one "YYYY-MM-DD STATUS reason" per line.
std::string HistoryCell(const RepeatedPtrField<v1::StatusChange>& history) {
  std::vector<std::string> lines;
  for (const auto& change : history) {
    lines.push_back(absl::StrCat(change.effective_on(), " ", change.status(),
                                 change.reason().empty() ? "" : " ", EscapeItem(change.reason())));
  }
  return absl::StrJoin(lines, "\n");
}

absl::Status ParseHistory(const std::string& cell, RepeatedPtrField<v1::StatusChange>* history) {
  history->Clear();
  for (const std::string& line : Lines(cell)) {
    // Spaces before the date are layout; after the status they belong to the reason.
    std::vector<std::string> parts =
        absl::StrSplit(absl::StripLeadingAsciiWhitespace(line), absl::MaxSplits(' ', 2));
    if (parts.size() < 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", line, "' is not 'YYYY-MM-DD STATUS reason'"));
    }
    auto* change = history->Add();
    change->set_effective_on(parts[0]);
    change->set_status(absl::AsciiStrToUpper(parts[1]));
    if (parts.size() == 3) change->set_reason(UnescapeItem(parts[2]));
  }
  return absl::OkStatus();
}

// Training cells: one "completed_on | hours | provider | course" per line.
std::string TrainingCell(const RepeatedPtrField<v1::TrainingRecord>& training) {
  std::vector<std::string> lines;
  for (const auto& t : training) {
    lines.push_back(absl::StrCat(t.completed_on(), " | ", Number(t.hours()), " | ",
                                 EscapeItem(t.provider(), true), " | ",
                                 EscapeItem(t.course(), true)));
  }
  return absl::StrJoin(lines, "\n");
}

absl::Status ParseTraining(const std::string& cell,
                           RepeatedPtrField<v1::TrainingRecord>* training) {
  training->Clear();
  for (const std::string& line : Lines(cell)) {
    std::vector<std::string> parts = SplitParts(line);
    if (parts.size() != 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", line, "' is not 'completed_on | hours | provider | course' (write a '|' as \\|)"));
    }
    // The " | " separators' spaces are not part of the text; any other spaces are.
    for (size_t i = 0; i < parts.size(); ++i) {
      if (i > 0 && absl::StartsWith(parts[i], " ")) parts[i].erase(0, 1);
      if (i + 1 < parts.size() && absl::EndsWith(parts[i], " ")) parts[i].pop_back();
    }
    absl::StripAsciiWhitespace(&parts[0]);
    absl::StripAsciiWhitespace(&parts[1]);
    auto* t = training->Add();
    t->set_completed_on(parts[0]);
    double hours = 0;
    if (absl::Status s = ParseDouble(parts[1], &hours); !s.ok()) return s;
    t->set_hours(hours);
    t->set_provider(parts[2]);
    t->set_course(parts[3]);
  }
  return absl::OkStatus();
}

// Text-list cells: one item per line.
std::string ListCell(const RepeatedPtrField<std::string>& items) {
  std::vector<std::string> lines;
  for (const std::string& item : items) lines.push_back(EscapeItem(item));
  return absl::StrJoin(lines, "\n");
}

Getter ListGetter(const RepeatedPtrField<std::string>& (v1::Practitioner::*list)() const) {
  return [list](const v1::Practitioner& p) { return ListCell((p.*list)()); };
}
Setter ListSetter(RepeatedPtrField<std::string>* (v1::Practitioner::*list)()) {
  return [list](const std::string& cell, v1::Practitioner* p) {
    for (const std::string& line : Lines(cell)) *(p->*list)()->Add() = UnescapeItem(line);
    return absl::OkStatus();
  };
}

Getter TextGetter(const std::string& (v1::Practitioner::*field)() const) {
  return [field](const v1::Practitioner& p) { return (p.*field)(); };
}
Setter TextSetter(void (v1::Practitioner::*field)(const std::string&)) {
  return [field](const std::string& cell, v1::Practitioner* p) {
    (p->*field)(cell);
    return absl::OkStatus();
  };
}

// The authorization for `activity`, created on first use.
v1::Authorization* AuthorizationFor(v1::Practitioner* p, v1::RestrictedActivity activity) {
  for (auto& a : *p->mutable_authorizations()) {
    if (a.activity() == activity) return &a;
  }
  v1::Authorization* a = p->add_authorizations();
  a->set_activity(activity);
  return a;
}
const v1::Authorization* FindAuthorization(const v1::Practitioner& p,
                                           v1::RestrictedActivity activity) {
  for (const auto& a : p.authorizations()) {
    if (a.activity() == activity) return &a;
  }
  return nullptr;
}

// The location of column group `group` (1-based), created (with the ones before it) on first
// use.
v1::PracticeLocation* LocationFor(v1::Practitioner* p, int group) {
  while (p->locations_size() < group) p->add_locations();
  return p->mutable_locations(group - 1);
}

}  // namespace

struct CsvRecordParser::Column {
  std::string name;
  Getter get;
  Setter set;
  bool required = false;
};

// Builds the table of columns once: identity, permit, lists, private contact, location groups
// and, for each restricted activity, its authorization's fields.
namespace {

std::vector<CsvRecordParser::Column> BuildColumns() {
  using P = v1::Practitioner;
  std::vector<CsvRecordParser::Column> c;
  c.push_back({"registration_id", TextGetter(&P::registration_id),
               TextSetter(&P::set_registration_id), true});
  c.push_back({"given_name", TextGetter(&P::given_name), TextSetter(&P::set_given_name), true});
  c.push_back({"family_name", TextGetter(&P::family_name), TextSetter(&P::set_family_name), true});
  c.push_back(
      {"preferred_name", TextGetter(&P::preferred_name), TextSetter(&P::set_preferred_name)});
  c.push_back({"former_names", ListGetter(&P::former_names), ListSetter(&P::mutable_former_names)});
  c.push_back(
      {"register",
       [](const P& p) { return p.has_permit() ? v1::Register_Name(p.permit().register_()) : ""; },
       [](const std::string& cell, P* p) {
         v1::Register value;
         absl::Status s = ParseEnum(cell, &v1::Register_Parse, &value);
         p->mutable_permit()->set_register_(value);
         return s;
       },
       true});
  c.push_back({"permit_status",
               [](const P& p) {
                 return p.has_permit() ? v1::Permit::Status_Name(p.permit().status()) : "";
               },
               [](const std::string& cell, P* p) {
                 v1::Permit::Status value;
                 absl::Status s = ParseEnum(cell, &v1::Permit::Status_Parse, &value);
                 p->mutable_permit()->set_status(value);
                 return s;
               },
               true});
  c.push_back({"registered_on", [](const P& p) { return p.permit().registered_on(); },
               [](const std::string& cell, P* p) {
                 p->mutable_permit()->set_registered_on(cell);
                 return absl::OkStatus();
               },
               true});
  c.push_back({"permit_expires_on", [](const P& p) { return p.permit().expires_on(); },
               [](const std::string& cell, P* p) {
                 p->mutable_permit()->set_expires_on(cell);
                 return absl::OkStatus();
               }});
  c.push_back({"permit_status_history",
               [](const P& p) { return HistoryCell(p.permit().status_history()); },
               [](const std::string& cell, P* p) {
                 return ParseHistory(cell, p->mutable_permit()->mutable_status_history());
               }});
  c.push_back({"conditions", ListGetter(&P::conditions), ListSetter(&P::mutable_conditions)});
  c.push_back({"languages", ListGetter(&P::languages), ListSetter(&P::mutable_languages)});
  c.push_back({"email", [](const P& p) { return p.private_contact().email(); },
               [](const std::string& cell, P* p) {
                 p->mutable_private_contact()->set_email(cell);
                 return absl::OkStatus();
               }});
  c.push_back({"phone", [](const P& p) { return p.private_contact().phone(); },
               [](const std::string& cell, P* p) {
                 p->mutable_private_contact()->set_phone(cell);
                 return absl::OkStatus();
               }});

  using L = v1::PracticeLocation;
  struct LocationText {
    const char* name;
    const std::string& (L::*get)() const;
    void (L::*set)(const std::string&);
  };
  const LocationText texts[] = {{"clinic_name", &L::clinic_name, &L::set_clinic_name},
                                {"street_address", &L::street_address, &L::set_street_address},
                                {"city", &L::city, &L::set_city},
                                {"province", &L::province, &L::set_province},
                                {"postal_code", &L::postal_code, &L::set_postal_code},
                                {"phone", &L::phone, &L::set_phone}};
  struct LocationNumber {
    const char* name;
    double (L::*get)() const;
    void (L::*set)(double);
  };
  const LocationNumber numbers[] = {{"latitude", &L::latitude, &L::set_latitude},
                                    {"longitude", &L::longitude, &L::set_longitude}};
  for (int group = 1; group <= kCsvLocationGroups; ++group) {
    const std::string prefix = absl::StrCat("location", group, "_");
    for (const LocationText& t : texts) {
      c.push_back({prefix + t.name,
                   [group, t](const P& p) {
                     return p.locations_size() >= group ? (p.locations(group - 1).*t.get)()
                                                        : std::string();
                   },
                   [group, t](const std::string& cell, P* p) {
                     (LocationFor(p, group)->*t.set)(cell);
                     return absl::OkStatus();
                   }});
    }
    for (const LocationNumber& n : numbers) {
      c.push_back({prefix + n.name,
                   [group, n](const P& p) {
                     return p.locations_size() >= group ? Number((p.locations(group - 1).*n.get)())
                                                        : std::string();
                   },
                   [group, n](const std::string& cell, P* p) {
                     double value = 0;
                     absl::Status s = ParseDouble(cell, &value);
                     (LocationFor(p, group)->*n.set)(value);
                     return s;
                   }});
    }
  }

  using A = v1::Authorization;
  for (int number = v1::RestrictedActivity_MIN + 1; number <= v1::RestrictedActivity_MAX;
       ++number) {
    const auto activity = static_cast<v1::RestrictedActivity>(number);
    if (!v1::RestrictedActivity_IsValid(activity)) continue;
    const std::string prefix = absl::AsciiStrToLower(v1::RestrictedActivity_Name(activity)) + "_";
    // Each getter answers "" when the registrant holds no such authorization.
    auto column = [&](const std::string& name, std::function<std::string(const A&)> get,
                      std::function<absl::Status(const std::string&, A*)> set) {
      c.push_back({prefix + name,
                   [activity, get](const P& p) {
                     const A* a = FindAuthorization(p, activity);
                     return a == nullptr ? std::string() : get(*a);
                   },
                   [activity, set](const std::string& cell, P* p) {
                     return set(cell, AuthorizationFor(p, activity));
                   }});
    };
    column(
        "status", [](const A& a) { return A::Status_Name(a.status()); },
        [](const std::string& cell, A* a) {
          A::Status value;
          absl::Status s = ParseEnum(cell, &A::Status_Parse, &value);
          a->set_status(value);
          return s;
        });
    column(
        "granted_on", [](const A& a) { return a.granted_on(); },
        [](const std::string& cell, A* a) {
          a->set_granted_on(cell);
          return absl::OkStatus();
        });
    column(
        "expires_on", [](const A& a) { return a.expires_on(); },
        [](const std::string& cell, A* a) {
          a->set_expires_on(cell);
          return absl::OkStatus();
        });
    column(
        "techniques",
        [](const A& a) {
          std::vector<std::string> names;
          for (int t : a.techniques()) {
            names.push_back(v1::Technique_Name(static_cast<v1::Technique>(t)));
          }
          return absl::StrJoin(names, "\n");
        },
        [](const std::string& cell, A* a) {
          for (const std::string& line : Lines(cell)) {
            v1::Technique technique;
            if (absl::Status s = ParseEnum(line, &v1::Technique_Parse, &technique); !s.ok()) {
              return s;
            }
            a->add_techniques(technique);
          }
          return absl::OkStatus();
        });
    column(
        "conditions", [](const A& a) { return ListCell(a.conditions()); },
        [](const std::string& cell, A* a) {
          for (const std::string& line : Lines(cell)) a->add_conditions(UnescapeItem(line));
          return absl::OkStatus();
        });
    column(
        "training", [](const A& a) { return TrainingCell(a.training()); },
        [](const std::string& cell, A* a) { return ParseTraining(cell, a->mutable_training()); });
    column(
        "status_history", [](const A& a) { return HistoryCell(a.status_history()); },
        [](const std::string& cell, A* a) {
          return ParseHistory(cell, a->mutable_status_history());
        });
  }
  return c;
}

// Cells a spreadsheet would run as a formula start with = + - or @, after any apostrophes
// (the apostrophes too, so that a value that itself starts with "'=" reads back).
bool LooksLikeFormula(absl::string_view cell) {
  const size_t start = cell.find_first_not_of('\'');
  return start != absl::string_view::npos &&
         absl::string_view("=+-@").find(cell[start]) != absl::string_view::npos;
}

// A plain decimal number ("-114.0719"): no spreadsheet runs it, so it needs no guard.
bool IsPlainNumber(absl::string_view cell) {
  if (!cell.empty() && (cell[0] == '-' || cell[0] == '+')) cell.remove_prefix(1);
  if (cell.empty()) return false;
  bool dot = false;
  for (char c : cell) {
    if (c == '.' && !dot) {
      dot = true;
    } else if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

const std::vector<CsvRecordParser::Column>& AllColumns() {
  static const auto* columns = new std::vector<CsvRecordParser::Column>(BuildColumns());
  return *columns;
}

}  // namespace

std::string ToSpreadsheetCell(std::string value) {
  if (LooksLikeFormula(value) && !IsPlainNumber(value)) value.insert(0, 1, '\'');
  return value;
}

std::string FromSpreadsheetCell(absl::string_view cell) {
  if (!cell.empty() && cell[0] == '\'' && LooksLikeFormula(cell)) cell.remove_prefix(1);
  return std::string(cell);
}

std::vector<std::string> CsvColumns() {
  std::vector<std::string> names;
  for (const auto& column : AllColumns()) names.push_back(column.name);
  return names;
}

absl::StatusOr<CsvRecordParser> CsvRecordParser::FromHeader(
    const std::vector<std::string>& header) {
  std::map<std::string, const Column*> by_name;
  for (const Column& column : AllColumns()) by_name[column.name] = &column;
  CsvRecordParser parser;
  std::map<std::string, int> seen;
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(header[i]));
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown column '", header[i], "' (column ", i + 1,
                       "); README.md lists the columns physioreg reads"));
    }
    if (!seen.emplace(name, i).second) {
      return absl::InvalidArgumentError(absl::StrCat("column '", name, "' appears twice"));
    }
    parser.columns_.push_back(it->second);
  }
  for (const Column& column : AllColumns()) {
    if (column.required && !seen.count(column.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("required column '", column.name, "' is missing"));
    }
  }
  return parser;
}

absl::StatusOr<v1::Practitioner> CsvRecordParser::Parse(const std::vector<std::string>& row) const {
  if (row.size() != columns_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("row has ", row.size(), " fields; the header has ", columns_.size()));
  }
  v1::Practitioner p;
  for (size_t i = 0; i < row.size(); ++i) {
    if (row[i].empty()) continue;  // Empty optional cells leave the field unset.
    if (absl::Status s = columns_[i]->set(FromSpreadsheetCell(row[i]), &p); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(columns_[i]->name, ": ", s.message()));
    }
  }
  return p;
}

const std::string& CsvRecordParser::ColumnName(size_t index) const {
  return columns_.at(index)->name;
}

std::string CsvRecordParser::RegistrationId(const std::vector<std::string>& row) const {
  for (size_t i = 0; i < columns_.size() && i < row.size(); ++i) {
    if (columns_[i]->name == "registration_id") return row[i];
  }
  return "";
}

absl::StatusOr<std::vector<std::string>> CsvRow(const v1::Practitioner& practitioner) {
  if (practitioner.locations_size() > kCsvLocationGroups) {
    return absl::FailedPreconditionError(
        absl::StrCat("registrant ", practitioner.registration_id(), " has ",
                     practitioner.locations_size(), " practice locations; a CSV row holds ",
                     kCsvLocationGroups, " (export with --format jsonl instead)"));
  }
  std::vector<std::string> row;
  for (const auto& column : AllColumns()) {
    row.push_back(ToSpreadsheetCell(column.get(practitioner)));
  }
  return row;
}

}  // namespace physioreg::client
