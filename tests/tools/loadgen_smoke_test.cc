// CI smoke of physioreg-loadgen: ten seconds of get/verify/batch_verify against a real
// physioregd holding the demo register, failing on any RPC error, so the tool keeps working as
// the API grows. Not a benchmark: nothing here asserts how fast the server is.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "tests/support/demo.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg {
namespace {

using testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunCommand;
using testing::ServerProcess;
using testing::TempDir;

class LoadgenSmokeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"));
    ASSERT_TRUE(server_->started()) << server_->output();
    CommandResult upsert = RunCommand({PHYSIOREG_CLI_PATH, "--address", server_->address(),
                                       "--token-file", dir_.Sub("data/regulator.token"), "upsert",
                                       "--file", testing::DemoRegisterForToday(dir_)});
    ASSERT_EQ(upsert.exit_code, 0) << upsert.output;
  }

  CommandResult Loadgen(std::vector<std::string> flags) {
    std::vector<std::string> argv = {PHYSIOREG_LOADGEN_PATH, "--address=" + server_->address(),
                                     "--fail_on_error"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return RunCommand(argv);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

// The calls the JSON summary reports for `rpc`; -1 when it reports none.
long CallsOf(const std::string& output, const std::string& rpc) {
  std::smatch match;
  const std::regex calls("\"rpc\":\"" + rpc + "\",\"calls\":([0-9]+)");
  return std::regex_search(output, match, calls) ? std::stol(match[1]) : -1;
}

TEST_F(LoadgenSmokeTest, DemoRegisterMixRunsWithoutErrors) {
  CommandResult run =
      Loadgen({"--ids_file=" PHYSIOREG_DEMO_PATH, "--duration_s=10", "--warmup_s=0",
               "--concurrency=4", "--mix=get=1,verify=1,batch_verify=0.02", "--batch_size=100"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_GT(CallsOf(run.output, "get"), 0) << run.output;
  EXPECT_GT(CallsOf(run.output, "verify"), 0) << run.output;
  EXPECT_GT(CallsOf(run.output, "batch_verify"), 0) << run.output;
  EXPECT_THAT(run.output, Not(HasSubstr("\"errors\":{\""))) << run.output;
}

TEST_F(LoadgenSmokeTest, RpcErrorsFailTheRunAndAreCountedByCode) {
  const std::string ids = dir_.Sub("unknown.txt");
  std::ofstream(ids) << "PT-NOT-REGISTERED\n";
  CommandResult run = Loadgen(
      {"--ids_file=" + ids, "--duration_s=1", "--warmup_s=0", "--concurrency=1", "--mix=get=1"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("\"errors\":{\"NOT_FOUND\":")) << run.output;
}

// --warm: a Get of every id before the phases; a failed one fails the run (--fail_on_error).
TEST_F(LoadgenSmokeTest, WarmPassGetsEveryIdOnceAndFailsOnErrors) {
  CommandResult run = Loadgen({"--ids_file=" PHYSIOREG_DEMO_PATH, "--warm", "--duration_s=1",
                               "--warmup_s=0", "--concurrency=4", "--mix=get=1"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(
      run.output, match, std::regex("== warm: a Get of each of the ([0-9]+) ids, 4 threads")))
      << run.output;
  EXPECT_GT(std::stol(match[1]), 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr(", 0 failed")) << run.output;

  const std::string ids = dir_.Sub("unknown.txt");
  std::ofstream(ids) << "PT-NOT-REGISTERED\n";
  CommandResult failed = Loadgen({"--ids_file=" + ids, "--warm", "--duration_s=1", "--warmup_s=0",
                                  "--concurrency=1", "--mix=get=1"});
  EXPECT_EQ(failed.exit_code, 1) << failed.output;
  EXPECT_THAT(failed.output, HasSubstr(", 1 failed")) << failed.output;
  EXPECT_THAT(failed.output, HasSubstr("the warm pass had errors")) << failed.output;
}

// --rounds with --baseline and --server_pid: each round's server CPU per call and its ratio to
// that round's health Check, as a line to read and as ROUND {json} (deploy/bench-peer.sh).
TEST_F(LoadgenSmokeTest, EveryRoundReportsServerCpuPerCallAndItsRatioToHealth) {
  CommandResult run =
      Loadgen({"--ids_file=" PHYSIOREG_DEMO_PATH, "--baseline", "--rounds=2", "--duration_s=1",
               "--warmup_s=0", "--concurrency=2", "--mix=get=1,verify=1",
               "--server_pid=" + std::to_string(server_->pid())});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  for (const char* round : {"1", "2"}) {
    EXPECT_TRUE(std::regex_search(
        run.output, std::regex(std::string("== round ") + round +
                               ", server CPU per call: health [0-9.]+ us; get [0-9.]+ us "
                               "\\([0-9.]+x health\\); verify [0-9.]+ us \\([0-9.]+x health\\)")))
        << run.output;
    EXPECT_TRUE(std::regex_search(
        run.output,
        std::regex(std::string("ROUND \\{\"round\":") + round +
                   ",\"health\":[0-9.]+,\"get\":[0-9.]+,\"verify\":[0-9.]+,\"mix\":[0-9.]+\\}")))
        << run.output;
  }
  // Without the server's pid there is no CPU to report: no round lines.
  CommandResult blind =
      Loadgen({"--ids_file=" PHYSIOREG_DEMO_PATH, "--baseline", "--rounds=2", "--duration_s=1",
               "--warmup_s=0", "--concurrency=2", "--mix=get=1"});
  ASSERT_EQ(blind.exit_code, 0) << blind.output;
  EXPECT_THAT(blind.output, Not(HasSubstr("ROUND "))) << blind.output;
}

// --queries_file: searches send those names; the server's time comes back with each answer.
TEST_F(LoadgenSmokeTest, QueriesFileSearchesReportServerTime) {
  const std::string queries = dir_.Sub("queries.txt");
  std::ofstream(queries) << "he obr\njo smi\nzz zzz\n";
  CommandResult run = Loadgen({"--queries_file=" + queries, "--mix=search=1", "--duration_s=2",
                               "--warmup_s=0", "--concurrency=2"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_GT(CallsOf(run.output, "search"), 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("server time")) << run.output;
  EXPECT_THAT(run.output, HasSubstr("\"server_p99_us\":")) << run.output;

  // --once: each query exactly once, in order, one TSV line each with the server's time.
  CommandResult once = Loadgen({"--queries_file=" + queries, "--once", "--print_queries"});
  ASSERT_EQ(once.exit_code, 0) << once.output;
  const std::regex tsv("([0-9]+)\t([0-9]+)\t[0-9.]+\t([a-z ]+)");
  std::vector<std::string> seen;
  std::istringstream lines(once.output);
  std::smatch match;
  for (std::string line; std::getline(lines, line);) {
    if (!std::regex_match(line, match, tsv)) continue;
    seen.push_back(match[3]);
    if (match[3] == "zz zzz") {
      EXPECT_EQ(match[2], "0") << once.output;
    }
  }
  EXPECT_THAT(seen, ::testing::ElementsAre("he obr", "jo smi", "zz zzz")) << once.output;
  EXPECT_THAT(once.output, HasSubstr("\"server_calls\":3")) << once.output;

  // Bad input: a missing file, and --once without a query file.
  EXPECT_EQ(Loadgen({"--queries_file=" + dir_.Sub("none.txt"), "--once"}).exit_code, 2);
  EXPECT_EQ(Loadgen({"--once"}).exit_code, 2);
}

}  // namespace
}  // namespace physioreg
