// physioregd: the register's server.
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "service/core/api_keys.h"
#include "service/core/signing_keys.h"
#include "service/log.h"
#include "service/server.h"
#include "storage/store.h"

ABSL_FLAG(std::string, data_dir, "./var/physioreg",
          "Directory of the RocksDB register (created 0700; files in it are 0600)");
ABSL_FLAG(std::string, grpc_address, "127.0.0.1:50051",
          "host:port for gRPC ([v6]:port; empty host: every interface; port 0: any free port). "
          "physioregd refuses to start when the address is in use");
ABSL_FLAG(std::string, http_address, "127.0.0.1:8080",
          "host:port for the HTTP/JSON gateway and the web page (as --grpc_address; empty: no "
          "HTTP)");
ABSL_FLAG(std::vector<std::string>, cors_origin, {},
          "An origin (scheme://host[:port]) whose pages may call the HTTP API from a browser; "
          "repeat the flag (or separate with commas) for several. None by default");
ABSL_FLAG(std::string, web_dir, "",
          "Serve the web page's files from this directory instead of the copies built into "
          "physioregd (for editing client/web/ without rebuilding)");
ABSL_FLAG(std::string, timezone, "America/Edmonton", "The registry's time zone for 'today'");
ABSL_FLAG(int, block_cache_mib, 256, "RocksDB block cache in MiB");
ABSL_FLAG(int, view_cache_mib, 256,
          "Registrants' public views held in memory for reads by id (Get, Verify), in MiB: about "
          "500 bytes each");
ABSL_FLAG(int, change_retention_days, 400,
          "Days of changes WatchChanges can catch up on; older since_revisions get OUT_OF_RANGE");
ABSL_FLAG(std::string, audit_log, "",
          "The audit log (JSON lines: every admin call and authentication failure; 0600); "
          "default <data_dir>/audit/audit.log");
ABSL_FLAG(int64_t, audit_max_bytes, 64 << 20,
          "Rotate the audit log when it would pass this size (at least 1024)");
ABSL_FLAG(int, audit_keep_files, 10, "Rotated audit log files kept (<path>.1 is the newest)");
ABSL_FLAG(int, drain_seconds, 10, "On SIGTERM/SIGINT, how long in-flight calls may finish");
ABSL_FLAG(int, max_connections, 10000,
          "Client connections served at once, gRPC and HTTP together (HTTP at most half); more "
          "are closed on arrival. Also bounded by the descriptor limit (raised to the hard limit "
          "at start) less a reserve for the database");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain to serve TLS with on the gRPC and HTTP ports (with --tls_key); "
          "re-read with the key on SIGHUP. Default: plaintext");
ABSL_FLAG(std::string, tls_key, "",
          "PEM private key of --tls_cert, without passphrase; refused when others may read it, "
          "warned about when its group may");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificates: require client certificates they issued (mTLS) on both ports");
ABSL_FLAG(std::string, tls_roles, "",
          "Roles of client certificates: lines '<subject or CN> <ROLE>' (REGULATOR, CLINIC; "
          "'#' comments); needs --tls_client_ca; re-read on SIGHUP");
ABSL_FLAG(bool, rate_limits, true,
          "Per-caller rate limits and failed-authentication throttling; false turns both off "
          "(benchmarks). Stream caps and the search deadline apply either way");
ABSL_FLAG(std::string, rate_limit_anonymous, "20:200",
          "RATE:BURST of callers without credentials, per client address (IPv4, or IPv6 /64): "
          "tokens a second : tokens at once. A Get or Verify costs 1, a search 5, a batch 1 per "
          "10 items, opening a stream 10. 0: no limit");
ABSL_FLAG(std::string, rate_limit_clinic, "200:2000", "RATE:BURST per CLINIC key (0: no limit)");
ABSL_FLAG(std::string, rate_limit_regulator, "500:5000",
          "RATE:BURST of a REGULATOR key's reads (0: no limit)");
ABSL_FLAG(std::string, rate_limit_regulator_writes, "50:500",
          "RATE:BURST of a REGULATOR key's writes, a bucket of their own (0: no limit)");
ABSL_FLAG(std::string, auth_failure_limit, "10:60",
          "FAILURES:SECONDS: past this many failed authentications from one address within the "
          "seconds, credentials from it are refused unchecked (RESOURCE_EXHAUSTED) until the "
          "window lets one more through. 0: no throttling");
ABSL_FLAG(int, max_streams_per_caller, 8,
          "Export, import and watch streams one caller (key, or address without one) may hold "
          "open at once; 0: no cap");
