#include "storage/store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "physioreg/storage/v1/records.pb.h"
#include "rocksdb/db.h"
#include "storage/key_codec.h"
#include "tests/support/records.h"
#include "tests/support/temp_dir.h"

namespace physioreg::storage {
namespace {

using physioreg::testing::TempDir;
using physioreg::testing::ValidPractitioner;
using physioreg::v1::ChangeEvent;
using physioreg::v1::Practitioner;

RecordChange Change(const Practitioner& record, int64_t revision) {
  RecordChange change;
  change.record = record;
  change.record.set_revision(revision);
  change.event.set_revision(revision);
  change.event.set_registration_id(record.registration_id());
  change.event.set_kind(ChangeEvent::UPDATED);
  // The public view core makes (core::PublicView): the store keeps the private details apart.
  *change.event.mutable_practitioner() = change.record;
  change.event.mutable_practitioner()->clear_private_contact();
  return change;
}

std::unique_ptr<Store> OpenOrDie(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

// One commit of `records`, their revisions following the store's.
absl::Status CommitRecords(Store* store, const std::vector<Practitioner>& records) {
  Commit commit;
  for (const Practitioner& record : records) {
    commit.changes.push_back(Change(record, store->revision() + 1 + commit.changes.size()));
  }
  return store->Write(&commit);
}

TEST(StoreTest, EmptyRegisterStartsAtRevisionZero) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  EXPECT_EQ(store->revision(), 0);
  absl::StatusOr<std::optional<Practitioner>> missing = store->GetPractitioner("PT-1");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

TEST(StoreTest, ReopenKeepsRecordsHistoryMetaAndRevision) {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.path());
    Commit first;
    first.changes.push_back(Change(ValidPractitioner("PT-1"), 1));
    first.changes.push_back(Change(ValidPractitioner("PT-10"), 2));
    first.meta_puts.emplace_back("upsert_request/abc", "answer");
    ASSERT_TRUE(store->Write(&first).ok());
    Commit second;
    Practitioner renamed = ValidPractitioner("PT-1");
    renamed.set_family_name("Lévesque");
    second.changes.push_back(Change(renamed, 3));
    ASSERT_TRUE(store->Write(&second).ok());
  }
  auto store = OpenOrDie(dir.path());
  EXPECT_EQ(store->revision(), 3);
  auto view = store->View();
  EXPECT_EQ(view->revision(), 3);
  absl::StatusOr<std::optional<Practitioner>> pt1 =
      view->GetPractitioner("PT-1", Detail::kWithPrivate);
  ASSERT_TRUE(pt1.ok() && pt1->has_value());
  EXPECT_EQ((*pt1)->family_name(), "Lévesque");
  EXPECT_EQ((*pt1)->private_contact().email(), "helene.obrien@example.ca");

  absl::StatusOr<std::vector<ChangeEvent>> history = view->ListHistory("PT-1", 0, 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].revision(), 1);
  EXPECT_EQ((*history)[1].revision(), 3);
  // Paging: after revision 1 only revision 3 remains; PT-10's event never leaks into PT-1's.
  history = view->ListHistory("PT-1", 1, 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].revision(), 3);
  history = view->ListHistory("PT-10", 0, 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].revision(), 2);

  absl::StatusOr<std::optional<std::string>> meta = store->GetMeta("upsert_request/abc");
  ASSERT_TRUE(meta.ok() && meta->has_value());
  EXPECT_EQ(**meta, "answer");
  int count = 0;
  ASSERT_TRUE(view->ForEachPractitioner([&](const Practitioner&) { return ++count, true; }).ok());
  EXPECT_EQ(count, 2);
}

TEST(StoreTest, RejectedBatchLeavesNoTrace) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  Commit good;
  good.changes.push_back(Change(ValidPractitioner("PT-1"), 1));
  ASSERT_TRUE(store->Write(&good).ok());

  // Revision 3 would leave a gap after 1: the whole batch, PT-2 and the meta entry included,
  // must be refused.
  Commit gap;
  gap.changes.push_back(Change(ValidPractitioner("PT-2"), 2));
  gap.changes.push_back(Change(ValidPractitioner("PT-3"), 4));
  gap.meta_puts.emplace_back("upsert_request/gap", "x");
  absl::Status refused = store->Write(&gap);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInternal);

  auto check = [](Store& s) {
    EXPECT_EQ(s.revision(), 1);
    for (const char* id : {"PT-2", "PT-3"}) {
      absl::StatusOr<std::optional<Practitioner>> found = s.GetPractitioner(id);
      ASSERT_TRUE(found.ok());
      EXPECT_FALSE(found->has_value()) << id;
    }
    absl::StatusOr<std::optional<std::string>> meta = s.GetMeta("upsert_request/gap");
    ASSERT_TRUE(meta.ok());
    EXPECT_FALSE(meta->has_value());
    absl::StatusOr<std::vector<ChangeEvent>> history = s.View()->ListHistory("PT-2", 0, 10);
    ASSERT_TRUE(history.ok());
    EXPECT_TRUE(history->empty());
  };
  check(*store);
  store.reset();
  auto reopened = OpenOrDie(dir.path());
  check(*reopened);
}

