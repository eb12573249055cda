// CI smoke of physioreg-loadgen: ten seconds of get/verify/batch_verify against a real
// physioregd holding the demo register, failing on any RPC error, so the tool keeps working as
// the API grows. Not a benchmark: nothing here asserts how fast the server is.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

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

}  // namespace
}  // namespace physioreg
