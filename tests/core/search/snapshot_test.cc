// The search index's snapshot: a round trip answers exactly as an index built from the store;
// writes after the snapshot are applied at load (the index follows the change log from the
// snapshot's revision); every unusable snapshot (damaged, truncated, another format, a
// revision above the store's or below the change log) falls back to a build from the store and
// answers right; a failed or interrupted write leaves the old snapshot usable.
#include "service/core/search/snapshot.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "service/core/registry.h"
#include "service/core/search/index.h"
#include "service/core/search/query.h"
#include "service/core/validation.h"
#include "storage/column_families.h"
#include "tests/support/fixed_registry.h"
#include "tests/support/temp_dir.h"
#include "tools/generator/generator.h"

namespace physioreg::search {
namespace {

using physioreg::testing::TempDir;
namespace v1 = physioreg::v1;

constexpr char kToday[] = "2026-11-25";
constexpr uint64_t kSeed = 21;

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// The first `n` code points of UTF-8 `s`.
std::string Prefix(const std::string& s, size_t n) {
  size_t end = 0;
  for (size_t seen = 0; end < s.size() && seen < n; ++seen) {
    ++end;
    while (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) ++end;
  }
  return s.substr(0, end);
}

// The queries answers are compared on: names by prefix and fuzzy, every filter, browsing,
// built from the generated registrants themselves so that they match something.
std::vector<v1::SearchPractitionersRequest> Queries(const std::vector<v1::Practitioner>& records) {
  std::vector<v1::SearchPractitionersRequest> out;
  for (size_t i = 0; i < records.size(); i += 37) {
    const v1::Practitioner& p = records[i];
    v1::SearchPractitionersRequest r;
    r.set_name(Prefix(p.given_name(), 2) + " " + Prefix(p.family_name(), 3));
    r.set_activity(v1::DRY_NEEDLING);
    out.push_back(r);
    r.Clear();
    r.set_name(p.family_name());
    r.set_page_size(50);
    out.push_back(r);
    r.Clear();
    std::string fuzzy = p.family_name();
    if (fuzzy.size() > 3 && static_cast<unsigned char>(fuzzy[1]) < 0x80 &&
        static_cast<unsigned char>(fuzzy[2]) < 0x80) {
      std::swap(fuzzy[1], fuzzy[2]);
    }
    r.set_name(fuzzy);
    r.set_fuzzy(true);
    out.push_back(r);
    if (p.locations_size() > 0) {
      const v1::PracticeLocation& l = p.locations(0);
      r.Clear();
      r.set_city(l.city());
      r.set_activity(v1::DRY_NEEDLING);
      out.push_back(r);
      r.Clear();
      r.set_postal_code_prefix(Prefix(l.postal_code(), 3));
      out.push_back(r);
      if (l.latitude() != 0 || l.longitude() != 0) {
        r.Clear();
        r.mutable_near()->set_latitude(l.latitude());
        r.mutable_near()->set_longitude(l.longitude());
        r.mutable_near()->set_radius_km(5);
        out.push_back(r);
      }
    }
    if (p.languages_size() > 0) {
      r.Clear();
      r.set_language(p.languages(0));
      r.set_register_(p.permit().register_());
      out.push_back(r);
    }
  }
  out.emplace_back();  // Browse.
  v1::SearchPractitionersRequest all_provisional;
  all_provisional.set_register_(v1::PROVISIONAL);
  all_provisional.set_page_size(100);
  out.push_back(all_provisional);
  return out;
}

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Open()); }
  void TearDown() override { Close(); }

  void Open() {
    ASSERT_NO_FATAL_FAILURE(physioreg::testing::OpenFixedClockRegistry(dir_, &store_, &registry_));
  }
  // Indexes first: they leave the store's feed.
  void Close() {
    indexes_.clear();
    registry_.reset();
    store_.reset();
  }
  void Restart() {
    Close();
    ASSERT_NO_FATAL_FAILURE(Open());
  }

  void Upsert(const std::vector<v1::Practitioner>& records) {
    for (size_t start = 0; start < records.size(); start += core::kMaxRecordsPerRequest) {
      v1::UpsertPractitionersRequest request;
      for (size_t i = start; i < records.size() && i < start + core::kMaxRecordsPerRequest; ++i) {
        *request.add_practitioners() = records[i];
      }
      absl::StatusOr<v1::UpsertPractitionersResponse> r = registry_->Upsert(request, "k1");
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }

  std::vector<v1::Practitioner> Generate(int from, int to) {
    std::vector<v1::Practitioner> records;
    for (int i = from; i < to; ++i) records.push_back(tools::GenerateRegistrant(kSeed, i));
    return records;
  }

  // An index attached to the store, from the snapshot at `snapshot` when it is usable.
  SearchIndex* Attach(const std::string& snapshot, const std::string& register_id = "") {
    indexes_.push_back(std::make_unique<SearchIndex>());
    SearchIndex* index = indexes_.back().get();
    index->set_snapshot_path(snapshot, register_id);
    absl::Status status = index->Attach(store_.get());
    EXPECT_TRUE(status.ok()) << status;
    return index;
  }

  // Every query answers the same through both indexes (records, totals, distances, tokens),
  // and the next pages of the first token do too.
  void ExpectSameAnswers(const SearchIndex& a, const SearchIndex& b,
                         const std::vector<v1::SearchPractitionersRequest>& queries) {
    Searcher sa(&a, store_.get()), sb(&b, store_.get());
    int nonempty = 0;
    for (v1::SearchPractitionersRequest q : queries) {
      for (int page = 0; page < 3; ++page) {
        absl::StatusOr<v1::SearchPractitionersResponse> ra = sa.Search(q, kToday);
        absl::StatusOr<v1::SearchPractitionersResponse> rb = sb.Search(q, kToday);
        ASSERT_TRUE(ra.ok()) << ra.status() << " " << q.ShortDebugString();
        ASSERT_TRUE(rb.ok()) << rb.status() << " " << q.ShortDebugString();
        ASSERT_EQ(ra->SerializeAsString(), rb->SerializeAsString()) << q.ShortDebugString();
        if (ra->total_size() > 0) ++nonempty;
        if (ra->next_page_token().empty()) break;
        q.set_page_token(ra->next_page_token());
      }
    }
    EXPECT_GT(nonempty, static_cast<int>(queries.size()) / 2);  // The queries match things.
  }

  std::vector<std::string> Ids(const SearchIndex& index, const std::string& name) {
    Searcher searcher(&index, store_.get());
    v1::SearchPractitionersRequest q;
    q.set_name(name);
    q.set_page_size(100);
    absl::StatusOr<v1::SearchPractitionersResponse> r = searcher.Search(q, kToday);
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::string> ids;
    if (r.ok()) {
      for (const v1::Practitioner& p : r->practitioners()) ids.push_back(p.registration_id());
    }
    return ids;
  }

  std::string Path() const { return dir_.Sub("search-index.snapshot"); }

  // A snapshot of the current register at Path(); its revision.
  int64_t WriteSnapshot() {
    SearchIndex* index = Attach("");
    absl::StatusOr<int64_t> written = index->WriteSnapshot(Path());
    EXPECT_TRUE(written.ok()) << written.status();
    return written.value_or(-1);
  }

  // Loading the snapshot at `path` falls back to the store (with `reason` in load_source)
  // and answers as a fresh build does.
  void ExpectFallback(const std::string& path, const std::string& reason) {
    SearchIndex* fresh = Attach("");
    SearchIndex* loaded = Attach(path);
    EXPECT_FALSE(loaded->loaded_from_snapshot()) << loaded->load_source();
    EXPECT_NE(loaded->load_source().find(reason), std::string::npos) << loaded->load_source();
    EXPECT_EQ(loaded->size(), fresh->size());
    EXPECT_EQ(loaded->revision(), store_->revision());
    ExpectSameAnswers(*fresh, *loaded, Queries(records_));
  }

  TempDir dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<core::Registry> registry_;
  std::vector<std::unique_ptr<SearchIndex>> indexes_;
  std::vector<v1::Practitioner> records_;
};

