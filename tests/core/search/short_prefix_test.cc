// The short-prefix query set (physioreg-generate --queries) and the search path it exercises:
// on a generated register, every query's page and exact total_size equal a brute-force
// evaluation over the stored records (prefix of an index token per query token, the
// authorization as VerifyAuthorization answers it, the result order by family, given, id).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "service/core/registry.h"
#include "service/core/search/index.h"
#include "service/core/search/normalize.h"
#include "service/core/search/query.h"
#include "service/core/verification.h"
#include "tests/support/fixed_registry.h"
#include "tests/support/temp_dir.h"
#include "tools/generator/generator.h"
#include "tools/generator/queries.h"

namespace physioreg::search {
namespace {

namespace v1 = physioreg::v1;
using physioreg::testing::TempDir;

constexpr char kToday[] = "2026-11-25";

int CodePoints(const std::string& s) {
  return static_cast<int>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

TEST(SearchQueriesTest, DeterministicNormalizedShortPrefixes) {
  const std::vector<std::string> queries = tools::GenerateSearchQueries(100000, 1, 7, 500);
  ASSERT_EQ(queries.size(), 500u);
  EXPECT_EQ(queries, tools::GenerateSearchQueries(100000, 1, 7, 500));
  EXPECT_NE(queries, tools::GenerateSearchQueries(100000, 1, 8, 500));
  EXPECT_NE(queries, tools::GenerateSearchQueries(100000, 2, 7, 500));
  EXPECT_EQ(tools::GenerateSearchQueries(100000, 1, 7, 20),
            std::vector<std::string>(queries.begin(), queries.begin() + 20));
  int short_given = 0;
  for (const std::string& q : queries) {
    const std::vector<std::string> parts = absl::StrSplit(q, ' ');
    ASSERT_EQ(parts.size(), 2u) << q;
    // Already in the normalized form: the server's normalization leaves them as they are.
    EXPECT_EQ(QueryTokens(q), parts) << q;
    EXPECT_LE(CodePoints(parts[0]), 4) << q;
    EXPECT_GE(CodePoints(parts[0]), 1) << q;
    EXPECT_LE(CodePoints(parts[1]), 5) << q;
    EXPECT_GE(CodePoints(parts[1]), 1) << q;
    short_given += CodePoints(parts[0]) == 2;
  }
  EXPECT_GT(short_given, 100);  // About a third have 2-letter given prefixes.
  EXPECT_TRUE(tools::GenerateSearchQueries(0, 1, 7, 500).empty());
}

class ShortPrefixSearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(physioreg::testing::OpenFixedClockRegistry(dir_, &store_, &registry_));
    ASSERT_TRUE(index_.Attach(store_.get()).ok());
    searcher_ = std::make_unique<Searcher>(&index_, store_.get());
    v1::UpsertPractitionersRequest request;
    for (int i = 0; i < kCount; ++i) {
      *request.add_practitioners() = tools::GenerateRegistrant(kSeed, i);
      if (request.practitioners_size() == core::kMaxRecordsPerRequest || i + 1 == kCount) {
        ASSERT_TRUE(registry_->Upsert(request, "k1").ok());
        request.clear_practitioners();
      }
    }
    ASSERT_TRUE(store_->View()
                    ->ForEachPractitioner([&](const v1::Practitioner& p) {
                      stored_.push_back(p);
                      return true;
                    })
                    .ok());
  }

