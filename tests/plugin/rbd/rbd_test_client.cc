// rbd_test_client: a second RBD client for the dispatch layer's tests, run by them as a process of
// its own (so the cluster sees another client, as it would another host). Pool "rbd", the cluster
// CEPH_CONF names, fast KDFs. Exit status 0 on success, 1 with a message on stderr otherwise.
//
//   rbd_test_client format IMAGE PASSPHRASE             a new LUKS2 header, as `rbd-luks format --force`
//   rbd_test_client add-keyslot IMAGE PASSPHRASE NEW    a keyslot for NEW, as `rbd-luks keyslot add`
//   rbd_test_client stress IMAGE SECONDS FIRST LAST MODEL
//       threads [FIRST, LAST) of the stress model (stress_model.h) on IMAGE, opened with the
//       fixtures' passphrase, for SECONDS; then the model goes to the file MODEL
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "encrypted_rbd_fixture.h"
#include "encrypted_rbd_image.h"
#include "luks_volume.h"
#include "random.h"
#include "rbd_image.h"
#include "stress_model.h"

namespace rbdluks::testing {
namespace {

KdfRequest fast_kdf() { return {.type = KdfType::pbkdf2, .force_iterations = 1000}; }

Result<std::unique_ptr<RbdImage>> open_image(const std::string& name) {
  RL_ASSIGN(auto connection, RbdConnection::connect({}));
  return open_rbd_image(connection, RbdImageSpec{kPool, "", name, std::nullopt}, OpenMode::read_write);
}

Status format(const std::string& name, const std::string& passphrase) {
  RL_ASSIGN(auto image, open_image(name));
  RL_ASSIGN(auto header_lock, image->lock_header("rbd_test_client format"));
  FormatOptions options;
  options.data_offset = 16 * kMiB;
  options.kdf = fast_kdf();
  std::vector<uint8_t> key(options.key_bytes);
  RL_TRY(fill_random(key));
  RL_TRY(format_luks(*image, options, key, bytes_of(passphrase)));
  return header_lock->release();
}

Status add_keyslot(const std::string& name, const std::string& passphrase, const std::string& new_passphrase) {
  RL_ASSIGN(auto image, open_image(name));
  RL_ASSIGN(auto header_lock, image->lock_header("rbd_test_client add-keyslot"));
  RL_ASSIGN(auto volume, load_luks(*image));
  RL_ASSIGN(auto key, volume->open(bytes_of(passphrase)));
  RL_TRY(volume->add_keyslot(key.volume_key.span(), bytes_of(new_passphrase), fast_kdf()));
  return header_lock->release();
}

Status stress(const std::string& name, int seconds, int first, int last, const std::string& model_file) {
  RL_ASSIGN(auto connection, RbdConnection::connect({}));
  RL_ASSIGN(auto pool, connection->open_pool(kPool, ""));
  RL_ASSIGN(auto image, EncryptedRbdImage::open(pool.get(), name, std::nullopt, false, bytes_of(kPassphrase)));
  Stress model(*image);
  run_stress_threads(model, first, last, seconds);
  std::ofstream out(model_file, std::ios::binary);
  out.write(reinterpret_cast<const char*>(model.model().data()), static_cast<std::streamsize>(model.model().size()));
  if (!out.flush()) return Error(Errc::failure, "write " + model_file);
  if (model.failures() != 0) return Error(Errc::failure, model.first_failure());
  return {};
}

Status run(const std::vector<std::string>& args) {
  if (args.size() == 3 && args[0] == "format") return format(args[1], args[2]);
  if (args.size() == 4 && args[0] == "add-keyslot") return add_keyslot(args[1], args[2], args[3]);
  if (args.size() == 6 && args[0] == "stress") {
    return stress(args[1], std::stoi(args[2]), std::stoi(args[3]), std::stoi(args[4]), args[5]);
  }
  return Error(Errc::usage,
               "usage: rbd_test_client format IMAGE PASS | add-keyslot IMAGE PASS NEW | "
               "stress IMAGE SECONDS FIRST LAST MODEL");
}

}  // namespace
}  // namespace rbdluks::testing

int main(int argc, char** argv) {
  const rbdluks::Status status = rbdluks::testing::run(std::vector<std::string>(argv + 1, argv + argc));
  if (status) return 0;
  std::fprintf(stderr, "rbd_test_client: %s\n", status.error().message().c_str());
  return 1;
}
