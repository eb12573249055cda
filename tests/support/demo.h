// The demo register as deploy/run.sh loads it: its dates moved to today by physioreg-demo (the
// raw file goes stale as the years pass). Needs PHYSIOREG_DEMO_TOOL_PATH and
// PHYSIOREG_DEMO_PATH from the test target.
#ifndef PHYSIOREG_TESTS_SUPPORT_DEMO_H_
#define PHYSIOREG_TESTS_SUPPORT_DEMO_H_

#include <gtest/gtest.h>

#include <string>

#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg::testing {

// Writes the shifted demo register into `dir` and returns its path.
inline std::string DemoRegisterForToday(const TempDir& dir) {
  const std::string path = dir.Sub("demo-register.jsonl");
  const CommandResult run =
      RunCommand({PHYSIOREG_DEMO_TOOL_PATH, "--input", PHYSIOREG_DEMO_PATH, "--output", path});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  return path;
}

}  // namespace physioreg::testing

#endif  // PHYSIOREG_TESTS_SUPPORT_DEMO_H_
