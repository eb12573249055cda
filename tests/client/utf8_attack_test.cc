// attack6 (issue 13): ValidUtf8Prefix's eight-bytes-at-a-time ASCII skip against strings built
// from pieces whose validity is known: ASCII runs of every length around 8, valid characters of
// 2, 3 and 4 bytes, then at most one bad piece (ending the valid prefix) and an ASCII tail.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "client/csv.h"

namespace physioreg::client {
namespace {

TEST(Utf8AttackTest, RandomMixesOfRunsAndCharactersEndAtTheirFirstBadPiece) {
  const std::vector<std::string> good = {"\xC3\xA9",         "\xC2\x80",         "\xDF\xBF",
                                         "\xE0\xA0\x80",     "\xE6\xB2\xBB",     "\xED\x9F\xBF",
                                         "\xEE\x80\x80",     "\xEF\xBF\xBF",     "\xF0\x90\x80\x80",
                                         "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF", "\xE2\x80\xAE"};
  const std::vector<std::string> bad = {"\x80",
                                        "\xBF",
                                        "\xC0\x80",
                                        "\xC1\xBF",
                                        "\xE0\x80\x80",
                                        "\xE0\x9F\xBF",
                                        "\xED\xA0\x80",
                                        "\xED\xBF\xBF",
                                        "\xF0\x80\x80\x80",
                                        "\xF4\x90\x80\x80",
                                        "\xF5\x80\x80\x80",
                                        "\xF8\x88\x80\x80\x80",
                                        "\xFE",
                                        "\xFF",
                                        "\xC3",
                                        "\xE6\xB2",
                                        "\xF0\x9F\x98",
                                        "\xC3\xC3\xA9",
                                        "\xE6\x41\x41"};
  std::mt19937 rng(613);
  int with_bad = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    const int pieces = static_cast<int>(rng() % 8);
    for (int p = 0; p < pieces; ++p) {
      if (rng() % 2 == 0) {
        text.append(rng() % 18, static_cast<char>('a' + rng() % 26));
      } else {
        text += good[rng() % good.size()];
      }
    }
    const size_t valid = text.size();
    if (rng() % 3 != 0) {
      text += bad[rng() % bad.size()];
      text.append(rng() % 20, 'z');
      ++with_bad;
    }
    ASSERT_EQ(ValidUtf8Prefix(text), valid) << "round " << round;
    // The same text at every alignment of the buffer.
    const std::string shifted = std::string(1 + rng() % 7, 'q') + text;
    ASSERT_EQ(ValidUtf8Prefix(absl::string_view(shifted).substr(shifted.size() - text.size())),
              valid)
        << "round " << round;
  }
  EXPECT_GT(with_bad, 10000);
}

}  // namespace
}  // namespace physioreg::client
