// LUKS2 header engine: reading headers cryptsetup 2.6 wrote, writing them back so cryptsetup still
// opens them, recovery from a damaged copy, and rejection of damaged, crafted or foreign data.
#include <gtest/gtest.h>

#include <cryptopp/pwdbased.h>
#include <cryptopp/sha.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base64.h"
#include "file_image.h"
#include "luks2_header.h"
#include "random.h"
#include "test_support.h"

namespace rbdluks {
namespace {

using Json = nlohmann::ordered_json;

constexpr uint64_t kMiB = uint64_t{1024} * 1024;
constexpr uint64_t kImageSize = 16 * kMiB;
constexpr size_t kBothCopies = 2 * size_t{16384};  // two 16 KiB header copies
constexpr char kPbkdf2Fast[] = "--batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000";
constexpr char kArgon2Fast[] = "--batch-mode --pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 32";

void flip_byte(const std::string& path, uint64_t offset) {
  auto byte = read_bytes(path, offset, 1);
  byte[0] ^= 0x01;
  write_bytes(path, offset, byte);
}

std::string json_text_at(const std::string& path, uint64_t copy_offset, uint64_t hdr_size) {
  const auto area = read_bytes(path, copy_offset + kLuks2BinaryHeaderSize, hdr_size - kLuks2BinaryHeaderSize);
  const auto nul = std::find(area.begin(), area.end(), uint8_t{0});
  return {area.begin(), nul};
}

uint64_t be64_at(const std::string& path, uint64_t offset) {
  uint64_t v = 0;
  for (const uint8_t b : read_bytes(path, offset, 8)) v = (v << 8) | b;
  return v;
}

Result<Luks2LoadResult> load(const std::string& path) {
  auto image = open_file_image(path, OpenMode::read_only);
  if (!image) return std::move(image).error();
  return read_luks2_header(**image);
}

Status store(const std::string& path, Luks2Header& header) {
  auto image = open_file_image(path, OpenMode::read_write);
  if (!image) return std::move(image).error();
  return write_luks2_header(**image, header);
}

// Replaces the JSON area of both copies (area() gets the current text and returns the new area of
// hdr_size - 4096 bytes) and gives each copy a matching checksum, so only the JSON rules are tested.
void rewrite_json_area(const std::string& path, const std::function<std::vector<uint8_t>(const std::string&)>& area) {
  const uint64_t hdr_size = be64_at(path, 8);
  for (const uint64_t offset : {uint64_t{0}, hdr_size}) {
    const auto binary_bytes = read_bytes(path, offset, kLuks2BinaryHeaderSize);
    auto binary = parse_luks2_binary_header(binary_bytes, offset);
    ASSERT_TRUE(binary) << binary.error().message();
    const auto new_area = area(json_text_at(path, offset, hdr_size));
    ASSERT_EQ(new_area.size(), hdr_size - kLuks2BinaryHeaderSize);
    binary->csum = {};
    auto unsummed = serialize_luks2_binary_header(*binary);
    ASSERT_TRUE(unsummed);
    auto csum = luks2_checksum(binary->checksum_alg, *unsummed, new_area);
    ASSERT_TRUE(csum);
    binary->csum = *csum;
    auto summed = serialize_luks2_binary_header(*binary);
    ASSERT_TRUE(summed);
    write_bytes(path, offset, *summed);
    write_bytes(path, offset + kLuks2BinaryHeaderSize, new_area);
  }
}

void rewrite_json(const std::string& path, const std::function<void(Json&)>& mutate) {
  const uint64_t json_size = be64_at(path, 8) - kLuks2BinaryHeaderSize;
  rewrite_json_area(path, [&](const std::string& text) {
    Json j = Json::parse(text);
    mutate(j);
    const std::string new_text = j.dump();
    std::vector<uint8_t> area(json_size, 0);
    std::copy(new_text.begin(), new_text.end(), area.begin());
    return area;
  });
}

class Luks2HeaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(passphrase_, bytes_of("first passphrase"));
    write_file(passphrase2_, bytes_of("second passphrase"));
  }

  // A fresh cryptsetup LUKS2 image with keyslot 0 opened by passphrase_.
  std::string format(const std::string& name, const std::string& options) {
    std::string path = dir_.file(name);
    make_sparse_file(path, kImageSize);
    EXPECT_TRUE(succeeds("cryptsetup luksFormat --type luks2 " + options + " --key-file " + passphrase_ + " " + path));
    return path;
  }

  void add_key(const std::string& path, int keyslot) {
    ASSERT_TRUE(succeeds("cryptsetup luksAddKey " + std::string(kPbkdf2Fast) + " --key-file " + passphrase_ +
                         " --new-keyfile " + passphrase2_ + " --new-key-slot " + std::to_string(keyslot) + " " + path));
  }

  Json dump_json(const std::string& path) {
    std::string output;
    EXPECT_EQ(run("cryptsetup luksDump --dump-json-metadata " + path, &output), 0) << output;
    return Json::parse(output, nullptr, false);
  }

