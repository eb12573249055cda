// Name and filter normalization shared by indexing and querying, so that both sides of every
// comparison went through exactly the same Unicode rules (ICU: NFKD, case folding, removal of
// the accents of alphabetic scripts, Latin-ASCII for letters such as ø, ł, đ).
#ifndef PHYSIOREG_SERVICE_CORE_SEARCH_NORMALIZE_H_
#define PHYSIOREG_SERVICE_CORE_SEARCH_NORMALIZE_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace physioreg::search {

// A name split for matching. "Hélène O'Brien-Smith" is three levels deep: words (split on
// spaces and other punctuation) made of hyphen-separated segments made of pieces joined by
// apostrophes or periods ("o", "brien").
//
// The tokens a registrant is indexed under: every piece, every segment with its pieces joined
// and every word with its segments joined: helene, o, brien, obrien, smith, obriensmith.
std::vector<std::string> IndexTokens(absl::string_view text);

// The tokens of a query: each segment with its pieces joined, so "o'brien-smith" asks for
// obrien and smith, "o brien" for o and brien. Query tokens must prefix-match index tokens.
std::vector<std::string> QueryTokens(absl::string_view text);

// A whole value compared exactly (city, language, and the name parts of the sort key): the
// query tokens joined by single spaces, so "Saint-Jean-sur-Richelieu" equals "saint jean sur
// richelieu" and "St. John's" equals "st johns".
std::string NormalizeKey(absl::string_view text);

// A postal code or prefix: ASCII upper case with every space removed ("t2p 1j9" -> "T2P1J9").
std::string NormalizePostalCode(absl::string_view text);

}  // namespace physioreg::search

#endif  // PHYSIOREG_SERVICE_CORE_SEARCH_NORMALIZE_H_
