// Micro-benchmarks of what every read RPC runs: the key codec, request/record validation, the
// verification rule, and Registry::Verify over a real RocksDB. Search's name normalization
// and search core get their benchmarks here when the search issue lands them.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "service/core/attestation.h"
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
    benchmark::DoNotOptimize(storage::HistoryKey("PT-100331", revision++));
  }
}
BENCHMARK(BM_KeyCodecEncodeHistoryKey);

void BM_KeyCodecDecodeHistoryKey(benchmark::State& state) {
  const std::string key = storage::HistoryKey("PT-100331", 123456);
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

// What include_attestation adds to a verification: encode the payload and sign it (Ed25519).
void BM_AttestVerification(benchmark::State& state) {
  std::unique_ptr<core::SigningKey> key = *core::SigningKey::Generate();
  const v1::Practitioner p = testing::ValidPractitioner("PT-1");
  const v1::VerifyAuthorizationResponse answer =
      core::Verify(&p, "PT-1", v1::DRY_NEEDLING, "2026-11-30");
  for (auto _ : state) {
    v1::VerifyAuthorizationResponse signed_answer = answer;
    benchmark::DoNotOptimize(core::Attest(*key, v1::DRY_NEEDLING, &signed_answer));
  }
}
BENCHMARK(BM_AttestVerification)->ThreadRange(1, 2)->UseRealTime();

// What verify-proof does per proof.
void BM_CheckProof(benchmark::State& state) {
  std::unique_ptr<core::SigningKey> key = *core::SigningKey::Generate();
  const v1::Practitioner p = testing::ValidPractitioner("PT-1");
  v1::VerifyAuthorizationResponse answer = core::Verify(&p, "PT-1", v1::DRY_NEEDLING, "2026-11-30");
  (void)core::Attest(*key, v1::DRY_NEEDLING, &answer);
  google::protobuf::RepeatedPtrField<v1::VerificationKey> keys;
  v1::VerificationKey* public_key = keys.Add();
  public_key->set_key_id(key->key_id());
  public_key->set_algorithm("Ed25519");
  public_key->set_public_key(key->public_key());
  for (auto _ : state) benchmark::DoNotOptimize(core::CheckProof(answer, keys).ok());
}
BENCHMARK(BM_CheckProof);

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
    v1::VerifyAuthorizationResponse response;
    benchmark::DoNotOptimize(l.registry->Verify(request, &response));
  }
}
BENCHMARK(BM_RegistryVerify)->ThreadRange(1, 2)->UseRealTime();

void BM_RegistryGetPractitioner(benchmark::State& state) {
  LoadedRegistry& l = Loaded();
  std::mt19937 rng(42);
  v1::GetPractitionerRequest request;
  for (auto _ : state) {
    request.set_registration_id(l.ids[rng() % l.ids.size()]);
    v1::Practitioner response;
    benchmark::DoNotOptimize(l.registry->GetPractitioner(request, &response));
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

// The same reads over an existing data dir (a stopped physioregd's, e.g. after importing
// 1,000,000 registrants), when PHYSIOREG_BENCH_DATA_DIR names it: RocksDB's real shape at
// scale, without gRPC around it. Every 10th stored registrant is asked for, in random order.
struct StoredRegister {
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<core::Registry> registry;
  std::vector<std::string> ids;
};

StoredRegister* Stored() {
  static StoredRegister* stored = []() -> StoredRegister* {
    const char* dir = std::getenv("PHYSIOREG_BENCH_DATA_DIR");
    if (dir == nullptr) return nullptr;
    auto* s = new StoredRegister();
    absl::StatusOr<std::unique_ptr<storage::Store>> store = storage::Store::Open(dir);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", std::string(store.status().message()).c_str());
      std::exit(2);
    }
    s->store = *std::move(store);
    s->registry = std::make_unique<core::Registry>(s->store.get(), absl::UTCTimeZone());
    int n = 0;
    std::unique_ptr<storage::ReadView> view = s->store->View();
    absl::Status scanned = view->ForEachPractitioner([&](const v1::Practitioner& p) {
      if (n++ % 10 == 0) s->ids.push_back(p.registration_id());
      return true;
    });
    if (!scanned.ok() || s->ids.empty()) std::exit(2);
    std::shuffle(s->ids.begin(), s->ids.end(), std::mt19937(7));
    // One pass first, so every benchmark sees the caches as a running server would.
    for (const std::string& id : s->ids) {
      if (!s->store->VisitPublicViewBytes(id, [](absl::string_view) {}).ok()) std::exit(2);
    }
    return s;
  }();
  return stored;
}

StoredRegister* StoredOrSkip(benchmark::State& state) {
  StoredRegister* s = Stored();
  if (s == nullptr)
    state.SkipWithError("set PHYSIOREG_BENCH_DATA_DIR to a stopped server's data dir");
  return s;
}

void BM_StoredRegisterVerify(benchmark::State& state) {
  StoredRegister* s = StoredOrSkip(state);
  if (s == nullptr) return;
  v1::VerifyAuthorizationRequest request;
  request.set_activity(v1::DRY_NEEDLING);
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    request.set_registration_id(s->ids[i++ % s->ids.size()]);
    v1::VerifyAuthorizationResponse response;
    benchmark::DoNotOptimize(s->registry->Verify(request, &response));
  }
}
BENCHMARK(BM_StoredRegisterVerify)->ThreadRange(1, 2)->UseRealTime();

// What GetPractitioner does: the stored public view's bytes, copied once.
void BM_StoredRegisterGet(benchmark::State& state) {
  StoredRegister* s = StoredOrSkip(state);
  if (s == nullptr) return;
  v1::GetPractitionerRequest request;
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  std::string answer;
  for (auto _ : state) {
    request.set_registration_id(s->ids[i++ % s->ids.size()]);
    benchmark::DoNotOptimize(s->registry->GetPublicViewBytes(
        request, [&](absl::string_view bytes) { answer.assign(bytes.data(), bytes.size()); }));
  }
}
BENCHMARK(BM_StoredRegisterGet)->ThreadRange(1, 2)->UseRealTime();

}  // namespace
}  // namespace physioreg

BENCHMARK_MAIN();