  // luksDump's "Epoch", the seqid; -1 when luksDump rejects the header.
  int64_t epoch(const std::string& path) {
    std::string output;
    if (run("cryptsetup luksDump " + path, &output) != 0) return -1;
    std::istringstream lines(output);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("Epoch:", 0) == 0) return std::stoll(line.substr(6));
    }
    return -1;
  }

  bool opens(const std::string& path, const std::string& key_file) {
    return run("cryptsetup open --test-passphrase --key-file " + key_file + " " + path) == 0;
  }

  TempDir dir_;
  std::string passphrase_ = dir_.file("passphrase");
  std::string passphrase2_ = dir_.file("passphrase2");
};

TEST_F(Luks2HeaderTest, ReadsCryptsetupArgon2idHeader) {
  const std::string path = format("argon.img", kArgon2Fast);
  const Json dump = dump_json(path);
  auto loaded = load(path);
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_TRUE(loaded->primary_valid);
  EXPECT_TRUE(loaded->secondary_valid);
  EXPECT_EQ(loaded->damage, "");

  const Luks2Header& h = loaded->header;
  std::string uuid;
  ASSERT_EQ(run("cryptsetup luksUUID " + path, &uuid), 0);
  EXPECT_EQ(h.binary.uuid + "\n", uuid);
  EXPECT_EQ(h.hdr_size, 16384u);
  EXPECT_EQ(static_cast<int64_t>(h.binary.seqid), epoch(path));
  EXPECT_EQ(h.binary.checksum_alg, "sha256");
  EXPECT_EQ(h.binary.label, "");

  const Luks2Metadata& m = h.metadata;
  ASSERT_EQ(m.keyslots.size(), 1u);
  const Luks2Keyslot& k = m.keyslots.at(0);
  const Json& dk = dump["keyslots"]["0"];
  EXPECT_EQ(k.kdf.type, KdfType::argon2id);
  EXPECT_EQ(k.kdf.iterations, 4u);
  EXPECT_EQ(k.kdf.memory_kib, 32u);
  EXPECT_EQ(k.kdf.parallel, dk["kdf"]["cpus"].get<uint32_t>());
  EXPECT_EQ(base64_encode(k.kdf_salt), dk["kdf"]["salt"].get<std::string>());
  EXPECT_EQ(k.kdf_salt.size(), 32u);
  EXPECT_EQ(std::to_string(k.area_offset), dk["area"]["offset"].get<std::string>());
  EXPECT_EQ(std::to_string(k.area_size), dk["area"]["size"].get<std::string>());
  EXPECT_EQ(k.area_offset, luks2_keyslots_area_offset(h));
  EXPECT_EQ(k.area_size, luks2_keyslot_area_size(64, 4000));
  EXPECT_EQ(k.key_size, 64u);
  EXPECT_EQ(k.af_stripes, 4000u);
  EXPECT_EQ(k.af_hash, "sha256");
  EXPECT_EQ(k.area_encryption, "aes-xts-plain64");
  EXPECT_FALSE(k.priority.has_value());

  ASSERT_EQ(m.segments.size(), 1u);
  const Luks2Segment& s = m.segments.at(0);
  EXPECT_EQ(std::to_string(s.offset), dump["segments"]["0"]["offset"].get<std::string>());
  EXPECT_EQ(s.sector_size, dump["segments"]["0"]["sector_size"].get<uint32_t>());
  EXPECT_EQ(s.sector_size, 4096u);
  EXPECT_EQ(s.encryption, "aes-xts-plain64");
  EXPECT_FALSE(s.size.has_value());
  EXPECT_EQ(s.iv_tweak, 0u);

  ASSERT_EQ(m.digests.size(), 1u);
  const Luks2Digest& d = m.digests.at(0);
  EXPECT_EQ(base64_encode(d.salt), dump["digests"]["0"]["salt"].get<std::string>());
  EXPECT_EQ(base64_encode(d.digest), dump["digests"]["0"]["digest"].get<std::string>());
  EXPECT_EQ(d.keyslots, std::vector<int>{0});
  EXPECT_EQ(d.segments, std::vector<int>{0});
  EXPECT_EQ(std::to_string(m.config.keyslots_size), dump["config"]["keyslots_size"].get<std::string>());
  EXPECT_EQ(m.config.json_size, 12288u);
}

TEST_F(Luks2HeaderTest, ReadsPbkdf2Sector512HeaderWithAddedKeyslots) {
  const std::string path = format("pbkdf2.img", std::string(kPbkdf2Fast) + " --sector-size 512");
  ASSERT_NO_FATAL_FAILURE(add_key(path, 1));
  ASSERT_NO_FATAL_FAILURE(add_key(path, 5));
  const Json dump = dump_json(path);
  auto loaded = load(path);
  ASSERT_TRUE(loaded) << loaded.error().message();
  const Luks2Metadata& m = loaded->header.metadata;

  std::set<int> ids;
  for (const auto& entry : m.keyslots) ids.insert(entry.first);
  EXPECT_EQ(ids, (std::set<int>{0, 1, 5}));
  for (const auto& [id, k] : m.keyslots) {
    const Json& dk = dump["keyslots"][std::to_string(id)];
    EXPECT_EQ(k.kdf.type, KdfType::pbkdf2);
    EXPECT_EQ(k.kdf.hash, dk["kdf"]["hash"].get<std::string>());
    EXPECT_EQ(k.kdf.iterations, 1000u);
    EXPECT_EQ(std::to_string(k.area_offset), dk["area"]["offset"].get<std::string>());
    EXPECT_EQ(base64_encode(k.kdf_salt), dk["kdf"]["salt"].get<std::string>());
  }
  EXPECT_EQ(m.segments.at(0).sector_size, 512u);
  EXPECT_EQ(m.digests.at(0).keyslots, (std::vector<int>{0, 1, 5}));
  EXPECT_EQ(base64_encode(m.digests.at(0).salt), dump["digests"]["0"]["salt"].get<std::string>());
  EXPECT_EQ(static_cast<int64_t>(loaded->header.binary.seqid), epoch(path));
}

