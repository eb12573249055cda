// physioreg: the command-line client for clinics, insurers and the regulator.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/support/error_details.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/connection.h"
#include "client/csv.h"
#include "client/line_reader.h"
#include "client/transfer.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "service/core/attestation.h"

namespace {

namespace v1 = physioreg::v1;

constexpr int kExitUsage = 2;
constexpr int kExitNotAuthorized = 3;

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename Enum>
Enum ParseEnum(const std::string& text, bool (*parse)(const std::string&, Enum*),
               const std::string& what) {
  Enum value;
  if (text.empty() || !parse(absl::AsciiStrToUpper(text), &value)) {
    throw UsageError(absl::StrCat("'", text, "' is not a known ", what));
  }
  return value;
}

// What the command line says; each command reads its own fields (CLI11 fills them).
struct Options {
  std::string address = "127.0.0.1:50051";
  physioreg::client::TlsFiles tls;
  std::string token_file;
  bool json = false;

  std::string id;  // The registration ID (or key ID) the command is about.
  std::vector<std::string> ids;
  std::string file;
  std::string activity;
  std::string as_of;
  std::string status;
  std::string effective_on;
  std::string reason;
  // search
  std::string name, city, postal_code_prefix, language, register_name, near, page_token;
  double radius_km = 0;
  bool fuzzy = false;
  bool all = false;
  int page_size = 0;
  // upsert, import, export
  std::string request_id;
  std::string update_mask;
  bool allow_status_lift = false;
  std::string import_id;
  std::string rejects;
  int chunk_size = 1000;
  std::string format = "jsonl";
  std::string import_format;  // import: jsonl or csv; empty: from the file's extension
  bool include_private = false;
  std::string output;
  // verify, verify-proof, batch-verify
  std::string proof;
  std::string keys_file;
  std::string proof_dir;
  std::string table_format = "table";
  // keys, health
  std::string role;
  std::string description;
  int wait_seconds = 0;
  // watch
  std::string ids_file;
  std::string state_file;
  int64_t since = 0;
  int64_t count = 0;
  // audit
  std::string audit_since;
  int limit = 100;

  // Options given on the command line, as "command --name" (to tell unset from empty).
  std::set<std::string> given;
  bool Given(const std::string& option) const { return given.count(option) > 0; }
};

v1::RestrictedActivity Activity(const Options& o) {
  return ParseEnum<v1::RestrictedActivity>(o.activity, &v1::RestrictedActivity_Parse,
                                           "activity (--activity)");
}

// An enum value for a person: its name, or `none` for the zero value (FOO_UNSPECIFIED), which
// means "not set" and says nothing to a reader.
template <typename Enum>
std::string Shown(Enum value, const std::string& (*name)(Enum), const std::string& none = "-") {
  return static_cast<int>(value) == 0 ? none : name(value);
}

std::string ToJson(const google::protobuf::Message& message, bool multiline) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = multiline;
  // false, 0 and "" too: a refused verification must say "authorized": false.
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

// Prints a failed call: code, message and each field violation. Returns the exit code.
int ReportError(const grpc::Status& status) {
  std::fprintf(stderr, "%s", physioreg::client::FormatError(status).c_str());
  return 1;
}

// `text` as a JSON string literal (quoted, escaped); text that is not UTF-8 is escaped first.
std::string JsonString(const std::string& text) {
  google::protobuf::Value value;
  value.set_string_value(text);
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(value, &json).ok()) {
    value.set_string_value(physioreg::client::ForTerminal(text));
    (void)google::protobuf::util::MessageToJsonString(value, &json);
  }
  return json;
}

// Writes `content` to `path`; throws UsageError when it cannot.
void WriteTextFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) throw UsageError(absl::StrCat("cannot write ", path));
}

// The JSON message in `path`; throws UsageError when the file cannot be read or parsed.
void ReadJsonFile(const std::string& path, google::protobuf::Message* message,
                  const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (auto parsed = google::protobuf::util::JsonStringToMessage(text.str(), message, options);
      !parsed.ok()) {
    throw UsageError(
        absl::StrCat(path, " is not ", what, " in JSON: ", std::string(parsed.message())));
  }
}

// A registration ID usable as a file name (the server's IDs are letters, digits and dashes).
bool SafeFileName(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_') return false;
  }
  return true;
}

// Pads UTF-8 `text` with spaces to `width` characters (printf's %-40s counts bytes, which
// misaligns accented names).
std::string PadRight(std::string text, size_t width) {
  size_t characters = 0;
  for (char c : text) characters += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  if (characters < width) text.append(width - characters, ' ');
  return text;
}

std::string Timestamp(const google::protobuf::Timestamp& ts) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(ts.seconds()),
                          absl::UTCTimeZone());
}

// Text from the register for a terminal: control characters, C1 codes and bidi overrides
// (which could rewrite or reorder what a person reads) are shown as escapes.
std::string S(absl::string_view text) { return physioreg::client::ForTerminal(text); }

void PrintTimeline(const google::protobuf::RepeatedPtrField<v1::StatusChange>& history,
                   const std::string& indent) {
  for (const auto& change : history) {
    std::printf("%s%s  %-10s %s\n", indent.c_str(), S(change.effective_on()).c_str(),
                S(change.status()).c_str(), S(change.reason()).c_str());
  }
}

void PrintPractitioner(const v1::Practitioner& p) {
  std::printf("%s  %s %s", S(p.registration_id()).c_str(), S(p.given_name()).c_str(),
              S(p.family_name()).c_str());
  if (!p.preferred_name().empty()) std::printf(" (preferred: %s)", S(p.preferred_name()).c_str());
  std::printf("\n");
  if (!p.former_names().empty()) {
    std::printf("  former names: %s\n", S(absl::StrJoin(p.former_names(), ", ")).c_str());
  }
  const v1::Permit& permit = p.permit();
  std::printf("  permit: %s register, %s, registered %s%s\n",
              Shown(permit.register_(), &v1::Register_Name, "unknown").c_str(),
              Shown(permit.status(), &v1::Permit::Status_Name, "status unknown").c_str(),
              S(permit.registered_on()).c_str(),
              permit.expires_on().empty()
                  ? ""
                  : S(absl::StrCat(", expires ", permit.expires_on())).c_str());
  PrintTimeline(permit.status_history(), "      ");
  for (const auto& condition : p.conditions())
    std::printf("  condition: %s\n", S(condition).c_str());
  if (p.authorizations().empty()) std::printf("  authorizations: none\n");
  for (const auto& a : p.authorizations()) {
    std::vector<std::string> techniques;
    for (int t : a.techniques())
      techniques.push_back(Shown(static_cast<v1::Technique>(t), &v1::Technique_Name, "unknown"));
    std::printf(
        "  %-28s %-10s granted %s%s%s\n",
        Shown(a.activity(), &v1::RestrictedActivity_Name, "unknown activity").c_str(),
        Shown(a.status(), &v1::Authorization::Status_Name).c_str(),
        a.granted_on().empty() ? "-" : S(a.granted_on()).c_str(),
        a.expires_on().empty() ? "" : S(absl::StrCat(", expires ", a.expires_on())).c_str(),
        techniques.empty() ? "" : absl::StrCat(" [", absl::StrJoin(techniques, ", "), "]").c_str());
    for (const auto& condition : a.conditions()) {
      std::printf("      condition: %s\n", S(condition).c_str());
    }
    PrintTimeline(a.status_history(), "      ");
  }
  for (const auto& l : p.locations()) {
    std::printf("  location: %s, %s, %s %s %s%s\n", S(l.clinic_name()).c_str(),
                S(l.street_address()).c_str(), S(l.city()).c_str(), S(l.province()).c_str(),
                S(l.postal_code()).c_str(),
                l.phone().empty() ? "" : S(absl::StrCat(", ", l.phone())).c_str());
  }
  if (!p.languages().empty()) {
    std::printf("  languages: %s\n", S(absl::StrJoin(p.languages(), ", ")).c_str());
  }
  if (p.has_private_contact()) {
    std::printf("  private contact: %s %s\n", S(p.private_contact().email()).c_str(),
                S(p.private_contact().phone()).c_str());
  }
  std::printf("  revision %lld, updated %s\n", static_cast<long long>(p.revision()),
              Timestamp(p.update_time()).c_str());
}

