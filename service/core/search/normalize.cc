#include "service/core/search/normalize.h"

#include <unicode/normalizer2.h>
#include <unicode/translit.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/uscript.h>
#include <unicode/utf8.h>

#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"

namespace physioreg::search {
namespace {

using Segment = std::vector<std::string>;  // pieces
using Word = std::vector<Segment>;

// Apostrophes and periods join the pieces of one name part ("O'Brien", "J.P.", "l·l").
bool IsJoiner(UChar32 c) {
  switch (c) {
    case 0x0027:  // '
    case 0x0060:  // `
    case 0x002E:  // .
    case 0x00B7:  // middle dot
    case 0x02BC:  // modifier letter apostrophe
    case 0x2018:
    case 0x2019:
      return true;
    default:
      return false;
  }
}

bool IsWordChar(UChar32 c) {
  return u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_isdigit(c) ||
         (U_GET_GC_MASK(c) & U_GC_M_MASK) != 0;
}

// Accents are dropped from alphabetic scripts, where they are what people leave out when they
// type ("Hélène" as "helene"). In abugidas (Gurmukhi, Devanagari, ...) the combining marks are
// vowels, so they stay: dropping them would make different names equal.
bool DropsMarks(UScriptCode script) {
  return script == USCRIPT_LATIN || script == USCRIPT_GREEK || script == USCRIPT_CYRILLIC ||
         script == USCRIPT_COMMON || script == USCRIPT_INHERITED;
}

const icu::Transliterator* LatinAscii() {
  // Built once; each thread transliterates with its own clone because ICU does not promise
  // that one instance may be used from several threads at once.
  static const icu::Transliterator* base = [] {
    UErrorCode status = U_ZERO_ERROR;
    icu::Transliterator* t =
        icu::Transliterator::createInstance("Latin-ASCII", UTRANS_FORWARD, status);
    return U_SUCCESS(status) ? t : nullptr;
  }();
  if (base == nullptr) return nullptr;
  thread_local std::unique_ptr<icu::Transliterator> clone(base->clone());
  return clone.get();
}

// NFKD, full case folding, accents removed, Latin letters without a decomposition (ø, ł, đ,
// æ) spelled in ASCII.
icu::UnicodeString Fold(absl::string_view text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfkd = icu::Normalizer2::getNFKDInstance(status);
  icu::UnicodeString in = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  icu::UnicodeString decomposed = U_SUCCESS(status) ? nfkd->normalize(in, status) : in;
  if (U_FAILURE(status)) decomposed = in;
  decomposed.foldCase();
  icu::UnicodeString out;
  UScriptCode base_script = USCRIPT_COMMON;
  bool latin_non_ascii = false;
  for (int32_t i = 0; i < decomposed.length();) {
    const UChar32 c = decomposed.char32At(i);
    i += U16_LENGTH(c);
    if (U_GET_GC_MASK(c) & U_GC_MN_MASK) {
      if (DropsMarks(base_script)) continue;
    } else {
      UErrorCode script_status = U_ZERO_ERROR;
      base_script = uscript_getScript(c, &script_status);
      if (c > 0x7F && base_script == USCRIPT_LATIN) latin_non_ascii = true;
    }
    out.append(c);
  }
  if (latin_non_ascii) {
    if (const icu::Transliterator* t = LatinAscii(); t != nullptr) t->transliterate(out);
  }
  return out;
}

void AppendUtf8(UChar32 c, std::string* out) {
  char buffer[U8_MAX_LENGTH];
  int32_t length = 0;
  U8_APPEND_UNSAFE(buffer, length, c);
  out->append(buffer, static_cast<size_t>(length));
}

std::vector<Word> Split(absl::string_view text) {
  const icu::UnicodeString folded = Fold(text);
  std::vector<Word> words;
  Word word;
  Segment segment;
  std::string piece;
  auto end_piece = [&] {
    if (!piece.empty()) segment.push_back(std::move(piece));
    piece.clear();
  };
  auto end_segment = [&] {
    end_piece();
    if (!segment.empty()) word.push_back(std::move(segment));
    segment.clear();
  };
  auto end_word = [&] {
    end_segment();
    if (!word.empty()) words.push_back(std::move(word));
    word.clear();
  };
  for (int32_t i = 0; i < folded.length();) {
    const UChar32 c = folded.char32At(i);
    i += U16_LENGTH(c);
    if (IsWordChar(c)) {
      AppendUtf8(c, &piece);
    } else if (IsJoiner(c)) {
      end_piece();
    } else if (u_charType(c) == U_DASH_PUNCTUATION) {
      end_segment();
    } else {
      end_word();
    }
  }
  end_word();
  return words;
}

void AddUnique(std::string token, std::vector<std::string>* tokens) {
  for (const std::string& t : *tokens) {
    if (t == token) return;
  }
  tokens->push_back(std::move(token));
}

}  // namespace

std::vector<std::string> IndexTokens(absl::string_view text) {
  std::vector<std::string> tokens;
  for (const Word& word : Split(text)) {
    std::string whole_word;
    for (const Segment& segment : word) {
      std::string whole_segment;
      for (const std::string& piece : segment) {
        AddUnique(piece, &tokens);
        whole_segment += piece;
      }
      AddUnique(whole_segment, &tokens);
      whole_word += whole_segment;
    }
    AddUnique(std::move(whole_word), &tokens);
  }
  return tokens;
}

std::vector<std::string> QueryTokens(absl::string_view text) {
  std::vector<std::string> tokens;
  for (const Word& word : Split(text)) {
    for (const Segment& segment : word) tokens.push_back(absl::StrJoin(segment, ""));
  }
  return tokens;
}

std::string NormalizeKey(absl::string_view text) { return absl::StrJoin(QueryTokens(text), " "); }

std::string NormalizePostalCode(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) {
      out.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

}  // namespace physioreg::search
