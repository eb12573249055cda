// Counts calls in progress, so shutdown can wait for real work instead of for idle client
// connections (gRPC's Shutdown(deadline) otherwise waits the whole deadline while clients
// keep idle connections open).
#ifndef PHYSIOREG_SERVICE_IN_FLIGHT_H_
#define PHYSIOREG_SERVICE_IN_FLIGHT_H_

#include <grpcpp/support/server_interceptor.h>

#include <condition_variable>
#include <memory>
#include <mutex>

#include "absl/time/time.h"

namespace physioreg::service {

class InFlightCalls {
 public:
  void Enter();
  void Leave();
  // Waits until no call is in progress or `deadline` passes; true when idle.
  bool WaitIdle(absl::Time deadline);

  // An interceptor factory whose per-call interceptor counts the call from its creation to its
  // destruction (when gRPC is done with the call). It also turns gRPC's answer to a request
  // message that does not parse (UNIMPLEMENTED) into INVALID_ARGUMENT, with a rate-limited log.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

 private:
  std::mutex mu_;
  std::condition_variable idle_;
  int count_ = 0;
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_IN_FLIGHT_H_