TEST_F(SnapshotTest, RoundTripAnswersAsABuildFromTheStore) {
  records_ = Generate(0, 1500);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  const int64_t revision = WriteSnapshot();
  ASSERT_EQ(revision, store_->revision());
  struct stat st {};
  ASSERT_EQ(::stat(Path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);  // Like the data dir's other files: the owner's only.
  EXPECT_FALSE(std::filesystem::exists(Path() + ".tmp"));

  ASSERT_NO_FATAL_FAILURE(Restart());
  SearchIndex* fresh = Attach("");
  SearchIndex* loaded = Attach(Path());
  ASSERT_TRUE(loaded->loaded_from_snapshot()) << loaded->load_source();
  EXPECT_EQ(loaded->load_source().rfind("snapshot revision=" + std::to_string(revision) + " ", 0),
            0u)
      << loaded->load_source();
  EXPECT_EQ(loaded->size(), 1500);
  EXPECT_EQ(loaded->revision(), revision);
  ExpectSameAnswers(*fresh, *loaded, Queries(records_));

  // A snapshot of the loaded index is the same bytes: nothing was lost or reordered.
  const std::string first = ReadBytes(Path());
  ASSERT_TRUE(loaded->WriteSnapshot(Path()).ok());
  EXPECT_EQ(ReadBytes(Path()), first);
}

// The docs are parsed in two halves (format 2): odd and tiny counts split right too.
TEST_F(SnapshotTest, OneAndThreeRegistrantsRoundTrip) {
  for (int n : {1, 3}) {
    SCOPED_TRACE(n);
    records_ = Generate(0, n);
    ASSERT_NO_FATAL_FAILURE(Upsert(records_));
    WriteSnapshot();
    SearchIndex* fresh = Attach("");
    SearchIndex* loaded = Attach(Path());
    ASSERT_TRUE(loaded->loaded_from_snapshot()) << loaded->load_source();
    EXPECT_EQ(loaded->size(), n);
    ExpectSameAnswers(*fresh, *loaded, Queries(records_));
  }
}

TEST_F(SnapshotTest, WritesAfterTheSnapshotAreAppliedAtLoad) {
  records_ = Generate(0, 800);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  const int64_t revision = WriteSnapshot();

  // After the snapshot: new registrants, a rename, a move, a suspension.
  std::vector<v1::Practitioner> added = Generate(800, 1000);
  ASSERT_NO_FATAL_FAILURE(Upsert(added));
  v1::Practitioner renamed = records_[5];
  const std::string old_family = renamed.family_name();
  renamed.set_family_name("Zyxwvutsson");
  v1::Practitioner moved = records_[6];
  ASSERT_GT(moved.locations_size(), 0);
  moved.mutable_locations(0)->set_city("Snapshotville");
  ASSERT_NO_FATAL_FAILURE(Upsert({renamed, moved}));
  v1::SetPermitStatusRequest suspend;
  suspend.set_registration_id(records_[7].registration_id());
  suspend.set_status(v1::Permit::SUSPENDED);
  suspend.set_reason("test");
  ASSERT_TRUE(registry_->SetPermitStatus(suspend, "k1").ok());
  records_.insert(records_.end(), added.begin(), added.end());
  records_[5] = renamed;
  records_[6] = moved;
  ASSERT_GT(store_->revision(), revision);

  ASSERT_NO_FATAL_FAILURE(Restart());
  SearchIndex* fresh = Attach("");
  SearchIndex* loaded = Attach(Path());
  ASSERT_TRUE(loaded->loaded_from_snapshot()) << loaded->load_source();
  EXPECT_EQ(loaded->revision(), store_->revision());
  EXPECT_EQ(loaded->size(), 1000);
  ExpectSameAnswers(*fresh, *loaded, Queries(records_));

  EXPECT_EQ(Ids(*loaded, "Zyxwvutsson"), std::vector<std::string>{renamed.registration_id()});
  std::vector<std::string> old_name = Ids(*loaded, renamed.given_name() + " " + old_family);
  EXPECT_EQ(std::count(old_name.begin(), old_name.end(), renamed.registration_id()), 0);
  EXPECT_EQ(Ids(*loaded, added[3].given_name() + " " + added[3].family_name()),
            Ids(*fresh, added[3].given_name() + " " + added[3].family_name()));
  Searcher searcher(loaded, store_.get());
  v1::SearchPractitionersRequest in_city;
  in_city.set_city("Snapshotville");
  absl::StatusOr<v1::SearchPractitionersResponse> r = searcher.Search(in_city, kToday);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->practitioners_size(), 1);
  EXPECT_EQ(r->practitioners(0).registration_id(), moved.registration_id());
  v1::SearchPractitionersRequest authorized;
  authorized.set_name(records_[7].given_name() + " " + records_[7].family_name());
  authorized.set_activity(v1::DRY_NEEDLING);
  r = searcher.Search(authorized, kToday);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const v1::Practitioner& p : r->practitioners()) {
    EXPECT_NE(p.registration_id(), records_[7].registration_id());  // Suspended: not authorized.
  }
}