TEST(StoreTest, ViewIsAPointInTime) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  Commit first;
  first.changes.push_back(Change(ValidPractitioner("PT-1"), 1));
  ASSERT_TRUE(store->Write(&first).ok());
  auto before = store->View();
  Practitioner changed = ValidPractitioner("PT-1");
  changed.set_given_name("Chloé");
  Commit second;
  second.changes.push_back(Change(changed, 2));
  ASSERT_TRUE(store->Write(&second).ok());

  EXPECT_EQ(before->revision(), 1);
  absl::StatusOr<std::optional<Practitioner>> old = before->GetPractitioner("PT-1");
  ASSERT_TRUE(old.ok() && old->has_value());
  EXPECT_EQ((*old)->given_name(), "Hélène");
  EXPECT_EQ(store->View()->revision(), 2);
}

// Commits 149 changes of PT-1 (each record carries its commit's revision, and "v<revision>"
// as its given name) while two threads read it with `read(store, completed)`, which returns
// false on a wrong read; `completed` is the last revision whose Write had returned before.
void ExpectConsistentReadsWhileCommitsRace(
    const std::function<bool(const Store&, int64_t completed)>& read) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  auto commit_revision = [&store](int64_t revision) {
    Practitioner record = ValidPractitioner("PT-1");
    record.set_given_name(absl::StrCat("v", revision));
    Commit commit;
    commit.changes.push_back(Change(record, revision));
    return store->Write(&commit);
  };
  ASSERT_TRUE(commit_revision(1).ok());
  std::atomic<int64_t> completed{1};
  std::atomic<bool> done{false};
  std::atomic<int> mismatches{0};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done.load()) {
        if (!read(*store, completed.load())) mismatches.fetch_add(1);
        reads.fetch_add(1);
      }
    });
  }
  for (int64_t revision = 2; revision <= 150; ++revision) {
    ASSERT_TRUE(commit_revision(revision).ok());
    completed.store(revision);
  }
  done.store(true);
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(mismatches.load(), 0) << "of " << reads.load() << " reads";
  EXPECT_EQ(store->View()->revision(), 150);
}

// A view's revision comes from memory unless a commit races it; either way it must be the
// revision of exactly the data its snapshot holds, never one ahead or behind.
TEST(StoreTest, ViewRevisionMatchesItsSnapshotWhileCommitsRace) {
  ExpectConsistentReadsWhileCommitsRace([](const Store& store, int64_t) {
    auto view = store.View();
    absl::StatusOr<std::optional<Practitioner>> record = view->GetPractitioner("PT-1");
    return record.ok() && record->has_value() && (*record)->revision() == view->revision();
  });
}

// The snapshot-free read (Verify's) keeps the same promise.
TEST(StoreTest, VisitWithRevisionMatchesTheRecordWhileCommitsRace) {
  ExpectConsistentReadsWhileCommitsRace([](const Store& store, int64_t) {
    bool consistent = false;
    absl::Status status = store.VisitPublicViewBytesWithRevision(
        "PT-1", [&](const absl::string_view* public_view, int64_t revision) {
          Practitioner record;
          consistent =
              public_view != nullptr &&
              record.ParseFromArray(public_view->data(), static_cast<int>(public_view->size())) &&
              record.revision() == revision;
        });
    return status.ok() && consistent;
  });
}

TEST(StoreTest, VisitWithRevisionOfAnUnknownIdGivesNullAndTheRevision) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_TRUE(
      CommitRecords(store.get(), {ValidPractitioner("PT-1"), ValidPractitioner("PT-2")}).ok());
  std::vector<std::string> seen;
  for (const char* id : {"PT-404", "PT-1"}) {
    ASSERT_TRUE(store
                    ->VisitPublicViewBytesWithRevision(
                        id,
                        [&](const absl::string_view* public_view, int64_t revision) {
                          Practitioner record;
                          if (public_view != nullptr) {
                            record.ParseFromArray(public_view->data(),
                                                  static_cast<int>(public_view->size()));
                          }
                          seen.push_back(
                              absl::StrCat(public_view == nullptr ? "-" : record.registration_id(),
                                           "@", revision));
                        })
                    .ok());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"-@2", "PT-1@2"}));
}

TEST(StoreTest, VisitPractitionersAnswersEveryIdInOrder) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  Practitioner second = ValidPractitioner("PT-2");
  second.set_family_name("Second");
  ASSERT_TRUE(CommitRecords(store.get(), {ValidPractitioner("PT-1"), second}).ok());
  auto view = store->View();
  std::vector<std::string> seen;
  absl::Status status = view->VisitPractitioners(
      {"PT-2", "PT-404", "PT-1", "PT-2"}, [&](size_t i, const Practitioner* record) {
        seen.push_back(absl::StrCat(i, ":", record == nullptr ? "-" : record->family_name()));
      });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(seen, (std::vector<std::string>{"0:Second", "1:-", "2:O'Brien-Smith", "3:Second"}));
}

