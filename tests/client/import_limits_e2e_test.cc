// The CLI's import and upsert input limits and odd inputs (issue 13): the real `physioreg`
// binary against a real physioregd on loopback, each refusal checked to leave the register as
// it was.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "client/connection.h"
#include "client/line_reader.h"
#include "tests/support/export.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg {
namespace {

using testing::BackgroundCommand;
using testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::Register;
using testing::RunCommand;
using testing::ServerProcess;
using testing::TempDir;
namespace v1 = physioreg::v1;

// One registrant as a JSONL line (with its line end).
std::string Line(const v1::Practitioner& p) {
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(p, &json).ok());
  return json + "\n";
}

std::string Valid(const std::string& id) { return Line(testing::ValidPractitioner(id)); }

// A registrant whose given name has `bytes` letters (the server rejects more than 200).
std::string WithLongName(const std::string& id, size_t bytes) {
  v1::Practitioner p = testing::ValidPractitioner(id);
  p.set_given_name(std::string(bytes, 'x'));
  return Line(p);
}

bool Same(const Register& a, const Register& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [id, record] : a) {
    auto it = b.find(id);
    if (it == b.end() || !google::protobuf::util::MessageDifferencer::Equals(record, it->second)) {
      return false;
    }
  }
  return true;
}

class ImportLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
    ASSERT_TRUE(server_->started()) << server_->output();
    absl::StatusOr<std::string> token = client::ReadTokenFile(dir_.Sub("data/regulator.token"));
    ASSERT_TRUE(token.ok()) << token.status();
    regulator_ = client::Connect(server_->address(), *token);
  }

  std::vector<std::string> CliArgs(std::vector<std::string> args) const {
    std::vector<std::string> argv = {PHYSIOREG_CLI_PATH, "--address", server_->address(),
                                     "--token-file", dir_.Sub("data/regulator.token")};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  CommandResult Cli(std::vector<std::string> args) { return RunCommand(CliArgs(std::move(args))); }

  // The CLI through bash: `shell` is put before it (e.g. "ulimit -v ...;") and `redirect`
  // after it (e.g. "< file").
  CommandResult CliInShell(const std::string& before, std::vector<std::string> args,
                           const std::string& redirect) {
    std::string command = before + " exec";
    for (const std::string& arg : CliArgs(std::move(args))) command += " '" + arg + "'";
    return RunCommand({"/bin/bash", "-c", command + " " + redirect});
  }

  std::string WriteFile(const std::string& name, const std::string& content) {
    std::ofstream(dir_.Sub(name), std::ios::binary) << content;
    return dir_.Sub(name);
  }

  std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

  Register Exported(int64_t* revision = nullptr) {
    return testing::ExportRegister(regulator_, false, revision);
  }

  // Seeds the register with PT-SEED and returns its state, for untouched-checks.
  Register Seed(int64_t* revision) {
    const std::string seed = WriteFile("seed.jsonl", Valid("PT-SEED"));
    CommandResult seeded = Cli({"import", seed});
    EXPECT_EQ(seeded.exit_code, 0) << seeded.output;
    Register before = Exported(revision);
    EXPECT_EQ(before.size(), 1u);
    return before;
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  client::Connection regulator_;
};

TEST_F(ImportLimitsTest, ImportRejectsALineOverTheLimitWithItsLineAndAppliesTheRest) {
  const std::string path =
      WriteFile("big.jsonl", Valid("PT-1") + WithLongName("PT-2", 5 << 20) + Valid("PT-3"));
  CommandResult imported = Cli({"import", path, "--rejects", dir_.Sub("rejects.csv")});
  EXPECT_EQ(imported.exit_code, 1) << imported.output;
  EXPECT_THAT(imported.output, HasSubstr("3 received, 2 applied, 0 unchanged, 1 rejected"));
  EXPECT_THAT(ReadFile(dir_.Sub("rejects.csv")),
              HasSubstr(absl::StrCat("2,,,\"the line is longer than ", client::kMaxLineBytes,
                                     " bytes (4 MiB less 4 KiB)")));
  Register exported = Exported();
  EXPECT_EQ(exported.count("PT-1"), 1u);
  EXPECT_EQ(exported.count("PT-2"), 0u);
  EXPECT_EQ(exported.count("PT-3"), 1u);
}

TEST_F(ImportLimitsTest, ARecordThatWouldOverfillItsMessageGoesInAMessageOfItsOwn) {
  // 14 records of 200 KiB fill most of a request; the next one (3.8 MiB, under the line limit)
  // must not be added to it, or the message passes the server's 4 MiB and the import fails.
  std::string content;
  for (int i = 0; i < 14; ++i) content += WithLongName(absl::StrCat("PT-", i), 200 << 10);
  content += WithLongName("PT-BIG", 3800 << 10) + Valid("PT-OK");
  const std::string path = WriteFile("heavy.jsonl", content);
  CommandResult imported = Cli({"import", path, "--rejects", dir_.Sub("rejects.csv")});
  EXPECT_EQ(imported.exit_code, 1) << imported.output;
  // The server took every message and rejected the oversized records by their fields.
  EXPECT_THAT(imported.output, HasSubstr("16 received, 1 applied, 0 unchanged, 15 rejected"));
  EXPECT_THAT(ReadFile(dir_.Sub("rejects.csv")), HasSubstr("15,PT-BIG,given_name,"));
  Register exported = Exported();
  ASSERT_EQ(exported.size(), 1u);
  EXPECT_EQ(exported.begin()->first, "PT-OK");
}

TEST_F(ImportLimitsTest, UpsertRefusesALineOverTheLimitAndSendsNothing) {
  int64_t revision = 0;
  const Register before = Seed(&revision);
  // No line break at all: the reader stops at the limit instead of holding the whole file.
  const std::string path =
      WriteFile("long.jsonl", Valid("PT-1") + std::string((5 << 20) + 17, 'x'));
  CommandResult refused = Cli({"upsert", "--file", path});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr(absl::StrCat("long.jsonl:2: the line is longer than ",
                                                     client::kMaxLineBytes, " bytes")));
  EXPECT_THAT(refused.output, HasSubstr("nothing was sent"));
  int64_t after_revision = 0;
  EXPECT_TRUE(Same(Exported(&after_revision), before));
  EXPECT_EQ(after_revision, revision);
}

