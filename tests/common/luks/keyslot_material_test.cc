// Keyslot key material on a file image: round trips, the on-disk layout checked by an independent
// Python reader (XTS per 512-byte sector from tweak 0, then AF merge) and by cryptsetup in both
// directions on a LUKS1 image, area bounds, and wiping.
#include "keyslot_material.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "file_image.h"
#include "kdf.h"
#include "test_support.h"

namespace rbdluks {
namespace {

constexpr uint64_t kImageSize = 1 << 20;

// cryptsetup's LUKS2 layout for a 512-bit key: 4000 stripes need 256000 bytes, the area is 258048.
KeyMaterialLayout luks2_layout() {
  KeyMaterialLayout layout;
  layout.offset = 32768;
  layout.area_size = 258048;
  layout.key_bytes = 64;
  return layout;
}

class KeyslotMaterial : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("image");
    auto image = create_file_image(path_, kImageSize);
    ASSERT_TRUE(image.ok()) << image.error().message();
    image_ = std::move(image).value();
  }

  std::vector<uint8_t> read_raw(uint64_t offset, size_t size) {
    std::vector<uint8_t> out(size);
    EXPECT_TRUE(image_->read(offset, out).ok());
    return out;
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<RawImage> image_;
};

TEST_F(KeyslotMaterial, RoundTripsThroughAReopenedFile) {
  for (const auto& [key_bytes, af_hash] : {std::pair<size_t, const char*>{64, "sha256"}, {32, "sha1"}}) {
    KeyMaterialLayout layout = luks2_layout();
    layout.key_bytes = key_bytes;
    layout.af_hash = af_hash;
    const std::vector<uint8_t> derived = random_bytes(64);
    const std::vector<uint8_t> volume_key = random_bytes(key_bytes);
    ASSERT_TRUE(write_key_material(*image_, layout, derived, volume_key).ok());

    auto reopened = open_file_image(path_, OpenMode::read_only);
    ASSERT_TRUE(reopened.ok());
    auto key = read_key_material(**reopened, layout, derived);
    ASSERT_TRUE(key.ok()) << key.error().message();
    EXPECT_TRUE(key->equals(volume_key)) << af_hash;

    // Another passphrase's derived key yields some other candidate, which the digest check rejects.
    const std::vector<uint8_t> wrong = random_bytes(64);
    auto other = read_key_material(**reopened, layout, wrong);
    ASSERT_TRUE(other.ok());
    EXPECT_FALSE(other->equals(volume_key));
  }
}

// An independent reader of the layout cryptsetup uses: 512-byte XTS sectors, tweak from 0 at the
// area's start, then AF_merge with H(be32(i) || chunk) diffusion.
constexpr const char* kPythonReader = R"(
import hashlib, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
path, offset, size, key_bytes, stripes, hash_name, derived = sys.argv[1:8]
offset, size, key_bytes, stripes, derived = int(offset), int(size), int(key_bytes), int(stripes), bytes.fromhex(derived)
with open(path, 'rb') as f:
    f.seek(offset)
    area = f.read(size)
plain = b''
for s in range(0, size, 512):
    dec = Cipher(algorithms.AES(derived), modes.XTS((s // 512).to_bytes(16, 'little'))).decryptor()
    plain += dec.update(area[s:s + 512]) + dec.finalize()
digest = hashlib.new(hash_name).digest_size
def diffuse(block):
    return b''.join(hashlib.new(hash_name, (i // digest).to_bytes(4, 'big') + block[i:i + digest]).digest()[:len(block[i:i + digest])]
                    for i in range(0, len(block), digest))
acc = bytes(key_bytes)
for s in range(stripes - 1):
    acc = diffuse(bytes(a ^ b for a, b in zip(acc, plain[s * key_bytes:(s + 1) * key_bytes])))
last = plain[(stripes - 1) * key_bytes:stripes * key_bytes]
print(bytes(a ^ b for a, b in zip(acc, last)).hex())
)";

TEST_F(KeyslotMaterial, LayoutMatchesIndependentPythonReader) {
  const KeyMaterialLayout layout = luks2_layout();
  const std::vector<uint8_t> derived = random_bytes(64);
  const std::vector<uint8_t> volume_key = random_bytes(64);
  ASSERT_TRUE(write_key_material(*image_, layout, derived, volume_key).ok());

  const std::string args = path_ + " " + std::to_string(layout.offset) + " " + std::to_string(layout.encrypted_size()) +
                           " " + std::to_string(layout.key_bytes) + " " + std::to_string(layout.stripes) + " " +
                           layout.af_hash + " " + hex(derived);
  std::string python_key;
  ASSERT_EQ(run_python(dir_.file("reader.py"), kPythonReader, args, &python_key), 0) << args << "\n" << python_key;
  EXPECT_EQ(python_key, hex(volume_key) + "\n");
}

uint32_t be32_at(std::span<const uint8_t> bytes, size_t offset) {
  return uint32_t{bytes[offset]} << 24 | uint32_t{bytes[offset + 1]} << 16 | uint32_t{bytes[offset + 2]} << 8 |
         bytes[offset + 3];
}

std::string text_at(std::span<const uint8_t> bytes, size_t offset, size_t size) {
  const auto* start = reinterpret_cast<const char*>(bytes.data() + offset);
  return {start, strnlen(start, size)};
}

TEST_F(KeyslotMaterial, InteroperatesWithCryptsetupLuks1) {
  // The few LUKS1 header fields needed (cryptsetup's lib/luks1/luks.h): hashSpec at 72, keyBytes at
  // 108, mkDigest at 112, mkDigestSalt at 132, mkDigestIterations at 164; keyslot 0 at 208 with
  // iterations at +4, salt at +8, keyMaterialOffset (sectors) at +40 and stripes at +44.
  for (const auto& [key_bits, hash] : {std::pair<int, const char*>{512, "sha256"}, {256, "sha1"}}) {
    const std::vector<uint8_t> volume_key = random_bytes(static_cast<size_t>(key_bits / 8));
    const std::string key_file = dir_.file("volume.key");
    const std::string pass_file = dir_.file("pass");
    const std::string luks1_path = dir_.file("luks1.img");
    ASSERT_TRUE(create_file_image(luks1_path, 4 << 20).ok());  // room for LUKS1's 2 MiB payload offset
    write_file(key_file, volume_key);
    write_file(pass_file, bytes_of("cryptsetup's passphrase"));
    ASSERT_TRUE(
        succeeds("cryptsetup luksFormat --type luks1 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "
                 "--cipher aes-xts-plain64 --hash " +
                 std::string(hash) + " --key-size " + std::to_string(key_bits) + " --volume-key-file " + key_file +
                 " --key-file " + pass_file + " " + luks1_path));

    auto image = open_file_image(luks1_path, OpenMode::read_write);
    ASSERT_TRUE(image.ok());
    std::vector<uint8_t> header(592);
    ASSERT_TRUE((*image)->read(0, header).ok());
    ASSERT_EQ(text_at(header, 72, 32), hash);
    ASSERT_EQ(be32_at(header, 108), static_cast<uint32_t>(key_bits / 8));
    const KdfParams slot_kdf{.type = KdfType::pbkdf2, .hash = hash, .iterations = be32_at(header, 208 + 4)};
    const std::span<const uint8_t> slot_salt = std::span(header).subspan(208 + 8, 32);
    KeyMaterialLayout layout;
    layout.offset = uint64_t{be32_at(header, 208 + 40)} * 512;
    layout.stripes = be32_at(header, 208 + 44);
    layout.key_bytes = volume_key.size();
    layout.af_hash = hash;
    layout.area_size = layout.encrypted_size();

    // Read: cryptsetup's keyslot opens with our KDF, and the candidate passes LUKS1's digest.
    std::vector<uint8_t> derived(volume_key.size());
    ASSERT_TRUE(derive_key(slot_kdf, bytes_of("cryptsetup's passphrase"), slot_salt, derived).ok());
    auto key = read_key_material(**image, layout, derived);
    ASSERT_TRUE(key.ok()) << key.error().message();
    EXPECT_TRUE(key->equals(volume_key)) << hash;
    const KdfParams digest_kdf{.type = KdfType::pbkdf2, .hash = hash, .iterations = be32_at(header, 164)};
    std::vector<uint8_t> digest(20);
    ASSERT_TRUE(derive_key(digest_kdf, key->span(), std::span(header).subspan(132, 32), digest).ok());
    EXPECT_EQ(digest, std::vector<uint8_t>(header.begin() + 112, header.begin() + 132));

    // Write: key material we store under another passphrase (same slot salt) opens with cryptsetup,
    // which refused that passphrase before.
    write_file(pass_file, bytes_of("our passphrase"));
    const std::string test = "cryptsetup open --test-passphrase --key-file " + pass_file + " " + luks1_path;
    EXPECT_NE(run(test), 0) << test;
    ASSERT_TRUE(derive_key(slot_kdf, bytes_of("our passphrase"), slot_salt, derived).ok());
    ASSERT_TRUE(write_key_material(**image, layout, derived, volume_key).ok());
    image->reset();
    EXPECT_TRUE(succeeds(test));
  }
}

TEST_F(KeyslotMaterial, AreaTooSmallIsRefusedWithoutWriting) {
  KeyMaterialLayout layout = luks2_layout();
  layout.area_size = layout.encrypted_size() - 512;
  const std::vector<uint8_t> derived = random_bytes(64);
  const std::vector<uint8_t> volume_key = random_bytes(64);

  const Status st = write_key_material(*image_, layout, derived, volume_key);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.error().is(Errc::no_space));
  EXPECT_EQ(read_raw(layout.offset, layout.encrypted_size()), std::vector<uint8_t>(layout.encrypted_size(), 0));

  auto key = read_key_material(*image_, layout, derived);
  ASSERT_FALSE(key.ok());
  EXPECT_TRUE(key.error().is(Errc::bad_header));

  // Stripe counts from a corrupt header must not overflow the size computation.
  layout.stripes = UINT32_MAX;
  layout.key_bytes = SIZE_MAX / 2;
  key = read_key_material(*image_, layout, derived);
  ASSERT_FALSE(key.ok());
  EXPECT_TRUE(key.error().is(Errc::bad_header));
  layout.stripes = 0;
  EXPECT_FALSE(read_key_material(*image_, layout, derived).ok());
}

TEST_F(KeyslotMaterial, RejectsBadKeysAndCiphers) {
  KeyMaterialLayout layout = luks2_layout();
  const std::vector<uint8_t> volume_key = random_bytes(64);

  EXPECT_FALSE(write_key_material(*image_, layout, random_bytes(64), random_bytes(32)).ok());  // not key_bytes

  Status st = write_key_material(*image_, layout, random_bytes(48), volume_key);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.error().is(Errc::unsupported));

  layout.cipher = "aes-cbc-essiv:sha256";
  st = write_key_material(*image_, layout, random_bytes(32), volume_key);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.error().is(Errc::unsupported));
  auto key = read_key_material(*image_, layout, random_bytes(32));
  ASSERT_FALSE(key.ok());
  EXPECT_TRUE(key.error().is(Errc::unsupported));

  // An area that passes the end of the image is an I/O error, not a short read.
  layout = luks2_layout();
  layout.offset = kImageSize - 4096;
  EXPECT_FALSE(read_key_material(*image_, layout, random_bytes(64)).ok());
}

TEST_F(KeyslotMaterial, WipeDestroysTheWholeAreaOnly) {
  const KeyMaterialLayout layout = luks2_layout();
  const std::vector<uint8_t> derived = random_bytes(64);
  const std::vector<uint8_t> volume_key = random_bytes(64);
  ASSERT_TRUE(write_key_material(*image_, layout, derived, volume_key).ok());
  const std::vector<uint8_t> before = read_raw(layout.offset, layout.area_size);

  ASSERT_TRUE(wipe_key_material(*image_, layout.offset, layout.area_size).ok());
  const std::vector<uint8_t> after = read_raw(layout.offset, layout.area_size);
  EXPECT_NE(after, before);
  // The tail of the area past the key material was never written, so it must have changed too.
  const size_t tail = layout.area_size - layout.encrypted_size();
  EXPECT_NE(std::vector<uint8_t>(after.end() - tail, after.end()), std::vector<uint8_t>(tail, 0));
  EXPECT_EQ(read_raw(layout.offset - 4096, 4096), std::vector<uint8_t>(4096, 0));
  EXPECT_EQ(read_raw(layout.offset + layout.area_size, 4096), std::vector<uint8_t>(4096, 0));

  auto key = read_key_material(*image_, layout, derived);
  ASSERT_TRUE(key.ok());
  EXPECT_FALSE(key->equals(volume_key));
}

}  // namespace
}  // namespace rbdluks
