// Crash points of every header change, LUKS2 and LUKS1, on image files: formatting a blank image,
// adding and removing a keyslot, and formatting over a volume. Each operation runs once to count
// its changes (writes, flushes) and then once for every change n with that change failing
// (FaultInjectingImage): as a transient error, and as a crash that loses any combination of the
// writes not flushed yet. Afterwards the image must be exactly in the old or the new state: the
// passphrases that open it and its active keyslots both as before or both as after, never a mix,
// never neither; and the data segment must be untouched.
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "fault_injecting_image.h"
#include "file_image.h"
#include "luks_volume.h"
#include "random.h"
#include "test_support.h"

namespace rbdluks {
namespace {

constexpr uint64_t kDataBytes = 64 * 1024;

// What a volume opens with: the candidate passphrases that open a keyslot, and its active keyslots.
struct VolumeState {
  bool has_header = false;
  std::set<std::string> opens;
  std::set<int> keyslots;

  bool operator==(const VolumeState&) const = default;
};

std::string describe(const VolumeState& state) {
  if (!state.has_header) return "no header";
  std::string text = "opens with {";
  for (const auto& p : state.opens) text += " '" + p + "'";
  text += " }, keyslots {";
  for (const int k : state.keyslots) text += " " + std::to_string(k);
  return text + " }";
}

KdfRequest fast_kdf(int version) {
  if (version == 1) return KdfRequest{.type = KdfType::pbkdf2, .force_iterations = 1000};
  return KdfRequest{.type = KdfType::argon2id, .force_iterations = 4, .max_memory_kib = 32, .parallel = 1};
}

FormatOptions format_options(int version) {
  FormatOptions options;
  options.version = version;
  options.sector_size = version == 1 ? 512 : 4096;
  // Small images, so that the many runs stay fast: a 256-bit key (128000-byte keyslots); LUKS2 with
  // room for several keyslots, LUKS1 with the eight it always has.
  options.key_bytes = 32;
  options.data_offset = version == 1 ? uint64_t{2} << 20 : uint64_t{1} << 20;
  options.kdf = fast_kdf(version);
  return options;
}

class CrashPointsTest : public ::testing::TestWithParam<int> {
 protected:
  using Operation = std::function<Status(RawImage&)>;

  int version() const { return GetParam(); }
  uint64_t data_offset() const { return *format_options(version()).data_offset; }
  std::string path() const { return dir_.file("image"); }

  // A blank image file with random bytes in its data segment.
  void make_blank_image() {
    auto image = create_file_image(path(), data_offset() + kDataBytes);
    ASSERT_TRUE(image) << image.error().message();
    ASSERT_TRUE((*image)->write(data_offset(), random_bytes(kDataBytes)));
  }

  void format(const std::string& passphrase) {
    auto image = open_file_image(path(), OpenMode::read_write);
    ASSERT_TRUE(image);
    auto formatted = format_luks(**image, format_options(version()), volume_key_, bytes_of(passphrase));
    ASSERT_TRUE(formatted) << formatted.error().message();
  }

  void add_keyslot(const std::string& passphrase) {
    auto image = open_file_image(path(), OpenMode::read_write);
    ASSERT_TRUE(image);
    ASSERT_TRUE(add_keyslot_op(passphrase)(**image));
  }

  Operation add_keyslot_op(const std::string& passphrase) const {
    return [this, passphrase](RawImage& image) -> Status {
      RL_ASSIGN(auto volume, load_luks(image));
      RL_ASSIGN(const int slot, volume->add_keyslot(volume_key_, bytes_of(passphrase), fast_kdf(version())));
      static_cast<void>(slot);
      return {};
    };
  }

  VolumeState state(const std::vector<std::string>& candidates) const {
    auto image = open_file_image(path(), OpenMode::read_only);
    EXPECT_TRUE(image);
    if (!image) return {};
    auto volume = load_luks(**image);
    if (!volume) return {};
    VolumeState state{true, {}, {}};
    for (const auto& passphrase : candidates) {
      if (auto opened = (*volume)->open(bytes_of(passphrase)); opened) {
        EXPECT_EQ(std::vector<uint8_t>(opened->volume_key.span().begin(), opened->volume_key.span().end()), volume_key_)
            << "'" << passphrase << "' opens to another key";
        state.opens.insert(passphrase);
      }
    }
    for (const auto& slot : (*volume)->keyslots()) {
      if (slot.active) state.keyslots.insert(slot.id);
    }
    return state;
  }

