#include "client/csv.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <sstream>

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

}  // namespace
}  // namespace physioreg::client