// The location with coordinates nearest to `point` (great-circle distance, as the server
// measures it), or null when none has coordinates.
const v1::PracticeLocation* Nearest(const v1::Practitioner& p, const v1::GeoFilter& point) {
  constexpr double kEarthRadiusKm = 6371.0088;
  constexpr double kRadians = 3.14159265358979323846 / 180;
  const v1::PracticeLocation* nearest = nullptr;
  double best = 0;
  for (const v1::PracticeLocation& l : p.locations()) {
    if (l.latitude() == 0 && l.longitude() == 0) continue;  // No coordinates.
    const double dlat = (l.latitude() - point.latitude()) * kRadians;
    const double dlng = (l.longitude() - point.longitude()) * kRadians;
    const double a = std::sin(dlat / 2) * std::sin(dlat / 2) +
                     std::cos(point.latitude() * kRadians) * std::cos(l.latitude() * kRadians) *
                         std::sin(dlng / 2) * std::sin(dlng / 2);
    const double km = 2 * kEarthRadiusKm * std::asin(std::min(1.0, std::sqrt(a)));
    if (nearest == nullptr || km < best) {
      nearest = &l;
      best = km;
    }
  }
  return nearest;
}

void PrintVerification(const v1::VerifyAuthorizationResponse& r, const std::string& activity) {
  std::printf("%-12s %-28s %s  %-32s %s\n", S(r.registration_id()).c_str(), activity.c_str(),
              S(r.as_of()).c_str(), Shown(r.reason(), &v1::VerificationReason_Name).c_str(),
              S(r.display_name()).c_str());
  if (r.authorized()) {
    for (const auto& condition : r.authorization().conditions()) {
      std::printf("%-12s   condition: %s\n", "", S(condition).c_str());
    }
  }
}

struct Cli {
  physioreg::client::Connection connection;
  bool json = false;

  void Print(const google::protobuf::Message& message) const {
    std::printf("%s\n", ToJson(message, true).c_str());
  }

  int Get(const Options& o) const {
    v1::GetPractitionerRequest request;
    request.set_registration_id(o.id);
    v1::Practitioner response;
    grpc::Status status =
        connection.Registry()->GetPractitioner(connection.Context().get(), request, &response);
    if (!status.ok()) return ReportError(status);
    json ? Print(response) : PrintPractitioner(response);
    return 0;
  }

