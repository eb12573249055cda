#include "client/practitioner_json.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "client/csv.h"
#include "client/transfer.h"
#include "tools/generator/generator.h"

namespace physioreg::client {
namespace {

namespace v1 = physioreg::v1;
using google::protobuf::util::JsonStringToMessage;
using google::protobuf::util::MessageDifferencer;

std::string ToJson(const v1::Practitioner& record) {
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(record, &json).ok());
  return json;
}

// The fast parser either declines or gives exactly protobuf's result. Returns whether it took
// the text.
bool SameAsProtobuf(const std::string& json) {
  v1::Practitioner slow;
  const auto slow_status = JsonStringToMessage(json, &slow);
  v1::Practitioner fast;
  if (!ParsePractitionerJsonFast(json, &fast)) return false;
  EXPECT_TRUE(slow_status.ok()) << "fast path accepted what protobuf refuses ("
                                << slow_status.message() << "): " << json;
  EXPECT_TRUE(MessageDifferencer::Equals(fast, slow))
      << json << "\nfast: " << fast.ShortDebugString() << "\nslow: " << slow.ShortDebugString();
  EXPECT_EQ(fast.SerializeAsString(), slow.SerializeAsString()) << json;
  return true;
}

// A record with every field set, some twice over.
v1::Practitioner Full() {
  v1::Practitioner p = tools::GenerateRegistrant(7, 3);
  p.set_preferred_name("Bé \"Bea\" \\ O'Neil");
  p.add_former_names("Li 李");
  p.add_former_names("");
  p.add_conditions("supervised\nonly\tuntil 2027");
  p.add_languages("Français");
  v1::Permit* permit = p.mutable_permit();
  auto* change = permit->add_status_history();
  change->set_status("ACTIVE");
  change->set_effective_on("2001-01-02");
  change->set_reason("initial / first");
  v1::Authorization* a = p.add_authorizations();
  a->set_activity(v1::SPINAL_MANIPULATION);
  a->set_status(v1::Authorization::SUSPENDED);
  a->set_granted_on("2010-05-06");
  a->set_expires_on("2030-01-01");
  a->add_conditions("no minors");
  a->add_techniques(v1::IMS);
  auto* training = a->add_training();
  training->set_provider("P");
  training->set_course("C");
  training->set_hours(12.75);
  training->set_completed_on("2010-05-01");
  auto* history = a->add_status_history();
  history->set_status("SUSPENDED");
  history->set_effective_on("2011-01-01");
  v1::PracticeLocation* location = p.add_locations();
  location->set_clinic_name("Clinique <Santé> & Co");
  location->set_latitude(-0.5);
  location->set_longitude(1e-7);
  p.mutable_private_contact()->set_email("a@b.ca");
  p.mutable_private_contact()->set_phone("555");
  p.set_revision(123456789);
  p.mutable_update_time()->set_seconds(1764000000);
  p.mutable_update_time()->set_nanos(123456789);
  return p;
}

TEST(PractitionerJsonFast, GeneratedRecordsRoundTripAndMatchProtobuf) {
  for (int i = 0; i < 2000; ++i) {
    const v1::Practitioner original = tools::GenerateRegistrant(1, i);
    const std::string json = ToJson(original);
    ASSERT_TRUE(SameAsProtobuf(json)) << "fast path declined a generated record: " << json;
    v1::Practitioner fast;
    ASSERT_TRUE(ParsePractitionerJsonFast(json, &fast));
    EXPECT_TRUE(MessageDifferencer::Equals(fast, original)) << json;
  }
}

TEST(PractitionerJsonFast, EveryFieldAsExportWritesIt) {
  const v1::Practitioner full = Full();
  const std::string json = ToJson(full);
  ASSERT_TRUE(SameAsProtobuf(json)) << json;
  v1::Practitioner fast;
  ASSERT_TRUE(ParsePractitionerJsonFast(json, &fast));
  EXPECT_TRUE(MessageDifferencer::Equals(fast, full)) << fast.ShortDebugString();
  // Each field alone, so a field the parser drops or misplaces cannot hide behind another.
  for (
      const std::string& one : std::vector<std::string>{
          R"({"registrationId":"pt-1"})",
          R"({"givenName":"A"})",
          R"({"familyName":"B"})",
          R"({"preferredName":"C"})",
          R"({"formerNames":["D","E"]})",
          R"({"permit":{"register":"COURTESY"}})",
          R"({"permit":{"status":"CANCELLED"}})",
          R"({"permit":{"registeredOn":"x"}})",
          R"({"permit":{"expiresOn":"y"}})",
          R"({"permit":{"statusHistory":[{"status":"s","effectiveOn":"e","reason":"r"}]}})",
          R"({"authorizations":[{"activity":"ACUPUNCTURE"}]})",
          R"({"authorizations":[{"status":"REVOKED"}]})",
          R"({"authorizations":[{"techniques":["IMS","TRIGGER_POINT_DRY_NEEDLING"]}]})",
          R"({"authorizations":[{"grantedOn":"g","expiresOn":"x"}]})",
          R"({"authorizations":[{"conditions":["c1","c2"]}]})",
          R"({"authorizations":[{"training":[{"provider":"p","course":"c","hours":1.5,"completedOn":"d"}]}]})",
          R"({"authorizations":[{"statusHistory":[{"status":"s"}]},{}]})",
          R"({"locations":[{"clinicName":"a","streetAddress":"b","city":"c","province":"d"}]})",
          R"({"locations":[{"postalCode":"e","phone":"f","latitude":-45.5,"longitude":170}]})",
          R"({"languages":["en","fr"]})",
          R"({"conditions":["x"]})",
          R"({"privateContact":{"email":"e","phone":"p"}})",
          R"({"privateContact":{}})",
          R"({"permit":{}})",
          R"({"revision":"42"})",
          R"({"revision":42})",
          R"({"updateTime":"2026-11-30T12:00:00Z"})",
          R"({"updateTime":"1970-01-01T00:00:00.500Z"})",
          R"({"updateTime":"2000-02-29T23:59:59.123456Z"})",
          R"({})",
          R"(  { "givenName" : "A" } )",
          "{\"givenName\":\"A\"}\r"}) {
    EXPECT_TRUE(SameAsProtobuf(one)) << "declined: " << one;
  }
  v1::Practitioner p;
  ASSERT_TRUE(ParsePractitionerJsonFast(
      R"({"updateTime":"2026-11-30T12:34:56.700Z","revision":"9007199254740993"})", &p));
  EXPECT_EQ(p.update_time().seconds(), 1796042096);
  EXPECT_EQ(p.update_time().nanos(), 700000000);
  EXPECT_EQ(p.revision(), 9007199254740993);
}

TEST(PractitionerJsonFast, EscapesAndUnicode) {
  // Taken by the fast path.
  for (const std::string& json : std::vector<std::string>{
           R"({"givenName":"Ren\u00e9e \"Q\" \\ \/ \b\f\n\r\t"})",
           R"({"givenName":"\u4E2D\u6587 \u0041\u007f\u0080\u07FF\u0800\uFFFF"})",
           "{\"familyName\":\"\xE0\xA8\xB8\xE0\xA8\xBF\xE0\xA9\xB0\xE0\xA8\x98 \xF0\x9F\x98\x80\"}",
       }) {
    EXPECT_TRUE(SameAsProtobuf(json)) << json;
  }
  // Declined: protobuf decides (surrogate pairs, lone surrogates, NUL, bad escapes, raw
  // control bytes, single quotes, unquoted keys).
  for (const std::string& json : std::vector<std::string>{
           R"({"givenName":"\ud83d\ude00"})", R"({"givenName":"\ud83d"})",
           R"({"givenName":"\u0000"})", R"({"givenName":"\x41"})", R"({"givenName":"\u12"})",
           "{\"givenName\":\"a\tb\"}", std::string("{\"givenName\":\"a\0b\"}", 17),
           R"({'givenName':'A'})", R"({givenName:"A"})", R"({"given\u004eame":"A"})"}) {
    EXPECT_FALSE(SameAsProtobuf(json)) << json;
  }
}