TEST_F(Luks2HeaderTest, SerializesExactlyTheTextCryptsetupWrote) {
  const std::string path = format("text.img", std::string(kPbkdf2Fast) + " --sector-size 512");
  ASSERT_NO_FATAL_FAILURE(add_key(path, 3));
  auto loaded = load(path);
  ASSERT_TRUE(loaded) << loaded.error().message();
  auto text = luks2_metadata_text(loaded->header.metadata);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, json_text_at(path, 0, 16384));
}

TEST_F(Luks2HeaderTest, RewrittenHeaderStaysValidForCryptsetup) {
  const std::string path = format("rewrite.img", kArgon2Fast);
  const int64_t before = epoch(path);
  const std::string text_before = json_text_at(path, 0, 16384);
  auto loaded = load(path);
  ASSERT_TRUE(loaded) << loaded.error().message();
  const auto salt = loaded->header.binary.salt;
  ASSERT_TRUE(store(path, loaded->header));
  EXPECT_EQ(static_cast<int64_t>(loaded->header.binary.seqid), before + 1);

  EXPECT_EQ(epoch(path), before + 1);
  EXPECT_TRUE(opens(path, passphrase_));
  EXPECT_FALSE(opens(path, passphrase2_));
  // Both copies carry the new seqid, as cryptsetup leaves them; salts and JSON are unchanged.
  EXPECT_EQ(be64_at(path, 16), static_cast<uint64_t>(before + 1));
  EXPECT_EQ(be64_at(path, 16384 + 16), static_cast<uint64_t>(before + 1));
  EXPECT_EQ(json_text_at(path, 0, 16384), text_before);
  EXPECT_EQ(json_text_at(path, 16384, 16384), text_before);
  auto again = load(path);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_TRUE(again->primary_valid && again->secondary_valid);
  EXPECT_EQ(again->header.binary.salt, salt);

  // cryptsetup can still change what we wrote.
  ASSERT_NO_FATAL_FAILURE(add_key(path, 2));
  EXPECT_TRUE(opens(path, passphrase2_));
}

TEST_F(Luks2HeaderTest, NonDefaultHeaderSizeIsReadAndFoundWhenPrimaryIsGone) {
  const std::string path = format("big.img", std::string(kPbkdf2Fast) + " --luks2-metadata-size 65536");
  auto loaded = load(path);
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_EQ(loaded->header.hdr_size, 65536u);
  EXPECT_EQ(loaded->header.metadata.config.json_size, 65536u - 4096u);

  // Without the primary's magic, the secondary is found by probing the known offsets.
  write_bytes(path, 0, std::vector<uint8_t>(6, 0));
  auto probed = load(path);
  ASSERT_TRUE(probed) << probed.error().message();
  EXPECT_FALSE(probed->primary_valid);
  EXPECT_TRUE(probed->secondary_valid);
  EXPECT_EQ(probed->header.hdr_size, 65536u);
  EXPECT_NE(probed->damage.find("magic"), std::string::npos) << probed->damage;

  ASSERT_TRUE(store(path, probed->header));
  auto repaired = load(path);
  ASSERT_TRUE(repaired) << repaired.error().message();
  EXPECT_TRUE(repaired->primary_valid && repaired->secondary_valid);
  EXPECT_TRUE(opens(path, passphrase_));
}

TEST_F(Luks2HeaderTest, DamagedPrimaryIsReadFromSecondaryAndRepaired) {
  const std::string path = format("primary.img", kPbkdf2Fast);
  flip_byte(path, 4096 + 20);
  auto loaded = load(path);
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_FALSE(loaded->primary_valid);
  EXPECT_TRUE(loaded->secondary_valid);
  EXPECT_NE(loaded->damage.find("primary"), std::string::npos) << loaded->damage;
  EXPECT_NE(loaded->damage.find("checksum"), std::string::npos) << loaded->damage;
  EXPECT_EQ(loaded->header.metadata.keyslots.size(), 1u);

  ASSERT_TRUE(store(path, loaded->header));
  auto repaired = load(path);
  ASSERT_TRUE(repaired) << repaired.error().message();
  EXPECT_TRUE(repaired->primary_valid && repaired->secondary_valid);
  EXPECT_EQ(repaired->damage, "");
  EXPECT_TRUE(opens(path, passphrase_));
}