TEST_F(ImportLimitsTest, DevZeroStopsAtItsFirstByteWithBoundedMemory) {
  int64_t revision = 0;
  const Register before = Seed(&revision);
  // Under a 2 GB address-space cap a reader that grows its line would fail to allocate.
  // AddressSanitizer reserves terabytes of address space for its shadow at start, so an ASan
  // build runs uncapped: the reader must still stop at the first byte.
#if defined(__SANITIZE_ADDRESS__)
  const std::string cap;
#else
  const std::string cap = "ulimit -v 2000000;";
#endif
  CommandResult upsert = CliInShell(cap, {"upsert", "--file", "/dev/zero"}, "");
  EXPECT_EQ(upsert.exit_code, 2) << upsert.output;
  EXPECT_THAT(upsert.output, HasSubstr("line 1 holds a NUL byte: this is not a UTF-8 text file"));

  std::filesystem::create_symlink("/dev/zero", dir_.Sub("zero.jsonl"));
  CommandResult import = CliInShell(cap, {"import", dir_.Sub("zero.jsonl")}, "");
  EXPECT_EQ(import.exit_code, 2) << import.output;
  EXPECT_THAT(import.output, HasSubstr("NUL byte"));

  CommandResult piped = CliInShell(cap, {"import", "-", "--format", "jsonl"}, "< /dev/zero");
  EXPECT_EQ(piped.exit_code, 2) << piped.output;
  EXPECT_THAT(piped.output, HasSubstr("NUL byte"));

  // Nor the ID lists of batch-verify and watch.
  CommandResult batch =
      CliInShell(cap, {"batch-verify", "--ids", "/dev/zero", "--activity", "DRY_NEEDLING"}, "");
  EXPECT_EQ(batch.exit_code, 2) << batch.output;
  EXPECT_THAT(batch.output, HasSubstr("/dev/zero: line 1 holds a NUL byte"));
  CommandResult watch = CliInShell(cap, {"watch", "--ids", "/dev/zero"}, "");
  EXPECT_EQ(watch.exit_code, 2) << watch.output;
  EXPECT_THAT(watch.output, HasSubstr("/dev/zero: line 1 holds a NUL byte"));

  // A UTF-16 CSV (Excel's "Unicode text" without its byte order mark) is not read either.
  const std::string utf16 = WriteFile("utf16.csv", std::string("r\0e\0g\0\n\0", 8));
  CommandResult csv = CliInShell(cap, {"import", utf16}, "");
  EXPECT_EQ(csv.exit_code, 2) << csv.output;
  EXPECT_THAT(csv.output, HasSubstr("NUL byte"));

  int64_t after_revision = 0;
  EXPECT_TRUE(Same(Exported(&after_revision), before));
  EXPECT_EQ(after_revision, revision);
}

