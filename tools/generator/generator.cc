#include "tools/generator/generator.h"

#include <array>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace physioreg::tools {
namespace {

namespace v1 = physioreg::v1;

// SplitMix64: small, fast and the same everywhere (std:: distributions are not).
class Rng {
 public:
  explicit Rng(uint64_t state) : state_(state) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n).
  int Below(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }
  double Unit() { return static_cast<double>(Next() >> 11) / 9007199254740992.0; }
  bool Chance(double p) { return Unit() < p; }
  template <typename T>
  const T& Pick(const std::vector<T>& items) {
    return items[static_cast<size_t>(Below(static_cast<int>(items.size())))];
  }

 private:
  uint64_t state_;
};

struct Culture {
  double weight;
  std::vector<std::string> given;
  std::vector<std::string> family;
  std::vector<std::string> languages;  // Besides English / French.
};

const std::vector<Culture>& Cultures() {
  static const std::vector<Culture> cultures = {
      {30,
       {"James",   "Emily",  "Olivia",  "Liam",     "Noah",     "Sarah",    "Michael",
        "Jessica", "Ethan",  "Hannah",  "Matthew",  "Megan",    "Ryan",     "Lauren",
        "Daniel",  "Chloe",  "John",    "Amanda",   "Tyler",    "Brittany", "Connor",
        "Kayla",   "Jordan", "Rebecca", "Jonathan", "Mary-Kate"},
       {"Smith",   "Brown",    "Tremblay",    "Martin",   "Wilson",    "MacDonald",
        "Taylor",  "Campbell", "Anderson",    "Johnson",  "Thompson",  "Clarke",
        "Stewart", "O'Brien",  "O'Connor",    "McLeod",   "Fraser",    "Robertson",
        "Murphy",  "Kelly",    "Smith-Jones", "St. John", "Fitzgerald"},
       {}},
      {20,
       {"Hélène",        "François",  "Gaëlle",  "Jérôme",   "Chloé",  "Benoît",
        "Élise",         "Zoé",       "Mathéo",  "Anaïs",    "Léa",    "Noémie",
        "Jean-François", "Marie-Ève", "Éloïse",  "Stéphane", "Amélie", "Frédéric",
        "Geneviève",     "Josée",     "Raphaël", "Océane",   "Réjean", "Maëlle"},
       {"Tremblay", "Gagnon",   "Roy",      "Côté",          "Bouchard",  "Gauthier",
        "Morin",    "Lavoie",   "Fortin",   "Gagné",         "Ouellet",   "Pelletier",
        "Bélanger", "Lévesque", "Bergeron", "Leblanc",       "Paquette",  "Girard",
        "Simard",   "Boucher",  "D'Amours", "Lefebvre-Côté", "Thériault", "Bédard-Lévesque"},
       {"French"}},
      {10,
       {"Gurpreet", "Harpreet", "Manpreet", "Jaspreet", "Navdeep", "Simran", "Amandeep", "Rajinder",
        "Kuldeep", "Parminder", "Sukhjinder", "Harjit", "ਗੁਰਪ੍ਰੀਤ", "ਹਰਪ੍ਰੀਤ"},
       {"Singh", "Kaur", "Sandhu", "Dhillon", "Grewal", "Gill", "Sidhu", "Brar", "Sangha", "Bains",
        "Johal", "ਸਿੰਘ", "ਕੌਰ"},
       {"Punjabi", "Hindi"}},
      {10,
       {"Wei", "Li", "Jing", "Xiaoming", "Mei", "Jun", "Yan", "Hao", "Lin", "Xin", "Yu", "伟",
        "小明", "静"},
       {"Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "王",
        "陈", "张"},
       {"Mandarin", "Cantonese"}},
      {6,
       {"Maria", "Jose", "Mark", "Angelica", "Jerome", "Kristine", "Paolo", "Jasmine"},
       {"Santos", "Reyes", "Cruz", "dela Cruz", "Bautista", "Garcia", "Mendoza", "De Guzman"},
       {"Tagalog"}},
      {5,
       {"Minh", "Linh", "Thảo", "Hương", "Quang", "Duy", "Ngọc", "Trâm"},
       {"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ", "Đặng", "Bùi"},
       {"Vietnamese"}},
      {6,
       {"Ahmed", "Fatima", "Omar", "Layla", "Youssef", "Nour", "Karim", "Rania"},
       {"Haddad", "El-Amin", "Khalil", "Abdullah", "Al-Farsi", "Mansour", "Nasser", "Saleh"},
       {"Arabic"}},
      {5,
       {"José", "María", "Sofía", "Andrés", "Lucía", "Martín", "Inés", "Joaquín"},
       {"Muñoz", "Peña", "García", "Rodríguez", "Hernández", "López", "Ibáñez", "Núñez"},
       {"Spanish"}},
      {4,
       {"Oksana", "Taras", "Olena", "Bohdan", "Kateryna", "Andriy", "Søren", "Bjørn", "Åsa", "Zoë"},
       {"Kowalczuk", "Shevchenko", "Kovalenko", "Łukasiewicz", "Nørgaard", "Sørensen", "Wiśniewski",
        "Müller"},
       {"Ukrainian", "Polish", "German"}},
      {4,
       {"Tanis", "Cheyenne", "Dakota", "Skye", "Winona", "Kaya"},
       {"Cardinal", "Bearshield", "Crowchild", "Many Grey Horses", "Whitehorse", "Okimaw"},
       {"Cree"}},
  };
  return cultures;
}

