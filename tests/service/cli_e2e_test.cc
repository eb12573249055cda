// The physioreg CLI binary against a real physioregd.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/csv.h"
#include "physioreg/v1/registry.grpc.pb.h"
#include "physioreg/v1/registry.pb.h"
#include "tests/support/demo.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/support/today.h"

namespace physioreg {
namespace {

using testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunCommand;
using testing::ServerProcess;
using testing::TempDir;
using testing::ValidPractitioner;
namespace v1 = physioreg::v1;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
    ASSERT_TRUE(server_->started()) << server_->output();
  }

  CommandResult Cli(std::vector<std::string> args, bool regulator = false) {
    std::vector<std::string> argv = {PHYSIOREG_CLI_PATH, "--address", server_->address()};
    if (regulator) {
      argv.push_back("--token-file");
      argv.push_back(dir_.Sub("data/regulator.token"));
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  // Writes records as JSONL (proto JSON, one per line) and returns the path.
  std::string WriteJsonl(const std::vector<v1::Practitioner>& records, const std::string& name) {
    const std::string path = dir_.Sub(name);
    std::ofstream out(path);
    for (const auto& record : records) {
      std::string json;
      EXPECT_TRUE(google::protobuf::util::MessageToJsonString(record, &json).ok());
      out << json << "\n";
    }
    return path;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(CliTest, UpsertGetVerifySuspendHistory) {
  const std::string file =
      WriteJsonl({ValidPractitioner("PT-1"), ValidPractitioner("PT-2")}, "two.jsonl");
  CommandResult upsert = Cli({"upsert", "--file", file}, true);
  ASSERT_EQ(upsert.exit_code, 0) << upsert.output;
  EXPECT_THAT(upsert.output, HasSubstr("2 created"));

  CommandResult again = Cli({"upsert", "--file", file}, true);
  EXPECT_THAT(again.output, HasSubstr("2 unchanged; register revision 2"));

  CommandResult get = Cli({"get", "pt-1"});
  ASSERT_EQ(get.exit_code, 0) << get.output;
  EXPECT_THAT(get.output, HasSubstr("Hélène O'Brien-Smith"));
  EXPECT_THAT(get.output, Not(HasSubstr("helene.obrien@example.ca")));

  CommandResult verify = Cli({"verify", "PT-1", "--activity", "dry_needling"});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("AUTHORIZED"));

  CommandResult suspend =
      Cli({"set-authorization-status", "PT-1", "--activity", "DRY_NEEDLING", "--status",
           "suspended", "--effective-on", testing::DaysFromToday(-30), "--reason", "audit"},
          true);
  ASSERT_EQ(suspend.exit_code, 0) << suspend.output;
  CommandResult now = Cli({"verify", "PT-1", "--activity", "DRY_NEEDLING"});
  EXPECT_EQ(now.exit_code, 3) << now.output;
  EXPECT_THAT(now.output, HasSubstr("AUTHORIZATION_SUSPENDED"));
  CommandResult then =
      Cli({"verify", "PT-1", "--activity", "DRY_NEEDLING", "--as-of", testing::DaysFromToday(-31)});
  EXPECT_EQ(then.exit_code, 0) << then.output;

  CommandResult batch =
      Cli({"batch-verify", "--activity", "DRY_NEEDLING", "PT-1", "PT-2", "PT-404"});
  EXPECT_EQ(batch.exit_code, 3) << batch.output;
  EXPECT_THAT(batch.output, HasSubstr("NOT_REGISTERED"));

  CommandResult history = Cli({"history", "PT-1", "--page-size", "1"});
  ASSERT_EQ(history.exit_code, 0) << history.output;
  EXPECT_THAT(history.output, HasSubstr("CREATED"));
  EXPECT_THAT(history.output, HasSubstr("AUTHORIZATION_STATUS_CHANGED"));

  CommandResult json = Cli({"--json", "get", "PT-2"});
  v1::Practitioner parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.output, &parsed).ok())
      << json.output;
  EXPECT_EQ(parsed.registration_id(), "PT-2");
}

// A clinic watching dry needling hears of an authorization an upload removed, in words.
TEST_F(CliTest, WatchAlertsWhenAnUploadRemovesAnAuthorization) {
  v1::Practitioner record = ValidPractitioner("PT-1");
  ASSERT_EQ(Cli({"upsert", "--file", WriteJsonl({record}, "one.jsonl")}, true).exit_code, 0);  // 1
  v1::Practitioner without = record;
  without.clear_authorizations();
  ASSERT_EQ(Cli({"upsert", "--file", WriteJsonl({without}, "without.jsonl")}, true).exit_code,
            0);  // 2
  ASSERT_EQ(Cli({"upsert", "--file", WriteJsonl({record}, "again.jsonl")}, true).exit_code,
            0);  // 3
  ASSERT_EQ(Cli({"set-authorization-status", "PT-1", "--activity", "DRY_NEEDLING", "--status",
                 "SUSPENDED", "--reason", "audit"},
                true)
                .exit_code,
            0);  // 4
  const std::string ids = dir_.Sub("staff.txt");
  std::ofstream(ids) << "PT-1\n";
  CommandResult watch = Cli({"watch", "--ids", ids, "--activity", "DRY_NEEDLING", "--count", "3"},
                            /*regulator=*/true);
  ASSERT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_THAT(watch.output,
              HasSubstr("PT-1 DRY_NEEDLING authorization removed (was AUTHORIZED)  (revision 2)"));
  EXPECT_THAT(watch.output, HasSubstr("PT-1 DRY_NEEDLING (new) \u2192 AUTHORIZED"));
  EXPECT_THAT(watch.output, HasSubstr("(revision 3)"));
  EXPECT_THAT(watch.output, Not(HasSubstr("revision 4")));
}

// A clinic's watch prints alerts a person can act on, keeps the last revision in its state
// file and, run again after the server restarted, resumes after it.
TEST_F(CliTest, WatchAlertsAndResumesFromItsStateFileAfterAServerRestart) {
  const std::string file =
      WriteJsonl({ValidPractitioner("PT-1"), ValidPractitioner("PT-2")}, "two.jsonl");
  ASSERT_EQ(Cli({"upsert", "--file", file}, true).exit_code, 0);  // Revisions 1 and 2.
  CommandResult key = Cli({"keys", "create", "--role", "CLINIC"}, true);
  ASSERT_EQ(key.exit_code, 0) << key.output;
  const std::string marker = "secret (shown once): ";
  const size_t at = key.output.find(marker);
  ASSERT_NE(at, std::string::npos) << key.output;
  const std::string secret =
      key.output.substr(at + marker.size(), key.output.find('\n', at) - at - marker.size());
  const std::string clinic_token = dir_.Sub("clinic.token");
  std::ofstream(clinic_token) << secret << "\n";
  ::chmod(clinic_token.c_str(), 0600);
  const std::string ids = dir_.Sub("staff.txt");
  std::ofstream(ids) << "# our staff\npt-1\n";
  const std::string state = dir_.Sub("watch.state");
  auto watch = [&](int count) {
    return Cli({"watch", "--token-file", clinic_token, "--ids", ids, "--activity", "dry_needling",
                "--state", state, "--count", std::to_string(count)});
  };
  auto saved = [&] {
    std::ifstream in(state);
    std::string line;
    std::getline(in, line);
    return line;
  };
  ASSERT_EQ(Cli({"set-authorization-status", "PT-1", "--activity", "DRY_NEEDLING", "--status",
                 "SUSPENDED", "--effective-on", "2020-11-02", "--reason",
                 "Complaint under investigation"},
                true)
                .exit_code,
            0);  // Revision 3.

  CommandResult first = watch(2);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output,
              HasSubstr("PT-1 DRY_NEEDLING AUTHORIZED \u2192 SUSPENDED, effective 2020-11-02: "
                        "Complaint under investigation  (revision 3)"));
  EXPECT_THAT(first.output, Not(HasSubstr("PT-2")));
  EXPECT_EQ(saved(), "3");

