// Property: whatever the server accepted, its JSONL and CSV exports re-import into an
// identical register (status histories, private contact, awkward text and coordinates
// included), through the real CLI and real servers.
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/connection.h"
#include "tests/support/export.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tools/generator/generator.h"

namespace physioreg {
namespace {

using testing::CommandResult;
using testing::RunCommand;
using testing::ServerProcess;
using testing::TempDir;
using testing::ValidPractitioner;
namespace v1 = physioreg::v1;

using testing::Register;

class RoundTripTest : public ::testing::Test {
 protected:
  struct Server {
    std::unique_ptr<ServerProcess> process;
    client::Connection regulator;
    std::string token_file;
  };

  Server Start(const std::string& name) {
    Server server;
    server.process = std::make_unique<ServerProcess>(dir_.Sub(name));
    EXPECT_TRUE(server.process->started()) << server.process->output();
    server.token_file = dir_.Sub(name + "/regulator.token");
    absl::StatusOr<std::string> token = client::ReadTokenFile(server.token_file);
    EXPECT_TRUE(token.ok()) << token.status();
    server.regulator = client::Connect(server.process->address(), token.value_or(""));
    return server;
  }

  CommandResult Cli(const Server& server, std::vector<std::string> args) {
    std::vector<std::string> argv = {PHYSIOREG_CLI_PATH, "--address", server.process->address(),
                                     "--token-file", server.token_file};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  static Register Export(const Server& server) {
    return testing::ExportRegister(server.regulator, /*include_private=*/true);
  }

  TempDir dir_;
};

// Values that trip CSV writers and readers: separators, quotes, leading spreadsheet formula
// characters, spaces at the ends, '|' inside a training course, long decimals.
v1::Practitioner Awkward() {
  v1::Practitioner p = ValidPractitioner("PT-900001");
  p.set_given_name("=HYPERLINK(\"x\")");
  p.set_family_name("O'Brien, \"Jr\"");
  p.set_preferred_name(" Léna ");
  p.add_former_names("+Tremblay");
  p.add_former_names("@Roy");
  p.add_former_names(" Gagnon ");
  p.add_languages(" Cree");
  p.add_conditions("-Only under supervision, \"level 2\"");
  p.add_languages("Français");
  p.mutable_locations(0)->set_phone("+1 403 555 0100");
  p.mutable_locations(0)->set_latitude(51.044733912345678);
  p.mutable_locations(0)->set_longitude(-114.07186543210987);
  *p.add_locations() = p.locations(0);
  p.mutable_locations(1)->set_clinic_name("Clinique du Plateau; \"Est\"");
  p.mutable_locations(1)->set_latitude(-0.000001);
  p.mutable_private_contact()->set_phone("+1 587 555 0111");
  auto* training = p.mutable_authorizations(0)->add_training();
  training->set_provider("Prairie Needling, Inc.");
  training->set_course("Dry Needling | Level 2");
  training->set_hours(12.5);
  training->set_completed_on("2019-02-28");
  return p;
}

TEST_F(RoundTripTest, JsonlAndCsvExportsReimportToAnIdenticalRegister) {
  Server source = Start("source");
  v1::UpsertPractitionersRequest upsert;
  for (int i = 0; i < 300; ++i) *upsert.add_practitioners() = tools::GenerateRegistrant(11, i);
  *upsert.add_practitioners() = Awkward();
  v1::UpsertPractitionersResponse upserted;
  {
    auto context = source.regulator.Context(60);
    grpc::Status status =
        source.regulator.Admin()->UpsertPractitioners(context.get(), upsert, &upserted);
    ASSERT_TRUE(status.ok()) << client::FormatError(status);
  }
  // Timelines with back-dated and same-day changes and reasons a CSV must quote.
  const Register before = Export(source);
  int changed = 0;
  for (const auto& [id, record] : before) {
    if (changed >= 40) break;
    if (record.authorizations_size() == 0) continue;
    v1::SetAuthorizationStatusRequest change;
    change.set_registration_id(id);
    change.set_activity(record.authorizations(0).activity());
    change.set_status(record.authorizations(0).status() == v1::Authorization::SUSPENDED
                          ? v1::Authorization::AUTHORIZED
                          : v1::Authorization::SUSPENDED);
    change.set_reason(absl::StrCat(changed % 2 ? " " : "", "Audit #", changed,
                                   ", \"records\"  reviewed; see file", changed % 3 ? "" : "  "));
    v1::Practitioner result;
    auto context = source.regulator.Context(10);
    grpc::Status status =
        source.regulator.Admin()->SetAuthorizationStatus(context.get(), change, &result);
    ASSERT_TRUE(status.ok()) << id << ": " << client::FormatError(status);
    ++changed;
  }
  const Register expected = Export(source);
  ASSERT_EQ(expected.size(), 301u);

  for (const std::string format : {"jsonl", "csv"}) {
    SCOPED_TRACE(format);
    const std::string file = dir_.Sub("export." + format);
    CommandResult exported =
        Cli(source, {"export", "--format", format, "--include-private", "--output", file});
    ASSERT_EQ(exported.exit_code, 0) << exported.output;
    Server target = Start("target-" + format);
    CommandResult imported = Cli(target, {"import", file});
    ASSERT_EQ(imported.exit_code, 0) << imported.output;
    const Register copy = Export(target);
    ASSERT_EQ(copy.size(), expected.size());
    for (const auto& [id, record] : expected) {
      auto it = copy.find(id);
      ASSERT_NE(it, copy.end()) << id;
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(record, it->second))
          << id << "\nexported:\n"
          << record.DebugString() << "\nre-imported:\n"
          << it->second.DebugString();
    }
  }
}

}  // namespace
}  // namespace physioreg
