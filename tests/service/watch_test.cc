// WatchChanges on a real server (in process, gRPC on loopback port 0, RocksDB in a temp dir):
// catch-up then live with no gap or duplicate under concurrent writers, filters, credentials,
// errors, a slow consumer cut off, and 1,000 watchers at once.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "physioreg/v1/registry.grpc.pb.h"
#include "service/server.h"
#include "tests/support/records.h"
#include "tests/support/temp_dir.h"

namespace physioreg::service {
namespace {

namespace v1 = physioreg::v1;

class WatchTest : public ::testing::Test {
 protected:
  void StartServer(size_t watch_buffer = kDefaultWatchBuffer,
                   absl::Duration retention = absl::Hours(24 * 400)) {
    ServerOptions options;
    options.data_dir = dir_.path();
    options.grpc_address = "127.0.0.1:0";
    options.http_address = "";
    options.watch_buffer = watch_buffer;
    options.change_retention = retention;
    // One process plays every client, from one address: no rate limits, no stream cap (a
    // thousand watchers); tests/service/limits_e2e_test.cc covers those.
    options.limits.rate.enabled = false;
    options.limits.rate.max_streams_per_caller = 0;
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
    std::ifstream in(server_->token_path());
    std::getline(in, regulator_);
    v1::CreateApiKeyRequest create;
    create.set_role(v1::CLINIC);
    create.set_description("watch test clinic");
    v1::CreateApiKeyResponse created;
    auto context = Context(regulator_);
    ASSERT_TRUE(Admin()->CreateApiKey(context.get(), create, &created).ok());
    clinic_ = created.secret();
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& secret) const {
    auto context = std::make_unique<grpc::ClientContext>();
    if (!secret.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", secret));
    return context;
  }
  std::unique_ptr<v1::RegistryAdmin::Stub> Admin() const {
    return v1::RegistryAdmin::NewStub(channel_);
  }
  std::unique_ptr<v1::Registry::Stub> Registry() const { return v1::Registry::NewStub(channel_); }

  // Upserts `records`; returns the register revision after.
  int64_t Upsert(const std::vector<v1::Practitioner>& records) {
    v1::UpsertPractitionersRequest request;
    for (const v1::Practitioner& p : records) *request.add_practitioners() = p;
    v1::UpsertPractitionersResponse response;
    auto context = Context(regulator_);
    grpc::Status status = Admin()->UpsertPractitioners(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.revision();
  }

  void SetDryNeedling(const std::string& id, v1::Authorization::Status status,
                      const std::string& reason) {
    v1::SetAuthorizationStatusRequest request;
    request.set_registration_id(id);
    request.set_activity(v1::DRY_NEEDLING);
    request.set_status(status);
    request.set_reason(reason);
    v1::Practitioner response;
    auto context = Context(regulator_);
    grpc::Status s = Admin()->SetAuthorizationStatus(context.get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }

  // Reads a watch until it has seen revision `until` (or the stream ends); returns the events.
  std::vector<v1::ChangeEvent> ReadUntil(const v1::WatchChangesRequest& request, int64_t until,
                                         const std::string& secret, grpc::Status* end = nullptr) {
    auto context = Context(secret);
    // A safety net so a broken feed fails the test instead of hanging it.
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(3));
    auto reader = Registry()->WatchChanges(context.get(), request);
    std::vector<v1::ChangeEvent> events;
    v1::ChangeEvent event;
    bool ended = false;
    while (events.empty() || events.back().revision() < until) {
      if (!reader->Read(&event)) {
        ended = true;  // The server ended the stream: its status is the answer.
        break;
      }
      events.push_back(event);
    }
    if (!ended) context->TryCancel();
    grpc::Status status = reader->Finish();
    if (end != nullptr) *end = status;
    return events;
  }

  static std::vector<v1::Practitioner> Records(int from, int count, const std::string& family) {
    std::vector<v1::Practitioner> records;
    for (int i = from; i < from + count; ++i) {
      v1::Practitioner p = testing::ValidPractitioner(absl::StrCat("PT-", i));
      p.set_family_name(family);
      records.push_back(std::move(p));
    }
    return records;
  }

  testing::TempDir dir_;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::string regulator_, clinic_;
};

TEST_F(WatchTest, CredentialsAndBadRequests) {
  StartServer();
  Upsert(Records(1, 3, "Initial"));
  v1::WatchChangesRequest request;
  grpc::Status status;
  EXPECT_TRUE(ReadUntil(request, 1, "", &status).empty());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  request.set_since_revision(4);
  ReadUntil(request, 5, clinic_, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(status.error_message().find("revision 3"), std::string::npos) << status.error_message();

  request.set_since_revision(-1);
  ReadUntil(request, 1, clinic_, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  request.set_since_revision(0);
  for (int i = 0; i <= kMaxWatchedIds; ++i) request.add_registration_ids(absl::StrCat("PT-", i));
  ReadUntil(request, 1, clinic_, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  request.clear_registration_ids();
  request.add_registration_ids("not an id!");
  ReadUntil(request, 1, clinic_, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // 10,000 ids are fine; actors are shown to the regulator only.
  request.clear_registration_ids();
  for (int i = 1; i <= kMaxWatchedIds; ++i) request.add_registration_ids(absl::StrCat("pt-", i));
  std::vector<v1::ChangeEvent> clinic = ReadUntil(request, 3, clinic_, &status);
  ASSERT_EQ(clinic.size(), 3u);
  EXPECT_TRUE(clinic[0].actor().empty());
  EXPECT_FALSE(clinic[0].practitioner().has_private_contact());
  std::vector<v1::ChangeEvent> regulator = ReadUntil(request, 3, regulator_, &status);
  ASSERT_EQ(regulator.size(), 3u);
  EXPECT_FALSE(regulator[0].actor().empty());
}

TEST_F(WatchTest, FiltersByIdAndActivity) {
  StartServer();
  std::vector<v1::Practitioner> records = Records(1, 4, "Initial");
  records[3].mutable_authorizations(0)->set_activity(v1::ACUPUNCTURE);
  records[3].mutable_authorizations(0)->clear_techniques();
  Upsert(records);                                            // revisions 1-4
  SetDryNeedling("PT-2", v1::Authorization::SUSPENDED, "x");  // 5
  SetDryNeedling("PT-3", v1::Authorization::SUSPENDED, "y");  // 6
  std::vector<v1::Practitioner> renamed = Records(2, 1, "Renamed");
  renamed[0].mutable_authorizations(0)->set_status(v1::Authorization::SUSPENDED);
  Upsert(renamed);  // 7

  v1::WatchChangesRequest request;
  request.add_registration_ids("PT-2");
  request.add_registration_ids("PT-4");
  std::vector<int64_t> seen;
  for (const auto& e : ReadUntil(request, 7, clinic_)) seen.push_back(e.revision());
  EXPECT_EQ(seen, (std::vector<int64_t>{2, 4, 5, 7}));

  request.add_activities(v1::DRY_NEEDLING);
  seen.clear();
  for (const auto& e : ReadUntil(request, 7, clinic_)) seen.push_back(e.revision());
  EXPECT_EQ(seen, (std::vector<int64_t>{2, 5, 7}));  // PT-4 holds ACUPUNCTURE only.

  v1::WatchChangesRequest all;
  all.set_since_revision(4);
  seen.clear();
  for (const auto& e : ReadUntil(all, 7, clinic_)) seen.push_back(e.revision());
  EXPECT_EQ(seen, (std::vector<int64_t>{5, 6, 7}));
}

// A watcher filtered on an activity hears of an authorization a change removed, although the
// record after the change no longer holds it; events name the activities they touched.
TEST_F(WatchTest, ActivityFilterSeesAnAuthorizationRemoved) {
  StartServer();
  std::vector<v1::Practitioner> records = Records(1, 3, "Initial");
  records[2].mutable_authorizations(0)->set_activity(v1::ACUPUNCTURE);
  records[2].mutable_authorizations(0)->clear_techniques();
  Upsert(records);  // Revisions 1-3; PT-3 holds ACUPUNCTURE only.
  v1::Practitioner without = records[0];
  without.clear_authorizations();
  without.set_family_name("Removed");
  Upsert({without});                                          // 4: PT-1 loses DRY_NEEDLING.
  SetDryNeedling("PT-2", v1::Authorization::SUSPENDED, "x");  // 5
  v1::Practitioner renamed = records[2];
  renamed.set_family_name("Renamed");
  Upsert({renamed});                                           // 6: nothing about DRY_NEEDLING.
  SetDryNeedling("PT-2", v1::Authorization::AUTHORIZED, "y");  // 7

  v1::WatchChangesRequest request;
  request.add_activities(v1::DRY_NEEDLING);
  std::vector<int64_t> seen;
  std::map<int64_t, std::vector<int>> changed;
  for (const auto& e : ReadUntil(request, 7, clinic_)) {
    seen.push_back(e.revision());
    changed[e.revision()].assign(e.changed_activities().begin(), e.changed_activities().end());
  }
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2, 4, 5, 7}));
  EXPECT_EQ(changed[1], std::vector<int>{v1::DRY_NEEDLING});  // Created with it.
  EXPECT_EQ(changed[4], std::vector<int>{v1::DRY_NEEDLING});  // Removed.
  EXPECT_EQ(changed[5], std::vector<int>{v1::DRY_NEEDLING});  // Its status changed.

  // Every watcher gets the field; a change that touched no authorization lists none.
  std::vector<v1::ChangeEvent> all = ReadUntil(v1::WatchChangesRequest(), 7, clinic_);
  ASSERT_EQ(all.size(), 7u);
  EXPECT_EQ(all[5].revision(), 6);
  EXPECT_TRUE(all[5].changed_activities().empty());
  EXPECT_EQ(all[2].changed_activities_size(), 1);
  EXPECT_EQ(all[2].changed_activities(0), v1::ACUPUNCTURE);
}

// A deletion passes an activity filter when the registrant held that activity (listed in
// changed_activities), and not otherwise.
TEST(WatchFilterTest, DeletionMatchesTheActivitiesTheRegistrantHeld) {
  v1::WatchChangesRequest request;
  request.add_activities(v1::DRY_NEEDLING);
  absl::StatusOr<WatchFilter> filter = MakeWatchFilter(request);
  ASSERT_TRUE(filter.ok()) << filter.status();
  v1::ChangeEvent deleted;
  deleted.set_kind(v1::ChangeEvent::DELETED);
  deleted.set_registration_id("PT-1");
  deleted.add_changed_activities(v1::ACUPUNCTURE);
  EXPECT_FALSE(filter->Matches(deleted));
  deleted.add_changed_activities(v1::DRY_NEEDLING);
  EXPECT_TRUE(filter->Matches(deleted));
  EXPECT_TRUE(WatchFilter().Matches(deleted));  // No filter: everything.
}

// Watchers start at different points (catch-up from the change log, then live) while two
// writers commit; each sees every revision after its start exactly once, in order, and the
// last state each saw is what the search index serves.
TEST_F(WatchTest, NoGapNoDuplicateAcrossCatchUpAndLiveUnderConcurrentWriters) {
  StartServer();
  Upsert(Records(1, 20, "Initial"));
  constexpr int kRounds = 60;
  std::atomic<int> done_writers{0};
  auto write = [&](int writer) {
    for (int round = 0; round < kRounds; ++round) {
      Upsert(Records(1 + writer * 10, 10, absl::StrCat("W", writer, "R", round)));
    }
    done_writers.fetch_add(1);
  };
  std::thread first(write, 0), second(write, 1);
  struct Watcher {
    int64_t since = 0;
    std::vector<v1::ChangeEvent> events;
  };
  std::vector<Watcher> watchers(6);
  std::vector<std::thread> readers;
  const int64_t final_revision = 20 + 2 * kRounds * 10;
  for (size_t w = 0; w < watchers.size(); ++w) {
    // No sleeping: each watcher starts once a little more has been written.
    int64_t now = 0;
    do {
      v1::VerifyAuthorizationRequest verify;
      verify.set_registration_id("PT-1");
      verify.set_activity(v1::DRY_NEEDLING);
      v1::VerifyAuthorizationResponse answer;
      auto context = Context("");
      ASSERT_TRUE(Registry()->VerifyAuthorization(context.get(), verify, &answer).ok());
      now = answer.register_revision();
    } while (done_writers.load() < 2 && now < 20 + static_cast<int64_t>(w) * 200);
    watchers[w].since = w % 2 == 0 ? 0 : now / 2;
    readers.emplace_back([&, w] {
      v1::WatchChangesRequest request;
      request.set_since_revision(watchers[w].since);
      watchers[w].events = ReadUntil(request, final_revision, clinic_);
    });
  }
  first.join();
  second.join();
  for (std::thread& t : readers) t.join();
  for (size_t w = 0; w < watchers.size(); ++w) {
    std::vector<int64_t> expected, seen;
    for (int64_t r = watchers[w].since + 1; r <= final_revision; ++r) expected.push_back(r);
    for (const auto& e : watchers[w].events) seen.push_back(e.revision());
    EXPECT_EQ(seen, expected) << "watcher " << w << " from " << watchers[w].since;
  }
  // The index follows the same feed: the family name each registrant last got in the feed is
  // the one search finds it under.
  std::map<std::string, std::string> last_name;
  for (const auto& e : watchers[0].events) {
    last_name[e.registration_id()] = e.practitioner().family_name();
  }
  for (const auto& [id, family] : last_name) {
    v1::SearchPractitionersRequest search;
    search.set_name(family);
    search.set_page_size(100);
    v1::SearchPractitionersResponse found;
    grpc::Status status;
    do {  // The index may still be loading right after the start.
      auto context = Context("");
      status = Registry()->SearchPractitioners(context.get(), search, &found);
    } while (status.error_code() == grpc::StatusCode::UNAVAILABLE);
    ASSERT_TRUE(status.ok()) << status.error_message();
    bool has = false;
    for (const auto& p : found.practitioners()) has = has || p.registration_id() == id;
    EXPECT_TRUE(has) << id << " not found as " << family;
  }
}

// Changes older than the retention are not sent: a since_revision before the oldest retained
// revision answers OUT_OF_RANGE naming it; one at the edge streams.
TEST_F(WatchTest, RetentionRefusesOlderSinceRevisions) {
  StartServer();
  Upsert(Records(1, 3, "Old"));  // Revisions 1-3.
  server_.reset();
  StartServer(kDefaultWatchBuffer, absl::ZeroDuration());  // Every change so far is too old.
  v1::WatchChangesRequest request;
  grpc::Status status;
  ReadUntil(request, 1, clinic_, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(status.error_message().find("oldest retained revision is 4"), std::string::npos)
      << status.error_message();
  request.set_since_revision(2);
  ReadUntil(request, 1, clinic_, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  request.set_since_revision(3);
  const int64_t revision = Upsert(Records(1, 1, "New"));
  std::vector<v1::ChangeEvent> events = ReadUntil(request, revision, clinic_);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].revision(), 4);
  // The change log was pruned; the registrant's history is the register's record, kept whole.
  v1::ListPractitionerHistoryRequest history;
  history.set_registration_id("PT-1");
  v1::ListPractitionerHistoryResponse answer;
  auto context = Context("");
  ASSERT_TRUE(Registry()->ListPractitionerHistory(context.get(), history, &answer).ok());
  ASSERT_EQ(answer.events_size(), 2);
  EXPECT_EQ(answer.events(0).revision(), 1);
  EXPECT_EQ(answer.events(1).revision(), 4);
}

// A watcher that stops reading is cut off with RESOURCE_EXHAUSTED once more than the bound of
// events waits for it; the writer goes on, and another watcher still gets everything.
TEST_F(WatchTest, SlowConsumerIsCutOff) {
  StartServer(/*watch_buffer=*/50);
  Upsert(Records(1, 1, "Start"));
  auto stuck_context = Context(clinic_);
  auto stuck = Registry()->WatchChanges(stuck_context.get(), v1::WatchChangesRequest());
  v1::ChangeEvent event;
  ASSERT_TRUE(stuck->Read(&event));  // The stream is live.
  // Large events, far more than the transport buffers hold: about 40 MB.
  std::string long_text(900, 'x');
  int64_t revision = 0;
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<v1::Practitioner> records = Records(1, 500, absl::StrCat("Batch", batch));
    for (v1::Practitioner& p : records) {
      for (int c = 0; c < 4; ++c) p.add_conditions(absl::StrCat(c, long_text));
    }
    revision = Upsert(records);
  }
  int received = 1;
  while (stuck->Read(&event)) ++received;
  grpc::Status status = stuck->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_LT(received, revision);
  // A watcher that reads gets everything.
  std::vector<v1::ChangeEvent> all = ReadUntil(v1::WatchChangesRequest(), revision, clinic_);
  EXPECT_EQ(static_cast<int64_t>(all.size()), revision);
}

// 1,000 watchers on loopback (callback reactors: no thread each), each following 5 of 100
// registrants. Every watcher receives exactly its registrants' changes; the writer's time for
// the same writes with and without them is printed (measured, not asserted).
class CountingReader : public grpc::ClientReadReactor<v1::ChangeEvent> {
 public:
  CountingReader(v1::Registry::Stub* stub, const std::string& secret,
                 const v1::WatchChangesRequest& request, int64_t until)
      : until_(until) {
    context_.AddMetadata("authorization", absl::StrCat("Bearer ", secret));
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
    stub->async()->WatchChanges(&context_, &request, this);
    StartRead(&event_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // The call is over; OnDone follows.
    {
      std::lock_guard<std::mutex> lock(mu_);
      revisions_.push_back(event_.revision());
      actors_.push_back(event_.actor());
      if (event_.revision() >= until_) {
        got_all_ = true;
        cv_.notify_all();
      }
    }
    StartRead(&event_);
  }
  void OnDone(const grpc::Status&) override {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  // The revisions received once the last one came (or the call ended).
  std::vector<int64_t> Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return got_all_ || done_; });
    return revisions_;
  }
  // The actor of each event received (after Wait).
  std::vector<std::string> actors() {
    std::lock_guard<std::mutex> lock(mu_);
    return actors_;
  }
  // Ends the call (from the test's thread, never inside a reaction) and waits for OnDone.
  void Stop() {
    context_.TryCancel();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }

 private:
  grpc::ClientContext context_;
  v1::ChangeEvent event_;
  const int64_t until_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool got_all_ = false;
  std::vector<int64_t> revisions_;
  std::vector<std::string> actors_;
};

TEST_F(WatchTest, ThousandWatchers) {
  StartServer();
  Upsert(Records(0, 100, "Initial"));  // Revisions 1-100: PT-0 .. PT-99.
  constexpr int kWrites = 200;
  // The same writes (status changes, one revision each) timed with no watcher...
  // Every registrant suspended, then authorized again: each call is one new revision.
  auto timed_writes = [&] {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kWrites; ++i) {
      SetDryNeedling(
          absl::StrCat("PT-", i % 100),
          i / 100 % 2 == 0 ? v1::Authorization::SUSPENDED : v1::Authorization::AUTHORIZED, "test");
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const double alone = timed_writes();
  const int64_t base = 100 + kWrites;
  // ...and with 1,000 live watchers.
  constexpr int kWatchers = 1000;
  const int64_t until = base + kWrites;
  std::vector<std::unique_ptr<v1::Registry::Stub>> stubs;
  for (int c = 0; c < 10; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("watch-test-channel", c);  // Ten connections, not one.
    stubs.push_back(v1::Registry::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                  grpc::InsecureChannelCredentials(), args)));
  }
  std::vector<std::unique_ptr<CountingReader>> readers;
  std::vector<std::vector<int>> watched(kWatchers);
  for (int w = 0; w < kWatchers; ++w) {
    v1::WatchChangesRequest request;
    request.set_since_revision(base);
    for (int k = 0; k < 5; ++k) {
      watched[w].push_back((w + k * 20) % 100);
      request.add_registration_ids(absl::StrCat("PT-", watched[w].back()));
    }
    // PT-(until's id) closes every stream: its last change is the last revision.
    request.add_registration_ids(absl::StrCat("PT-", (kWrites - 1) % 100));
    readers.push_back(
        std::make_unique<CountingReader>(stubs[w % stubs.size()].get(), clinic_, request, until));
  }
  // Every stream has switched to live once it holds its place on the feed; a probe write the
  // readers will all see proves nothing, so instead the writes start right away: whether a
  // watcher is still catching up or live, it must get the same events.
  const double with_watchers = timed_writes();
  for (int w = 0; w < kWatchers; ++w) {
    std::vector<int64_t> seen = readers[w]->Wait();
    std::vector<int64_t> expected;
    for (int i = 0; i < kWrites; ++i) {
      const int id = i % 100;
      bool mine = id == (kWrites - 1) % 100;
      for (int k : watched[w]) mine = mine || k == id;
      if (mine) expected.push_back(base + 1 + i);
    }
    EXPECT_EQ(seen, expected) << "watcher " << w;
  }
  for (auto& reader : readers) reader->Stop();
  std::printf("[ measured ] %d status changes: %.3f s alone, %.3f s with %d watchers (x%.2f)\n",
              kWrites, alone, with_watchers, kWatchers, with_watchers / alone);
}

// 1,000 watchers with no filter, half of them the regulator's: each receives every write,
// once and in order (the writer hands a commit to the watchers' hub once; the hub gives each
// watcher the same shared event), with the writer's key id for the regulator's only.
TEST_F(WatchTest, ThousandUnfilteredWatchersAllReceiveEveryWrite) {
  StartServer();
  const int64_t base = Upsert(Records(0, 10, "Initial"));  // Revisions 1-10.
  ASSERT_EQ(base, 10);
  std::vector<std::unique_ptr<v1::Registry::Stub>> stubs;
  for (int c = 0; c < 10; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("watch-test-channel", c);  // Ten connections, not one.
    stubs.push_back(v1::Registry::NewStub(
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->grpc_port()),
                                  grpc::InsecureChannelCredentials(), args)));
  }
  constexpr int kWatchers = 1000;
  std::vector<std::unique_ptr<CountingReader>> readers;
  v1::WatchChangesRequest request;
  request.set_since_revision(base);
  for (int w = 0; w < kWatchers; ++w) {
    readers.push_back(std::make_unique<CountingReader>(
        stubs[w % stubs.size()].get(), w % 2 == 0 ? regulator_ : clinic_, request, base + 3));
  }
  // Right away: a watcher may still be catching up or be live already; it gets the same.
  SetDryNeedling("PT-1", v1::Authorization::SUSPENDED, "one");   // base + 1
  Upsert(Records(20, 1, "New"));                                 // base + 2
  SetDryNeedling("PT-1", v1::Authorization::AUTHORIZED, "two");  // base + 3
  const std::vector<int64_t> expected = {base + 1, base + 2, base + 3};
  int complete = 0;
  for (int w = 0; w < kWatchers; ++w) {
    std::vector<int64_t> seen = readers[w]->Wait();
    EXPECT_EQ(seen, expected) << "watcher " << w;
    complete += seen == expected ? 1 : 0;
    for (const std::string& actor : readers[w]->actors()) {
      EXPECT_EQ(actor.empty(), w % 2 == 1) << "watcher " << w;
    }
  }
  EXPECT_EQ(complete, kWatchers);
  for (auto& reader : readers) reader->Stop();
}

}  // namespace
}  // namespace physioreg::service
