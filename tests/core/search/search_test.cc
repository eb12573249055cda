// SearchPractitioners over a real Registry + Store in a temp dir, the index attached as in
// physioregd: semantics table, paging, paging under concurrent writes, bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/time/civil_time.h"
#include "service/core/registry.h"
#include "service/core/search/index.h"
#include "service/core/search/query.h"
#include "service/core/validation.h"
#include "service/core/verification.h"
#include "tests/support/bad_request.h"
#include "tests/support/fixed_registry.h"
#include "tests/support/records.h"
#include "tests/support/temp_dir.h"
#include "tools/generator/generator.h"

namespace physioreg::search {
namespace {

using physioreg::testing::TempDir;
using physioreg::testing::ValidPractitioner;
using physioreg::testing::ViolationFields;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
namespace v1 = physioreg::v1;

constexpr char kToday[] = "2026-11-25";

v1::Practitioner Person(const std::string& id, const std::string& given, const std::string& family,
                        const std::string& city, double lat, double lng) {
  v1::Practitioner p = ValidPractitioner(id);
  p.set_given_name(given);
  p.set_family_name(family);
  p.clear_preferred_name();
  p.clear_former_names();
  p.clear_languages();
  p.add_languages("English");
  p.mutable_locations(0)->set_city(city);
  p.mutable_locations(0)->set_postal_code("X0X 0X0");
  p.mutable_locations(0)->set_latitude(lat);
  p.mutable_locations(0)->set_longitude(lng);
  return p;
}

class SearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(physioreg::testing::OpenFixedClockRegistry(dir_, &store_, &registry_));
    ASSERT_TRUE(index_.Attach(store_.get()).ok());
    searcher_ = std::make_unique<Searcher>(&index_, store_.get());
  }

