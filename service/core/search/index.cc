#include "service/core/search/index.h"

#include <unicode/utf8.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <queue>
#include <thread>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "service/core/dates.h"
#include "service/core/search/normalize.h"
#include "service/core/search/snapshot.h"
#include "service/core/verification.h"
#include "storage/column_families.h"

namespace physioreg::search {
namespace {

namespace v1 = physioreg::v1;

constexpr int32_t kForever = std::numeric_limits<int32_t>::max();
constexpr double kEarthRadiusKm = 6371.0088;
constexpr double kKmPerDegree = kEarthRadiusKm * M_PI / 180.0;
constexpr int kTermKind = 0, kCityKind = 1, kLanguageKind = 2, kActivityKind = 3, kCellKind = 4;
// Query tokens this short match every name with one edit, so they match by prefix only.
constexpr int kMinFuzzyLength = 3;

double Radians(double degrees) { return degrees * M_PI / 180.0; }

double DistanceKm(double lat1, double lng1, double lat2, double lng2) {
  const double dlat = Radians(lat2 - lat1), dlng = Radians(lng2 - lng1);
  const double a =
      std::sin(dlat / 2) * std::sin(dlat / 2) +
      std::cos(Radians(lat1)) * std::cos(Radians(lat2)) * std::sin(dlng / 2) * std::sin(dlng / 2);
  return 2 * kEarthRadiusKm * std::asin(std::min(1.0, std::sqrt(a)));
}

// Grid cells of 1/kCellsPerDegree degrees.
constexpr int kCellsPerDegree = 10;
constexpr int kLatCells = 180 * kCellsPerDegree, kLngCells = 360 * kCellsPerDegree;

int32_t CellOf(int lat_index, int lng_index) {
  return (lat_index + kLatCells / 2) * kLngCells + (lng_index + kLngCells / 2);
}
int LatIndex(double latitude) {
  return std::clamp(static_cast<int>(std::floor(latitude * kCellsPerDegree)), -kLatCells / 2,
                    kLatCells / 2 - 1);
}
int LngIndex(double longitude) {
  return std::clamp(static_cast<int>(std::floor(longitude * kCellsPerDegree)), -kLngCells / 2,
                    kLngCells / 2 - 1);
}

std::u32string ToUtf32(absl::string_view utf8) {
  std::u32string out;
  for (int32_t i = 0; i < static_cast<int32_t>(utf8.size());) {
    UChar32 c;
    U8_NEXT(utf8.data(), i, static_cast<int32_t>(utf8.size()), c);
    out.push_back(static_cast<char32_t>(c < 0 ? 0xFFFD : c));
  }
  return out;
}

int MaxEdits(const std::u32string& token) {
  if (token.size() < kMinFuzzyLength) return 0;
  return token.size() > 8 ? 2 : 1;
}

void SortUnique(std::vector<uint32_t>* ids) {
  std::sort(ids->begin(), ids->end());
  ids->erase(std::unique(ids->begin(), ids->end()), ids->end());
}

// The set difference a - b of two sorted, unique lists.
std::vector<uint32_t> Minus(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  std::vector<uint32_t> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

// Posting lists are sorted by doc number, so that criteria intersect by merging.
void RemoveFrom(std::vector<uint32_t>* postings, uint32_t doc) {
  auto it = std::lower_bound(postings->begin(), postings->end(), doc);
  if (it != postings->end() && *it == doc) postings->erase(it);
}

void InsertInto(std::vector<uint32_t>* postings, uint32_t doc) {
  if (postings->empty() || postings->back() < doc) {
    postings->push_back(doc);  // New registrants get new, higher numbers: the common case.
    return;
  }
  auto it = std::lower_bound(postings->begin(), postings->end(), doc);
  if (it == postings->end() || *it != doc) postings->insert(it, doc);
}

// Keeps the docs of sorted `*docs` that are also in sorted `other`.
void IntersectWith(std::vector<uint32_t>* docs, const std::vector<uint32_t>& other) {
  size_t out = 0;
  auto it = other.begin();
  if (other.size() > 16 * docs->size()) {
    // Much longer: binary searches cost less than reading all of it.
    for (uint32_t doc : *docs) {
      it = std::lower_bound(it, other.end(), doc);
      if (it == other.end()) break;
      if (*it == doc) (*docs)[out++] = doc;
    }
  } else {
    for (uint32_t doc : *docs) {
      while (it != other.end() && *it < doc) ++it;
      if (it == other.end()) break;
      if (*it == doc) (*docs)[out++] = doc;
    }
  }
  docs->resize(out);
}

// The sorted union of sorted lists of doc numbers below `doc_count`. A large union goes
// through a bitmap of every doc, read back in order: linear, and no merge buffers (pairwise
// std::inplace_merge rounds were 15 % of the server's CPU under a search load, plus their
// buffer allocations).
std::vector<uint32_t> Union(const std::vector<const std::vector<uint32_t>*>& parts,
                            size_t doc_count, Deadline* deadline) {
  size_t total = 0;
  for (const std::vector<uint32_t>* part : parts) total += part->size();
  std::vector<uint32_t> out;
  out.reserve(total);
  if (total < doc_count / 256) {
    for (const std::vector<uint32_t>* part : parts) {
      if (deadline->Expired()) return {};
      out.insert(out.end(), part->begin(), part->end());
    }
    SortUnique(&out);
    return out;
  }
  std::vector<uint64_t> bits((doc_count + 63) / 64, 0);
  for (const std::vector<uint32_t>* part : parts) {
    if (deadline->Expired()) return {};
    for (uint32_t doc : *part) bits[doc / 64] |= uint64_t{1} << (doc % 64);
  }
  for (size_t word = 0; word < bits.size(); ++word) {
    for (uint64_t rest = bits[word]; rest != 0; rest &= rest - 1) {
      out.push_back(static_cast<uint32_t>(word * 64 + static_cast<size_t>(std::countr_zero(rest))));
    }
  }
  return out;
}

// A zeroed bitmap of `words` words, reused by the thread (`slot` 0 or 1): a search's
// candidate bitmaps cost a memset, not an allocation of 125 KB per million docs.
std::vector<uint64_t>& ZeroedBits(int slot, size_t words) {
  thread_local std::array<std::vector<uint64_t>, 2> bits;
  bits[slot].assign(words, 0);
  return bits[slot];
}

}  // namespace

std::optional<int32_t> DayNumber(absl::string_view date) {
  std::optional<absl::CivilDay> day = core::ParseDate(date);
  if (!day) return std::nullopt;
  return static_cast<int32_t>(*day - absl::CivilDay(1970, 1, 1));
}

bool operator<(const Position& a, const Position& b) {
  return std::tie(a.tier, a.distance_km, a.key) < std::tie(b.tier, b.distance_km, b.key);
}

int FuzzyPrefixDistance(const std::u32string& q, const std::u32string& t, int max_edits) {
  // Optimal string alignment distance, rows over the query, columns over the term; the answer
  // is the smallest entry of the last row (the best prefix of the term).
  const size_t n = q.size(), m = t.size();
  // Called for every term of the dictionary: the rows are reused rather than allocated.
  thread_local std::vector<int> prev2, prev, row;
  prev2.assign(m + 1, 0);
  prev.assign(m + 1, 0);
  row.assign(m + 1, 0);
  for (size_t j = 0; j <= m; ++j) prev[j] = static_cast<int>(j);
  if (n == 0) return 0;
  for (size_t i = 1; i <= n; ++i) {
    row[0] = static_cast<int>(i);
    int row_min = row[0];
    for (size_t j = 1; j <= m; ++j) {
      const int cost = q[i - 1] == t[j - 1] ? 0 : 1;
      int best = std::min({prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && q[i - 1] == t[j - 2] && q[i - 2] == t[j - 1]) {
        best = std::min(best, prev2[j - 2] + 1);
      }
      row[j] = best;
      row_min = std::min(row_min, best);
    }
    if (row_min > max_edits) return max_edits + 1;
    std::swap(prev2, prev);
    std::swap(prev, row);
  }
  return *std::min_element(prev.begin(), prev.begin() + static_cast<long>(m + 1));
}

absl::string_view SearchIndex::IdOf(const Doc& doc) {
  const size_t end_of_names = doc.sort_key.rfind('\0');
  return end_of_names == std::string::npos
             ? absl::string_view()
             : absl::string_view(doc.sort_key).substr(end_of_names + 1);
}

absl::Status SearchIndex::Load(const storage::ReadView& view) {
  {
    std::unique_lock lock(mu_);
    loading_ = true;
  }
  absl::Status status = view.ForEachPractitioner([this](const v1::Practitioner& record) {
    Put(record);
    loaded_.fetch_add(1, std::memory_order_relaxed);
    return !stopping_.load(std::memory_order_relaxed);
  });
  {
    std::unique_lock lock(mu_);
    loading_ = false;
    // Positions before the view are not known (nothing can page from there anyway).
    revision_ = std::max(revision_, view.revision());
    horizon_ = std::max(horizon_, revision_);
  }
  Compact();
  return status;
}

void SearchIndex::Compact() {
  std::unique_lock lock(mu_);
  // Lists grown by doubling hold up to twice what they need; after a bulk load they are
  // final enough to trim.
  for (Term& term : terms_) term.postings.shrink_to_fit();
  for (auto* lists : {&city_postings_, &language_postings_}) {
    for (Postings& p : *lists) p.shrink_to_fit();
  }
  for (Postings& p : activity_postings_) p.shrink_to_fit();
  for (auto& [cell, p] : cells_) p.shrink_to_fit();
}

std::string SearchIndex::load_source() const {
  std::lock_guard<std::mutex> lock(attach_mu_);
  return load_source_;
}

bool SearchIndex::loaded_from_snapshot() const {
  std::lock_guard<std::mutex> lock(attach_mu_);
  return from_snapshot_;
}

int64_t SearchIndex::loaded_snapshot_revision() const {
  std::lock_guard<std::mutex> lock(attach_mu_);
  return from_snapshot_ ? snapshot_revision_ : -1;
}

absl::StatusOr<int64_t> SearchIndex::WriteSnapshot(const std::string& path,
                                                   absl::Duration* locked_for) const {
  std::lock_guard<std::mutex> writing(snapshot_write_mu_);
  if (!ready() || !load_status().ok()) {
    return absl::FailedPreconditionError("the search index is not loaded");
  }
  std::string file = snapshot::StartFrame();
  DocsCopy copy;
  int64_t revision = 0;
  {
    std::shared_lock lock(mu_);
    const absl::Time start = absl::Now();
    revision = revision_;
    SerializeLocked(&file, &copy);
    if (locked_for != nullptr) *locked_for = absl::Now() - start;
  }
  AppendDocsInOrder(copy, &file);
  snapshot::FinishFrame(&file, revision, static_cast<uint32_t>(storage::kStorageFormat));
  absl::Status status = snapshot::WriteFileAtomically(path, file);
  if (!status.ok()) return status;
  return revision;
}

absl::StatusOr<int64_t> SearchIndex::LoadSnapshot(const storage::Store& store) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<snapshot::MappedFile>> file =
      snapshot::MappedFile::Open(snapshot_path_);
  if (!file.ok()) return file.status();
  const absl::Time read = absl::Now();
  absl::StatusOr<snapshot::Unframed> framed =
      snapshot::Unframe((*file)->bytes(), static_cast<uint32_t>(storage::kStorageFormat));
  if (!framed.ok()) return framed.status();
  const absl::Time checked = absl::Now();
  const int64_t revision = framed->revision;
  if (revision > store.revision()) {
    return absl::FailedPreconditionError(absl::StrCat("snapshot revision ", revision,
                                                      " is above the store's ", store.revision(),
                                                      " (a snapshot of another register?)"));
  }
  if (revision + 1 < store.change_log_start()) {
    return absl::FailedPreconditionError(absl::StrCat("snapshot revision ", revision,
                                                      " is older than the change log (it starts "
                                                      "at ",
                                                      store.change_log_start(), ")"));
  }
  snapshot::Decoder d(framed->body);
  const absl::string_view register_id = d.Str();
  if (!d.ok()) return absl::DataLossError("snapshot body inconsistent");
  if (register_id != register_id_) {
    return absl::FailedPreconditionError(absl::StrCat("snapshot of another register (id \"",
                                                      register_id, "\", this one is \"",
                                                      register_id_, "\")"));
  }
  std::unique_lock lock(mu_);
  ClearLocked();
  if (!ParseLocked(framed->body.substr(4 + register_id.size()))) {
    ClearLocked();
    return absl::DataLossError("snapshot body inconsistent");
  }
  // Positions before the snapshot are not known (as after a load from the store).
  revision_ = revision;
  horizon_ = revision;
  loaded_.store(live_, std::memory_order_relaxed);
  lock.unlock();
  const absl::Time parsed = absl::Now();
  Compact();
  auto seconds = [](absl::Time from, absl::Time to) {
    return absl::StrFormat("%.2f", absl::ToDoubleSeconds(to - from));
  };
  const absl::Time compacted = absl::Now();
  snapshot_timing_ = absl::StrCat("read=", seconds(start, read), " check=", seconds(read, checked),
                                  " parse=", seconds(checked, parsed), " (", parse_timing_,
                                  ") compact=", seconds(parsed, compacted));
  return revision;
}

void SearchIndex::ClearLocked() {
  docs_.clear();
  free_docs_.clear();
  doc_ids_.clear();
  ordered_.clear();
  live_ = 0;
  revision_ = 0;
  horizon_ = 0;
  changes_by_id_.clear();
  changes_.clear();
  terms_.clear();
  term_ids_.clear();
  city_ids_.clear();
  language_ids_.clear();
  postal_ids_.clear();
  city_postings_.clear();
  language_postings_.clear();
  postal_codes_.clear();
  for (Postings& p : activity_postings_) p.clear();
  cells_.clear();
  name_terms_memo_.clear();
  key_memo_.clear();
  std::lock_guard day_lock(day_mu_);
  for (DayBits& d : day_bits_) d = DayBits();
  loaded_.store(0, std::memory_order_relaxed);
}

// The body: the register's id (checked by LoadSnapshot, not ParseLocked); terms, cities, languages
// and postal codes by id; the live docs in result order (format 2: they are renumbered in that
// order at load, so the result order is rebuilt by appending, reading the docs front to back).
// Posting lists, the lookup maps and the day bits are rebuilt from those at load; the paging
// history is not kept (page tokens from before a restart are refused, as after any load).
void SearchIndex::SerializeLocked(std::string* out, DocsCopy* copy) const {
  out->reserve(out->size() + terms_.size() * 16 + (1 << 16));
  snapshot::Encoder e(out);
  e.Str(register_id_);
  e.U32(static_cast<uint32_t>(terms_.size()));
  for (const Term& term : terms_) e.Str(*term.text);
  auto write_names = [&e](const absl::flat_hash_map<std::string, uint32_t>& ids) {
    std::vector<const std::string*> names(ids.size());
    for (const auto& [name, id] : ids) names[id] = &name;
    e.U32(static_cast<uint32_t>(names.size()));
    for (const std::string* name : names) e.Str(*name);
  };
  write_names(city_ids_);
  write_names(language_ids_);
  e.U32(static_cast<uint32_t>(postal_codes_.size()));
  for (const std::string& code : postal_codes_) e.Str(code);
  // The docs are encoded in doc order (reading memory in sequence while the lock is held) and
  // put in result order after it (AppendDocsInOrder). About 90 bytes per registrant: no
  // regrowth while the lock is held.
  copy->bytes.reserve(static_cast<size_t>(live_) * 100);
  copy->ends.assign(docs_.size(), 0);
  snapshot::Encoder de(&copy->bytes);
  for (uint32_t doc_id = 0; doc_id < docs_.size(); ++doc_id) {
    const Doc& doc = docs_[doc_id];
    if (doc.alive) {
      de.U8(doc.register_);
      de.Str(doc.sort_key);
      de.U32(static_cast<uint32_t>(doc.terms.size()));
      for (uint32_t term : doc.terms) de.U32(term);
      de.U32(static_cast<uint32_t>(doc.locations.size()));
      for (const Location& l : doc.locations) {
        de.F32(l.latitude);
        de.F32(l.longitude);
        de.U32(l.city);
        de.U32(l.postal_code);
      }
      de.U32(static_cast<uint32_t>(doc.languages.size()));
      for (uint32_t language : doc.languages) de.U32(language);
      de.U32(static_cast<uint32_t>(doc.authorized.size()));
      for (const Interval& i : doc.authorized) {
        de.I32(i.from);
        de.I32(i.to);
        de.U8(i.activity);
      }
    }
    copy->ends[doc_id] = copy->bytes.size();
  }
  copy->order.reserve(ordered_.size());
  for (const auto& [key, doc_id] : ordered_) copy->order.push_back(doc_id);
}

// The docs in result order, then where the second half of them starts (from the first doc's
// byte), so that a load parses the two halves on two threads.
void SearchIndex::AppendDocsInOrder(const DocsCopy& copy, std::string* out) {
  out->reserve(out->size() + 12 + copy.bytes.size() + (1 << 12));
  snapshot::Encoder e(out);
  const uint32_t n_docs = static_cast<uint32_t>(copy.order.size());
  e.U32(n_docs);
  const size_t half_at = out->size();
  e.U64(0);
  const size_t docs_start = out->size();
  for (uint32_t i = 0; i < n_docs; ++i) {
    if (i == n_docs / 2) {
      const uint64_t offset = out->size() - docs_start;
      std::memcpy(out->data() + half_at, &offset, sizeof offset);
    }
    const uint32_t doc_id = copy.order[i];
    const size_t begin = doc_id == 0 ? 0 : copy.ends[doc_id - 1];
    out->append(copy.bytes, begin, copy.ends[doc_id] - begin);
  }
}

bool SearchIndex::ParseLocked(absl::string_view body) {
  // The term ids are read anew: no memo of the old ones may survive.
  name_terms_memo_.clear();
  key_memo_.clear();
  snapshot::Decoder d(body);
  const uint32_t n_terms = d.Count(4);
  terms_.reserve(n_terms);
  for (uint32_t i = 0; i < n_terms && d.ok(); ++i) {
    auto [it, inserted] = term_ids_.try_emplace(std::string(d.Str()), i);
    if (!inserted) return false;
    terms_.push_back(Term{&it->first, ToUtf32(it->first), {}});
  }
  auto read_names = [&d](absl::flat_hash_map<std::string, uint32_t>* ids, uint32_t* count) {
    *count = d.Count(4);
    ids->reserve(*count);
    for (uint32_t i = 0; i < *count && d.ok(); ++i) {
      if (!ids->try_emplace(std::string(d.Str()), i).second) return false;
    }
    return d.ok();
  };
  uint32_t n_cities = 0, n_languages = 0;
  if (!read_names(&city_ids_, &n_cities) || !read_names(&language_ids_, &n_languages)) {
    return false;
  }
  city_postings_.resize(n_cities);
  language_postings_.resize(n_languages);
  const uint32_t n_postal = d.Count(4);
  postal_codes_.reserve(n_postal);
  postal_ids_.reserve(n_postal);
  for (uint32_t i = 0; i < n_postal && d.ok(); ++i) {
    postal_codes_.emplace_back(d.Str());
    if (!postal_ids_.try_emplace(postal_codes_.back(), i).second) return false;
  }
  if (!d.ok()) return false;

  const absl::Time start = absl::Now();
  // Docs in result order (register 1 byte, the key's length and 4 counts of 4 bytes at least),
  // numbered 0, 1, ... as read, so each key must be above the one before; the two halves are
  // parsed on two threads, each from where it starts.
  const uint32_t n_docs = d.Count(1 + 4 + 4 * 4);
  const uint64_t half_offset = d.U64();
  if (!d.ok() || half_offset > d.remaining()) return false;
  const absl::string_view all_docs = body.substr(body.size() - d.remaining());
  const uint32_t half = n_docs / 2;
  docs_.resize(n_docs);
  auto parse_docs = [&](absl::string_view bytes, uint32_t from, uint32_t to) {
    snapshot::Decoder dd(bytes);
    for (uint32_t id = from; id < to && dd.ok(); ++id) {
      Doc& doc = docs_[id];
      doc.alive = true;
      doc.register_ = dd.U8();
      doc.sort_key = std::string(dd.Str());
      // family \0 given \0 id: the id is what doc_ids_ hashes.
      if (std::count(doc.sort_key.begin(), doc.sort_key.end(), '\0') != 2 || IdOf(doc).empty()) {
        return false;
      }
      if (id > from &&
          !(absl::string_view(docs_[id - 1].sort_key) < absl::string_view(doc.sort_key))) {
        return false;
      }
      const uint32_t n_doc_terms = dd.Count(4);
      for (uint32_t i = 0; i < n_doc_terms; ++i) {
        const uint32_t term = dd.U32();
        // Sorted and unique, as MakeDoc leaves them.
        if (term >= n_terms || (!doc.terms.empty() && term <= doc.terms.back())) return false;
        doc.terms.push_back(term);
      }
      const uint32_t n_locations = dd.Count(16);
      for (uint32_t i = 0; i < n_locations; ++i) {
        Location l;
        l.latitude = dd.F32();
        l.longitude = dd.F32();
        l.city = dd.U32();
        l.postal_code = dd.U32();
        if (l.city >= n_cities || l.postal_code >= n_postal) return false;
        if (std::isnan(l.latitude) != std::isnan(l.longitude)) return false;
        doc.locations.push_back(l);
      }
      const uint32_t n_doc_languages = dd.Count(4);
      for (uint32_t i = 0; i < n_doc_languages; ++i) {
        const uint32_t language = dd.U32();
        if (language >= n_languages) return false;
        doc.languages.push_back(language);
      }
      const uint32_t n_intervals = dd.Count(9);
      for (uint32_t i = 0; i < n_intervals; ++i) {
        Interval interval;
        interval.from = dd.I32();
        interval.to = dd.I32();
        interval.activity = dd.U8();
        if (interval.activity == 0 || interval.activity >= activity_postings_.size()) {
          return false;
        }
        doc.authorized.push_back(interval);
      }
    }
    // Each half ends exactly where the next part starts.
    return dd.ok() && dd.remaining() == 0;
  };
  bool second_ok = false;
  std::thread second([&] { second_ok = parse_docs(all_docs.substr(half_offset), half, n_docs); });
  const bool first_ok = parse_docs(all_docs.substr(0, half_offset), 0, half);
  second.join();
  if (!first_ok || !second_ok) return false;
  if (half > 0 && half < n_docs &&
      !(absl::string_view(docs_[half - 1].sort_key) < absl::string_view(docs_[half].sort_key))) {
    return false;
  }
  live_ = n_docs;

  const absl::Time docs_done = absl::Now();
  // The posting lists (sorted by doc number: docs are visited in that order) on a second
  // thread, while this one builds the result order and the id set; both only read docs_.
  absl::Duration postings_took;
  std::thread postings([this, n_docs, &postings_took] {
    const absl::Time postings_start = absl::Now();
    auto add = [](Postings* list, uint32_t doc) {
      if (list->empty() || list->back() != doc) list->push_back(doc);
    };
    for (uint32_t id = 0; id < n_docs; ++id) {
      const Doc& doc = docs_[id];
      for (uint32_t term : doc.terms) add(&terms_[term].postings, id);
      for (const Location& l : doc.locations) {
        add(&city_postings_[l.city], id);
        if (!std::isnan(l.latitude))
          add(&cells_[CellOf(LatIndex(l.latitude), LngIndex(l.longitude))], id);
      }
      for (uint32_t language : doc.languages) add(&language_postings_[language], id);
      for (const Interval& i : doc.authorized) add(&activity_postings_[i.activity], id);
    }
    postings_took = absl::Now() - postings_start;
  });
  // The result order is doc order, keys strictly increasing (checked above): each insert at
  // the end costs no comparisons in the tree.
  for (uint32_t id = 0; id < n_docs; ++id) {
    ordered_.insert(ordered_.end(), std::pair<absl::string_view, uint32_t>(docs_[id].sort_key, id));
  }
  const absl::Time order_done = absl::Now();
  doc_ids_.reserve(n_docs);
  bool unique = true;
  for (uint32_t id = 0; id < n_docs && unique; ++id) unique = doc_ids_.insert(id).second;
  const absl::Time ids_done = absl::Now();
  postings.join();
  if (!unique) return false;  // An id twice.

  auto seconds = [](absl::Duration t) { return absl::StrFormat("%.2f", absl::ToDoubleSeconds(t)); };
  parse_timing_ =
      absl::StrCat("docs=", seconds(docs_done - start), " order=", seconds(order_done - docs_done),
                   " ids=", seconds(ids_done - order_done), " postings=", seconds(postings_took),
                   " on a second thread");
  return true;
}

namespace {

// The index's place on the feed: live commits are applied on the writer's thread.
class IndexConsumer final : public storage::FeedConsumer {
 public:
  explicit IndexConsumer(SearchIndex* index) : index_(index) {}
  void OnCommit(const std::vector<storage::SharedEvent>& events) override {
    for (const storage::SharedEvent& event : events) index_->Apply(*event);
  }

