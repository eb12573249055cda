// The view cache (storage/view_cache.h) end to end, on a real physioregd with the smallest
// cache (--view_cache_mib=1: 64 KiB a shard): after every write the CLI returns from (upsert,
// import, set-permit-status, an export edited and imported again after a restart), every read
// by id (Get, Verify, BatchVerify with repeated ids; gRPC through the real CLI and the HTTP
// gateway), asked twice so the second may come from the cache, shows what was written; a record
// larger than a shard's budget is answered whole; an id read while unknown is found once created.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "physioreg/v1/practitioner.pb.h"
#include "physioreg/v1/registry.pb.h"
#include "tests/support/http_client.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg {
namespace {

using testing::CommandResult;
using ::testing::HasSubstr;
using testing::RunCommand;
using testing::ServerProcess;
using testing::TempDir;
namespace fs = std::filesystem;
namespace v1 = physioreg::v1;

constexpr char kSmall[] = "PT-7001";
constexpr char kHuge[] = "PT-7002";
constexpr char kLate[] = "PT-7003";

template <typename Message>
Message Parse(const std::string& json) {
  Message message;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &message).ok()) << json;
  return message;
}

std::string Line(const v1::Practitioner& p) {
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(p, &json).ok());
  return json + "\n";
}

// A registrant named `given` (no preferred name: the display name starts with it). The huge one
// holds four authorizations of 50 conditions of 980 bytes: about 200 KB, three times a shard's
// budget of a 1 MiB cache.
v1::Practitioner Record(const std::string& id, const std::string& given) {
  v1::Practitioner p = testing::ValidPractitioner(id);
  p.clear_private_contact();
  p.clear_preferred_name();
  p.set_given_name(given);
  if (id == kHuge) {
    const v1::Authorization first = p.authorizations(0);
    p.clear_authorizations();
    for (v1::RestrictedActivity activity :
         {v1::DRY_NEEDLING, v1::ACUPUNCTURE, v1::SPINAL_MANIPULATION,
          v1::PELVIC_HEALTH_INTERNAL_EXAM}) {
      v1::Authorization* a = p.add_authorizations();
      *a = first;
      a->set_activity(activity);
      if (activity != v1::DRY_NEEDLING) a->clear_techniques();
      a->clear_conditions();
      for (int i = 0; i < 50; ++i) {
        a->add_conditions(absl::StrCat(given, " condition ", i, " ", std::string(960, 'x')));
      }
    }
  }
  return p;
}

// What every read of a registrant must show after the last write.
struct Expected {
  std::string given;
  std::string permit_status;  // enum name
  int64_t min_revision = 0;   // the record's revision lies in [min_revision, max_revision]
  int64_t max_revision = 0;
};

