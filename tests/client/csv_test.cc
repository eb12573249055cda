#include "client/csv.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <sstream>

#include "client/connection.h"
#include "client/csv_records.h"
#include "tests/support/records.h"

namespace physioreg::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace v1 = physioreg::v1;

std::vector<std::vector<std::string>> ReadAll(const std::string& text) {
  std::istringstream in(text);
  CsvReader reader(&in);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  while (true) {
    absl::StatusOr<bool> read = reader.Next(&row);
    EXPECT_TRUE(read.ok()) << read.status();
    if (!read.ok() || !*read) break;
    rows.push_back(row);
  }
  return rows;
}

TEST(CsvReaderTest, PlainFieldsAndLineEnds) {
  EXPECT_THAT(ReadAll("a,b,c\r\n1,2,3\n4,,6"),
              ElementsAre(ElementsAre("a", "b", "c"), ElementsAre("1", "2", "3"),
                          ElementsAre("4", "", "6")));
}

TEST(CsvReaderTest, QuotedFieldsHoldCommasQuotesAndLineBreaks) {
  EXPECT_THAT(
      ReadAll("\"O'Brien, Hélène\",\"say \"\"hi\"\"\",\"line 1\r\nline 2\"\r\nx,\"\",y\r\n"),
      ElementsAre(ElementsAre("O'Brien, Hélène", "say \"hi\"", "line 1\r\nline 2"),
                  ElementsAre("x", "", "y")));
}

TEST(CsvReaderTest, ByteOrderMarkIsNotPartOfTheFirstField) {
  EXPECT_THAT(ReadAll("\xEF\xBB\xBFregistration_id,given_name\r\n"),
              ElementsAre(ElementsAre("registration_id", "given_name")));
}

TEST(CsvReaderTest, TracksTheLineEachRecordStartsOn) {
  std::istringstream in("a\n\"multi\nline\"\nb\n");
  CsvReader reader(&in);
  std::vector<std::string> row;
  ASSERT_TRUE(*reader.Next(&row));
  EXPECT_EQ(reader.record_line(), 1);
  ASSERT_TRUE(*reader.Next(&row));
  EXPECT_EQ(reader.record_line(), 2);
  ASSERT_TRUE(*reader.Next(&row));
  EXPECT_EQ(reader.record_line(), 4);
  EXPECT_FALSE(*reader.Next(&row));
}

TEST(CsvReaderTest, MalformedQuotingIsAnError) {
  for (const char* text : {"a,\"never closed\n", "a,\"closed\"then text\n"}) {
    std::istringstream in(text);
    CsvReader reader(&in);
    std::vector<std::string> row;
    absl::StatusOr<bool> read = reader.Next(&row);
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

// Excel's "Unicode text" is UTF-16: refused with what to do, not read as garbage columns.
TEST(CsvReaderTest, Utf16FilesAreRefusedWithAHint) {
  for (const std::string& text :
       {std::string("\xFF\xFEr\0e\0", 6), std::string("\xFE\xFF\0r\0e", 6)}) {
    std::istringstream in(text);
    CsvReader reader(&in);
    std::vector<std::string> row;
    absl::StatusOr<bool> read = reader.Next(&row);
    EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(read.status().message()), ::testing::HasSubstr("save it as CSV UTF-8"));
  }
}

TEST(CsvWriterTest, QuotesOnlyWhenNeededAndReadsBack) {
  EXPECT_EQ(CsvField("plain"), "plain");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField(" edge"), "\" edge\"");
  const std::vector<std::string> fields = {"a,b", "x\"y", "two\nlines", "", "Nguyễn"};
  EXPECT_THAT(ReadAll(CsvRecord(fields)), ElementsAre(fields));
}

TEST(CsvRecordsTest, RowRoundTripsAFullRecord) {
  v1::Practitioner p = testing::ValidPractitioner();
  p.add_former_names("Gagnon");
  p.add_conditions("Practice under supervision, with \"quotes\", commas");
  auto* history = p.mutable_authorizations(0)->add_status_history();
  history->set_status("AUTHORIZED");
  history->set_effective_on("2019-04-02");
  history->set_reason("granted, after review");
  auto* second = p.add_authorizations();
  second->set_activity(v1::ACUPUNCTURE);
  second->set_status(v1::Authorization::PENDING);
  p.add_locations()->set_city("Red Deer");
  absl::StatusOr<std::vector<std::string>> row = CsvRow(p);
  ASSERT_TRUE(row.ok()) << row.status();
  // Through CSV text and back, as a spreadsheet would hand it over.
  std::vector<std::vector<std::string>> rows = ReadAll(CsvRecord(CsvColumns()) + CsvRecord(*row));
  ASSERT_EQ(rows.size(), 2u);
  absl::StatusOr<CsvRecordParser> parser = CsvRecordParser::FromHeader(rows[0]);
  ASSERT_TRUE(parser.ok()) << parser.status();
  absl::StatusOr<v1::Practitioner> parsed = parser->Parse(rows[1]);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*parsed, p))
      << parsed->DebugString() << "\nvs\n"
      << p.DebugString();
}

