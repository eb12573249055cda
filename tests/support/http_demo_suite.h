// A test suite's shared physioregd (loopback ports 0, temp data dir) with the demo register
// loaded through the real CLI, for the HTTP gateway's end-to-end tests. Needs PHYSIOREGD_PATH,
// PHYSIOREG_CLI_PATH and the demo definitions (demo.h) from the test target.
#ifndef PHYSIOREG_TESTS_SUPPORT_HTTP_DEMO_SUITE_H_
#define PHYSIOREG_TESTS_SUPPORT_HTTP_DEMO_SUITE_H_

#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <vector>

#include "tests/support/demo.h"
#include "tests/support/http_client.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg::testing {

class HttpDemoSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // No stream cap: the attack tests hold 40 exports open from one address at once (the cap
    // has its own test, tests/service/limits_e2e_test.cc).
    server_ = new ServerProcess(dir_->Sub("data"), {"--max_streams_per_caller=0"});
    ASSERT_TRUE(server_->started()) << server_->output();
    ASSERT_GT(server_->http_port(), 0) << server_->output();
    const std::string demo = DemoRegisterForToday(*dir_);
    CommandResult loaded =
        RunCommand({PHYSIOREG_CLI_PATH, "--address", server_->address(), "--token-file",
                    dir_->Sub("data/regulator.token"), "upsert", "--file", demo});
    ASSERT_EQ(loaded.exit_code, 0) << loaded.output;
  }
  static void TearDownTestSuite() {
    // A crash during the suite shows here as a non-zero exit.
    EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
    delete server_;
    delete dir_;
    server_ = nullptr;
    dir_ = nullptr;
  }

  static int port() { return server_->http_port(); }
  static HttpResponse Get(const std::string& target, const std::vector<std::string>& headers = {}) {
    return Request(port(), "GET", target, headers);
  }
  // The register revision as /readyz reports it.
  static std::string Revision() { return ReadyRevision(port()); }

  inline static TempDir* dir_ = nullptr;
  inline static ServerProcess* server_ = nullptr;
};

}  // namespace physioreg::testing

#endif  // PHYSIOREG_TESTS_SUPPORT_HTTP_DEMO_SUITE_H_
