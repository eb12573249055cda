#include "storage/view_cache.h"

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace physioreg::storage {
namespace {

// The writer's sequence lock, as Store keeps it: even while no commit is being applied.
std::atomic<uint64_t> steady{0};

std::string Held(ViewCache& cache, absl::string_view id) {
  ViewCache::Pinned pinned = cache.Lookup(id);
  return pinned ? std::string(pinned.view()) : "<none>";
}

TEST(ViewCacheTest, HoldsReplacesAndErases) {
  ViewCache cache(1 << 20);
  EXPECT_EQ(Held(cache, "PT-1"), "<none>");
  cache.InsertIfUnchanged("PT-1", "first", steady, 0);
  cache.InsertIfUnchanged("PT-2", "", steady, 0);  // An empty view is a view.
  EXPECT_EQ(Held(cache, "PT-1"), "first");
  EXPECT_EQ(Held(cache, "PT-2"), "");
  EXPECT_EQ(Held(cache, "PT-"), "<none>");
  EXPECT_EQ(Held(cache, "PT-10"), "<none>");
  cache.InsertIfUnchanged("PT-1", "second", steady, 0);
  EXPECT_EQ(Held(cache, "PT-1"), "second");
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.charge(), 4 + 6 + 4 + 0 + 2 * ViewCache::kEntryOverhead);
  cache.Erase("PT-1");
  cache.Erase("PT-404");  // Not held: nothing happens.
  EXPECT_EQ(Held(cache, "PT-1"), "<none>");
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.charge(), 4 + ViewCache::kEntryOverhead);
}

TEST(ViewCacheTest, RefusesAnInsertOnceTheGenerationMoved) {
  ViewCache cache(1 << 20);
  std::atomic<uint64_t> generation{4};
  cache.InsertIfUnchanged("PT-1", "read at 2", generation, 2);
  EXPECT_EQ(Held(cache, "PT-1"), "<none>");
  cache.InsertIfUnchanged("PT-1", "read at 4", generation, 4);
  EXPECT_EQ(Held(cache, "PT-1"), "read at 4");
  generation = 5;  // A commit in progress: a value read before it does not replace the entry.
  cache.InsertIfUnchanged("PT-1", "read at 4, late", generation, 4);
  EXPECT_EQ(Held(cache, "PT-1"), "read at 4");
}

TEST(ViewCacheTest, APinnedViewOutlivesItsEntry) {
  ViewCache cache(1 << 20);
  cache.InsertIfUnchanged("PT-1", std::string(1000, 'a'), steady, 0);
  ViewCache::Pinned pinned = cache.Lookup("PT-1");
  ASSERT_TRUE(pinned);
  cache.InsertIfUnchanged("PT-1", "replaced", steady, 0);
  cache.Erase("PT-1");
  EXPECT_EQ(pinned.view(), std::string(1000, 'a'));
  ViewCache::Pinned moved = std::move(pinned);
  EXPECT_EQ(moved.view(), std::string(1000, 'a'));
}

TEST(ViewCacheTest, StaysWithinItsBudgetAndKeepsWhatIsRead) {
  // 16 shards of 4 KiB: room for about 12 entries of 200 bytes per shard.
  ViewCache cache(16 * 4096);
  const std::string view(200, 'v');
  // Read often: these should survive the churn below (the clock spares what was read).
  std::vector<std::string> hot;
  for (int i = 0; i < 16; ++i) hot.push_back(absl::StrCat("HOT-", i));
  for (const std::string& id : hot) cache.InsertIfUnchanged(id, view, steady, 0);
  for (int i = 0; i < 5000; ++i) {
    for (const std::string& id : hot) EXPECT_EQ(Held(cache, id), view) << id << " at " << i;
    cache.InsertIfUnchanged(absl::StrCat("COLD-", i), view, steady, 0);
    ASSERT_LE(cache.charge(), 16u * 4096);
  }
  EXPECT_GT(cache.size(), 16u * 8);
  // A view larger than a shard's budget is never held, and evicts nothing.
  const size_t before = cache.size();
  cache.InsertIfUnchanged("BIG", std::string(5000, 'b'), steady, 0);
  EXPECT_EQ(Held(cache, "BIG"), "<none>");
  EXPECT_EQ(cache.size(), before);
}

TEST(ViewCacheTest, ACacheOfNothingHoldsNothing) {
  ViewCache cache(0);
  cache.InsertIfUnchanged("PT-1", "view", steady, 0);
  EXPECT_EQ(Held(cache, "PT-1"), "<none>");
  EXPECT_EQ(cache.size(), 0u);
}

// Readers, fillers and erasers on the same few ids: every view read is one that was inserted
// for that id, whole, and the budget holds throughout (the sanitizer builds check the rest).
TEST(ViewCacheTest, ConcurrentReadsFillsAndErasesStayWhole) {
  ViewCache cache(16 * 2048);
  std::atomic<int> bad{0};
  auto view_of = [](int id, int version) {
    return absl::StrCat("id ", id, " version ", version, std::string(100 + id, 'x'));
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int step = 0; step < 50000; ++step) {
        const int id = static_cast<int>(rng() % 64);
        const std::string key = absl::StrCat("PT-", id);
        switch (rng() % 3) {
          case 0: {
            ViewCache::Pinned pinned = cache.Lookup(key);
            if (!pinned) break;
            const std::string view(pinned.view());
            bool known = false;
            for (int v = 0; v < 8 && !known; ++v) known = view == view_of(id, v);
            if (!known) ++bad;
            break;
          }
          case 1:
            cache.InsertIfUnchanged(key, view_of(id, static_cast<int>(rng() % 8)), steady, 0);
            break;
          default:
            cache.Erase(key);
        }
        if (cache.charge() > 16 * 2048) ++bad;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace physioreg::storage