  void Upsert(std::vector<v1::Practitioner> records, bool allow_status_lift = false) {
    for (size_t start = 0; start < records.size(); start += core::kMaxRecordsPerRequest) {
      v1::UpsertPractitionersRequest request;
      request.set_allow_status_lift(allow_status_lift);
      for (size_t i = start; i < records.size() && i < start + core::kMaxRecordsPerRequest; ++i) {
        *request.add_practitioners() = records[i];
      }
      absl::StatusOr<v1::UpsertPractitionersResponse> r = registry_->Upsert(request, "k1");
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }

  // A small register covering each rule (all but PT-3 and PT-8 are GENERAL, ACTIVE, DRY_NEEDLING
  // authorized since 2019 through ValidPractitioner, unless changed below).
  void UpsertTable() {
    v1::Practitioner helene = ValidPractitioner("PT-1");  // Hélène O'Brien-Smith, Calgary.
    v1::Practitioner john = Person("PT-2", "John", "Smith", "Edmonton", 53.5461, -113.4938);
    v1::Practitioner jon = Person("PT-3", "Jon", "Smyth", "Toronto", 43.6532, -79.3832);
    jon.mutable_permit()->set_register_(v1::PROVISIONAL);
    jon.clear_authorizations();
    v1::Practitioner wang = Person("PT-4", "小明", "王", "Vancouver", 49.2827, -123.1207);
    wang.add_languages("Mandarin");
    wang.mutable_authorizations(0)->set_status(v1::Authorization::SUSPENDED);
    v1::Practitioner gurpreet = Person("PT-5", "ਗੁਰਪ੍ਰੀਤ", "Singh", "calgary", 51.08, -114.10);
    gurpreet.mutable_permit()->set_register_(v1::COURTESY);
    gurpreet.mutable_authorizations(0)->set_expires_on("2026-01-01");
    v1::Practitioner soren = Person("PT-6", "Søren", "Nørgaard", "Montréal", 45.5019, -73.5674);
    soren.add_languages("Français");
    soren.mutable_permit()->set_status(v1::Permit::SUSPENDED);
    v1::Practitioner chloe = Person("PT-7", "Chloé", "Côté", "Montréal", 45.51, -73.56);
    chloe.add_languages("français");
    chloe.mutable_authorizations(0)->set_status(v1::Authorization::PENDING);
    v1::Practitioner johnathan =
        Person("PT-8", "Johnathan", "Smithson", "Edmonton", 53.55, -113.50);
    johnathan.clear_authorizations();
    Upsert({helene, john, jon, wang, gurpreet, soren, chloe, johnathan});
  }

  v1::SearchPractitionersResponse SearchOk(const v1::SearchPractitionersRequest& request) {
    absl::StatusOr<v1::SearchPractitionersResponse> r = searcher_->Search(request, kToday);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::SearchPractitionersResponse();
  }

  // Every page; fails the test on a repeated id or a total_size that moved.
  std::vector<std::string> AllIds(v1::SearchPractitionersRequest request,
                                  const std::function<void()>& between_pages = nullptr) {
    std::vector<std::string> ids;
    int pages = 0;
    do {
      v1::SearchPractitionersResponse r = SearchOk(request);
      for (const auto& p : r.practitioners()) ids.push_back(p.registration_id());
      request.set_page_token(r.next_page_token());
      EXPECT_LT(++pages, 100000);
      if (between_pages) between_pages();
    } while (!request.page_token().empty());
    return ids;
  }

  TempDir dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<core::Registry> registry_;
  SearchIndex index_;
  std::unique_ptr<Searcher> searcher_;
};

struct Row {
  const char* what;
  std::function<void(v1::SearchPractitionersRequest*)> set;
  std::vector<std::string> expected;  // In result order.
};

TEST_F(SearchTest, SemanticsTable) {
  UpsertTable();
  auto name = [](const char* n, bool fuzzy = false) {
    return [n, fuzzy](v1::SearchPractitionersRequest* r) {
      r->set_name(n);
      r->set_fuzzy(fuzzy);
    };
  };
  auto near = [](double lat, double lng, double km) {
    return [=](v1::SearchPractitionersRequest* r) {
      r->mutable_near()->set_latitude(lat);
      r->mutable_near()->set_longitude(lng);
      r->mutable_near()->set_radius_km(km);
    };
  };
  const std::vector<Row> rows = {
      {"accents", name("helene"), {"PT-1"}},
      {"upper case with accents", name("HÉLÈNE"), {"PT-1"}},
      {"apostrophe dropped", name("obrien"), {"PT-1"}},
      {"apostrophe as space", name("o brien"), {"PT-1"}},
      {"apostrophe and space", name("o'brien smith"), {"PT-1"}},
      {"hyphenated part", name("brien-smith"), {"PT-1"}},
      {"prefixes, any order", name("smi hel"), {"PT-1"}},
      {"preferred name", name("lena"), {"PT-1"}},
      {"former name", name("tremblay"), {"PT-1"}},
      {"prefix of several, sorted by family name", name("smith"), {"PT-1", "PT-2", "PT-8"}},
      {"every token must match", name("john smyth"), {}},
      {"Han characters", name("小明"), {"PT-4"}},
      {"Han family name", name("王"), {"PT-4"}},
      {"Gurmukhi", name("ਗੁਰਪ੍ਰੀਤ singh"), {"PT-5"}},
      {"letters without decomposition", name("soren norgaard"), {"PT-6"}},
      {"no typo without fuzzy", name("jonh smyth"), {}},
      {"fuzzy: swap and change", name("jonh smyth", true), {"PT-2", "PT-8", "PT-3"}},
      {"fuzzy: exact matches first", name("jon smyth", true), {"PT-3", "PT-2", "PT-8"}},
      {"city, normalized and exact", [](auto* r) { r->set_city(" CALGARY "); }, {"PT-1", "PT-5"}},
      {"city with accent", [](auto* r) { r->set_city("montreal"); }, {"PT-7", "PT-6"}},
      {"unknown city", [](auto* r) { r->set_city("Calg"); }, {}},
      {"postal prefix", [](auto* r) { r->set_postal_code_prefix("t2p1"); }, {"PT-1"}},
      {"postal prefix with space", [](auto* r) { r->set_postal_code_prefix("t2p 1j"); }, {"PT-1"}},
      {"authorized today (not suspended, expired, pending, permit suspended, none)",
       [](auto* r) { r->set_activity(v1::DRY_NEEDLING); },
       {"PT-1", "PT-2"}},
      {"register", [](auto* r) { r->set_register_(v1::COURTESY); }, {"PT-5"}},
      {"register provisional", [](auto* r) { r->set_register_(v1::PROVISIONAL); }, {"PT-3"}},
      {"language", [](auto* r) { r->set_language("mandarin"); }, {"PT-4"}},
      {"language with accent", [](auto* r) { r->set_language("FRANCAIS"); }, {"PT-7", "PT-6"}},
      {"near, by distance", near(51.0447, -114.0719, 10), {"PT-1", "PT-5"}},
      {"near, wider", near(51.0447, -114.0719, 300), {"PT-1", "PT-5", "PT-2", "PT-8"}},
      {"combined",
       [](auto* r) {
         r->set_name("smith");
         r->set_activity(v1::DRY_NEEDLING);
         r->set_city("edmonton");
       },
       {"PT-2"}},
      {"combined with near",
       [&](auto* r) {
         near(51.0447, -114.0719, 300)(r);
         r->set_activity(v1::DRY_NEEDLING);
       },
       {"PT-1", "PT-2"}},
      {"no criteria: the whole register in order",
       [](auto*) {},
       {"PT-7", "PT-6", "PT-1", "PT-5", "PT-2", "PT-8", "PT-3", "PT-4"}},
  };
  for (const Row& row : rows) {
    v1::SearchPractitionersRequest request;
    row.set(&request);
    v1::SearchPractitionersResponse r = SearchOk(request);
    std::vector<std::string> ids;
    for (const auto& p : r.practitioners()) {
      ids.push_back(p.registration_id());
      EXPECT_FALSE(p.has_private_contact()) << row.what;
    }
    EXPECT_THAT(ids, ElementsAreArray(row.expected)) << row.what;
    EXPECT_EQ(r.total_size(), static_cast<int64_t>(row.expected.size())) << row.what;
    EXPECT_EQ(r.distances_km_size(), request.has_near() ? r.practitioners_size() : 0) << row.what;
    for (int i = 1; i < r.distances_km_size(); ++i) {
      EXPECT_LE(r.distances_km(i - 1), r.distances_km(i)) << row.what;
    }
  }
}

TEST_F(SearchTest, DistancesAreKilometres) {
  UpsertTable();
  v1::SearchPractitionersRequest request;
  request.mutable_near()->set_latitude(51.0447);
  request.mutable_near()->set_longitude(-114.0719);
  request.mutable_near()->set_radius_km(300);
  request.set_name("john smith");  // PT-2 and PT-8 (Johnathan Smithson), both in Edmonton.
  v1::SearchPractitionersResponse r = SearchOk(request);
  ASSERT_EQ(r.distances_km_size(), 2);
  EXPECT_NEAR(r.distances_km(0), 281, 3);  // Calgary to Edmonton.
  EXPECT_NEAR(r.distances_km(1), 281, 3);
}

TEST_F(SearchTest, IndexFollowsUpdatesAndStatusChanges) {
  UpsertTable();
  v1::SearchPractitionersRequest request;
  request.set_activity(v1::DRY_NEEDLING);
  request.set_name("obrien");
  EXPECT_EQ(SearchOk(request).total_size(), 1);
  v1::SetAuthorizationStatusRequest suspend;
  suspend.set_registration_id("PT-1");
  suspend.set_activity(v1::DRY_NEEDLING);
  suspend.set_status(v1::Authorization::SUSPENDED);
  ASSERT_TRUE(registry_->SetAuthorizationStatus(suspend, "k1").ok());
  EXPECT_EQ(SearchOk(request).total_size(), 0);

  v1::Practitioner renamed = ValidPractitioner("PT-1");
  renamed.set_given_name("Hannah");
  Upsert({renamed}, /*allow_status_lift=*/true);
  EXPECT_EQ(SearchOk(request).total_size(), 1);  // Upload re-authorizes.
  request.set_name("hannah");
  EXPECT_EQ(SearchOk(request).total_size(), 1);
  request.set_name("helene");
  EXPECT_EQ(SearchOk(request).total_size(), 0);  // The old name's terms are gone.
}

TEST_F(SearchTest, PageSizes) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 150; ++i) records.push_back(tools::GenerateRegistrant(7, i));
  Upsert(records);
  v1::SearchPractitionersRequest request;
  EXPECT_EQ(SearchOk(request).practitioners_size(), 20);
  request.set_page_size(1000);
  v1::SearchPractitionersResponse r = SearchOk(request);
  EXPECT_EQ(r.practitioners_size(), 100);
  EXPECT_EQ(r.total_size(), 150);
  EXPECT_FALSE(r.next_page_token().empty());
}