TEST_F(Luks2HeaderTest, DamagedSecondaryIsReadFromPrimary) {
  const std::string path = format("secondary.img", kPbkdf2Fast);
  flip_byte(path, 16384 + 120);  // the secondary's salt
  auto loaded = load(path);
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_TRUE(loaded->primary_valid);
  EXPECT_FALSE(loaded->secondary_valid);
  EXPECT_NE(loaded->damage.find("secondary"), std::string::npos) << loaded->damage;

  ASSERT_TRUE(store(path, loaded->header));
  auto repaired = load(path);
  ASSERT_TRUE(repaired) << repaired.error().message();
  EXPECT_TRUE(repaired->primary_valid && repaired->secondary_valid);
}

TEST_F(Luks2HeaderTest, BothCopiesDamagedIsBadHeaderNamingBoth) {
  const std::string path = format("both.img", kPbkdf2Fast);
  flip_byte(path, 4096 + 20);
  flip_byte(path, 16384 + 4096 + 20);
  auto loaded = load(path);
  ASSERT_FALSE(loaded);
  EXPECT_TRUE(loaded.error().is(Errc::bad_header));
  EXPECT_NE(loaded.error().message().find("primary copy"), std::string::npos) << loaded.error().message();
  EXPECT_NE(loaded.error().message().find("secondary copy"), std::string::npos) << loaded.error().message();
}

TEST_F(Luks2HeaderTest, NewerCopyWinsAndOlderIsReported) {
  const std::string path = format("seqid.img", kPbkdf2Fast);
  auto loaded = load(path);
  ASSERT_TRUE(loaded);
  // A write interrupted after the secondary copy: only the secondary has the new seqid and priority.
  const std::vector<uint8_t> primary_copy = read_bytes(path, 0, 16384);
  loaded->header.metadata.keyslots.at(0).priority = Luks2Priority::prefer;
  ASSERT_TRUE(store(path, loaded->header));
  write_bytes(path, 0, primary_copy);

  auto reread = load(path);
  ASSERT_TRUE(reread) << reread.error().message();
  EXPECT_FALSE(reread->primary_valid);
  EXPECT_TRUE(reread->secondary_valid);
  EXPECT_EQ(reread->header.binary.seqid, loaded->header.binary.seqid);
  EXPECT_EQ(reread->header.metadata.keyslots.at(0).priority, Luks2Priority::prefer);
  EXPECT_NE(reread->damage.find("older"), std::string::npos) << reread->damage;
}

TEST_F(Luks2HeaderTest, AbsurdHeaderSizesAreRejected) {
  const std::string path = format("size.img", kPbkdf2Fast);
  const auto pristine = read_bytes(path, 0, kBothCopies);
  for (const uint64_t size : {uint64_t{1} << 40, uint64_t{0}, uint64_t{20000}, uint64_t{8192}}) {
    SCOPED_TRACE(size);
    write_bytes(path, 0, pristine);
    std::vector<uint8_t> field(8);
    for (int i = 0; i < 8; ++i) field[i] = static_cast<uint8_t>(size >> (56 - 8 * i));
    write_bytes(path, 8, field);
    auto primary_only = load(path);
    ASSERT_TRUE(primary_only) << primary_only.error().message();
    EXPECT_FALSE(primary_only->primary_valid);
    EXPECT_NE(primary_only->damage.find("hdr_size"), std::string::npos) << primary_only->damage;

    write_bytes(path, 16384 + 8, field);
    auto none = load(path);
    ASSERT_FALSE(none);
    EXPECT_TRUE(none.error().is(Errc::bad_header));
    EXPECT_NE(none.error().message().find("hdr_size"), std::string::npos) << none.error().message();
  }
}

TEST_F(Luks2HeaderTest, TruncatedImagesAreBadHeaders) {
  const std::string path = format("full.img", kPbkdf2Fast);
  const auto head = read_bytes(path, 0, kBothCopies);
  for (const size_t size : {size_t{100}, size_t{4096}, size_t{20000}, kBothCopies}) {
    SCOPED_TRACE(size);
    const std::string truncated = dir_.file("truncated.img");
    write_file(truncated, std::span(head).first(size));
    auto loaded = load(truncated);
    ASSERT_FALSE(loaded);
    EXPECT_TRUE(loaded.error().is(Errc::bad_header)) << loaded.error().message();
    EXPECT_FALSE(loaded.error().message().empty());
  }
  const std::string both = dir_.file("both_copies.img");
  write_file(both, head);
  auto loaded = load(both);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message().find("keyslots area"), std::string::npos) << loaded.error().message();
}

TEST_F(Luks2HeaderTest, ForeignDataIsBadHeader) {
  std::vector<uint8_t> random(1 << 20);
  ASSERT_TRUE(fill_random(random));
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> cases = {
      {"zeros", std::vector<uint8_t>(1 << 20, 0)}, {"random", random}, {"empty", {}}};
  for (const auto& [name, content] : cases) {
    SCOPED_TRACE(name);
    const std::string path = dir_.file(name + ".img");
    write_file(path, content);
    auto loaded = load(path);
    ASSERT_FALSE(loaded);
    EXPECT_TRUE(loaded.error().is(Errc::bad_header));
    EXPECT_NE(loaded.error().message().find("no valid LUKS2 header"), std::string::npos) << loaded.error().message();
  }

  const std::string luks1 = dir_.file("luks1.img");
  make_sparse_file(luks1, kImageSize);
  ASSERT_TRUE(succeeds("cryptsetup luksFormat --type luks1 --batch-mode --pbkdf-force-iterations 1000 --key-file " +
                       passphrase_ + " " + luks1));
  auto loaded = load(luks1);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message().find("version is 1"), std::string::npos) << loaded.error().message();
}

