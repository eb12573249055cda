// ImportPractitioners and ExportPractitioners against a real physioregd, through the
// generated client and through the physioreg CLI.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <map>

#include "client/connection.h"
#include "tests/support/demo.h"
#include "tests/support/export.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg {
namespace {

using testing::CommandResult;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunCommand;
using testing::ServerProcess;
using testing::TempDir;
using testing::ValidPractitioner;
namespace v1 = physioreg::v1;

// A varied valid registrant: every 7th PROVISIONAL without dry needling, some suspended.
v1::Practitioner Numbered(int i) {
  v1::Practitioner p = ValidPractitioner("PT-" + std::to_string(100000 + i));
  p.set_given_name("Given" + std::to_string(i));
  if (i % 7 == 0) {
    p.mutable_permit()->set_register_(v1::PROVISIONAL);
    p.clear_authorizations();
  }
  if (i % 5 == 0 && p.authorizations_size() > 0) {
    p.mutable_authorizations(0)->set_status(v1::Authorization::SUSPENDED);
  }
  return p;
}

using testing::Register;

class ImportExportTest : public ::testing::Test {
 protected:
  struct Server {
    std::unique_ptr<ServerProcess> process;
    client::Connection regulator;
  };

  Server Start(const std::string& name) {
    Server server;
    server.process = std::make_unique<ServerProcess>(dir_.Sub(name));
    EXPECT_TRUE(server.process->started()) << server.process->output();
    absl::StatusOr<std::string> token = client::ReadTokenFile(dir_.Sub(name + "/regulator.token"));
    EXPECT_TRUE(token.ok()) << token.status();
    server.regulator = client::Connect(server.process->address(), token.value_or(""));
    return server;
  }

  // Streams `records` in chunks through ImportPractitioners.
  grpc::Status Import(const client::Connection& connection,
                      const std::vector<v1::Practitioner>& records, const std::string& import_id,
                      v1::ImportPractitionersResponse* summary, int chunk_size = 100) {
    auto context = connection.Context(120);
    auto stream = connection.Admin()->ImportPractitioners(context.get(), summary);
    for (size_t start = 0; start < records.size() || start == 0; start += chunk_size) {
      v1::ImportPractitionersRequest chunk;
      chunk.set_import_id(import_id);
      for (size_t i = start; i < records.size() && i < start + chunk_size; ++i) {
        *chunk.add_practitioners() = records[i];
      }
      if (!stream->Write(chunk)) break;
      if (records.empty()) break;
    }
    stream->WritesDone();
    return stream->Finish();
  }

  Register Export(const client::Connection& connection, bool include_private,
                  int64_t* revision = nullptr) {
    return testing::ExportRegister(connection, include_private, revision);
  }