// The visited record is a reused message: nothing of one registrant may show in the next.
TEST(StoreTest, VisitPractitionerReusesNothingOfThePreviousRecord) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  Practitioner plain = ValidPractitioner("PT-2");
  plain.clear_preferred_name();
  plain.clear_former_names();
  plain.clear_authorizations();
  ASSERT_TRUE(CommitRecords(store.get(), {ValidPractitioner("PT-1"), plain}).ok());
  auto view = store->View();
  std::vector<std::string> seen;
  for (const char* id : {"PT-1", "PT-2", "PT-404", "PT-1"}) {
    ASSERT_TRUE(view->VisitPractitioner(id,
                                        [&](const Practitioner* record) {
                                          seen.push_back(
                                              record == nullptr
                                                  ? "-"
                                                  : absl::StrCat(record->registration_id(), ":",
                                                                 record->preferred_name(), ":",
                                                                 record->former_names_size(), ":",
                                                                 record->authorizations_size()));
                                        })
                    .ok());
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"PT-1:Léna:1:1", "PT-2::0:0", "-", "PT-1:Léna:1:1"}));
}

// Collects the revisions a feed consumer sees, live or through catch-up.
class Recorder final : public physioreg::storage::FeedConsumer {
 public:
  void OnCommit(const std::vector<physioreg::storage::SharedEvent>& events) override {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& event : events) seen.push_back(event->revision());
  }
  void Add(int64_t revision) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(revision);
  }
  std::vector<int64_t> Seen() {
    std::lock_guard<std::mutex> lock(mu);
    return seen;
  }
  std::mutex mu;
  std::vector<int64_t> seen;
};

TEST(StoreTest, FeedDeliversEveryCommitInOrderAndNoRejectedOne) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  auto recorder = std::make_shared<Recorder>();
  ASSERT_TRUE(store->feed()
                  .Follow(
                      0, [](const ChangeEvent&) { return true; }, recorder)
                  .ok());
  Commit first;
  first.changes.push_back(Change(ValidPractitioner("PT-1"), 1));
  first.changes.push_back(Change(ValidPractitioner("PT-2"), 2));
  ASSERT_TRUE(store->Write(&first).ok());
  Commit gap;
  gap.changes.push_back(Change(ValidPractitioner("PT-3"), 9));
  ASSERT_FALSE(store->Write(&gap).ok());
  Commit next;
  next.changes.push_back(Change(ValidPractitioner("PT-3"), 3));
  ASSERT_TRUE(store->Write(&next).ok());
  EXPECT_EQ(recorder->Seen(), (std::vector<int64_t>{1, 2, 3}));
  store->feed().Leave(recorder.get());
  EXPECT_EQ(store->feed().live_consumers(), 0u);
}

// The writer assigns revisions: changes that state none get the next ones, in the record, the
// event and the event's public view alike.
TEST(StoreTest, WriterAssignsRevisions) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  for (int round = 0; round < 2; ++round) {
    Commit commit;
    commit.changes.push_back(Change(ValidPractitioner("PT-1"), 0));
    commit.changes.push_back(Change(ValidPractitioner("PT-2"), 0));
    ASSERT_TRUE(store->Write(&commit).ok());
    for (int i = 0; i < 2; ++i) {
      const int64_t expected = round * 2 + i + 1;
      EXPECT_EQ(commit.changes[i].record.revision(), expected);
      // The event went to the feed (moved, not copied); what was stored carries the revision.
      absl::StatusOr<std::vector<ChangeEvent>> logged = store->ReadChanges(expected - 1, 1);
      ASSERT_TRUE(logged.ok()) << logged.status();
      ASSERT_EQ(logged->size(), 1u);
      EXPECT_EQ((*logged)[0].revision(), expected);
      EXPECT_EQ((*logged)[0].practitioner().revision(), expected);
    }
    auto stored = store->GetPractitioner("PT-2");
    ASSERT_TRUE(stored.ok() && stored->has_value());
    EXPECT_EQ((*stored)->revision(), round * 2 + 2);
  }
  absl::StatusOr<std::vector<ChangeEvent>> log = store->ReadChanges(1, 10);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->size(), 3u);
  EXPECT_EQ((*log)[0].revision(), 2);
  EXPECT_EQ((*log)[2].revision(), 4);
  EXPECT_EQ((*log)[2].registration_id(), "PT-2");
}

// Followers that start at different points while a writer commits see every revision once,
// in order: catch-up from the change log, then live, with no gap or duplicate at the switch.
TEST(StoreTest, FollowersSeeNoGapAndNoDuplicateUnderConcurrentWrites) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  constexpr int kCommits = 600;
  std::atomic<int> committed{0};
  std::thread writer([&] {
    for (int i = 0; i < kCommits; ++i) {
      Commit commit;
      commit.changes.push_back(Change(ValidPractitioner(absl::StrCat("PT-", i % 7 + 1)), 0));
      if (i % 3 == 0) {
        commit.changes.push_back(Change(ValidPractitioner(absl::StrCat("PT-", i % 5 + 10)), 0));
      }
      ASSERT_TRUE(store->Write(&commit).ok());
      committed.fetch_add(1);
    }
  });
  std::vector<std::shared_ptr<Recorder>> recorders;
  std::vector<int64_t> starts;
  for (int f = 0; f < 6; ++f) {
    // Wait for some commits (no sleeping: each follower starts at a later point).
    while (committed.load() < f * kCommits / 8) std::this_thread::yield();
    auto recorder = std::make_shared<Recorder>();
    const int64_t after = f % 2 == 0 ? 0 : store->revision() / 2;
    starts.push_back(after);
    ASSERT_TRUE(store->feed()
                    .Follow(
                        after,
                        [&](const ChangeEvent& e) {
                          recorder->Add(e.revision());
                          return true;
                        },
                        recorder)
                    .ok());
    recorders.push_back(recorder);
  }
  writer.join();
  const int64_t last = store->revision();
  EXPECT_GT(last, kCommits);
  for (size_t f = 0; f < recorders.size(); ++f) {
    std::vector<int64_t> expected;
    for (int64_t r = starts[f] + 1; r <= last; ++r) expected.push_back(r);
    EXPECT_EQ(recorders[f]->Seen(), expected) << "follower " << f;
  }
}