  server_.reset();  // Stopped; the same data directory served again, on another port.
  server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
  ASSERT_TRUE(server_->started()) << server_->output();
  ASSERT_EQ(Cli({"set-authorization-status", "PT-1", "--activity", "DRY_NEEDLING", "--status",
                 "AUTHORIZED", "--effective-on", "2021-01-05", "--reason", "Cleared"},
                true)
                .exit_code,
            0);  // Revision 4.
  CommandResult resumed = watch(1);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output,
              HasSubstr("PT-1 DRY_NEEDLING SUSPENDED \u2192 AUTHORIZED, effective 2021-01-05: "
                        "Cleared  (revision 4)"));
  EXPECT_THAT(resumed.output, Not(HasSubstr("revision 3")));
  EXPECT_EQ(saved(), "4");

  // Anonymous watchers are refused, and no retry hides it.
  CommandResult anonymous = Cli({"watch", "--ids", ids, "--count", "1"});
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_THAT(anonymous.output, HasSubstr("UNAUTHENTICATED"));
}

// A free loopback TCP port (bound, read and released; nothing else on this machine picks
// ports by number).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

// `physioreg watch` started while its server is down waits for it (backing off, one stderr
// line per attempt), prints the alert once the server is up, and across a restart of the
// server mid-watch goes on after the last revision it printed: no duplicate, no gap.
TEST_F(CliTest, WatchWaitsForTheServerAndResumesAcrossARestart) {
  // A gRPC client that must wait for a server hangs under libfaketime (README "Tests"); nothing
  // here depends on the date, so the processes this test starts run on the real clock.
  if (const char* preload = std::getenv("LD_PRELOAD");
      preload != nullptr && std::string(preload).find("faketime") != std::string::npos) {
    ::unsetenv("LD_PRELOAD");
  }
  ASSERT_EQ(Cli({"upsert", "--file", WriteJsonl({ValidPractitioner("PT-1")}, "one.jsonl")}, true)
                .exit_code,
            0);  // Revision 1.
  const int port = FreePort();
  ASSERT_GT(port, 0);
  server_.reset();  // Down; it comes back on `port`.
  const std::vector<std::string> on_port = {absl::StrCat("--grpc_address=127.0.0.1:", port)};
  const std::string ids = dir_.Sub("staff.txt");
  std::ofstream(ids) << "PT-1\n";
  const std::string state = dir_.Sub("watch.state");
  std::ofstream(state) << "1\n";  // Seen up to revision 1.
  testing::BackgroundCommand watch(
      {PHYSIOREG_CLI_PATH, "--address", absl::StrCat("127.0.0.1:", port), "--token-file",
       dir_.Sub("data/regulator.token"), "watch", "--ids", ids, "--activity", "DRY_NEEDLING",
       "--state", state, "--count", "3"});
  // A failed attempt while nothing listens.
  ASSERT_TRUE(watch.WaitForOutput("reconnecting in")) << watch.output();
  auto suspend = [&](const std::string& status, const std::string& reason) {
    CommandResult r = Cli({"set-authorization-status", "PT-1", "--activity", "DRY_NEEDLING",
                           "--status", status, "--reason", reason},
                          true);
    EXPECT_EQ(r.exit_code, 0) << r.output;
  };

  server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), on_port);
  ASSERT_TRUE(server_->started()) << server_->output();
  ASSERT_EQ(server_->address(), absl::StrCat("127.0.0.1:", port));
  suspend("SUSPENDED", "first");  // Revision 2.
  ASSERT_TRUE(watch.WaitForOutput("(revision 2)")) << watch.output();
  EXPECT_THAT(watch.output(), HasSubstr("PT-1 DRY_NEEDLING AUTHORIZED \u2192 SUSPENDED"));

  // Restarted mid-watch; a write lands as soon as it is back, likely before the watch is.
  const size_t before_restart = watch.output().size();
  server_.reset();
  server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), on_port);
  ASSERT_TRUE(server_->started()) << server_->output();
  suspend("AUTHORIZED", "second");  // Revision 3.
  suspend("SUSPENDED", "third");    // Revision 4.
  ASSERT_EQ(watch.Wait(), 0) << watch.output();
  const std::string& out = watch.output();
  for (const char* revision : {"(revision 2)", "(revision 3)", "(revision 4)"}) {
    const size_t at = out.find(revision);
    EXPECT_NE(at, std::string::npos) << revision << "\n" << out;
    EXPECT_EQ(out.find(revision, at + 1), std::string::npos) << revision << "\n" << out;
  }
  EXPECT_THAT(out, Not(HasSubstr("(revision 1)")));
  EXPECT_LT(out.find("(revision 3)"), out.find("(revision 4)"));
  EXPECT_NE(out.find("reconnecting in", before_restart), std::string::npos) << out;
  std::ifstream in(state);
  std::string saved;
  std::getline(in, saved);
  EXPECT_EQ(saved, "4");

  // Each attempt printed one line; waits start at most 0.2 s and never pass 10 s.
  std::vector<double> waits;
  static const std::regex kWait("reconnecting in ([0-9.]+)(ms|s) after revision");
  for (std::sregex_iterator it(out.begin(), out.end(), kWait), end; it != end; ++it) {
    waits.push_back(std::stod((*it)[1]) * ((*it)[2] == "ms" ? 0.001 : 1.0));
  }
  ASSERT_GE(waits.size(), 2u) << out;
  EXPECT_LE(waits.front(), 0.2);
  for (double w : waits) EXPECT_LE(w, 10.0) << out;
}

