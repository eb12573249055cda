// The search index snapshot through the real physioregd: written at shutdown (0600), loaded at
// the next start with the writes made since applied from the change log (also after a kill,
// when the snapshot is older than the register), and a damaged one or --search_snapshot=false
// builds the index from the register as before; every start answers searches right.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "client/connection.h"
#include "tests/support/records.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"

namespace physioreg {
namespace {

using testing::ServerProcess;
using testing::TempDir;
using testing::ValidPractitioner;
namespace v1 = physioreg::v1;

class SearchSnapshotTest : public ::testing::Test {
 protected:
  std::string Data() const { return dir_.Sub("data"); }
  std::string SnapshotPath() const { return Data() + "/search-index.snapshot"; }

  void Start(std::vector<std::string> flags = {}) {
    server_ = std::make_unique<ServerProcess>(Data(), std::move(flags));
    ASSERT_TRUE(server_->started()) << server_->output();
    ASSERT_TRUE(server_->WaitForOutput("event=search_index_loaded")) << server_->output();
    absl::StatusOr<std::string> token = client::ReadTokenFile(Data() + "/regulator.token");
    ASSERT_TRUE(token.ok()) << token.status();
    regulator_ = client::Connect(server_->address(), *token);
  }

  // How the index loaded, from the server's log line ("snapshot revision=N" or "store ...").
  std::string LoadedFrom() const {
    std::smatch m;
    const std::string& out = server_->output();
    if (!std::regex_search(out, m, std::regex("event=search_index_loaded from=([^\\n]*)"))) {
      return "";
    }
    return m[1];
  }

  void Add(int from, int to, const std::string& family) {
    v1::UpsertPractitionersRequest request;
    for (int i = from; i < to; ++i) {
      v1::Practitioner p = ValidPractitioner("PT-" + std::to_string(1000 + i));
      p.set_given_name("Given" + std::string(1, static_cast<char>('a' + i % 26)));
      p.set_family_name(family);
      *request.add_practitioners() = p;
    }
    v1::UpsertPractitionersResponse response;
    grpc::Status status =
        regulator_.Admin()->UpsertPractitioners(regulator_.Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // The registration ids a name search finds.
  std::set<std::string> Find(const std::string& name) {
    v1::SearchPractitionersRequest request;
    request.set_name(name);
    request.set_page_size(100);
    v1::SearchPractitionersResponse response;
    grpc::Status status =
        regulator_.Registry()->SearchPractitioners(regulator_.Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::set<std::string> ids;
    for (const v1::Practitioner& p : response.practitioners()) ids.insert(p.registration_id());
    EXPECT_EQ(response.total_size(), static_cast<int64_t>(ids.size()));
    return ids;
  }

  void ExpectFinds(size_t snapshotted, size_t later) {
    EXPECT_EQ(Find("Snapshotted").size(), snapshotted);
    EXPECT_EQ(Find("Later").size(), later);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  client::Connection regulator_;
};

TEST_F(SearchSnapshotTest, RestartsLoadTheSnapshotAndFollowTheChangeLog) {
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(LoadedFrom(), "store reason=\"no snapshot\"");
  ASSERT_NO_FATAL_FAILURE(Add(0, 30, "Snapshotted"));
  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
  struct stat st {};
  ASSERT_EQ(::stat(SnapshotPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);

  // Clean restart: the snapshot written at shutdown is as of the last write.
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(LoadedFrom().rfind("snapshot revision=", 0), 0u) << server_->output();
  ASSERT_NO_FATAL_FAILURE(ExpectFinds(30, 0));

  // Writes, then a kill (no snapshot at shutdown): the next start loads the older snapshot and
  // reads the rest from the change log.
  ASSERT_NO_FATAL_FAILURE(Add(30, 40, "Later"));
  ASSERT_NO_FATAL_FAILURE(Add(0, 5, "Renamed"));  // Were Snapshotted.
  server_->Stop(SIGKILL);
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(LoadedFrom().rfind("snapshot revision=", 0), 0u) << server_->output();
  ASSERT_NO_FATAL_FAILURE(ExpectFinds(25, 10));
  EXPECT_EQ(Find("Renamed").size(), 5u);
  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->output();

  // A damaged snapshot: built from the register, and said why.
  std::string bytes;
  {
    std::ifstream in(SnapshotPath(), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(bytes.size(), 100u);
  bytes[bytes.size() / 2] ^= 0x01;
  {
    std::ofstream out(SnapshotPath(), std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(LoadedFrom(), "store reason=\"snapshot checksum mismatch (corrupt)\"");
  ASSERT_NO_FATAL_FAILURE(ExpectFinds(25, 10));
  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
}

TEST_F(SearchSnapshotTest, SnapshotCopiedFromAnotherDataDirIsNotLoaded) {
  // A small register, its snapshot written at shutdown...
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(Add(0, 5, "Snapshotted"));
  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
  const std::string copied = dir_.Sub("copied.snapshot");
  std::filesystem::copy_file(SnapshotPath(), copied);
  std::filesystem::remove_all(Data());
  // ...copied into another data dir whose register is further along.
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(Add(10, 30, "Later"));
  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
  std::filesystem::copy_file(copied, SnapshotPath(),
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_NO_FATAL_FAILURE(Start());
  EXPECT_EQ(LoadedFrom().rfind("store reason=\"snapshot of another register", 0), 0u)
      << LoadedFrom();
  ASSERT_NO_FATAL_FAILURE(ExpectFinds(0, 20));
  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
}

TEST_F(SearchSnapshotTest, OffReadsAndWritesNoSnapshot) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_NO_FATAL_FAILURE(Add(0, 10, "Snapshotted"));
  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
  ASSERT_TRUE(std::filesystem::exists(SnapshotPath()));

  ASSERT_NO_FATAL_FAILURE(Start({"--search_snapshot=false"}));
  EXPECT_EQ(LoadedFrom(), "store reason=\"no snapshot path\"");
  ASSERT_NO_FATAL_FAILURE(Add(10, 15, "Later"));
  ASSERT_NO_FATAL_FAILURE(ExpectFinds(10, 5));
  const auto written = std::filesystem::last_write_time(SnapshotPath());
  ASSERT_EQ(server_->Stop(SIGTERM), 0) << server_->output();
  EXPECT_EQ(std::filesystem::last_write_time(SnapshotPath()), written);  // Untouched.
}

TEST_F(SearchSnapshotTest, BadIntervalFlagIsRefused) {
  ServerProcess server(Data(), {"--search_snapshot_minutes=-1"});
  EXPECT_FALSE(server.started());
  EXPECT_NE(server.output().find("--search_snapshot_minutes must be from 0 to 10080"),
            std::string::npos)
      << server.output();
  EXPECT_FALSE(std::filesystem::exists(Data() + "/db"));  // Nothing touched.
}

}  // namespace
}  // namespace physioreg