struct City {
  const char* name;
  const char* province;
  double latitude, longitude;
  const char* fsas;  // Space-separated forward sortation areas.
  double weight;
};

const std::vector<City>& Cities() {
  static const std::vector<City> cities = {
      {"Toronto", "ON", 43.6532, -79.3832, "M5V M4C M6K M1B M2N", 18},
      {"Montréal", "QC", 45.5019, -73.5674, "H2X H3B H4A H1V", 12},
      {"Vancouver", "BC", 49.2827, -123.1207, "V6B V5K V6H V5T", 8},
      {"Calgary", "AB", 51.0447, -114.0719, "T2P T3A T2E T3H", 9},
      {"Edmonton", "AB", 53.5461, -113.4938, "T5J T6E T5K T6W", 7},
      {"Ottawa", "ON", 45.4215, -75.6972, "K1P K2P K1S", 6},
      {"Winnipeg", "MB", 49.8951, -97.1384, "R3C R2M R3T", 5},
      {"Québec", "QC", 46.8139, -71.2080, "G1R G1V G2J", 4},
      {"Hamilton", "ON", 43.2557, -79.8711, "L8P L9A", 4},
      {"Halifax", "NS", 44.6488, -63.5752, "B3H B3K", 3},
      {"Saskatoon", "SK", 52.1332, -106.6700, "S7K S7N", 2.5},
      {"Regina", "SK", 50.4452, -104.6189, "S4P S4S", 2},
      {"Victoria", "BC", 48.4284, -123.3656, "V8W V8V", 2.5},
      {"St. John's", "NL", 47.5615, -52.7126, "A1C A1B", 1.5},
      {"Saint-Jean-sur-Richelieu", "QC", 45.3071, -73.2626, "J3B", 1},
      {"Trois-Rivières", "QC", 46.3432, -72.5477, "G9A G8Z", 1.2},
      {"Sherbrooke", "QC", 45.4042, -71.8929, "J1H J1E", 1.3},
      {"Gatineau", "QC", 45.4765, -75.7013, "J8X J8Y", 2},
      {"Moncton", "NB", 46.0878, -64.7782, "E1C", 1},
      {"Fredericton", "NB", 45.9636, -66.6431, "E3B", 0.8},
      {"Charlottetown", "PE", 46.2382, -63.1311, "C1A", 0.6},
      {"Kelowna", "BC", 49.8880, -119.4960, "V1Y V1W", 1.4},
      {"Lethbridge", "AB", 49.6956, -112.8451, "T1J T1K", 0.9},
      {"Red Deer", "AB", 52.2690, -113.8116, "T4N T4P", 0.8},
      {"London", "ON", 42.9849, -81.2453, "N6A N6G", 2.5},
      {"Kitchener", "ON", 43.4516, -80.4925, "N2G N2H", 2.2},
      {"Thunder Bay", "ON", 48.3809, -89.2477, "P7B", 0.7},
      {"Whitehorse", "YT", 60.7212, -135.0568, "Y1A", 0.3},
      {"Yellowknife", "NT", 62.4540, -114.3718, "X1A", 0.3},
      {"Iqaluit", "NU", 63.7467, -68.5170, "X0A", 0.2},
  };
  return cities;
}

