// physioreg-demo [--today YYYY-MM-DD] [--input F] [--output F]: the demo register with every
// date moved by whole years so that it describes today (see demo_dates.h). deploy/run.sh and
// the tests load the demo register through it.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "service/core/dates.h"
#include "tools/demo/demo_dates.h"

ABSL_FLAG(std::string, today, "",
          "The day to move the register to, YYYY-MM-DD (default: today in --timezone)");
ABSL_FLAG(std::string, timezone, "America/Edmonton", "The time zone that says what today is");
ABSL_FLAG(std::string, input, PHYSIOREG_DEMO_REGISTER, "The demo register (JSONL)");
ABSL_FLAG(std::string, output, "-", "Where to write the moved register (- for stdout)");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "physioreg-demo [--today YYYY-MM-DD] [--input F] [--output F]: the demo register with its "
      "dates moved by whole years to today");
  const std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    std::fprintf(stderr, "physioreg-demo: unexpected argument %s (see --help)\n", rest[1]);
    return 2;
  }
  std::string today = absl::GetFlag(FLAGS_today);
  if (today.empty()) {
    absl::TimeZone zone;
    if (!absl::LoadTimeZone(absl::GetFlag(FLAGS_timezone), &zone)) {
      std::fprintf(stderr, "physioreg-demo: unknown time zone %s\n",
                   absl::GetFlag(FLAGS_timezone).c_str());
      return 2;
    }
    today = physioreg::core::DateIn(absl::Now(), zone);
  }
  const std::optional<absl::CivilDay> day = physioreg::core::ParseDate(today);
  if (!day) {
    std::fprintf(stderr, "physioreg-demo: --today must be a date YYYY-MM-DD, not %s\n",
                 today.c_str());
    return 2;
  }

  const std::string input_path = absl::GetFlag(FLAGS_input);
  std::ifstream input(input_path, std::ios::binary);
  std::ostringstream text;
  text << input.rdbuf();
  if (!input || !text) {
    std::fprintf(stderr, "physioreg-demo: cannot read %s\n", input_path.c_str());
    return 1;
  }
  absl::StatusOr<std::string> shifted =
      physioreg::tools::ShiftDemoRegister(text.str(), physioreg::tools::kDemoAnchor, *day);
  if (!shifted.ok()) {
    std::fprintf(stderr, "physioreg-demo: %s: %s\n", input_path.c_str(),
                 std::string(shifted.status().message()).c_str());
    return 1;
  }

  const std::string output_path = absl::GetFlag(FLAGS_output);
  if (output_path == "-") {
    std::fwrite(shifted->data(), 1, shifted->size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  // Written next to the target and renamed, so a failed write never leaves half a register.
  const std::string temp_path = output_path + ".tmp";
  {
    std::ofstream output(temp_path, std::ios::binary | std::ios::trunc);
    output << *shifted;
    output.close();
    if (!output) {
      std::fprintf(stderr, "physioreg-demo: cannot write %s\n", temp_path.c_str());
      std::remove(temp_path.c_str());
      return 1;
    }
  }
  if (std::rename(temp_path.c_str(), output_path.c_str()) != 0) {
    std::fprintf(stderr, "physioreg-demo: cannot write %s\n", output_path.c_str());
    std::remove(temp_path.c_str());
    return 1;
  }
  return 0;
}
