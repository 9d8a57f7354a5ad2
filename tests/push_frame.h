// Test helper: a push frame built by hand, as a client sends it, for tests
// that must control its identity (worker, incarnation, sequence) or send it
// more than once without a PsClient.
#pragma once

#include <memory>
#include <vector>

#include "common/frame.h"
#include "common/messages.h"

namespace cairn::testing {

// `req` (its worker, incarnation, sequence, step...) carrying `grad` as the
// gradient of the float32 variable "w" (its rows from `row_begin`). The frame
// owns its data, so the same OutFrame may be handed to a transport more than
// once.
inline OutFrame PushOfW(PushRequest req, const std::vector<float>& grad, int64_t row_begin = 0) {
  const uint64_t bytes = grad.size() * sizeof(float);
  req.grads = {TensorDesc{"w", DType::kFloat32, {static_cast<int64_t>(grad.size())}, row_begin, 0, bytes}};
  auto data = std::make_shared<std::vector<float>>(grad);
  OutFrame f;
  f.type = static_cast<uint16_t>(FrameType::kPush);
  f.control = EncodeMessage(req);
  f.data.push_back(ByteSpan{data->data(), bytes});
  f.keepalive.push_back(data);
  return f;
}

}  // namespace cairn::testing
