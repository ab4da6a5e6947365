// The rbd-luks commands. Each takes the parsed command line and the positional arguments after its
// own name, and returns a Status whose Errc decides the exit code (docs/cli.md).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "command_line.h"
#include "result.h"

namespace rbdluks::cli {

using Args = std::vector<std::string>;

Status cmd_create(const CommandLine& cl, const Args& args);
Status cmd_format(const CommandLine& cl, const Args& args);
Status cmd_dump(const CommandLine& cl, const Args& args);
Status cmd_check(const CommandLine& cl, const Args& args);
Status cmd_keyslot(const CommandLine& cl, const Args& args);
Status cmd_key_ref(const CommandLine& cl, const Args& args);
Status cmd_preload(const CommandLine& cl, const Args& args);
Status cmd_nbd_server(const CommandLine& cl, const Args& args);
Status cmd_import(const CommandLine& cl, const Args& args);
Status cmd_export(const CommandLine& cl, const Args& args);
Status cmd_du(const CommandLine& cl, const Args& args);
Status cmd_read(const CommandLine& cl, const Args& args);
Status cmd_write(const CommandLine& cl, const Args& args);
Status cmd_resize(const CommandLine& cl, const Args& args);
Status cmd_reencrypt(const CommandLine& cl, const Args& args);
// `reencrypt TARGET --online`: online_reencrypt_command.cc.
Status online_reencrypt(const CommandLine& cl, const std::string& spec);
Status cmd_encrypt(const CommandLine& cl, const Args& args);
Status cmd_decrypt(const CommandLine& cl, const Args& args);
Status cmd_bench(const CommandLine& cl, const Args& args);
// `bench io`, in bench_io.cc; args[0] is "io".
Status bench_io(const CommandLine& cl, const Args& args);

// A usage error unless args has between min and max entries.
Status expect_args(const Args& args, size_t min, size_t max, const char* synopsis);

// Informational output for the operator on stderr, suppressed by --quiet; escaped (printable()).
void inform(const CommandLine& cl, const std::string& line);

// document on stdout, indented; bytes that are not UTF-8 (a header label, image metadata) become
// U+FFFD rather than aborting the dump.
void print_json(const nlohmann::json& document);

}  // namespace rbdluks::cli