TEST_F(SnapshotTest, PageTokensFromBeforeTheSnapshotAreRefused) {
  records_ = Generate(0, 300);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  SearchIndex* before = Attach("");
  Searcher searcher(before, store_.get());
  v1::SearchPractitionersRequest q;
  q.set_page_size(10);
  absl::StatusOr<v1::SearchPractitionersResponse> first = searcher.Search(q, kToday);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_FALSE(first->next_page_token().empty());
  ASSERT_NO_FATAL_FAILURE(Upsert(Generate(300, 310)));  // The token's revision is older now.
  ASSERT_TRUE(before->WriteSnapshot(Path()).ok());

  ASSERT_NO_FATAL_FAILURE(Restart());
  SearchIndex* loaded = Attach(Path());
  ASSERT_TRUE(loaded->loaded_from_snapshot()) << loaded->load_source();
  Searcher after(loaded, store_.get());
  q.set_page_token(first->next_page_token());
  absl::StatusOr<v1::SearchPractitionersResponse> next = after.Search(q, kToday);
  // As after any reload: the positions as of the token's revision are not known.
  EXPECT_EQ(next.status().code(), absl::StatusCode::kInvalidArgument) << next.status();
  EXPECT_NE(next.status().message().find("page_token has expired"), absl::string_view::npos)
      << next.status();
}

