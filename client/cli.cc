// physioreg: the command-line client for clinics, insurers and the regulator.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/support/error_details.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/connection.h"
#include "client/transfer.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace {

namespace v1 = physioreg::v1;

constexpr char kUsage[] =
    R"(usage: physioreg [--address HOST:PORT] [--token-file FILE] [--json] COMMAND ...

Public (no credentials):
  get ID                               a registrant's public entry
  search [--name TEXT] [--city C] [--postal-code-prefix P] [--activity A] [--register R]
         [--language L] [--near LAT,LNG --radius-km KM] [--fuzzy] [--page-size N]
         [--page-token T] [--all]      find registrants (every criterion must hold); one
                                       page, or every page with --all
  verify ID --activity A [--as-of D]   is ID authorized for A on D (default today)?
                                       exit 0 when authorized, 3 when not
  batch-verify --activity A [--as-of D] (ID... | --file FILE)
                                       one line per ID (FILE: one ID per line)
  history ID [--page-size N]           the registrant's change history (every page)
  health [--wait SECONDS]              the server's grpc.health.v1 status (exit 0 if SERVING)

Regulator (needs --token-file):
  upsert --file F.jsonl [--request-id R]
                                       one registrant per line (proto JSON), 1,000 per call
  import FILE [--import-id ID] [--rejects R.csv] [--chunk-size N]
                                       stream a whole register: .jsonl/.ndjson or .csv
                                       (columns: README.md); progress on stderr; rejected
                                       records to R.csv (default FILE.rejects.csv), exit 1
  export [--format jsonl|csv] [--include-private] [--output FILE]
                                       the whole register at one revision (stdout default)
  set-authorization-status ID --activity A --status S [--effective-on D] [--reason TEXT]
  set-permit-status ID --status S [--effective-on D] [--reason TEXT]
  keys create --role REGULATOR|CLINIC [--description TEXT]
  keys list
  keys revoke KEY_ID

Activities: DRY_NEEDLING ACUPUNCTURE SPINAL_MANIPULATION PELVIC_HEALTH_INTERNAL_EXAM
            DIAGNOSTIC_IMAGING_ORDERING (any case)
Environment: PHYSIOREG_ADDRESS, PHYSIOREG_TOKEN_FILE stand in for the flags.
)";

constexpr int kExitUsage = 2;
constexpr int kExitNotAuthorized = 3;

// --name value / --name=value options, and the positional arguments in order.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;
  std::set<std::string> switches;

  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto it = options.find(name);
    return it == options.end() ? fallback : it->second;
  }
  bool Has(const std::string& name) const { return options.count(name) > 0; }
};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

Args Parse(int argc, char** argv) {
  static const std::set<std::string> kSwitches = {"json", "help", "include-private", "fuzzy",
                                                  "all"};
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      args.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      args.options[name.substr(0, eq)] = name.substr(eq + 1);
    } else if (kSwitches.count(name)) {
      args.switches.insert(name);
    } else if (i + 1 < argc) {
      args.options[name] = argv[++i];
    } else {
      throw UsageError(absl::StrCat("--", name, " needs a value"));
    }
  }
  return args;
}

template <typename Enum>
Enum ParseEnum(const std::string& text, bool (*parse)(const std::string&, Enum*),
               const std::string& what) {
  Enum value;
  if (text.empty() || !parse(absl::AsciiStrToUpper(text), &value)) {
    throw UsageError(absl::StrCat("'", text, "' is not a known ", what));
  }
  return value;
}

v1::RestrictedActivity Activity(const Args& args) {
  return ParseEnum<v1::RestrictedActivity>(args.Get("activity"), &v1::RestrictedActivity_Parse,
                                           "activity (--activity)");
}

std::string Positional(const Args& args, size_t index, const std::string& what) {
  if (args.positional.size() <= index) throw UsageError(absl::StrCat("missing ", what));
  return args.positional[index];
}

std::string ToJson(const google::protobuf::Message& message, bool multiline) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = multiline;
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

