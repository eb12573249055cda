// Tests of the facts the verification rule reads (core::VerificationFacts): read from a
// serialized public view by ParseVerificationFacts, they must give the answers the rule gives
// over the parsed message, for every record protobuf itself accepts.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "physioreg/v1/practitioner.pb.h"
#include "physioreg/v1/registry.pb.h"
#include "service/core/verification.h"
#include "tools/generator/generator.h"

namespace physioreg::core {
namespace {

namespace v1 = physioreg::v1;

const std::vector<v1::RestrictedActivity>& Activities() {
  static const auto* activities =
      new std::vector<v1::RestrictedActivity>{v1::RESTRICTED_ACTIVITY_UNSPECIFIED,
                                              v1::DRY_NEEDLING,
                                              v1::ACUPUNCTURE,
                                              v1::SPINAL_MANIPULATION,
                                              v1::PELVIC_HEALTH_INTERNAL_EXAM,
                                              v1::DIAGNOSTIC_IMAGING_ORDERING};
  return *activities;
}

const std::vector<std::string>& Dates() {
  static const auto* dates = new std::vector<std::string>{"1999-01-01", "2012-03-01", "2020-06-15",
                                                          "2025-12-31", "2026-11-25", "2033-01-01"};
  return *dates;
}

// A generated registrant as the registry stores it: every status with a history (an upload
// may leave them out; the registry starts each with the current status).
v1::Practitioner Stored(uint64_t seed, int64_t index) {
  v1::Practitioner record = tools::GenerateRegistrant(seed, index);
  v1::Permit& permit = *record.mutable_permit();
  if (permit.status_history().empty()) {
    auto* first = permit.add_status_history();
    first->set_status(v1::Permit::Status_Name(permit.status()));
    first->set_effective_on(permit.registered_on().empty() ? "2000-01-01" : permit.registered_on());
  }
  for (v1::Authorization& authorization : *record.mutable_authorizations()) {
    if (!authorization.status_history().empty()) continue;
    auto* first = authorization.add_status_history();
    first->set_status(v1::Authorization::Status_Name(authorization.status()));
    first->set_effective_on(authorization.granted_on().empty() ? "2000-01-01"
                                                               : authorization.granted_on());
  }
  return record;
}

// The rule's answer from the bytes, or nullopt when they do not parse.
std::optional<std::string> AnswerFromBytes(const std::string& bytes,
                                           v1::RestrictedActivity activity,
                                           const std::string& as_of) {
  std::optional<VerificationFacts> facts = ParseVerificationFacts(bytes, activity);
  if (!facts) return std::nullopt;
  v1::VerifyAuthorizationResponse answer;
  Verify(&*facts, "PT-1", activity, as_of, &answer);
  return answer.SerializeAsString();
}

std::string AnswerFromMessage(const v1::Practitioner& record, v1::RestrictedActivity activity,
                              const std::string& as_of) {
  return Verify(&record, "PT-1", activity, as_of).SerializeAsString();
}

// Every answer from `bytes` equals the answer from protobuf's parse of them.
void ExpectSameAnswers(const std::string& bytes, const std::string& label) {
  v1::Practitioner parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes)) << label;
  for (v1::RestrictedActivity activity : Activities()) {
    for (const std::string& as_of : Dates()) {
      std::optional<std::string> got = AnswerFromBytes(bytes, activity, as_of);
      ASSERT_TRUE(got.has_value()) << label;
      ASSERT_EQ(*got, AnswerFromMessage(parsed, activity, as_of))
          << label << " activity " << activity << " on " << as_of;
    }
  }
}

TEST(VerificationFactsTest, GeneratedRecordsAnswerAsTheirMessages) {
  int authorized = 0;
  for (int i = 0; i < 1500; ++i) {
    const v1::Practitioner record = Stored(11, i);
    ExpectSameAnswers(record.SerializeAsString(), record.registration_id());
    authorized += Verify(&record, "PT-1", v1::DRY_NEEDLING, "2026-11-25").authorized();
  }
  EXPECT_GT(authorized, 50) << "the records cover authorized answers too";
}