// Retention finds the first change at or after a time by binary search over the change log.
TEST(StoreTest, FirstRevisionSinceATime) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  EXPECT_EQ(*store->FirstRevisionSince(0), 1);  // Empty: the next revision.
  for (int64_t seconds : {100, 200, 200, 300, 400}) {
    Commit commit;
    commit.changes.push_back(Change(ValidPractitioner("PT-1"), 0));
    commit.changes.back().event.mutable_change_time()->set_seconds(seconds);
    ASSERT_TRUE(store->Write(&commit).ok());
  }
  auto first = [&](int64_t seconds) { return *store->FirstRevisionSince(seconds * 1'000'000); };
  EXPECT_EQ(first(0), 1);
  EXPECT_EQ(first(100), 1);
  EXPECT_EQ(first(101), 2);
  EXPECT_EQ(first(200), 2);
  EXPECT_EQ(first(250), 4);
  EXPECT_EQ(first(400), 5);
  EXPECT_EQ(first(401), 6);  // Every change is older.
}

TEST(StoreTest, MetaOnlyCommitKeepsRevision) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  Commit meta;
  meta.meta_puts.emplace_back("api_key/a", "1");
  meta.meta_puts.emplace_back("api_key/b", "2");
  meta.meta_puts.emplace_back("other/c", "3");
  ASSERT_TRUE(store->Write(&meta).ok());
  EXPECT_EQ(store->revision(), 0);
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> keys =
      store->ListMeta("api_key/");
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].first, "api_key/a");
  EXPECT_EQ((*keys)[1].second, "2");
}

TEST(StoreTest, SecondOpenOfTheSameDirectoryFailsClearly) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  absl::StatusOr<std::unique_ptr<Store>> second = Store::Open(dir.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use"), absl::string_view::npos) << second.status();
}

TEST(StoreTest, UnusableDirectoryFailsClearly) {
  TempDir dir;
  const std::string file = dir.Sub("not-a-directory");
  FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(file + "/data");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("not-a-directory"), absl::string_view::npos)
      << store.status();
}

TEST(StoreTest, PublicReadsNeverCarryPrivateDetailsWholeReadsDo) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  Practitioner record = ValidPractitioner("PT-7");
  ASSERT_TRUE(record.has_private_contact());
  Commit commit;
  commit.changes.push_back(Change(record, 0));
  ASSERT_TRUE(store->Write(&commit).ok());
  const Practitioner& stored = commit.changes.back().record;  // Revision set by the writer.

  absl::StatusOr<std::optional<Practitioner>> public_view = store->GetPractitioner("PT-7");
  ASSERT_TRUE(public_view.ok() && public_view->has_value());
  EXPECT_FALSE((*public_view)->has_private_contact());
  EXPECT_EQ((*public_view)->given_name(), record.given_name());
  EXPECT_EQ((*public_view)->revision(), 1);

  absl::StatusOr<std::optional<Practitioner>> whole =
      store->GetPractitioner("PT-7", Detail::kWithPrivate);
  ASSERT_TRUE(whole.ok() && whole->has_value());
  EXPECT_EQ((*whole)->SerializeAsString(), stored.SerializeAsString());

  Practitioner into;
  ASSERT_TRUE(*store->GetPractitionerInto("PT-7", &into));
  EXPECT_FALSE(into.has_private_contact());
  std::unique_ptr<ReadView> view = store->View();
  ASSERT_TRUE(view->VisitPractitioner("PT-7",
                                      [](const Practitioner* p) {
                                        ASSERT_NE(p, nullptr);
                                        EXPECT_FALSE(p->has_private_contact());
                                      })
                  .ok());
  ASSERT_TRUE(view->ForEachPractitioner([](const Practitioner& p) {
                    EXPECT_FALSE(p.has_private_contact());
                    return true;
                  })
                  .ok());
  std::unique_ptr<ReadView::Cursor> cursor = view->Practitioners();
  ASSERT_TRUE(cursor->Valid());
  EXPECT_FALSE(cursor->Read()->has_private_contact());
  EXPECT_EQ(cursor->Read(Detail::kWithPrivate)->private_contact().email(),
            record.private_contact().email());
}