void PrintTimeline(const google::protobuf::RepeatedPtrField<v1::StatusChange>& history,
                   const std::string& indent) {
  for (const auto& change : history) {
    std::printf("%s%s  %-10s %s\n", indent.c_str(), change.effective_on().c_str(),
                change.status().c_str(), change.reason().c_str());
  }
}

void PrintPractitioner(const v1::Practitioner& p) {
  std::printf("%s  %s %s", p.registration_id().c_str(), p.given_name().c_str(),
              p.family_name().c_str());
  if (!p.preferred_name().empty()) std::printf(" (preferred: %s)", p.preferred_name().c_str());
  std::printf("\n");
  if (!p.former_names().empty()) {
    std::printf("  former names: %s\n", absl::StrJoin(p.former_names(), ", ").c_str());
  }
  const v1::Permit& permit = p.permit();
  std::printf(
      "  permit: %s register, %s, registered %s%s\n", v1::Register_Name(permit.register_()).c_str(),
      v1::Permit::Status_Name(permit.status()).c_str(), permit.registered_on().c_str(),
      permit.expires_on().empty() ? "" : absl::StrCat(", expires ", permit.expires_on()).c_str());
  PrintTimeline(permit.status_history(), "      ");
  for (const auto& condition : p.conditions()) std::printf("  condition: %s\n", condition.c_str());
  if (p.authorizations().empty()) std::printf("  authorizations: none\n");
  for (const auto& a : p.authorizations()) {
    std::vector<std::string> techniques;
    for (int t : a.techniques())
      techniques.push_back(v1::Technique_Name(static_cast<v1::Technique>(t)));
    std::printf(
        "  %-28s %-10s granted %s%s%s\n", v1::RestrictedActivity_Name(a.activity()).c_str(),
        v1::Authorization::Status_Name(a.status()).c_str(),
        a.granted_on().empty() ? "-" : a.granted_on().c_str(),
        a.expires_on().empty() ? "" : absl::StrCat(", expires ", a.expires_on()).c_str(),
        techniques.empty() ? "" : absl::StrCat(" [", absl::StrJoin(techniques, ", "), "]").c_str());
    for (const auto& condition : a.conditions()) {
      std::printf("      condition: %s\n", condition.c_str());
    }
    PrintTimeline(a.status_history(), "      ");
  }
  for (const auto& l : p.locations()) {
    std::printf("  location: %s, %s, %s %s %s%s\n", l.clinic_name().c_str(),
                l.street_address().c_str(), l.city().c_str(), l.province().c_str(),
                l.postal_code().c_str(),
                l.phone().empty() ? "" : absl::StrCat(", ", l.phone()).c_str());
  }
  if (!p.languages().empty()) {
    std::printf("  languages: %s\n", absl::StrJoin(p.languages(), ", ").c_str());
  }
  if (p.has_private_contact()) {
    std::printf("  private contact: %s %s\n", p.private_contact().email().c_str(),
                p.private_contact().phone().c_str());
  }
  std::printf("  revision %lld, updated %s\n", static_cast<long long>(p.revision()),
              Timestamp(p.update_time()).c_str());
}

void PrintVerification(const v1::VerifyAuthorizationResponse& r, const std::string& activity) {
  std::printf("%-12s %-28s %s  %-32s %s\n", r.registration_id().c_str(), activity.c_str(),
              r.as_of().c_str(), v1::VerificationReason_Name(r.reason()).c_str(),
              r.display_name().c_str());
  if (r.authorized()) {
    for (const auto& condition : r.authorization().conditions()) {
      std::printf("%-12s   condition: %s\n", "", condition.c_str());
    }
  }
}

struct Cli {
  physioreg::client::Connection connection;
  bool json = false;

  void Print(const google::protobuf::Message& message) const {
    std::printf("%s\n", ToJson(message, true).c_str());
  }

  int Get(const Args& args) const {
    v1::GetPractitionerRequest request;
    request.set_registration_id(Positional(args, 1, "registration ID"));
    v1::Practitioner response;
    grpc::Status status =
        connection.Registry()->GetPractitioner(connection.Context().get(), request, &response);
    if (!status.ok()) return ReportError(status);
    json ? Print(response) : PrintPractitioner(response);
    return 0;
  }