template <typename T>
const T& Weighted(Rng& rng, const std::vector<T>& items) {
  double total = 0;
  for (const T& item : items) total += item.weight;
  double r = rng.Unit() * total;
  for (const T& item : items) {
    if ((r -= item.weight) < 0) return item;
  }
  return items.back();
}

std::string Date(int year, int month, int day) {
  return absl::StrFormat("%04d-%02d-%02d", year, month, day);
}

std::string RandomDate(Rng& rng, int first_year, int last_year) {
  return Date(first_year + rng.Below(last_year - first_year + 1), 1 + rng.Below(12),
              1 + rng.Below(28));
}

std::string PostalCode(Rng& rng, const City& city) {
  std::vector<std::string> fsas;
  for (const char* p = city.fsas; *p != '\0';) {
    const char* end = p;
    while (*end != '\0' && *end != ' ') ++end;
    fsas.emplace_back(p, end);
    p = *end == ' ' ? end + 1 : end;
  }
  static constexpr char kLetters[] = "ABCEGHJKLMNPRSTVWXYZ";  // Letters Canada Post uses.
  return absl::StrCat(rng.Pick(fsas), " ", rng.Below(10), std::string(1, kLetters[rng.Below(20)]),
                      rng.Below(10));
}

void AddAuthorization(Rng& rng, v1::RestrictedActivity activity, const std::string& registered_on,
                      v1::Practitioner* p) {
  v1::Authorization* a = p->add_authorizations();
  a->set_activity(activity);
  const double r = rng.Unit();
  a->set_status(r < 0.86   ? v1::Authorization::AUTHORIZED
                : r < 0.93 ? v1::Authorization::PENDING
                : r < 0.97 ? v1::Authorization::SUSPENDED
                           : v1::Authorization::REVOKED);
  const int first_year = std::max(2005, std::stoi(registered_on.substr(0, 4)) + 1);
  std::string granted = RandomDate(rng, std::min(first_year, 2025), 2025);
  // Never before the permit: the register refuses such a grant.
  if (granted < registered_on) granted = registered_on;
  a->set_granted_on(granted);
  if (rng.Chance(0.25)) {
    // Mostly in the future; about one in seven of these already expired.
    a->set_expires_on(rng.Chance(0.15) ? Date(2026, 1 + rng.Below(10), 1 + rng.Below(28))
                                       : Date(2027 + rng.Below(3), 3, 31));
    if (a->expires_on() < granted) a->set_expires_on(Date(2028, 3, 31));
  }
  if (activity == v1::DRY_NEEDLING) {
    const int t = rng.Below(3);
    if (t != 1) a->add_techniques(v1::IMS);
    if (t != 0) a->add_techniques(v1::TRIGGER_POINT_DRY_NEEDLING);
    v1::TrainingRecord* training = a->add_training();
    training->set_provider(t == 1 ? "Kinetacore" : "iSTOP");
    training->set_course(t == 1 ? "Functional Dry Needling Level 1" : "Gunn IMS");
    training->set_hours(t == 1 ? 27 : 120);
    training->set_completed_on(granted);
    if (rng.Chance(0.05)) a->add_conditions("Must not needle the thoracic region");
  }
}

}  // namespace

std::string RegistrationIdFor(int64_t index) {
  return absl::StrFormat("PT-%07d", static_cast<long long>(index + 1));
}