TEST_F(SearchTest, PagingReachesEveryMatchExactlyOnce) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 2000; ++i) records.push_back(tools::GenerateRegistrant(11, i));
  Upsert(records);

  const std::vector<std::function<void(v1::SearchPractitionersRequest*)>> cases = {
      [](auto*) {},
      [](auto* r) { r->set_activity(v1::DRY_NEEDLING); },
      [](auto* r) { r->set_name("ma"); },
      [](auto* r) {
        r->set_name("smyth");
        r->set_fuzzy(true);
      },
      [](auto* r) {
        r->mutable_near()->set_latitude(45.5);
        r->mutable_near()->set_longitude(-73.6);
        r->mutable_near()->set_radius_km(200);
      },
      [](auto* r) { r->set_language("french"); },
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    v1::SearchPractitionersRequest request;
    cases[c](&request);
    const int64_t total = SearchOk(request).total_size();
    EXPECT_GT(total, 20) << "case " << c;
    request.set_page_size(7);
    std::vector<std::string> ids = AllIds(request);
    std::set<std::string> unique(ids.begin(), ids.end());
    EXPECT_EQ(unique.size(), ids.size()) << "case " << c;
    EXPECT_EQ(static_cast<int64_t>(ids.size()), total) << "case " << c;
  }
}

