// SearchPractitioners, free of gRPC: validation of the request (field paths for
// INVALID_ARGUMENT), page tokens, the index search, and the public records of the page.
#ifndef PHYSIOREG_SERVICE_CORE_SEARCH_QUERY_H_
#define PHYSIOREG_SERVICE_CORE_SEARCH_QUERY_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "physioreg/v1/registry.pb.h"
#include "service/core/search/index.h"
#include "storage/store.h"

namespace physioreg::search {

inline constexpr int kDefaultPageSize = 20;
inline constexpr int kMaxPageSize = 100;
inline constexpr double kMaxRadiusKm = 500;
// Bounds on one query's work: a name of at most kMaxNameTokens tokens and kMaxSearchNameBytes bytes
// (every token is compared with every distinct indexed term in a fuzzy search), and a time
// budget per search past which it answers DEADLINE_EXCEEDED.
inline constexpr int kMaxNameTokens = 8;
inline constexpr size_t kMaxSearchNameBytes = 200;
inline constexpr absl::Duration kSearchBudget = absl::Milliseconds(250);
// A page's records stop at this many bytes (serialized), whatever page_size asked for; the
// next_page_token continues after the last record sent.
inline constexpr size_t kMaxPageBytes = 1 << 20;

// Validates `request` and turns it into a normalized Query, the page token decoded. Violations
// name the request's fields: name, city, postal_code_prefix, activity, register, language,
// near.latitude, near.longitude, near.radius_km, page_size, page_token.
[[nodiscard]] absl::StatusOr<Query> ParseQuery(
    const physioreg::v1::SearchPractitionersRequest& request);

// A token for the page after `last`, bound to the query: it carries a hash of the normalized
// criteria, and a checksum over everything so a changed token is refused.
// `revision` is the index revision the positions are as of (Page::revision), carried from the
// first page to the last.
std::string EncodePageToken(const Query& query, const Position& last, int64_t revision);

class Searcher {
 public:
  // Neither is owned; both must outlive the searcher. Each search may take `budget` by
  // `clock` (injected so that tests can expire it).
  Searcher(const SearchIndex* index, const storage::Store* store,
           std::function<absl::Time()> clock = absl::Now, absl::Duration budget = kSearchBudget)
      : index_(index), store_(store), clock_(std::move(clock)), budget_(budget) {}

  // One page of public records (never private_contact), `today` is YYYY-MM-DD. Past the
  // budget, or `deadline` (the caller's) if earlier: DEADLINE_EXCEEDED.
  [[nodiscard]] absl::StatusOr<physioreg::v1::SearchPractitionersResponse> Search(
      const physioreg::v1::SearchPractitionersRequest& request, absl::string_view today,
      absl::Time deadline = absl::InfiniteFuture()) const;

 private:
  const SearchIndex* index_;
  const storage::Store* store_;
  std::function<absl::Time()> clock_;
  absl::Duration budget_;
};

}  // namespace physioreg::search

#endif  // PHYSIOREG_SERVICE_CORE_SEARCH_QUERY_H_
