// physioreg-generate --count N --seed S: a synthetic register as JSONL (proto JSON mapping,
// one physioreg.v1.Practitioner per line) on stdout, ready for `physioreg upsert --file`.
// --format csv: the same registrants as CSV with a header line, for PostgreSQL's COPY
// (tools/generator/csv.h; deploy/bench-peer.sh).
// With --queries Q [--query_seed S2]: instead, Q search names over that register, one a line
// (the short-prefix query set of issue 13, tools/generator/queries.h).
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "tools/generator/csv.h"
#include "tools/generator/generator.h"
#include "tools/generator/queries.h"

int main(int argc, char** argv) {
  int64_t count = 1000;
  uint64_t seed = 1;
  int queries = -1;
  uint64_t query_seed = 7;
  std::string format = "jsonl";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--count" && has_value && absl::SimpleAtoi(argv[i + 1], &count) && count >= 0) {
      ++i;
    } else if (arg == "--seed" && has_value && absl::SimpleAtoi(argv[i + 1], &seed)) {
      ++i;
    } else if (arg == "--queries" && has_value && absl::SimpleAtoi(argv[i + 1], &queries) &&
               queries >= 0) {
      ++i;
    } else if (arg == "--query_seed" && has_value && absl::SimpleAtoi(argv[i + 1], &query_seed)) {
      ++i;
    } else if (arg == "--format" && has_value &&
               (std::strcmp(argv[i + 1], "jsonl") == 0 || std::strcmp(argv[i + 1], "csv") == 0)) {
      format = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: physioreg-generate [--count N] [--seed S] [--format jsonl|csv] "
                   "[--queries Q [--query_seed S2]]\n");
      return 2;
    }
  }
  if (queries >= 0) {
    for (const std::string& query :
         physioreg::tools::GenerateSearchQueries(count, seed, query_seed, queries)) {
      std::fwrite(query.data(), 1, query.size(), stdout);
      std::fputc('\n', stdout);
    }
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  if (format == "csv") {
    const std::string header = physioreg::tools::CsvHeader();
    std::fwrite(header.data(), 1, header.size(), stdout);
    for (int64_t index = 0; index < count; ++index) {
      absl::StatusOr<std::string> row =
          physioreg::tools::CsvRow(physioreg::tools::GenerateRegistrant(seed, index));
      if (!row.ok()) {
        std::fprintf(stderr, "cannot print registrant %lld: %s\n", static_cast<long long>(index),
                     row.status().ToString().c_str());
        return 1;
      }
      std::fwrite(row->data(), 1, row->size(), stdout);
    }
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  std::string json;
  for (int64_t index = 0; index < count; ++index) {
    json.clear();
    if (!google::protobuf::util::MessageToJsonString(
             physioreg::tools::GenerateRegistrant(seed, index), &json)
             .ok()) {
      std::fprintf(stderr, "cannot print registrant %lld\n", static_cast<long long>(index));
      return 1;
    }
    json.push_back('\n');
    std::fwrite(json.data(), 1, json.size(), stdout);
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}