TEST(StoreTest, PublicViewBytesAreTheStoredPublicViewAndNeverThePrivateDetails) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  Practitioner record = ValidPractitioner("PT-7");
  ASSERT_TRUE(record.has_private_contact());
  Commit commit;
  commit.changes.push_back(Change(record, 0));
  ASSERT_TRUE(store->Write(&commit).ok());

  std::string bytes;
  absl::StatusOr<bool> found =
      store->VisitPublicViewBytes("PT-7", [&](absl::string_view b) { bytes = std::string(b); });
  ASSERT_TRUE(found.ok() && *found) << found.status();
  Practitioner parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  absl::StatusOr<std::optional<Practitioner>> public_view = store->GetPractitioner("PT-7");
  ASSERT_TRUE(public_view.ok() && public_view->has_value());
  EXPECT_EQ(parsed.SerializeAsString(), (*public_view)->SerializeAsString());
  EXPECT_FALSE(parsed.has_private_contact());
  EXPECT_EQ(bytes.find(record.private_contact().email()), std::string::npos);

  bool called = false;
  found = store->VisitPublicViewBytes("PT-8", [&](absl::string_view) { called = true; });
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(*found);
  EXPECT_FALSE(called);
}

// Every read of a public view by id, as the registry makes them: Get's, Verify's (with the
// revision), BatchVerify's (through a view, the id twice) and the HTTP gateway's Get (parsed);
// "<none>" when the registrant is unknown.
std::vector<std::string> GivenNamesReadById(const Store& store, const std::string& id) {
  auto given_name = [](const absl::string_view* public_view) -> std::string {
    if (public_view == nullptr) return "<none>";
    Practitioner parsed;
    if (!parsed.ParseFromArray(public_view->data(), static_cast<int>(public_view->size()))) {
      return "<unparsable>";
    }
    return parsed.given_name();
  };
  std::vector<std::string> names;
  absl::StatusOr<bool> found = store.VisitPublicViewBytes(
      id, [&](absl::string_view bytes) { names.push_back(given_name(&bytes)); });
  EXPECT_TRUE(found.ok()) << found.status();
  if (found.ok() && !*found) names.push_back("<none>");
  EXPECT_TRUE(
      store
          .VisitPublicViewBytesWithRevision(id, [&](const absl::string_view* view,
                                                    int64_t) { names.push_back(given_name(view)); })
          .ok());
  EXPECT_TRUE(store.View()
                  ->VisitPublicViewsBytes({id, id},
                                          [&](size_t, const absl::string_view* view) {
                                            names.push_back(given_name(view));
                                          })
                  .ok());
  Practitioner parsed;
  absl::StatusOr<bool> into = store.GetPractitionerInto(id, &parsed);
  EXPECT_TRUE(into.ok()) << into.status();
  names.push_back(into.ok() && *into ? parsed.given_name() : "<none>");
  return names;
}

std::vector<std::string> Times(int n, const std::string& name) {
  return std::vector<std::string>(n, name);
}

// Reads by id go through the view cache: a record read (so held there) and then changed or
// deleted must read as changed, however many times it was read before, with a cache or with
// one too small to keep anything, and from a table file or the memtable.
TEST(StoreTest, ReadsByIdSeeEveryChangeAfterCachedReads) {
  Practitioner first = ValidPractitioner("PT-9");
  first.set_given_name("Ada");
  StoreOptions uncached;
  uncached.view_cache_bytes = 1;  // Too small to keep anything: reads the same.
  for (const StoreOptions& options : {StoreOptions(), uncached}) {
    TempDir dir;
    {
      auto store = OpenOrDie(dir.path());
      Commit commit;
      commit.changes.push_back(Change(first, 0));
      ASSERT_TRUE(store->Write(&commit).ok());
    }  // Closing flushes: the record is now in a table file.
    absl::StatusOr<std::unique_ptr<Store>> opened = Store::Open(dir.path(), options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    Store& store = **opened;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(GivenNamesReadById(store, "PT-9"), Times(5, "Ada"));
    Practitioner second = first;
    second.set_given_name("Grace");
    Commit update;
    update.changes.push_back(Change(second, store.revision() + 1));
    ASSERT_TRUE(store.Write(&update).ok());
    for (int i = 0; i < 3; ++i) EXPECT_EQ(GivenNamesReadById(store, "PT-9"), Times(5, "Grace"));
    Commit deletion;
    deletion.changes.emplace_back();
    deletion.changes.back().event.set_registration_id("PT-9");
    deletion.changes.back().event.set_kind(ChangeEvent::DELETED);
    ASSERT_TRUE(store.Write(&deletion).ok());
    EXPECT_EQ(GivenNamesReadById(store, "PT-9"), Times(5, "<none>"));
    Commit again;
    again.changes.push_back(Change(first, store.revision() + 1));
    ASSERT_TRUE(store.Write(&again).ok());
    EXPECT_EQ(GivenNamesReadById(store, "PT-9"), Times(5, "Ada"));
  }
}

// Once Write has returned, no read by id may give what was there before, even one that
// raced the commit and filled the cache with the older value just as it landed.
TEST(StoreTest, ReadsByIdNeverGoBackBehindACompletedWrite) {
  ExpectConsistentReadsWhileCommitsRace([](const Store& store, int64_t completed) {
    for (const std::string& name : GivenNamesReadById(store, "PT-1")) {
      int64_t revision = 0;
      if (name.size() < 2 || !absl::SimpleAtoi(name.substr(1), &revision) || revision < completed) {
        return false;
      }
    }
    return true;
  });
}

// BatchVerify's read keeps a view's promise too, with the cache answering some of the ids.
TEST(StoreTest, BatchedViewsMatchTheViewRevisionWhileCommitsRace) {
  ExpectConsistentReadsWhileCommitsRace([](const Store& store, int64_t) {
    auto view = store.View();
    int consistent = 0;
    absl::Status status = view->VisitPublicViewsBytes(
        {"PT-1", "PT-404", "PT-1"}, [&](size_t i, const absl::string_view* public_view) {
          Practitioner record;
          if (i == 1) {
            consistent += public_view == nullptr;
          } else {
            consistent +=
                public_view != nullptr &&
                record.ParseFromArray(public_view->data(), static_cast<int>(public_view->size())) &&
                record.revision() == view->revision();
          }
        });
    return status.ok() && consistent == 3;
  });
}

TEST(StoreTest, WhichAreStoredAnswersEveryIdInOrder) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_TRUE(
      CommitRecords(store.get(), {ValidPractitioner("PT-1"), ValidPractitioner("PT-3")}).ok());
  absl::StatusOr<std::vector<char>> stored =
      store->View()->WhichAreStored({"PT-3", "PT-2", "PT-1", "PT-3", "pt-1"});
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(*stored, (std::vector<char>{1, 0, 1, 1, 0}));
  EXPECT_TRUE(store->View()->WhichAreStored({})->empty());
}

