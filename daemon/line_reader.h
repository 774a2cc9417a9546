// Reads JSON lines from a file (plain or gzip) or stdin, handing out each line in place with
// readable padding after it, so the decoder need not copy. A plain file is mapped into memory
// whole (no copy through a buffer: a tenth of a replay's time went to read()); gzip and stdin are
// read in large blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace portalwatch {

class LineReader {
 public:
  /// Opens path ("-" is stdin). Returns nullptr and sets error on failure.
  static std::unique_ptr<LineReader> open(const std::string& path, std::size_t max_line_bytes, std::string& error);
  ~LineReader();

  struct Line {
    std::string_view text;   ///< without the newline (and a trailing '\r'); padding follows it
    bool oversize = false;   ///< longer than max_line_bytes: text is empty, the line was skipped
    std::uint64_t number = 0;  ///< 1-based line number
  };
  /// The next non-empty line; false at end of input or on a read error (see error()).
  bool next(Line& line);
  const std::string& error() const { return error_; }
  /// Bytes of the underlying file read so far and its size (0 when unknown, e.g. stdin).
  std::uint64_t position() const;
  std::uint64_t size() const { return size_; }

  static constexpr std::size_t kPadding = 64;

 private:
  LineReader() = default;
  bool fill();

  bool map(int fd, std::size_t file_bytes);
  char* data() { return map_ ? map_ : buf_.data(); }

  void* gz_ = nullptr;  // gzFile
  std::vector<char> buf_;
  char* map_ = nullptr;        // the file mapped whole (then buf_ is unused), padding after it
  std::size_t map_bytes_ = 0;  // the mapping's length
  std::size_t released_ = 0;   // the mapping's first bytes already given back (read and done)
  std::size_t begin_ = 0, end_ = 0;
  std::size_t max_line_bytes_ = 0;
  std::uint64_t size_ = 0;
  std::uint64_t line_number_ = 0;
  bool eof_ = false;
  std::string error_;
};

}  // namespace portalwatch
