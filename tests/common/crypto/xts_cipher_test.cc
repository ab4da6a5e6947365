// AES-XTS backends: IEEE 1619-2007 Annex B vectors, sector numbering and a cross-check of
// multi-sector tweak counting against Python's `cryptography` (OpenSSL), each for every backend this
// CPU supports; concurrency, and key-size errors.
#include "xts_cipher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace rbdluks {
namespace {

std::vector<uint8_t> from_hex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

std::string hex(std::span<const uint8_t> bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (const uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::unique_ptr<XtsCipher> cipher_for(std::string_view key_hex, CipherBackend backend = CipherBackend::best) {
  auto cipher = make_xts_cipher(from_hex(key_hex), backend);
  EXPECT_TRUE(cipher.ok());
  return cipher.ok() ? std::move(cipher).value() : nullptr;
}

// IEEE 1619-2007 Annex B. Vectors 4-5 are consecutive data units with the same key (vector 5's
// plaintext is vector 4's ciphertext); 10-11 are AES-256. All use 512-byte data units numbered like
// our 512-byte sectors, so the data unit sequence number is the tweak (first_iv).
constexpr const char* kKey128 = "2718281828459045235360287471352631415926535897932384626433832795";
constexpr const char* kKey256 =
    "2718281828459045235360287471352662497757247093699959574966967627"
    "3141592653589793238462643383279502884197169399375105820974944592";
constexpr const char* kVector4Ciphertext =
    "27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89c"
    "c78cf7f5e543445f8333d8fa7f56000005279fa5d8b5e4ad40e736ddb4d35412"
    "328063fd2aab53e5ea1e0a9f332500a5df9487d07a5c92cc512c8866c7e860ce"
    "93fdf166a24912b422976146ae20ce846bb7dc9ba94a767aaef20c0d61ad0265"
    "5ea92dc4c4e41a8952c651d33174be51a10c421110e6d81588ede82103a252d8"
    "a750e8768defffed9122810aaeb99f9172af82b604dc4b8e51bcb08235a6f434"
    "1332e4ca60482a4ba1a03b3e65008fc5da76b70bf1690db4eae29c5f1badd03c"
    "5ccf2a55d705ddcd86d449511ceb7ec30bf12b1fa35b913f9f747a8afd1b130e"
    "94bff94effd01a91735ca1726acd0b197c4e5b03393697e126826fb6bbde8ecc"
    "1e08298516e2c9ed03ff3c1b7860f6de76d4cecd94c8119855ef5297ca67e9f3"
    "e7ff72b1e99785ca0a7e7720c5b36dc6d72cac9574c8cbbc2f801e23e56fd344"
    "b07f22154beba0f08ce8891e643ed995c94d9a69c9f1b5f499027a78572aeebd"
    "74d20cc39881c213ee770b1010e4bea718846977ae119f7a023ab58cca0ad752"
    "afe656bb3c17256a9f6e9bf19fdd5a38fc82bbe872c5539edb609ef4f79c203e"
    "bb140f2e583cb2ad15b4aa5b655016a8449277dbd477ef2c8d6c017db738b18d"
    "eb4a427d1923ce3ff262735779a418f20a282df920147beabe421ee5319d0568";
constexpr const char* kVector5Ciphertext =
    "264d3ca8512194fec312c8c9891f279fefdd608d0c027b60483a3fa811d65ee5"
    "9d52d9e40ec5672d81532b38b6b089ce951f0f9c35590b8b978d175213f329bb"
    "1c2fd30f2f7f30492a61a532a79f51d36f5e31a7c9a12c286082ff7d2394d18f"
    "783e1a8e72c722caaaa52d8f065657d2631fd25bfd8e5baad6e527d763517501"
    "c68c5edc3cdd55435c532d7125c8614deed9adaa3acade5888b87bef641c4c99"
    "4c8091b5bcd387f3963fb5bc37aa922fbfe3df4e5b915e6eb514717bdd2a7407"
    "9a5073f5c4bfd46adf7d282e7a393a52579d11a028da4d9cd9c77124f9648ee3"
    "83b1ac763930e7162a8d37f350b2f74b8472cf09902063c6b32e8c2d9290cefb"
    "d7346d1c779a0df50edcde4531da07b099c638e83a755944df2aef1aa31752fd"
    "323dcb710fb4bfbb9d22b925bc3577e1b8949e729a90bbafeacf7f7879e7b114"
    "7e28ba0bae940db795a61b15ecf4df8db07b824bb062802cc98a9545bb2aaeed"
    "77cb3fc6db15dcd7d80d7d5bc406c4970a3478ada8899b329198eb61c193fb62"
    "75aa8ca340344a75a862aebe92eee1ce032fd950b47d7704a3876923b4ad6284"
    "4bf4a09c4dbe8b4397184b7471360c9564880aedddb9baa4af2e75394b08cd32"
    "ff479c57a07d3eab5d54de5f9738b8d27f27a9f0ab11799d7b7ffefb2704c95c"
    "6ad12c39f1e867a4b7b1d7818a4b753dfd2a89ccb45e001a03a867b187f225dd";
constexpr const char* kVector10Ciphertext =
    "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
    "5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd"
    "5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
    "c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca"
    "2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0"
    "b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
    "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec"
    "583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a"
    "84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
    "505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae"
    "9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29"
    "a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
    "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f"
    "645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed4385"
    "1ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
    "773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151";
constexpr const char* kVector11Ciphertext =
    "77a31251618a15e6b92d1d66dffe7b50b50bad552305ba0217a610688eff7e11"
    "e1d0225438e093242d6db274fde801d4cae06f2092c728b2478559df58e837c2"
    "469ee4a4fa794e4bbc7f39bc026e3cb72c33b0888f25b4acf56a2a9804f1ce6d"
    "3d6e1dc6ca181d4b546179d55544aa7760c40d06741539c7e3cd9d2f6650b201"
    "3fd0eeb8c2b8e3d8d240ccae2d4c98320a7442e1c8d75a42d6e6cfa4c2eca179"
    "8d158c7aecdf82490f24bb9b38e108bcda12c3faf9a21141c3613b58367f922a"
    "aa26cd22f23d708dae699ad7cb40a8ad0b6e2784973dcb605684c08b8d6998c6"
    "9aac049921871ebb65301a4619ca80ecb485a31d744223ce8ddc2394828d6a80"
    "470c092f5ba413c3378fa6054255c6f9df4495862bbb3287681f931b687c888a"
    "bf844dfc8fc28331e579928cd12bd2390ae123cf03818d14dedde5c0c24c8ab0"
    "18bfca75ca096f2d531f3d1619e785f1ada437cab92e980558b3dce1474afb75"
    "bfedbf8ff54cb2618e0244c9ac0d3c66fb51598cd2db11f9be39791abe447c63"
    "094f7c453b7ff87cb5bb36b7c79efb0872d17058b83b15ab0866ad8a58656c5a"
    "7e20dbdf308b2461d97c0ec0024a2715055249cf3b478ddd4740de654f75ca68"
    "6e0d7345c69ed50cdc2a8b332b1f8824108ac937eb050585608ee734097fc090"
    "54fbff89eeaeea791f4a7ab1f9868294a4f9e27b42af8100cb9d59cef9645803";

std::vector<uint8_t> counting_512() {
  std::vector<uint8_t> data(512);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i);
  return data;
}

// Vectors 1-3 have 32-byte data units. XTS without ciphertext stealing treats blocks independently,
// so they are the first 32 bytes of a 512-byte sector with the same tweak.
void check_short_vector(CipherBackend backend, std::string_view key, uint64_t dusn, std::string_view plaintext,
                        std::string_view ciphertext) {
  const auto cipher = cipher_for(key, backend);
  ASSERT_TRUE(cipher);
  std::vector<uint8_t> sector(512, 0xa5);
  const std::vector<uint8_t> pt = from_hex(plaintext);
  std::copy(pt.begin(), pt.end(), sector.begin());
  cipher->encrypt(sector, 512, dusn);
  EXPECT_EQ(hex(std::span(sector).first(32)), ciphertext);
  cipher->decrypt(sector, 512, dusn);
  EXPECT_EQ(hex(std::span(sector).first(32)), plaintext);
}

TEST(XtsCipher, Ieee1619ShortVectors) {
  for (const CipherBackend backend : supported_cipher_backends()) {
    SCOPED_TRACE(cipher_backend_id(backend));
    check_short_vector(backend, "0000000000000000000000000000000000000000000000000000000000000000", 0,
                       "0000000000000000000000000000000000000000000000000000000000000000",
                       "917cf69ebd68b2ec9b9fe9a3eadda692cd43d2f59598ed858c02c2652fbf922e");
    check_short_vector(backend, "1111111111111111111111111111111122222222222222222222222222222222", 0x3333333333,
                       "4444444444444444444444444444444444444444444444444444444444444444",
                       "c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0");
    check_short_vector(backend, "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f022222222222222222222222222222222", 0x3333333333,
                       "4444444444444444444444444444444444444444444444444444444444444444",
                       "af85336b597afc1a900b2eb21ec949d292df4c047e0b21532186a5971a227a89");
  }
}

TEST(XtsCipher, Ieee1619Vectors4And5) {
  for (const CipherBackend backend : supported_cipher_backends()) {
    SCOPED_TRACE(cipher_backend_id(backend));
    const auto cipher = cipher_for(kKey128, backend);
    ASSERT_TRUE(cipher);
    std::vector<uint8_t> data = counting_512();
    cipher->encrypt(data, 512, 0);
    EXPECT_EQ(hex(data), kVector4Ciphertext);
    cipher->encrypt(data, 512, 1);
    EXPECT_EQ(hex(data), kVector5Ciphertext);
    cipher->decrypt(data, 512, 1);
    EXPECT_EQ(hex(data), kVector4Ciphertext);
    cipher->decrypt(data, 512, 0);
    EXPECT_EQ(data, counting_512());
  }
}

TEST(XtsCipher, Ieee1619Vectors10And11Aes256) {
  for (const CipherBackend backend : supported_cipher_backends()) {
    SCOPED_TRACE(cipher_backend_id(backend));
    const auto cipher = cipher_for(kKey256, backend);
    ASSERT_TRUE(cipher);
    std::vector<uint8_t> data = counting_512();
    cipher->encrypt(data, 512, 0xff);
    EXPECT_EQ(hex(data), kVector10Ciphertext);
    cipher->decrypt(data, 512, 0xff);
    EXPECT_EQ(data, counting_512());
    cipher->encrypt(data, 512, 0xffff);
    EXPECT_EQ(hex(data), kVector11Ciphertext);
    cipher->decrypt(data, 512, 0xffff);
    EXPECT_EQ(data, counting_512());
  }
}

TEST(XtsCipher, ConsecutiveSectorsGetConsecutiveTweaks) {
  for (const CipherBackend backend : supported_cipher_backends()) {
    SCOPED_TRACE(cipher_backend_id(backend));
    // One call over two 512-byte sectors from iv 0 must equal vectors 4 and 5 (data units 0 and 1).
    const auto cipher = cipher_for(kKey128, backend);
    ASSERT_TRUE(cipher);
    std::vector<uint8_t> data = counting_512();
    const std::vector<uint8_t> second = from_hex(kVector4Ciphertext);
    data.insert(data.end(), second.begin(), second.end());
    cipher->encrypt(data, 512, 0);
    EXPECT_EQ(hex(data), std::string(kVector4Ciphertext) + kVector5Ciphertext);

    // A 1024-byte sector is one data unit: its second half continues the first's tweak sequence
    // instead of starting over at data unit 1.
    std::vector<uint8_t> big = counting_512();
    big.insert(big.end(), second.begin(), second.end());
    cipher->encrypt(big, 1024, 0);
    EXPECT_EQ(hex(std::span(big).first(512)), kVector4Ciphertext);
    EXPECT_NE(hex(std::span(big).subspan(512)), kVector5Ciphertext);
  }
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "xts_test.XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

void write_file(const std::filesystem::path& path, std::span<const uint8_t> bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// dm-crypt's plain64 convention, written independently: each sector is its own XTS data unit whose
// tweak is (byte offset / 512) as a 16-byte little-endian number.
constexpr const char* kPythonXts = R"(
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
args = sys.argv[1:]
for k in range(0, len(args), 5):  # key_hex sector_size first_iv plaintext_path ciphertext_path
    key, sector, first_iv = bytes.fromhex(args[k]), int(args[k + 1]), int(args[k + 2])
    data = open(args[k + 3], 'rb').read()
    out = bytearray()
    for i in range(0, len(data), sector):
        tweak = (first_iv + i // 512).to_bytes(16, 'little')
        enc = Cipher(algorithms.AES(key), modes.XTS(tweak)).encryptor()
        out += enc.update(data[i:i + sector]) + enc.finalize()
    open(args[k + 4], 'wb').write(out)
)";

TEST(XtsCipher, MultiSectorTweaksMatchPythonCryptography) {
  TempDir dir;
  const std::filesystem::path script = dir.path() / "xts.py";
  const std::filesystem::path plain = dir.path() / "plain";
  write_file(script, std::span(reinterpret_cast<const uint8_t*>(kPythonXts), std::strlen(kPythonXts)));
  std::vector<uint8_t> plaintext(64 * 1024);
  for (size_t i = 0; i < plaintext.size(); ++i) plaintext[i] = static_cast<uint8_t>(i * 131 + (i >> 9));
  write_file(plain, plaintext);
  struct Case {
    size_t key_bytes;
    size_t sector_size;
    uint64_t first_iv;
    std::vector<uint8_t> key;
    std::filesystem::path expected;
  };
  std::vector<Case> cases = {{64, 512, 0, {}, {}},
                             {64, 4096, 8 * 1000, {}, {}},
                             {32, 4096, (uint64_t{1} << 40) - 8, {}, {}},
                             {32, 512, 0xffffffffULL, {}, {}}};
  std::string command = "/usr/bin/python3 " + script.string();
  for (size_t n = 0; n < cases.size(); ++n) {
    Case& c = cases[n];
    for (size_t i = 0; i < c.key_bytes; ++i) c.key.push_back(static_cast<uint8_t>(i * 7 + n + 1));
    c.expected = dir.path() / ("cipher" + std::to_string(n));
    command += " " + hex(c.key) + " " + std::to_string(c.sector_size) + " " + std::to_string(c.first_iv) + " " +
               plain.string() + " " + c.expected.string();
  }
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  for (const CipherBackend backend : supported_cipher_backends()) {
    for (const Case& c : cases) {
      const auto cipher = cipher_for(hex(c.key), backend);
      ASSERT_TRUE(cipher);
      std::vector<uint8_t> data = plaintext;
      cipher->encrypt(data, c.sector_size, c.first_iv);
      EXPECT_TRUE(data == read_file(c.expected))
          << cipher_backend_id(backend) << " sector " << c.sector_size << " iv " << c.first_iv;
      cipher->decrypt(data, c.sector_size, c.first_iv);
      EXPECT_TRUE(data == plaintext) << cipher_backend_id(backend);
    }
  }
}

TEST(XtsCipher, ConcurrentCallsAgreeWithSequentialOnes) {
  const auto cipher = cipher_for(kKey256);
  ASSERT_TRUE(cipher);
  constexpr int kThreads = 4;
  std::vector<std::vector<uint8_t>> expected(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    expected[t].assign(16 * 4096, static_cast<uint8_t>(t + 1));
    cipher->encrypt(expected[t], 4096, 8 * t);
  }
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 200; ++round) {
        std::vector<uint8_t> data(16 * 4096, static_cast<uint8_t>(t + 1));
        cipher->encrypt(data, 4096, 8 * t);
        if (data != expected[t]) ++mismatches[t];
        cipher->decrypt(data, 4096, 8 * t);
        if (data != std::vector<uint8_t>(16 * 4096, static_cast<uint8_t>(t + 1))) ++mismatches[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(XtsCipher, KeySizeMustBe256Or512Bits) {
  for (const size_t size : {0, 16, 24, 48, 128}) {
    auto cipher = make_xts_cipher(std::vector<uint8_t>(size, 1));
    ASSERT_FALSE(cipher.ok()) << size;
    EXPECT_TRUE(cipher.error().is(Errc::unsupported));
  }
  auto cipher = make_xts_cipher(std::vector<uint8_t>(64, 1), CipherBackend::portable);
  ASSERT_TRUE(cipher.ok());
  EXPECT_FALSE((*cipher)->backend_name().empty());
}

}  // namespace
}  // namespace rbdluks