TEST(StoreTest, APublicViewCutShortIsDataLoss) {
  Practitioner public_view = ValidPractitioner("PT-7");
  public_view.clear_private_contact();
  std::string cut = public_view.SerializeAsString();
  cut.resize(cut.size() - 3);
  std::string bad_value;
  bad_value.push_back(0x08);  // format_version = 1
  bad_value.push_back(0x01);
  bad_value.push_back(0x12);                    // public_view, length-delimited
  for (size_t n = cut.size(); true; n >>= 7) {  // its length, a varint
    if (n < 0x80) {
      bad_value.push_back(static_cast<char>(n));
      break;
    }
    bad_value.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  bad_value += cut;
  Practitioner partial;
  EXPECT_EQ(DecodeRegistrant(bad_value, Detail::kPublic, &partial).code(),
            absl::StatusCode::kDataLoss);
}

TEST(StoreTest, AChangeWithoutAPublicViewIsRefusedAndWritesNothing) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  Commit leaky;
  leaky.changes.push_back(Change(ValidPractitioner("PT-7"), 0));
  *leaky.changes.back().event.mutable_practitioner() = leaky.changes.back().record;
  EXPECT_EQ(store->Write(&leaky).code(), absl::StatusCode::kInternal);
  Commit missing;
  missing.changes.push_back(Change(ValidPractitioner("PT-7"), 0));
  missing.changes.back().event.clear_practitioner();
  EXPECT_EQ(store->Write(&missing).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(store->revision(), 0);
  EXPECT_FALSE(store->GetPractitioner("PT-7")->has_value());
}

TEST(StoreTest, RegistrantValueIsARegistrantRecordOfFormatOne) {
  Practitioner record = ValidPractitioner("PT-7");
  Practitioner public_view = record;
  public_view.clear_private_contact();
  const std::string value = EncodeRegistrant(record, public_view);
  physioreg::storage::v1::RegistrantRecord parsed;
  ASSERT_TRUE(parsed.ParseFromString(value));
  EXPECT_EQ(parsed.format_version(), 1u);
  EXPECT_EQ(parsed.public_view().SerializeAsString(), public_view.SerializeAsString());
  EXPECT_EQ(parsed.private_details().email(), record.private_contact().email());
  EXPECT_EQ(parsed.private_details().phone(), record.private_contact().phone());

  // Written by the generated class (with a field a later format-1 writer might add): the same.
  parsed.GetReflection()->MutableUnknownFields(&parsed)->AddVarint(99, 7);
  Practitioner decoded;
  ASSERT_TRUE(DecodeRegistrant(parsed.SerializeAsString(), Detail::kWithPrivate, &decoded).ok());
  EXPECT_EQ(decoded.SerializeAsString(), record.SerializeAsString());
  ASSERT_TRUE(DecodeRegistrant(value, Detail::kPublic, &decoded).ok());
  EXPECT_EQ(decoded.SerializeAsString(), public_view.SerializeAsString());

  // Set but empty private details come back as set.
  record.mutable_private_contact()->Clear();
  ASSERT_TRUE(
      DecodeRegistrant(EncodeRegistrant(record, public_view), Detail::kWithPrivate, &decoded).ok());
  EXPECT_TRUE(decoded.has_private_contact());
}

TEST(StoreTest, UnknownFormatsAndMalformedValuesAreDataLossNeverMisread) {
  Practitioner public_view = ValidPractitioner("PT-7");
  public_view.clear_private_contact();
  physioreg::storage::v1::RegistrantRecord newer;
  newer.set_format_version(2);
  *newer.mutable_public_view() = public_view;
  Practitioner out;
  absl::Status status = DecodeRegistrant(newer.SerializeAsString(), Detail::kPublic, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("format 2"), absl::string_view::npos) << status;
  // A bare physioreg.v1.Practitioner (what was stored before format 1) has no format.
  EXPECT_EQ(DecodeRegistrant(public_view.SerializeAsString(), Detail::kPublic, &out).code(),
            absl::StatusCode::kDataLoss);
  const std::string value = EncodeRegistrant(public_view, public_view);
  for (size_t cut : {size_t{1}, size_t{3}, value.size() / 2, value.size() - 1}) {
    EXPECT_EQ(DecodeRegistrant(value.substr(0, cut), Detail::kPublic, &out).code(),
              absl::StatusCode::kDataLoss)
        << cut;
  }
  EXPECT_EQ(DecodeRegistrant("", Detail::kPublic, &out).code(), absl::StatusCode::kDataLoss);
}

// Writes raw entries into a data directory's database, as another build of physioreg would.
void WriteRaw(const std::string& path, const std::vector<std::string>& families,
              const std::vector<std::pair<std::string, std::string>>& meta) {
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : families)
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, path + "/db", descriptors, &handles, &db).ok());
  rocksdb::ColumnFamilyHandle* meta_family = handles.back();
  for (const auto& [key, value] : meta) {
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), meta_family, key, value).ok());
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle);
  delete db;
}

