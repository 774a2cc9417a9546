#include "daemon/app.h"

int main(int argc, char** argv) { return portalwatch::portalwatchd_main(argc, argv); }
