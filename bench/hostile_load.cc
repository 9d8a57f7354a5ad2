#include "bench/hostile_load.h"

#include <poll.h>

#include <algorithm>
#include <optional>

#include "bench/raw_client.h"
#include "common/frame.h"
#include "common/handshake.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

// A poll() wait never longer than this, so End is answered promptly.
constexpr auto kMaxWait = std::chrono::milliseconds(20);
// A send the socket could not take whole is retried this soon.
constexpr auto kSendRetry = std::chrono::milliseconds(1);
// Indexes of the authenticated peers: far from the legitimate workers'.
constexpr int32_t kHostileIndexBase = 100000;

bool Authenticates(HostileKind k) { return k == HostileKind::kTrickleFrame || k == HostileKind::kClaimHuge; }

// A well-formed frame header claiming `data_bytes` of data that never come.
std::string ClaimHeader(uint64_t data_bytes) {
  OutFrame f;
  f.type = static_cast<uint16_t>(FrameType::kPush);
  f.request_id = 1;
  f.data.push_back(ByteSpan{nullptr, data_bytes});  // Seal reads only the sizes
  f.Seal();
  return std::string(reinterpret_cast<const char*>(f.header_bytes()), kFrameHeaderBytes);
}

// A whole small frame (a Stats request), to be sent one byte at a time.
std::string TrickleFrame() {
  OutFrame f;
  f.type = static_cast<uint16_t>(FrameType::kStats);
  f.request_id = 1;
  f.Seal();
  return SerializeFrame(f);
}

}  // namespace

const char* HostileKindName(HostileKind kind) {
  switch (kind) {
    case HostileKind::kIdle: return "idle";
    case HostileKind::kTrickleHandshake: return "trickle-handshake";
    case HostileKind::kWrongSecret: return "wrong-secret";
    case HostileKind::kTrickleFrame: return "trickle-frame";
    case HostileKind::kClaimHuge: return "claim-huge";
  }
  return "?";
}

StatusOr<HostileKind> ParseHostileKind(const std::string& name) {
  for (HostileKind k : AllHostileKinds()) {
    if (name == HostileKindName(k)) return k;
  }
  return InvalidArgument("unknown hostile kind '" + name +
                         "' (known: idle, trickle-handshake, wrong-secret, trickle-frame, claim-huge)");
}

std::vector<HostileKind> AllHostileKinds() {
  return {HostileKind::kIdle, HostileKind::kTrickleHandshake, HostileKind::kWrongSecret, HostileKind::kTrickleFrame,
          HostileKind::kClaimHuge};
}

int PeersOfKind(int peers, const std::vector<HostileKind>& kinds, HostileKind kind) {
  int n = 0;
  for (int i = 0; i < peers && !kinds.empty(); ++i) n += kinds[i % kinds.size()] == kind ? 1 : 0;
  return n;
}

// One hostile connection, reconnected each time the server closes it. Its
// script by kind: connect; [read the server hello; send a client hello
// (trickled, or with the wrong secret, or the right one); [read the proof;
// send a frame (trickled, or a huge claim's header)]]; then wait for the
// server to close it.
class HostileLoad::Peer {
 public:
  Peer(HostileKind kind, int32_t index, const HostileLoad& load) : kind_(kind), index_(index), load_(load) {}

  HostileKind kind() const { return kind_; }
  // What to poll the socket for; 0 while it is down.
  short events() const {
    if (phase_ == Phase::kDown) return 0;
    return phase_ == Phase::kConnecting ? POLLOUT : POLLIN;
  }
  int fd() const { return socket_.fd(); }
  Clock::time_point next_at() const { return next_at_; }

  // The socket is ready (or failed).
  void OnEvent(Clock::time_point now, HostileKindStats* s) {
    if (phase_ == Phase::kConnecting) return Connected(now, s);
    const bool open = socket_.ReadAvailable(&in_);
    Advance(now, s);
    if (!open && phase_ != Phase::kDown) {
      ++s->closed_by_server;
      s->held_us.Add(std::chrono::duration<double, std::micro>(now - connected_at_).count());
      Down(now);
    }
  }

  // Its time has come: connect, or send the next bytes.
  void Act(Clock::time_point now, HostileKindStats* s) {
    if (phase_ == Phase::kDown) return Connect(now, s);
    if (phase_ == Phase::kSending) Send(now, s);
  }

  // The window is over.
  void CloseAtEnd(HostileKindStats* s) {
    if (phase_ != Phase::kDown && phase_ != Phase::kConnecting) ++s->closed_at_end;
    socket_.Close();
    phase_ = Phase::kDown;
  }

 private:
  enum class Phase { kDown, kConnecting, kAwaitHello, kAwaitProof, kSending, kStalled };
  static constexpr Clock::time_point kNever = Clock::time_point::max();

  void Connect(Clock::time_point now, HostileKindStats* s) {
    ++s->connects;
    StatusOr<RawClient> c = RawClient::StartConnect(load_.options_.port);
    if (!c.ok()) {
      ++s->connect_failures;
      next_at_ = now + load_.options_.reconnect_delay;
      return;
    }
    socket_ = std::move(*c);
    in_.clear();
    connected_at_ = now;
    phase_ = Phase::kConnecting;
    next_at_ = kNever;
  }

  void Connected(Clock::time_point now, HostileKindStats* s) {
    if (!socket_.FinishConnect().ok()) {
      ++s->connect_failures;
      return Down(now);
    }
    phase_ = kind_ == HostileKind::kIdle ? Phase::kStalled : Phase::kAwaitHello;
  }

  void Down(Clock::time_point now) {
    socket_.Close();
    phase_ = Phase::kDown;
    next_at_ = now + load_.options_.reconnect_delay;
  }

