mkdir -p dist
cp src/index.js dist/index.js
# Static assets are served by Cloudflare in front of the Worker.
rm -rf dist/public
cp -R public dist/public
