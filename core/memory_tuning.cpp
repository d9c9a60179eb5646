#include "core/memory_tuning.hpp"

#if __has_include(<malloc.h>)
#include <malloc.h>  // also defines __GLIBC__ (through <features.h>) where glibc is the libc
#endif
#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD)
#define APIARY_HAVE_MALLOPT 1
#endif

namespace apiary {

bool tune_allocator_for_large_buffers() noexcept {
#ifdef APIARY_HAVE_MALLOPT
  const bool mmap_set = ::mallopt(M_MMAP_THRESHOLD, 64 << 20) == 1;
  const bool trim_set = ::mallopt(M_TRIM_THRESHOLD, 512 << 20) == 1;
  return mmap_set && trim_set;
#else
  return false;
#endif
}

}  // namespace apiary
