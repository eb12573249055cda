// The physioreg CLI binary against a real physioregd.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>

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

TEST_F(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Cli({}).exit_code, 2);
  EXPECT_EQ(Cli({"verify", "PT-1", "--activity", "juggling"}).exit_code, 2);
  EXPECT_EQ(Cli({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(Cli({"--help"}).exit_code, 0);
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

}  // namespace
}  // namespace physioreg