 private:
  SearchIndex* index_;
};

}  // namespace

absl::Status SearchIndex::LoadAndFollow(storage::Store* store) {
  if (!snapshot_path_.empty()) {
    absl::StatusOr<int64_t> revision = LoadSnapshot(*store);
    std::string why;
    if (revision.ok()) {
      const absl::Time follow_start = absl::Now();
      absl::Status status = FollowFrom(store, *revision);
      // The change log may have been pruned past the snapshot since it was checked: then the
      // store it is.
      if (!absl::IsOutOfRange(status)) {
        std::lock_guard<std::mutex> lock(attach_mu_);
        from_snapshot_ = true;
        snapshot_revision_ = *revision;
        load_source_ = absl::StrCat(
            "snapshot revision=", *revision, " ", snapshot_timing_,
            " follow=", absl::StrFormat("%.2f", absl::ToDoubleSeconds(absl::Now() - follow_start)));
        return status;
      }
      why = std::string(status.message());
      std::unique_lock lock(mu_);
      ClearLocked();
    } else {
      why = std::string(revision.status().message());
    }
    std::lock_guard<std::mutex> lock(attach_mu_);
    load_source_ = absl::StrCat("store reason=\"", why, "\"");
  } else {
    std::lock_guard<std::mutex> lock(attach_mu_);
    load_source_ = "store reason=\"no snapshot path\"";
  }
  std::unique_ptr<storage::ReadView> view = store->View();
  const int64_t loaded_at = view->revision();
  absl::Status status = Load(*view);
  view.reset();
  if (!status.ok()) return status;
  return FollowFrom(store, loaded_at);
}

absl::Status SearchIndex::FollowFrom(storage::Store* store, int64_t after_revision) {
  if (stopping_.load(std::memory_order_relaxed)) return absl::CancelledError("index stopped");
  auto consumer = std::make_shared<IndexConsumer>(this);
  {
    std::lock_guard<std::mutex> lock(attach_mu_);
    store_ = store;
    consumer_ = consumer;
  }
  return store->feed().Follow(
      after_revision,
      [this](const v1::ChangeEvent& event) {
        Apply(event);
        return !stopping_.load(std::memory_order_relaxed);
      },
      consumer);
}

absl::Status SearchIndex::Attach(storage::Store* store) { return LoadAndFollow(store); }

void SearchIndex::AttachInBackground(storage::Store* store,
                                     std::function<void(const absl::Status&, int64_t)> on_ready) {
  ready_.store(false, std::memory_order_release);
  loader_ = std::thread([this, store, on_ready = std::move(on_ready)] {
    absl::Status status = LoadAndFollow(store);
    {
      std::lock_guard<std::mutex> lock(attach_mu_);
      load_status_ = status;
      ready_.store(true, std::memory_order_release);
    }
    if (on_ready) on_ready(status, size());
  });
}

absl::Status SearchIndex::load_status() const {
  std::lock_guard<std::mutex> lock(attach_mu_);
  return load_status_;
}

SearchIndex::~SearchIndex() {
  stopping_.store(true, std::memory_order_relaxed);
  if (loader_.joinable()) loader_.join();
  std::lock_guard<std::mutex> lock(attach_mu_);
  if (store_ != nullptr) store_->feed().Leave(consumer_.get());
}

void SearchIndex::Apply(const v1::ChangeEvent& event) {
  if (event.kind() == v1::ChangeEvent::DELETED || !event.has_practitioner()) {
    Remove(event.registration_id(), event.revision());
  } else {
    Put(event.practitioner(), event.revision());
  }
}

int64_t SearchIndex::revision() const {
  std::shared_lock lock(mu_);
  return revision_;
}

int64_t SearchIndex::size() const {
  std::shared_lock lock(mu_);
  return live_;
}

uint32_t SearchIndex::TermId(const std::string& text) {
  auto [it, inserted] = term_ids_.try_emplace(text, static_cast<uint32_t>(terms_.size()));
  if (inserted) terms_.push_back(Term{&it->first, ToUtf32(it->first), {}});
  return it->second;
}

uint32_t SearchIndex::Intern(const std::string& text,
                             absl::flat_hash_map<std::string, uint32_t>* ids,
                             std::vector<Postings>* postings) {
  auto [it, inserted] = ids->try_emplace(text, static_cast<uint32_t>(postings->size()));
  if (inserted) postings->emplace_back();
  return it->second;
}

const std::vector<uint32_t>& SearchIndex::NameTerms(const std::string& name) {
  if (auto it = name_terms_memo_.find(name); it != name_terms_memo_.end()) return it->second;
  if (name_terms_memo_.size() >= kMemoEntries) name_terms_memo_.clear();
  std::vector<uint32_t> ids;
  for (const std::string& token : IndexTokens(name)) ids.push_back(TermId(token));
  return name_terms_memo_.emplace(name, std::move(ids)).first->second;
}

const std::string& SearchIndex::MemoKey(const std::string& text) {
  if (auto it = key_memo_.find(text); it != key_memo_.end()) return it->second;
  if (key_memo_.size() >= kMemoEntries) key_memo_.clear();
  return key_memo_.emplace(text, NormalizeKey(text)).first->second;
}

SearchIndex::Doc SearchIndex::MakeDoc(const v1::Practitioner& p) {
  Doc doc;
  doc.alive = true;
  doc.register_ = static_cast<uint8_t>(p.permit().register_());
  doc.sort_key = MemoKey(p.family_name());
  doc.sort_key.push_back('\0');
  doc.sort_key += MemoKey(p.given_name());
  doc.sort_key.push_back('\0');
  doc.sort_key += p.registration_id();

  std::vector<uint32_t> terms;
  auto add_name = [&](const std::string& name) {
    const std::vector<uint32_t>& ids = NameTerms(name);
    terms.insert(terms.end(), ids.begin(), ids.end());
  };
  add_name(p.given_name());
  add_name(p.family_name());
  add_name(p.preferred_name());
  for (const std::string& former : p.former_names()) add_name(former);
  SortUnique(&terms);
  doc.terms.assign(terms.begin(), terms.end());

  for (const v1::PracticeLocation& l : p.locations()) {
    Location location;
    // (0, 0) is what an unset location looks like in proto3; no clinic is there.
    const bool has_coordinates = l.latitude() != 0 || l.longitude() != 0;
    location.latitude = has_coordinates ? static_cast<float>(l.latitude()) : NAN;
    location.longitude = has_coordinates ? static_cast<float>(l.longitude()) : NAN;
    location.city = Intern(MemoKey(l.city()), &city_ids_, &city_postings_);
    const std::string postal = NormalizePostalCode(l.postal_code());
    auto [it, inserted] = postal_ids_.try_emplace(postal, postal_codes_.size());
    if (inserted) postal_codes_.push_back(postal);
    location.postal_code = it->second;
    doc.locations.push_back(location);
  }
  for (const std::string& language : p.languages()) {
    doc.languages.push_back(Intern(MemoKey(language), &language_ids_, &language_postings_));
  }

  // Authorized-ness changes only on the dates the record names, so the verification rule
  // itself, evaluated on each of those dates, gives the exact intervals; "today" is then
  // looked up per query and never frozen into the index.
  auto add_date = [](const std::string& date, int offset, std::vector<absl::CivilDay>* days) {
    if (std::optional<absl::CivilDay> day = core::ParseDate(date)) days->push_back(*day + offset);
  };
  std::vector<absl::CivilDay> permit_days;
  add_date(p.permit().registered_on(), 0, &permit_days);
  add_date(p.permit().expires_on(), 1, &permit_days);
  for (const v1::StatusChange& c : p.permit().status_history()) {
    add_date(c.effective_on(), 0, &permit_days);
  }
  std::vector<int> activities;
  for (const v1::Authorization& a : p.authorizations()) activities.push_back(a.activity());
  std::sort(activities.begin(), activities.end());
  activities.erase(std::unique(activities.begin(), activities.end()), activities.end());
  const absl::CivilDay epoch(1970, 1, 1);
  for (int activity : activities) {
    if (activity <= 0 || activity >= static_cast<int>(activity_postings_.size())) continue;
    std::vector<absl::CivilDay> days = permit_days;
    for (const v1::Authorization& a : p.authorizations()) {
      if (a.activity() != activity) continue;
      add_date(a.granted_on(), 0, &days);
      add_date(a.expires_on(), 1, &days);
      for (const v1::StatusChange& c : a.status_history()) add_date(c.effective_on(), 0, &days);
    }
    std::sort(days.begin(), days.end());
    days.erase(std::unique(days.begin(), days.end()), days.end());
    for (size_t i = 0; i < days.size(); ++i) {
      const bool authorized =
          core::Verify(&p, p.registration_id(), static_cast<v1::RestrictedActivity>(activity),
                       core::FormatDate(days[i]))
              .authorized();
      if (!authorized) continue;
      const int32_t from = static_cast<int32_t>(days[i] - epoch);
      const int32_t to = i + 1 < days.size() ? static_cast<int32_t>(days[i + 1] - epoch) : kForever;
      if (!doc.authorized.empty() && doc.authorized.back().activity == activity &&
          doc.authorized.back().to == from) {
        doc.authorized.back().to = to;
      } else {
        doc.authorized.push_back(Interval{from, to, static_cast<uint8_t>(activity)});
      }
    }
  }
  return doc;
}

bool SearchIndex::AuthorizedOn(const Doc& doc, int activity, int32_t day) {
  for (const Interval& i : doc.authorized) {
    if (i.activity == activity && i.from <= day && day < i.to) return true;
  }
  return false;
}

std::shared_ptr<const std::vector<uint64_t>> SearchIndex::AuthorizedBits(int activity,
                                                                         int32_t day) const {
  std::lock_guard lock(day_mu_);
  DayBits& cached = day_bits_[activity];
  if (cached.bits == nullptr || cached.day != day) {
    auto bits = std::make_shared<std::vector<uint64_t>>((docs_.size() + 63) / 64);
    for (uint32_t doc : activity_postings_[activity]) {
      if (AuthorizedOn(docs_[doc], activity, day)) (*bits)[doc / 64] |= uint64_t{1} << (doc % 64);
    }
    cached = DayBits{day, std::move(bits)};
  }
  return cached.bits;
}

void SearchIndex::WarmAuthorizedBits(int32_t day) const {
  std::shared_lock lock(mu_);
  for (int activity = 1; activity < static_cast<int>(day_bits_.size()); ++activity) {
    AuthorizedBits(activity, day);
  }
}

void SearchIndex::UpdateAuthorizedBits(uint32_t doc_id) {
  // Called with mu_ held exclusively, so no search is reading the bits.
  std::lock_guard lock(day_mu_);
  for (int activity = 1; activity < static_cast<int>(day_bits_.size()); ++activity) {
    DayBits& cached = day_bits_[activity];
    if (cached.bits == nullptr) continue;
    std::vector<uint64_t>& bits = *cached.bits;
    if (bits.size() <= doc_id / 64) bits.resize(doc_id / 64 + 1);
    const uint64_t mask = uint64_t{1} << (doc_id % 64);
    if (docs_[doc_id].alive && AuthorizedOn(docs_[doc_id], activity, cached.day)) {
      bits[doc_id / 64] |= mask;
    } else {
      bits[doc_id / 64] &= ~mask;
    }
  }
}

SearchIndex::Memberships SearchIndex::MembershipsOf(const Doc& doc) const {
  Memberships m;
  if (!doc.alive) return m;
  m.terms.assign(doc.terms.begin(), doc.terms.end());
  for (const Location& l : doc.locations) {
    m.cities.push_back(l.city);
    if (!std::isnan(l.latitude))
      m.cells.push_back(CellOf(LatIndex(l.latitude), LngIndex(l.longitude)));
  }
  m.languages.assign(doc.languages.begin(), doc.languages.end());
  for (const Interval& i : doc.authorized) m.activities.push_back(i.activity);
  for (auto* ids : {&m.terms, &m.cities, &m.languages, &m.activities, &m.cells}) SortUnique(ids);
  return m;
}

SearchIndex::Postings* SearchIndex::PostingList(int kind, uint32_t id) {
  switch (kind) {
    case kTermKind:
      return &terms_[id].postings;
    case kCityKind:
      return &city_postings_[id];
    case kLanguageKind:
      return &language_postings_[id];
    case kActivityKind:
      return &activity_postings_[id];
    default:
      return &cells_[static_cast<int32_t>(id)];
  }
}

void SearchIndex::UpdatePostings(uint32_t doc_id, const Memberships& before,
                                 const Memberships& after) {
  // Only the lists whose membership changed are touched, so re-uploading a registrant with
  // the same city, languages and names costs no scan of a long list.
  const std::vector<uint32_t>* lists_before[] = {&before.terms, &before.cities, &before.languages,
                                                 &before.activities, &before.cells};
  const std::vector<uint32_t>* lists_after[] = {&after.terms, &after.cities, &after.languages,
                                                &after.activities, &after.cells};
  for (int kind = kTermKind; kind <= kCellKind; ++kind) {
    for (uint32_t id : Minus(*lists_before[kind], *lists_after[kind])) {
      RemoveFrom(PostingList(kind, id), doc_id);
    }
    for (uint32_t id : Minus(*lists_after[kind], *lists_before[kind])) {
      InsertInto(PostingList(kind, id), doc_id);
    }
  }
}

SearchIndex::PositionData SearchIndex::PositionDataOf(const Doc& doc) {
  return PositionData{doc.sort_key, doc.terms, doc.locations};
}

bool SearchIndex::SamePosition(const Doc& a, const Doc& b) {
  if (a.sort_key != b.sort_key || a.terms != b.terms) return false;
  if (a.locations.size() != b.locations.size()) return false;
  auto same = [](float x, float y) { return x == y || (std::isnan(x) && std::isnan(y)); };
  for (size_t i = 0; i < a.locations.size(); ++i) {
    if (!same(a.locations[i].latitude, b.locations[i].latitude) ||
        !same(a.locations[i].longitude, b.locations[i].longitude)) {
      return false;
    }
  }
  return true;
}

int64_t SearchIndex::NextRevision(int64_t given) {
  if (loading_) return revision_;
  const int64_t revision = given > 0 ? given : revision_ + 1;
  revision_ = std::max(revision_, revision);
  return revision;
}

void SearchIndex::RecordChange(int64_t revision, absl::string_view registration_id,
                               const Doc& before) {
  // While loading, and for commits replayed after a background load (already in the view),
  // no page token can be older than the change.
  if (loading_ || revision <= horizon_) return;
  changes_.push_back(Change{revision, std::string(registration_id), PositionDataOf(before)});
  changes_by_id_[registration_id].push_back(&changes_.back());
  while (changes_.size() > max_changes_) {
    const Change& oldest = changes_.front();
    horizon_ = std::max(horizon_, oldest.revision);
    auto it = changes_by_id_.find(oldest.registration_id);
    it->second.erase(it->second.begin());
    if (it->second.empty()) changes_by_id_.erase(it);
    changes_.pop_front();
  }
}

const SearchIndex::PositionData* SearchIndex::PositionAsOf(absl::string_view registration_id,
                                                           int64_t revision) const {
  auto it = changes_by_id_.find(registration_id);
  if (it == changes_by_id_.end()) return nullptr;
  // The first change after `revision` saw the data in force at `revision` (changes that do
  // not move a registrant are not recorded, so they do not matter).
  for (const Change* change : it->second) {
    if (change->revision > revision) return &change->before;
  }
  return nullptr;
}

void SearchIndex::Put(const v1::Practitioner& record, int64_t revision) {
  std::unique_lock lock(mu_);
  const int64_t change_revision = NextRevision(revision);
  Doc doc = MakeDoc(record);
  uint32_t doc_id;
  Memberships before;
  const Memberships after = MembershipsOf(doc);
  if (auto it = doc_ids_.find(absl::string_view(record.registration_id())); it != doc_ids_.end()) {
    doc_id = *it;
    before = MembershipsOf(docs_[doc_id]);
    if (!SamePosition(docs_[doc_id], doc)) {
      RecordChange(change_revision, record.registration_id(), docs_[doc_id]);
    }
    ordered_.erase({docs_[doc_id].sort_key, doc_id});
    docs_[doc_id] = std::move(doc);  // Same id, so its place in doc_ids_ holds.
  } else {
    if (!free_docs_.empty()) {
      doc_id = free_docs_.back();
      free_docs_.pop_back();
    } else {
      doc_id = static_cast<uint32_t>(docs_.size());
      docs_.emplace_back();
    }
    docs_[doc_id] = std::move(doc);
    doc_ids_.insert(doc_id);
    ++live_;
  }
  ordered_.insert({docs_[doc_id].sort_key, doc_id});
  UpdatePostings(doc_id, before, after);
  UpdateAuthorizedBits(doc_id);
}

void SearchIndex::Remove(absl::string_view registration_id, int64_t revision) {
  std::unique_lock lock(mu_);
  RemoveLocked(registration_id, NextRevision(revision));
}

void SearchIndex::RemoveLocked(absl::string_view registration_id, int64_t revision) {
  auto it = doc_ids_.find(registration_id);
  if (it == doc_ids_.end()) return;
  const uint32_t doc_id = *it;
  RecordChange(revision, registration_id, docs_[doc_id]);
  doc_ids_.erase(it);
  UpdatePostings(doc_id, MembershipsOf(docs_[doc_id]), Memberships());
  ordered_.erase({docs_[doc_id].sort_key, doc_id});
  docs_[doc_id] = Doc();
  UpdateAuthorizedBits(doc_id);
  free_docs_.push_back(doc_id);
  --live_;
}

absl::StatusOr<Page> SearchIndex::Search(const Query& q, int32_t today, Deadline* deadline) const {
  Deadline no_deadline;
  if (deadline == nullptr) deadline = &no_deadline;
  const auto out_of_time = [] {
    return absl::DeadlineExceededError("the search ran out of its time budget");
  };
  std::shared_lock lock(mu_);
  Page page;
  const size_t page_size = static_cast<size_t>(std::max(q.page_size, 1));
  // Positions are those as of the first page's revision: a registrant that moved since (a
  // rename, a new location) keeps its old place, so the pages already read and those to come
  // still split the order at the same points.
  page.revision = revision_;
  if (q.as_of_revision) {
    if (*q.as_of_revision < horizon_) {
      return absl::FailedPreconditionError(
          "the register changed too much since the first page (or the server restarted after "
          "writes)");
    }
    page.revision = *q.as_of_revision;
  }
  const int64_t as_of = page.revision;
  const bool moved_since =
      q.as_of_revision && !changes_.empty() && changes_.back().revision > *q.as_of_revision;

  // Per query token, how each term matches it: 0 no, 1 within the allowed edits, 2 by prefix.
  const size_t n_tokens = q.name_tokens.size();
  std::vector<std::vector<uint8_t>> match(n_tokens);
  std::vector<std::vector<uint32_t>> token_terms(n_tokens);
  std::vector<size_t> token_cost(n_tokens, 0);
  for (size_t i = 0; i < n_tokens; ++i) {
    const std::string& token = q.name_tokens[i];
    match[i].assign(terms_.size(), 0);
    for (auto it = term_ids_.lower_bound(token);
         it != term_ids_.end() && absl::string_view(it->first).substr(0, token.size()) == token;
         ++it) {
      if (deadline->Expired()) return out_of_time();
      match[i][it->second] = 2;
      token_terms[i].push_back(it->second);
      token_cost[i] += terms_[it->second].postings.size();
    }
    if (!q.fuzzy) continue;
    const std::u32string query32 = ToUtf32(token);
    const int max_edits = MaxEdits(query32);
    if (max_edits == 0) continue;
    for (uint32_t id = 0; id < terms_.size(); ++id) {
      if (deadline->Expired()) return out_of_time();
      if (match[i][id] != 0 || terms_[id].postings.empty()) continue;
      if (FuzzyPrefixDistance(query32, terms_[id].code_points, max_edits) <= max_edits) {
        match[i][id] = 1;
        token_terms[i].push_back(id);
        token_cost[i] += terms_[id].postings.size();
      }
    }
  }

  // Exact filters whose value no registrant has match nothing.
  std::optional<uint32_t> city, language;
  if (!q.city.empty()) {
    auto it = city_ids_.find(q.city);
    if (it == city_ids_.end()) return page;
    city = it->second;
  }
  if (!q.language.empty()) {
    auto it = language_ids_.find(q.language);
    if (it == language_ids_.end()) return page;
    language = it->second;
  }
  const int activity = q.activity;

  const bool no_criteria = n_tokens == 0 && !city && !language && activity == 0 &&
                           q.register_ == 0 && q.postal_code_prefix.empty() && !q.near;
  if (no_criteria) {
    // Browsing: the ordered set already is the result order.
    page.total_size = live_;
    // Registrants that moved since the token's revision, at their old places after the cursor;
    // the ordered set gives everyone else.
    absl::flat_hash_set<uint32_t> moved_docs;
    std::vector<std::pair<absl::string_view, uint32_t>> moved;
    if (moved_since) {
      for (auto c = changes_.rbegin(); c != changes_.rend() && c->revision > as_of; ++c) {
        auto doc = doc_ids_.find(absl::string_view(c->registration_id));
        if (doc == doc_ids_.end() || !moved_docs.insert(*doc).second) continue;
        if (deadline->Expired()) return out_of_time();
        const PositionData* old = PositionAsOf(c->registration_id, as_of);
        if (!q.after || old->sort_key > q.after->key) moved.emplace_back(old->sort_key, *doc);
      }
      std::sort(moved.begin(), moved.end());
    }
    auto it = q.after ? ordered_.upper_bound({q.after->key, std::numeric_limits<uint32_t>::max()})
                      : ordered_.begin();
    auto next_unmoved = [&] {
      while (it != ordered_.end() && moved_docs.contains(it->second)) ++it;
    };
    size_t m = 0;
    for (next_unmoved(); page.hits.size() < page_size; next_unmoved()) {
      const bool from_moved =
          m < moved.size() && (it == ordered_.end() || moved[m].first < it->first);
      if (!from_moved && it == ordered_.end()) break;
      const auto& [key, doc] = from_moved ? moved[m++] : *it++;
      page.hits.push_back(Hit{std::string(IdOf(docs_[doc])), 0, Position{0, 0, std::string(key)}});
    }
    page.more = it != ordered_.end() || m < moved.size();
    return page;
  }

  // Grid cells a `near` query must look at.
  std::vector<int32_t> cells;
  size_t cells_cost = 0;
  if (q.near) {
    const double dlat = q.radius_km / kKmPerDegree + 0.01;
    const double max_abs_lat =
        std::min(90.0, std::max(std::abs(q.latitude - dlat), std::abs(q.latitude + dlat)));
    const double cos_lat = std::cos(Radians(max_abs_lat));
    const double dlng = cos_lat < 1e-6 ? 360 : q.radius_km / (kKmPerDegree * cos_lat) + 0.01;
    const int lat_lo = LatIndex(q.latitude - dlat), lat_hi = LatIndex(q.latitude + dlat);
    int lng_lo = static_cast<int>(std::floor((q.longitude - dlng) * kCellsPerDegree));
    int lng_hi = static_cast<int>(std::floor((q.longitude + dlng) * kCellsPerDegree));
    if (lng_hi - lng_lo >= kLngCells - 1) lng_lo = -kLngCells / 2, lng_hi = kLngCells / 2 - 1;
    for (int lat = lat_lo; lat <= lat_hi; ++lat) {
      if (deadline->Expired()) return out_of_time();
      for (int lng = lng_lo; lng <= lng_hi; ++lng) {
        // Across the antimeridian the cells continue on the other side.
        const int wrapped =
            ((lng + kLngCells / 2) % kLngCells + kLngCells) % kLngCells - kLngCells / 2;
        auto it = cells_.find(CellOf(lat, wrapped));
        if (it == cells_.end() || it->second.empty()) continue;
        cells.push_back(it->first);
        cells_cost += it->second.size();
      }
    }
  }

  // Candidates: the intersection of the sorted doc lists of the criteria that have one (each
  // name token's terms merged into one list), smallest first, so that only docs matching all
  // of them are ever read. Every criterion is still checked on each survivor below.
  struct List {
    size_t cost;
    const Postings* postings;  // Or, when null, the union of `parts`.
    std::vector<const Postings*> parts;
    bool activity = false;  // The holders of `activity` (the authorized-today bits refine it).
  };
  std::vector<List> lists;
  for (size_t i = 0; i < n_tokens; ++i) {
    List list{token_cost[i], nullptr, {}};
    for (uint32_t term : token_terms[i]) list.parts.push_back(&terms_[term].postings);
    if (list.parts.size() == 1) list.postings = list.parts[0];
    lists.push_back(std::move(list));
  }
  if (city) lists.push_back(List{city_postings_[*city].size(), &city_postings_[*city], {}});
  if (language) {
    lists.push_back(List{language_postings_[*language].size(), &language_postings_[*language], {}});
  }
  if (activity != 0) {
    lists.push_back(
        List{activity_postings_[activity].size(), &activity_postings_[activity], {}, true});
  }
  if (q.near) {
    List list{cells_cost, nullptr, {}};
    for (int32_t cell : cells) list.parts.push_back(&cells_.at(cell));
    lists.push_back(std::move(list));
  }
  std::sort(lists.begin(), lists.end(),
            [](const List& a, const List& b) { return a.cost < b.cost; });

  // Whether each doc is authorized today for `activity`: one bit per doc, computed once per
  // day and kept current by every write.
  std::shared_ptr<const std::vector<uint64_t>> authorized_today;
  if (activity != 0) authorized_today = AuthorizedBits(activity, today);

  std::vector<uint32_t> candidates;
  bool scan_all = lists.empty();  // Only register / postal code: read every doc.
  if (bitmap_candidates_.load(std::memory_order_relaxed) && !lists.empty() && !lists[0].activity &&
      lists[0].cost >= docs_.size() / 256) {
    // Even the most selective criterion has many docs (short prefixes: "ma" is 80,000 of
    // 1,000,000): its docs become a bitmap, each further criterion keeps the bits of its docs
    // that are set (no sorted union built, no merge), "authorized today" is ANDed in while the
    // bits are read back, and a criterion much wider than what is left is checked per
    // candidate instead (consider_doc checks every criterion anyway).
    const size_t words = (docs_.size() + 63) / 64;
    int slot = 0;
    std::vector<uint64_t>* bits = &ZeroedBits(slot, words);
    auto set_all = [&](const List& list) {
      const std::vector<const Postings*> single = {list.postings};
      for (const Postings* part : list.postings != nullptr ? single : list.parts) {
        for (uint32_t doc : *part) (*bits)[doc / 64] |= uint64_t{1} << (doc % 64);
      }
    };
    set_all(lists[0]);
    size_t left = lists[0].cost;  // At most this many docs have their bit set.
    for (size_t i = 1; i < lists.size() && left > 0; ++i) {
      const List& list = lists[i];
      if (deadline->Expired()) return out_of_time();
      if (list.activity && authorized_today != nullptr) continue;  // ANDed below.
      // Reading a candidate's doc costs ~30 times a posting: a list that much larger than
      // the docs left is cheaper to check per candidate.
      if (list.cost > 32 * left) continue;
      slot = 1 - slot;
      std::vector<uint64_t>* kept = &ZeroedBits(slot, words);
      left = 0;
      const std::vector<const Postings*> single = {list.postings};
      for (const Postings* part : list.postings != nullptr ? single : list.parts) {
        for (uint32_t doc : *part) {
          const uint64_t mask = uint64_t{1} << (doc % 64);
          if (((*bits)[doc / 64] & mask) == 0 || ((*kept)[doc / 64] & mask) != 0) continue;
          (*kept)[doc / 64] |= mask;
          ++left;
        }
      }
      bits = kept;
    }
    if (deadline->Expired()) return out_of_time();
    const std::vector<uint64_t>* authorized = authorized_today.get();
    for (size_t word = 0; word < words; ++word) {
      uint64_t rest = (*bits)[word];
      if (authorized != nullptr) rest &= word < authorized->size() ? (*authorized)[word] : 0;
      for (; rest != 0; rest &= rest - 1) {
        candidates.push_back(
            static_cast<uint32_t>(word * 64 + static_cast<size_t>(std::countr_zero(rest))));
      }
    }
    lists.clear();  // Done: the loop below has nothing left to intersect.
  }
  for (size_t i = 0; i < lists.size(); ++i) {
    const List& list = lists[i];
    // A union much larger than the candidates left costs more to build than checking the
    // criterion per candidate (which happens anyway).
    if (i > 0 && list.postings == nullptr && list.cost > 8 * candidates.size()) continue;
    if (i == 0) {
      candidates =
          list.postings != nullptr ? *list.postings : Union(list.parts, docs_.size(), deadline);
    } else if (list.postings != nullptr) {
      IntersectWith(&candidates, *list.postings);
    } else {
      IntersectWith(&candidates, Union(list.parts, docs_.size(), deadline));
    }
    if (deadline->Expired()) return out_of_time();
    if (candidates.empty()) break;
  }

  struct Candidate {
    uint8_t tier;
    double distance_km;
    uint32_t doc;
    const std::string* key;  // The doc's sort key, or its key as of the token's revision.
    double shown_km;         // Its distance now (distance_km may be the one as of then).
  };
  auto key_of = [](const Candidate& c) -> const std::string& { return *c.key; };
  auto before = [&key_of](const Candidate& a, const Candidate& b) {
    if (a.tier != b.tier) return a.tier < b.tier;
    if (a.distance_km != b.distance_km) return a.distance_km < b.distance_km;
    return key_of(a) < key_of(b);
  };
  // A max-heap of the best `page_size` matches after the page token's position.
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(before)> best(before);
  int64_t after_count = 0;

  auto consider_doc = [&](uint32_t doc_id) {
    // The authorized-today bit first: it spares reading the doc of most candidates.
    if (activity != 0) {
      const std::vector<uint64_t>& bits = *authorized_today;
      if (doc_id / 64 >= bits.size() || !((bits[doc_id / 64] >> (doc_id % 64)) & 1)) return;
    }
    const Doc& doc = docs_[doc_id];
    if (!doc.alive) return;
    if (q.register_ != 0 && doc.register_ != q.register_) return;
    if (language &&
        std::find(doc.languages.begin(), doc.languages.end(), *language) == doc.languages.end()) {
      return;
    }
    if (city || !q.postal_code_prefix.empty()) {
      bool found = false;
      for (const Location& l : doc.locations) {
        if (city && l.city != *city) continue;
        if (!q.postal_code_prefix.empty() &&
            !absl::StartsWith(postal_codes_[l.postal_code], q.postal_code_prefix)) {
          continue;
        }
        found = true;
        break;
      }
      if (!found) return;
    }
    uint8_t tier = 0;
    for (size_t i = 0; i < n_tokens; ++i) {
      uint8_t token_best = 0;
      for (uint32_t term : doc.terms) token_best = std::max(token_best, match[i][term]);
      if (token_best == 0) return;
      if (token_best == 1) tier = 1;
    }
    double distance = 0;
    if (q.near) {
      distance = std::numeric_limits<double>::infinity();
      for (const Location& l : doc.locations) {
        if (std::isnan(l.latitude)) continue;
        distance = std::min(distance, DistanceKm(q.latitude, q.longitude, l.latitude, l.longitude));
      }
      if (!(distance <= q.radius_km)) return;
    }
    ++page.total_size;
    Candidate c{tier, distance, doc_id, &doc.sort_key, distance};
    if (moved_since) {
      if (const PositionData* old = PositionAsOf(IdOf(doc), as_of)) {
        // Its place as of the token's revision (it may not have matched then: any fixed
        // place will do, as long as it stays the same from page to page).
        c.key = &old->sort_key;
        c.tier = 0;
        for (size_t i = 0; i < n_tokens; ++i) {
          uint8_t token_best = 0;
          for (uint32_t term : old->terms) token_best = std::max(token_best, match[i][term]);
          if (token_best != 2) c.tier = 1;
        }
        if (q.near) {
          c.distance_km = std::numeric_limits<double>::infinity();
          for (const Location& l : old->locations) {
            if (std::isnan(l.latitude)) continue;
            c.distance_km = std::min(c.distance_km,
                                     DistanceKm(q.latitude, q.longitude, l.latitude, l.longitude));
          }
        }
      }
    }
    if (q.after) {
      const Position& a = *q.after;
      if (std::tie(c.tier, c.distance_km, *c.key) <= std::tie(a.tier, a.distance_km, a.key)) {
        return;
      }
    }
    ++after_count;
    if (best.size() < page_size) {
      best.push(c);
    } else if (before(c, best.top())) {
      best.pop();
      best.push(c);
    }
  };

  if (scan_all) {
    for (uint32_t doc_id = 0; doc_id < docs_.size(); ++doc_id) {
      if (deadline->Expired()) return out_of_time();
      consider_doc(doc_id);
    }
  } else {
    for (uint32_t doc_id : candidates) {
      if (deadline->Expired()) return out_of_time();
      consider_doc(doc_id);
    }
  }

  page.more = after_count > static_cast<int64_t>(page_size);
  page.hits.resize(best.size());
  for (size_t i = best.size(); i-- > 0;) {
    const Candidate& c = best.top();
    const Doc& doc = docs_[c.doc];
    page.hits[i] = Hit{std::string(IdOf(doc)), c.shown_km, Position{c.tier, c.distance_km, *c.key}};
    best.pop();
  }
  return page;
}

}  // namespace physioreg::search