TEST_F(SearchTest, ActivityFilterAgreesWithVerifyOnEveryDate) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 1500; ++i) records.push_back(tools::GenerateRegistrant(3, i));
  Upsert(records);
  std::vector<v1::Practitioner> stored;
  ASSERT_TRUE(store_->View()
                  ->ForEachPractitioner([&](const v1::Practitioner& p) {
                    stored.push_back(p);
                    return true;
                  })
                  .ok());
  for (const char* date : {"2010-06-01", "2019-04-02", "2026-01-01", "2026-01-02", kToday,
                           "2027-03-31", "2027-04-01", "2030-01-01"}) {
    for (auto activity : {v1::DRY_NEEDLING, v1::SPINAL_MANIPULATION, v1::ACUPUNCTURE}) {
      std::set<std::string> expected;
      for (const v1::Practitioner& p : stored) {
        if (core::Verify(&p, p.registration_id(), activity, date).authorized()) {
          expected.insert(p.registration_id());
        }
      }
      Query query;
      query.activity = activity;
      query.page_size = 100000;
      Page page = *index_.Search(query, *DayNumber(date));
      std::set<std::string> found;
      for (const Hit& hit : page.hits) found.insert(hit.registration_id);
      EXPECT_EQ(found, expected) << date << " " << v1::RestrictedActivity_Name(activity);
      EXPECT_EQ(page.total_size, static_cast<int64_t>(expected.size()));
    }
  }
}

TEST_F(SearchTest, PagingWhileWritesHappenSeesEachStableRegistrantOnce) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 600; ++i) records.push_back(tools::GenerateRegistrant(5, i));
  Upsert(records);
  std::set<std::string> initial;
  for (const auto& r : records) initial.insert(r.registration_id());

  // The writer adds new registrants (anywhere in the order) and re-uploads existing ones with
  // other languages (their position stays) or other names (they move). The reader waits for a
  // commit between pages, so pages and writes interleave on every run.
  std::mutex mu;
  std::condition_variable cv;
  int64_t commits = 0;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int batch = 0; !done.load(); ++batch) {
      v1::UpsertPractitionersRequest request;
      for (int i = 0; i < 5; ++i) {
        *request.add_practitioners() = tools::GenerateRegistrant(99, 100000 + batch * 5 + i);
        v1::Practitioner changed = records[(batch * 5 + i) % records.size()];
        changed.add_languages(absl::StrCat("Language ", batch));
        // Renames move registrants to either end of the order, across the reader's cursor.
        if (i % 2 == 0) changed.set_family_name(absl::StrCat(batch % 2 ? "Aa" : "Zz", batch));
        *request.add_practitioners() = changed;
      }
      ASSERT_TRUE(registry_->Upsert(request, "k1").ok());
      std::lock_guard lock(mu);
      ++commits;
      cv.notify_all();
    }
  });
  int64_t seen_commits = 0;
  v1::SearchPractitionersRequest request;
  request.set_page_size(25);
  std::vector<std::string> ids = AllIds(request, [&] {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return commits > seen_commits; });
    seen_commits = commits;
  });
  done = true;
  writer.join();

  std::map<std::string, int> count;
  for (const std::string& id : ids) ++count[id];
  for (const auto& [id, n] : count) EXPECT_EQ(n, 1) << id;
  for (const std::string& id : initial) EXPECT_EQ(count[id], 1) << id;
  EXPECT_GT(seen_commits, 10);
}

// A registrant renamed (or moved) while a client pages changes place in the order: one already
// seen and moved after the cursor came back a second time, one not seen yet and moved before
// the cursor was never seen. Positions are evaluated as of the first page's revision, so
// every registrant that exists throughout is seen exactly once, whatever the criteria.
TEST_F(SearchTest, PagingSeesRenamedAndMovedRegistrantsExactlyOnce) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 30; ++i) {
    records.push_back(Person(absl::StrCat("PT-", 500 + i), "Ann",
                             absl::StrCat("Fam", std::string(1, static_cast<char>('a' + i / 26)),
                                          std::string(1, static_cast<char>('a' + i % 26))),
                             "Calgary", 51.0447 + i * 0.001, -114.0719));
  }
  const std::vector<std::function<void(v1::SearchPractitionersRequest*)>> cases = {
      [](auto*) {},  // Browsing the register.
      [](auto* r) { r->set_name("fam"); },
      [](auto* r) {
        r->set_name("ann fam");
        r->set_fuzzy(true);
      },
      [](auto* r) {
        r->set_city("calgary");
        r->set_activity(v1::DRY_NEEDLING);
      },
      [](auto* r) {
        r->mutable_near()->set_latitude(51.0447);
        r->mutable_near()->set_longitude(-114.0719);
        r->mutable_near()->set_radius_km(50);
      },
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    Upsert(records);  // The first names and places again.
    v1::SearchPractitionersRequest request;
    cases[c](&request);
    request.set_page_size(5);
    std::vector<std::string> ids;
    int page = 0;
    do {
      v1::SearchPractitionersResponse r = SearchOk(request);
      EXPECT_EQ(r.total_size(), 30) << c;
      for (const auto& p : r.practitioners()) ids.push_back(p.registration_id());
      request.set_page_token(r.next_page_token());
      if (page == 0) {
        ASSERT_THAT(ids, ::testing::Contains(records[1].registration_id())) << c;
        ASSERT_THAT(ids, ::testing::Not(::testing::Contains(records[20].registration_id())));
        // Seen, now last in every order; not seen, now first in every order.
        v1::Practitioner seen = records[1];
        seen.set_family_name("Famzz");
        seen.mutable_locations(0)->set_latitude(51.0447 + 0.1);
        v1::Practitioner unseen = records[20];
        unseen.set_family_name("Fam");
        unseen.mutable_locations(0)->set_latitude(51.0447);
        Upsert({seen, unseen});
      } else if (page == 2) {
        // Moving again changes nothing either, nor does a change that moves no one.
        v1::Practitioner again = records[20];
        again.set_family_name("Fama");
        v1::Practitioner languages = records[25];
        languages.add_languages("Cree");
        Upsert({again, languages});
      }
      ASSERT_LT(++page, 20) << c;
    } while (!request.page_token().empty());
    std::map<std::string, int> count;
    for (const std::string& id : ids) ++count[id];
    for (const v1::Practitioner& p : records) {
      EXPECT_EQ(count[p.registration_id()], 1) << "case " << c << " " << p.registration_id();
    }
    EXPECT_EQ(ids.size(), records.size()) << c;
  }
}