  int Search(const Options& o) const {
    v1::SearchPractitionersRequest request;
    request.set_name(o.name);
    request.set_city(o.city);
    request.set_postal_code_prefix(o.postal_code_prefix);
    request.set_language(o.language);
    request.set_fuzzy(o.fuzzy);
    if (o.Given("--activity")) request.set_activity(Activity(o));
    if (o.Given("--register")) {
      request.set_register_(
          ParseEnum<v1::Register>(o.register_name, &v1::Register_Parse, "register (--register)"));
    }
    if (o.Given("--near") || o.Given("--radius-km")) {
      std::vector<std::string> parts = absl::StrSplit(o.near, ',');
      double latitude = 0, longitude = 0;
      if (parts.size() != 2 || !absl::SimpleAtod(parts[0], &latitude) ||
          !absl::SimpleAtod(parts[1], &longitude)) {
        throw UsageError("--near takes LAT,LNG");
      }
      if (!o.Given("--radius-km")) throw UsageError("--near needs --radius-km KM");
      request.mutable_near()->set_latitude(latitude);
      request.mutable_near()->set_longitude(longitude);
      request.mutable_near()->set_radius_km(o.radius_km);
    }
    request.set_page_size(o.page_size);
    request.set_page_token(o.page_token);
    const bool all = o.all;
    int64_t shown = 0;
    while (true) {
      v1::SearchPractitionersResponse response;
      grpc::Status status = connection.Registry()->SearchPractitioners(connection.Context().get(),
                                                                       request, &response);
      if (!status.ok()) return ReportError(status);
      if (json) {
        std::printf("%s\n", ToJson(response, !all).c_str());
      } else {
        for (int i = 0; i < response.practitioners_size(); ++i) {
          const v1::Practitioner& p = response.practitioners(i);
          std::string where;
          if (!p.locations().empty()) where = p.locations(0).city();
          if (i < response.distances_km_size()) {
            // The distance is to the nearest location: name that one's city.
            const v1::PracticeLocation* nearest = Nearest(p, request.near());
            if (nearest != nullptr) where = nearest->city();
            where += absl::StrFormat(" (%.1f km)", response.distances_km(i));
          }
          std::printf("%-12s %s %-12s %s\n", S(p.registration_id()).c_str(),
                      PadRight(S(absl::StrCat(p.given_name(), " ", p.family_name())), 40).c_str(),
                      Shown(p.permit().status(), &v1::Permit::Status_Name).c_str(),
                      S(where).c_str());
        }
      }
      shown += response.practitioners_size();
      if (!json) {
        if (response.next_page_token().empty() || all) {
          if (response.next_page_token().empty()) {
            std::printf("%lld of %lld matches\n", static_cast<long long>(shown),
                        static_cast<long long>(response.total_size()));
          }
        } else {
          std::printf("%lld of %lld matches; next page: --page-token %s\n",
                      static_cast<long long>(shown), static_cast<long long>(response.total_size()),
                      response.next_page_token().c_str());
        }
      }
      if (!all || response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    return 0;
  }

  int Verify(const Options& o) const {
    v1::VerifyAuthorizationRequest request;
    request.set_registration_id(o.id);
    request.set_activity(Activity(o));
    request.set_as_of(o.as_of);
    request.set_include_attestation(!o.proof.empty());
    v1::VerifyAuthorizationResponse response;
    grpc::Status status =
        connection.Registry()->VerifyAuthorization(connection.Context().get(), request, &response);
    if (!status.ok()) return ReportError(status);
    if (!o.proof.empty()) {
      WriteTextFile(o.proof, ToJson(response, true) + "\n");
      std::fprintf(stderr,
                   "signed answer (key %s) saved to %s; check it with physioreg "
                   "verify-proof %s\n",
                   S(response.attestation().key_id()).c_str(), o.proof.c_str(), o.proof.c_str());
    }
    if (json) {
      Print(response);
    } else {
      PrintVerification(response, v1::RestrictedActivity_Name(request.activity()));
      std::string permit;
      if (response.reason() == v1::NOT_REGISTERED) {
        permit = absl::StrCat(response.registration_id(), " is not on the register");
      } else if (response.permit_status() == v1::Permit::STATUS_UNSPECIFIED) {
        permit = absl::StrCat("no permit on ", response.as_of());
      } else {
        permit = absl::StrCat("permit status on ", response.as_of(), ": ",
                              v1::Permit::Status_Name(response.permit_status()));
        if (!response.permit_expires_on().empty() &&
            response.permit_expires_on() < response.as_of()) {
          absl::StrAppend(&permit, " (the permit expired on ", response.permit_expires_on(), ")");
        }
      }
      std::printf("%s; register revision %lld; checked %s\n", S(permit).c_str(),
                  static_cast<long long>(response.register_revision()),
                  Timestamp(response.checked_at()).c_str());
    }
    return response.authorized() ? 0 : kExitNotAuthorized;
  }

  // One line of batch-verify: its answer, or why that ID could not be checked.
  struct BatchLine {
    std::string id;
    std::optional<v1::VerifyAuthorizationResponse> answer;
    std::string error;
  };

  // Item-level problems of a refused batch: position in the request -> message. Only a bad
  // registration ID is an item's own problem; nullopt when anything else was refused.
  static std::optional<std::map<int, std::string>> BadIds(const grpc::Status& status) {
    if (status.error_code() != grpc::StatusCode::INVALID_ARGUMENT) return std::nullopt;
    google::rpc::Status details;
    if (status.error_details().empty() || !details.ParseFromString(status.error_details())) {
      return std::nullopt;
    }
    std::map<int, std::string> bad;
    for (const auto& any : details.details()) {
      google::rpc::BadRequest request;
      if (!any.UnpackTo(&request)) continue;
      for (const auto& violation : request.field_violations()) {
        absl::string_view field = violation.field();
        int index = 0;
        if (!absl::ConsumePrefix(&field, "requests[")) return std::nullopt;
        const size_t close = field.find(']');
        if (close == absl::string_view::npos || !absl::SimpleAtoi(field.substr(0, close), &index) ||
            field.substr(close) != "].registration_id") {
          return std::nullopt;
        }
        bad[index] = violation.description();
      }
    }
    if (bad.empty()) return std::nullopt;
    return bad;
  }

  // The IDs listed in `path`, one a line ('#' comments, blank lines skipped), read with
  // bounded memory: a line past the limit, a NUL byte or a read error is a usage error.
  static std::vector<std::string> ReadIdFile(const std::string& path) {
    absl::StatusOr<std::unique_ptr<physioreg::client::LineReader>> reader =
        physioreg::client::LineReader::Open(path);
    if (!reader.ok()) throw UsageError(std::string(reader.status().message()));
    std::vector<std::string> ids;
    physioreg::client::LineReader::Line line;
    while (true) {
      absl::StatusOr<bool> read = (*reader)->Next(&line);
      if (!read.ok()) throw UsageError(absl::StrCat(path, ": ", read.status().message()));
      if (!*read) return ids;
      if (line.too_long) {
        throw UsageError(absl::StrCat(path, ":", line.number, ": the line is longer than ",
                                      physioreg::client::MaxLineText()));
      }
      std::string id(absl::StripAsciiWhitespace(line.text));
      if (!id.empty() && id[0] != '#') ids.push_back(std::move(id));
    }
  }

  int BatchVerify(const Options& o) const {
    std::vector<std::string> ids = o.ids;
    if (!o.file.empty()) {
      for (std::string& id : ReadIdFile(o.file)) ids.push_back(std::move(id));
    }
    if (ids.empty()) throw UsageError("no registration IDs given");
    const v1::RestrictedActivity activity = Activity(o);
    const bool proofs = !o.proof_dir.empty();
    if (proofs) {
      std::error_code error;
      std::filesystem::create_directories(o.proof_dir, error);
      if (!std::filesystem::is_directory(o.proof_dir)) {
        throw UsageError(absl::StrCat("cannot create the directory ", o.proof_dir));
      }
    }
    std::set<std::string> proof_names;  // Files written in proof_dir by this run.
    std::vector<BatchLine> lines(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) lines[i].id = ids[i];
    for (size_t start = 0; start < ids.size(); start += 1000) {
      // Positions (in `lines`) still to ask about; a bad ID is taken out and the rest re-sent.
      std::vector<size_t> pending;
      for (size_t i = start; i < ids.size() && i < start + 1000; ++i) pending.push_back(i);
      while (!pending.empty()) {
        v1::BatchVerifyAuthorizationsRequest request;
        for (size_t i : pending) {
          auto* one = request.add_requests();
          one->set_registration_id(ids[i]);
          one->set_activity(activity);
          one->set_as_of(o.as_of);
          one->set_include_attestation(proofs);
        }
        v1::BatchVerifyAuthorizationsResponse response;
        grpc::Status status = connection.Registry()->BatchVerifyAuthorizations(
            connection.Context().get(), request, &response);
        if (status.ok()) {
          for (int k = 0; k < response.responses_size() && k < static_cast<int>(pending.size());
               ++k) {
            lines[pending[k]].answer = response.responses(k);
          }
          break;
        }
        std::optional<std::map<int, std::string>> bad = BadIds(status);
        if (!bad) return ReportError(status);
        std::vector<size_t> rest;
        for (size_t k = 0; k < pending.size(); ++k) {
          auto it = bad->find(static_cast<int>(k));
          if (it == bad->end()) {
            rest.push_back(pending[k]);
          } else {
            lines[pending[k]].error = it->second;
          }
        }
        pending = std::move(rest);
      }
    }
    int not_authorized = 0, errors = 0;
    const bool csv = o.table_format == "csv";
    if (csv && !json) {
      std::fputs(physioreg::client::CsvRecord({"item", "registration_id", "activity", "as_of",
                                               "authorized", "reason", "display_name",
                                               "register_revision", "checked_at", "error"})
                     .c_str(),
                 stdout);
    }
    for (size_t i = 0; i < lines.size(); ++i) {
      const BatchLine& line = lines[i];
      if (!line.answer) {
        ++errors;
        if (json) {
          std::printf("{\"line\": %zu, \"registration_id\": %s, \"error\": %s}\n", i + 1,
                      JsonString(line.id).c_str(), JsonString(line.error).c_str());
        } else if (csv) {
          std::fputs(physioreg::client::CsvRecord({absl::StrCat(i + 1), line.id,
                                                   v1::RestrictedActivity_Name(activity), o.as_of,
                                                   "", "", "", "", "", line.error})
                         .c_str(),
                     stdout);
        } else {
          std::printf("%-12s error: %s\n", S(line.id).c_str(), S(line.error).c_str());
        }
        continue;
      }
      const v1::VerifyAuthorizationResponse& answer = *line.answer;
      if (!answer.authorized()) ++not_authorized;
      if (json) {
        std::printf("%s\n", ToJson(answer, false).c_str());
      } else if (csv) {
        std::fputs(
            physioreg::client::CsvRecord(
                {absl::StrCat(i + 1), answer.registration_id(),
                 v1::RestrictedActivity_Name(activity), answer.as_of(),
                 answer.authorized() ? "true" : "false",
                 v1::VerificationReason_Name(answer.reason()), answer.display_name(),
                 absl::StrCat(answer.register_revision()), Timestamp(answer.checked_at()), ""})
                .c_str(),
            stdout);
      } else {
        PrintVerification(answer, v1::RestrictedActivity_Name(activity));
      }
      if (proofs) {
        // One file per answer: an ID listed again gets its item number too.
        std::string name =
            SafeFileName(answer.registration_id()) ? answer.registration_id() : absl::StrCat(i + 1);
        if (!proof_names.insert(name).second) {
          name = absl::StrCat(name, "-", i + 1);
          proof_names.insert(name);
        }
        WriteTextFile(absl::StrCat(o.proof_dir, "/", name, ".json"), ToJson(answer, true) + "\n");
      }
    }
    if (proofs) {
      std::fprintf(stderr, "%zu signed answers saved in %s\n", lines.size() - errors,
                   o.proof_dir.c_str());
    }
    if (errors > 0) {
      std::fprintf(stderr, "%d of %zu lines could not be checked (see their error)\n", errors,
                   lines.size());
      return 1;
    }
    return not_authorized == 0 ? 0 : kExitNotAuthorized;
  }

  // The registry's public keys: from --keys FILE, else asked of the server.
  v1::GetVerificationKeysResponse VerificationKeys(const Options& o, grpc::Status* status) const {
    v1::GetVerificationKeysResponse keys;
    if (!o.keys_file.empty()) {
      ReadJsonFile(o.keys_file, &keys, "a GetVerificationKeysResponse (verification keys)");
      return keys;
    }
    *status = connection.Registry()->GetVerificationKeys(connection.Context().get(),
                                                         v1::GetVerificationKeysRequest(), &keys);
    return keys;
  }

  int VerifyProof(const Options& o) const {
    v1::VerifyAuthorizationResponse answer;
    ReadJsonFile(o.file, &answer, "a signed VerifyAuthorizationResponse");
    grpc::Status status;
    const v1::GetVerificationKeysResponse keys = VerificationKeys(o, &status);
    if (!status.ok()) return ReportError(status);
    absl::StatusOr<physioreg::core::AttestedFields> checked =
        physioreg::core::CheckProof(answer, keys.keys());
    if (!checked.ok()) {
      std::printf("INVALID proof %s: %s\n", S(o.file).c_str(),
                  S(checked.status().message()).c_str());
      return kExitNotAuthorized;
    }
    const physioreg::core::AttestedFields& f = *checked;
    std::printf(
        "valid proof: %s %s on %s: %s (authorized: %s)\n"
        "  register revision %lld, checked %s, signed by key %s (Ed25519)\n",
        S(f.registration_id).c_str(), v1::RestrictedActivity_Name(f.activity).c_str(),
        S(f.as_of).c_str(), v1::VerificationReason_Name(f.reason).c_str(),
        f.authorized ? "yes" : "no", static_cast<long long>(f.register_revision),
        physioreg::core::FormatCheckedAt(f.checked_at).c_str(), S(f.key_id).c_str());
    return 0;
  }

  int ShowVerificationKeys(const Options& o) const {
    grpc::Status status;
    const v1::GetVerificationKeysResponse keys = VerificationKeys(o, &status);
    if (!status.ok()) return ReportError(status);
    if (!o.output.empty()) {
      WriteTextFile(o.output, ToJson(keys, true) + "\n");
      std::printf("%d verification keys saved to %s\n", keys.keys_size(), o.output.c_str());
      return 0;
    }
    if (json) return Print(keys), 0;
    for (const auto& key : keys.keys()) {
      std::printf("%s  %s  from %s  %s\n", S(key.key_id()).c_str(), S(key.algorithm()).c_str(),
                  Timestamp(key.not_before()).c_str(),
                  key.has_not_after() ? absl::StrCat("until ", Timestamp(key.not_after())).c_str()
                                      : "current");
    }
    return 0;
  }

  int History(const Options& o) const {
    v1::ListPractitionerHistoryRequest request;
    request.set_registration_id(o.id);
    request.set_page_size(o.page_size);
    do {
      v1::ListPractitionerHistoryResponse response;
      grpc::Status status = connection.Registry()->ListPractitionerHistory(
          connection.Context().get(), request, &response);
      if (!status.ok()) return ReportError(status);
      for (const auto& event : response.events()) {
        if (json) {
          std::printf("%s\n", ToJson(event, false).c_str());
        } else {
          std::printf("%8lld  %s  %-28s %s\n", static_cast<long long>(event.revision()),
                      Timestamp(event.change_time()).c_str(),
                      Shown(event.kind(), &v1::ChangeEvent::Kind_Name).c_str(),
                      event.actor().empty() ? "" : S(absl::StrCat("by ", event.actor())).c_str());
        }
      }
      request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty());
    return 0;
  }

  int Upsert(const Options& o) const {
    const std::string& path = o.file;
    absl::StatusOr<std::unique_ptr<physioreg::client::LineReader>> reader =
        physioreg::client::LineReader::Open(path);
    if (!reader.ok()) throw UsageError(std::string(reader.status().message()));
    std::vector<v1::Practitioner> records;
    std::map<std::string, int64_t> first_line_of_id;
    physioreg::client::LineReader::Line line;
    while (true) {
      absl::StatusOr<bool> read = (*reader)->Next(&line);
      if (!read.ok()) {
        throw UsageError(absl::StrCat(path, ": ", read.status().message(), "; nothing was sent"));
      }
      if (!*read) break;
      const auto line_number = static_cast<long long>(line.number);
      if (line.too_long) {
        std::fprintf(stderr,
                     "error: %s:%lld: the line is longer than %s, the most one record may take "
                     "(the server takes at most 4 MiB in one message); nothing was sent\n",
                     path.c_str(), line_number, physioreg::client::MaxLineText().c_str());
        return 1;
      }
      if (absl::StripAsciiWhitespace(line.text).empty()) continue;
      // Nothing is sent unless every line reads (and is UTF-8, which the server needs).
      physioreg::client::RecordSource::Item item =
          physioreg::client::ParseJsonLine(line.number, line.text);
      if (!item.record.ok()) {
        std::fprintf(stderr, "error: %s:%lld: %s%s%s; nothing was sent\n", path.c_str(),
                     line_number,
                     item.registration_id.empty() ? "" : S(item.registration_id + ": ").c_str(),
                     item.field.empty() ? "" : S(item.field + ": ").c_str(),
                     S(item.record.status().message()).c_str());
        return 1;
      }
      if (const size_t bytes = item.record->ByteSizeLong();
          bytes > physioreg::client::kMaxLineBytes) {
        std::fprintf(stderr,
                     "error: %s:%lld: the record is %zu bytes serialized; one record may take at "
                     "most %s (the server takes at most 4 MiB in one message); nothing was "
                     "sent\n",
                     path.c_str(), line_number, bytes, physioreg::client::MaxLineText().c_str());
        return 1;
      }
      // One record per registrant per file, as the server asks of one request and of one
      // import: a repeat in a later call would otherwise silently win.
      const std::string id = absl::AsciiStrToUpper(item.record->registration_id());
      if (auto [it, inserted] = first_line_of_id.emplace(id, line.number); !inserted) {
        std::fprintf(stderr,
                     "error: %s:%lld: registration_id %s appears again (first on line %lld); "
                     "nothing was sent\n",
                     path.c_str(), line_number, S(id).c_str(), static_cast<long long>(it->second));
        return 1;
      }
      records.push_back(*std::move(item.record));
    }
    int64_t created = 0, updated = 0, unchanged = 0, revision = 0;
    // 1,000 records a call, fewer when they pass the server's message size.
    for (size_t start = 0, batch = 0; start < records.size(); ++batch) {
      v1::UpsertPractitionersRequest request;
      size_t end = start, bytes = 0;
      while (end < records.size() && end < start + 1000 &&
             (end == start ||
              bytes + records[end].ByteSizeLong() <= physioreg::client::kMaxRequestRecordBytes)) {
        bytes += records[end].ByteSizeLong();
        *request.add_practitioners() = records[end++];
      }
      if (!o.request_id.empty()) {
        request.set_request_id(batch == 0 ? o.request_id : absl::StrCat(o.request_id, "#", batch));
      }
      for (absl::string_view field : absl::StrSplit(o.update_mask, ',', absl::SkipWhitespace())) {
        request.mutable_update_mask()->add_paths(std::string(absl::StripAsciiWhitespace(field)));
      }
      request.set_allow_status_lift(o.allow_status_lift);
      v1::UpsertPractitionersResponse response;
      grpc::Status status = connection.Admin()->UpsertPractitioners(connection.Context(120).get(),
                                                                    request, &response);
      if (!status.ok()) {
        if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
            status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
          std::fprintf(stderr, "in records %zu-%zu of %s (practitioners[0] is record %zu):\n",
                       start + 1, end, path.c_str(), start + 1);
        }
        return ReportError(status);
      }
      start = end;
      created += response.created();
      updated += response.updated();
      unchanged += response.unchanged();
      revision = response.revision();
    }
    if (json) {
      std::printf(
          "{\"created\": %lld, \"updated\": %lld, \"unchanged\": %lld, \"revision\": %lld}\n",
          static_cast<long long>(created), static_cast<long long>(updated),
          static_cast<long long>(unchanged), static_cast<long long>(revision));
    } else {
      std::printf(
          "%zu records: %lld created, %lld updated, %lld unchanged; register revision %lld\n",
          records.size(), static_cast<long long>(created), static_cast<long long>(updated),
          static_cast<long long>(unchanged), static_cast<long long>(revision));
    }
    return 0;
  }

  int SetAuthorizationStatus(const Options& o) const {
    v1::SetAuthorizationStatusRequest request;
    request.set_registration_id(o.id);
    request.set_activity(Activity(o));
    request.set_status(ParseEnum<v1::Authorization::Status>(
        o.status, &v1::Authorization::Status_Parse, "authorization status (--status)"));
    request.set_effective_on(o.effective_on);
    request.set_reason(o.reason);
    v1::Practitioner response;
    grpc::Status status =
        connection.Admin()->SetAuthorizationStatus(connection.Context().get(), request, &response);
    if (!status.ok()) return ReportError(status);
    json ? Print(response) : PrintPractitioner(response);
    return 0;
  }

  int SetPermitStatus(const Options& o) const {
    v1::SetPermitStatusRequest request;
    request.set_registration_id(o.id);
    request.set_status(ParseEnum<v1::Permit::Status>(o.status, &v1::Permit::Status_Parse,
                                                     "permit status (--status)"));
    request.set_effective_on(o.effective_on);
    request.set_reason(o.reason);
    v1::Practitioner response;
    grpc::Status status =
        connection.Admin()->SetPermitStatus(connection.Context().get(), request, &response);
    if (!status.ok()) return ReportError(status);
    json ? Print(response) : PrintPractitioner(response);
    return 0;
  }

  // `text` as a point in time: RFC 3339 ("2026-11-30T09:00:00Z"), or a duration back from now
  // ("90m", "24h", "7d").
  static absl::Time SinceTime(const std::string& text) {
    absl::Time time;
    std::string error;
    if (absl::ParseTime(absl::RFC3339_full, text, &time, &error)) return time;
    absl::Duration back;
    int64_t days = 0;
    if (absl::EndsWith(text, "d") && absl::SimpleAtoi(text.substr(0, text.size() - 1), &days) &&
        days >= 0) {
      return absl::Now() - absl::Hours(24 * days);
    }
    if (absl::ParseDuration(text, &back) && back >= absl::ZeroDuration()) {
      return absl::Now() - back;
    }
    throw UsageError(absl::StrCat("--since takes an RFC 3339 time (2026-11-30T09:00:00Z) or a ",
                                  "duration back from now (90m, 24h, 7d); got '", text, "'"));
  }

  int Audit(const Options& o) const {
    v1::ListAuditEventsRequest request;
    const absl::Time since = SinceTime(o.audit_since);
    request.mutable_since()->set_seconds(absl::ToUnixSeconds(since));
    request.set_limit(o.limit);
    v1::ListAuditEventsResponse response;
    grpc::Status status =
        connection.Admin()->ListAuditEvents(connection.Context().get(), request, &response);
    if (!status.ok()) return ReportError(status);
    if (json) {
      for (const auto& event : response.events()) std::printf("%s\n", ToJson(event, false).c_str());
      return 0;
    }
    std::printf("%-20s  %-12s  %-17s  %-18s  %-22s  %-40s  %s\n", "TIME", "KIND", "OUTCOME", "KEY",
                "PEER", "RPC", "REQUEST ID");
    for (const auto& event : response.events()) {
      absl::string_view rpc = event.rpc();
      absl::ConsumePrefix(&rpc, "/physioreg.v1.");
      std::printf("%-20s  %-12s  %-17s  %-18s  %-22s  %-40s  %s\n", Timestamp(event.time()).c_str(),
                  S(event.kind()).c_str(), S(event.outcome()).c_str(),
                  event.key_id().empty() ? "-" : S(event.key_id()).c_str(), S(event.peer()).c_str(),
                  S(rpc).c_str(),
                  event.count() > 0 ? absl::StrCat("(", event.count(), " left out)").c_str()
                  : event.request_id().empty() ? "-"
                                               : S(event.request_id()).c_str());
    }
    if (response.truncated()) {
      std::printf("(only the newest %d events; narrow --since or raise --limit)\n",
                  response.events_size());
    }
    return 0;
  }

  int Health(const Options& o) const {
    const int wait_seconds = o.wait_seconds;
    auto stub = grpc::health::v1::Health::NewStub(connection.channel);
    const absl::Time give_up = absl::Now() + absl::Seconds(wait_seconds);
    while (true) {
      grpc::health::v1::HealthCheckResponse response;
      auto context = connection.Context(2);
      if (wait_seconds > 0) context->set_wait_for_ready(true);
      grpc::Status status =
          stub->Check(context.get(), grpc::health::v1::HealthCheckRequest(), &response);
      if (status.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
        std::printf("SERVING\n");
        return 0;
      }
      if (absl::Now() >= give_up) {
        if (!status.ok()) return ReportError(status);
        std::printf(
            "%s\n",
            grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()).c_str());
        return 1;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
  }

  int Keys(const std::string& action, const Options& o) const {
    grpc::Status status;
    if (action == "create") {
      v1::CreateApiKeyRequest request;
      request.set_role(ParseEnum<v1::Role>(o.role, &v1::Role_Parse, "role (--role)"));
      request.set_description(o.description);
      v1::CreateApiKeyResponse response;
      status = connection.Admin()->CreateApiKey(connection.Context().get(), request, &response);
      if (!status.ok()) return ReportError(status);
      if (json) {
        Print(response);
      } else {
        std::printf("key id: %s\nsecret (shown once): %s\n", response.key_id().c_str(),
                    response.secret().c_str());
      }
    } else if (action == "list") {
      v1::ListApiKeysResponse response;
      status = connection.Admin()->ListApiKeys(connection.Context().get(), v1::ListApiKeysRequest(),
                                               &response);
      if (!status.ok()) return ReportError(status);
      if (json) return Print(response), 0;
      for (const auto& key : response.keys()) {
        std::printf("%s  %-9s %-8s %s  %s\n", key.key_id().c_str(),
                    Shown(key.role(), &v1::Role_Name).c_str(), key.revoked() ? "revoked" : "active",
                    Timestamp(key.create_time()).c_str(), S(key.description()).c_str());
      }
    } else if (action == "revoke") {
      v1::RevokeApiKeyRequest request;
      request.set_key_id(o.id);
      v1::RevokeApiKeyResponse response;
      status = connection.Admin()->RevokeApiKey(connection.Context().get(), request, &response);
      if (!status.ok()) return ReportError(status);
      std::printf("revoked %s\n", request.key_id().c_str());
    } else {
      throw UsageError(absl::StrCat("unknown keys action '", action, "'"));
    }
    return 0;
  }

  // Alerts for a person, one line per change that matters: an authorization or the permit
  // going from one status to another, a new or removed registrant, else "record updated".
  struct WatchState {
    // Status of each (registrant, activity) last seen in this run; activity 0 is the permit.
    std::map<std::pair<std::string, int>, std::string> known;
  };

  static std::vector<std::string> Alerts(const v1::ChangeEvent& e, const std::set<int>& activities,
                                         WatchState* state) {
    std::vector<std::string> lines;
    const std::string id = S(e.registration_id());
    // Authorizations the change removed: gone from the record after it (or with the record).
    const bool deleted = e.kind() == v1::ChangeEvent::DELETED || !e.has_practitioner();
    std::vector<std::string> removed;
    for (int activity : e.changed_activities()) {
      if (!activities.empty() && activities.count(activity) == 0) continue;
      bool held = false;
      for (const v1::Authorization& a : e.practitioner().authorizations()) {
        held = held || a.activity() == activity;
      }
      if (held) continue;
      // "DRY_NEEDLING authorization removed (was AUTHORIZED)"; the status only when known.
      std::string what = absl::StrCat(
          Shown(static_cast<v1::RestrictedActivity>(activity), &v1::RestrictedActivity_Name),
          " authorization removed");
      if (auto it = state->known.find({e.registration_id(), activity}); it != state->known.end()) {
        absl::StrAppend(&what, " (was ", S(it->second), ")");
        state->known.erase(it);
      }
      removed.push_back(std::move(what));
    }
    if (deleted) {
      std::string line = absl::StrCat(id, " removed from the register");
      if (!removed.empty()) absl::StrAppend(&line, "; ", absl::StrJoin(removed, "; "));
      lines.push_back(std::move(line));
      return lines;
    }
    for (const std::string& what : removed) lines.push_back(absl::StrCat(id, " ", what));
    // One status (permit or authorization) against what was known: a line when it moved.
    auto track = [&](int key, const std::string& what, const std::string& status,
                     const google::protobuf::RepeatedPtrField<v1::StatusChange>& history) {
      auto [it, first_sight] = state->known.try_emplace({e.registration_id(), key}, status);
      std::string before;
      if (!first_sight) {
        if (it->second == status) return;
        before = it->second;
        it->second = status;
      } else if (e.kind() == v1::ChangeEvent::CREATED) {
        before = "(new)";
      } else if (history.size() >= 2) {
        before = history[history.size() - 2].status();
      } else {
        return;  // Nothing known to compare with.
      }
      std::string line = absl::StrCat(id, " ", what, " ", S(before), " \u2192 ", S(status));
      if (!history.empty()) {
        const v1::StatusChange& last = history[history.size() - 1];
        absl::StrAppend(&line, ", effective ", S(last.effective_on()));
        if (!last.reason().empty()) absl::StrAppend(&line, ": ", S(last.reason()));
      }
      lines.push_back(std::move(line));
    };
    const v1::Practitioner& p = e.practitioner();
    track(0, "PERMIT", Shown(p.permit().status(), &v1::Permit::Status_Name),
          p.permit().status_history());
    for (const v1::Authorization& a : p.authorizations()) {
      if (!activities.empty() && activities.count(a.activity()) == 0) continue;
      track(a.activity(), Shown(a.activity(), &v1::RestrictedActivity_Name),
            Shown(a.status(), &v1::Authorization::Status_Name), a.status_history());
    }
    if (lines.empty()) {
      lines.push_back(absl::StrCat(id, " record updated (", S(DisplayName(p)), ")"));
    }
    return lines;
  }

  static std::string DisplayName(const v1::Practitioner& p) {
    return absl::StrCat(p.preferred_name().empty() ? p.given_name() : p.preferred_name(), " ",
                        p.family_name());
  }

  // The revision in a state file; nullopt when the file does not exist.
  static std::optional<int64_t> ReadState(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::string line;
    std::getline(in, line);
    int64_t revision = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &revision) || revision < 0) {
      throw UsageError(absl::StrCat("state file ", path, " does not hold a revision"));
    }
    return revision;
  }

