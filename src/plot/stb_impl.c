/* stb_impl.c: the one translation unit that compiles the stb single-header
 * libraries we use: stb_image_write (PNG output) and stb_truetype (text).
 * Everyone else includes <stb/...> for the declarations only. The headers come
 * from Debian's libstb-dev under /usr/include, so they are system headers and
 * their own warnings are not ours. Tests that read PNGs back compile
 * stb_image themselves (STB_IMAGE_IMPLEMENTATION in the test file). */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_TRUETYPE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#include <stb/stb_truetype.h>