class ViewCacheE2eTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"),
                                              std::vector<std::string>{"--view_cache_mib=1"});
    ASSERT_TRUE(server_->started()) << server_->output();
    ASSERT_GT(server_->http_port(), 0);
  }

  CommandResult Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {PHYSIOREG_CLI_PATH,
                                     "--address",
                                     server_->address(),
                                     "--token-file",
                                     dir_.Sub("data/regulator.token"),
                                     "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  std::string WriteFile(const std::string& name, const std::string& content) {
    std::ofstream(dir_.Sub(name), std::ios::binary) << content;
    return dir_.Sub(name);
  }

  // The register revision a write's --json summary reports.
  static int64_t RevisionOf(const CommandResult& result) {
    EXPECT_EQ(result.exit_code, 0) << result.output;
    const size_t at = result.output.find("\"revision\": ");
    if (at == std::string::npos) {
      ADD_FAILURE() << result.output;
      return 0;
    }
    return std::stoll(result.output.substr(at + 12));
  }

  // Upserts (or imports) `records`; returns the register revision after.
  int64_t Write(const std::vector<v1::Practitioner>& records, bool import) {
    std::string text;
    for (const v1::Practitioner& p : records) text += Line(p);
    const std::string path = WriteFile(absl::StrCat("write", ++writes_, ".jsonl"), text);
    if (import) {
      return RevisionOf(Cli({"import", path, "--import-id", absl::StrCat("import-", writes_)}));
    }
    return RevisionOf(Cli({"upsert", "--file", path}));
  }

  void ExpectVerify(const v1::VerifyAuthorizationResponse& answer, const std::string& id,
                    const Expected& expected, const std::string& how) {
    EXPECT_EQ(answer.registration_id(), id) << how;
    EXPECT_THAT(answer.display_name(), ::testing::StartsWith(expected.given + " ")) << how;
    EXPECT_EQ(v1::Permit::Status_Name(answer.permit_status()), expected.permit_status) << how;
    EXPECT_GE(answer.register_revision(), expected.max_revision) << how;
    EXPECT_EQ(answer.authorization().activity(), v1::DRY_NEEDLING) << how;
    if (id == kHuge) {
      ASSERT_EQ(answer.authorization().conditions_size(), 50) << how;
      EXPECT_THAT(answer.authorization().conditions(49), ::testing::StartsWith(expected.given))
          << how;
    }
  }

  void ExpectUnknown(const v1::VerifyAuthorizationResponse& answer, const std::string& how) {
    EXPECT_FALSE(answer.authorized()) << how;
    EXPECT_EQ(answer.reason(), v1::NOT_REGISTERED) << how;
    EXPECT_EQ(answer.display_name(), "") << how;
  }

  // Reads `id` every way by id, each twice (the second read may be answered by the cache);
  // null `expected`: the registrant is unknown.
  void ExpectEveryReadShows(const std::string& id, const Expected* expected) {
    const int port = server_->http_port();
    for (int pass = 0; pass < 2; ++pass) {
      const std::string how = absl::StrCat(id, " pass ", pass);
      CommandResult get = Cli({"get", id});
      testing::HttpResponse http_get = testing::Request(port, "GET", "/v1/practitioners/" + id);
      if (expected == nullptr) {
        EXPECT_NE(get.exit_code, 0) << how << get.output;
        EXPECT_THAT(get.output, HasSubstr("NOT_FOUND")) << how;
        EXPECT_EQ(http_get.status, 404) << how << http_get.body;
      } else {
        ASSERT_EQ(get.exit_code, 0) << how << get.output;
        ASSERT_EQ(http_get.status, 200) << how << http_get.body;
        for (const v1::Practitioner& p :
             {Parse<v1::Practitioner>(get.output), Parse<v1::Practitioner>(http_get.body)}) {
          EXPECT_EQ(p.given_name(), expected->given) << how;
          EXPECT_EQ(v1::Permit::Status_Name(p.permit().status()), expected->permit_status) << how;
          EXPECT_GE(p.revision(), expected->min_revision) << how;
          EXPECT_LE(p.revision(), expected->max_revision) << how;
          EXPECT_FALSE(p.has_private_contact()) << how;
          if (id == kHuge) {
            EXPECT_EQ(p.authorizations_size(), 4) << how;
          }
        }
      }
      std::vector<v1::VerifyAuthorizationResponse> answers;
      CommandResult verify = Cli({"verify", id, "--activity", "DRY_NEEDLING"});
      answers.push_back(Parse<v1::VerifyAuthorizationResponse>(verify.output));
      testing::HttpResponse http_verify = testing::Request(
          port, "GET", absl::StrCat("/v1/practitioners/", id, ":verify?activity=DRY_NEEDLING"));
      ASSERT_EQ(http_verify.status, 200) << how << http_verify.body;
      answers.push_back(Parse<v1::VerifyAuthorizationResponse>(http_verify.body));
      // Repeated ids in one batch, around an unknown one.
      const std::vector<std::string> batch = {id, id, "PT-7999", id};
      CommandResult batch_verify = Cli(
          {"batch-verify", "--activity", "DRY_NEEDLING", batch[0], batch[1], batch[2], batch[3]});
      std::vector<std::string> lines =
          absl::StrSplit(batch_verify.output, '\n', absl::SkipWhitespace());
      ASSERT_EQ(lines.size(), batch.size()) << how << batch_verify.output;
      std::string body = R"({"requests":[)";
      for (size_t i = 0; i < batch.size(); ++i) {
        absl::StrAppend(&body, i ? "," : "", R"({"registrationId":")", batch[i],
                        R"(","activity":"DRY_NEEDLING"})");
      }
      body += "]}";
      testing::HttpResponse http_batch = testing::Request(
          port, "POST", "/v1/practitioners:batchVerify", {"Content-Type: application/json"}, body);
      ASSERT_EQ(http_batch.status, 200) << how << http_batch.body;
      auto http_answers = Parse<v1::BatchVerifyAuthorizationsResponse>(http_batch.body);
      ASSERT_EQ(http_answers.responses_size(), static_cast<int>(batch.size())) << how;
      for (size_t i = 0; i < batch.size(); ++i) {
        const auto grpc_answer = Parse<v1::VerifyAuthorizationResponse>(lines[i]);
        if (batch[i] == id) {
          answers.push_back(grpc_answer);
          answers.push_back(http_answers.responses(static_cast<int>(i)));
        } else {
          ExpectUnknown(grpc_answer, how + " batch unknown");
          ExpectUnknown(http_answers.responses(static_cast<int>(i)), how + " batch unknown");
        }
      }
      for (size_t k = 0; k < answers.size(); ++k) {
        const std::string which = absl::StrCat(how, " answer ", k);
        if (expected == nullptr) {
          ExpectUnknown(answers[k], which);
        } else {
          ExpectVerify(answers[k], id, *expected, which);
        }
      }
    }
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  int writes_ = 0;
};

