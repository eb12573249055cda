# The patients' page: every file physioregd embeds and serves (paths relative to client/web/).
# `/` serves index.html; the others are served at `/<path>`.
set(PHYSIOREG_WEB_FILES
  index.html
  app.js
  i18n.js
  qr.js
  style.css
  favicon.svg
)
