// Bundles the dashboard (dashboard/: preact + htm) into dist/dashboard, which the coordinator serves at / and
// /static/: one minified script, no CDN, so the page works on hosts without internet.
const esbuild = require('esbuild');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const out = path.join(root, 'dist', 'dashboard');
fs.mkdirSync(out, { recursive: true });
esbuild.buildSync({
  entryPoints: [path.join(root, 'dashboard', 'app.js')],
  outfile: path.join(out, 'app.js'),
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome109', 'firefox115', 'safari16'],
  legalComments: 'none',
});
for (const file of ['index.html', 'style.css'])
  fs.copyFileSync(path.join(root, 'dashboard', file), path.join(out, file));
