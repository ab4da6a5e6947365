// make_xts_cipher: the one place that picks an XtsCipher backend, from the CPU's features and the
// RBD_LUKS_CIPHER_BACKEND override.
#include "xts_cipher.h"

#include <cstdlib>
#include <string>

#include "aesni_xts_cipher.h"
#include "cpu_features.h"
#include "cryptopp_xts_cipher.h"
#include "vaes_xts_cipher.h"

namespace rbdluks {
namespace {

constexpr CipherBackend kFastestFirst[] = {CipherBackend::vaes512, CipherBackend::vaes256, CipherBackend::aesni,
                                           CipherBackend::portable};

bool supported(CipherBackend backend) {
  const CpuFeatures& f = cpu_features();
  const bool aesni = f.aesni && f.pclmulqdq && f.sse41;
  const bool vaes256 = aesni && f.avx2 && f.vaes && f.vpclmulqdq;
  switch (backend) {
    case CipherBackend::best:
    case CipherBackend::portable:
      return true;
    case CipherBackend::aesni:
      return aesni;
    case CipherBackend::vaes256:
      return vaes256;
    case CipherBackend::vaes512:
      return vaes256 && f.avx512f && f.avx512vl && f.avx512bw;
  }
  return false;
}

Result<CipherBackend> resolve_best() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): rbd-luks never writes the environment.
  const char* requested = std::getenv("RBD_LUKS_CIPHER_BACKEND");
  if (requested == nullptr || *requested == '\0') return supported_cipher_backends().front();
  for (const CipherBackend backend : kFastestFirst) {
    if (cipher_backend_id(backend) == requested) return backend;
  }
  return Error(Errc::usage, std::string("RBD_LUKS_CIPHER_BACKEND=") + requested +
                                " is not a cipher backend (portable, aesni, vaes256 or vaes512)");
}

}  // namespace

Result<std::unique_ptr<XtsCipher>> make_xts_cipher(std::span<const uint8_t> key, CipherBackend backend) {
  if (key.size() != 32 && key.size() != 64) {
    return Error(Errc::unsupported,
                 "AES-XTS key of " + std::to_string(key.size() * 8) + " bits is not supported (256 or 512 bits)");
  }
  if (backend == CipherBackend::best) {
    RL_ASSIGN(backend, resolve_best());
  }
  if (!supported(backend)) {
    return Error(Errc::unsupported, "cipher backend " + std::string(cipher_backend_id(backend)) +
                                        " needs CPU features this machine lacks");
  }
  switch (backend) {
    case CipherBackend::best:
    case CipherBackend::portable:
      return make_cryptopp_xts_cipher(key);
#if defined(__x86_64__)
    case CipherBackend::aesni:
      return make_aesni_xts_cipher(key);
    case CipherBackend::vaes256:
      return make_vaes256_xts_cipher(key);
    case CipherBackend::vaes512:
      return make_vaes512_xts_cipher(key);
#else
    case CipherBackend::aesni:
    case CipherBackend::vaes256:
    case CipherBackend::vaes512:
      break;  // never supported off x86-64
#endif
  }
  return Error(Errc::failure, "unknown cipher backend");
}

std::vector<CipherBackend> supported_cipher_backends() {
  std::vector<CipherBackend> out;
  for (const CipherBackend backend : kFastestFirst) {
    if (supported(backend)) out.push_back(backend);
  }
  return out;
}

std::string_view cipher_backend_id(CipherBackend backend) {
  switch (backend) {
    case CipherBackend::best:
      return "best";
    case CipherBackend::portable:
      return "portable";
    case CipherBackend::aesni:
      return "aesni";
    case CipherBackend::vaes256:
      return "vaes256";
    case CipherBackend::vaes512:
      return "vaes512";
  }
  return "unknown";
}

}  // namespace rbdluks
