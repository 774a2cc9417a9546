// Runs a harness's LLVMFuzzerTestOneInput over files, without libFuzzer: the regression inputs and
// the seed corpus in the ordinary build (any compiler), so a crash once found stays fixed.
//
//   fuzz_replay_<harness> FILE|DIRECTORY...
//
// A directory means every regular file in it, in name order, but for dot files (.gitkeep). A crash or a failed check ends the
// process (the file being run is printed first); otherwise exit 0 with a count.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_check.h"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg(argv[i]);
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> in_dir;
      for (const auto& entry : fs::directory_iterator(arg))
        if (entry.is_regular_file() && entry.path().filename().string().front() != '.')
          in_dir.push_back(entry.path());
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (fs::is_regular_file(arg, ec)) {
      files.push_back(arg);
    } else {
      std::cerr << argv[0] << ": " << arg.string() << ": not a file or directory\n";
      return 2;
    }
  }
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::cerr << argv[0] << ": cannot read " << file.string() << "\n";
      return 2;
    }
    std::cerr << "running " << file.string() << " (" << bytes.size() << " bytes)\n";
    // A copy of exactly the input's size, so AddressSanitizer sees a read past its end.
    std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  std::cout << argv[0] << ": " << files.size() << " inputs ran without a crash\n";
  return 0;
}