  int Search(const Args& args) const {
    v1::SearchPractitionersRequest request;
    request.set_name(args.Get("name"));
    request.set_city(args.Get("city"));
    request.set_postal_code_prefix(args.Get("postal-code-prefix"));
    request.set_language(args.Get("language"));
    request.set_fuzzy(args.switches.count("fuzzy") > 0);
    if (args.Has("activity")) request.set_activity(Activity(args));
    if (args.Has("register")) {
      request.set_register_(ParseEnum<v1::Register>(args.Get("register"), &v1::Register_Parse,
                                                    "register (--register)"));
    }
    if (args.Has("near") || args.Has("radius-km")) {
      std::vector<std::string> parts = absl::StrSplit(args.Get("near"), ',');
      double latitude = 0, longitude = 0, radius = 0;
      if (parts.size() != 2 || !absl::SimpleAtod(parts[0], &latitude) ||
          !absl::SimpleAtod(parts[1], &longitude)) {
        throw UsageError("--near takes LAT,LNG");
      }
      if (!absl::SimpleAtod(args.Get("radius-km"), &radius)) {
        throw UsageError("--near needs --radius-km KM");
      }
      request.mutable_near()->set_latitude(latitude);
      request.mutable_near()->set_longitude(longitude);
      request.mutable_near()->set_radius_km(radius);
    }
    int page_size = 0;
    if (args.Has("page-size") && !absl::SimpleAtoi(args.Get("page-size"), &page_size)) {
      throw UsageError("--page-size takes a number");
    }
    request.set_page_size(page_size);
    request.set_page_token(args.Get("page-token"));
    const bool all = args.switches.count("all") > 0;
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
            where += absl::StrFormat(" (%.1f km)", response.distances_km(i));
          }
          std::printf("%-12s %s %-12s %s\n", p.registration_id().c_str(),
                      PadRight(absl::StrCat(p.given_name(), " ", p.family_name()), 40).c_str(),
                      v1::Permit::Status_Name(p.permit().status()).c_str(), where.c_str());
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

  int Verify(const Args& args) const {
    v1::VerifyAuthorizationRequest request;
    request.set_registration_id(Positional(args, 1, "registration ID"));
    request.set_activity(Activity(args));
    request.set_as_of(args.Get("as-of"));
    v1::VerifyAuthorizationResponse response;
    grpc::Status status =
        connection.Registry()->VerifyAuthorization(connection.Context().get(), request, &response);
    if (!status.ok()) return ReportError(status);
    if (json) {
      Print(response);
    } else {
      PrintVerification(response, v1::RestrictedActivity_Name(request.activity()));
      std::printf("permit status on %s: %s; register revision %lld; checked %s\n",
                  response.as_of().c_str(),
                  v1::Permit::Status_Name(response.permit_status()).c_str(),
                  static_cast<long long>(response.register_revision()),
                  Timestamp(response.checked_at()).c_str());
    }
    return response.authorized() ? 0 : kExitNotAuthorized;
  }

  int BatchVerify(const Args& args) const {
    std::vector<std::string> ids(args.positional.begin() + 1, args.positional.end());
    if (args.Has("file")) {
      std::ifstream in(args.Get("file"));
      if (!in) throw UsageError(absl::StrCat("cannot read ", args.Get("file")));
      for (std::string line; std::getline(in, line);) {
        std::string id(absl::StripAsciiWhitespace(line));
        if (!id.empty()) ids.push_back(id);
      }
    }
    if (ids.empty()) throw UsageError("no registration IDs given");
    const v1::RestrictedActivity activity = Activity(args);
    int not_authorized = 0;
    for (size_t start = 0; start < ids.size(); start += 1000) {
      v1::BatchVerifyAuthorizationsRequest request;
      for (size_t i = start; i < ids.size() && i < start + 1000; ++i) {
        auto* one = request.add_requests();
        one->set_registration_id(ids[i]);
        one->set_activity(activity);
        one->set_as_of(args.Get("as-of"));
      }
      v1::BatchVerifyAuthorizationsResponse response;
      grpc::Status status = connection.Registry()->BatchVerifyAuthorizations(
          connection.Context().get(), request, &response);
      if (!status.ok()) return ReportError(status);
      for (const auto& answer : response.responses()) {
        if (!answer.authorized()) ++not_authorized;
        if (json) {
          std::printf("%s\n", ToJson(answer, false).c_str());
        } else {
          PrintVerification(answer, v1::RestrictedActivity_Name(activity));
        }
      }
    }
    return not_authorized == 0 ? 0 : kExitNotAuthorized;
  }

