#define PW_DECODER_NS decoder_haswell
#include "detectors/decoder_impl.inc"