struct JsonCase {
  const char* name;
  std::function<void(Json&)> mutate;
  Errc code;
  const char* message;
};

TEST_F(Luks2HeaderTest, CraftedMetadataIsRejectedWithTheReason) {
  const uint64_t keyslots_end = 2 * 16384 + 16744448;
  const std::vector<JsonCase> cases = {
      {"overlapping areas", [](Json& j) { j["keyslots"]["1"]["area"]["offset"] = "36864"; }, Errc::bad_header,
       "overlaps"},
      {"area past the keyslots area",
       [&](Json& j) { j["keyslots"]["1"]["area"]["offset"] = std::to_string(keyslots_end - 4096); }, Errc::bad_header,
       "outside the keyslots area"},
      {"area inside the header", [](Json& j) { j["keyslots"]["0"]["area"]["offset"] = "16384"; }, Errc::bad_header,
       "outside the keyslots area"},
      {"segment inside the header", [](Json& j) { j["segments"]["0"]["offset"] = "16384"; }, Errc::bad_header,
       "inside the header and keyslots area"},
      {"segment inside the keyslots area",
       [&](Json& j) { j["segments"]["0"]["offset"] = std::to_string(keyslots_end - 512); }, Errc::bad_header,
       "inside the header and keyslots area"},
      {"offset as a number", [](Json& j) { j["segments"]["0"]["offset"] = 16777216; }, Errc::bad_header,
       "not a string"},
      {"offset with a sign", [](Json& j) { j["keyslots"]["0"]["area"]["offset"] = "+32768"; }, Errc::bad_header,
       "not a decimal"},
      {"json_size mismatch", [](Json& j) { j["config"]["json_size"] = "61440"; }, Errc::bad_header, "json_size"},
      {"keyslots_size unaligned", [](Json& j) { j["config"]["keyslots_size"] = "16744447"; }, Errc::bad_header,
       "keyslots_size"},
      {"keyslot id out of range", [](Json& j) { j["keyslots"]["32"] = j["keyslots"]["1"]; }, Errc::bad_header,
       "\"32\""},
      {"keyslot id not a number", [](Json& j) { j["keyslots"]["x"] = j["keyslots"]["1"]; }, Errc::bad_header, "\"x\""},
      {"digest of a missing keyslot", [](Json& j) { j["digests"]["0"]["keyslots"].push_back("7"); }, Errc::bad_header,
       "missing keyslot 7"},
      {"keyslot without digest", [](Json& j) { j["digests"]["0"]["keyslots"] = Json::array({"0"}); }, Errc::bad_header,
       "keyslot 1 is not assigned"},
      {"segment without digest", [](Json& j) { j["digests"]["0"]["segments"] = Json::array(); }, Errc::bad_header,
       "segment 0 is not assigned"},
      {"sector size not a multiple of 512", [](Json& j) { j["segments"]["0"]["sector_size"] = 1000; }, Errc::bad_header,
       "sector_size"},
      {"negative key_size", [](Json& j) { j["keyslots"]["0"]["key_size"] = -64; }, Errc::bad_header, "uint32"},
      {"bad salt", [](Json& j) { j["digests"]["0"]["salt"] = "not base64!"; }, Errc::bad_header, "base64"},
      {"af type", [](Json& j) { j["keyslots"]["0"]["af"]["type"] = "luks2"; }, Errc::bad_header, "af"},
      {"missing section", [](Json& j) { j.erase("digests"); }, Errc::bad_header, "\"digests\""},
      {"token of a missing keyslot",
       [](Json& j) {
         j["tokens"]["0"] = Json{{"type", "x"}, {"keyslots", {"9"}}};
       },
       Errc::bad_header, "missing keyslot 9"},
      {"deep nesting",
       [](Json& j) {
         Json deep = Json::array();
         for (int i = 0; i < 100; ++i) deep = Json::array({deep});
         j["tokens"]["0"] = Json{{"type", "x"}, {"keyslots", Json::array()}, {"deep", deep}};
       },
       Errc::bad_header, "nests deeper"},
      {"sector size 8192", [](Json& j) { j["segments"]["0"]["sector_size"] = 8192; }, Errc::unsupported, "sector_size"},
      {"reencrypt keyslot", [](Json& j) { j["keyslots"]["1"]["type"] = "reencrypt"; }, Errc::bad_header,
       "key_size of a reencrypt keyslot is 64"},
      {"detached header", [](Json& j) { j["segments"]["0"]["offset"] = "0"; }, Errc::unsupported, "detached"},
  };

  const std::string original = format("crafted.img", kPbkdf2Fast);
  ASSERT_NO_FATAL_FAILURE(add_key(original, 1));
  const auto pristine = read_bytes(original, 0, kBothCopies);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    write_bytes(original, 0, pristine);
    ASSERT_NO_FATAL_FAILURE(rewrite_json(original, c.mutate));
    auto loaded = load(original);
    ASSERT_FALSE(loaded);
    EXPECT_TRUE(loaded.error().is(c.code)) << loaded.error().message();
    EXPECT_NE(loaded.error().message().find(c.message), std::string::npos) << loaded.error().message();
  }

  // Valid headers with features rbd-luks lacks load (so they can be shown), with the reason kept.
  const struct {
    const char* name;
    std::function<void(Json&)> mutate;
    const char* reason;
  } unsupported[] = {
      {"mandatory requirement",
       [](Json& j) {
         j["config"]["requirements"] = Json{{"mandatory", {"online-reencrypt-v2"}}};
       },
       "online-reencrypt-v2"},
      {"integrity",
       [](Json& j) {
         j["segments"]["0"]["integrity"] =
             Json{{"type", "hmac(sha256)"}, {"journal_encryption", "none"}, {"journal_integrity", "none"}};
       },
       "integrity"},
      {"IV offset", [](Json& j) { j["segments"]["0"]["iv_tweak"] = "8"; }, "iv_tweak 8"},
      {"pre-release argon2",
       [](Json& j) {
         j["keyslots"]["0"]["kdf"] = Json{
             {"type", "argon2"}, {"time", 4}, {"memory", 32}, {"cpus", 1}, {"salt", j["keyslots"]["0"]["kdf"]["salt"]}};
       },
       "\"argon2\" is not supported"},
      {"linear segment", [](Json& j) { j["segments"]["0"]["type"] = "linear"; }, "\"linear\""},
  };
  for (const auto& c : unsupported) {
    SCOPED_TRACE(c.name);
    write_bytes(original, 0, pristine);
    ASSERT_NO_FATAL_FAILURE(rewrite_json(original, c.mutate));
    auto loaded = load(original);
    ASSERT_TRUE(loaded) << loaded.error().message();
    std::string reasons;
    for (const auto& reason : loaded->header.metadata.unsupported) reasons += reason + "; ";
    EXPECT_NE(reasons.find(c.reason), std::string::npos) << reasons;
  }
}