  int History(const Args& args) const {
    v1::ListPractitionerHistoryRequest request;
    request.set_registration_id(Positional(args, 1, "registration ID"));
    int page_size = 0;
    if (args.Has("page-size") && !absl::SimpleAtoi(args.Get("page-size"), &page_size)) {
      throw UsageError("--page-size takes a number");
    }
    request.set_page_size(page_size);
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
                      v1::ChangeEvent::Kind_Name(event.kind()).c_str(),
                      event.actor().empty() ? "" : absl::StrCat("by ", event.actor()).c_str());
        }
      }
      request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty());
    return 0;
  }

  int Upsert(const Args& args) const {
    const std::string path = args.Get("file");
    if (path.empty()) throw UsageError("upsert needs --file F.jsonl");
    std::ifstream in(path);
    if (!in) throw UsageError(absl::StrCat("cannot read ", path));
    std::vector<v1::Practitioner> records;
    int line_number = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_number;
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      v1::Practitioner& record = records.emplace_back();
      auto parsed = google::protobuf::util::JsonStringToMessage(line, &record);
      if (!parsed.ok()) {
        std::fprintf(stderr, "error: %s:%d: %s\n", path.c_str(), line_number,
                     std::string(parsed.message()).c_str());
        return 1;
      }
    }
    int64_t created = 0, updated = 0, unchanged = 0, revision = 0;
    for (size_t start = 0, batch = 0; start < records.size(); start += 1000, ++batch) {
      v1::UpsertPractitionersRequest request;
      for (size_t i = start; i < records.size() && i < start + 1000; ++i) {
        *request.add_practitioners() = records[i];
      }
      if (args.Has("request-id")) {
        request.set_request_id(batch == 0 ? args.Get("request-id")
                                          : absl::StrCat(args.Get("request-id"), "#", batch));
      }
      v1::UpsertPractitionersResponse response;
      grpc::Status status = connection.Admin()->UpsertPractitioners(connection.Context(120).get(),
                                                                    request, &response);
      if (!status.ok()) {
        if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
          std::fprintf(stderr, "in records %zu-%zu of %s (practitioners[0] is record %zu):\n",
                       start + 1, std::min(records.size(), start + 1000), path.c_str(), start + 1);
        }
        return ReportError(status);
      }
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

  int SetAuthorizationStatus(const Args& args) const {
    v1::SetAuthorizationStatusRequest request;
    request.set_registration_id(Positional(args, 1, "registration ID"));
    request.set_activity(Activity(args));
    request.set_status(ParseEnum<v1::Authorization::Status>(
        args.Get("status"), &v1::Authorization::Status_Parse, "authorization status (--status)"));
    request.set_effective_on(args.Get("effective-on"));
    request.set_reason(args.Get("reason"));
    v1::Practitioner response;
    grpc::Status status =
        connection.Admin()->SetAuthorizationStatus(connection.Context().get(), request, &response);
    if (!status.ok()) return ReportError(status);
    json ? Print(response) : PrintPractitioner(response);
    return 0;
  }

  int SetPermitStatus(const Args& args) const {
    v1::SetPermitStatusRequest request;
    request.set_registration_id(Positional(args, 1, "registration ID"));
    request.set_status(ParseEnum<v1::Permit::Status>(args.Get("status"), &v1::Permit::Status_Parse,
                                                     "permit status (--status)"));
    request.set_effective_on(args.Get("effective-on"));
    request.set_reason(args.Get("reason"));
    v1::Practitioner response;
    grpc::Status status =
        connection.Admin()->SetPermitStatus(connection.Context().get(), request, &response);
    if (!status.ok()) return ReportError(status);
    json ? Print(response) : PrintPractitioner(response);
    return 0;
  }

  int Health(const Args& args) const {
    int wait_seconds = 0;
    if (args.Has("wait") && !absl::SimpleAtoi(args.Get("wait"), &wait_seconds)) {
      throw UsageError("--wait takes a number of seconds");
    }
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

  int Keys(const Args& args) const {
    const std::string action = Positional(args, 1, "keys action (create, list, revoke)");
    grpc::Status status;
    if (action == "create") {
      v1::CreateApiKeyRequest request;
      request.set_role(ParseEnum<v1::Role>(args.Get("role"), &v1::Role_Parse, "role (--role)"));
      request.set_description(args.Get("description"));
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
                    v1::Role_Name(key.role()).c_str(), key.revoked() ? "revoked" : "active",
                    Timestamp(key.create_time()).c_str(), key.description().c_str());
      }
    } else if (action == "revoke") {
      v1::RevokeApiKeyRequest request;
      request.set_key_id(Positional(args, 2, "key id"));
      v1::RevokeApiKeyResponse response;
      status = connection.Admin()->RevokeApiKey(connection.Context().get(), request, &response);
      if (!status.ok()) return ReportError(status);
      std::printf("revoked %s\n", request.key_id().c_str());
    } else {
      throw UsageError(absl::StrCat("unknown keys action '", action, "'"));
    }
    return 0;
  }
};

