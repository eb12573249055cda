// The search core (ParseQuery + SearchIndex::Search, exact total_size) over a synthetic
// register of 1,000,000 registrants (PHYSIOREG_BENCH_COUNT to change). Each benchmark cycles
// through 1,000 different queries and reports p50 / p99 / max latency per query as counters;
// the index's memory is the process RSS growth while building it.
//
//   cmake --preset release && cmake --build --preset release -j2 --target search_benchmark
//   build/release/bench/search_benchmark
#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "service/core/search/index.h"
#include "service/core/search/normalize.h"
#include "service/core/search/query.h"
#include "tools/generator/generator.h"
#include "tools/generator/queries.h"

namespace physioreg::search {
namespace {

namespace v1 = physioreg::v1;

constexpr uint64_t kSeed = 1;
constexpr char kToday[] = "2026-11-25";
constexpr int kQueries = 1000;

double ThreadCpuMicros() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double RssMiB() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * 4096.0 / (1024.0 * 1024.0);
}

// What the Registry stores for an upload: timelines started on registered_on / granted_on.
v1::Practitioner AsStored(v1::Practitioner p) {
  auto* h = p.mutable_permit()->add_status_history();
  h->set_status(v1::Permit::Status_Name(p.permit().status()));
  h->set_effective_on(p.permit().registered_on());
  for (auto& a : *p.mutable_authorizations()) {
    auto* ah = a.add_status_history();
    ah->set_status(v1::Authorization::Status_Name(a.status()));
    ah->set_effective_on(a.granted_on());
  }
  return p;
}

struct Register {
  SearchIndex index;
  int64_t count = 0;
  double index_mib = 0;
  double build_seconds = 0;
};

Register& TheRegister() {
  static Register* r = [] {
    auto* reg = new Register();
    const char* env = std::getenv("PHYSIOREG_BENCH_COUNT");
    reg->count = env != nullptr ? std::atoll(env) : 1000000;
    const double before = RssMiB();
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < reg->count; ++i) {
      reg->index.Put(AsStored(tools::GenerateRegistrant(kSeed, i)));
    }
    reg->index.Compact();
    reg->build_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    reg->index_mib = RssMiB() - before;
    std::fprintf(stderr, "indexed %lld registrants in %.1f s; RSS growth %.0f MiB\n",
                 static_cast<long long>(reg->count), reg->build_seconds, reg->index_mib);
    return reg;
  }();
  return *r;
}

// Runs `make(i)`'s query for i = 0, 1, ... and reports latency percentiles.
void RunQueries(benchmark::State& state,
                const std::function<v1::SearchPractitionersRequest(int)>& make) {
  Register& reg = TheRegister();
  const int32_t today = *DayNumber(kToday);
  std::vector<v1::SearchPractitionersRequest> requests;
  for (int i = 0; i < kQueries; ++i) requests.push_back(make(i));
  // Wall time, and the thread's CPU time: on a machine shared with other builds the wall
  // time's tail is mostly the scheduler, the CPU time is what a query costs.
  std::vector<double> micros, cpu_micros;
  int64_t totals = 0, i = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = ThreadCpuMicros();
    // Parsing is part of the cost a request pays (normalization with ICU).
    absl::StatusOr<Query> q = ParseQuery(requests[static_cast<size_t>(i % kQueries)]);
    absl::StatusOr<Page> page = reg.index.Search(*q, today);
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
    cpu_micros.push_back(ThreadCpuMicros() - cpu_start);
    totals += page.ok() ? page->total_size : 0;
    benchmark::DoNotOptimize(page);
    ++i;
  }
  auto pct = [](std::vector<double>& v, double p) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
  };
  state.counters["p50_us"] = pct(micros, 0.50);
  state.counters["p99_us"] = pct(micros, 0.99);
  state.counters["max_us"] = micros.empty() ? 0 : micros.back();
  state.counters["cpu_p50_us"] = pct(cpu_micros, 0.50);
  state.counters["cpu_p99_us"] = pct(cpu_micros, 0.99);
  state.counters["avg_total"] = static_cast<double>(totals) / std::max<int64_t>(1, i);
  state.counters["index_MiB"] = reg.index_mib;
  state.counters["registrants"] = static_cast<double>(reg.count);
}

// Names of registrants spread over the register, as a patient would type them.
v1::Practitioner Someone(int i) {
  return tools::GenerateRegistrant(kSeed, (static_cast<int64_t>(i) * 7919) % TheRegister().count);
}