  CommandResult Cli(const Server& server, const std::string& name, std::vector<std::string> args) {
    std::vector<std::string> argv = {PHYSIOREG_CLI_PATH, "--address", server.process->address(),
                                     "--token-file", dir_.Sub(name + "/regulator.token")};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  std::string WriteFile(const std::string& name, const std::string& content) {
    std::ofstream(dir_.Sub(name), std::ios::binary) << content;
    return dir_.Sub(name);
  }

  static bool SameRegister(const Register& a, const Register& b) {
    if (a.size() != b.size()) return false;
    for (const auto& [id, record] : a) {
      auto it = b.find(id);
      if (it == b.end() ||
          !google::protobuf::util::MessageDifferencer::Equals(record, it->second)) {
        ADD_FAILURE() << "differs: " << id;
        return false;
      }
    }
    return true;
  }

  TempDir dir_;
};

TEST_F(ImportExportTest, MixedRecordsReportEveryRejectionAndApplyTheRest) {
  Server server = Start("a");
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 250; ++i) records.push_back(Numbered(i));
  records[3].mutable_permit()->set_registered_on("2026-02-30");
  records[120].set_given_name("");
  records[120].mutable_locations(0)->set_latitude(95);
  records[249].mutable_permit()->set_register_(v1::PROVISIONAL);  // Holds DRY_NEEDLING.
  v1::ImportPractitionersResponse summary;
  ASSERT_TRUE(Import(server.regulator, records, "", &summary).ok());
  EXPECT_EQ(summary.received(), 250);
  EXPECT_EQ(summary.applied(), 247);
  EXPECT_EQ(summary.rejected_count(), 3);
  ASSERT_EQ(summary.rejected_size(), 3);
  EXPECT_EQ(summary.rejected(0).index(), 3);
  EXPECT_EQ(summary.rejected(0).registration_id(), "PT-100003");
  EXPECT_THAT(summary.rejected(0).violations(0).field(), "permit.registered_on");
  EXPECT_EQ(summary.rejected(1).index(), 120);
  ASSERT_EQ(summary.rejected(1).violations_size(), 2);
  EXPECT_EQ(summary.rejected(1).violations(0).field(), "given_name");
  EXPECT_EQ(summary.rejected(1).violations(1).field(), "locations[0].latitude");
  EXPECT_EQ(summary.rejected(2).violations(0).field(), "authorizations[0].activity");
  EXPECT_EQ(summary.revision(), 247);
  Register exported = Export(server.regulator, true);
  EXPECT_EQ(exported.size(), 247u);
  EXPECT_EQ(exported.count("PT-100003"), 0u);
}

TEST_F(ImportExportTest, ReplayedImportIdReturnsTheFirstSummaryAndWritesNothing) {
  Server server = Start("a");
  std::vector<v1::Practitioner> records = {Numbered(1), Numbered(2)};
  v1::ImportPractitionersResponse first, replay;
  ASSERT_TRUE(Import(server.regulator, records, "nightly-42", &first).ok());
  ASSERT_TRUE(Import(server.regulator, records, "nightly-42", &replay).ok());
  EXPECT_EQ(replay.SerializeAsString(), first.SerializeAsString());
  // Other records under the used id: refused, and nothing of them is written.
  records.push_back(Numbered(3));
  records[0].set_family_name("Changed");
  v1::ImportPractitionersResponse refused;
  grpc::Status status = Import(server.regulator, records, "nightly-42", &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();
  Register exported = Export(server.regulator, false);
  EXPECT_EQ(exported.size(), 2u);
  EXPECT_EQ(exported["PT-100001"].family_name(), "O'Brien-Smith");
}

// A message that does not parse (a string that is not UTF-8, as a Windows-1252 file gives)
// must fail the import, not read as the end of the stream: nothing is recorded under the
// import_id, so the corrected rerun applies everything.
TEST_F(ImportExportTest, MessageThatDoesNotParseFailsTheImportAndRecordsNothing) {
  Server server = Start("a");
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 6; ++i) records.push_back(Numbered(i));
  records[4].set_family_name("H\xe9l\xe8ne");  // Latin-1 bytes: not UTF-8.
  v1::ImportPractitionersResponse summary;
  grpc::Status status = Import(server.regulator, records, "nightly-43", &summary, 3);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("UTF-8"));
  EXPECT_EQ(Export(server.regulator, false).size(), 3u);  // The first chunk only.

  records[4].set_family_name("Hélène");
  ASSERT_TRUE(Import(server.regulator, records, "nightly-43", &summary, 3).ok());
  EXPECT_EQ(summary.received(), 6);
  EXPECT_EQ(summary.applied(), 3);
  EXPECT_EQ(summary.unchanged(), 3);
  EXPECT_EQ(Export(server.regulator, false).size(), 6u);
}

