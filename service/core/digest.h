// SHA-256 over data that arrives in pieces (idempotency: what a request or an import sent).
#ifndef PHYSIOREG_SERVICE_CORE_DIGEST_H_
#define PHYSIOREG_SERVICE_CORE_DIGEST_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace physioreg::core {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(absl::string_view data);
  // The 32-byte digest of everything given so far; the object starts over afterwards.
  std::string Finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The digest of one string.
std::string Sha256Of(absl::string_view data);

}  // namespace physioreg::core

#endif  // PHYSIOREG_SERVICE_CORE_DIGEST_H_
