// physioreg-generate --count N --seed S: a synthetic register as JSONL (proto JSON mapping,
// one physioreg.v1.Practitioner per line) on stdout, ready for `physioreg upsert --file`.
// --format csv: the same registrants as CSV with a header line, for PostgreSQL's COPY
// (tools/generator/csv.h; deploy/bench-peer.sh).
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "tools/generator/csv.h"
#include "tools/generator/generator.h"

int main(int argc, char** argv) {
  int64_t count = 1000;
  uint64_t seed = 1;
  std::string format = "jsonl";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--count" && has_value && absl::SimpleAtoi(argv[i + 1], &count) && count >= 0) {
      ++i;
    } else if (arg == "--seed" && has_value && absl::SimpleAtoi(argv[i + 1], &seed)) {
      ++i;
    } else if (arg == "--format" && has_value &&
               (std::strcmp(argv[i + 1], "jsonl") == 0 || std::strcmp(argv[i + 1], "csv") == 0)) {
      format = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: physioreg-generate [--count N] [--seed S] [--format jsonl|csv]\n");
      return 2;
    }
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