// The server parses and checks chunks ahead of the writer: a bad message late in a stream
// still leaves exactly the chunks before it applied, and nothing after it.
TEST_F(ImportExportTest, BadMessageAfterManyChunksKeepsExactlyTheChunksBeforeIt) {
  Server server = Start("a");
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 30; ++i) records.push_back(Numbered(i));
  records[16].set_given_name("H\xe9l\xe8ne");  // Message 5 (from 0) of 3 records each.
  v1::ImportPractitionersResponse summary;
  grpc::Status status = Import(server.regulator, records, "", &summary, 3);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("message 5 of the stream (records from index 15)"));
  const Register stored = Export(server.regulator, false);
  EXPECT_EQ(stored.size(), 15u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(stored.count(records[i].registration_id()), 1u) << i;
  // Many chunks, a rejected record among them: every chunk applied, in order.
  for (v1::Practitioner& r : records) r.set_given_name("Ann");
  records[20].set_registration_id("bad id!");
  ASSERT_TRUE(Import(server.regulator, records, "", &summary, 2).ok());
  EXPECT_EQ(summary.received(), 30);
  EXPECT_EQ(summary.applied(), 29);
  ASSERT_EQ(summary.rejected_size(), 1);
  EXPECT_EQ(summary.rejected(0).index(), 20);
  EXPECT_EQ(Export(server.regulator, false).size(), 29u);
}

TEST_F(ImportExportTest, KilledMidImportThenRerunConvergesToACleanImport) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 3000; ++i) records.push_back(Numbered(i));
  Server clean = Start("clean");
  v1::ImportPractitionersResponse clean_summary;
  ASSERT_TRUE(Import(clean.regulator, records, "", &clean_summary).ok());
  const Register expected = Export(clean.regulator, true);
  ASSERT_EQ(expected.size(), 3000u);

  Server killed = Start("killed");
  {
    // Send part of the stream, wait until some of it is committed, then kill -9 the server
    // with the stream still open.
    v1::ImportPractitionersResponse summary;
    auto context = killed.regulator.Context(120);
    auto stream = killed.regulator.Admin()->ImportPractitioners(context.get(), &summary);
    for (int start = 0; start < 1500; start += 100) {
      v1::ImportPractitionersRequest chunk;
      for (int i = start; i < start + 100; ++i) *chunk.add_practitioners() = records[i];
      ASSERT_TRUE(stream->Write(chunk));
    }
    client::Connection anonymous = client::Connect(killed.process->address());
    while (true) {
      v1::VerifyAuthorizationRequest probe;
      probe.set_registration_id("PT-0");
      probe.set_activity(v1::DRY_NEEDLING);
      v1::VerifyAuthorizationResponse answer;
      ASSERT_TRUE(anonymous.Registry()
                      ->VerifyAuthorization(anonymous.Context().get(), probe, &answer)
                      .ok());
      if (answer.register_revision() >= 200) break;
    }
    EXPECT_EQ(killed.process->Stop(SIGKILL), -1);
    context->TryCancel();
  }
  killed.process = std::make_unique<ServerProcess>(dir_.Sub("killed"));
  ASSERT_TRUE(killed.process->started()) << killed.process->output();
  killed.regulator = client::Connect(killed.process->address(), killed.regulator.token);

  // Whatever survived is whole: every record present equals its clean import.
  const Register partial = Export(killed.regulator, true);
  EXPECT_GE(partial.size(), 200u);
  EXPECT_LT(partial.size(), 3000u);
  for (const auto& [id, record] : partial) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(record, expected.at(id))) << id;
  }
  v1::ImportPractitionersResponse rerun;
  ASSERT_TRUE(Import(killed.regulator, records, "", &rerun).ok());
  EXPECT_EQ(rerun.unchanged(), static_cast<int64_t>(partial.size()));
  EXPECT_EQ(rerun.applied(), 3000 - static_cast<int64_t>(partial.size()));
  EXPECT_TRUE(SameRegister(Export(killed.regulator, true), expected));
}

