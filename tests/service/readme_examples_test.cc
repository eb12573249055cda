// Every command of README.md's "Using the CLI" block, read from the README itself, run with the
// real CLI against a real physioregd holding the demo register loaded as deploy/run.sh loads it
// (deploy/demo/load.sh). A README command this test does not know, or an expectation no README
// command meets, fails it: the README cannot drift from what the programs do.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "service/core/dates.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tests/support/today.h"
#include "tools/demo/demo_dates.h"

namespace physioreg {
namespace {

using testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunCommand;
using testing::ServerProcess;
using testing::TempDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The lines of the first ```sh block after "## Using the CLI", continuation lines joined.
std::vector<std::string> UsingTheCliBlock(const std::string& readme) {
  std::vector<std::string> lines;
  bool in_section = false, in_block = false;
  std::string pending;
  for (absl::string_view line : absl::StrSplit(readme, '\n')) {
    if (!in_section) {
      in_section = line == "## Using the CLI";
    } else if (!in_block) {
      if (absl::StartsWith(line, "## ")) break;
      in_block = line == "```sh";
    } else if (line == "```") {
      break;
    } else if (absl::ConsumeSuffix(&line, "\\")) {
      absl::StrAppend(&pending, line);
    } else {
      lines.push_back(absl::StrCat(pending, line));
      pending.clear();
    }
  }
  return lines;
}

// The README's dates describe the demo register's anchor day; moved like the register.
std::string MoveDatesToToday(const std::string& command) {
  const int years = tools::YearsToShift(tools::kDemoAnchor, testing::TodayInEdmonton());
  const std::regex date(R"(\b\d{4}-\d{2}-\d{2}\b)");
  std::string out;
  std::sregex_iterator it(command.begin(), command.end(), date), end;
  size_t last = 0;
  for (; it != end; ++it) {
    out.append(command, last, it->position() - last);
    const std::optional<absl::CivilDay> day = core::ParseDate(it->str());
    out += day ? core::FormatDate(tools::ShiftByYears(*day, years)) : it->str();
    last = it->position() + it->length();
  }
  out.append(command, last);
  return out;
}

struct Expectation {
  std::string pattern;  // Matches the README command (regex search).
  int exit_code;
  std::vector<std::string> output_has;
  int used = 0;
};