std::string FromEnv(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

int Run(int argc, char** argv) {
  const Args args = Parse(argc, argv);
  if (args.switches.count("help") || args.positional.empty()) {
    std::fputs(kUsage, args.positional.empty() && !args.switches.count("help") ? stderr : stdout);
    return args.switches.count("help") ? 0 : kExitUsage;
  }
  const std::string address = args.Get("address", FromEnv("PHYSIOREG_ADDRESS", "127.0.0.1:50051"));
  const std::string token_file = args.Get("token-file", FromEnv("PHYSIOREG_TOKEN_FILE", ""));
  std::string token;
  if (!token_file.empty()) {
    absl::StatusOr<std::string> read = physioreg::client::ReadTokenFile(token_file);
    if (!read.ok()) throw UsageError(std::string(read.status().message()));
    token = *read;
  }
  Cli cli{physioreg::client::Connect(address, token), args.switches.count("json") > 0};
  const std::string& command = args.positional[0];
  if (command == "get") return cli.Get(args);
  if (command == "search") return cli.Search(args);
  if (command == "verify") return cli.Verify(args);
  if (command == "batch-verify") return cli.BatchVerify(args);
  if (command == "history") return cli.History(args);
  if (command == "upsert") return cli.Upsert(args);
  if (command == "set-authorization-status") return cli.SetAuthorizationStatus(args);
  if (command == "set-permit-status") return cli.SetPermitStatus(args);
  if (command == "keys") return cli.Keys(args);
  if (command == "import") {
    physioreg::client::ImportOptions options;
    options.path = Positional(args, 1, "file to import");
    options.import_id = args.Get("import-id");
    options.rejects_path = args.Get("rejects");
    options.json = cli.json;
    if (args.Has("chunk-size") && (!absl::SimpleAtoi(args.Get("chunk-size"), &options.chunk_size) ||
                                   options.chunk_size < 1)) {
      throw UsageError("--chunk-size takes a positive number");
    }
    return physioreg::client::RunImport(cli.connection, options);
  }
  if (command == "export") {
    physioreg::client::ExportOptions options;
    options.format = args.Get("format", "jsonl");
    options.include_private = args.switches.count("include-private") > 0;
    options.output = args.Get("output");
    return physioreg::client::RunExport(cli.connection, options);
  }
  if (command == "health") return cli.Health(args);
  throw UsageError(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "physioreg: %s (see physioreg --help)\n", e.what());
    return kExitUsage;
  }
}
