// physioreg-generate --format csv (tools/generator/csv.h): RFC 4180 quoting, one row per
// registrant holding the same records as the JSONL, and the dry-needling day ranges equal to
// what the verification rule answers on the records a real server stores for that JSONL.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "service/core/dates.h"
#include "service/core/verification.h"
#include "tests/support/subprocess.h"
#include "tests/support/temp_dir.h"
#include "tools/generator/csv.h"
#include "tools/generator/generator.h"

namespace physioreg::tools {
namespace {

namespace v1 = physioreg::v1;
using google::protobuf::util::MessageDifferencer;
using testing::RunCommand;
using testing::TempDir;

constexpr int kColumns = 11;
constexpr int kDryNeedling = 9, kRecord = 10;

// An RFC 4180 reader written for the test: rows of fields; fails the test on malformed input.
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '"') {
      ++i;
      while (true) {
        if (i >= text.size()) {
          ADD_FAILURE() << "unterminated quoted field";
          return rows;
        }
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field.push_back(text[i++]);
      }
      if (i < text.size() && text[i] != ',' && text[i] != '\n') {
        ADD_FAILURE() << "text after a closing quote at byte " << i;
        return rows;
      }
    } else {
      while (i < text.size() && text[i] != ',' && text[i] != '\n') {
        if (text[i] == '"' || text[i] == '\r') ADD_FAILURE() << "unquoted special at byte " << i;
        field.push_back(text[i++]);
      }
    }
    row.push_back(std::move(field));
    field.clear();
    if (i < text.size() && text[i] == ',') {
      ++i;
      if (i == text.size()) row.emplace_back();
    } else {
      ++i;  // '\n' or the end.
      rows.push_back(std::move(row));
      row.clear();
    }
  }
  return rows;
}

v1::Practitioner FromJson(const std::string& json) {
  v1::Practitioner p;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &p).ok()) << json;
  return p;
}

