#include "service/in_flight.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "service/log.h"

namespace physioreg::service {
namespace {

using grpc::experimental::InterceptionHookPoints;

// gRPC 1.51's callback handlers answer a request message that does not parse with
// UNIMPLEMENTED and an empty message (server_callback_handlers.h drops the parse status);
// none of our handlers answers so. For a method the server has, that is a bad request.
bool IsUnparsedRequest(const grpc::Status& status, const char* method) {
  if (status.error_code() != grpc::StatusCode::UNIMPLEMENTED || !status.error_message().empty() ||
      method == nullptr || method[0] != '/') {
    return false;
  }
  std::string name(method + 1);
  std::replace(name.begin(), name.end(), '/', '.');
  return google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name) != nullptr;
}

class CountingInterceptor final : public grpc::experimental::Interceptor {
 public:
  CountingInterceptor(InFlightCalls* calls, const char* method) : calls_(calls), method_(method) {
    calls_->Enter();
  }
  ~CountingInterceptor() override { calls_->Leave(); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        methods->GetSendStatus().error_code() == grpc::StatusCode::UNIMPLEMENTED &&
        IsUnparsedRequest(methods->GetSendStatus(), method_)) {
      static LogLimiter limiter;
      int64_t suppressed = 0;
      if (limiter.Allow(&suppressed)) {
        spdlog::warn("event=malformed_request method={} suppressed={}", LogValue(method_),
                     suppressed);
      }
      methods->ModifySendStatus(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("the request message does not parse as the request type of ", method_)));
    }
    methods->Proceed();
  }

 private:
  InFlightCalls* calls_;
  const char* method_;
};

class CountingFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CountingFactory(InFlightCalls* calls) : calls_(calls) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CountingInterceptor(calls_, info->method());
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
