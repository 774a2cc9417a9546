#pragma once

namespace portalwatch {
/// portalwatchd's command line: run, replay, demo, check-config, simulate, broker.
int portalwatchd_main(int argc, char** argv);
/// portalwatchctl's command line (daemon/portalwatchctl_main.cc).
int portalwatchctl_main(int argc, char** argv);
}  // namespace portalwatch