TEST_F(ImportExportTest, ExportIsAPointInTimeView) {
  Server server = Start("a");
  v1::ImportPractitionersResponse summary;
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 50; ++i) records.push_back(Numbered(i));
  ASSERT_TRUE(Import(server.regulator, records, "", &summary).ok());

  v1::ExportPractitionersRequest request;
  auto context = server.regulator.Context(60);
  auto stream = server.regulator.Admin()->ExportPractitioners(context.get(), request);
  v1::Practitioner first;
  ASSERT_TRUE(stream->Read(&first));
  // Writes after the export began: a new registrant and a change to the last one.
  v1::Practitioner changed = Numbered(49);
  changed.set_family_name("Later");
  v1::ImportPractitionersResponse later;
  ASSERT_TRUE(Import(server.regulator, {changed, Numbered(999)}, "", &later).ok());
  int count = 1;
  v1::Practitioner record;
  while (stream->Read(&record)) {
    ++count;
    EXPECT_NE(record.family_name(), "Later");
    EXPECT_NE(record.registration_id(), "PT-100999");
  }
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(count, 50);
  auto revision = context->GetServerInitialMetadata().find("physioreg-revision");
  ASSERT_NE(revision, context->GetServerInitialMetadata().end());
  EXPECT_EQ(std::string(revision->second.data(), revision->second.size()), "50");
}

