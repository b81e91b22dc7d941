/* stb_impl.c: the one translation unit that compiles stb_image_write (the PNG
 * writer of surface.c). Everyone else includes <stb/stb_image_write.h> for the
 * declarations only. The header comes from Debian's libstb-dev under /usr/include,
 * so it is a system header and its own warnings are not ours. Tests that read
 * PNGs back compile stb_image themselves (STB_IMAGE_IMPLEMENTATION in the test). */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