ABSL_FLAG(int, search_deadline_ms, 2000,
          "How long a search may wait for the search worker and run, together, before it "
          "answers DEADLINE_EXCEEDED");
ABSL_FLAG(bool, search_snapshot, true,
          "Load the search index from <data_dir>/search-index.snapshot at start when it is "
          "usable (then follow the change log from its revision), and write it at shutdown, "
          "after a full build and every --search_snapshot_minutes; false: always build the index "
          "from the register, write nothing");
ABSL_FLAG(int, search_snapshot_minutes, 10,
          "How often the search index snapshot is rewritten when the register changed; 0: only "
          "at shutdown and after a full build");
ABSL_FLAG(bool, reset_regulator_token, false,
          "Offline recovery: with the server stopped, create a new REGULATOR key, write its "
          "secret to <data_dir>/regulator.token (0600, replacing the file) and exit");
ABSL_FLAG(bool, rotate_signing_key, false,
          "Offline: with the server stopped, replace the key that signs attestations by a new one "
          "(<data_dir>/signing_key.pem, 0600). The old public key stays listed by "
          "GetVerificationKeys, valid until now, so proofs it signed stay checkable. Then exit");

namespace {

namespace service = physioreg::service;

// The flags are defined in this file; absl's --help lists only flags of files named like the
// program, which "main.cc" is not.
void ConfigureUsage() {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "service/main.cc");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.version_string = [] { return std::string("physioregd 0.1.0\n"); };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(
      "physioreg server: gRPC Registry and RegistryAdmin on RocksDB.\n"
      "usage: physioregd [--data_dir=DIR] [--grpc_address=HOST:PORT] [flags]\n"
      "       physioregd --data_dir=DIR --reset_regulator_token   (server stopped)\n"
      "       physioregd --data_dir=DIR --rotate_signing_key      (server stopped)");
}

// Every value of a flag given more than once (absl keeps only the last), commas splitting too.
std::vector<std::string> AllValuesOf(int argc, char** argv, absl::string_view name) {
  std::vector<std::string> values;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "--")) absl::ConsumePrefix(&arg, "-");
    std::string value;
    if (absl::ConsumePrefix(&arg, name)) {
      if (absl::ConsumePrefix(&arg, "=")) {
        value = std::string(arg);
      } else if (arg.empty() && i + 1 < argc) {
        value = argv[++i];
      } else {
        continue;
      }
      for (absl::string_view piece : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        values.emplace_back(piece);
      }
    }
  }
  return values;
}

// An origin as browsers send it: http(s)://host[:port], nothing after.
bool IsOrigin(absl::string_view origin) {
  if (!absl::ConsumePrefix(&origin, "https://") && !absl::ConsumePrefix(&origin, "http://")) {
    return false;
  }
  if (origin.empty()) return false;
  for (char c : origin) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != ':' && c != '[' && c != ']') {
      return false;
    }
  }
  return true;
}

// Idle connections hold a descriptor each; the soft limit (often 1024) is raised to the hard
// one so that the connection cap, not the descriptor limit, is what a flood meets first.
void RaiseDescriptorLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    spdlog::warn("event=rlimit_nofile_not_raised soft={} hard={}", before, limit.rlim_max);
  }
}

// The register of an offline operation (the server stopped): null, with the reason printed,
// when there is none or a running server holds its lock. `what` is what there would be to do.
std::unique_ptr<physioreg::storage::Store> OpenOffline(const std::string& data_dir,
                                                       const physioreg::storage::StoreOptions& opts,
                                                       const char* what) {
  if (!std::filesystem::exists(data_dir + "/db/CURRENT")) {
    std::fprintf(stderr, "physioregd: no register in %s (nothing to %s)\n", data_dir.c_str(), what);
    return nullptr;
  }
  absl::StatusOr<std::unique_ptr<physioreg::storage::Store>> store =
      physioreg::storage::Store::Open(data_dir, opts);
  if (!store.ok()) {
    std::fprintf(stderr, "physioregd: %s\n", std::string(store.status().message()).c_str());
    return nullptr;
  }
  return *std::move(store);
}