TEST_F(SnapshotTest, NoSnapshotBuildsFromTheStore) {
  records_ = Generate(0, 200);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  ExpectFallback(Path(), "no snapshot");
}

TEST_F(SnapshotTest, CorruptSnapshotFallsBack) {
  records_ = Generate(0, 400);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  WriteSnapshot();
  std::string bytes = ReadBytes(Path());
  bytes[bytes.size() / 2] ^= 0x20;
  WriteBytes(Path(), bytes);
  ExpectFallback(Path(), "checksum");
}

TEST_F(SnapshotTest, TruncatedSnapshotFallsBack) {
  records_ = Generate(0, 400);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  WriteSnapshot();
  const std::string bytes = ReadBytes(Path());
  for (size_t keep : {size_t{0}, size_t{10}, bytes.size() / 3, bytes.size() - 1}) {
    SCOPED_TRACE(keep);
    WriteBytes(Path(), bytes.substr(0, keep));
    ExpectFallback(Path(), keep < 40 ? "not a search index snapshot" : "truncated");
  }
}

// A file far larger than memory in the snapshot's place (here sparse): refused from its header,
// never read whole (that threw std::bad_alloc and aborted physioregd at start).
TEST_F(SnapshotTest, HugeFileInPlaceOfTheSnapshotFallsBack) {
  records_ = Generate(0, 200);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  constexpr uintmax_t kHuge = uintmax_t{1} << 40;  // 1 TiB.
  WriteBytes(Path(), "");
  std::filesystem::resize_file(Path(), kHuge);  // Zeros: no magic.
  ExpectFallback(Path(), "not a search index snapshot");
  WriteSnapshot();  // A real snapshot, padded to 1 TiB: its header gives its size.
  std::filesystem::resize_file(Path(), kHuge);
  ExpectFallback(Path(), "truncated or padded");
}

