// CPU feature detection: cpuid leaves 1 and 7, and XCR0 for the register state the OS saves.
#include "cpu_features.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include <cstdint>

namespace rbdluks {
namespace {

#if defined(__x86_64__)

bool bit(uint32_t word, int n) { return ((word >> n) & 1) != 0; }

// Only this function is built for XSAVE, so the library runs anywhere; callers check OSXSAVE first.
__attribute__((target("xsave"))) uint64_t read_xcr0() { return _xgetbv(0); }

CpuFeatures detect() {
  CpuFeatures f;
  uint32_t eax = 0;
  uint32_t ebx = 0;
  uint32_t ecx = 0;
  uint32_t edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return f;
  f.pclmulqdq = bit(ecx, 1);
  f.sse41 = bit(ecx, 19);
  f.aesni = bit(ecx, 25);
  const bool osxsave = bit(ecx, 27);
  const bool avx = bit(ecx, 28);
  const uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;    // SSE and AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;  // plus opmask, ZMM_Hi256 and Hi16_ZMM state
  if (!avx || !os_ymm || __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return f;
  f.avx2 = bit(ebx, 5);
  f.vaes = bit(ecx, 9);
  f.vpclmulqdq = bit(ecx, 10);
  if (os_zmm) {
    f.avx512f = bit(ebx, 16);
    f.avx512bw = bit(ebx, 30);
    f.avx512vl = bit(ebx, 31);
  }
  return f;
}

#else

CpuFeatures detect() { return {}; }

#endif

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace rbdluks