// The first `n` code points of UTF-8 `text`.
std::string Prefix(const std::string& text, size_t n) {
  size_t end = 0;
  for (size_t points = 0; end < text.size(); ++end) {
    if ((static_cast<unsigned char>(text[end]) & 0xC0) != 0x80 && points++ == n) break;
  }
  return text.substr(0, end);
}

std::string FirstToken(const std::string& name) {
  std::vector<std::string> tokens = QueryTokens(name);
  return tokens.empty() ? "" : tokens[0];
}

void BM_TwoTokenNameDryNeedling(benchmark::State& state) {
  RunQueries(state, [](int i) {
    v1::Practitioner p = Someone(i);
    v1::SearchPractitionersRequest r;
    r.set_name(p.given_name() + " " + p.family_name());
    r.set_activity(v1::DRY_NEEDLING);
    r.set_page_size(20);
    return r;
  });
}
BENCHMARK(BM_TwoTokenNameDryNeedling)->Iterations(20000);

void BM_TwoPrefixesDryNeedling(benchmark::State& state) {
  RunQueries(state, [](int i) {
    v1::Practitioner p = Someone(i);
    v1::SearchPractitionersRequest r;
    r.set_name(Prefix(FirstToken(p.given_name()), 2) + " " +
               Prefix(FirstToken(p.family_name()), 3));
    r.set_activity(v1::DRY_NEEDLING);
    r.set_page_size(20);
    return r;
  });
}
BENCHMARK(BM_TwoPrefixesDryNeedling)->Iterations(5000);

// Issue 13's query set (physioreg-generate --queries 500 --query_seed 7 over this register):
// 2-4 letters of a given name, 3-5 of a family name, DRY_NEEDLING. The argument picks the
// candidate path: 1 candidate bitmaps for wide criteria (the server's), 0 sorted lists only.
void BM_QuerySetDryNeedling(benchmark::State& state) {
  static const std::vector<std::string> queries =
      tools::GenerateSearchQueries(TheRegister().count, kSeed, 7, 500);
  TheRegister().index.SetCandidateBitmaps(state.range(0) != 0);
  RunQueries(state, [](int i) {
    v1::SearchPractitionersRequest r;
    r.set_name(queries[static_cast<size_t>(i) % queries.size()]);
    r.set_activity(v1::DRY_NEEDLING);
    r.set_page_size(20);
    return r;
  });
  TheRegister().index.SetCandidateBitmaps(true);
}
BENCHMARK(BM_QuerySetDryNeedling)->Arg(0)->Arg(1)->Arg(0)->Arg(1)->Iterations(5000);

void BM_FuzzyTwoTokens(benchmark::State& state) {
  RunQueries(state, [](int i) {
    v1::Practitioner p = Someone(i);
    std::string family = FirstToken(p.family_name());
    // A typo: two adjacent ASCII letters swapped.
    if (family.size() > 3 && static_cast<unsigned char>(family[1]) < 0x80 &&
        static_cast<unsigned char>(family[2]) < 0x80) {
      std::swap(family[1], family[2]);
    }
    v1::SearchPractitionersRequest r;
    r.set_name(FirstToken(p.given_name()) + " " + family);
    r.set_fuzzy(true);
    r.set_page_size(20);
    return r;
  });
}
BENCHMARK(BM_FuzzyTwoTokens)->Iterations(5000);

void BM_NearDryNeedling(benchmark::State& state) {
  RunQueries(state, [](int i) {
    v1::Practitioner p = Someone(i);
    v1::SearchPractitionersRequest r;
    r.mutable_near()->set_latitude(p.locations(0).latitude());
    r.mutable_near()->set_longitude(p.locations(0).longitude());
    r.mutable_near()->set_radius_km(5);
    r.set_activity(v1::DRY_NEEDLING);
    r.set_page_size(20);
    return r;
  });
}
BENCHMARK(BM_NearDryNeedling)->Iterations(2000);

void BM_CityDryNeedling(benchmark::State& state) {
  RunQueries(state, [](int i) {
    v1::SearchPractitionersRequest r;
    r.set_city(Someone(i).locations(0).city());
    r.set_activity(v1::DRY_NEEDLING);
    r.set_page_size(20);
    return r;
  });
}
BENCHMARK(BM_CityDryNeedling)->Iterations(500);

void BM_BrowseWholeRegister(benchmark::State& state) {
  RunQueries(state, [](int) {
    v1::SearchPractitionersRequest r;
    r.set_page_size(20);
    return r;
  });
}
BENCHMARK(BM_BrowseWholeRegister)->Iterations(20000);

}  // namespace
}  // namespace physioreg::search

BENCHMARK_MAIN();