// The nightly upload from an upstream system must not undo a suspension set through the CLI.
TEST_F(CliTest, UploadDoesNotLiftASuspensionUnlessAllowed) {
  const std::string file = WriteJsonl({ValidPractitioner("PT-1")}, "nightly.jsonl");
  ASSERT_EQ(Cli({"upsert", "--file", file}, true).exit_code, 0);
  CommandResult suspended =
      Cli({"set-permit-status", "PT-1", "--status", "SUSPENDED", "--reason", "Complaint"}, true);
  ASSERT_EQ(suspended.exit_code, 0) << suspended.output;
  CommandResult again = Cli({"upsert", "--file", file}, true);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.output, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(again.output, HasSubstr("permit.status"));
  EXPECT_THAT(again.output, HasSubstr("allow_status_lift"));
  EXPECT_EQ(Cli({"verify", "PT-1", "--activity", "DRY_NEEDLING"}).exit_code, 3);
  CommandResult allowed = Cli({"upsert", "--file", file, "--allow-status-lift"}, true);
  EXPECT_EQ(allowed.exit_code, 0) << allowed.output;
  EXPECT_EQ(Cli({"verify", "PT-1", "--activity", "DRY_NEEDLING"}).exit_code, 0);
}

// What the public Get returns, changed and uploaded with a mask, keeps the private contact.
TEST_F(CliTest, UpdateMaskKeepsWhatItDoesNotName) {
  ASSERT_EQ(
      Cli({"upsert", "--file", WriteJsonl({ValidPractitioner("PT-1")}, "a.jsonl")}, true).exit_code,
      0);
  v1::Practitioner renamed = ValidPractitioner("PT-1");
  renamed.clear_private_contact();
  renamed.set_family_name("Tremblay");
  CommandResult masked = Cli(
      {"upsert", "--file", WriteJsonl({renamed}, "b.jsonl"), "--update-mask", "family_name"}, true);
  ASSERT_EQ(masked.exit_code, 0) << masked.output;
  EXPECT_THAT(masked.output, HasSubstr("1 updated"));
  CommandResult exported = Cli({"export", "--include-private"}, true);
  EXPECT_THAT(exported.output, HasSubstr("\"familyName\":\"Tremblay\""));
  EXPECT_THAT(exported.output, HasSubstr("helene.obrien@example.ca"));
  CommandResult bad = Cli(
      {"upsert", "--file", WriteJsonl({renamed}, "c.jsonl"), "--update-mask", "revision"}, true);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output, HasSubstr("update_mask.paths[0]"));
}

// The server takes messages of at most 4 MiB: uploads of large records are split by size too.
TEST_F(CliTest, LargeRecordsAreSentInMessagesTheServerAccepts) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 200; ++i) {
    v1::Practitioner p = ValidPractitioner(absl::StrCat("PT-", i));
    for (int k = 0; k < 30; ++k) p.add_conditions(std::string(1000, 'a' + k % 26));
    records.push_back(p);
  }
  const std::string file = WriteJsonl(records, "large.jsonl");  // About 6 MB.
  CommandResult upserted = Cli({"upsert", "--file", file}, true);
  EXPECT_EQ(upserted.exit_code, 0) << upserted.output;
  EXPECT_THAT(upserted.output, HasSubstr("200 created"));
  CommandResult imported = Cli({"import", file}, true);
  EXPECT_EQ(imported.exit_code, 0) << imported.output;
  EXPECT_THAT(imported.output, HasSubstr("200 unchanged"));
}

// One record per registrant per file, wherever the repeat falls (here past the first 1,000,
// in what would be the second call): the file is refused and nothing is written.
TEST_F(CliTest, UpsertRefusesAFileThatNamesARegistrantTwice) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 1000; ++i) records.push_back(ValidPractitioner(absl::StrCat("DU-", i)));
  v1::Practitioner again = ValidPractitioner("du-0");
  again.set_family_name("Later");
  records.push_back(again);
  CommandResult upserted = Cli({"upsert", "--file", WriteJsonl(records, "dup.jsonl")}, true);
  EXPECT_EQ(upserted.exit_code, 1);
  EXPECT_THAT(upserted.output, HasSubstr(":1001: registration_id DU-0 appears again"));
  EXPECT_EQ(Cli({"get", "DU-0"}).exit_code, 1);
}