TEST(PractitionerJsonFast, Numbers) {
  for (const std::string& n : std::vector<std::string>{
           "27", "27.5", "-0", "-0.0", "0", "0.0", "1e2", "1E-2", "0.1", "-123.0023512292635",
           "123456789012345", "-123456789012345", "49.280463804068432", "1.7976931348623157e308",
           "2.2250738585072014e-308"}) {
    EXPECT_TRUE(SameAsProtobuf(R"({"locations":[{"latitude":)" + n + "}]}")) << n;
    EXPECT_TRUE(SameAsProtobuf(R"({"authorizations":[{"training":[{"hours":)" + n + "}]}]}")) << n;
  }
  for (const std::string& n : std::vector<std::string>{"1234567890123456",
                                                       "12345678901234567890",
                                                       "01",
                                                       "1.",
                                                       ".5",
                                                       "+1",
                                                       "\"27\"",
                                                       "\"NaN\"",
                                                       "1e400",
                                                       "-1e400",
                                                       "5e-324",
                                                       "1e-400",
                                                       "0x10",
                                                       "1e",
                                                       "--1",
                                                       "1.5.5",
                                                       "null",
                                                       "true",
                                                       "Infinity",
                                                       "1_0"}) {
    EXPECT_FALSE(SameAsProtobuf(R"({"locations":[{"latitude":)" + n + "}]}")) << n;
  }
  for (const std::string& n :
       std::vector<std::string>{"\"0\"", "0", "\"123456789012345678\"", "7"}) {
    EXPECT_TRUE(SameAsProtobuf(R"({"revision":)" + n + "}")) << n;
  }
  for (const std::string& n :
       std::vector<std::string>{"\"012\"", "-1", "\"-1\"", "9223372036854775807",
                                "\"9223372036854775808\"", "1.0", "\"\"", "\"1 \"", "1e3"}) {
    EXPECT_FALSE(SameAsProtobuf(R"({"revision":)" + n + "}")) << n;
  }
}