  // Replaces the state file whole (a crash leaves the old or the new revision, never half).
  static bool WriteState(const std::string& path, int64_t revision) {
    const std::string temp = path + ".tmp";
    {
      std::ofstream out(temp, std::ios::trunc);
      out << revision << "\n";
      out.flush();
      if (!out) return false;
    }
    return std::rename(temp.c_str(), path.c_str()) == 0;
  }

  int Watch(const Options& o) const {
    v1::WatchChangesRequest request;
    {
      for (std::string& id : ReadIdFile(o.ids_file)) {
        request.add_registration_ids(std::move(id));
      }
      if (request.registration_ids().empty()) {
        throw UsageError(absl::StrCat(o.ids_file, " lists no registration IDs"));
      }
    }
    std::set<int> activities;
    if (o.Given("--activity")) {
      request.add_activities(Activity(o));
      activities.insert(request.activities(0));
    }
    int64_t since = o.since;
    if (!o.Given("--since") && !o.state_file.empty()) {
      if (std::optional<int64_t> saved = ReadState(o.state_file)) since = *saved;
    }
    WatchState state;
    int64_t shown = 0;
    // Reconnecting: 0.2 s doubling to 10 s, each wait drawn from [0.5, 1] of the step so that
    // many clients cut off together do not come back together; one stderr line per attempt.
    const absl::Duration kFirstBackoff = absl::Milliseconds(200);
    const absl::Duration kMaxBackoff = absl::Seconds(10);
    absl::Duration backoff = kFirstBackoff;
    std::mt19937_64 jitter(std::random_device{}());
    int attempt = 0;
    while (true) {
      request.set_since_revision(since);
      grpc::ClientContext context;
      if (!connection.token.empty()) {
        context.AddMetadata("authorization", absl::StrCat("Bearer ", connection.token));
      }
      // A new channel for every attempt: a channel that failed to connect waits out its own
      // reconnect backoff (up to minutes) before it tries again, whatever this loop does.
      const physioreg::client::Connection channel =
          attempt == 0 ? connection : physioreg::client::Connect(o.address, connection.token);
      ++attempt;
      const absl::Time started = absl::Now();
      std::unique_ptr<grpc::ClientReader<v1::ChangeEvent>> reader =
          channel.Registry()->WatchChanges(&context, request);
      v1::ChangeEvent event;
      while (reader->Read(&event)) {
        backoff = kFirstBackoff;
        if (json) {
          std::printf("%s\n", ToJson(event, false).c_str());
        } else {
          for (const std::string& line : Alerts(event, activities, &state)) {
            std::printf("%s  (revision %lld)\n", line.c_str(),
                        static_cast<long long>(event.revision()));
          }
        }
        std::fflush(stdout);
        since = event.revision();
        if (!o.state_file.empty() && !WriteState(o.state_file, since)) {
          std::fprintf(stderr, "physioreg: cannot write the state file %s\n", o.state_file.c_str());
          return 1;
        }
        if (o.count > 0 && ++shown >= o.count) {
          context.TryCancel();
          reader->Finish().IgnoreError();
          return 0;
        }
      }
      grpc::Status status = reader->Finish();
      switch (status.error_code()) {
        case grpc::StatusCode::INVALID_ARGUMENT:
        case grpc::StatusCode::UNAUTHENTICATED:
        case grpc::StatusCode::PERMISSION_DENIED:
        case grpc::StatusCode::OUT_OF_RANGE:
        case grpc::StatusCode::UNIMPLEMENTED:
          return ReportError(status);  // Retrying would get the same answer.
        default:
          break;
      }
      // A stream that stayed up a while was a working connection: start the backoff over.
      if (absl::Now() - started > kMaxBackoff) backoff = kFirstBackoff;
      const absl::Duration wait = absl::Milliseconds(std::uniform_int_distribution<int64_t>(
          absl::ToInt64Milliseconds(backoff) / 2, absl::ToInt64Milliseconds(backoff))(jitter));
      std::fprintf(stderr,
                   "physioreg: watch interrupted (%s); reconnecting in %s after revision %lld\n",
                   S(absl::StrCat(physioreg::client::StatusCodeName(status.error_code()), ": ",
                                  status.error_message()))
                       .c_str(),
                   absl::FormatDuration(wait).c_str(), static_cast<long long>(since));
      std::fflush(stderr);
      std::this_thread::sleep_for(absl::ToChronoMilliseconds(wait));
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }
};

// The command line: every command and option, with their help. Parsing finishes before
// anything is sent, so a usage error (exit 2) never reaches the server.
class CommandLine {
 public:
  CommandLine() : app_("physioreg: the register's command-line client", "physioreg") {
    app_.option_defaults()->disable_flag_override();  // --fuzzy=yes is a usage error.
    app_.require_subcommand(1);
    app_.fallthrough();  // Global options may also follow the command.
    app_.footer(
        "Activities: DRY_NEEDLING ACUPUNCTURE SPINAL_MANIPULATION PELVIC_HEALTH_INTERNAL_EXAM\n"
        "            DIAGNOSTIC_IMAGING_ORDERING (any case)\n"
        "Exit codes: 0 ok, 1 error, 2 usage error or unusable file, 3 not authorized (verify).\n"
        "Run physioreg COMMAND --help for a command's options.");
    app_.add_option("--address", o_.address, "physioregd's gRPC address HOST:PORT")
        ->envname("PHYSIOREG_ADDRESS")
        ->capture_default_str();
    app_.add_option("--token-file", o_.token_file, "file holding an API key (regulator, clinic)")
        ->envname("PHYSIOREG_TOKEN_FILE");
    app_.add_flag("--json", o_.json, "print proto JSON instead of tables");
    app_.add_option("--tls-ca", o_.tls.ca,
                    "TLS: CA certificates (PEM) to verify the server with; --address then names "
                    "a host its certificate matches")
        ->envname("PHYSIOREG_TLS_CA");
    app_.add_option("--tls-cert", o_.tls.cert, "TLS: client certificate (PEM) for mTLS")
        ->envname("PHYSIOREG_TLS_CERT");
    app_.add_option("--tls-key", o_.tls.key, "TLS: the client certificate's key (PEM)")
        ->envname("PHYSIOREG_TLS_KEY");

    CLI::App* get = Command("get", "a registrant's public entry");
    get->add_option("ID", o_.id, "registration ID")->required();

    CLI::App* search =
        Command("search", "find registrants (every criterion must hold); one page, or all");
    search->add_option("--name", o_.name, "name (accents, case, punctuation ignored)");
    search->add_option("--city", o_.city, "city of a practice location");
    search->add_option("--postal-code-prefix", o_.postal_code_prefix, "postal code prefix");
    search->add_option("--activity", o_.activity, "authorized today for this activity");
    search->add_option("--register", o_.register_name, "GENERAL, PROVISIONAL or COURTESY");
    search->add_option("--language", o_.language, "a language spoken");
    search->add_option("--near", o_.near, "LAT,LNG of a point (needs --radius-km)");
    search->add_option("--radius-km", o_.radius_km, "distance from --near in km");
    search->add_flag("--fuzzy", o_.fuzzy, "allow one typo per name token");
    search->add_option("--page-size", o_.page_size, "matches per page");
    search->add_option("--page-token", o_.page_token, "the next_page_token of a previous page");
    search->add_flag("--all", o_.all, "every page");

    CLI::App* verify = Command(
        "verify", "is ID authorized for an activity on a date? exit 0 when yes, 3 when not");
    verify->add_option("ID", o_.id, "registration ID")->required();
    verify->add_option("--activity", o_.activity, "restricted activity")->required();
    verify->add_option("--as-of", o_.as_of, "YYYY-MM-DD (default today)");
    verify->add_option("--proof", o_.proof,
                       "ask for a signed answer and save it (JSON) to FILE, the clinic's proof");

    CLI::App* verify_proof =
        Command("verify-proof",
                "check a saved signed answer offline: signature, key validity, every signed field; "
                "exit 0 when valid, 3 when not");
    verify_proof->add_option("FILE", o_.file, "a file saved by verify --proof")->required();
    verify_proof->add_option("--keys", o_.keys_file,
                             "the registry's public keys (saved by verification-keys --output); "
                             "default: ask the server at --address");

    CLI::App* verification_keys = Command(
        "verification-keys", "the registry's public keys for checking proofs, old ones too");
    verification_keys->add_option("--output", o_.output, "save them (JSON) to FILE");

    CLI::App* batch =
        Command("batch-verify",
                "verify many IDs (a clinic's staff list): one line per ID; a bad ID is that line's "
                "error; exit 1 if any line has an error, else 3 if any is not authorized");
    batch->add_option("ID", o_.ids, "registration IDs");
    batch->add_option("--ids,--file", o_.file, "a file of IDs, one per line ('#' comments)");
    batch->add_option("--activity", o_.activity, "restricted activity")->required();
    batch->add_option("--as-of", o_.as_of, "YYYY-MM-DD (default today)");
    batch->add_option("--format", o_.table_format, "table or csv (--json: one JSON per line)")
        ->check(CLI::IsMember({"table", "csv"}))
        ->capture_default_str();
    batch->add_option("--proof-dir", o_.proof_dir,
                      "ask for signed answers and save each as DIR/<ID>.json (an ID listed again: "
                      "DIR/<ID>-<ITEM>.json)");

    CLI::App* history = Command("history", "the registrant's change history (every page)");
    history->add_option("ID", o_.id, "registration ID")->required();
    history->add_option("--page-size", o_.page_size, "events per call");

    CLI::App* health = Command("health", "the server's grpc.health.v1 status (exit 0 if SERVING)");
    health->add_option("--wait", o_.wait_seconds, "wait up to SECONDS for SERVING")
        ->check(CLI::Range(0, 24 * 60 * 60));

    CLI::App* watch = Command(
        "watch",
        "clinic: follow changes to the listed registrants and print an alert for each (runs "
        "until stopped; resumes from --state, reconnects with backoff)");
    watch->add_option("--ids", o_.ids_file, "a file of registration IDs, one per line")->required();
    watch->add_option("--activity", o_.activity, "only this restricted activity");
    watch
        ->add_option("--since", o_.since,
                     "start after this register revision (default: the "
                     "state file's, else 0: the whole history)")
        ->check(CLI::NonNegativeNumber);
    watch->add_option("--state", o_.state_file, "keeps the last revision seen; resumes from it");
    watch->add_option("--count", o_.count, "stop after this many events")
        ->check(CLI::PositiveNumber);

    CLI::App* upsert =
        Command("upsert", "regulator: one registrant per line (proto JSON), 1,000 per call");
    upsert->add_option("--file", o_.file, "F.jsonl ('-': standard input)")->required();
    upsert->add_option("--request-id", o_.request_id, "makes a retried upload a replay");
    upsert->add_option("--update-mask", o_.update_mask,
                       "FIELD,... change only these fields of existing registrants (e.g. "
                       "family_name,locations); others keep their stored values");
    upsert->add_flag("--allow-status-lift", o_.allow_status_lift,
                     "let records lift a suspension or revocation they do not record");

    CLI::App* import =
        Command("import",
                "regulator: stream a whole register from .jsonl/.ndjson or .csv "
                "(columns: README.md); rejected records to the rejects file, exit 1");
    import->add_option("FILE", o_.file, "the register to import ('-': standard input)")->required();
    import->add_option("--format", o_.import_format, "jsonl or csv (default: FILE's extension)")
        ->check(CLI::IsMember({"jsonl", "csv"}));
    import->add_option("--import-id", o_.import_id, "makes a rerun of a finished import a replay");
    import->add_option("--rejects", o_.rejects, "rejects file (default FILE.rejects.csv)");
    import->add_flag("--allow-status-lift", o_.allow_status_lift,
                     "let records lift a suspension or revocation they do not record");
    import->add_option("--chunk-size", o_.chunk_size, "records per stream message")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();

    CLI::App* export_ =
        Command("export", "regulator: the whole register at one revision (stdout by default)");
    export_->add_option("--format", o_.format, "jsonl or csv")
        ->check(CLI::IsMember({"jsonl", "csv"}))
        ->capture_default_str();
    export_->add_flag("--include-private", o_.include_private, "include private contact details");
    export_->add_option("--output", o_.output, "write to FILE (replaced only when complete)");

    CLI::App* set_authorization = StatusChangeCommand("set-authorization-status",
                                                      "regulator: change an authorization's status",
                                                      "AUTHORIZED, PENDING, SUSPENDED, REVOKED");
    set_authorization->add_option("--activity", o_.activity, "restricted activity")->required();
    StatusChangeCommand("set-permit-status", "regulator: change the permit's status",
                        "ACTIVE, INACTIVE, SUSPENDED, CANCELLED");

    CLI::App* audit =
        Command("audit",
                "regulator: the audit log (admin calls and authentication failures), oldest first");
    audit
        ->add_option("--since", o_.audit_since,
                     "from this time: RFC 3339 (2026-11-30T09:00:00Z) or a duration back from "
                     "now (90m, 24h, 7d)")
        ->required();
    audit->add_option("--limit", o_.limit, "at most this many events (the newest)")
        ->check(CLI::Range(1, 10000))
        ->capture_default_str();

    CLI::App* keys = Command("keys", "regulator: API keys (create, list, revoke)");
    keys->require_subcommand(1);
    CLI::App* create = keys->add_subcommand("create", "a new key; its secret is shown once");
    create->add_option("--role", o_.role, "REGULATOR or CLINIC")->required();
    create->add_option("--description", o_.description, "who the key is for");
    keys->add_subcommand("list", "every key (never the secrets)");
    CLI::App* revoke = keys->add_subcommand("revoke", "revoke a key");
    revoke->add_option("KEY_ID", o_.id, "the key's id")->required();
  }