  // Registration ids matching `name` (and `activity` today, unless unspecified), result order.
  std::vector<std::string> Expected(const std::string& name, v1::RestrictedActivity activity) {
    const std::vector<std::string> tokens = QueryTokens(name);
    std::vector<std::tuple<std::string, std::string, std::string>> found;
    for (const v1::Practitioner& p : stored_) {
      if (activity != v1::RESTRICTED_ACTIVITY_UNSPECIFIED &&
          !core::Verify(&p, p.registration_id(), activity, kToday).authorized()) {
        continue;
      }
      std::vector<std::string> terms;
      std::vector<std::string> names = {p.given_name(), p.family_name(), p.preferred_name()};
      names.insert(names.end(), p.former_names().begin(), p.former_names().end());
      for (const std::string& n : names) {
        for (std::string& t : IndexTokens(n)) terms.push_back(std::move(t));
      }
      const bool all = std::all_of(tokens.begin(), tokens.end(), [&](const std::string& token) {
        return std::any_of(terms.begin(), terms.end(),
                           [&](const std::string& term) { return absl::StartsWith(term, token); });
      });
      if (all) {
        found.emplace_back(NormalizeKey(p.family_name()), NormalizeKey(p.given_name()),
                           p.registration_id());
      }
    }
    std::sort(found.begin(), found.end());
    std::vector<std::string> ids;
    for (const auto& f : found) ids.push_back(std::get<2>(f));
    return ids;
  }

  // Checks the first page and total, then every page through the page tokens.
  void ExpectSameAsBruteForce(const std::string& name, v1::RestrictedActivity activity,
                              int page_size) {
    SCOPED_TRACE(name);
    const std::vector<std::string> expected = Expected(name, activity);
    v1::SearchPractitionersRequest request;
    request.set_name(name);
    request.set_activity(activity);
    request.set_page_size(page_size);
    std::vector<std::string> ids;
    for (int pages = 0; pages < 1000; ++pages) {
      absl::StatusOr<v1::SearchPractitionersResponse> r = searcher_->Search(request, kToday);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->total_size(), static_cast<int64_t>(expected.size()));
      for (const v1::Practitioner& p : r->practitioners()) ids.push_back(p.registration_id());
      if (r->next_page_token().empty()) break;
      request.set_page_token(r->next_page_token());
    }
    EXPECT_EQ(ids, expected);
  }

  static constexpr int kCount = 3000;
  static constexpr uint64_t kSeed = 5;
  TempDir dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<core::Registry> registry_;
  SearchIndex index_;
  std::unique_ptr<Searcher> searcher_;
  std::vector<v1::Practitioner> stored_;
};

TEST_F(ShortPrefixSearchTest, QuerySetMatchesBruteForceWithAndWithoutActivity) {
  const std::vector<std::string> queries = tools::GenerateSearchQueries(kCount, kSeed, 7, 60);
  int with_matches = 0;
  for (const std::string& q : queries) {
    // Every query names a registrant of the register, so it matches at least that one.
    EXPECT_FALSE(Expected(q, v1::RESTRICTED_ACTIVITY_UNSPECIFIED).empty()) << q;
    ExpectSameAsBruteForce(q, v1::DRY_NEEDLING, 20);
    with_matches += !Expected(q, v1::DRY_NEEDLING).empty();
  }
  EXPECT_GT(with_matches, 10);
  for (size_t i = 0; i < 10; ++i) {
    ExpectSameAsBruteForce(queries[i], v1::RESTRICTED_ACTIVITY_UNSPECIFIED, 20);
    ExpectSameAsBruteForce(queries[i], v1::SPINAL_MANIPULATION, 7);
  }
}

TEST_F(ShortPrefixSearchTest, WideAndNarrowTokensMatchBruteForce) {
  // One very wide token alone, two wide ones, three tokens, a token matching nothing, and
  // tokens in either order.
  // Both candidate paths: bitmaps for wide criteria (the default) and sorted lists only.
  for (const bool bitmaps : {true, false}) {
    index_.SetCandidateBitmaps(bitmaps);
    for (const char* q : {"m", "ma", "a", "ma jo", "j s", "jo smith", "smit ja", "li wa", "e ch tr",
                          "zz", "ma zz", "gurp s", "ha k", "st j"}) {
      ExpectSameAsBruteForce(q, v1::DRY_NEEDLING, 20);
      ExpectSameAsBruteForce(q, v1::RESTRICTED_ACTIVITY_UNSPECIFIED, 50);
    }
  }
}

}  // namespace
}  // namespace physioreg::search
