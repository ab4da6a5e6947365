// The crash-point checks (see the header), written against RawImage only, so that files and RBD
// images go through the same cases.
#include "crash_points.h"

#include "fault_injecting_image.h"
#include "random.h"

namespace rbdluks {
namespace {

std::span<const uint8_t> bytes_of(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

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

std::vector<uint8_t> random_key() {
  std::vector<uint8_t> key(32);
  EXPECT_TRUE(fill_random(key));
  return key;
}

}  // namespace

uint64_t CrashPointsFixture::data_offset() const { return *format_options(version()).data_offset; }

void CrashPointsFixture::make_blank_image() {
  volume_key_ = random_key();
  create_image();
  std::vector<uint8_t> data(kDataBytes);
  ASSERT_TRUE(fill_random(data));
  ASSERT_TRUE(image().write(data_offset(), data));
  ASSERT_TRUE(image().flush());
}

void CrashPointsFixture::format(const std::string& passphrase) {
  auto formatted = format_luks(image(), format_options(version()), volume_key_, bytes_of(passphrase));
  ASSERT_TRUE(formatted) << formatted.error().message();
}

CrashPointsFixture::Operation CrashPointsFixture::add_keyslot_op(const std::string& passphrase) const {
  return [this, passphrase](RawImage& image) -> Status {
    RL_ASSIGN(auto volume, load_luks(image));
    RL_ASSIGN(const int slot, volume->add_keyslot(volume_key_, bytes_of(passphrase), fast_kdf(version())));
    static_cast<void>(slot);
    return {};
  };
}

std::vector<uint8_t> CrashPointsFixture::contents() {
  std::vector<uint8_t> bytes(data_offset() + kDataBytes);
  EXPECT_TRUE(image().read(0, bytes));
  return bytes;
}

void CrashPointsFixture::put_back(const std::vector<uint8_t>& contents) {
  ASSERT_TRUE(image().write(0, contents));
  ASSERT_TRUE(image().flush());
}

VolumeState CrashPointsFixture::state(const std::vector<std::string>& candidates) {
  auto volume = load_luks(image());
  if (!volume) return {};
  VolumeState state{true, {}, {}};
  for (const auto& passphrase : candidates) {
    if (auto opened = (*volume)->open(bytes_of(passphrase)); opened) {
      const std::span<const uint8_t> key = opened->volume_key.span();
      EXPECT_TRUE(std::equal(key.begin(), key.end(), volume_key_.begin(), volume_key_.end()))
          << "'" << passphrase << "' opens to another key";
      state.opens.insert(passphrase);
    }
  }
  for (const auto& slot : (*volume)->keyslots()) {
    if (slot.active) state.keyslots.insert(slot.id);
  }
  return state;
}

void CrashPointsFixture::check_every_crash_point(const Operation& op, const std::vector<std::string>& candidates) {
  const std::vector<uint8_t> start = contents();
  const VolumeState before = state(candidates);
  uint64_t changes = 0;
  {
    FaultInjectingImage counting(image(), 0, FaultInjectingImage::Mode::crash);
    ASSERT_TRUE(op(counting));
    changes = counting.changes();
  }
  const VolumeState after = state(candidates);
  ASSERT_NE(before, after) << "the operation changed nothing";
  ASSERT_GT(changes, 0u);

  const std::vector<uint8_t> data(start.begin() + static_cast<ptrdiff_t>(data_offset()), start.end());
  const auto check = [&](const std::string& when) {
    const VolumeState now = state(candidates);
    EXPECT_TRUE(now == before || now == after)
        << when << ": " << describe(now) << "; before: " << describe(before) << "; after: " << describe(after);
    const std::vector<uint8_t> now_bytes = contents();
    EXPECT_TRUE(std::equal(data.begin(), data.end(), now_bytes.begin() + static_cast<ptrdiff_t>(data_offset())))
        << when << ": the data segment changed";
  };
  for (uint64_t n = 1; n <= changes; ++n) {
    put_back(start);
    {
      FaultInjectingImage failing(image(), n, FaultInjectingImage::Mode::fail_once);
      EXPECT_FALSE(op(failing)) << "change " << n << " failed, yet the operation succeeded";
    }
    check("change " + std::to_string(n) + " failing once");

    for (const auto& keep : subsets_of_unflushed(op, start, n)) {
      put_back(start);
      {
        FaultInjectingImage crashing(image(), n, FaultInjectingImage::Mode::crash);
        EXPECT_FALSE(op(crashing));
        ASSERT_TRUE(crashing.keep_unflushed(keep));
      }
      std::string kept;
      for (const bool k : keep) kept += k ? '1' : '0';
      check("crash at change " + std::to_string(n) + ", unflushed writes kept: [" + kept + "]");
    }
  }
}

// Which unflushed writes a crash at change n keeps: every combination of up to three, else none, all,
// and all but one, for each one.
std::vector<std::vector<bool>> CrashPointsFixture::subsets_of_unflushed(const Operation& op,
                                                                        const std::vector<uint8_t>& start, uint64_t n) {
  put_back(start);
  FaultInjectingImage crashing(image(), n, FaultInjectingImage::Mode::crash);
  static_cast<void>(op(crashing));
  const size_t k = crashing.unflushed_writes();
  std::vector<std::vector<bool>> subsets;
  if (k <= 3) {
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
    std::vector<bool> all_but(k, true);
    all_but[i] = false;
    subsets.push_back(all_but);
  }
  return subsets;
}

void CrashPointsFixture::format_of_a_blank_image() {
  make_blank_image();
  const FormatOptions options = format_options(version());
  check_every_crash_point(
      [&](RawImage& image) -> Status {
        RL_ASSIGN(auto volume, format_luks(image, options, volume_key_, bytes_of("first")));
        static_cast<void>(volume);
        return {};
      },
      {"first"});
}

// Formatting destroys the volume that was there by intent, so a crash half way may leave neither;
// but a write that fails must put back what format overwrote.
void CrashPointsFixture::format_over_a_volume_restores_it_when_a_write_fails() {
  make_blank_image();
  format("old");
  const std::vector<uint8_t> start = contents();
  const FormatOptions options = format_options(version());
  uint64_t changes = 0;
  {
    FaultInjectingImage counting(image(), 0, FaultInjectingImage::Mode::fail_once);
    ASSERT_TRUE(format_luks(counting, options, volume_key_, bytes_of("new")));
    changes = counting.changes();
  }
  for (uint64_t n = 1; n <= changes; ++n) {
    put_back(start);
    {
      FaultInjectingImage failing(image(), n, FaultInjectingImage::Mode::fail_once);
      EXPECT_FALSE(format_luks(failing, options, volume_key_, bytes_of("new")));
    }
    EXPECT_TRUE(contents() == start) << "change " << n << " failed and the image was not restored";
  }
}

void CrashPointsFixture::keyslot_add() {
  make_blank_image();
  format("first");
  check_every_crash_point(add_keyslot_op("second"), {"first", "second"});
}

void CrashPointsFixture::keyslot_remove() {
  make_blank_image();
  format("first");
  ASSERT_TRUE(add_keyslot_op("second")(image()));
  check_every_crash_point(
      [](RawImage& image) -> Status {
        RL_ASSIGN(auto volume, load_luks(image));
        return volume->remove_keyslot(1);
      },
      {"first", "second"});
}

}  // namespace rbdluks