// The index remembers a bounded number of moves; a token older than what it remembers is
// refused with a clear message instead of silently repeating or skipping registrants.
TEST_F(SearchTest, PageTokensExpireOnceTheirRevisionIsForgotten) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 10; ++i) {
    records.push_back(Person(absl::StrCat("PT-", 700 + i), "Bo", absl::StrCat("Name", i), "Calgary",
                             51.0447, -114.0719));
  }
  Upsert(records);
  SearchIndex small(/*position_history=*/2);
  ASSERT_TRUE(small.Load(*store_->View()).ok());
  Searcher searcher(&small, store_.get());
  v1::SearchPractitionersRequest request;
  request.set_page_size(3);
  absl::StatusOr<v1::SearchPractitionersResponse> first = searcher.Search(request, kToday);
  ASSERT_TRUE(first.ok()) << first.status();
  request.set_page_token(first->next_page_token());
  auto rename = [&](int i, const std::string& family) {
    v1::Practitioner p = records[i];
    p.set_family_name(family);
    small.Put(p);
  };
  rename(0, "Zed");
  rename(8, "Abe");
  EXPECT_TRUE(searcher.Search(request, kToday).ok());  // Two moves: still remembered.
  rename(5, "Kay");
  absl::StatusOr<v1::SearchPractitionersResponse> expired = searcher.Search(request, kToday);
  ASSERT_EQ(expired.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(expired.status()), ElementsAre("page_token"));
  EXPECT_THAT(std::string(expired.status().message()), ::testing::HasSubstr("expired"));
  request.clear_page_token();
  EXPECT_TRUE(searcher.Search(request, kToday).ok());  // A new listing starts fine.
}

// After a restart the index is loaded anew and knows no earlier moves: a token from before
// still works when nothing was written since, and is refused when something was.
TEST_F(SearchTest, PageTokensSurviveARestartWithoutWritesOnly) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 10; ++i) {
    records.push_back(Person(absl::StrCat("PT-", 800 + i), "Cy", absl::StrCat("Name", i), "Calgary",
                             51.0447, -114.0719));
  }
  Upsert(records);
  v1::SearchPractitionersRequest request;
  request.set_page_size(4);
  request.set_page_token(SearchOk(request).next_page_token());
  ASSERT_FALSE(request.page_token().empty());
  {
    SearchIndex restarted;
    ASSERT_TRUE(restarted.Load(*store_->View()).ok());
    Searcher searcher(&restarted, store_.get());
    absl::StatusOr<v1::SearchPractitionersResponse> next = searcher.Search(request, kToday);
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->practitioners(0).registration_id(), "PT-804");
  }
  v1::Practitioner renamed = records[9];
  renamed.set_family_name("Aardvark");
  Upsert({renamed});
  SearchIndex restarted;
  ASSERT_TRUE(restarted.Load(*store_->View()).ok());
  Searcher searcher(&restarted, store_.get());
  absl::StatusOr<v1::SearchPractitionersResponse> next = searcher.Search(request, kToday);
  EXPECT_THAT(ViolationFields(next.status()), ElementsAre("page_token"));
  // The index that saw the write still pages on.
  EXPECT_TRUE(searcher_->Search(request, kToday).ok());
}