// Through CSV text and back, as a spreadsheet would hand it over.
v1::Practitioner ThroughCsv(const v1::Practitioner& p, std::vector<std::string>* cells = nullptr) {
  absl::StatusOr<std::vector<std::string>> row = CsvRow(p);
  EXPECT_TRUE(row.ok()) << row.status();
  if (!row.ok()) return {};
  if (cells != nullptr) *cells = *row;
  std::vector<std::vector<std::string>> rows = ReadAll(CsvRecord(CsvColumns()) + CsvRecord(*row));
  EXPECT_EQ(rows.size(), 2u);
  if (rows.size() != 2) return {};
  absl::StatusOr<CsvRecordParser> parser = CsvRecordParser::FromHeader(rows[0]);
  EXPECT_TRUE(parser.ok()) << parser.status();
  absl::StatusOr<v1::Practitioner> parsed = parser->Parse(rows[1]);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : v1::Practitioner();
}

void ExpectSame(const v1::Practitioner& parsed, const v1::Practitioner& p) {
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, p))
      << parsed.DebugString() << "\nvs\n"
      << p.DebugString();
}

std::string Cell(const std::vector<std::string>& cells, const std::string& column) {
  const std::vector<std::string> columns = CsvColumns();
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == column) return cells[i];
  }
  ADD_FAILURE() << "no column " << column;
  return "";
}

TEST(CsvRecordsTest, MultiLineValuesAndEdgeSpacesRoundTrip) {
  v1::Practitioner p = testing::ValidPractitioner();
  p.set_preferred_name("  Léna  ");  // Spaces are part of a field.
  p.mutable_locations(0)->set_street_address("Suite 200\n123 8 Ave SW");  // Multi-line scalar.
  p.mutable_locations(0)->set_clinic_name("Bow River\r\nPhysio ");
  p.add_former_names(" Gagnon");
  p.add_conditions("Two lines:\nsecond line");  // A line break inside a list item.
  p.add_conditions("C:\\new\\path \\n is not a break");
  p.add_languages("Cree ");
  auto* a = p.mutable_authorizations(0);
  a->mutable_training(0)->set_provider(" iSTOP | Calgary ");
  a->mutable_training(0)->set_course("Gunn\\IMS");
  for (const char* reason : {"Audit of needling records\nsee file 12", "  spaced  ", ""}) {
    auto* change = a->add_status_history();
    change->set_status("AUTHORIZED");
    change->set_effective_on("2019-04-02");
    change->set_reason(reason);
  }
  auto* permit_change = p.mutable_permit()->add_status_history();
  permit_change->set_status("ACTIVE");
  permit_change->set_effective_on("2015-04-01");
  permit_change->set_reason("Renewed\r\nafter review\\");
  std::vector<std::string> cells;
  ExpectSame(ThroughCsv(p, &cells), p);
  // Quoted, not trimmed: the scalar's line break stays in its cell.
  EXPECT_EQ(Cell(cells, "location1_street_address"), "Suite 200\n123 8 Ave SW");
  EXPECT_EQ(Cell(cells, "conditions"),
            "Two lines:\\nsecond line\n"
            "C:\\\\new\\\\path \\\\n is not a break");
}