TEST(VerificationFactsTest, AnUnknownIdHasNoFacts) {
  v1::VerifyAuthorizationResponse answer;
  Verify(static_cast<const VerificationFacts*>(nullptr), "PT-9", v1::DRY_NEEDLING, "2026-01-01",
         &answer);
  EXPECT_EQ(answer.reason(), v1::NOT_REGISTERED);
  EXPECT_FALSE(answer.authorized());
  EXPECT_EQ(answer.registration_id(), "PT-9");
}

// What protobuf accepts but never writes itself: a permit sent twice (merged), two
// authorizations for one activity (the last counts), techniques not packed, fields with a
// known number but another wire type (unknown fields to protobuf), and fields the rule skips.
TEST(VerificationFactsTest, WireFormsProtobufAcceptsAnswerTheSame) {
  v1::Practitioner base = Stored(3, 1);
  base.clear_authorizations();
  v1::Authorization first;
  first.set_activity(v1::DRY_NEEDLING);
  first.add_techniques(v1::Technique(1));
  first.set_granted_on("2015-01-01");
  first.add_conditions("only under supervision");
  auto* change = first.add_status_history();
  change->set_status("AUTHORIZED");
  change->set_effective_on("2015-01-01");
  v1::Authorization second = first;
  second.set_granted_on("2021-05-01");
  second.clear_conditions();
  second.mutable_status_history(0)->set_effective_on("2021-05-01");
  second.mutable_status_history(0)->set_status("SUSPENDED");
  *base.add_authorizations() = first;
  *base.add_authorizations() = second;
  const std::string whole = base.SerializeAsString();
  ExpectSameAnswers(whole, "two authorizations for one activity");

  // The permit again, with another register and one more history entry: protobuf merges.
  v1::Practitioner permit_only;
  permit_only.mutable_permit()->set_register_(v1::PROVISIONAL);
  auto* later = permit_only.mutable_permit()->add_status_history();
  later->set_status("SUSPENDED");
  later->set_effective_on("2024-02-01");
  ExpectSameAnswers(whole + permit_only.SerializeAsString(), "a permit merged from two");

  // Techniques one by one (field 3, varint) instead of packed, in an authorization of its own.
  std::string unpacked;
  unpacked += '\x08';  // activity = ACUPUNCTURE (field 1, varint)
  unpacked += static_cast<char>(v1::ACUPUNCTURE);
  unpacked += "\x18\x01\x18\x02";  // techniques 1 and 2, unpacked
  unpacked +=
      "\x22\x0a"
      "2010-01-01";  // granted_on
  unpacked +=
      "\x42\x18\x0a\x0a"
      "AUTHORIZED\x12\x0a"
      "2010-01-01";  // status_history[0]
  ASSERT_EQ(unpacked.size(), 2u + 4u + 12u + 26u);
  std::string with_unpacked = whole + '\x3a' + static_cast<char>(unpacked.size()) + unpacked;
  ExpectSameAnswers(with_unpacked, "unpacked techniques");

  // given_name (2) as a varint, family_name (3) as fixed32, an unknown field 99 (fixed64),
  // permit (6) as a varint: protobuf keeps them as unknown fields; the rule must not see them.
  std::string odd = whole;
  odd += "\x10\x05";
  odd += std::string("\x1d\x01\x02\x03\x04", 5);
  odd += std::string("\x99\x06\x01\x02\x03\x04\x05\x06\x07\x08", 10);
  odd += "\x30\x01";
  ExpectSameAnswers(odd, "known numbers with other wire types");
}