TEST_F(CliTest, BadRecordReportsFieldPathAndWritesNothing) {
  v1::Practitioner bad = ValidPractitioner("PT-2");
  bad.mutable_locations(0)->set_latitude(123);
  const std::string file = WriteJsonl({ValidPractitioner("PT-1"), bad}, "bad.jsonl");
  CommandResult upsert = Cli({"upsert", "--file", file}, true);
  EXPECT_EQ(upsert.exit_code, 1);
  EXPECT_THAT(upsert.output, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(upsert.output, HasSubstr("practitioners[1].locations[0].latitude"));
  CommandResult get = Cli({"get", "PT-1"});
  EXPECT_EQ(get.exit_code, 1);
  EXPECT_THAT(get.output, HasSubstr("NOT_FOUND"));
}

TEST_F(CliTest, WritesWithoutTokenAreUnauthenticated) {
  const std::string file = WriteJsonl({ValidPractitioner()}, "one.jsonl");
  CommandResult upsert = Cli({"upsert", "--file", file});
  EXPECT_EQ(upsert.exit_code, 1);
  EXPECT_THAT(upsert.output, HasSubstr("UNAUTHENTICATED"));
}

// A file that opens but cannot be read (here a directory) is not "0 records" and success.
TEST_F(CliTest, UpsertOfAFileThatCannotBeReadFails) {
  const std::string directory = dir_.Sub("records.jsonl");
  std::filesystem::create_directory(directory);
  CommandResult upserted = Cli({"upsert", "--file", directory}, true);
  EXPECT_EQ(upserted.exit_code, 2) << upserted.output;
  EXPECT_THAT(upserted.output, HasSubstr("is a directory, not a file"));
  EXPECT_THAT(upserted.output, Not(HasSubstr("0 records")));
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Cli({}).exit_code, 2);
  EXPECT_EQ(Cli({"verify", "PT-1", "--activity", "juggling"}).exit_code, 2);
  CommandResult unknown = Cli({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.output, HasSubstr("unknown command 'frobnicate'"));
  EXPECT_EQ(Cli({"--help"}).exit_code, 0);
}

// A typo in an option must not quietly answer another question (here: for today).
TEST_F(CliTest, UnknownOptionsSwitchValuesExtraAndMissingArgumentsAreUsageErrors) {
  const std::string file = WriteJsonl({ValidPractitioner("PT-1")}, "one.jsonl");
  ASSERT_EQ(Cli({"upsert", "--file", file}, true).exit_code, 0);
  const std::vector<std::vector<std::string>> bad = {
      {"verify", "PT-1", "--activity", "DRY_NEEDLING", "--as_of", "2025-06-15"},
      {"verify", "PT-1", "--activity", "DRY_NEEDLING", "--asof=2025-06-15"},
      {"verify", "PT-1", "PT-2", "--activity", "DRY_NEEDLING"},
      {"verify", "PT-1", "--activity"},
      {"verify", "--activity", "DRY_NEEDLING"},
      {"search", "--name", "brien", "--fuzzy=yes"},
      {"search", "--name", "brien", "--all=no"},
      {"--json=1", "get", "PT-1"},
      {"get", "PT-1", "extra"},
      {"get", "PT-1", "--city", "Calgary"},
      {"history", "PT-1", "--page-size", "many"},
      {"health", "--wait", "soon"},
      {"keys", "revoke"},
      {"keys", "list", "extra"},
      {"keys"},
      {"export", "--format", "xml"},
  };
  for (const auto& args : bad) {
    CommandResult result = Cli(args);
    EXPECT_EQ(result.exit_code, 2) << args[0] << " " << args.back() << ": " << result.output;
    EXPECT_THAT(result.output, HasSubstr("physioreg: ")) << result.output;
    EXPECT_THAT(result.output, Not(HasSubstr("AUTHORIZED"))) << result.output;
    EXPECT_THAT(result.output, Not(HasSubstr("Hélène"))) << result.output;
  }
  // A regulator command with a typo is refused before anything reaches the server.
  v1::Practitioner renamed = ValidPractitioner("PT-1");
  renamed.set_given_name("Changed");
  const std::string changed = WriteJsonl({renamed}, "changed.jsonl");
  CommandResult upsert = Cli({"upsert", "--file", changed, "--request_id", "r1"}, true);
  EXPECT_EQ(upsert.exit_code, 2) << upsert.output;
  CommandResult status = Cli({"set-permit-status", "PT-1", "--status", "SUSPENDED", "--reason",
                              "audit", "--effective_on", "2025-01-01"},
                             true);
  EXPECT_EQ(status.exit_code, 2) << status.output;
  CommandResult get = Cli({"get", "PT-1"});
  EXPECT_THAT(get.output, HasSubstr("Hélène"));
  EXPECT_THAT(get.output, HasSubstr("ACTIVE"));
  EXPECT_THAT(get.output, Not(HasSubstr("Changed")));
}

TEST_F(CliTest, EveryCommandHasHelp) {
  const std::vector<std::vector<std::string>> commands = {{"get"},
                                                          {"search"},
                                                          {"verify"},
                                                          {"batch-verify"},
                                                          {"history"},
                                                          {"health"},
                                                          {"upsert"},
                                                          {"import"},
                                                          {"export"},
                                                          {"keys"},
                                                          {"keys", "create"},
                                                          {"keys", "list"},
                                                          {"keys", "revoke"},
                                                          {"set-authorization-status"},
                                                          {"set-permit-status"}};
  for (std::vector<std::string> args : commands) {
    std::string usage = "Usage: physioreg";
    for (const std::string& word : args) usage += " " + word;
    args.push_back("--help");
    CommandResult help = Cli(args);
    EXPECT_EQ(help.exit_code, 0) << usage << ": " << help.output;
    EXPECT_THAT(help.output, HasSubstr(usage)) << help.output;
  }
  CommandResult verify = Cli({"verify", "--help"});
  EXPECT_THAT(verify.output, HasSubstr("--as-of"));
  EXPECT_THAT(verify.output, HasSubstr("--activity"));
}

// Global options may come from the environment, and may also follow the command.
TEST_F(CliTest, GlobalOptionsFromEnvironmentOrAfterTheCommand) {
  CommandResult keys = RunCommand({"/usr/bin/env", "PHYSIOREG_ADDRESS=" + server_->address(),
                                   "PHYSIOREG_TOKEN_FILE=" + dir_.Sub("data/regulator.token"),
                                   PHYSIOREG_CLI_PATH, "keys", "list"});
  EXPECT_EQ(keys.exit_code, 0) << keys.output;
  EXPECT_THAT(keys.output, HasSubstr("REGULATOR"));
  // The flag wins over the environment.
  CommandResult flag = RunCommand({"/usr/bin/env", "PHYSIOREG_ADDRESS=127.0.0.1:1",
                                   PHYSIOREG_CLI_PATH, "--address", server_->address(), "health"});
  EXPECT_EQ(flag.exit_code, 0) << flag.output;
  const std::string file = WriteJsonl({ValidPractitioner("PT-1")}, "one.jsonl");
  ASSERT_EQ(Cli({"upsert", "--file", file}, true).exit_code, 0);
  CommandResult json =
      RunCommand({PHYSIOREG_CLI_PATH, "get", "PT-1", "--json", "--address", server_->address()});
  v1::Practitioner parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.output, &parsed).ok())
      << json.output;
  EXPECT_EQ(parsed.registration_id(), "PT-1");
}