TEST_F(ImportLimitsTest, ACsvRecordOverTheLimitStopsTheImport) {
  int64_t revision = 0;
  const Register before = Seed(&revision);
  // A quote that never closes would otherwise read the rest of the file into one field.
  const std::string path =
      WriteFile("runaway.csv",
                "registration_id,given_name,family_name,register,permit_status,registered_on\n"
                "PT-9,\"" +
                    std::string(5 << 20, 'y') + "\n");
  CommandResult refused = Cli({"import", path});
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_THAT(refused.output,
              HasSubstr(absl::StrCat("line 2: the record is longer than ", client::kMaxLineBytes,
                                     " bytes (4 MiB less 4 KiB), the most one record may take "
                                     "(a quoted field that never closes?)")));
  int64_t after_revision = 0;
  EXPECT_TRUE(Same(Exported(&after_revision), before));
  EXPECT_EQ(after_revision, revision);
}

TEST_F(ImportLimitsTest, InputsThatAreNotFilesAreRefusedAndChangeNothing) {
  int64_t revision = 0;
  const Register before = Seed(&revision);
  std::filesystem::create_directory(dir_.Sub("folder.jsonl"));
  CommandResult directory = Cli({"import", dir_.Sub("folder.jsonl")});
  EXPECT_EQ(directory.exit_code, 2) << directory.output;
  EXPECT_THAT(directory.output, HasSubstr("folder.jsonl is a directory, not a file"));
  std::filesystem::create_directory(dir_.Sub("folder.csv"));
  CommandResult csv_directory = Cli({"import", dir_.Sub("folder.csv")});
  EXPECT_EQ(csv_directory.exit_code, 2) << csv_directory.output;
  EXPECT_THAT(csv_directory.output, HasSubstr("folder.csv is a directory, not a file"));
  CommandResult upsert_directory = Cli({"upsert", "--file", dir_.Sub("folder.jsonl")});
  EXPECT_EQ(upsert_directory.exit_code, 2) << upsert_directory.output;
  EXPECT_THAT(upsert_directory.output, HasSubstr("is a directory, not a file"));

  CommandResult missing = Cli({"import", dir_.Sub("missing.jsonl")});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("missing.jsonl: no such file"));

  CommandResult no_format = Cli({"import", "-"});
  EXPECT_EQ(no_format.exit_code, 2) << no_format.output;
  EXPECT_THAT(no_format.output,
              HasSubstr("standard input (-) needs --format jsonl or --format csv"));

  // A file its reader may not read: as root, the CLI runs as nobody (a root reads anything).
  const std::string locked = WriteFile("locked.jsonl", Valid("PT-LOCKED"));
  ASSERT_EQ(::chmod(locked.c_str(), 0), 0);
  CommandResult unreadable;
  if (::geteuid() == 0) {
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0711), 0);
    const std::string token = WriteFile("nobody.token", ReadFile(dir_.Sub("data/regulator.token")));
    ASSERT_EQ(::chmod(token.c_str(), 0600), 0);
    ASSERT_EQ(RunCommand({"/bin/chown", "nobody", token}).exit_code, 0);
    unreadable = RunCommand({"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup",
                             "--clear-groups", PHYSIOREG_CLI_PATH, "--address", server_->address(),
                             "--token-file", token, "import", locked});
  } else {
    unreadable = Cli({"import", locked});
  }
  EXPECT_EQ(unreadable.exit_code, 2) << unreadable.output;
  EXPECT_THAT(unreadable.output, HasSubstr("cannot read " + locked + ": Permission denied"));

  int64_t after_revision = 0;
  EXPECT_TRUE(Same(Exported(&after_revision), before));
  EXPECT_EQ(after_revision, revision);
}

TEST_F(ImportLimitsTest, ByteOrderMarkCrlfBlankLinesEmptyFilesAndAFifo) {
  const std::string windows = WriteFile(
      "windows.jsonl",
      "\xEF\xBB\xBF" + absl::StrReplaceAll(Valid("PT-1") + "\n" + Valid("PT-2"), {{"\n", "\r\n"}}));
  CommandResult imported = Cli({"import", windows});
  EXPECT_EQ(imported.exit_code, 0) << imported.output;
  EXPECT_THAT(imported.output, HasSubstr("2 received, 2 applied, 0 unchanged, 0 rejected"));
  const std::string windows_upsert = WriteFile(
      "upsert.jsonl", "\xEF\xBB\xBF" + absl::StrReplaceAll(Valid("PT-3"), {{"\n", "\r\n"}}));
  CommandResult upserted = Cli({"upsert", "--file", windows_upsert});
  EXPECT_EQ(upserted.exit_code, 0) << upserted.output;
  EXPECT_THAT(upserted.output, HasSubstr("1 records: 1 created"));
  int64_t revision = 0;
  const Register before = Exported(&revision);
  EXPECT_EQ(before.size(), 3u);

  for (const std::string& content : {std::string(), std::string("\n\r\n  \n\t\r\n")}) {
    const std::string blank = WriteFile("blank.jsonl", content);
    CommandResult nothing = Cli({"import", blank});
    EXPECT_EQ(nothing.exit_code, 0) << nothing.output;
    EXPECT_THAT(nothing.output, HasSubstr("0 received, 0 applied, 0 unchanged, 0 rejected"));
  }
  int64_t after_revision = 0;
  EXPECT_TRUE(Same(Exported(&after_revision), before));
  EXPECT_EQ(after_revision, revision);

  // A FIFO: read as it is written, its size unknown.
  const std::string fifo = dir_.Sub("pipe.jsonl");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::thread writer([&] { std::ofstream(fifo) << Valid("PT-4") << Valid("PT-5"); });
  CommandResult piped = Cli({"import", fifo});
  writer.join();
  EXPECT_EQ(piped.exit_code, 0) << piped.output;
  EXPECT_THAT(piped.output, HasSubstr("2 received, 2 applied"));
  EXPECT_EQ(Exported().size(), 5u);
}

