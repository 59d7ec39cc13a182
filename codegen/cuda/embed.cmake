# embed.cmake: turns prelude.cuh into a C file defining cg_cuda_prelude (a
# NUL-terminated array), so the device code lives in a file of its own.
file(READ ${INPUT} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUTPUT} "/* Generated from prelude.cuh by embed.cmake. */\nconst char cg_cuda_prelude[] = {\n${bytes}0x00};\n")