// Every prefix of a record and random byte changes: wherever protobuf parses the bytes, the
// facts give its answers; a cut inside a field fails both.
TEST(VerificationFactsTest, DamagedBytesAnswerAsProtobufOrDoNotParse) {
  std::mt19937 rng(5);
  int compared = 0, refused = 0;
  for (int i = 0; i < 40; ++i) {
    const std::string bytes = Stored(9, i).SerializeAsString();
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
      const std::string prefix = bytes.substr(0, cut);
      v1::Practitioner parsed;
      const bool protobuf_parses = parsed.ParseFromString(prefix);
      std::optional<VerificationFacts> facts = ParseVerificationFacts(prefix, v1::DRY_NEEDLING);
      ASSERT_EQ(facts.has_value(), protobuf_parses) << "cut at " << cut << " of " << i;
      if (protobuf_parses) {
        ASSERT_EQ(AnswerFromBytes(prefix, v1::DRY_NEEDLING, "2026-11-25"),
                  AnswerFromMessage(parsed, v1::DRY_NEEDLING, "2026-11-25"));
        ++compared;
      }
    }
    for (int round = 0; round < 200; ++round) {
      std::string damaged = bytes;
      damaged[rng() % damaged.size()] = static_cast<char>(rng() & 0xff);
      v1::Practitioner parsed;
      if (!parsed.ParseFromString(damaged)) {
        ++refused;
        continue;  // Not a record protobuf would give the rule (stored bytes always parse).
      }
      for (v1::RestrictedActivity activity : Activities()) {
        ASSERT_EQ(AnswerFromBytes(damaged, activity, "2026-11-25"),
                  AnswerFromMessage(parsed, activity, "2026-11-25"))
            << "record " << i << " round " << round;
      }
      ++compared;
    }
  }
  EXPECT_GT(compared, 1000);
  EXPECT_GT(refused, 100);
}

// The rule reads status names without protobuf's descriptors: each enum name means its value,
// any other text none (as Status_Parse).
TEST(VerificationFactsTest, StatusNamesMeanTheirEnumValues) {
  const google::protobuf::EnumDescriptor* permit_statuses = v1::Permit::Status_descriptor();
  for (int i = 0; i < permit_statuses->value_count(); ++i) {
    VerificationFacts facts;
    facts.permit_history.push_back({permit_statuses->value(i)->name(), "2000-01-01"});
    v1::VerifyAuthorizationResponse answer;
    Verify(&facts, "PT-1", v1::DRY_NEEDLING, "2020-01-01", &answer);
    EXPECT_EQ(answer.permit_status(), permit_statuses->value(i)->number())
        << permit_statuses->value(i)->name();
  }
  const google::protobuf::EnumDescriptor* statuses = v1::Authorization::Status_descriptor();
  for (int i = 0; i < statuses->value_count(); ++i) {
    VerificationFacts facts;
    facts.permit_history.push_back({"ACTIVE", "2000-01-01"});
    facts.has_authorization = true;
    facts.authorization_activity = v1::ACUPUNCTURE;
    facts.authorization_history.push_back({statuses->value(i)->name(), "2000-01-01"});
    v1::VerifyAuthorizationResponse answer;
    Verify(&facts, "PT-1", v1::ACUPUNCTURE, "2020-01-01", &answer);
    EXPECT_EQ(answer.authorization().status(), statuses->value(i)->number())
        << statuses->value(i)->name();
  }
  for (absl::string_view other : {"active", "ACTIVE ", "", "AUTHORISED", "STATUS_UNSPECIFIED"}) {
    VerificationFacts facts;
    facts.permit_history.push_back({other, "2000-01-01"});
    facts.has_authorization = true;
    facts.authorization_activity = v1::ACUPUNCTURE;
    facts.authorization_history.push_back({other, "2000-01-01"});
    v1::VerifyAuthorizationResponse answer;
    Verify(&facts, "PT-1", v1::ACUPUNCTURE, "2020-01-01", &answer);
    EXPECT_EQ(answer.permit_status(), v1::Permit::STATUS_UNSPECIFIED) << other;
    EXPECT_EQ(answer.authorization().status(), v1::Authorization::STATUS_UNSPECIFIED) << other;
    EXPECT_EQ(answer.reason(), v1::PERMIT_NOT_ACTIVE) << other;
  }
}

}  // namespace
}  // namespace physioreg::core