TEST(ReadmeExamplesTest, EveryUsingTheCliCommandWorksOnTheDemoRegister) {
  const std::vector<std::string> block =
      UsingTheCliBlock(ReadFile(PHYSIOREG_SOURCE_DIR "/README.md"));
  ASSERT_FALSE(block.empty()) << "README.md has no ```sh block under \"## Using the CLI\"";

  TempDir dir;
  // The rate limits at their defaults, as run.sh serves: the README's commands fit within them.
  ServerProcess server(dir.Sub("data"), {"--rate_limits=true"});
  ASSERT_TRUE(server.started()) << server.output();
  const std::string token = dir.Sub("data/regulator.token");
  CommandResult load =
      RunCommand({"/bin/bash", PHYSIOREG_SOURCE_DIR "/deploy/demo/load.sh", PHYSIOREG_BUILD_DIR,
                  server.address(), token, dir.Sub("demo-register.jsonl")});
  ASSERT_EQ(load.exit_code, 0) << load.output;
  ASSERT_THAT(load.output, HasSubstr("200 records: 200 created"));
  const std::string work = dir.Sub("work");  // The commands' working directory.
  std::filesystem::create_directory(work);

  // What run.sh's paths are in this build; the README must name exactly these variables.
  const std::map<std::string, std::pair<std::string, std::string>> variables = {
      {"cli",
       {"build/release/client/physioreg",
        absl::StrCat(PHYSIOREG_CLI_PATH, " --address ", server.address())}},
      {"token", {"var/physioreg/regulator.token", token}},
      {"demo", {"build/release/tools/demo/physioreg-demo", PHYSIOREG_DEMO_TOOL_PATH}},
  };
  std::vector<Expectation> expectations = {
      {R"(^\$cli get PT-100331\b)", 0, {"PT-100331", "Hélène"}},
      {R"(^\$cli verify PT-100331 --activity DRY_NEEDLING +(#|$))", 0, {"AUTHORIZED"}},
      {R"(^\$cli verify PT-100331 --activity DRY_NEEDLING --as-of )", 0, {"AUTHORIZED"}},
      {R"(^\$cli batch-verify --activity DRY_NEEDLING PT-100331 PT-100505 PT-999999)",
       3,
       {"AUTHORIZED", "AUTHORIZATION_REVOKED", "NOT_REGISTERED"}},
      {R"(^\$cli verify PT-100331 --activity DRY_NEEDLING --proof proof.json)",
       0,
       {"AUTHORIZED", "saved to proof.json"}},
      {R"(^\$cli verification-keys --output keys.json)", 0, {"1 verification keys saved"}},
      {R"(^\$cli verify-proof proof.json --keys keys.json)",
       0,
       {"valid proof: PT-100331 DRY_NEEDLING", "AUTHORIZED"}},
      {R"(^printf 'PT-100331\\nPT-100505\\n' > staff.txt)", 0, {}},
      {R"(^\$cli batch-verify --ids staff.txt --activity DRY_NEEDLING --format csv --proof-dir)",
       3,
       {"item,registration_id", "PT-100331,DRY_NEEDLING", "AUTHORIZATION_REVOKED",
        "2 signed answers saved in proofs"}},
      {R"(^\$cli history PT-100331\b)", 0, {"CREATED"}},
      // Accent-free, lower-case, with an apostrophe: finds the accented name.
      {R"(^\$cli search --name "helene o'brien" --activity DRY_NEEDLING)",
       0,
       {"PT-101394", "Hélène O'Brien", "1 of 1 matches"}},
      {R"(^\$cli search --name "Jonh Smyth" --fuzzy --city calgary)",
       0,
       {"PT-105174", "John Smith", "Calgary"}},
      {R"(^\$cli search --near 51.0447,-114.0719 --radius-km 10 --activity dry_needling)",
       0,
       {"PT-100331", " km)"}},
      {R"(^\$cli search --postal-code-prefix "t2p" --language french --all)", 0, {"PT-100331"}},
      {R"(^\$cli --json get PT-100331\b)", 0, {"{", "PT-100331", "Hélène"}},
      {R"(^\$demo --output demo.jsonl)", 0, {}},
      // The same register run.sh loaded: nothing changes.
      {R"(^\$cli --token-file \$token upsert --file demo.jsonl --request-id demo-1)",
       0,
       {"200 unchanged"}},
      {R"(^\$cli --token-file \$token set-authorization-status PT-100331 .*--status SUSPENDED)",
       0,
       {"SUSPENDED"}},
      {R"(^\$cli --token-file \$token set-permit-status PT-100331 --status ACTIVE)", 0, {}},
      {R"(^\$cli --token-file \$token import register.csv --import-id )", 0, {"0 rejected"}},
      {R"(^\$cli --token-file \$token export --format csv --include-private --output register.csv)",
       0,
       {}},
      {R"(^\$cli --token-file \$token keys create --role CLINIC)", 0, {"prk_"}},
      {R"(^\$cli --token-file \$token keys list)", 0, {"CLINIC", "REGULATOR"}},
      {R"(^\$cli --token-file \$token audit --since )",
       0,
       {"RegistryAdmin/UpsertPractitioners", "demo-1", "admin_call"}},
      {R"(^\$cli health --wait 10)", 0, {"SERVING"}},
  };

  std::string assignments;
  std::set<std::string> assigned;
  for (const std::string& line : block) {
    const absl::string_view trimmed = absl::StripAsciiWhitespace(line);
    if (trimmed.empty() || absl::StartsWith(trimmed, "#")) continue;
    std::smatch assignment;
    if (std::regex_match(line, assignment, std::regex(R"(([a-z_]+)=(\S+))"))) {
      auto variable = variables.find(assignment[1]);
      ASSERT_NE(variable, variables.end()) << "README assigns an unknown variable: " << line;
      EXPECT_EQ(assignment[2], variable->second.first) << "not where run.sh puts it: " << line;
      absl::StrAppend(&assignments, assignment[1].str(), "='", variable->second.second, "'\n");
      assigned.insert(assignment[1]);
      continue;
    }
    const std::string command = MoveDatesToToday(line);
    SCOPED_TRACE(command);
    std::vector<Expectation*> matching;
    for (Expectation& e : expectations) {
      if (std::regex_search(line, std::regex(e.pattern))) matching.push_back(&e);
    }
    ASSERT_EQ(matching.size(), 1u) << "a README command needs exactly one expectation here";
    Expectation& expected = *matching.front();
    ++expected.used;

    // import register.csv reads a file the README does not ship: the register as exported now.
    if (absl::StrContains(line, "import register.csv")) {
      CommandResult exported = RunCommand(
          {PHYSIOREG_CLI_PATH, "--address", server.address(), "--token-file", token, "export",
           "--format", "csv", "--include-private", "--output", work + "/register.csv"});
      ASSERT_EQ(exported.exit_code, 0) << exported.output;
    }
    CommandResult run = RunCommand(
        {"/bin/bash", "-c", absl::StrCat("set -u\ncd '", work, "'\n", assignments, command)});
    EXPECT_EQ(run.exit_code, expected.exit_code) << run.output;
    EXPECT_THAT(run.output, Not(HasSubstr("0 of 0 matches")));
    for (const std::string& needle : expected.output_has) {
      EXPECT_THAT(run.output, HasSubstr(needle));
    }
  }
  EXPECT_EQ(assigned.size(), variables.size()) << "README must set cli, token and demo";
  for (const Expectation& e : expectations) {
    EXPECT_EQ(e.used, 1) << "no single README command matches " << e.pattern;
  }

  // What the regulator commands did, beyond their output.
  const std::string demo = ReadFile(work + "/demo.jsonl");
  EXPECT_EQ(std::count(demo.begin(), demo.end(), '\n'), 200);
  EXPECT_EQ(demo, ReadFile(dir.Sub("demo-register.jsonl")));
  EXPECT_TRUE(absl::StartsWith(ReadFile(work + "/register.csv"), "registration_id,"));
  CommandResult suspended = RunCommand({PHYSIOREG_CLI_PATH, "--address", server.address(), "verify",
                                        "PT-100331", "--activity", "DRY_NEEDLING"});
  EXPECT_EQ(suspended.exit_code, 3) << suspended.output;
  EXPECT_THAT(suspended.output, HasSubstr("AUTHORIZATION_SUSPENDED"));
}

}  // namespace
}  // namespace physioreg
