#include "service/watch_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "service/core/validation.h"
#include "service/grpc_status.h"

namespace physioreg::service {

namespace v1 = physioreg::v1;

bool WatchFilter::Matches(const v1::ChangeEvent& event) const {
  if (!ids.empty() && !ids.contains(event.registration_id())) return false;
  if (activities.empty()) return true;
  // An authorization the change added, changed or removed (after a removal or a deletion the
  // practitioner below no longer holds it)...
  for (int activity : event.changed_activities()) {
    if (activities.contains(activity)) return true;
  }
  // ...or any change of a registrant holding one (a permit suspension matters too).
  for (const v1::Authorization& a : event.practitioner().authorizations()) {
    if (activities.contains(a.activity())) return true;
  }
  return false;
}

absl::StatusOr<WatchFilter> MakeWatchFilter(const v1::WatchChangesRequest& request) {
  core::Violations v;
  WatchFilter filter;
  if (request.since_revision() < 0) v.Add("since_revision", "must not be negative");
  if (request.registration_ids_size() > kMaxWatchedIds) {
    v.Add("registration_ids", absl::StrCat("at most ", kMaxWatchedIds, " ids per watch (got ",
                                           request.registration_ids_size(), ")"));
    return v.ToStatus();
  }
  filter.ids.reserve(request.registration_ids_size());
  for (int i = 0; i < request.registration_ids_size(); ++i) {
    const std::string& id = request.registration_ids(i);
    core::ValidateRegistrationId(id, absl::StrCat("registration_ids[", i, "]"), &v);
    if (std::optional<std::string> normal = core::NormalizeRegistrationId(id)) {
      filter.ids.insert(*std::move(normal));
    }
  }
  for (int i = 0; i < request.activities_size(); ++i) {
    core::ValidateActivity(request.activities(i), absl::StrCat("activities[", i, "]"), &v);
    filter.activities.insert(request.activities(i));
  }
  if (!v.empty()) return v.ToStatus();
  return filter;
}

// The watcher's state, shared with the feed (which delivers live commits to it) and with the
// reader thread (which reads catch-up pages). Every reactor operation is started under mu_,
// so none races the end of the call; the reactor is forgotten in OnDone.
class WatchReactor::Link final : public storage::FeedConsumer,
                                 public std::enable_shared_from_this<Link> {
 public:
  Link(WatchReactor* reactor, storage::Store* store, SerialExecutor* reader, WatchFilter filter,
       int64_t since_revision, bool include_actor, size_t max_buffered)
      : reactor_(reactor),
        store_(store),
        reader_(reader),
        filter_(std::move(filter)),
        include_actor_(include_actor),
        max_buffered_(max_buffered),
        next_(since_revision + 1) {}

  // Live: under the feed's lock, on the writer's thread. Never blocks (a buffer append).
  void OnCommit(const std::vector<storage::SharedEvent>& events) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (reactor_ == nullptr || finish_.has_value()) return;
    for (const storage::SharedEvent& event : events) {
      if (filter_.Matches(*event)) buffer_.push_back(event);
    }
    if (buffer_.size() > max_buffered_) {
      buffer_.clear();
      RequestFinishLocked(
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       absl::StrCat("the watcher fell more than ", max_buffered_,
                                    " events behind and was cut off; resume with since_revision")));
    }
    PumpLocked();
  }

  void OnStop() override {
    std::lock_guard<std::mutex> lock(mu_);
    buffer_.clear();
    RequestFinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                     "the server is shutting down; resume with since_revision"));
    PumpLocked();
  }

  void Start() {
    std::lock_guard<std::mutex> lock(mu_);
    PumpLocked();
  }

  void WriteDone(bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      buffer_.clear();
      RequestFinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch stream broke off"));
    }
    PumpLocked();
  }

  void Cancel() {
    std::lock_guard<std::mutex> lock(mu_);
    buffer_.clear();
    RequestFinishLocked(grpc::Status::CANCELLED);
    PumpLocked();
  }

  void Done() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      reactor_ = nullptr;
    }
    store_->feed().Leave(this);
  }

 private:
  void RequestFinishLocked(grpc::Status status) {
    if (!finish_.has_value()) finish_ = std::move(status);
  }

  // Starts whatever comes next: a write, a page read, or the end of the call.
  void PumpLocked() {
    if (reactor_ == nullptr || finish_issued_) return;
    if (finish_.has_value()) {
      // A write already started may still be waiting for a reader that stopped: the status
      // goes out after it, and the call ends once the client reads or goes away.
      finish_issued_ = true;
      reactor_->Finish(*finish_);
      return;
    }
    if (writing_) return;
    if (!buffer_.empty()) {
      current_ = *buffer_.front();
      buffer_.pop_front();
      if (!include_actor_) current_.clear_actor();
      writing_ = true;
      reactor_->StartWrite(&current_);
      return;
    }
    if (!live_ && !reading_) {
      reading_ = true;
      reader_->Post([self = shared_from_this()] { self->ReadPage(); });
    }
  }

  // On the reader thread: the next page of the change log, or the switch to live.
  void ReadPage() {
    int64_t next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (reactor_ == nullptr || finish_.has_value()) {
        reading_ = false;
        PumpLocked();
        return;
      }
      next = next_;
    }
    if (next > store_->feed().head()) {
      // Caught up: go live unless commits landed meanwhile (then read on).
      const bool live = store_->feed().GoLive(next, shared_from_this());
      bool ended;
      {
        std::lock_guard<std::mutex> lock(mu_);
        live_ = live;
        reading_ = false;
        ended = reactor_ == nullptr;
        PumpLocked();
      }
      // The call ended while this went live (Done's Leave came first): leave again.
      if (live && ended) store_->feed().Leave(this);
      return;
    }
    absl::StatusOr<std::vector<v1::ChangeEvent>> page =
        store_->ReadChanges(next - 1, storage::Feed::kCatchUpPage);
    std::lock_guard<std::mutex> lock(mu_);
    reading_ = false;
    if (!page.ok() || page->empty() || page->front().revision() != next) {
      RequestFinishLocked(
          page.ok() ? grpc::Status(grpc::StatusCode::DATA_LOSS, "the change log has a gap")
                    : ToGrpcStatus(page.status()));
      PumpLocked();
      return;
    }
    for (v1::ChangeEvent& event : *page) {
      next_ = event.revision() + 1;
      if (filter_.Matches(event)) {
        buffer_.push_back(std::make_shared<const v1::ChangeEvent>(std::move(event)));
      }
    }
    PumpLocked();
  }

  std::mutex mu_;
  WatchReactor* reactor_;
  storage::Store* const store_;
  SerialExecutor* const reader_;
  const WatchFilter filter_;
  const bool include_actor_;
  const size_t max_buffered_;
  // Catch-up: the next revision to read from the change log.
  int64_t next_;
  std::deque<storage::SharedEvent> buffer_;
  v1::ChangeEvent current_;
  bool live_ = false;
  bool reading_ = false;
  bool writing_ = false;
  std::optional<grpc::Status> finish_;
  bool finish_issued_ = false;
};

WatchReactor::WatchReactor(storage::Store* store, SerialExecutor* reader, WatchFilter filter,
                           int64_t since_revision, bool include_actor, size_t max_buffered)
    : link_(std::make_shared<Link>(this, store, reader, std::move(filter), since_revision,
                                   include_actor, max_buffered)) {
  link_->Start();
}

void WatchReactor::OnWriteDone(bool ok) { link_->WriteDone(ok); }

void WatchReactor::OnCancel() { link_->Cancel(); }

void WatchReactor::OnDone() {
  link_->Done();
  delete this;
}

}  // namespace physioreg::service