TEST_F(ImportExportTest, PrivateDetailsOnlyWhenAskedAndOnlyForTheRegulator) {
  Server server = Start("a");
  v1::ImportPractitionersResponse summary;
  ASSERT_TRUE(Import(server.regulator, {Numbered(1)}, "", &summary).ok());
  EXPECT_FALSE(Export(server.regulator, false)["PT-100001"].has_private_contact());
  EXPECT_TRUE(Export(server.regulator, true)["PT-100001"].has_private_contact());

  v1::CreateApiKeyRequest create;
  create.set_role(v1::CLINIC);
  v1::CreateApiKeyResponse key;
  ASSERT_TRUE(
      server.regulator.Admin()->CreateApiKey(server.regulator.Context().get(), create, &key).ok());
  client::Connection clinic = client::Connect(server.process->address(), key.secret());
  for (const client::Connection* who : {&clinic}) {
    v1::ExportPractitionersRequest request;
    request.set_include_private(true);
    auto context = who->Context();
    auto stream = who->Admin()->ExportPractitioners(context.get(), request);
    v1::Practitioner record;
    EXPECT_FALSE(stream->Read(&record));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  client::Connection anonymous = client::Connect(server.process->address());
  v1::ImportPractitionersResponse denied;
  EXPECT_EQ(Import(anonymous, {Numbered(2)}, "", &denied).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ImportExportTest, CliImportsCsvEdgeCasesAndWritesRejects) {
  Server server = Start("a");
  const std::string csv =
      "\xEF\xBB\xBFregistration_id,given_name,family_name,preferred_name,register,permit_status,"
      "registered_on,conditions,location1_clinic_name,location1_city,dry_needling_status,"
      "dry_needling_granted_on\r\n"
      "PT-1,Hélène,\"O'Brien, Smith\",,GENERAL,ACTIVE,2015-04-01,\"Supervised by \"\"PT-9\"\"\r\n"
      "No neck needling\",\"Bow River, Physio\",Calgary,AUTHORIZED,2019-04-02\r\n"
      "PT-2,Nguyễn,Văn An,,PROVISIONAL,ACTIVE,2024-01-02,,,,,\r\n"
      "PT-3,Bad,Date,,GENERAL,ACTIVE,2024-13-01,,,,,\r\n"
      "PT-4,Bad,Status,,GENERAL,SLEEPING,2024-01-01,,,,,\r\n";
  const std::string path = WriteFile("register.csv", csv);
  CommandResult imported = Cli(server, "a", {"import", path, "--rejects", dir_.Sub("rejects.csv")});
  EXPECT_EQ(imported.exit_code, 1) << imported.output;
  EXPECT_THAT(imported.output, HasSubstr("4 received, 2 applied, 0 unchanged, 2 rejected"));
  std::ifstream rejects_file(dir_.Sub("rejects.csv"));
  std::string rejects((std::istreambuf_iterator<char>(rejects_file)), {});
  EXPECT_THAT(rejects, HasSubstr("5,PT-3,permit.registered_on,"));
  EXPECT_THAT(rejects, HasSubstr("6,,,permit_status: 'SLEEPING' is not a known value"));

  Register exported = Export(server.regulator, false);
  ASSERT_EQ(exported.count("PT-1"), 1u);
  EXPECT_EQ(exported["PT-1"].family_name(), "O'Brien, Smith");
  EXPECT_THAT(exported["PT-1"].conditions(),
              ElementsAre("Supervised by \"PT-9\"", "No neck needling"));
  EXPECT_EQ(exported["PT-1"].locations(0).clinic_name(), "Bow River, Physio");
  EXPECT_EQ(exported["PT-2"].family_name(), "Văn An");

  const std::string unknown = WriteFile("unknown.csv", "registration_id,shoe_size\r\nPT-1,44\r\n");
  CommandResult refused = Cli(server, "a", {"import", unknown});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.output, HasSubstr("unknown column 'shoe_size'"));
}

TEST_F(ImportExportTest, CliImportOfAnUnreadableFileStopsAndWritesNothing) {
  Server server = Start("a");
  // The reader thread hits the broken quoting in the first chunk: nothing is sent.
  const std::string broken =
      WriteFile("broken.csv",
                "registration_id,given_name,family_name,register,permit_status,registered_on\r\n"
                "PT-1,Ada,Lovelace,GENERAL,ACTIVE,2015-04-01\r\n"
                "PT-2,\"Never,Closed,GENERAL,ACTIVE,2015-04-01\r\n");
  CommandResult stopped = Cli(server, "a", {"import", broken});
  EXPECT_EQ(stopped.exit_code, 2) << stopped.output;
  EXPECT_THAT(stopped.output, HasSubstr("broken.csv"));
  EXPECT_TRUE(Export(server.regulator, false).empty());

  // An empty file still names its import to the server, which records an empty summary.
  const std::string empty = WriteFile("empty.jsonl", "");
  CommandResult nothing = Cli(server, "a", {"import", empty, "--import-id", "empty-1"});
  EXPECT_EQ(nothing.exit_code, 0) << nothing.output;
  EXPECT_THAT(nothing.output, HasSubstr("0 received, 0 applied, 0 unchanged, 0 rejected"));
  EXPECT_TRUE(Export(server.regulator, false).empty());
}

TEST_F(ImportExportTest, CliExportThenImportRoundTripsJsonlAndCsv) {
  Server source = Start("source");
  CommandResult demo = Cli(source, "source", {"import", testing::DemoRegisterForToday(dir_)});
  ASSERT_EQ(demo.exit_code, 0) << demo.output;
  const Register expected = Export(source.regulator, true);
  for (const std::string format : {"jsonl", "csv"}) {
    const std::string file = dir_.Sub("export." + format);
    CommandResult exported = Cli(
        source, "source", {"export", "--format", format, "--include-private", "--output", file});
    ASSERT_EQ(exported.exit_code, 0) << exported.output;
    EXPECT_THAT(exported.output, HasSubstr("exported 200 registrants at register revision 200"));
    Server target = Start("target-" + format);
    CommandResult imported = Cli(target, "target-" + format, {"import", file});
    ASSERT_EQ(imported.exit_code, 0) << imported.output;
    EXPECT_TRUE(SameRegister(Export(target.regulator, true), expected)) << format;
  }
  CommandResult public_view = Cli(source, "source", {"export"});
  EXPECT_THAT(public_view.output, Not(HasSubstr("privateContact")));
}

}  // namespace
}  // namespace physioreg