// --reset_regulator_token: the register's lock (held by a running server) makes this fail.
int ResetRegulatorToken(const std::string& data_dir, const physioreg::storage::StoreOptions& opts) {
  std::unique_ptr<physioreg::storage::Store> store = OpenOffline(data_dir, opts, "reset");
  if (store == nullptr) return 1;
  absl::StatusOr<std::unique_ptr<physioreg::core::ApiKeys>> keys =
      physioreg::core::ApiKeys::Load(store.get());
  if (!keys.ok()) {
    std::fprintf(stderr, "physioregd: %s\n", std::string(keys.status().message()).c_str());
    return 1;
  }
  const std::string token_path = data_dir + "/regulator.token";
  absl::StatusOr<std::string> key_id = (*keys)->ResetRegulatorToken(token_path);
  if (!key_id.ok()) {
    std::fprintf(stderr, "physioregd: %s\n", std::string(key_id.status().message()).c_str());
    return 1;
  }
  spdlog::info("event=regulator_token_reset key_id={} path={}", *key_id,
               service::LogValue(token_path));
  std::printf("physioregd: new REGULATOR key %s; its secret is written to %s\n", key_id->c_str(),
              token_path.c_str());
  return 0;
}

// --rotate_signing_key: opening the store takes the register's lock, so this fails while a
// server runs (which would go on signing with the old key).
int RotateSigningKey(const std::string& data_dir, const physioreg::storage::StoreOptions& opts) {
  // Held open (unused) for its lock while the key files change.
  std::unique_ptr<physioreg::storage::Store> store = OpenOffline(data_dir, opts, "rotate");
  if (store == nullptr) return 1;
  absl::StatusOr<std::string> key_id = physioreg::core::SigningKeys::Rotate(data_dir, absl::Now());
  if (!key_id.ok()) {
    std::fprintf(stderr, "physioregd: %s\n", std::string(key_id.status().message()).c_str());
    return 1;
  }
  spdlog::info("event=signing_key_rotated key_id={}", *key_id);
  std::printf("physioregd: new attestation signing key %s; earlier keys stay listed for checking\n",
              key_id->c_str());
  return 0;
}

