// Internal to worker/ps_client*.cc: how PsClient reads a server's reply.
#pragma once

#include <exception>
#include <istream>
#include <string>

#include "common/messages.h"
#include "common/status.h"
#include "common/transport.h"

namespace cairn {
namespace ps_client_internal {

// "<frame type> on server <s>": the context a failed call's status carries.
inline std::string ServerContext(FrameType type, int server) {
  return std::string(FrameTypeName(static_cast<uint16_t>(type))) + " on server " + std::to_string(server);
}

// The reply's status, and its message decoded into `out`.
template <class M>
Status DecodeReply(const StatusOr<InFrame>& reply, M* out, const char* name) {
  if (!reply.ok()) return reply.status();
  // Error replies carry only a StatusReply; its WireStatus prefix is shared by
  // every reply type, so decode that first.
  StatusReply head;
  ByteViewBuf buf(reply->control);
  std::istream is(&buf);
  try {
    cereal::BinaryInputArchive ar(is);
    ar(head.status);
  } catch (const std::exception& e) {
    return DataLoss(std::string("malformed ") + name + " reply: " + e.what());
  }
  RETURN_IF_ERROR(head.status.ToStatus());
  return DecodeMessage(reply->control, out, name);
}


}  // namespace ps_client_internal
}  // namespace cairn
