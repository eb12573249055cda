#include "tools/generator/queries.h"

#include <unicode/utf8.h>

#include "absl/strings/str_cat.h"
#include "service/core/search/normalize.h"
#include "tools/generator/generator.h"

namespace physioreg::tools {
namespace {

// SplitMix64, as the generator's (std:: distributions differ between libraries).
uint64_t Next(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The first `code_points` code points of the first query token of `name`.
std::string Prefix(const std::string& name, int code_points) {
  const std::vector<std::string> tokens = search::QueryTokens(name);
  if (tokens.empty()) return "";
  const std::string& token = tokens.front();
  int32_t end = 0;
  for (int n = 0; n < code_points && end < static_cast<int32_t>(token.size()); ++n) {
    U8_FWD_1(token.data(), end, static_cast<int32_t>(token.size()));
  }
  return token.substr(0, static_cast<size_t>(end));
}

}  // namespace

std::vector<std::string> GenerateSearchQueries(int64_t count, uint64_t seed, uint64_t query_seed,
                                               int n) {
  std::vector<std::string> queries;
  if (count <= 0) return queries;
  uint64_t state = query_seed ^ 0x5eac4ULL;
  // Every generated name has letters; were one to have none, the next registrant is taken (a
  // bounded number of times).
  for (int64_t attempt = 0; static_cast<int>(queries.size()) < n && attempt < 100LL * n + 100;
       ++attempt) {
    const int64_t index = static_cast<int64_t>(Next(&state) % static_cast<uint64_t>(count));
    const int given_letters = 2 + static_cast<int>(Next(&state) % 3);
    const int family_letters = 3 + static_cast<int>(Next(&state) % 3);
    const physioreg::v1::Practitioner registrant = GenerateRegistrant(seed, index);
    const std::string given = Prefix(registrant.given_name(), given_letters);
    const std::string family = Prefix(registrant.family_name(), family_letters);
    if (given.empty() || family.empty()) continue;
    queries.push_back(absl::StrCat(given, " ", family));
  }
  return queries;
}

}  // namespace physioreg::tools
