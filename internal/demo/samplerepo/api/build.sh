mkdir -p dist/lib
cp src/index.js dist/index.js
cp src/lib/status.js dist/lib/status.js
