// Micro-benchmarks of what every read RPC runs: the key codec, request/record validation, the
// verification rule, and Registry::Verify over a real RocksDB. Search's name normalization
// and search core get their benchmarks here when the search issue lands them.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "service/core/registry.h"
#include "service/core/validation.h"
#include "service/core/verification.h"
#include "storage/key_codec.h"
#include "storage/store.h"
#include "tests/support/records.h"
#include "tests/support/temp_dir.h"

namespace physioreg {
namespace {

namespace v1 = physioreg::v1;

void BM_KeyCodecEncodeHistoryKey(benchmark::State& state) {
  int64_t revision = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(storage::HistoryIndexKey("PT-100331", revision++));
  }
}
BENCHMARK(BM_KeyCodecEncodeHistoryKey);

void BM_KeyCodecDecodeHistoryKey(benchmark::State& state) {
  const std::string key = storage::HistoryIndexKey("PT-100331", 123456);
  for (auto _ : state) {
    absl::string_view in = key;
    benchmark::DoNotOptimize(storage::ConsumeString(&in));
    benchmark::DoNotOptimize(storage::ConsumeInt64(&in));
  }
}
BENCHMARK(BM_KeyCodecDecodeHistoryKey);

void BM_NormalizeRegistrationId(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(core::NormalizeRegistrationId("pt-100331"));
}
BENCHMARK(BM_NormalizeRegistrationId);

void BM_ValidatePractitioner(benchmark::State& state) {
  const v1::Practitioner practitioner = testing::ValidPractitioner();
  for (auto _ : state) {
    core::Violations violations;
    core::ValidatePractitioner(practitioner, "practitioners[0]", "2026-11-25", &violations);
    benchmark::DoNotOptimize(violations.empty());
  }
}
BENCHMARK(BM_ValidatePractitioner);

void BM_VerificationRule(benchmark::State& state) {
  const v1::Practitioner practitioner = testing::ValidPractitioner();
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        core::Verify(&practitioner, "PT-1001", v1::DRY_NEEDLING, "2025-06-15"));
  }
}
BENCHMARK(BM_VerificationRule);

void BM_ParseStoredRecord(benchmark::State& state) {
  const std::string bytes = testing::ValidPractitioner().SerializeAsString();
  for (auto _ : state) {
    v1::Practitioner practitioner;
    benchmark::DoNotOptimize(practitioner.ParseFromString(bytes));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}
BENCHMARK(BM_ParseStoredRecord);

// A registry over a real RocksDB in a temp dir, loaded once with kRegistrants records.
constexpr int kRegistrants = 5000;

struct LoadedRegistry {
  testing::TempDir dir;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<core::Registry> registry;
  std::vector<std::string> ids;
};

LoadedRegistry& Loaded() {
  static LoadedRegistry* loaded = [] {
    auto* l = new LoadedRegistry();
    l->store = *storage::Store::Open(l->dir.Sub("data"));
    // A fixed clock keeps "today" stable so every run verifies the same answers.
    const absl::Time now =
        absl::FromCivil(absl::CivilSecond(2026, 11, 25, 12, 0, 0), absl::UTCTimeZone());
    l->registry = std::make_unique<core::Registry>(l->store.get(), absl::UTCTimeZone(),
                                                   [now] { return now; });
    for (int base = 0; base < kRegistrants; base += core::kMaxRecordsPerRequest) {
      v1::UpsertPractitionersRequest request;
      for (int i = base; i < base + core::kMaxRecordsPerRequest; ++i) {
        l->ids.push_back(absl::StrCat("PT-", 100000 + i));
        *request.add_practitioners() = testing::ValidPractitioner(l->ids.back());
      }
      if (!l->registry->Upsert(request, "bench").ok()) std::abort();
    }
    return l;
  }();
  return *loaded;
}

void BM_RegistryVerify(benchmark::State& state) {
  LoadedRegistry& l = Loaded();
  std::mt19937 rng(42);
  v1::VerifyAuthorizationRequest request;
  request.set_activity(v1::DRY_NEEDLING);
  for (auto _ : state) {
    request.set_registration_id(l.ids[rng() % l.ids.size()]);
    benchmark::DoNotOptimize(l.registry->Verify(request));
  }
}
BENCHMARK(BM_RegistryVerify)->ThreadRange(1, 2)->UseRealTime();

void BM_RegistryGetPractitioner(benchmark::State& state) {
  LoadedRegistry& l = Loaded();
  std::mt19937 rng(42);
  v1::GetPractitionerRequest request;
  for (auto _ : state) {
    request.set_registration_id(l.ids[rng() % l.ids.size()]);
    benchmark::DoNotOptimize(l.registry->GetPractitioner(request));
  }
}
BENCHMARK(BM_RegistryGetPractitioner);

void BM_RegistryBatchVerify1000(benchmark::State& state) {
  LoadedRegistry& l = Loaded();
  std::mt19937 rng(42);
  v1::BatchVerifyAuthorizationsRequest request;
  for (int i = 0; i < core::kMaxRecordsPerRequest; ++i) {
    v1::VerifyAuthorizationRequest* one = request.add_requests();
    one->set_registration_id(l.ids[rng() % l.ids.size()]);
    one->set_activity(v1::DRY_NEEDLING);
  }
  for (auto _ : state) benchmark::DoNotOptimize(l.registry->BatchVerify(request));
  state.SetItemsProcessed(state.iterations() * core::kMaxRecordsPerRequest);
}
BENCHMARK(BM_RegistryBatchVerify1000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace physioreg

BENCHMARK_MAIN();
