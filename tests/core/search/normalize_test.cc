#include "service/core/search/normalize.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "service/core/search/index.h"

namespace physioreg::search {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

TEST(NormalizeTest, IndexTokensCoverPiecesSegmentsAndWords) {
  EXPECT_THAT(IndexTokens("Hélène O'Brien-Smith"),
              UnorderedElementsAre("helene", "o", "brien", "obrien", "smith", "obriensmith"));
  EXPECT_THAT(IndexTokens("J.P. St. John"), UnorderedElementsAre("j", "p", "jp", "st", "john"));
}

TEST(NormalizeTest, QueryTokensJoinApostrophesAndSplitHyphensAndSpaces) {
  EXPECT_THAT(QueryTokens("o'brien smith"), ElementsAre("obrien", "smith"));
  EXPECT_THAT(QueryTokens("brien-smith"), ElementsAre("brien", "smith"));
  EXPECT_THAT(QueryTokens("  O  Brien "), ElementsAre("o", "brien"));
  EXPECT_THAT(QueryTokens("O’Brien"), ElementsAre("obrien"));  // Typographic apostrophe.
  EXPECT_THAT(QueryTokens("'-. "), ElementsAre());
}

TEST(NormalizeTest, AccentsCaseAndLettersWithoutDecomposition) {
  EXPECT_THAT(QueryTokens("HÉLÈNE"), ElementsAre("helene"));
  EXPECT_THAT(QueryTokens("Søren Nørgaard Łukasiewicz"),
              ElementsAre("soren", "norgaard", "lukasiewicz"));
  EXPECT_THAT(QueryTokens("Nguyễn Đặng"), ElementsAre("nguyen", "dang"));
  EXPECT_THAT(QueryTokens("Müller STRASSE straße"), ElementsAre("muller", "strasse", "strasse"));
  EXPECT_THAT(QueryTokens("Ｈｅｌｅｎｅ"), ElementsAre("helene"));  // Full-width, NFKD.
}

TEST(NormalizeTest, NonLatinScriptsKeepTheirLetters) {
  EXPECT_THAT(QueryTokens("王小明"), ElementsAre("王小明"));
  // Gurmukhi vowel signs are combining marks but part of the name: kept.
  EXPECT_THAT(QueryTokens("ਗੁਰਪ੍ਰੀਤ"), ElementsAre("ਗੁਰਪ੍ਰੀਤ"));
  EXPECT_NE(NormalizeKey("ਗੁਰਪ੍ਰੀਤ"), NormalizeKey("ਗਰਪਰਤ"));
}

TEST(NormalizeTest, KeysAndPostalCodes) {
  EXPECT_EQ(NormalizeKey("Saint-Jean-sur-Richelieu"), "saint jean sur richelieu");
  EXPECT_EQ(NormalizeKey("St. John's"), "st johns");
  EXPECT_EQ(NormalizeKey("Montréal"), NormalizeKey("MONTREAL"));
  EXPECT_EQ(NormalizePostalCode(" t2p 1j9"), "T2P1J9");
}

TEST(FuzzyTest, OneEditOrOneSwapAgainstTheBestPrefix) {
  auto d = [](const std::u32string& q, const std::u32string& t) {
    return FuzzyPrefixDistance(q, t, 2);
  };
  EXPECT_EQ(d(U"john", U"johnathan"), 0);
  EXPECT_EQ(d(U"jonh", U"john"), 1);     // Swap.
  EXPECT_EQ(d(U"smyth", U"smith"), 1);   // Change.
  EXPECT_EQ(d(U"smth", U"smith"), 1);    // Missing letter.
  EXPECT_EQ(d(U"smiith", U"smith"), 1);  // Extra letter.
  EXPECT_EQ(d(U"smyht", U"smith"), 2);
  EXPECT_EQ(d(U"xxxxxx", U"smith"), 3);  // Gave up past the limit.
}

}  // namespace
}  // namespace physioreg::search
