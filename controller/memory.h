// How a long-running controller keeps its resident memory close to what it
// holds: a pass over a large tree allocates and frees much more than it
// keeps, and glibc's malloc keeps freed pages (in one arena per thread) unless
// told otherwise. No-ops where the C library is not glibc.
//
// Thread-safety: both may be called from any thread.
#pragma once

namespace reconcile::controller {

// At start, before threads allocate: at most two malloc arenas (the I/O
// thread and the pass threads share them; passes run one at a time).
void TuneAllocator();

// After a pass: returns free pages of every arena to the system.
void ReleaseFreeMemory();

}  // namespace reconcile::controller