TEST_F(SnapshotTest, OtherFormatFallsBack) {
  records_ = Generate(0, 200);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  WriteSnapshot();
  std::string bytes = ReadBytes(Path());
  bytes[8] = static_cast<char>(snapshot::kFormat + 1);  // The format, after the magic.
  WriteBytes(Path(), bytes);
  ExpectFallback(Path(), absl::StrCat("snapshot format ", snapshot::kFormat + 1));
}

// A snapshot written by a build before format 2 (docs by number, with free slots and an order
// list): not read, the index is built from the store.
TEST_F(SnapshotTest, FormatOneSnapshotFallsBack) {
  records_ = Generate(0, 200);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  WriteSnapshot();
  std::string bytes = ReadBytes(Path());
  bytes[8] = 1;
  WriteBytes(Path(), bytes);
  ExpectFallback(Path(), "snapshot format 1, this build reads 2");
}

TEST_F(SnapshotTest, SnapshotOfAnotherRegisterWithAHigherRevisionFallsBack) {
  records_ = Generate(0, 300);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  const int64_t revision = WriteSnapshot();
  // Another data dir with fewer commits gets this snapshot.
  const std::string copy = dir_.Sub("copied.snapshot");
  std::filesystem::copy_file(Path(), copy);
  Close();
  TempDir other;
  ASSERT_NO_FATAL_FAILURE(physioreg::testing::OpenFixedClockRegistry(other, &store_, &registry_));
  records_ = Generate(0, 50);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  ASSERT_LT(store_->revision(), revision);
  ExpectFallback(copy, "above the store's");
  Close();
  ASSERT_NO_FATAL_FAILURE(Open());
}

TEST_F(SnapshotTest, SnapshotOfAnotherRegisterIdFallsBack) {
  records_ = Generate(0, 200);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  ASSERT_TRUE(Attach("", "register-a")->WriteSnapshot(Path()).ok());
  SearchIndex* same = Attach(Path(), "register-a");
  EXPECT_TRUE(same->loaded_from_snapshot()) << same->load_source();
  EXPECT_EQ(same->loaded_snapshot_revision(), store_->revision());
  SearchIndex* other = Attach(Path(), "register-b");
  EXPECT_FALSE(other->loaded_from_snapshot());
  EXPECT_EQ(other->loaded_snapshot_revision(), -1);
  EXPECT_EQ(other->load_source(),
            "store reason=\"snapshot of another register (id \"register-a\", this one is "
            "\"register-b\")\"");
  EXPECT_EQ(other->size(), same->size());
}

TEST_F(SnapshotTest, SnapshotOlderThanTheChangeLogFallsBack) {
  records_ = Generate(0, 300);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  WriteSnapshot();
  std::vector<v1::Practitioner> added = Generate(300, 400);
  ASSERT_NO_FATAL_FAILURE(Upsert(added));
  records_.insert(records_.end(), added.begin(), added.end());
  ASSERT_TRUE(store_->PruneChangeLog(store_->revision()).ok());
  ASSERT_NO_FATAL_FAILURE(Restart());
  ExpectFallback(Path(), "older than the change log");
}