TEST(CsvRecordsTest, HandWrittenListsStillRead) {
  absl::StatusOr<CsvRecordParser> parser = CsvRecordParser::FromHeader(
      {"registration_id", "given_name", "family_name", "register", "permit_status", "registered_on",
       "languages", "dry_needling_training", "dry_needling_status_history"});
  ASSERT_TRUE(parser.ok()) << parser.status();
  absl::StatusOr<v1::Practitioner> p = parser->Parse(
      {"PT-1", "A", "B", "GENERAL", "ACTIVE", "2020-01-01", "English\r\n\r\nFrench\r\n",
       "2019-01-15|120|iSTOP|Gunn IMS", " 2019-04-02 authorized granted, after review"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->languages(), ElementsAre("English", "French"));
  const v1::Authorization& a = p->authorizations(0);
  EXPECT_EQ(a.training(0).provider(), "iSTOP");
  EXPECT_EQ(a.training(0).course(), "Gunn IMS");
  EXPECT_EQ(a.training(0).hours(), 120);
  EXPECT_EQ(a.status_history(0).status(), "AUTHORIZED");
  EXPECT_EQ(a.status_history(0).reason(), "granted, after review");
}

TEST(CsvRecordsTest, FormulaCellsAreWrittenAsTextAndReadBackExactly) {
  v1::Practitioner p = testing::ValidPractitioner();
  p.set_given_name("=HYPERLINK(\"http://evil.example\",\"x\")");
  p.set_family_name("@SUM(A1)");
  p.set_preferred_name("-2+3");
  p.clear_former_names();
  p.add_former_names("'=already quoted");
  p.add_former_names("'plain apostrophe");
  p.mutable_private_contact()->set_phone("+1 403 555 0100");
  p.mutable_locations(0)->set_phone("+1 403 555 0143");
  p.mutable_locations(0)->set_longitude(-114.0719);
  std::vector<std::string> cells;
  ExpectSame(ThroughCsv(p, &cells), p);
  EXPECT_EQ(Cell(cells, "given_name"), "'=HYPERLINK(\"http://evil.example\",\"x\")");
  EXPECT_EQ(Cell(cells, "family_name"), "'@SUM(A1)");
  EXPECT_EQ(Cell(cells, "preferred_name"), "'-2+3");
  EXPECT_EQ(Cell(cells, "phone"), "'+1 403 555 0100");
  EXPECT_EQ(Cell(cells, "location1_phone"), "'+1 403 555 0143");
  EXPECT_EQ(Cell(cells, "location1_longitude"), "-114.0719");  // A number runs nothing.
  EXPECT_EQ(Cell(cells, "former_names"), "''=already quoted\n'plain apostrophe");
  // Only a cell's start matters to a spreadsheet; later lines are kept as they are.
  p.set_given_name("Anna");
  p.clear_former_names();
  p.add_former_names("Smith");
  p.add_former_names("=not at the start");
  ExpectSame(ThroughCsv(p, &cells), p);
  EXPECT_EQ(Cell(cells, "former_names"), "Smith\n=not at the start");
  EXPECT_EQ(ToSpreadsheetCell("plain"), "plain");
  EXPECT_EQ(FromSpreadsheetCell("'+1 403 555 0100"), "+1 403 555 0100");
  EXPECT_EQ(FromSpreadsheetCell("'plain"), "'plain");  // Only before = + - @.
  EXPECT_EQ(FromSpreadsheetCell("'"), "'");
}

TEST(CsvRecordsTest, SpreadsheetSubsetWithEmptyOptionalCells) {
  absl::StatusOr<CsvRecordParser> parser = CsvRecordParser::FromHeader(
      {"Registration_ID", "given_name", "family_name", "preferred_name", "register",
       "permit_status", "registered_on", "dry_needling_status", "dry_needling_techniques",
       "location1_city"});
  ASSERT_TRUE(parser.ok()) << parser.status();
  absl::StatusOr<v1::Practitioner> p =
      parser->Parse({"pt-7", "Chloé", "Bélanger", "", "general", "Active", "2020-01-02",
                     "AUTHORIZED", "IMS\nTRIGGER_POINT_DRY_NEEDLING", ""});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->registration_id(), "pt-7");
  EXPECT_EQ(p->given_name(), "Chloé");
  EXPECT_TRUE(p->preferred_name().empty());
  EXPECT_EQ(p->permit().register_(), v1::GENERAL);
  ASSERT_EQ(p->authorizations_size(), 1);
  EXPECT_EQ(p->authorizations(0).techniques_size(), 2);
  EXPECT_EQ(p->locations_size(), 0);
}

TEST(CsvRecordsTest, HeaderErrorsAreClear) {
  absl::StatusOr<CsvRecordParser> unknown =
      CsvRecordParser::FromHeader({"registration_id", "given_name", "family_name", "register",
                                   "permit_status", "registered_on", "shoe_size"});
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("unknown column 'shoe_size'"));
  absl::StatusOr<CsvRecordParser> missing =
      CsvRecordParser::FromHeader({"registration_id", "given_name", "family_name"});
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("'register' is missing"));
}