std::string Int64Value(int64_t value) {
  std::string out;
  AppendInt64(&out, value);
  return out;
}

TEST(StoreTest, DirectoriesOfAnotherStorageFormatAreRefusedClearly) {
  {
    TempDir dir;  // The layout before format 1.
    WriteRaw(dir.path(), {"default", "registrants", "change_log", "history_index", "meta"},
             {{"revision", Int64Value(5)}});
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.path());
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(store.status().message().find("history_index"), absl::string_view::npos)
        << store.status();
  }
  {
    TempDir dir;  // Today's families, but records written before the format was stamped.
    WriteRaw(dir.path(), {"default", "registrants", "change_log", "history", "meta"},
             {{"revision", Int64Value(5)}});
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.path());
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(store.status().message().find("export"), absl::string_view::npos) << store.status();
  }
  {
    TempDir dir;  // A newer build's format.
    WriteRaw(dir.path(), {"default", "registrants", "change_log", "history", "meta"},
             {{"storage_format", Int64Value(2)}});
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.path());
    ASSERT_FALSE(store.ok());
    EXPECT_NE(store.status().message().find("format 2"), absl::string_view::npos) << store.status();
  }
  {
    TempDir dir;  // A new register is stamped and opens again.
    { auto store = OpenOrDie(dir.path()); }
    auto store = OpenOrDie(dir.path());
    EXPECT_EQ(*store->GetMeta(kStorageFormatMetaKey), Int64Value(kStorageFormat));
  }
}

// Reads one raw value of a closed data directory.
std::string ReadRaw(const std::string& path, ColumnFamily family, const std::string& key) {
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name : kColumnFamilyNames) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  std::string value = "<missing>";
  if (rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), path + "/db", descriptors, &handles, &db)
          .ok()) {
    rocksdb::Status s =
        db->Get(rocksdb::ReadOptions(), handles[static_cast<size_t>(family)], key, &value);
    if (!s.ok()) value = "<" + s.ToString() + ">";
    for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle);
    delete db;
  }
  return value;
}

// The import serializes a new registrant's view ahead, without the revision and update_time
// the writer sets (RecordChange::public_view_head): the stored bytes are still exactly what
// protobuf writes for the final view.
TEST(StoreTest, AViewSerializedAheadIsStoredAsProtobufSerializesTheView) {
  TempDir dir;
  std::vector<SharedEvent> published;
  Practitioner record = ValidPractitioner("PT-7");
  record.mutable_private_contact()->set_email("b@example.org");
  {
    auto store = OpenOrDie(dir.path());
    Commit commit;
    for (int i = 0; i < 2; ++i) {  // The second without an update time.
      RecordChange change = Change(record, 0);
      change.event.mutable_practitioner()->set_registration_id(absl::StrCat("PT-7", i));
      change.event.set_registration_id(absl::StrCat("PT-7", i));
      change.record.set_registration_id(absl::StrCat("PT-7", i));
      change.event.mutable_practitioner()->clear_update_time();
      change.public_view_head = change.event.practitioner().SerializeAsString();
      if (i == 0) {
        change.event.mutable_practitioner()->mutable_update_time()->set_seconds(1700000123);
        change.event.mutable_practitioner()->mutable_update_time()->set_nanos(456);
      }
      commit.changes.push_back(std::move(change));
    }
    ASSERT_TRUE(store->Write(&commit).ok());
    published = commit.published;
  }
  ASSERT_EQ(published.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const std::string id = absl::StrCat("PT-7", i);
    const Practitioner& view = published[i]->practitioner();
    EXPECT_EQ(view.revision(), i + 1);
    EXPECT_EQ(view.has_update_time(), i == 0);
    EXPECT_EQ(ReadRaw(dir.path(), ColumnFamily::kHistory, HistoryKey(id, i + 1)),
              published[i]->SerializeAsString());
    Practitioner whole = view;
    *whole.mutable_private_contact() = record.private_contact();
    EXPECT_EQ(ReadRaw(dir.path(), ColumnFamily::kRegistrants, RegistrantKey(id)),
              EncodeRegistrant(whole, view));
  }
}