TEST(CsvField, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(CsvField("Tremblay"), "Tremblay");
  EXPECT_EQ(CsvField("Hélène ਸਿੰਘ 陈"), "Hélène ਸਿੰਘ 陈");
  EXPECT_EQ(CsvField("Smith, Jr."), "\"Smith, Jr.\"");
  EXPECT_EQ(CsvField("the \"Doc\""), "\"the \"\"Doc\"\"\"");
  EXPECT_EQ(CsvField("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(CsvField("cr\r"), "\"cr\r\"");
  // PostgreSQL's COPY reads an unquoted empty field as NULL.
  EXPECT_EQ(CsvField(""), "\"\"");
}

TEST(CsvRow, AwkwardNamesComeBackIntact) {
  v1::Practitioner p = GenerateRegistrant(1, 2);
  p.set_given_name("Zoë \"Z\", the\nsecond");
  p.set_family_name("O'Brien-Côté, 陈");
  p.set_preferred_name("");
  p.clear_former_names();
  p.add_former_names("ਸਿੰਘ");
  absl::StatusOr<std::string> line = CsvRow(p);
  ASSERT_TRUE(line.ok()) << line.status();
  ASSERT_EQ(line->back(), '\n');
  const auto rows = ParseCsv(*line);
  ASSERT_EQ(rows.size(), 1u);
  const std::vector<std::string>& row = rows[0];
  ASSERT_EQ(row.size(), static_cast<size_t>(kColumns));
  EXPECT_EQ(row[0], p.registration_id());
  EXPECT_EQ(row[1], p.given_name());
  EXPECT_EQ(row[2], p.family_name());
  EXPECT_EQ(row[3], "zoe z the second");
  EXPECT_EQ(row[4], "obrien cote 陈");
  EXPECT_EQ(row[5], "brien cote o obrien obriencote second the z zoe ਸਿੰਘ 陈");
  EXPECT_TRUE(MessageDifferencer::Equals(FromJson(row[kRecord]), core::PublicView(AsStored(p))));
  EXPECT_EQ(ParseCsv(CsvHeader())[0].size(), static_cast<size_t>(kColumns));
}

TEST(DateMultirange, WritesHalfOpenRanges) {
  EXPECT_EQ(DateMultirange({}), "{}");
  EXPECT_EQ(DateMultirange({{absl::CivilDay(2020, 1, 2), absl::CivilDay(2021, 3, 4)},
                            {absl::CivilDay(2022, 5, 6), std::nullopt}}),
            "{[2020-01-02,2021-03-04),[2022-05-06,)}");
}

bool InRanges(const std::vector<DayInterval>& ranges, absl::CivilDay day) {
  for (const DayInterval& r : ranges) {
    if (r.from <= day && (!r.to || day < *r.to)) return true;
  }
  return false;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return lines;
}

TEST(GenerateCsv, SameRecordsAsJsonlAndAsTheServerStoresThem) {
  TempDir dir;
  constexpr int kCount = 300;
  const std::vector<std::string> base = {PHYSIOREG_GENERATE_PATH, "--count", std::to_string(kCount),
                                         "--seed", "7"};
  std::vector<std::string> csv_args = base;
  csv_args.insert(csv_args.end(), {"--format", "csv"});
  const testing::CommandResult jsonl = RunCommand(base);
  const testing::CommandResult csv = RunCommand(csv_args);
  ASSERT_EQ(jsonl.exit_code, 0) << jsonl.output;
  ASSERT_EQ(csv.exit_code, 0) << csv.output;
  const std::vector<std::string> records = Lines(jsonl.output);
  ASSERT_EQ(records.size(), static_cast<size_t>(kCount));
  const auto rows = ParseCsv(csv.output);
  ASSERT_EQ(rows.size(), static_cast<size_t>(kCount + 1));  // The header, then one per record.
  EXPECT_EQ(csv.output.substr(0, csv.output.find('\n') + 1), CsvHeader());

  // The same register into a real server; its export is what it stored.
  const std::string jsonl_path = dir.Sub("register.jsonl");
  std::ofstream(jsonl_path) << jsonl.output;
  testing::ServerProcess server(dir.Sub("data"));
  ASSERT_TRUE(server.started()) << server.output();
  const std::vector<std::string> cli = {PHYSIOREG_CLI_PATH, "--address", server.address(),
                                        "--token-file", dir.Sub("data/regulator.token")};
  std::vector<std::string> import = cli, exported = cli;
  import.insert(import.end(), {"import", jsonl_path});
  exported.insert(exported.end(), {"export", "--output", dir.Sub("export.jsonl")});
  const testing::CommandResult imported = RunCommand(import);
  ASSERT_EQ(imported.exit_code, 0) << imported.output;
  const testing::CommandResult exported_run = RunCommand(exported);
  ASSERT_EQ(exported_run.exit_code, 0) << exported_run.output;
  std::stringstream export_text;
  export_text << std::ifstream(dir.Sub("export.jsonl")).rdbuf();
  std::map<std::string, v1::Practitioner> stored;
  for (const std::string& line : Lines(export_text.str())) {
    v1::Practitioner p = FromJson(line);
    p.clear_revision();
    p.clear_update_time();
    stored[p.registration_id()] = p;
  }
  ASSERT_EQ(stored.size(), static_cast<size_t>(kCount));

  int authorized_rows = 0;
  for (int i = 0; i < kCount; ++i) {
    const std::vector<std::string>& row = rows[static_cast<size_t>(i) + 1];
    ASSERT_EQ(row.size(), static_cast<size_t>(kColumns)) << "row " << i;
    const v1::Practitioner from_jsonl = FromJson(records[static_cast<size_t>(i)]);
    const v1::Practitioner from_csv = FromJson(row[kRecord]);
    EXPECT_EQ(row[0], from_jsonl.registration_id());
    EXPECT_EQ(row[1], from_jsonl.given_name());
    EXPECT_EQ(row[2], from_jsonl.family_name());
    EXPECT_TRUE(MessageDifferencer::Equals(from_csv, core::PublicView(AsStored(from_jsonl))))
        << row[0];
    ASSERT_TRUE(stored.contains(row[0])) << row[0];
    const v1::Practitioner& server_record = stored[row[0]];
    EXPECT_TRUE(MessageDifferencer::Equals(from_csv, server_record))
        << row[0] << "\ncsv:    " << from_csv.ShortDebugString()
        << "\nserver: " << server_record.ShortDebugString();
    // The day ranges, from the server's stored record, agree with the rule on every day the
    // answer could change and the days either side of it.
    const std::vector<DayInterval> ranges = AuthorizedDays(server_record, v1::DRY_NEEDLING);
    EXPECT_EQ(row[kDryNeedling], DateMultirange(ranges)) << row[0];
    if (!ranges.empty()) ++authorized_rows;
    std::vector<std::string> dates = {server_record.permit().registered_on(),
                                      server_record.permit().expires_on()};
    for (const auto& c : server_record.permit().status_history()) dates.push_back(c.effective_on());
    for (const auto& a : server_record.authorizations()) {
      dates.insert(dates.end(), {a.granted_on(), a.expires_on()});
      for (const auto& c : a.status_history()) dates.push_back(c.effective_on());
    }
    for (const std::string& date : dates) {
      const std::optional<absl::CivilDay> day = core::ParseDate(date);
      if (!day) continue;
      for (int offset : {-1, 0, 1}) {
        const absl::CivilDay d = *day + offset;
        EXPECT_EQ(core::Verify(&server_record, row[0], v1::DRY_NEEDLING, core::FormatDate(d))
                      .authorized(),
                  InRanges(ranges, d))
            << row[0] << " on " << core::FormatDate(d);
      }
    }
  }
  // About a third of the register is authorized for dry needling at some time.
  EXPECT_GT(authorized_rows, kCount / 10);
}

TEST(GenerateCsv, RejectsAnUnknownFormat) {
  const testing::CommandResult result =
      RunCommand({PHYSIOREG_GENERATE_PATH, "--count", "3", "--format", "xml"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.output.find("usage"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace physioreg::tools
