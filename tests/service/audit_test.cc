// The audit log's writer on its own: lines, the injected clock, rotation, modes, reading back.
#include "service/audit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "tests/support/temp_dir.h"

namespace physioreg::service {
namespace {

using ::testing::HasSubstr;
namespace v1 = physioreg::v1;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

int Mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 0777);
}

v1::AuditEvent Event(const std::string& rpc, const std::string& request_id = "") {
  v1::AuditEvent event;
  event.set_kind("admin_call");
  event.set_key_id("0123456789abcdef");
  event.set_peer("ipv4:192.0.2.1:4000");
  event.set_rpc(rpc);
  event.set_outcome("OK");
  event.set_request_id(request_id);
  return event;
}

// A clock the test moves: one second per event recorded.
struct StepClock {
  std::atomic<int64_t> seconds{1'800'000'000};  // 2027-01-15
  absl::Time Next() { return absl::FromUnixSeconds(seconds.fetch_add(1)); }
};

TEST(AuditLogTest, OneJsonLinePerEventStampedByTheInjectedClock) {
  testing::TempDir dir;
  StepClock clock;
  AuditOptions options;
  options.path = dir.Sub("audit/audit.log");
  options.clock = [&clock] { return clock.Next(); };
  {
    absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(options);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->Record(Event("/physioreg.v1.RegistryAdmin/UpsertPractitioners", "req-1"));
    (*log)->Record(Event("/physioreg.v1.RegistryAdmin/ListApiKeys"));
  }  // closing writes and syncs
  EXPECT_EQ(ReadFile(options.path),
            "{\"time\":\"2027-01-15T08:00:00Z\",\"kind\":\"admin_call\",\"key_id\":"
            "\"0123456789abcdef\",\"peer\":\"ipv4:192.0.2.1:4000\",\"rpc\":"
            "\"/physioreg.v1.RegistryAdmin/UpsertPractitioners\",\"outcome\":\"OK\","
            "\"request_id\":\"req-1\"}\n"
            "{\"time\":\"2027-01-15T08:00:01Z\",\"kind\":\"admin_call\",\"key_id\":"
            "\"0123456789abcdef\",\"peer\":\"ipv4:192.0.2.1:4000\",\"rpc\":"
            "\"/physioreg.v1.RegistryAdmin/ListApiKeys\",\"outcome\":\"OK\"}\n");
  EXPECT_EQ(Mode(options.path), 0600);
  EXPECT_EQ(Mode(dir.Sub("audit")), 0700);

  // Reopened, it appends.
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(options);
  ASSERT_TRUE(log.ok());
  (*log)->Record(Event("/physioreg.v1.RegistryAdmin/ListAuditEvents"));
  absl::StatusOr<v1::ListAuditEventsResponse> read = (*log)->Read(absl::InfinitePast(), 100);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->events_size(), 3);
  EXPECT_EQ(read->events(2).rpc(), "/physioreg.v1.RegistryAdmin/ListAuditEvents");
  EXPECT_EQ(read->events(2).time().seconds(), 1'800'000'002);
}

TEST(AuditLogTest, RotatesBySizeKeepsNFilesAndReadsAcrossThem) {
  testing::TempDir dir;
  StepClock clock;
  AuditOptions options;
  options.path = dir.Sub("audit.log");
  options.max_bytes = 1024;
  options.keep_files = 2;
  options.clock = [&clock] { return clock.Next(); };
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(options);
  ASSERT_TRUE(log.ok());
  // About 200 bytes a line: 5 lines a file; 40 lines make 8 files, of which 3 are kept.
  for (int i = 0; i < 40; ++i) {
    (*log)->Record(Event("/physioreg.v1.RegistryAdmin/UpsertPractitioners", absl::StrCat("r", i)));
    (*log)->Flush();  // one batch per event, so every rotation point is reached
  }
  for (const std::string& name : {options.path, options.path + ".1", options.path + ".2"}) {
    ASSERT_TRUE(std::filesystem::exists(name)) << name;
    EXPECT_LE(std::filesystem::file_size(name), 1024u) << name;
    EXPECT_GT(std::filesystem::file_size(name), 0u) << name;
    EXPECT_EQ(Mode(name), 0600) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(options.path + ".3"));
  EXPECT_THAT(ReadFile(options.path), HasSubstr("\"request_id\":\"r39\""));

  // Everything kept, oldest first, continuous up to the newest.
  absl::StatusOr<v1::ListAuditEventsResponse> all = (*log)->Read(absl::InfinitePast(), 1000);
  ASSERT_TRUE(all.ok());
  ASSERT_GE(all->events_size(), 11);
  EXPECT_LT(all->events_size(), 40);
  EXPECT_FALSE(all->truncated());
  for (int i = 0; i < all->events_size(); ++i) {
    EXPECT_EQ(all->events(i).request_id(), absl::StrCat("r", 40 - all->events_size() + i));
  }

  // Since a time: the events at or after it (event i was stamped at start + i seconds).
  absl::StatusOr<v1::ListAuditEventsResponse> recent =
      (*log)->Read(absl::FromUnixSeconds(1'800'000'000 + 33), 1000);
  ASSERT_TRUE(recent.ok());
  ASSERT_EQ(recent->events_size(), 7);
  EXPECT_EQ(recent->events(0).request_id(), "r33");
  EXPECT_EQ(recent->events(6).request_id(), "r39");

  // A limit keeps the newest and says so.
  absl::StatusOr<v1::ListAuditEventsResponse> limited = (*log)->Read(absl::InfinitePast(), 4);
  ASSERT_TRUE(limited.ok());
  ASSERT_EQ(limited->events_size(), 4);
  EXPECT_TRUE(limited->truncated());
  EXPECT_EQ(limited->events(0).request_id(), "r36");
  EXPECT_EQ(limited->events(3).request_id(), "r39");
}

TEST(AuditLogTest, LinesCutByACrashAreSkippedWhenRead) {
  testing::TempDir dir;
  const std::string path = dir.Sub("audit.log");
  {
    std::ofstream(path)
        << "{\"time\":\"2027-01-15T08:00:00Z\",\"kind\":\"admin_call\"}\n{\"time\":\"20";
  }
  AuditOptions options;
  options.path = path;
  StepClock clock;
  options.clock = [&clock] { return clock.Next(); };
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(options);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(Mode(path), 0600);  // made owner-only when opened
  (*log)->Record(Event("/physioreg.v1.RegistryAdmin/ListApiKeys"));
  absl::StatusOr<v1::ListAuditEventsResponse> read = (*log)->Read(absl::InfinitePast(), 10);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->events_size(), 2);
  EXPECT_EQ(read->events(1).rpc(), "/physioreg.v1.RegistryAdmin/ListApiKeys");
}

TEST(AuditLogTest, AFloodOfAuthenticationFailuresIsCountedNotWrittenAdminCallsAlwaysAre) {
  testing::TempDir dir;
  std::atomic<int64_t> now{1'800'000'000};
  AuditOptions options;
  options.path = dir.Sub("audit.log");
  options.max_auth_failures_per_second = 3;
  options.clock = [&now] { return absl::FromUnixSeconds(now.load()); };
  absl::StatusOr<std::unique_ptr<AuditLog>> log = AuditLog::Open(options);
  ASSERT_TRUE(log.ok());
  v1::AuditEvent failure = Event("/physioreg.v1.Registry/GetPractitioner");
  failure.set_kind("auth_failure");
  failure.set_outcome("UNAUTHENTICATED");
  for (int i = 0; i < 10; ++i) (*log)->Record(failure);
  (*log)->Record(Event("/physioreg.v1.RegistryAdmin/ListApiKeys"));
  now += 1;  // the next second: 3 more may pass, after the count of those left out
  for (int i = 0; i < 4; ++i) (*log)->Record(failure);
  absl::StatusOr<v1::ListAuditEventsResponse> read = (*log)->Read(absl::InfinitePast(), 100);
  ASSERT_TRUE(read.ok());
  std::vector<std::string> kinds;
  for (const v1::AuditEvent& event : read->events()) {
    kinds.push_back(absl::StrCat(
        event.kind(), event.count() > 0 ? absl::StrCat(" ", event.count()) : std::string()));
  }
  EXPECT_THAT(kinds,
              ::testing::ElementsAre("auth_failure", "auth_failure", "auth_failure", "admin_call",
                                     "auth_failures_suppressed 7", "auth_failure", "auth_failure",
                                     "auth_failure", "auth_failures_suppressed 1"));
  EXPECT_EQ(read->events(4).time().seconds(), 1'800'000'001);
}

TEST(AuditLogTest, RefusesUnusableOptions) {
  testing::TempDir dir;
  AuditOptions options;
  options.path = dir.Sub("audit.log");
  options.max_bytes = 10;
  EXPECT_FALSE(AuditLog::Open(options).ok());
  options.max_bytes = 4096;
  options.keep_files = 0;
  EXPECT_FALSE(AuditLog::Open(options).ok());
  options.keep_files = 1;
  options.path = "/proc/no-such-dir/audit.log";
  EXPECT_FALSE(AuditLog::Open(options).ok());
}

}  // namespace
}  // namespace physioreg::service
