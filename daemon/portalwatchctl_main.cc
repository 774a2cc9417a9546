#include "daemon/app.h"

int main(int argc, char** argv) { return portalwatch::portalwatchctl_main(argc, argv); }