  // Parses argv into options(); throws CLI::ParseError.
  void Parse(int argc, char** argv) {
    app_.parse(argc, argv);
    for (CLI::App* command = &app_; command != nullptr;) {
      for (const CLI::Option* option : command->get_options()) {
        if (option->count() == 0) continue;
        for (const std::string& name : option->get_lnames()) o_.given.insert("--" + name);
      }
      std::vector<CLI::App*> chosen = command->get_subcommands();
      command = chosen.empty() ? nullptr : chosen.front();
    }
  }

  // The command and its subcommand as far as parsed, e.g. {"keys", "create"}.
  std::vector<std::string> path() {
    std::vector<std::string> names;
    for (CLI::App* command = &app_;;) {
      std::vector<CLI::App*> chosen = command->get_subcommands();
      if (chosen.empty()) return names;
      command = chosen.front();
      names.push_back(command->get_name());
    }
  }
  const Options& options() const { return o_; }
  CLI::App& app() { return app_; }

 private:
  CLI::App* Command(const std::string& name, const std::string& description) {
    return app_.add_subcommand(name, description);
  }

  // The options a permit and an authorization status change share.
  CLI::App* StatusChangeCommand(const std::string& name, const std::string& description,
                                const std::string& statuses) {
    CLI::App* command = Command(name, description);
    command->add_option("ID", o_.id, "registration ID")->required();
    command->add_option("--status", o_.status, statuses)->required();
    command->add_option("--effective-on", o_.effective_on, "YYYY-MM-DD (default today)");
    command->add_option("--reason", o_.reason, "why (kept in the status history)");
    return command;
  }

