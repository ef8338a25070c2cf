mkdir -p dist
cp src/index.js dist/index.js
