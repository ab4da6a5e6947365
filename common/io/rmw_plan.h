// RmwPlan: how a write that read, modified and re-encrypted partial sectors puts its ciphertext
// back, so that clients doing the same to the same sectors at the same time lose none of each
// other's bytes.
//
// A range lock only orders the requests of one open image. Across clients (processes, hosts, the
// fio engine's jobs), two read-modify-writes of one sector could each read the old sector and write
// it back whole with only their own bytes new. librbd's own encryption avoids that with
// version-asserted object writes, which its public API does not offer; its compare-and-write does,
// for 512 bytes inside one 512-byte unit (librbd 16). So the ciphertext goes back unit by unit,
// which XTS allows (it encrypts each 16-byte block on its own, with the sector's tweak):
// - whole:   units the request covers entirely; their ciphertext depends on nothing that was read,
//            so they are written as they are (the range between them too, in the same write).
// - compare: the at most two units the request covers in part; each is written only if it still
//            holds the ciphertext that was read, and otherwise read, merged and tried again.
// - fill:    units of the partial sectors outside the request that read as zeros (a hole, or a
//            sector another client is putting back unit by unit): they get encrypted zeros, only
//            if they still hold zeros, so that librbd's native encryption and cryptsetup, which
//            know no all-zero units, read zeros there too; a unit that no longer holds zeros has
//            been written by another client meanwhile and is left alone.
// Whatever the order, every unit ends up holding one client's complete ciphertext for it, or zeros,
// which read as zeros (sector_codec.h).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "scattered_sectors.h"
#include "sector_codec.h"

namespace rbdluks {

struct RmwWrite {
  enum class Kind { whole, compare, fill };
  Kind kind;
  uint64_t begin;  // plaintext offsets, multiples of kAtomicUnit
  uint64_t end;
};

struct RmwPlan {
  // One whole range, two compares, and the other units of two partial sectors.
  static constexpr size_t kMaxWrites = 3 + 2 * (kMaxSectorSize / kAtomicUnit - 1);
  std::array<RmwWrite, kMaxWrites> writes{};
  size_t count = 0;

  const RmwWrite* begin() const { return writes.data(); }
  const RmwWrite* end() const { return writes.data() + count; }
};

// The writes for span, whose partial sectors (partial_sectors(span), in that order) had the all-zero
// units zero_units_read[i] (zero_units()) when they were read.
RmwPlan plan_rmw(const SectorSpan& span, const std::array<uint32_t, 2>& zero_units_read);

}  // namespace rbdluks