TEST_F(ImportLimitsTest, StandardInputImportsAndUpserts) {
  const std::string jsonl = WriteFile("in.jsonl", Valid("PT-1") + WithLongName("PT-2", 300));
  CommandResult imported = CliInShell("cd '" + dir_.path() + "' &&",
                                      {"import", "-", "--format", "jsonl"}, "< '" + jsonl + "'");
  EXPECT_EQ(imported.exit_code, 1) << imported.output;
  EXPECT_THAT(imported.output, HasSubstr("2 received, 1 applied, 0 unchanged, 1 rejected"));
  // Rejects of standard input go to stdin.rejects.csv (in the working directory).
  EXPECT_THAT(ReadFile(dir_.Sub("stdin.rejects.csv")), HasSubstr("2,PT-2,given_name,"));

  const std::string csv =
      WriteFile("in.csv",
                "registration_id,given_name,family_name,register,permit_status,registered_on\r\n"
                "PT-3,Ada,Lovelace,GENERAL,ACTIVE,2015-04-01\r\n");
  CommandResult from_csv = CliInShell("", {"import", "-", "--format", "csv"}, "< '" + csv + "'");
  EXPECT_EQ(from_csv.exit_code, 0) << from_csv.output;
  EXPECT_THAT(from_csv.output, HasSubstr("1 received, 1 applied"));

  CommandResult upserted =
      CliInShell("", {"upsert", "--file", "-"}, "< '" + WriteFile("u.jsonl", Valid("PT-4")) + "'");
  EXPECT_EQ(upserted.exit_code, 0) << upserted.output;
  Register exported = Exported();
  EXPECT_EQ(exported.size(), 3u);
  EXPECT_EQ(exported.count("PT-2"), 0u);
}

// SIGTERM mid-import: the server ends the stream saying how far it got, and the CLI reports
// that (never the records it read) and fails; what it reports is what the register holds.
TEST_F(ImportLimitsTest, ShutdownMidImportReportsWhatTheServerApplied) {
  std::string content;
  for (int i = 0; i < 40000; ++i) content += Valid(absl::StrCat("PT-", 100000 + i));
  const std::string path = WriteFile("large.jsonl", content);
  BackgroundCommand import(CliArgs({"import", path, "--chunk-size", "200"}));
  client::Connection anonymous = client::Connect(server_->address());
  // Polls until the import is under way; the bound only turns a broken import into a failure
  // instead of a hang (it is not a speed check).
  for (int polls = 0;; ++polls) {
    ASSERT_LT(polls, 12000) << "the import never reached revision 1000: " << server_->output();
    v1::VerifyAuthorizationRequest probe;
    probe.set_registration_id("PT-1");
    probe.set_activity(v1::DRY_NEEDLING);
    v1::VerifyAuthorizationResponse answer;
    ASSERT_TRUE(
        anonymous.Registry()->VerifyAuthorization(anonymous.Context().get(), probe, &answer).ok());
    if (answer.register_revision() >= 1000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(server_->Stop(SIGTERM), 0);
  EXPECT_EQ(import.Wait(), 1) << import.output();
  EXPECT_THAT(import.output(), HasSubstr("the server is shutting down"));
  EXPECT_THAT(import.output(), Not(HasSubstr("imported ")));
  std::smatch match;
  const std::regex said(
      "did not finish: the server took the first ([0-9]+) of the ([0-9]+) records sent: ([0-9]+) "
      "applied, 0 unchanged, 0 rejected");
  ASSERT_TRUE(std::regex_search(import.output(), match, said))
      << import.output() << "\nserver: " << server_->output();
  const int64_t applied = std::stoll(match[3].str());
  EXPECT_EQ(std::stoll(match[1].str()), applied);
  EXPECT_GE(applied, 1000);
  EXPECT_LT(applied, 40000);

  Start();
  EXPECT_EQ(static_cast<int64_t>(Exported().size()), applied);
}

}  // namespace
}  // namespace physioreg
