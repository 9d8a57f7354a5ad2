// HasRepeatedIds: whether a push names a sparse table's id twice, checked
// before any row changes (ps/sparse_table.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cairn {

// Whether `n` ids (none of them kReservedSparseId) name one twice.
// Thread-safe (scratch is per thread); a large call shares its work with
// ParallelFor's helper.
bool HasRepeatedIds(const int64_t* ids, size_t n);

}  // namespace cairn
