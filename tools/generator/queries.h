// The short-prefix search query set (issue 13), shared with the PostgreSQL peer bench: each
// query is 2-4 code points of a registrant's given name and 3-5 of its family name, in the
// search index's normalized form (search::QueryTokens), e.g. "jé tremb" -> "je tremb".
#ifndef PHYSIOREG_TOOLS_GENERATOR_QUERIES_H_
#define PHYSIOREG_TOOLS_GENERATOR_QUERIES_H_

#include <cstdint>
#include <string>
#include <vector>

namespace physioreg::tools {

// `n` queries over registrants of the register (`count`, `seed`) picked by `query_seed`:
// "<given prefix> <family prefix>", exactly the name a client sends. Deterministic for
// (count, seed, query_seed, n); empty when count is 0. A name part shorter than its prefix
// length is taken whole (e.g. "wu", "伟").
std::vector<std::string> GenerateSearchQueries(int64_t count, uint64_t seed, uint64_t query_seed,
                                               int n);

}  // namespace physioreg::tools

#endif  // PHYSIOREG_TOOLS_GENERATOR_QUERIES_H_
