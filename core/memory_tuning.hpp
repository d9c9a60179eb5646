#pragma once
// Allocator tuning for processes that allocate and free the same large tensor
// buffers every round (averaging chunks, gradients, expert batches).
// Errors: none; the tuning is best effort.

namespace apiary {

// glibc hands freed blocks above its mmap threshold (128 KiB to 32 MiB,
// adaptive) back to the kernel and trims the heap top, so each round
// page-faults its buffers in again; this keeps freed memory up to 64 MiB
// blocks / 512 MiB of heap top in the process instead. Call once at start,
// before the buffers exist (calling again is harmless). Returns false where
// the allocator has no such knobs (not glibc): then it does nothing.
bool tune_allocator_for_large_buffers() noexcept;

}  // namespace apiary
