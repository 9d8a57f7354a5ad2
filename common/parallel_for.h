// ParallelFor: a loop's iterations run on the calling thread and, at the
// same time, on one helper thread, for work split into independent pieces
// (a large sparse push's rows, on a server whose other core would wait).
//
// There is one helper per process, started on first use (none on a
// one-core machine). The pieces are handed out one at a time from a shared
// counter, so the caller never waits for a helper that is slow to wake or
// busy with another loop: the caller then runs the pieces itself.
#pragma once

#include <cstddef>
#include <functional>

namespace cairn {

// Calls body(i) once for each i in [0, n), each on the calling thread or
// on the helper, in any order and possibly two at once, and returns when
// every call has returned (everything they wrote is then visible to the
// caller). The calls must not depend on one another. Thread-safe: a second
// caller while the helper works on a first runs all of its calls itself.
void ParallelFor(size_t n, const std::function<void(size_t)>& body);

}  // namespace cairn
