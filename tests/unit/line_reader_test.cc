// The replay line reader: plain and gzip files, CRLF, empty lines, oversize lines skipped whole.
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "daemon/line_reader.h"

namespace portalwatch {

namespace {

std::string temp_path(const char* suffix) {
  return "/tmp/portalwatch-lr-" + std::to_string(getpid()) + suffix;
}

std::vector<LineReader::Line> read_all(const std::string& path, std::size_t max, std::vector<std::string>& texts) {
  std::string err;
  auto r = LineReader::open(path, max, err);
  REQUIRE_MESSAGE(r, err);
  std::vector<LineReader::Line> out;
  LineReader::Line l;
  while (r->next(l)) {
    out.push_back(l);
    texts.emplace_back(l.text);
    // Padding after each line is readable (the decoder relies on it).
    volatile char c = l.text.data() ? l.text.data()[l.text.size() + LineReader::kPadding - 1] : 0;
    (void)c;
  }
  CHECK(r->error().empty());
  return out;
}

}  // namespace

TEST_CASE("line reader: lines, CRLF, blank lines, no final newline") {
  const auto path = temp_path(".jsonl");
  {
    std::ofstream f(path, std::ios::binary);
    f << "{\"a\":1}\r\n\n{\"b\":2}\n   \n{\"c\":3}";
  }
  std::vector<std::string> texts;
  const auto lines = read_all(path, 1024, texts);
  std::remove(path.c_str());
  REQUIRE(texts.size() == 4);
  CHECK(texts[0] == "{\"a\":1}");
  CHECK(texts[1] == "{\"b\":2}");
  CHECK(texts[2] == "   ");
  CHECK(texts[3] == "{\"c\":3}");
  CHECK(lines[0].number == 1);
  CHECK(lines[1].number == 3);
  CHECK(lines[3].number == 5);
}

TEST_CASE("line reader: an oversize line is reported and skipped without stopping") {
  const auto path = temp_path(".big");
  {
    std::ofstream f(path, std::ios::binary);
    f << "short\n" << std::string(10 << 20, 'x') << "\nafter\n";
  }
  std::vector<std::string> texts;
  const auto lines = read_all(path, 4096, texts);
  std::remove(path.c_str());
  REQUIRE(lines.size() == 3);
  CHECK(texts[0] == "short");
  CHECK(lines[1].oversize);
  CHECK(lines[1].number == 2);
  CHECK(texts[2] == "after");
  CHECK(lines[2].number == 3);
}

TEST_CASE("line reader: gzip files read the same as plain ones") {
  const auto path = temp_path(".jsonl.gz");
  gzFile gz = gzopen(path.c_str(), "wb");
  REQUIRE(gz);
  std::string all;
  for (int i = 0; i < 100000; ++i) all += "{\"n\":" + std::to_string(i) + "}\n";
  gzwrite(gz, all.data(), static_cast<unsigned>(all.size()));
  gzclose(gz);
  std::vector<std::string> texts;
  read_all(path, 1024, texts);
  std::remove(path.c_str());
  REQUIRE(texts.size() == 100000);
  CHECK(texts[0] == "{\"n\":0}");
  CHECK(texts[99999] == "{\"n\":99999}");
}

TEST_CASE("line reader: a missing file is an error with its reason") {
  std::string err;
  auto r = LineReader::open("/nonexistent/x.jsonl", 1024, err);
  CHECK_FALSE(r);
  CHECK(err == "/nonexistent/x.jsonl: No such file or directory");
}

TEST_CASE("line reader: a plain file that shrinks while it is read stops with an error, not SIGBUS") {
  // Plain files are mapped into memory; truncated under the reader, the lost pages would raise
  // SIGBUS at the next read. The reader puts zero pages there instead and reports it.
  const std::string path = temp_path("-shrinks.jsonl");
  {
    std::ofstream f(path);
    const std::string line(200, 'x');
    for (int i = 0; i < 20000; ++i) f << "{\"n\":" << i << ",\"pad\":\"" << line << "\"}\n";  // about 4.5 MB
  }
  std::string err;
  auto r = LineReader::open(path, 1 << 16, err);
  REQUIRE_MESSAGE(r, err);
  LineReader::Line l;
  int lines = 0;
  while (lines < 100 && r->next(l)) ++lines;
  REQUIRE(lines == 100);
  REQUIRE(truncate(path.c_str(), 4096) == 0);  // everything after the first page goes
  std::uint64_t seen = 0;
  while (r->next(l)) {
    for (char c : l.text) seen += static_cast<unsigned char>(c);  // touches what is left
    ++lines;
  }
  CHECK(lines < 20000);
  CHECK(r->error().find("shrank") != std::string::npos);
  // Reading again from scratch sees the short file.
  std::vector<std::string> texts;
  read_all(path, 1 << 16, texts);
  CHECK(texts.size() < 20);
  std::remove(path.c_str());
  (void)seen;
}

TEST_CASE("line reader: a large plain file reads whole and does not stay resident") {
  // 64 MiB of lines, each naming its number: every line comes back intact across the points where
  // the pages already read are given back, and the process's resident set does not grow by the
  // file's size.
  const std::string path = temp_path("-large.jsonl");
  const std::string pad(300, 'p');
  int written = 0;
  {
    std::ofstream f(path);
    for (std::size_t bytes = 0; bytes < (64u << 20); ++written) {
      const std::string line = "{\"n\":" + std::to_string(written) + ",\"pad\":\"" + pad + "\"}";
      f << line << '\n';
      bytes += line.size() + 1;
    }
  }
  const auto resident_mib = [] {
    std::ifstream statm("/proc/self/statm");
    long size = 0, resident = 0;
    statm >> size >> resident;
    return resident * sysconf(_SC_PAGESIZE) / (1 << 20);
  };
  const long before = resident_mib();
  long most = before;
  std::string err;
  auto r = LineReader::open(path, 1 << 16, err);
  REQUIRE_MESSAGE(r, err);
  LineReader::Line l;
  int n = 0, wrong = 0;
  while (r->next(l)) {
    const std::string want = "{\"n\":" + std::to_string(n) + ",";
    wrong += l.text.substr(0, want.size()) != want || l.text.size() != want.size() + pad.size() + 9;
    ++n;
    if (n % 20000 == 0) most = std::max(most, resident_mib());
  }
  CHECK(r->error().empty());
  CHECK(n == written);
  CHECK(wrong == 0);
  CHECK(most - before < 32);  // MiB; the file is 64
  r.reset();
  std::remove(path.c_str());
}

}  // namespace portalwatch