// The rate-limit flags into `limits`; false (a message printed) when one is not valid.
bool ParseLimits(service::LimitsOptions* limits) {
  limits->rate.enabled = absl::GetFlag(FLAGS_rate_limits);
  const struct {
    const char* name;
    std::string value;
    physioreg::core::RatePolicy* policy;
  } policies[] = {
      {"rate_limit_anonymous", absl::GetFlag(FLAGS_rate_limit_anonymous), &limits->rate.anonymous},
      {"rate_limit_clinic", absl::GetFlag(FLAGS_rate_limit_clinic), &limits->rate.clinic},
      {"rate_limit_regulator", absl::GetFlag(FLAGS_rate_limit_regulator), &limits->rate.regulator},
      {"rate_limit_regulator_writes", absl::GetFlag(FLAGS_rate_limit_regulator_writes),
       &limits->rate.regulator_write},
  };
  for (const auto& [name, value, policy] : policies) {
    absl::StatusOr<physioreg::core::RatePolicy> parsed = physioreg::core::RatePolicy::Parse(value);
    if (!parsed.ok()) {
      std::fprintf(stderr, "physioregd: --%s: %s\n", name,
                   std::string(parsed.status().message()).c_str());
      return false;
    }
    *policy = *parsed;
  }
  const std::string failures = absl::GetFlag(FLAGS_auth_failure_limit);
  if (failures == "0") {
    limits->rate.auth_failures = 0;
  } else {
    std::vector<std::string> parts = absl::StrSplit(failures, ':');
    int count = 0, seconds = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &count) ||
        !absl::SimpleAtoi(parts[1], &seconds) || count < 1 || seconds < 1) {
      std::fprintf(stderr,
                   "physioregd: --auth_failure_limit '%s' is not FAILURES:SECONDS (e.g. 10:60; "
                   "0: none)\n",
                   failures.c_str());
      return false;
    }
    limits->rate.auth_failures = count;
    limits->rate.auth_failure_window = absl::Seconds(seconds);
  }
  limits->rate.max_streams_per_caller = absl::GetFlag(FLAGS_max_streams_per_caller);
  const int deadline_ms = absl::GetFlag(FLAGS_search_deadline_ms);
  if (limits->rate.max_streams_per_caller < 0 || deadline_ms < 1) {
    std::fprintf(stderr,
                 "physioregd: --max_streams_per_caller must be 0 or more and "
                 "--search_deadline_ms at least 1\n");
    return false;
  }
  limits->search_deadline = absl::Milliseconds(deadline_ms);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Everything physioregd creates (data directory, RocksDB files, token) is the owner's only.
  ::umask(077);
  ConfigureUsage();
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::fprintf(stderr, "physioregd: unexpected argument '%s' (see --help)\n", positional[1]);
    return 2;
  }
  service::InitLogging();
  RaiseDescriptorLimit();

  // Block the stop signals in every thread; this thread waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);  // reloads the TLS files
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  service::ServerOptions options;
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.grpc_address = absl::GetFlag(FLAGS_grpc_address);
  options.timezone = absl::GetFlag(FLAGS_timezone);
  options.http_address = absl::GetFlag(FLAGS_http_address);
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.tls.roles_file = absl::GetFlag(FLAGS_tls_roles);
  options.http.web_dir = absl::GetFlag(FLAGS_web_dir);
  options.http.cors_origins = AllValuesOf(argc, argv, "cors_origin");
  for (const std::string& origin : options.http.cors_origins) {
    if (!IsOrigin(origin)) {
      std::fprintf(stderr,
                   "physioregd: --cors_origin '%s' is not an origin like https://clinic.example "
                   "(scheme, host and optional port; no path, no '*')\n",
                   origin.c_str());
      return 2;
    }
  }
  if (!options.http.web_dir.empty() &&
      !std::filesystem::exists(options.http.web_dir + "/index.html")) {
    std::fprintf(stderr, "physioregd: --web_dir '%s' has no index.html\n",
                 options.http.web_dir.c_str());
    return 2;
  }
  const int block_cache_mib = absl::GetFlag(FLAGS_block_cache_mib);
  const int view_cache_mib = absl::GetFlag(FLAGS_view_cache_mib);
  // A cache is memory the server takes; more than the machine has is a typo.
  for (const auto& [name, mib] : {std::pair<const char*, int>{"block_cache_mib", block_cache_mib},
                                  {"view_cache_mib", view_cache_mib}}) {
    if (mib < 1 || mib > 65536) {
      std::fprintf(stderr, "physioregd: --%s must be from 1 to 65536 (got %d)\n", name, mib);
      return 2;
    }
  }
  if (absl::GetFlag(FLAGS_drain_seconds) < 0 || absl::GetFlag(FLAGS_drain_seconds) > 3600) {
    std::fprintf(stderr, "physioregd: --drain_seconds must be from 0 to 3600 (got %d)\n",
                 absl::GetFlag(FLAGS_drain_seconds));
    return 2;
  }
  const int retention_days = absl::GetFlag(FLAGS_change_retention_days);
  if (retention_days < 0 || retention_days > 36500) {
    std::fprintf(stderr, "physioregd: --change_retention_days must be from 0 to 36500 (got %d)\n",
                 retention_days);
    return 2;
  }
  options.change_retention = absl::Hours(24 * int64_t{retention_days});
  const int snapshot_minutes = absl::GetFlag(FLAGS_search_snapshot_minutes);
  if (snapshot_minutes < 0 || snapshot_minutes > 10080) {
    std::fprintf(stderr, "physioregd: --search_snapshot_minutes must be from 0 to 10080 (got %d)\n",
                 snapshot_minutes);
    return 2;
  }
  options.search_snapshot = absl::GetFlag(FLAGS_search_snapshot);
  options.search_snapshot_interval = absl::Minutes(snapshot_minutes);
  options.audit_path = absl::GetFlag(FLAGS_audit_log);
  options.audit_max_bytes = absl::GetFlag(FLAGS_audit_max_bytes);
  options.audit_keep_files = absl::GetFlag(FLAGS_audit_keep_files);
  if (options.audit_max_bytes < 1024) {
    std::fprintf(stderr, "physioregd: --audit_max_bytes must be at least 1024 (got %lld)\n",
                 static_cast<long long>(options.audit_max_bytes));
    return 2;
  }
  if (options.audit_keep_files < 1 || options.audit_keep_files > 1000) {
    std::fprintf(stderr, "physioregd: --audit_keep_files must be from 1 to 1000 (got %d)\n",
                 options.audit_keep_files);
    return 2;
  }
  options.max_connections = absl::GetFlag(FLAGS_max_connections);
  if (options.max_connections < 1) {
    std::fprintf(stderr, "physioregd: --max_connections must be at least 1 (got %d)\n",
                 options.max_connections);
    return 2;
  }
  options.storage.block_cache_bytes = static_cast<size_t>(block_cache_mib) << 20;
  options.storage.view_cache_bytes = static_cast<size_t>(view_cache_mib) << 20;
  if (!ParseLimits(&options.limits)) return 2;
  if (absl::GetFlag(FLAGS_reset_regulator_token) && absl::GetFlag(FLAGS_rotate_signing_key)) {
    std::fprintf(stderr,
                 "physioregd: --reset_regulator_token and --rotate_signing_key: one at a time\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_reset_regulator_token)) {
    return ResetRegulatorToken(options.data_dir, options.storage);
  }
  if (absl::GetFlag(FLAGS_rotate_signing_key)) {
    return RotateSigningKey(options.data_dir, options.storage);
  }
  const absl::Time started = absl::Now();
  options.on_search_ready = [started](const absl::Status& status, int64_t registrants) {
    const double seconds = absl::ToDoubleSeconds(absl::Now() - started);
    if (status.ok()) {
      spdlog::info("event=search_index_ready registrants={} seconds={:.1f}", registrants, seconds);
      std::printf("physioregd: search index ready (%lld registrants, %.1f s)\n",
                  static_cast<long long>(registrants), seconds);
    } else {
      spdlog::error("event=search_index_failed error={}", service::LogValue(status.ToString()));
      std::printf("physioregd: search index failed to load: %s\n",
                  std::string(status.message()).c_str());
    }
    std::fflush(stdout);
  };
  absl::StatusOr<std::unique_ptr<service::Server>> server = service::Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "physioregd: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  const std::string host = options.grpc_address.substr(0, options.grpc_address.rfind(':'));
  spdlog::info("event=serving host={} port={} data_dir={}", service::LogValue(host),
               (*server)->grpc_port(), service::LogValue(options.data_dir));
  std::printf("physioregd: serving gRPC on %s:%d (data in %s)\n", host.c_str(),
              (*server)->grpc_port(), options.data_dir.c_str());
  if ((*server)->tls()) {
    spdlog::info("event=tls certificate={} client_certificates={}",
                 service::LogValue((*server)->tls_certificate()),
                 options.tls.client_ca_file.empty() ? "no" : "required");
    std::printf("physioregd: TLS on both ports, certificate %s%s\n",
                (*server)->tls_certificate().c_str(),
                options.tls.client_ca_file.empty() ? "" : "; client certificates required");
  }
  if ((*server)->wrote_token()) {
    spdlog::info("event=regulator_token_written path={}",
                 service::LogValue((*server)->token_path()));
    std::printf("physioregd: first start; regulator token written to %s\n",
                (*server)->token_path().c_str());
  }
  spdlog::info("event=signing_key key_id={} created={}", (*server)->signing_key_id(),
               (*server)->created_signing_key());
  std::printf("physioregd: attestations signed with key %s%s\n",
              (*server)->signing_key_id().c_str(),
              (*server)->created_signing_key() ? " (created now)" : "");
  if ((*server)->http_port() != 0) {
    const std::string http_host = options.http_address.substr(0, options.http_address.rfind(':'));
    const std::string shown_host = http_host.empty() ? "127.0.0.1" : http_host;
    spdlog::info("event=serving_http host={} port={}", service::LogValue(http_host),
                 (*server)->http_port());
    std::printf("physioregd: serving HTTP on %s://%s:%d/\n", (*server)->tls() ? "https" : "http",
                shown_host.c_str(), (*server)->http_port());
  } else {
    std::printf("physioregd: HTTP off (--http_address is empty)\n");
  }
  std::fflush(stdout);

  int signal = 0;
  for (;;) {
    sigwait(&stop_signals, &signal);
    if (signal != SIGHUP) break;
    // New handshakes use the files as they are now; open connections keep their sessions.
    absl::StatusOr<std::string> reloaded = (*server)->ReloadTls();
    if (reloaded.ok()) {
      spdlog::info("event=tls_reloaded certificate={}", service::LogValue(*reloaded));
      std::printf("physioregd: SIGHUP: TLS reloaded, certificate %s\n", reloaded->c_str());
    } else {
      spdlog::error("event=tls_reload_failed error={}",
                    service::LogValue(reloaded.status().ToString()));
      std::printf("physioregd: SIGHUP: TLS not reloaded (%s); serving as before\n",
                  std::string(reloaded.status().message()).c_str());
    }
    std::fflush(stdout);
  }
  const char* name = signal == SIGTERM ? "SIGTERM" : "SIGINT";
  spdlog::info("event=draining signal={}", name);
  std::printf("physioregd: %s received, draining\n", name);
  std::fflush(stdout);
  (*server)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_drain_seconds)));
  spdlog::info("event=stopped");
  std::printf("physioregd: stopped\n");
  return 0;
}