TEST_F(CliTest, KeysCreateListRevoke) {
  CommandResult created = Cli({"keys", "create", "--role", "clinic", "--description", "Bow"}, true);
  ASSERT_EQ(created.exit_code, 0) << created.output;
  EXPECT_THAT(created.output, HasSubstr("secret (shown once): prk_"));
  CommandResult listed = Cli({"keys", "list"}, true);
  EXPECT_THAT(listed.output, HasSubstr("CLINIC"));
  EXPECT_THAT(listed.output, HasSubstr("REGULATOR"));
  EXPECT_THAT(listed.output, Not(HasSubstr("prk_")));  // Secrets are never listed.
}

// The register deploy/run.sh loads: every record valid, and loading it twice changes nothing.
TEST_F(CliTest, DemoRegisterLoadsAndReloadsUnchanged) {
  const std::string demo = testing::DemoRegisterForToday(dir_);
  CommandResult first = Cli({"upsert", "--file", demo, "--request-id", "d1"}, true);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("200 records: 200 created"));
  CommandResult second = Cli({"upsert", "--file", demo}, true);
  EXPECT_THAT(second.output, HasSubstr("200 unchanged; register revision 200"));
  CommandResult authorized = Cli({"verify", "PT-100331", "--activity", "DRY_NEEDLING"});
  EXPECT_EQ(authorized.exit_code, 0) << authorized.output;
  CommandResult revoked = Cli({"verify", "PT-100505", "--activity", "DRY_NEEDLING"});
  EXPECT_THAT(revoked.output, HasSubstr("AUTHORIZATION_REVOKED"));
}

TEST_F(CliTest, HealthReportsServing) {
  CommandResult health = Cli({"health"});
  EXPECT_EQ(health.exit_code, 0) << health.output;
  EXPECT_THAT(health.output, HasSubstr("SERVING"));
}

TEST_F(CliTest, SearchFindsByNameAndFiltersAndPagesThroughEverything) {
  v1::Practitioner other = ValidPractitioner("PT-2");
  other.set_given_name("John");
  other.set_family_name("Smith");
  other.clear_preferred_name();
  other.clear_former_names();
  v1::Practitioner pending = ValidPractitioner("PT-3");
  pending.mutable_authorizations(0)->set_status(v1::Authorization::PENDING);
  const std::string file = WriteJsonl({ValidPractitioner("PT-1"), other, pending}, "three.jsonl");
  ASSERT_EQ(Cli({"upsert", "--file", file}, true).exit_code, 0);

  CommandResult found = Cli({"search", "--name", "o brien", "--activity", "dry_needling"});
  ASSERT_EQ(found.exit_code, 0) << found.output;
  EXPECT_THAT(found.output, HasSubstr("PT-1"));
  EXPECT_THAT(found.output, Not(HasSubstr("PT-3")));  // Pending: not authorized today.
  EXPECT_THAT(found.output, HasSubstr("1 of 1 matches"));
  EXPECT_THAT(found.output, Not(HasSubstr("helene.obrien@example.ca")));

  CommandResult fuzzy = Cli({"search", "--name", "Jonh Smyth", "--fuzzy", "--near", "51.05,-114.07",
                             "--radius-km", "50"});
  ASSERT_EQ(fuzzy.exit_code, 0) << fuzzy.output;
  EXPECT_THAT(fuzzy.output, HasSubstr("PT-2"));
  EXPECT_THAT(fuzzy.output, HasSubstr(" km)"));

  CommandResult all = Cli({"search", "--page-size", "1", "--all"});
  ASSERT_EQ(all.exit_code, 0) << all.output;
  for (const char* id : {"PT-1", "PT-2", "PT-3"}) EXPECT_THAT(all.output, HasSubstr(id));
  EXPECT_THAT(all.output, HasSubstr("3 of 3 matches"));

  CommandResult page = Cli({"--json", "search", "--city", "CALGARY", "--page-size", "2"});
  v1::SearchPractitionersResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(page.output, &parsed).ok())
      << page.output;
  EXPECT_EQ(parsed.total_size(), 3);
  EXPECT_EQ(parsed.practitioners_size(), 2);
  CommandResult next =
      Cli({"search", "--city", "CALGARY", "--page-token", parsed.next_page_token()});
  ASSERT_EQ(next.exit_code, 0) << next.output;
  EXPECT_THAT(next.output, HasSubstr("PT-2"));

  CommandResult bad = Cli({"search", "--near", "95,0", "--radius-km", "600"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.output, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(bad.output, HasSubstr("near.latitude"));
  EXPECT_THAT(bad.output, HasSubstr("near.radius_km"));
}

// The distance shown is to the nearest location, so the city next to it must be that one's.
TEST_F(CliTest, SearchNearNamesTheCityOfTheNearestLocation) {
  v1::Practitioner p = ValidPractitioner("PT-1");
  v1::PracticeLocation calgary = p.locations(0);
  v1::PracticeLocation* airdrie = p.mutable_locations(0);
  airdrie->set_city("Airdrie");
  airdrie->set_postal_code("T4B 0A1");
  airdrie->set_latitude(51.2917);
  airdrie->set_longitude(-114.0144);
  *p.add_locations() = calgary;
  ASSERT_EQ(Cli({"upsert", "--file", WriteJsonl({p}, "one.jsonl")}, true).exit_code, 0);

  CommandResult calgary_search =
      Cli({"search", "--near", "51.0447,-114.0719", "--radius-km", "50"});
  ASSERT_EQ(calgary_search.exit_code, 0) << calgary_search.output;
  EXPECT_THAT(calgary_search.output, HasSubstr("Calgary (0.0 km)"));
  EXPECT_THAT(calgary_search.output, Not(HasSubstr("Airdrie")));
  CommandResult airdrie_search =
      Cli({"search", "--near", "51.2917,-114.0144", "--radius-km", "50"});
  ASSERT_EQ(airdrie_search.exit_code, 0) << airdrie_search.output;
  EXPECT_THAT(airdrie_search.output, HasSubstr("Airdrie (0.0 km)"));
}

TEST_F(CliTest, NotRegisteredReadsPlainlyAndJsonKeepsFalseAndZero) {
  CommandResult verify = Cli({"verify", "PT-404", "--activity", "DRY_NEEDLING"});
  EXPECT_EQ(verify.exit_code, 3) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("NOT_REGISTERED"));
  EXPECT_THAT(verify.output, HasSubstr("PT-404 is not on the register"));
  EXPECT_THAT(verify.output, Not(HasSubstr("UNSPECIFIED")));
  EXPECT_THAT(verify.output, Not(HasSubstr("permit status")));

  CommandResult json = Cli({"--json", "verify", "PT-404", "--activity", "DRY_NEEDLING"});
  EXPECT_EQ(json.exit_code, 3) << json.output;
  EXPECT_THAT(json.output, HasSubstr("\"authorized\": false"));
  v1::VerifyAuthorizationResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.output, &parsed).ok())
      << json.output;
  EXPECT_EQ(parsed.reason(), v1::NOT_REGISTERED);

  CommandResult batch =
      Cli({"--json", "batch-verify", "--activity", "DRY_NEEDLING", "PT-404", "PT-405"});
  EXPECT_EQ(batch.exit_code, 3) << batch.output;
  EXPECT_THAT(batch.output, HasSubstr("\"authorized\":false"));
  EXPECT_THAT(batch.output, HasSubstr("\"register_revision\":\"0\""));

  // A registrant looked up before their permit existed: no permit, never STATUS_UNSPECIFIED.
  ASSERT_EQ(Cli({"upsert", "--file", WriteJsonl({ValidPractitioner("PT-1")}, "one.jsonl")}, true)
                .exit_code,
            0);
  CommandResult before =
      Cli({"verify", "PT-1", "--activity", "DRY_NEEDLING", "--as-of", "2010-01-01"});
  EXPECT_EQ(before.exit_code, 3) << before.output;
  EXPECT_THAT(before.output, Not(HasSubstr("UNSPECIFIED")));
}