  // Moves the script on with what has arrived.
  void Advance(Clock::time_point now, HostileKindStats* s) {
    if (phase_ == Phase::kAwaitHello && in_.size() >= kServerHelloBytes) {
      const bool right = Authenticates(kind_);
      handshake_.emplace(ClientCredentials{right ? load_.options_.secret : load_.wrong_secret_, PeerRole::kWorker,
                                           kHostileIndexBase + index_});
      StatusOr<std::string> hello = handshake_->OnServerHello(std::string_view(in_).substr(0, kServerHelloBytes));
      if (!hello.ok()) {
        ++s->unexpected;
        return Down(now);
      }
      StartSending(std::move(*hello), kind_ == HostileKind::kTrickleHandshake,
                   right ? Phase::kAwaitProof : Phase::kStalled, now, s);
    } else if (phase_ == Phase::kAwaitProof && in_.size() >= kServerHelloBytes + kServerProofBytes) {
      if (!handshake_->OnServerProof(std::string_view(in_).substr(kServerHelloBytes, kServerProofBytes)).ok()) {
        ++s->unexpected;
        return Down(now);
      }
      ++s->authenticated;
      const bool trickle = kind_ == HostileKind::kTrickleFrame;
      StartSending(trickle ? load_.trickle_frame_ : load_.claim_header_, trickle, Phase::kStalled, now, s);
    } else if (phase_ == Phase::kStalled && kind_ == HostileKind::kWrongSecret && in_.size() > kServerHelloBytes &&
               !counted_unexpected_) {
      ++s->unexpected;  // the server answered a wrong secret's hello
      counted_unexpected_ = true;
    }
  }

  void StartSending(std::string bytes, bool trickle, Phase then, Clock::time_point now, HostileKindStats* s) {
    out_ = std::move(bytes);
    out_at_ = 0;
    trickle_ = trickle;
    after_send_ = then;
    counted_unexpected_ = false;
    phase_ = Phase::kSending;
    next_at_ = trickle ? now + load_.options_.trickle_interval : now;
    if (!trickle) Send(now, s);
  }

  void Send(Clock::time_point now, HostileKindStats* s) {
    const size_t want = trickle_ ? 1 : out_.size() - out_at_;
    StatusOr<size_t> sent = socket_.SendSome(std::string_view(out_).substr(out_at_, want));
    if (!sent.ok()) {
      // Closed under us: the next poll sees the close and counts it.
      next_at_ = kNever;
      return;
    }
    out_at_ += *sent;
    if (out_at_ == out_.size()) {
      phase_ = after_send_;
      next_at_ = kNever;
      return;
    }
    next_at_ = now + (trickle_ ? load_.options_.trickle_interval : kSendRetry);
  }

  const HostileKind kind_;
  const int32_t index_;
  const HostileLoad& load_;
  RawClient socket_;
  Phase phase_ = Phase::kDown;
  Clock::time_point next_at_{};  // the epoch: connect at the first turn
  Clock::time_point connected_at_{};
  std::string in_;  // every byte received on this connection
  std::optional<ClientHandshake> handshake_;
  std::string out_;
  size_t out_at_ = 0;
  bool trickle_ = false;
  Phase after_send_ = Phase::kStalled;
  bool counted_unexpected_ = false;
};

StatusOr<std::unique_ptr<HostileLoad>> HostileLoad::Make(HostileOptions options) {
  if (!options.secret) return InvalidArgument("hostile load: the authenticated kinds need the job's secret");
  if (options.port == 0 || options.peers < 1 || options.kinds.empty()) {
    return InvalidArgument("hostile load: needs a port, peers and kinds");
  }
  std::unique_ptr<HostileLoad> load(new HostileLoad(std::move(options)));
  ASSIGN_OR_RETURN(load->wrong_secret_, Secret::Generate());
  return load;
}

HostileLoad::HostileLoad(HostileOptions options)
    : options_(std::move(options)),
      claim_header_(ClaimHeader(options_.claimed_bytes)),
      trickle_frame_(TrickleFrame()),
      stats_(kHostileKinds) {}

HostileLoad::~HostileLoad() { End(); }

void HostileLoad::Begin() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void HostileLoad::End() {
  if (!thread_.joinable()) return;
  stop_ = true;
  thread_.join();
}

std::vector<HostileKindStats> HostileLoad::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void HostileLoad::Run() {
  std::vector<Peer> peers;
  peers.reserve(options_.peers);
  for (int i = 0; i < options_.peers; ++i) peers.emplace_back(options_.kinds[i % options_.kinds.size()], i, *this);
  std::vector<pollfd> polled;
  std::vector<Peer*> polled_peers;
  while (!stop_.load()) {
    polled.clear();
    polled_peers.clear();
    Clock::time_point wake = Clock::now() + kMaxWait;
    for (Peer& p : peers) {
      wake = std::min(wake, p.next_at());
      if (short ev = p.events()) {
        polled.push_back(pollfd{p.fd(), ev, 0});
        polled_peers.push_back(&p);
      }
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake - Clock::now()).count();
    ::poll(polled.data(), polled.size(), static_cast<int>(std::max<int64_t>(0, wait)));
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    for (size_t i = 0; i < polled.size(); ++i) {
      Peer& p = *polled_peers[i];
      if (polled[i].revents != 0) p.OnEvent(now, &stats_[static_cast<int>(p.kind())]);
    }
    for (Peer& p : peers) {
      if (p.next_at() <= now) p.Act(now, &stats_[static_cast<int>(p.kind())]);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (Peer& p : peers) p.CloseAtEnd(&stats_[static_cast<int>(p.kind())]);
}

}  // namespace cairn
