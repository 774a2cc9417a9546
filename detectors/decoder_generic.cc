#define PW_DECODER_NS decoder_generic
#include "detectors/decoder_impl.inc"
