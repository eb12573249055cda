#include "service/in_flight.h"

namespace physioreg::service {
namespace {

class CountingInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit CountingInterceptor(InFlightCalls* calls) : calls_(calls) { calls_->Enter(); }
  ~CountingInterceptor() override { calls_->Leave(); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  InFlightCalls* calls_;
};

class CountingFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CountingFactory(InFlightCalls* calls) : calls_(calls) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* /*info*/) override {
    return new CountingInterceptor(calls_);
  }

 private:
  InFlightCalls* calls_;
};

}  // namespace

void InFlightCalls::Enter() {
  std::lock_guard<std::mutex> lock(mu_);
  ++count_;
}

void InFlightCalls::Leave() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--count_ == 0) idle_.notify_all();
}

bool InFlightCalls::WaitIdle(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_.wait_until(lock, absl::ToChronoTime(deadline), [this] { return count_ == 0; });
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
InFlightCalls::InterceptorFactory() {
  return std::make_unique<CountingFactory>(this);
}

}  // namespace physioreg::service
