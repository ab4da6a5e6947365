// read_range: a minimal client of librbd_luks's C++ API (rbdluks::Image). Prints LENGTH plaintext
// bytes at OFFSET of an rbd-luks (or librbd native LUKS) image to standard output.
//
//   c++ -std=c++20 read_range.cc $(pkg-config --cflags --libs rbd_luks) -o read_range
//   ./read_range POOL IMAGE PASSPHRASE_FILE OFFSET LENGTH
//
// Errors come back as values (rbdluks::Result / Status, with a message for people), not exceptions.
#include <rados/librados.h>
#include <rbd_luks/image.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: read_range POOL IMAGE PASSPHRASE_FILE OFFSET LENGTH\n";
    return 2;
  }
  std::ifstream file(argv[3], std::ios::binary);
  if (!file) {
    std::cerr << "read_range: cannot open " << argv[3] << "\n";
    return 1;
  }
  std::vector<uint8_t> passphrase((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());

  rados_t cluster = nullptr;
  rados_ioctx_t io = nullptr;
  if (rados_create(&cluster, nullptr) < 0 || rados_conf_read_file(cluster, nullptr) < 0 || rados_connect(cluster) < 0 ||
      rados_ioctx_create(cluster, argv[1], &io) < 0) {
    std::cerr << "read_range: cannot reach pool " << argv[1] << "\n";
    return 1;
  }

  auto image = rbdluks::Image::open(io, argv[2], passphrase);
  std::fill(passphrase.begin(), passphrase.end(), 0);  // a real client keeps it in locked memory
  rados_ioctx_destroy(io);
  if (!image) {
    std::cerr << "read_range: " << image.error().message() << "\n";
    return 1;
  }
  std::vector<uint8_t> bytes(std::stoull(argv[5]));
  if (auto status = (*image)->read(std::stoull(argv[4]), bytes); !status) {
    std::cerr << "read_range: " << status.error().message() << "\n";
    return 1;
  }
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
  image->reset();  // closes the image before its cluster handle goes
  rados_shutdown(cluster);
  return 0;
}