  CLI::App app_;
  Options o_;
};

int Run(CommandLine& line) {
  const Options& o = line.options();
  std::string token;
  if (!o.token_file.empty()) {
    absl::StatusOr<std::string> read = physioreg::client::ReadTokenFile(o.token_file);
    if (!read.ok()) throw UsageError(std::string(read.status().message()));
    token = *read;
  }
  absl::StatusOr<physioreg::client::Connection> connection =
      physioreg::client::Connect(o.address, token, o.tls);
  if (!connection.ok()) throw UsageError(std::string(connection.status().message()));
  Cli cli{*std::move(connection), o.json};
  const std::vector<std::string> path = line.path();
  const std::string& command = path.at(0);
  if (command == "get") return cli.Get(o);
  if (command == "search") return cli.Search(o);
  if (command == "verify") return cli.Verify(o);
  if (command == "batch-verify") return cli.BatchVerify(o);
  if (command == "verify-proof") return cli.VerifyProof(o);
  if (command == "verification-keys") return cli.ShowVerificationKeys(o);
  if (command == "history") return cli.History(o);
  if (command == "upsert") return cli.Upsert(o);
  if (command == "set-authorization-status") return cli.SetAuthorizationStatus(o);
  if (command == "set-permit-status") return cli.SetPermitStatus(o);
  if (command == "keys") return cli.Keys(path.at(1), o);
  if (command == "audit") return cli.Audit(o);
  if (command == "import") {
    physioreg::client::ImportOptions options;
    options.path = o.file;
    options.format = o.import_format;
    options.import_id = o.import_id;
    options.rejects_path = o.rejects;
    options.json = o.json;
    options.chunk_size = o.chunk_size;
    options.allow_status_lift = o.allow_status_lift;
    return physioreg::client::RunImport(cli.connection, options);
  }
  if (command == "export") {
    physioreg::client::ExportOptions options;
    options.format = o.format;
    options.include_private = o.include_private;
    options.output = o.output;
    return physioreg::client::RunExport(cli.connection, options);
  }
  if (command == "health") return cli.Health(o);
  if (command == "watch") return cli.Watch(o);
  throw UsageError(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace

int main(int argc, char** argv) {
  // Past a file-size limit a write then fails with EFBIG, which export reports, instead of the
  // signal killing the process mid-file.
  std::signal(SIGXFSZ, SIG_IGN);
  CommandLine line;
  try {
    line.Parse(argc, argv);
  } catch (const CLI::Success& help) {  // --help: the usage of the command it follows.
    return line.app().exit(help);
  } catch (const CLI::ParseError& e) {
    const std::vector<std::string> path = line.path();
    std::string message = e.what();
    if (path.empty()) {
      // CLI11 only says a command is required; name the word that is not one.
      for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--address" || arg == "--token-file" || arg == "--tls-ca" ||
            arg == "--tls-cert" || arg == "--tls-key") {
          ++i;
        } else if (!arg.empty() && arg[0] != '-') {
          message = absl::StrCat("unknown command '", arg, "'");
          break;
        }
      }
    }
    const std::string see = path.empty() ? "" : " " + absl::StrJoin(path, " ");
    std::fprintf(stderr, "physioreg: %s (see physioreg%s --help)\n", message.c_str(), see.c_str());
    if (argc <= 1) std::fputs(line.app().help().c_str(), stderr);
    return kExitUsage;
  }
  try {
    return Run(line);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "physioreg: %s (see physioreg --help)\n", e.what());
    return kExitUsage;
  }
}
