// CpuFeatures: which x86-64 instruction sets this CPU has and the OS lets programs use, read once
// with cpuid and xgetbv. The cipher factory picks a backend from them; every field is false on
// other architectures.
#pragma once

namespace rbdluks {

struct CpuFeatures {
  bool aesni = false;
  bool pclmulqdq = false;
  bool sse41 = false;
  // The AVX fields below are only true when the OS saves the YMM (and, for AVX-512, ZMM and opmask)
  // state across context switches, as XCR0 reports; a CPU flag alone is not enough.
  bool avx2 = false;
  bool vaes = false;        // VAES on YMM registers (ZMM as well when avx512f is true)
  bool vpclmulqdq = false;  // likewise
  bool avx512f = false;
  bool avx512vl = false;
  bool avx512bw = false;
};

const CpuFeatures& cpu_features();

}  // namespace rbdluks