TEST(CsvRecordsTest, BadCellNamesItsColumn) {
  absl::StatusOr<CsvRecordParser> parser =
      CsvRecordParser::FromHeader({"registration_id", "given_name", "family_name", "register",
                                   "permit_status", "registered_on", "location1_latitude"});
  ASSERT_TRUE(parser.ok());
  absl::StatusOr<v1::Practitioner> p =
      parser->Parse({"PT-1", "A", "B", "GENERAL", "ACTIVE", "2020-01-01", "north"});
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("location1_latitude"));
  p = parser->Parse({"PT-1", "A", "B", "GENERAL", "SLEEPING", "2020-01-01", ""});
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("permit_status"));
  p = parser->Parse({"PT-1", "A"});
  EXPECT_FALSE(p.ok());
}

TEST(CsvRecordsTest, MoreLocationsThanColumnsRefusesToExport) {
  v1::Practitioner p = testing::ValidPractitioner();
  for (int i = 0; i < kCsvLocationGroups; ++i) p.add_locations()->set_city("Banff");
  EXPECT_EQ(CsvRow(p).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Utf8Test, ValidPrefixStopsAtTheFirstByteThatIsNotUtf8) {
  EXPECT_EQ(ValidUtf8Prefix(""), 0u);
  EXPECT_EQ(ValidUtf8Prefix("plain"), 5u);
  EXPECT_EQ(ValidUtf8Prefix("Hélène Nguyễn 🙂"),
            std::string("Hélène Nguyễn 🙂").size());
  EXPECT_EQ(ValidUtf8Prefix("H\xE9l\xE8ne"), 1u);      // Windows-1252.
  EXPECT_EQ(ValidUtf8Prefix("ab\xC3"), 2u);            // Cut short.
  EXPECT_EQ(ValidUtf8Prefix("\xC0\xAF"), 0u);          // Overlong '/'.
  EXPECT_EQ(ValidUtf8Prefix("\xED\xA0\x80"), 0u);      // A surrogate.
  EXPECT_EQ(ValidUtf8Prefix("\xF4\x90\x80\x80"), 0u);  // Past U+10FFFF.
  EXPECT_EQ(ValidUtf8Prefix("a\x80"), 1u);             // A lone continuation byte.
}

// Runs of ASCII are skipped eight bytes at a time: a bad byte anywhere (before, inside or
// after such a run) still ends the prefix there.
TEST(Utf8Test, ValidPrefixFindsABadByteAtEveryOffset) {
  for (size_t at = 0; at < 40; ++at) {
    const std::string head(at, 'a');
    EXPECT_EQ(ValidUtf8Prefix(head + "\xE9" + std::string(20, 'b')), at) << at;
    EXPECT_EQ(ValidUtf8Prefix(head + "\x80"), at) << at;
    EXPECT_EQ(ValidUtf8Prefix(head + "\xC3"), at) << at;  // Cut short at the end.
    const std::string good = head + "\xC3\xA9" + std::string(at % 9, 'c') + "\xF0\x9F\x99\x82";
    EXPECT_EQ(ValidUtf8Prefix(good), good.size()) << at;
    EXPECT_EQ(ValidUtf8Prefix(good + "\xFF" + head), good.size()) << at;
  }
}

TEST(ForTerminalTest, ControlAndBidiCharactersAreShownAsEscapes) {
  EXPECT_EQ(ForTerminal("Hélène O'Brien 🙂"), "Hélène O'Brien 🙂");
  EXPECT_EQ(ForTerminal("a\x1b[2Jb"), "a\\x1B[2Jb");
  EXPECT_EQ(ForTerminal("line\r\nnext\t\x7f"), "line\\x0D\\x0Anext\\x09\\x7F");
  EXPECT_EQ(ForTerminal("abc\u202Egpj.exe"), "abc\\u202Egpj.exe");  // Right-to-left override.
  EXPECT_EQ(ForTerminal("x\u2066y\u2069\u200F"), "x\\u2066y\\u2069\\u200F");
  EXPECT_EQ(ForTerminal("\xC2\x9B"
                        "31m"),
            "\\u009B31m");                                   // C1 control sequence introducer.
  EXPECT_EQ(ForTerminal("H\xE9l\xE8ne"), "H\\xE9l\\xE8ne");  // Not UTF-8.
}

}  // namespace
}  // namespace physioreg::client