// A well-framed snapshot (right checksum) whose body is cut short or random: refused, never
// half-loaded.
TEST_F(SnapshotTest, InconsistentBodyWithAValidChecksumFallsBack) {
  records_ = Generate(0, 200);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  const int64_t revision = WriteSnapshot();
  const std::string bytes = ReadBytes(Path());
  const std::string body = bytes.substr(
      snapshot::kHeaderSize, bytes.size() - snapshot::kHeaderSize - snapshot::kTrailerSize);
  auto frame = [revision](const std::string& b) {
    std::string file = snapshot::StartFrame() + b;
    snapshot::FinishFrame(&file, revision, static_cast<uint32_t>(storage::kStorageFormat));
    return file;
  };
  std::mt19937 random(7);
  std::vector<std::string> bodies = {body.substr(0, body.size() / 2), body.substr(0, 5),
                                     body + "x"};
  std::string noise(body.size(), '\0');
  for (char& c : noise) c = static_cast<char>(random());
  bodies.push_back(noise);
  for (int i = 0; i < 4; ++i) {
    std::string flipped = body;
    flipped[random() % flipped.size()] ^= static_cast<char>(1 + random() % 255);
    flipped[random() % flipped.size()] ^= static_cast<char>(1 + random() % 255);
    bodies.push_back(flipped);
  }
  int refused = 0;
  for (size_t i = 0; i < bodies.size(); ++i) {
    SCOPED_TRACE(i);
    WriteBytes(Path(), frame(bodies[i]));
    SearchIndex* fresh = Attach("");
    SearchIndex* loaded = Attach(Path());
    if (!loaded->loaded_from_snapshot()) {
      ++refused;
      EXPECT_NE(loaded->load_source().find("inconsistent"), std::string::npos)
          << loaded->load_source();
    }
    // A flipped byte inside a name or a coordinate is a valid state of another register; the
    // parser must only never crash or half-load, and answers must come from a whole index.
    EXPECT_EQ(loaded->size(), fresh->size());
    if (i < 4) {
      EXPECT_FALSE(loaded->loaded_from_snapshot());
    }
  }
  EXPECT_GE(refused, 4);
}

TEST_F(SnapshotTest, InterruptedOrFailedWriteLeavesTheOldSnapshotUsable) {
  records_ = Generate(0, 300);
  ASSERT_NO_FATAL_FAILURE(Upsert(records_));
  const int64_t revision = WriteSnapshot();
  const std::string old_bytes = ReadBytes(Path());
  std::vector<v1::Practitioner> added = Generate(300, 350);
  ASSERT_NO_FATAL_FAILURE(Upsert(added));
  records_.insert(records_.end(), added.begin(), added.end());

  // A crash in the middle of a write leaves a partial temp file; the snapshot is the old one.
  WriteBytes(Path() + ".tmp", old_bytes.substr(0, old_bytes.size() / 2));
  // A write that fails (here: the temp file cannot be created) changes nothing either.
  SearchIndex* current = Attach("");
  std::filesystem::remove(Path() + ".tmp");
  std::filesystem::create_directory(Path() + ".tmp");
  EXPECT_FALSE(current->WriteSnapshot(Path()).ok());
  EXPECT_EQ(ReadBytes(Path()), old_bytes);
  std::filesystem::remove(Path() + ".tmp");
  WriteBytes(Path() + ".tmp", old_bytes.substr(0, old_bytes.size() / 3));

  ASSERT_NO_FATAL_FAILURE(Restart());
  SearchIndex* fresh = Attach("");
  SearchIndex* loaded = Attach(Path());
  ASSERT_TRUE(loaded->loaded_from_snapshot()) << loaded->load_source();
  EXPECT_EQ(loaded->load_source().rfind("snapshot revision=" + std::to_string(revision) + " ", 0),
            0u)
      << loaded->load_source();
  EXPECT_EQ(loaded->size(), 350);
  ExpectSameAnswers(*fresh, *loaded, Queries(records_));

  // The next write replaces the leftover temp file and the snapshot.
  ASSERT_TRUE(loaded->WriteSnapshot(Path()).ok());
  EXPECT_FALSE(std::filesystem::exists(Path() + ".tmp"));
  EXPECT_NE(ReadBytes(Path()), old_bytes);
}

TEST(SnapshotBytes, Crc32cKnownValues) {
  // RFC 3720's check value and test vectors for CRC-32C.
  EXPECT_EQ(snapshot::Crc32c(0, "123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xFF');
  EXPECT_EQ(snapshot::Crc32c(0, zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(snapshot::Crc32c(0, ones.data(), ones.size()), 0x62A8AB43u);
  // In pieces, the same.
  EXPECT_EQ(snapshot::Crc32c(snapshot::Crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

}  // namespace
}  // namespace physioreg::search