  // Runs op on the image as it is now once for every change it makes, that change failing once
  // and then crashing (losing each combination of unflushed writes), each time from the same
  // start, and checks that every outcome is the old or the new state.
  void check_every_crash_point(const Operation& op, const std::vector<std::string>& candidates) {
    const std::vector<uint8_t> start = read_file(path());
    const VolumeState before = state(candidates);
    uint64_t changes = 0;
    {
      auto image = open_file_image(path(), OpenMode::read_write);
      ASSERT_TRUE(image);
      FaultInjectingImage counting(**image, 0, FaultInjectingImage::Mode::crash);
      ASSERT_TRUE(op(counting));
      changes = counting.changes();
    }
    const VolumeState after = state(candidates);
    ASSERT_NE(before, after) << "the operation changed nothing";
    ASSERT_GT(changes, 0u);

    const auto check = [&](const std::string& when) {
      const VolumeState now = state(candidates);
      EXPECT_TRUE(now == before || now == after)
          << when << ": " << describe(now) << "; before: " << describe(before) << "; after: " << describe(after);
      EXPECT_EQ(read_bytes(path(), data_offset(), kDataBytes),
                std::vector<uint8_t>(start.begin() + static_cast<ptrdiff_t>(data_offset()), start.end()))
          << when << ": the data segment changed";
    };
    for (uint64_t n = 1; n <= changes; ++n) {
      write_file(path(), start);
      {
        auto image = open_file_image(path(), OpenMode::read_write);
        ASSERT_TRUE(image);
        FaultInjectingImage failing(**image, n, FaultInjectingImage::Mode::fail_once);
        EXPECT_FALSE(op(failing)) << "change " << n << " failed, yet the operation succeeded";
      }
      check("change " + std::to_string(n) + " failing once");

      for (const auto& keep : subsets_of_unflushed(op, start, n)) {
        write_file(path(), start);
        auto image = open_file_image(path(), OpenMode::read_write);
        ASSERT_TRUE(image);
        FaultInjectingImage crashing(**image, n, FaultInjectingImage::Mode::crash);
        EXPECT_FALSE(op(crashing));
        ASSERT_TRUE(crashing.keep_unflushed(keep));
        std::string kept;
        for (const bool k : keep) kept += k ? '1' : '0';
        check("crash at change " + std::to_string(n) + ", unflushed writes kept: [" + kept + "]");
      }
    }
  }

  // Which unflushed writes a crash at change n keeps: every combination of a few, else none, all,
  // and each one alone kept or lost.
  std::vector<std::vector<bool>> subsets_of_unflushed(const Operation& op, const std::vector<uint8_t>& start,
                                                      uint64_t n) {
    write_file(path(), start);
    auto image = open_file_image(path(), OpenMode::read_write);
    EXPECT_TRUE(image);
    if (!image) return {};
    FaultInjectingImage crashing(**image, n, FaultInjectingImage::Mode::crash);
    static_cast<void>(op(crashing));
    const size_t k = crashing.unflushed_writes();
    std::vector<std::vector<bool>> subsets;
    if (k <= 4) {
      for (uint32_t bits = 0; bits < (1u << k); ++bits) {
        std::vector<bool> keep(k);
        for (size_t i = 0; i < k; ++i) keep[i] = ((bits >> i) & 1) != 0;
        subsets.push_back(std::move(keep));
      }
      return subsets;
    }
    subsets.emplace_back(k, false);
    subsets.emplace_back(k, true);
    for (size_t i = 0; i < k; ++i) {
      std::vector<bool> alone(k, false);
      alone[i] = true;
      subsets.push_back(alone);
      std::vector<bool> all_but(k, true);
      all_but[i] = false;
      subsets.push_back(all_but);
    }
    return subsets;
  }

  TempDir dir_;
  const std::vector<uint8_t> volume_key_ = random_bytes(32);
};

TEST_P(CrashPointsTest, FormatOfABlankImage) {
  make_blank_image();
  const FormatOptions options = format_options(version());
  const std::vector<uint8_t> key = volume_key_;
  check_every_crash_point(
      [&](RawImage& image) -> Status {
        RL_ASSIGN(auto volume, format_luks(image, options, key, bytes_of("first")));
        static_cast<void>(volume);
        return {};
      },
      {"first"});
}

// Formatting destroys the volume that was there by intent, so a crash half way may leave neither;
// but a write that fails must put back what format overwrote.
TEST_P(CrashPointsTest, FormatOverAVolumeRestoresItWhenAWriteFails) {
  make_blank_image();
  format("old");
  const std::vector<uint8_t> start = read_file(path());
  const FormatOptions options = format_options(version());
  uint64_t changes = 0;
  {
    auto image = open_file_image(path(), OpenMode::read_write);
    ASSERT_TRUE(image);
    FaultInjectingImage counting(**image, 0, FaultInjectingImage::Mode::fail_once);
    ASSERT_TRUE(format_luks(counting, options, volume_key_, bytes_of("new")));
    changes = counting.changes();
  }
  for (uint64_t n = 1; n <= changes; ++n) {
    write_file(path(), start);
    {
      auto image = open_file_image(path(), OpenMode::read_write);
      ASSERT_TRUE(image);
      FaultInjectingImage failing(**image, n, FaultInjectingImage::Mode::fail_once);
      EXPECT_FALSE(format_luks(failing, options, volume_key_, bytes_of("new")));
    }
    EXPECT_TRUE(read_file(path()) == start) << "change " << n << " failed and the image was not restored";
  }
}

TEST_P(CrashPointsTest, KeyslotAdd) {
  make_blank_image();
  format("first");
  check_every_crash_point(add_keyslot_op("second"), {"first", "second"});
}

TEST_P(CrashPointsTest, KeyslotRemove) {
  make_blank_image();
  format("first");
  add_keyslot("second");
  check_every_crash_point(
      [](RawImage& image) -> Status {
        RL_ASSIGN(auto volume, load_luks(image));
        return volume->remove_keyslot(1);
      },
      {"first", "second"});
}

INSTANTIATE_TEST_SUITE_P(Versions, CrashPointsTest, ::testing::Values(2, 1),
                         [](const auto& version) { return "luks" + std::to_string(version.param); });

}  // namespace
}  // namespace rbdluks