TEST_F(ViewCacheE2eTest, EveryReadByIdShowsTheLastWriteWithATinyCache) {
  ExpectEveryReadShows(kLate, nullptr);  // a miss is never held as "unknown"
  int64_t revision = Write({Record(kSmall, "Gen0"), Record(kHuge, "Gen0")}, false);
  Expected small{"Gen0", "ACTIVE", 1, revision};
  Expected huge{"Gen0", "ACTIVE", 1, revision};
  ExpectEveryReadShows(kSmall, &small);
  ExpectEveryReadShows(kHuge, &huge);

  // Changed by upsert, then by import, each read warm before.
  for (int round = 1; round <= 2; ++round) {
    const std::string given = absl::StrCat("Gen", round);
    const int64_t before = revision;
    revision = Write({Record(kSmall, given), Record(kHuge, given)}, round == 2);
    small = {given, "ACTIVE", before + 1, revision};
    huge = {given, "ACTIVE", before + 1, revision};
    ExpectEveryReadShows(kSmall, &small);
    ExpectEveryReadShows(kHuge, &huge);
  }

  // A status change of each.
  for (const std::string id : {kSmall, kHuge}) {
    CommandResult suspended =
        Cli({"set-permit-status", id, "--status", "SUSPENDED", "--reason", "Audit"});
    ASSERT_EQ(suspended.exit_code, 0) << suspended.output;
    revision = Parse<v1::Practitioner>(suspended.output).revision();
    Expected& e = id == kSmall ? small : huge;
    e = {e.given, "SUSPENDED", revision, revision};
  }
  small.max_revision = revision;  // reads answer at the register's latest revision
  ExpectEveryReadShows(kSmall, &small);
  ExpectEveryReadShows(kHuge, &huge);

  // The id read while unknown, created by an import: found at once.
  ExpectEveryReadShows(kLate, nullptr);
  revision = Write({Record(kLate, "Late")}, true);
  Expected late{"Late", "ACTIVE", revision, revision};
  ExpectEveryReadShows(kLate, &late);

  // Restart, warm the new cache, then an export edited and imported again.
  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
  Start();
  ExpectEveryReadShows(kSmall, &small);
  ExpectEveryReadShows(kHuge, &huge);
  ExpectEveryReadShows(kLate, &late);
  const std::string exported = dir_.Sub("export.jsonl");
  CommandResult export_result = Cli({"export", "--output", exported});
  ASSERT_EQ(export_result.exit_code, 0) << export_result.output;
  std::ifstream in(exported, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  ASSERT_THAT(text, HasSubstr("Gen2"));
  const std::string edited = WriteFile(
      "edited.jsonl", absl::StrReplaceAll(text, {{"Gen2", "Gen3"}, {"\"Late\"", "\"Later\""}}));
  const int64_t before = revision;
  revision = RevisionOf(Cli({"import", edited, "--import-id", "round-trip"}));
  ASSERT_EQ(revision, before + 3);
  small = {"Gen3", "SUSPENDED", before + 1, revision};
  huge = {"Gen3", "SUSPENDED", before + 1, revision};
  late = {"Later", "ACTIVE", before + 1, revision};
  ExpectEveryReadShows(kSmall, &small);
  ExpectEveryReadShows(kHuge, &huge);
  ExpectEveryReadShows(kLate, &late);
}

// Values that are not whole numbers are refused before anything is touched (the range check in
// main returns 2; Abseil's own parse error exits 1, as for an unknown flag).
TEST(ViewCacheFlagTest, UnparseableCacheSizesAreRefusedAndTouchNothing) {
  for (const std::string value : {"abc", "1.5", "", "64MiB"}) {
    TempDir dir;
    CommandResult result = RunCommand({PHYSIOREGD_PATH, "--data_dir=" + dir.Sub("data"),
                                       "--grpc_address=127.0.0.1:0", "--view_cache_mib=" + value});
    EXPECT_NE(result.exit_code, 0) << value << ": " << result.output;
    EXPECT_THAT(result.output, HasSubstr("view_cache_mib")) << value;
    EXPECT_FALSE(fs::exists(dir.Sub("data"))) << value;
  }
}

}  // namespace
}  // namespace physioreg