// The names in `dir`, to see that a failed export leaves no temporary file behind.
std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string JsonLine(const v1::Practitioner& record) {
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(record, &json).ok());
  return json;
}

bool ValidUtf8(const std::string& text) { return client::ValidUtf8Prefix(text) == text.size(); }

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A full disk (here: a file-size limit, so writes fail with EFBIG) must fail the export and
// leave the previous output as it was.
TEST_F(CliTest, ExportThatCannotBeWrittenFailsAndKeepsThePreviousOutput) {
  std::vector<v1::Practitioner> records;
  for (int i = 1; i <= 40; ++i) records.push_back(ValidPractitioner("PT-" + std::to_string(i)));
  ASSERT_EQ(Cli({"upsert", "--file", WriteJsonl(records, "forty.jsonl")}, true).exit_code, 0);
  const std::string dir = dir_.Sub("out");
  std::filesystem::create_directory(dir);
  for (const std::string format : {"jsonl", "csv"}) {
    const std::string output = dir + "/register." + format;
    WriteFile(output, "the previous export\n");
    CommandResult full =
        RunCommand({"/usr/bin/prlimit", "--fsize=8192", PHYSIOREG_CLI_PATH, "--address",
                    server_->address(), "--token-file", dir_.Sub("data/regulator.token"), "export",
                    "--format", format, "--output", output});
    EXPECT_EQ(full.exit_code, 1) << full.output;
    EXPECT_THAT(full.output, HasSubstr("File too large"));
    EXPECT_THAT(full.output, HasSubstr("is unchanged"));
    EXPECT_THAT(full.output, Not(HasSubstr("exported 40")));
    EXPECT_EQ(ReadFile(output), "the previous export\n");
  }
  EXPECT_THAT(Listing(dir), ::testing::ElementsAre("register.csv", "register.jsonl"));

  // Without the limit the same export replaces the file.
  const std::string output = dir + "/register.jsonl";
  CommandResult fine = Cli({"export", "--output", output}, true);
  ASSERT_EQ(fine.exit_code, 0) << fine.output;
  EXPECT_THAT(fine.output, HasSubstr("exported 40 registrants"));
  EXPECT_THAT(ReadFile(output), HasSubstr("PT-40"));
  EXPECT_THAT(Listing(dir), ::testing::ElementsAre("register.csv", "register.jsonl"));
}

