// Per-call protobuf arenas for unary handlers (gRPC's MessageAllocator): the request, the
// response and every string and sub-message they hold come from one block owned by the call,
// freed at once when the call ends, instead of a malloc and free per field.
#ifndef PHYSIOREG_SERVICE_ARENA_ALLOCATOR_H_
#define PHYSIOREG_SERVICE_ARENA_ALLOCATOR_H_

#include <google/protobuf/arena.h>
#include <grpcpp/support/message_allocator.h>

#include <cstddef>

namespace physioreg::service {

template <typename Request, typename Response>
class ArenaAllocator final : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override { return new Holder(); }

 private:
  // A Verify answer with its authorization, or a registrant with a few locations, fits the
  // first block; bigger messages make the arena take more blocks from the heap.
  static constexpr size_t kFirstBlockBytes = 4096;

  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(Options(first_block_)) {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    static google::protobuf::ArenaOptions Options(char* block) {
      google::protobuf::ArenaOptions options;
      options.initial_block = block;
      options.initial_block_size = kFirstBlockBytes;
      return options;
    }
    alignas(alignof(std::max_align_t)) char first_block_[kFirstBlockBytes];
    google::protobuf::Arena arena_;  // Declared after the block it starts in.
  };
};

}  // namespace physioreg::service

#endif  // PHYSIOREG_SERVICE_ARENA_ALLOCATOR_H_