// physioregd indexes in the background: writes made while the load runs must all reach the
// index, and searches before it is ready answer UNAVAILABLE rather than partial results.
TEST_F(SearchTest, BackgroundLoadSeesCommitsMadeDuringIt) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 3000; ++i) records.push_back(tools::GenerateRegistrant(7, i));
  Upsert(records);

  SearchIndex background;
  std::mutex mu;
  std::condition_variable loaded;
  bool done = false;
  background.AttachInBackground(store_.get(), [&](const absl::Status& status, int64_t) {
    EXPECT_TRUE(status.ok()) << status;
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    loaded.notify_all();
  });
  Searcher background_searcher(&background, store_.get());
  // Rename registrants and add new ones until the load is over, and a few times after.
  int round = 0;
  for (int after = 0; after < 3; ++round) {
    v1::Practitioner renamed = records[(round * 37) % records.size()];
    renamed.set_family_name("Zwanziger" + std::to_string(round));
    Upsert({renamed, tools::GenerateRegistrant(7, 100000 + round)});
    absl::StatusOr<v1::SearchPractitionersResponse> early =
        background_searcher.Search(v1::SearchPractitionersRequest(), kToday);
    EXPECT_TRUE(early.ok() || absl::IsUnavailable(early.status())) << early.status();
    if (background.ready()) ++after;
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    loaded.wait(lock, [&] { return done; });
  }
  // Every registrant, in order, exactly as the index that saw each commit as it happened.
  auto browse = [&](const Searcher& searcher) {
    std::vector<std::string> ids;
    v1::SearchPractitionersRequest request;
    request.set_page_size(100);
    do {
      absl::StatusOr<v1::SearchPractitionersResponse> page = searcher.Search(request, kToday);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const auto& p : page->practitioners()) ids.push_back(p.registration_id());
      request.set_page_token(page->next_page_token());
    } while (!request.page_token().empty());
    return ids;
  };
  const std::vector<std::string> expected = browse(*searcher_);
  EXPECT_EQ(expected.size(), 3000u + round);
  EXPECT_EQ(browse(background_searcher), expected);
  v1::SearchPractitionersRequest renamed;
  renamed.set_name("zwanziger");
  EXPECT_EQ(background_searcher.Search(renamed, kToday)->total_size(),
            searcher_->Search(renamed, kToday)->total_size());
}

TEST_F(SearchTest, BadInputNamesTheField) {
  UpsertTable();
  auto fields = [&](const std::function<void(v1::SearchPractitionersRequest*)>& set) {
    v1::SearchPractitionersRequest request;
    set(&request);
    absl::StatusOr<v1::SearchPractitionersResponse> r = searcher_->Search(request, kToday);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    return ViolationFields(r.status());
  };
  EXPECT_THAT(fields([](auto* r) { r->set_name(std::string(201, 'a')); }), ElementsAre("name"));
  EXPECT_THAT(fields([](auto* r) { r->set_name("h\xff\xfe"); }), ElementsAre("name"));
  EXPECT_THAT(fields([](auto* r) { r->set_page_size(-1); }), ElementsAre("page_size"));
  EXPECT_THAT(fields([](auto* r) { r->mutable_near()->set_radius_km(501); }),
              ElementsAre("near.radius_km"));
  EXPECT_THAT(fields([](auto* r) { r->mutable_near(); }), ElementsAre("near.radius_km"));
  EXPECT_THAT(fields([](auto* r) {
                r->mutable_near()->set_latitude(91);
                r->mutable_near()->set_longitude(-181);
                r->mutable_near()->set_radius_km(5);
              }),
              ElementsAre("near.latitude", "near.longitude"));
  EXPECT_THAT(fields([](auto* r) { r->set_page_token("not a token"); }), ElementsAre("page_token"));

  // A token is bound to its query and refused when edited.
  v1::SearchPractitionersRequest request;
  request.set_name("smith");
  request.set_page_size(1);
  const std::string token = SearchOk(request).next_page_token();
  ASSERT_FALSE(token.empty());
  EXPECT_THAT(fields([&](auto* r) {
                r->set_name("smit");
                r->set_page_token(token);
              }),
              ElementsAre("page_token"));
  for (size_t i = 0; i < token.size(); i += 3) {
    std::string tampered = token;
    tampered[i] = tampered[i] == 'A' ? 'B' : 'A';
    EXPECT_THAT(fields([&](auto* r) {
                  r->set_name("smith");
                  r->set_page_token(tampered);
                }),
                ElementsAre("page_token"))
        << i;
  }
  request.set_page_token(token);
  request.set_page_size(5);  // The page size may change between pages.
  EXPECT_EQ(SearchOk(request).practitioners_size(), 2);
}

// A criterion that normalizes to nothing would match everyone (the whole register came back
// for a name of "🙂"); it is refused, naming the field.
TEST_F(SearchTest, CriteriaWithoutLettersOrDigitsAreRefused) {
  UpsertTable();
  for (const char* text : {"🙂", "--", "'", " . ", "\u200b"}) {
    for (const char* field : {"name", "city", "language"}) {
      v1::SearchPractitionersRequest request;
      if (field == std::string("name")) request.set_name(text);
      if (field == std::string("city")) request.set_city(text);
      if (field == std::string("language")) request.set_language(text);
      absl::StatusOr<v1::SearchPractitionersResponse> r = searcher_->Search(request, kToday);
      ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << field << " " << text;
      EXPECT_THAT(ViolationFields(r.status()), ElementsAre(field)) << text;
      // Invisible-only text is refused by the common text rule, the rest by search's own.
      EXPECT_THAT(std::string(r.status().message()),
                  ::testing::AnyOf(::testing::HasSubstr("no letters or digits"),
                                   ::testing::HasSubstr("must not be blank"),
                                   ::testing::HasSubstr("invisible character")));
    }
  }
  for (const char* postal : {"   ", "-", " - . "}) {
    v1::SearchPractitionersRequest punctuation;
    punctuation.set_postal_code_prefix(postal);
    EXPECT_THAT(ViolationFields(searcher_->Search(punctuation, kToday).status()),
                ElementsAre("postal_code_prefix"))
        << postal;
  }
  // The register is untouched and a real name still finds its registrant.
  v1::SearchPractitionersRequest real;
  real.set_name("🙂 helene");
  EXPECT_EQ(SearchOk(real).total_size(), 1);
  EXPECT_EQ(SearchOk(v1::SearchPractitionersRequest()).total_size(), 8);
}

