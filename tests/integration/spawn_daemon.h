// Starting the real `portalwatchd run` as a process. No test framework: the benchmarks use it too.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

extern char** environ;

namespace portalwatch::test {

/// Starts `PORTALWATCHD run --config CONFIG` with stdout to /dev/null and stderr appended to LOG;
/// its pid, or -1 (perror'd).
inline pid_t spawn_daemon_at(const std::string& portalwatchd, const std::string& config, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<std::string> args = {portalwatchd, "run", "--config", config};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, portalwatchd.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    errno = rc;
    std::perror("posix_spawn");
    return -1;
  }
  return pid;
}

}  // namespace portalwatch::test