TEST(StoreTest, StoresEachEventAndRecordAsProtobufSerializesThem) {
  TempDir dir;
  std::vector<SharedEvent> published;
  Practitioner record = ValidPractitioner("PT-1");
  record.mutable_private_contact()->set_email("a@example.org");
  {
    auto store = OpenOrDie(dir.path());
    Commit commit;
    commit.changes.push_back(Change(record, 1));
    ChangeEvent& created = commit.changes.back().event;
    created.set_kind(ChangeEvent::CREATED);
    created.set_actor("key-1");
    created.mutable_change_time()->set_seconds(1700000000);
    created.add_changed_activities(physioreg::v1::DRY_NEEDLING);
    created.add_changed_activities(physioreg::v1::SPINAL_MANIPULATION);
    RecordChange deleted;
    deleted.event.set_registration_id("PT-1");
    deleted.event.set_kind(ChangeEvent::DELETED);
    deleted.event.add_changed_activities(physioreg::v1::DRY_NEEDLING);
    commit.changes.push_back(std::move(deleted));
    RecordChange plain = Change(ValidPractitioner("PT-2"), 3);  // No changed activities.
    commit.changes.push_back(std::move(plain));
    ASSERT_TRUE(store->Write(&commit).ok());
    published = commit.published;
  }
  ASSERT_EQ(published.size(), 3u);
  EXPECT_EQ(published[0]->changed_activities_size(), 2);
  EXPECT_EQ(published[0]->practitioner().revision(), 1);
  EXPECT_EQ(ReadRaw(dir.path(), ColumnFamily::kHistory, HistoryKey("PT-1", 1)),
            published[0]->SerializeAsString());
  EXPECT_EQ(ReadRaw(dir.path(), ColumnFamily::kHistory, HistoryKey("PT-1", 2)),
            published[1]->SerializeAsString());
  EXPECT_EQ(ReadRaw(dir.path(), ColumnFamily::kHistory, HistoryKey("PT-2", 3)),
            published[2]->SerializeAsString());
  Practitioner second = ValidPractitioner("PT-2");
  second.set_revision(3);
  Practitioner second_view = published[2]->practitioner();
  EXPECT_EQ(ReadRaw(dir.path(), ColumnFamily::kRegistrants, RegistrantKey("PT-2")),
            EncodeRegistrant(second, second_view));
}

TEST(StoreTest, PruningTheChangeLogKeepsEveryHistoryAndSurvivesAReopen) {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.path());
    for (int i = 1; i <= 5; ++i) {
      Commit commit;
      commit.changes.push_back(Change(ValidPractitioner(i % 2 == 1 ? "PT-1" : "PT-2"), 0));
      commit.changes.back().event.mutable_change_time()->set_seconds(i * 100);
      ASSERT_TRUE(store->Write(&commit).ok());
    }
    EXPECT_EQ(store->PruneChangeLog(7).code(), absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE(store->PruneChangeLog(3).ok());
    ASSERT_TRUE(store->PruneChangeLog(2).ok());  // Never backwards.
    EXPECT_EQ(store->change_log_start(), 3);
    EXPECT_EQ(store->feed().oldest_retained(), 3);
  }
  auto store = OpenOrDie(dir.path());
  EXPECT_EQ(store->change_log_start(), 3);
  EXPECT_EQ(store->feed().oldest_retained(), 3);
  absl::StatusOr<std::vector<ChangeEvent>> pruned = store->ReadChanges(1, 10);
  EXPECT_EQ(pruned.status().code(), absl::StatusCode::kOutOfRange);
  absl::StatusOr<std::vector<ChangeEvent>> kept = store->ReadChanges(2, 10);
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_EQ(kept->size(), 3u);
  EXPECT_EQ((*kept)[0].revision(), 3);
  EXPECT_EQ((*kept)[0].registration_id(), "PT-1");
  EXPECT_EQ((*kept)[2].revision(), 5);
  // Histories are the register's record: nothing of them is pruned.
  absl::StatusOr<std::vector<ChangeEvent>> history = store->View()->ListHistory("PT-1", 0, 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[0].revision(), 1);
  // Times are searched among the kept changes only.
  EXPECT_EQ(*store->FirstRevisionSince(0), 3);
  EXPECT_EQ(*store->FirstRevisionSince(401 * 1'000'000), 5);
  ASSERT_TRUE(store->PruneChangeLog(6).ok());  // Everything: followers start at the head.
  EXPECT_TRUE(store->ReadChanges(5, 10)->empty());
  EXPECT_EQ(*store->FirstRevisionSince(0), 6);
}

}  // namespace
}  // namespace physioreg::storage