// Fuzzy search compares every name token with every distinct term, so a 50-token name cost
// 61 ms at 100,000 registrants: names are capped at 8 tokens.
TEST_F(SearchTest, NameTokensAreLimited) {
  UpsertTable();
  v1::SearchPractitionersRequest request;
  request.set_fuzzy(true);
  request.set_name("helene obrien smith a b c d e f");  // 9 tokens.
  absl::StatusOr<v1::SearchPractitionersResponse> r = searcher_->Search(request, kToday);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ViolationFields(r.status()), ElementsAre("name"));
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("at most 8"));
  request.set_name("helene obrien smith lena t");  // Within the limit.
  EXPECT_EQ(SearchOk(request).total_size(), 1);
}

// Each search has a time budget, checked inside the matching loops. The clock is injected:
// it stands still, or jumps past the budget at a chosen read, so nothing here is timed.
TEST_F(SearchTest, SearchesStopAtTheirTimeBudget) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 2000; ++i) records.push_back(tools::GenerateRegistrant(11, i));
  Upsert(records);
  v1::SearchPractitionersRequest request;
  request.set_name("jonh smyth");
  request.set_fuzzy(true);
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  int64_t reads = 0;
  int64_t expire_at_read = 0;  // 0: never.
  auto clock = [&] {
    ++reads;
    return expire_at_read != 0 && reads >= expire_at_read ? now + absl::Seconds(1) : now;
  };
  Searcher timed(&index_, store_.get(), clock, absl::Milliseconds(250));
  absl::StatusOr<v1::SearchPractitionersResponse> full = timed.Search(request, kToday);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_GT(full->total_size(), 0);
  const int64_t total_reads = reads;
  EXPECT_GT(total_reads, 3);  // Read again and again while the search runs.
  for (expire_at_read = 2; expire_at_read <= total_reads; ++expire_at_read) {
    reads = 0;
    absl::StatusOr<v1::SearchPractitionersResponse> r = timed.Search(request, kToday);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << expire_at_read;
    EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("250ms budget"));
    EXPECT_EQ(reads, expire_at_read);  // It stopped at the first read past the budget.
  }
  // The caller's deadline, when earlier, ends it too.
  expire_at_read = 0;
  EXPECT_EQ(timed.Search(request, kToday, now).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(timed.Search(request, kToday, now + absl::Seconds(1)).ok());
}

// 100 large records (each valid, ~45 KB public) on one page of 100 were a 4.5 MB answer: a
// page stops at kMaxPageBytes and its token continues after the last record sent.
TEST_F(SearchTest, PagesStopAtTheirByteLimit) {
  std::vector<v1::Practitioner> records;
  for (int i = 0; i < 100; ++i) {
    v1::Practitioner p =
        Person(absl::StrCat("PT-", 1000 + i), "Large", "Record", "Calgary", 51.0447, -114.0719);
    for (int n = 0; n < core::kMaxListItems; ++n) {
      p.add_former_names(std::string(core::kMaxNameBytes - 3, 'f') + std::to_string(n % 10));
      p.add_conditions(std::string(core::kMaxLongTextBytes / 2, 'c'));
    }
    while (p.locations_size() < core::kMaxListItems) {
      v1::PracticeLocation* l = p.add_locations();
      *l = p.locations(0);
      l->set_clinic_name(std::string(core::kMaxTextBytes, 'k'));
      l->set_street_address(std::string(core::kMaxTextBytes, 's'));
    }
    records.push_back(std::move(p));
  }
  Upsert(records);
  ASSERT_GT(core::PublicView(records[0]).ByteSizeLong(), 40'000u);

  v1::SearchPractitionersRequest request;
  request.set_name("large record");
  request.mutable_near()->set_latitude(51.0447);
  request.mutable_near()->set_longitude(-114.0719);
  request.mutable_near()->set_radius_km(5);
  request.set_page_size(100);
  std::vector<std::string> ids;
  int pages = 0;
  do {
    v1::SearchPractitionersResponse r = SearchOk(request);
    EXPECT_LE(r.ByteSizeLong(), kMaxPageBytes + 4096);
    EXPECT_GT(r.practitioners_size(), 0);
    EXPECT_EQ(r.distances_km_size(), r.practitioners_size());
    EXPECT_EQ(r.total_size(), 100);
    for (const auto& p : r.practitioners()) ids.push_back(p.registration_id());
    request.set_page_token(r.next_page_token());
    ASSERT_LT(++pages, 20);
  } while (!request.page_token().empty());
  EXPECT_GT(pages, 3);
  std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), 100u);
  EXPECT_EQ(ids.size(), 100u);
}

