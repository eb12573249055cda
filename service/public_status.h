// What a client may learn of an error, whatever the protocol (gRPC or HTTP).
#ifndef PHYSIOREG_SERVICE_PUBLIC_STATUS_H_
#define PHYSIOREG_SERVICE_PUBLIC_STATUS_H_

#include "absl/status/status.h"

namespace physioreg::service {

// `status` itself, except for errors of the server (INTERNAL, DATA_LOSS, UNKNOWN, and any
// storage error), whose messages may name files or internals: those are logged and become a
// generic message with a code a client can act on (UNAVAILABLE / ABORTED / DATA_LOSS kept,
// INTERNAL otherwise). A BadRequest payload stays.
absl::Status PublicStatus(const absl::Status& status);

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_PUBLIC_STATUS_H_
