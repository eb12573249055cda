// The page's files as compiled into the server (client/web/files.cmake lists them).
#ifndef PHYSIOREG_CLIENT_WEB_WEB_ASSETS_H_
#define PHYSIOREG_CLIENT_WEB_WEB_ASSETS_H_

#include <string_view>
#include <vector>

namespace physioreg::web {

struct Asset {
  std::string_view path;  // relative to client/web/, e.g. "index.html"
  std::string_view content;
};

const std::vector<Asset>& EmbeddedAssets();

}  // namespace physioreg::web

#endif  // PHYSIOREG_CLIENT_WEB_WEB_ASSETS_H_