v1::Practitioner GenerateRegistrant(uint64_t seed, int64_t index) {
  Rng rng(seed * 0xD1B54A32D192ED03ULL ^ static_cast<uint64_t>(index) * 0x9E3779B97F4A7C15ULL);
  v1::Practitioner p;
  p.set_registration_id(RegistrationIdFor(index));
  const Culture& culture = Weighted(rng, Cultures());
  std::string given = rng.Pick(culture.given);
  if (rng.Chance(0.08)) given = absl::StrCat(given, "-", rng.Pick(culture.given));
  p.set_given_name(given);
  std::string family = rng.Pick(culture.family);
  if (rng.Chance(0.06))
    family = absl::StrCat(family, "-", rng.Pick(Weighted(rng, Cultures()).family));
  p.set_family_name(family);
  if (rng.Chance(0.08)) p.set_preferred_name(rng.Pick(Weighted(rng, Cultures()).given));
  if (rng.Chance(0.12)) p.add_former_names(rng.Pick(Weighted(rng, Cultures()).family));

  v1::Permit* permit = p.mutable_permit();
  const double reg = rng.Unit();
  permit->set_register_(reg < 0.85 ? v1::GENERAL : reg < 0.95 ? v1::PROVISIONAL : v1::COURTESY);
  const double status = rng.Unit();
  permit->set_status(status < 0.90   ? v1::Permit::ACTIVE
                     : status < 0.95 ? v1::Permit::INACTIVE
                     : status < 0.98 ? v1::Permit::SUSPENDED
                                     : v1::Permit::CANCELLED);
  permit->set_registered_on(RandomDate(rng, 1990, 2025));
  permit->set_expires_on(rng.Chance(0.03) ? "2026-03-31" : "2027-03-31");

  const bool provisional = permit->register_() == v1::PROVISIONAL;
  if (!provisional && rng.Chance(0.45)) {
    AddAuthorization(rng, v1::DRY_NEEDLING, permit->registered_on(), &p);
  }
  if (rng.Chance(0.10)) AddAuthorization(rng, v1::ACUPUNCTURE, permit->registered_on(), &p);
  if (!provisional && rng.Chance(0.15)) {
    AddAuthorization(rng, v1::SPINAL_MANIPULATION, permit->registered_on(), &p);
  }
  if (rng.Chance(0.08)) {
    AddAuthorization(rng, v1::PELVIC_HEALTH_INTERNAL_EXAM, permit->registered_on(), &p);
  }
  if (rng.Chance(0.04)) {
    AddAuthorization(rng, v1::DIAGNOSTIC_IMAGING_ORDERING, permit->registered_on(), &p);
  }

  const int locations = rng.Chance(0.15) ? 2 : 1;
  for (int i = 0; i < locations; ++i) {
    const City& city = Weighted(rng, Cities());
    v1::PracticeLocation* l = p.add_locations();
    static const std::vector<std::string> kClinics = {"Physiotherapy",        "Physio & Rehab",
                                                      "Sports Physiotherapy", "Wellness Centre",
                                                      "Physiothérapie",       "Movement Clinic"};
    static const std::vector<std::string> kPlaces = {"Bow River", "Maple",  "Northgate", "Lakeside",
                                                     "Riverside", "Summit", "Harbour",   "Prairie"};
    l->set_clinic_name(absl::StrCat(rng.Pick(kPlaces), " ", rng.Pick(kClinics)));
    l->set_street_address(absl::StrCat(1 + rng.Below(9000), " ", 1 + rng.Below(120), " Ave"));
    l->set_city(city.name);
    l->set_province(city.province);
    l->set_postal_code(PostalCode(rng, city));
    l->set_phone(absl::StrFormat("%03d-555-%04d", 200 + rng.Below(700), rng.Below(10000)));
    // Within about 10 km of the centre.
    l->set_latitude(city.latitude + (rng.Unit() - 0.5) * 0.18);
    l->set_longitude(city.longitude + (rng.Unit() - 0.5) * 0.25);
  }
  const bool quebec = p.locations(0).province() == std::string("QC");
  if (!quebec || rng.Chance(0.4)) p.add_languages("English");
  if (quebec || rng.Chance(0.12)) p.add_languages("French");
  if (!culture.languages.empty() && rng.Chance(0.6)) {
    const std::string& language = rng.Pick(culture.languages);
    bool present = false;
    for (const std::string& l : p.languages()) present = present || l == language;
    if (!present) p.add_languages(language);
  }
  if (rng.Chance(0.3)) {
    p.mutable_private_contact()->set_email(absl::StrCat("pt", index + 1, "@example.ca"));
    p.mutable_private_contact()->set_phone(absl::StrFormat("587-555-%04d", rng.Below(10000)));
  }
  return p;
}

}  // namespace physioreg::tools