TEST(PractitionerJsonFast, Timestamps) {
  for (const std::string& t : std::vector<std::string>{
           "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "1969-12-31T23:59:59.001Z",
           "2024-02-29T00:00:00Z", "1900-03-01T12:00:00Z", "2000-12-31T00:00:00.000001Z"}) {
    EXPECT_TRUE(SameAsProtobuf(R"({"updateTime":")" + t + "\"}")) << t;
  }
  for (const std::string& t : std::vector<std::string>{
           "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
           "2026-04-31T00:00:00Z", "0000-01-01T00:00:00Z", "2026-01-01T24:00:00Z",
           "2026-01-01T00:60:00Z", "2026-01-01T00:00:60Z", "2026-01-01T00:00:00.1Z",
           "2026-01-01T00:00:00+01:00", "2026-01-01 00:00:00Z", "2026-01-01T00:00:00z",
           "2026-1-1"}) {
    EXPECT_FALSE(SameAsProtobuf(R"({"updateTime":")" + t + "\"}")) << t;
  }
}

TEST(PractitionerJsonFast, DeclinesWhatItDoesNotKnow) {
  for (const std::string& json :
       std::vector<std::string>{R"({"registration_id":"PT-1"})",         // The proto name.
                                R"({"givenName":"A","givenName":"B"})",  // Named twice.
                                R"({"formerNames":["A"],"formerNames":["B"]})",
                                R"({"permit":{"status":"ACTIVE","status":"INACTIVE"}})",
                                R"({"nickname":"A"})",
                                R"({"givenName":null})",
                                R"({"permit":null})",
                                R"({"formerNames":[null]})",
                                R"({"formerNames":"A"})",
                                R"({"permit":{"register":1}})",
                                R"({"permit":{"register":"general"}})",
                                R"({"permit":{"register":"NOPE"}})",
                                R"({"givenName":"A",})",
                                R"({"formerNames":["A",]})",
                                R"({"givenName":"A"} x)",
                                R"({"givenName":"A"}{})",
                                R"([{"givenName":"A"}])",
                                R"({"givenName":"A")",
                                R"({"givenName" "A"})",
                                "\xEF\xBB\xBF{}",
                                "",
                                " ",
                                "{\"givenName\":\"A\"}\v",
                                R"({"revision":"1","updateTime":{}})"}) {
    EXPECT_FALSE(SameAsProtobuf(json)) << json;
  }
}