TEST_F(Luks2HeaderTest, JsonAreaFramingIsChecked) {
  const std::string path = format("framing.img", kPbkdf2Fast);
  const auto pristine = read_bytes(path, 0, kBothCopies);
  const std::vector<std::pair<std::function<void(std::vector<uint8_t>&, size_t)>, const char*>> cases = {
      {[](std::vector<uint8_t>& area, size_t end) { area[end + 10] = 'x'; }, "follows the JSON text"},
      {[](std::vector<uint8_t>& area, size_t end) { area[end] = ' '; }, "end with '}'"},
      {[](std::vector<uint8_t>& area, size_t) { std::fill(area.begin(), area.end(), uint8_t{'{'}); },
       "no terminating NUL"},
      {[](std::vector<uint8_t>& area, size_t) { area[0] = ' '; }, "start with '{'"},
      {[](std::vector<uint8_t>& area, size_t end) { area[end - 1] = ','; }, "end with '}'"},
      {[](std::vector<uint8_t>& area, size_t end) { area[end / 2] = '\x01'; }, "does not parse"},
  };
  for (const auto& [damage, message] : cases) {
    SCOPED_TRACE(message);
    write_bytes(path, 0, pristine);
    ASSERT_NO_FATAL_FAILURE(rewrite_json_area(path, [&, damage = damage](const std::string& text) {
      std::vector<uint8_t> area(16384 - 4096, 0);
      std::copy(text.begin(), text.end(), area.begin());
      damage(area, text.size());
      return area;
    }));
    auto loaded = load(path);
    ASSERT_FALSE(loaded);
    EXPECT_TRUE(loaded.error().is(Errc::bad_header));
    EXPECT_NE(loaded.error().message().find(message), std::string::npos) << loaded.error().message();
  }
}

// Random damage to the JSON text must give a value or an error, never a crash (run under ASan/UBSan).
TEST_F(Luks2HeaderTest, MutatedJsonGivesErrorsNotCrashes) {
  const std::string path = format("mutated.img", kPbkdf2Fast);
  ASSERT_NO_FATAL_FAILURE(add_key(path, 1));
  const auto pristine = read_bytes(path, 4096, 16384 - 4096);
  const size_t text_size = json_text_at(path, 0, 16384).size();
  std::mt19937 random(1234);
  const char alphabet[] =
      "{}[]\",:0123456789-+.eE \\u\x01\xff"
      "abc";
  int accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    auto area = pristine;
    const int edits = 1 + static_cast<int>(random() % 3);
    for (int i = 0; i < edits; ++i) {
      area[random() % text_size] = static_cast<uint8_t>(alphabet[random() % (sizeof alphabet - 1)]);
    }
    auto parsed = parse_luks2_metadata(area, 16384);
    if (parsed) {
      ++accepted;
      EXPECT_TRUE(luks2_json_area(*parsed));
    } else {
      EXPECT_TRUE(parsed.error().is(Errc::bad_header) || parsed.error().is(Errc::unsupported) ||
                  parsed.error().is(Errc::no_space))
          << parsed.error().message();
      EXPECT_FALSE(parsed.error().message().empty());
    }
  }
  EXPECT_LT(accepted, 3000);
}