TEST_F(CliTest, ExportWithPrivateContactIsOwnerOnly) {
  ASSERT_EQ(Cli({"upsert", "--file", WriteJsonl({ValidPractitioner("PT-1")}, "one.jsonl")}, true)
                .exit_code,
            0);
  const std::string output = dir_.Sub("private.csv");
  WriteFile(output, "old");
  ::chmod(output.c_str(), 0644);
  CommandResult exported =
      Cli({"export", "--format", "csv", "--include-private", "--output", output}, true);
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_THAT(ReadFile(output), HasSubstr("helene.obrien@example.ca"));
  struct stat st {};
  ASSERT_EQ(::stat(output.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  const std::string fresh = dir_.Sub("fresh.jsonl");
  ASSERT_EQ(Cli({"export", "--include-private", "--output", fresh}, true).exit_code, 0);
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A registrant CSV cannot hold fails the export by name instead of leaving a partial file.
TEST_F(CliTest, CsvExportRefusesARecordItCannotHold) {
  v1::Practitioner wide = ValidPractitioner("PT-2");
  for (int i = 0; i < 3; ++i) *wide.add_locations() = wide.locations(0);
  for (int i = 1; i < wide.locations_size(); ++i) {
    wide.mutable_locations(i)->set_clinic_name("Clinic " + std::to_string(i));
  }
  ASSERT_EQ(
      Cli({"upsert", "--file", WriteJsonl({ValidPractitioner("PT-1"), wide}, "two.jsonl")}, true)
          .exit_code,
      0);
  const std::string dir = dir_.Sub("out");
  std::filesystem::create_directory(dir);
  const std::string output = dir + "/register.csv";
  WriteFile(output, "the previous export\n");
  CommandResult csv = Cli({"export", "--format", "csv", "--output", output}, true);
  EXPECT_EQ(csv.exit_code, 1) << csv.output;
  EXPECT_THAT(csv.output, HasSubstr("PT-2"));
  EXPECT_THAT(csv.output, HasSubstr("--format jsonl"));
  EXPECT_THAT(csv.output, Not(HasSubstr("exported")));
  EXPECT_EQ(ReadFile(output), "the previous export\n");
  EXPECT_THAT(Listing(dir), ::testing::ElementsAre("register.csv"));
  CommandResult jsonl = Cli({"export", "--output", dir + "/register.jsonl"}, true);
  EXPECT_EQ(jsonl.exit_code, 0) << jsonl.output;
}

// A file saved as Windows-1252 ("Hélène" with byte 0xE9): the row is rejected on the client,
// named in the rejects file, and the other rows are imported.
TEST_F(CliTest, ImportRejectsRowsThatAreNotUtf8AndImportsTheRest) {
  const std::string csv = dir_.Sub("cp1252.csv");
  WriteFile(csv,
            "registration_id,given_name,family_name,register,permit_status,registered_on\r\n"
            "PT-1,Anna,Smith,GENERAL,ACTIVE,2015-04-01\r\n"
            "PT-2,H\xE9l\xE8ne,Tremblay,GENERAL,ACTIVE,2015-04-01\r\n"
            "PT-3,Bob,Jones,GENERAL,ACTIVE,2015-04-01\r\n");
  const std::string csv_rejects = dir_.Sub("csv-rejects.csv");
  CommandResult imported = Cli({"import", csv, "--rejects", csv_rejects}, true);
  EXPECT_EQ(imported.exit_code, 1) << imported.output;
  EXPECT_THAT(imported.output, HasSubstr("3 received, 2 applied, 0 unchanged, 1 rejected"));
  const std::string rejected = ReadFile(csv_rejects);
  EXPECT_THAT(rejected,
              HasSubstr("3,PT-2,given_name,\"not valid UTF-8 (byte 0xE9 after \"\"H\"\")"));
  EXPECT_EQ(ValidUtf8(rejected), true);
  EXPECT_EQ(Cli({"get", "PT-1"}).exit_code, 0);
  EXPECT_EQ(Cli({"get", "PT-3"}).exit_code, 0);
  EXPECT_THAT(Cli({"get", "PT-2"}).output, HasSubstr("NOT_FOUND"));

  // The same in JSONL: the line's registrant and field are named.
  std::string line = JsonLine(ValidPractitioner("PT-5"));
  ASSERT_TRUE(absl::StrContains(line, "H\xC3\xA9l\xC3\xA8ne")) << line;
  line = absl::StrReplaceAll(line, {{"H\xC3\xA9l\xC3\xA8ne", "H\xE9l\xE8ne"}});
  const std::string jsonl = dir_.Sub("cp1252.jsonl");
  WriteFile(jsonl, JsonLine(ValidPractitioner("PT-4")) + "\n" + line + "\n" +
                       JsonLine(ValidPractitioner("PT-6")) + "\n");
  const std::string jsonl_rejects = dir_.Sub("jsonl-rejects.csv");
  CommandResult json =
      Cli({"import", jsonl, "--rejects", jsonl_rejects, "--chunk-size", "1"}, true);
  EXPECT_EQ(json.exit_code, 1) << json.output;
  EXPECT_THAT(json.output, HasSubstr("3 received, 2 applied, 0 unchanged, 1 rejected"));
  EXPECT_THAT(ReadFile(jsonl_rejects), HasSubstr("2,PT-5,given_name,\"not valid UTF-8"));
  EXPECT_EQ(Cli({"get", "PT-4"}).exit_code, 0);
  EXPECT_EQ(Cli({"get", "PT-6"}).exit_code, 0);
  EXPECT_THAT(Cli({"get", "PT-5"}).output, HasSubstr("NOT_FOUND"));

  // upsert sends nothing when a line is not UTF-8.
  WriteFile(jsonl, JsonLine(ValidPractitioner("PT-7")) + "\n" + line + "\n");
  CommandResult upsert = Cli({"upsert", "--file", jsonl}, true);
  EXPECT_EQ(upsert.exit_code, 1) << upsert.output;
  EXPECT_THAT(upsert.output, HasSubstr(":2: PT-5: given_name: not valid UTF-8"));
  EXPECT_TRUE(ValidUtf8(upsert.output)) << upsert.output;
  EXPECT_THAT(Cli({"get", "PT-7"}).output, HasSubstr("NOT_FOUND"));
}

// Stands in for a server that ends an import early: after the first message it answers OK
// with a summary of that message only, or fails the call.
class EarlyEndAdmin final : public v1::RegistryAdmin::Service {
 public:
  explicit EarlyEndAdmin(grpc::Status answer) : answer_(std::move(answer)) {}
  grpc::Status ImportPractitioners(grpc::ServerContext*,
                                   grpc::ServerReader<v1::ImportPractitionersRequest>* reader,
                                   v1::ImportPractitionersResponse* response) override {
    v1::ImportPractitionersRequest first;
    if (reader->Read(&first)) {
      response->set_received(first.practitioners_size());
      response->set_applied(first.practitioners_size());
    }
    return answer_;
  }

 private:
  grpc::Status answer_;
};

TEST_F(CliTest, ImportNeverReportsSuccessWhenTheServerStopsEarly) {
  std::vector<v1::Practitioner> records;
  for (int i = 1; i <= 50; ++i) records.push_back(ValidPractitioner("PT-" + std::to_string(i)));
  const std::string file = WriteJsonl(records, "fifty.jsonl");
  for (const grpc::Status& answer :
       {grpc::Status::OK, grpc::Status(grpc::StatusCode::INTERNAL, "disk on fire")}) {
    EarlyEndAdmin service(answer);
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    std::unique_ptr<grpc::Server> fake = builder.BuildAndStart();
    ASSERT_GT(port, 0);
    CommandResult imported =
        RunCommand({PHYSIOREG_CLI_PATH, "--address", "127.0.0.1:" + std::to_string(port), "import",
                    file, "--chunk-size", "1"});
    EXPECT_EQ(imported.exit_code, 1) << imported.output;
    EXPECT_THAT(imported.output, Not(HasSubstr("received,")));
    EXPECT_THAT(imported.output, Not(HasSubstr("applied")));
    EXPECT_THAT(imported.output,
                HasSubstr(answer.ok() ? "the server acknowledged 1 of the" : "disk on fire"));
    fake->Shutdown();
  }
}

// CSV export -> import reproduces the register: a reason with quotes and commas, edge spaces, and
// cells a spreadsheet would run as formulas (written with a leading apostrophe).
TEST_F(CliTest, CsvExportImportReproducesSpacesLineBreaksAndFormulaCells) {
  v1::Practitioner p = ValidPractitioner("PT-1");
  p.set_preferred_name("  Léna  ");
  p.set_family_name("=O'Brien-Smith");
  p.add_former_names(" Gagnon");
  p.mutable_private_contact()->set_phone("+1 403 555 0100");
  p.mutable_locations(0)->set_phone("+1 403 555 0143");
  auto* permit_change = p.mutable_permit()->add_status_history();
  permit_change->set_status("ACTIVE");
  permit_change->set_effective_on("2015-04-01");
  permit_change->set_reason("Registered, after \"review\" of file 12");
  auto* change = p.mutable_authorizations(0)->add_status_history();
  change->set_status("AUTHORIZED");
  change->set_effective_on("2019-04-02");
  change->set_reason("@granted  ");
  ASSERT_EQ(Cli({"upsert", "--file", WriteJsonl({p}, "one.jsonl")}, true).exit_code, 0);

  const std::string csv = dir_.Sub("register.csv");
  CommandResult exported =
      Cli({"export", "--format", "csv", "--include-private", "--output", csv}, true);
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  const std::string text = ReadFile(csv);
  EXPECT_THAT(text, HasSubstr(",'+1 403 555 0100,"));
  EXPECT_THAT(text, HasSubstr(",'=O'Brien-Smith,"));
  EXPECT_THAT(text, Not(HasSubstr(",=O'Brien")));

  CommandResult imported = Cli({"import", csv}, true);
  EXPECT_EQ(imported.exit_code, 0) << imported.output;
  EXPECT_THAT(imported.output, HasSubstr("1 received, 0 applied, 1 unchanged, 0 rejected"));
  CommandResult json = Cli({"--json", "get", "PT-1"}, true);
  v1::Practitioner stored;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json.output, &stored).ok())
      << json.output;
  EXPECT_EQ(stored.preferred_name(), "  Léna  ");
  EXPECT_EQ(stored.family_name(), "=O'Brien-Smith");
  EXPECT_EQ(stored.former_names(1), " Gagnon");
  EXPECT_EQ(stored.permit().status_history(0).reason(), "Registered, after \"review\" of file 12");
  EXPECT_EQ(stored.authorizations(0).status_history(0).reason(), "@granted  ");
}

// The rejects file quotes the input back; a spreadsheet must not run it.
TEST_F(CliTest, RejectsFileNeutralisesFormulaCells) {
  const std::string csv = dir_.Sub("formula.csv");
  WriteFile(csv,
            "registration_id,given_name,family_name,register,permit_status,registered_on\r\n"
            "=1+2,Anna,Smith,GENERAL,ACTIVE,2015-04-01\r\n");
  const std::string rejects = dir_.Sub("rejects.csv");
  CommandResult imported = Cli({"import", csv, "--rejects", rejects}, true);
  EXPECT_EQ(imported.exit_code, 1) << imported.output;
  const std::string text = ReadFile(rejects);
  EXPECT_THAT(text, HasSubstr("\n2,'=1+2,registration_id,")) << text;
  EXPECT_THAT(text, Not(HasSubstr(",=1+2"))) << text;
}

// What the server quotes back from a request reaches a terminal escaped, never as a control
// sequence (ESC [2J clears the screen; U+202E reverses the text after it).
TEST_F(CliTest, TerminalNeverReceivesControlSequences) {
  v1::Practitioner p = ValidPractitioner("PT-1");
  p.mutable_permit()->set_registered_on("\x1b[2J\u202E2015");
  CommandResult upsert = Cli({"upsert", "--file", WriteJsonl({p}, "bad.jsonl")}, true);
  EXPECT_EQ(upsert.exit_code, 1) << upsert.output;
  EXPECT_THAT(upsert.output, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(upsert.output, HasSubstr("registered_on"));
  EXPECT_THAT(upsert.output, Not(HasSubstr("\x1b"))) << upsert.output;
  EXPECT_THAT(upsert.output, Not(HasSubstr("\u202E"))) << upsert.output;
}

// --output through a symbolic link writes the file it names and keeps the link.
TEST_F(CliTest, ExportThroughASymlinkWritesItsTarget) {
  ASSERT_EQ(
      Cli({"upsert", "--file", WriteJsonl({ValidPractitioner("PT-1")}, "a.jsonl")}, true).exit_code,
      0);
  const std::string target = dir_.Sub("real.jsonl");
  const std::string link = dir_.Sub("link.jsonl");
  WriteFile(target, "old\n");
  std::filesystem::create_symlink(target, link);
  CommandResult exported = Cli({"export", "--output", link}, true);
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_THAT(ReadFile(target), HasSubstr("PT-1"));
}

}  // namespace
}  // namespace physioreg