// What the CLI does with a line: protobuf's exact error text whenever the fast path declines.
TEST(PractitionerJsonFast, ParseJsonLineKeepsProtobufsErrors) {
  for (const std::string& json : std::vector<std::string>{
           R"({"givenName":5})", R"({"nickname":"A"})", R"({"permit":{"register":"NOPE"}})",
           R"({"givenName":"A")", R"({"locations":[{"latitude":1e400}]})", "{]"}) {
    v1::Practitioner slow;
    const auto status = JsonStringToMessage(json, &slow);
    ASSERT_FALSE(status.ok()) << json;
    const RecordSource::Item item = ParseJsonLine(3, json);
    EXPECT_EQ(item.line, 3);
    ASSERT_FALSE(item.record.ok()) << json;
    EXPECT_EQ(item.record.status().message(), "json: " + status.message().as_string());
  }
  const RecordSource::Item item = ParseJsonLine(4, R"({"givenName":"A","familyName":"B"})");
  ASSERT_TRUE(item.record.ok());
  EXPECT_EQ(item.record->given_name(), "A");
  EXPECT_EQ(item.record->family_name(), "B");
  // A line the fast path declines halfway through gives protobuf's record, nothing of the
  // half-parsed one.
  const RecordSource::Item late =
      ParseJsonLine(5, R"({"givenName":"A","formerNames":["X"],"registration_id":"PT-9"})");
  ASSERT_TRUE(late.record.ok()) << late.record.status();
  EXPECT_EQ(late.record->former_names_size(), 1);
  EXPECT_EQ(late.record->registration_id(), "PT-9");
}

// Mutations of real lines: truncations everywhere, and random bytes replaced, inserted or
// removed. Whatever the fast path takes must be what protobuf makes of it.
TEST(PractitionerJsonFast, MutatedLinesMatchProtobuf) {
  std::mt19937 random(13);
  const std::string interesting = "\"\\{}[],:0123456789-+.eE \tnulltrueuU/abfAZ_\x7F\xC3\xA9";
  int taken = 0;
  int tried = 0;
  std::vector<std::string> lines;
  for (int i = 0; i < 40; ++i) lines.push_back(ToJson(tools::GenerateRegistrant(3, i)));
  lines.push_back(ToJson(Full()));
  for (const std::string& line : lines) {
    for (size_t cut = 0; cut < line.size(); ++cut) {
      const std::string part = line.substr(0, cut);
      if (ValidUtf8Prefix(part) != part.size()) continue;
      ++tried;
      taken += SameAsProtobuf(part) ? 1 : 0;
    }
    for (int round = 0; round < 300; ++round) {
      std::string mutated = line;
      const int edits = 1 + static_cast<int>(random() % 3);
      for (int e = 0; e < edits && !mutated.empty(); ++e) {
        const size_t at = random() % mutated.size();
        const char c = interesting[random() % interesting.size()];
        switch (random() % 3) {
          case 0:
            mutated[at] = c;
            break;
          case 1:
            mutated.insert(mutated.begin() + static_cast<std::ptrdiff_t>(at), c);
            break;
          default:
            mutated.erase(at, 1);
        }
      }
      if (ValidUtf8Prefix(mutated) != mutated.size()) continue;
      ++tried;
      taken += SameAsProtobuf(mutated) ? 1 : 0;
    }
  }
  // Both outcomes occurred, so neither side of the comparison is vacuous.
  EXPECT_GT(taken, 100);
  EXPECT_GT(tried - taken, 1000);
}

}  // namespace
}  // namespace physioreg::client