TEST_F(Luks2HeaderTest, UnknownMembersAreKeptInPlace) {
  const std::string path = format("unknown.img", kPbkdf2Fast);
  ASSERT_NO_FATAL_FAILURE(rewrite_json(path, [](Json& j) {
    j["keyslots"]["0"]["x-note"] = Json{{"a", 1}};
    j["segments"]["0"]["flags"] = Json::array();
    j["tokens"]["0"] = Json{{"type", "x-custom"}, {"keyslots", {"0"}}, {"data", "kept"}};
    j["x-top"] = "kept too";
  }));
  const std::string text = json_text_at(path, 0, 16384);
  auto loaded = load(path);
  ASSERT_TRUE(loaded) << loaded.error().message();
  ASSERT_TRUE(store(path, loaded->header));
  EXPECT_EQ(json_text_at(path, 0, 16384), text);
  EXPECT_GE(epoch(path), 0);
  EXPECT_TRUE(opens(path, passphrase_));

  // A changed kdf type replaces the kdf object; the keyslot's other members stay.
  Luks2Keyslot& k = loaded->header.metadata.keyslots.at(0);
  k.kdf = KdfParams{KdfType::argon2id, "sha256", 4, 32, 1};
  const Json j = luks2_metadata_to_json(loaded->header.metadata);
  EXPECT_EQ(j["keyslots"]["0"]["kdf"].dump(),
            R"({"type":"argon2id","time":4,"memory":32,"cpus":1,"salt":")" + base64_encode(k.kdf_salt) + R"("})");
  EXPECT_EQ(j["keyslots"]["0"]["x-note"]["a"], 1);
}

// A header built from scratch: cryptsetup must accept it, add a keyslot to it from the volume key, and
// open that keyslot; we read the result back.
TEST_F(Luks2HeaderTest, NewHeaderIsAcceptedByCryptsetup) {
  auto fresh = new_luks2_header(16384, 16744448, "");
  ASSERT_TRUE(fresh) << fresh.error().message();
  Luks2Header& h = *fresh;
  EXPECT_EQ(h.binary.uuid.size(), 36u);
  EXPECT_EQ(h.binary.uuid[14], '4');
  EXPECT_NE(h.binary.salt, h.secondary_salt);

  std::vector<uint8_t> volume_key(64);
  ASSERT_TRUE(fill_random(volume_key));
  Luks2Digest digest;
  digest.segments = {0};
  digest.iterations = 1000;
  digest.salt.resize(32);
  ASSERT_TRUE(fill_random(digest.salt));
  digest.digest.resize(32);
  CryptoPP::PKCS5_PBKDF2_HMAC<CryptoPP::SHA256>().DeriveKey(digest.digest.data(), digest.digest.size(), 0,
                                                            volume_key.data(), volume_key.size(), digest.salt.data(),
                                                            digest.salt.size(), 1000);
  h.metadata.digests[0] = digest;
  Luks2Segment segment;
  segment.offset = 16 * kMiB;
  h.metadata.segments[0] = segment;

  const std::string path = dir_.file("fresh.img");
  make_sparse_file(path, kImageSize + kMiB);
  ASSERT_TRUE(store(path, h));
  EXPECT_EQ(h.binary.seqid, 2u);
  EXPECT_EQ(epoch(path), 2);
  std::string uuid;
  ASSERT_EQ(run("cryptsetup luksUUID " + path, &uuid), 0);
  EXPECT_EQ(uuid, h.binary.uuid + "\n");

  const std::string key_file = dir_.file("volume.key");
  write_file(key_file, volume_key);
  ASSERT_TRUE(succeeds("cryptsetup luksAddKey " + std::string(kPbkdf2Fast) + " --key-size 512 --volume-key-file " +
                       key_file + " --new-keyfile " + passphrase_ + " " + path));
  EXPECT_TRUE(opens(path, passphrase_));

  auto loaded = load(path);
  ASSERT_TRUE(loaded) << loaded.error().message();
  ASSERT_EQ(loaded->header.metadata.keyslots.size(), 1u);
  // cryptsetup put the keyslot where our first-fit search would have.
  EXPECT_EQ(loaded->header.metadata.keyslots.at(0).area_offset,
            *luks2_find_free_area(h.metadata, 16384, luks2_keyslot_area_size(64, 4000)));
  EXPECT_EQ(loaded->header.binary.uuid, h.binary.uuid);
}

TEST_F(Luks2HeaderTest, WriteRefusesInvalidMetadataAndSmallImages) {
  auto fresh = new_luks2_header(16384, 16744448, "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0");
  ASSERT_TRUE(fresh) << fresh.error().message();
  EXPECT_EQ(fresh->binary.uuid, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");

  const std::string path = dir_.file("small.img");
  make_sparse_file(path, kImageSize);
  // No segment yet: invalid, and nothing is written.
  auto refused = store(path, *fresh);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(Errc::failure)) << refused.error().message();
  EXPECT_EQ(read_bytes(path, 0, 6), std::vector<uint8_t>(6, 0));

  Luks2Digest digest;
  digest.segments = {0};
  digest.salt = std::vector<uint8_t>(32, 1);
  digest.digest = std::vector<uint8_t>(32, 2);
  fresh->metadata.digests[0] = digest;
  fresh->metadata.segments[0].offset = 16 * kMiB;
  const std::string tiny = dir_.file("tiny.img");
  make_sparse_file(tiny, kMiB);
  auto too_small = store(tiny, *fresh);
  ASSERT_FALSE(too_small);
  EXPECT_TRUE(too_small.error().is(Errc::no_space)) << too_small.error().message();
  EXPECT_TRUE(store(path, *fresh));

  EXPECT_FALSE(new_luks2_header(20000, 16744448, ""));
  EXPECT_FALSE(new_luks2_header(16384, 1000, ""));
  EXPECT_FALSE(new_luks2_header(16384, 16744448, "not-a-uuid"));
}