TEST(SearchIndexTest, DeletionsFreeDocNumbersThatLaterRegistrantsReuse) {
  SearchIndex index;
  auto ids = [&](const Query& q) {
    std::vector<std::string> out;
    const absl::StatusOr<Page> page = index.Search(q, *DayNumber(kToday));
    EXPECT_TRUE(page.ok()) << page.status();
    for (const Hit& hit : page->hits) {
      out.push_back(hit.registration_id);
    }
    return out;
  };
  for (const char* id : {"PT-1", "PT-2", "PT-3", "PT-4"}) {
    v1::Practitioner p = ValidPractitioner(id);
    p.mutable_permit()->add_status_history()->set_status("ACTIVE");
    p.mutable_permit()->mutable_status_history(0)->set_effective_on("2015-04-01");
    p.mutable_authorizations(0)->add_status_history()->set_status("AUTHORIZED");
    p.mutable_authorizations(0)->mutable_status_history(0)->set_effective_on("2019-04-02");
    index.Put(p);
  }
  Query by_city;
  by_city.city = "calgary";
  by_city.activity = v1::DRY_NEEDLING;
  by_city.page_size = 10;
  EXPECT_THAT(ids(by_city), ElementsAre("PT-1", "PT-2", "PT-3", "PT-4"));

  v1::ChangeEvent deletion;
  deletion.set_registration_id("PT-2");
  deletion.set_kind(v1::ChangeEvent::DELETED);
  index.Apply(deletion);
  EXPECT_EQ(index.size(), 3);
  EXPECT_THAT(ids(by_city), ElementsAre("PT-1", "PT-3", "PT-4"));

  // PT-5 takes PT-2's doc number, below PT-3's and PT-4's: it goes into the middle of every
  // sorted list it joins, and the intersections still find it.
  v1::Practitioner five = ValidPractitioner("PT-5");
  five.mutable_permit()->add_status_history()->set_status("ACTIVE");
  five.mutable_permit()->mutable_status_history(0)->set_effective_on("2015-04-01");
  five.mutable_authorizations(0)->add_status_history()->set_status("AUTHORIZED");
  five.mutable_authorizations(0)->mutable_status_history(0)->set_effective_on("2019-04-02");
  index.Put(five);
  EXPECT_THAT(ids(by_city), ElementsAre("PT-1", "PT-3", "PT-4", "PT-5"));
  Query by_name = by_city;
  by_name.name_tokens = {"hel", "obrien"};
  EXPECT_THAT(ids(by_name), ElementsAre("PT-1", "PT-3", "PT-4", "PT-5"));
  Query browse;
  browse.page_size = 10;
  EXPECT_THAT(ids(browse), ElementsAre("PT-1", "PT-3", "PT-4", "PT-5"));
}

TEST(GeneratorTest, DeterministicValidAndRealistic) {
  int authorized = 0, provisional_restricted = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    const v1::Practitioner p = tools::GenerateRegistrant(42, i);
    EXPECT_EQ(p.SerializeAsString(), tools::GenerateRegistrant(42, i).SerializeAsString());
    core::Violations v;
    core::ValidatePractitioner(p, "", kToday, &v);
    ASSERT_TRUE(v.empty()) << v.bad_request().DebugString() << p.DebugString();
    // As stored: timelines start on registered_on / granted_on.
    v1::Practitioner stored = p;
    auto* h = stored.mutable_permit()->add_status_history();
    h->set_status(v1::Permit::Status_Name(p.permit().status()));
    h->set_effective_on(p.permit().registered_on());
    for (auto& a : *stored.mutable_authorizations()) {
      auto* ah = a.add_status_history();
      ah->set_status(v1::Authorization::Status_Name(a.status()));
      ah->set_effective_on(a.granted_on());
    }
    if (core::Verify(&stored, p.registration_id(), v1::DRY_NEEDLING, kToday).authorized()) {
      ++authorized;
    }
    for (const auto& a : p.authorizations()) {
      if (p.permit().register_() == v1::PROVISIONAL && a.activity() == v1::DRY_NEEDLING) {
        ++provisional_restricted;
      }
    }
  }
  EXPECT_EQ(tools::GenerateRegistrant(42, 0).registration_id(), "PT-0000001");
  EXPECT_NE(tools::GenerateRegistrant(42, 0).SerializeAsString(),
            tools::GenerateRegistrant(43, 0).SerializeAsString());
  EXPECT_GT(authorized, n / 4);
  EXPECT_LT(authorized, n * 2 / 5);
  EXPECT_EQ(provisional_restricted, 0);
}

}  // namespace
}  // namespace physioreg::search
