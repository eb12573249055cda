// Valid records to start tests from; each test changes what it is about.
#ifndef PHYSIOREG_TESTS_SUPPORT_RECORDS_H_
#define PHYSIOREG_TESTS_SUPPORT_RECORDS_H_

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "physioreg/v1/practitioner.pb.h"
#include "tests/support/today.h"

namespace physioreg::testing {

// 31 March of the year after next (never before 2027-03-31): a permit in force both on the fixed
// "today" of the core tests (2026-11-25) and on the wall-clock today of a real physioregd, on any
// date. Computed once, so two records built across a midnight stay identical.
inline const std::string& PermitExpiryForTests() {
  static const std::string expiry =
      std::max(std::string("2027-03-31"), absl::StrCat(TodayInEdmonton().year() + 2, "-03-31"));
  return expiry;
}

// A GENERAL, ACTIVE registrant (registered 2015-04-01, permit expires PermitExpiryForTests())
// authorized for DRY_NEEDLING (IMS) since 2019-04-02, with one location and private contact
// details.
inline physioreg::v1::Practitioner ValidPractitioner(const std::string& id = "PT-1001") {
  physioreg::v1::Practitioner p;
  p.set_registration_id(id);
  p.set_given_name("Hélène");
  p.set_family_name("O'Brien-Smith");
  p.set_preferred_name("Léna");
  p.add_former_names("Tremblay");
  auto* permit = p.mutable_permit();
  permit->set_register_(physioreg::v1::GENERAL);
  permit->set_status(physioreg::v1::Permit::ACTIVE);
  permit->set_registered_on("2015-04-01");
  permit->set_expires_on(PermitExpiryForTests());
  auto* a = p.add_authorizations();
  a->set_activity(physioreg::v1::DRY_NEEDLING);
  a->set_status(physioreg::v1::Authorization::AUTHORIZED);
  a->add_techniques(physioreg::v1::IMS);
  a->set_granted_on("2019-04-02");
  a->add_conditions("Must not needle the thoracic region");
  auto* t = a->add_training();
  t->set_provider("iSTOP");
  t->set_course("Gunn IMS");
  t->set_hours(120);
  t->set_completed_on("2019-01-15");
  auto* l = p.add_locations();
  l->set_clinic_name("Bow River Physiotherapy");
  l->set_street_address("123 8 Ave SW");
  l->set_city("Calgary");
  l->set_province("AB");
  l->set_postal_code("T2P 1J9");
  l->set_phone("403-555-0143");
  l->set_latitude(51.0447);
  l->set_longitude(-114.0719);
  p.add_languages("English");
  p.add_languages("French");
  p.mutable_private_contact()->set_email("helene.obrien@example.ca");
  p.mutable_private_contact()->set_phone("403-555-0199");
  return p;
}

}  // namespace physioreg::testing

#endif  // PHYSIOREG_TESTS_SUPPORT_RECORDS_H_