TEST(Luks2FreeArea, FirstFitIn4KiBSteps) {
  Luks2Metadata m;
  m.config.json_size = 12288;
  m.config.keyslots_size = kMiB;
  const uint64_t begin = 32768;
  const uint64_t area = luks2_keyslot_area_size(64, 4000);
  EXPECT_EQ(area, 258048u);
  EXPECT_EQ(*luks2_find_free_area(m, 16384, area), begin);

  Luks2Keyslot k;
  k.area_offset = begin;
  k.area_size = area;
  m.keyslots[0] = k;
  EXPECT_EQ(*luks2_find_free_area(m, 16384, area), begin + area);
  k.area_offset = begin + 2 * area;
  m.keyslots[3] = k;
  EXPECT_EQ(*luks2_find_free_area(m, 16384, area), begin + area);  // the gap between them
  EXPECT_EQ(*luks2_find_free_area(m, 16384, 1), begin + area);     // rounded up to 4096
  EXPECT_EQ(*luks2_find_free_area(m, 16384, area + 1), begin + 3 * area);
  k.area_offset = begin + area;
  m.keyslots[1] = k;
  k.area_offset = begin + 3 * area;
  m.keyslots[2] = k;
  auto full = luks2_find_free_area(m, 16384, area);  // 1 MiB holds four such areas
  ASSERT_FALSE(full);
  EXPECT_TRUE(full.error().is(Errc::no_space));
  EXPECT_EQ(*luks2_find_free_area(m, 16384, 16384), begin + 4 * area);
  EXPECT_FALSE(luks2_find_free_area(m, 16384, 16384 + 1));
}

TEST(Luks2BinaryHeader, SerializesAndParsesTheDocumentedLayout) {
  Luks2BinaryHeader h;
  h.secondary = true;
  h.hdr_size = 32768;
  h.hdr_offset = 32768;
  h.seqid = 0x0102030405060708;
  h.label = "label";
  h.subsystem = "sub";
  h.uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
  h.salt.fill(0xaa);
  h.csum.fill(0xcc);
  auto bytes = serialize_luks2_binary_header(h);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(std::string(bytes->begin(), bytes->begin() + 6), std::string("SKUL\xba\xbe", 6));
  EXPECT_EQ((*bytes)[7], 2);
  EXPECT_EQ((*bytes)[16], 0x01);
  EXPECT_EQ((*bytes)[23], 0x08);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes->data() + 72)), "sha256");
  EXPECT_EQ((*bytes)[104], 0xaa);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes->data() + 168)), h.uuid);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes->data() + 208)), "sub");
  EXPECT_EQ((*bytes)[262], 0x80);
  EXPECT_EQ((*bytes)[448], 0xcc);
  EXPECT_EQ((*bytes)[512], 0);

  auto parsed = parse_luks2_binary_header(*bytes, 32768);
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->seqid, h.seqid);
  EXPECT_EQ(parsed->label, "label");
  EXPECT_EQ(parsed->salt, h.salt);
  EXPECT_EQ(parsed->csum, h.csum);
  EXPECT_FALSE(parse_luks2_binary_header(*bytes, 0));      // secondary magic where the primary belongs
  EXPECT_FALSE(parse_luks2_binary_header(*bytes, 16384));  // hdr_offset elsewhere
  EXPECT_FALSE(parse_luks2_binary_header(std::span(*bytes).first(100), 32768));

  std::fill(bytes->begin() + 24, bytes->begin() + 72, uint8_t{'x'});
  auto unterminated = parse_luks2_binary_header(*bytes, 32768);
  ASSERT_FALSE(unterminated);
  EXPECT_NE(unterminated.error().message().find("label"), std::string::npos);

  h.label = std::string(48, 'x');
  EXPECT_FALSE(serialize_luks2_binary_header(h));
}

TEST(Base64, MatchesRfc4648AndRejectsNonCanonicalText) {
  const std::vector<std::pair<std::string, std::string>> vectors = {{"", ""},
                                                                    {"f", "Zg=="},
                                                                    {"fo", "Zm8="},
                                                                    {"foo", "Zm9v"},
                                                                    {"foob", "Zm9vYg=="},
                                                                    {"fooba", "Zm9vYmE="},
                                                                    {"foobar", "Zm9vYmFy"},
                                                                    {"\xff\xfe\xfd", "//79"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(bytes_of(plain)), encoded);
    const auto decoded = base64_decode(encoded);
    ASSERT_TRUE(decoded.has_value()) << encoded;
    EXPECT_EQ(std::string(decoded->begin(), decoded->end()), plain);
  }
  for (const char* bad : {"Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "=Zm9", "Zg==Zg==", "Zm-v"}) {
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace rbdluks
