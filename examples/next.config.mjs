// calsync is a native addon: Next.js must load it from node_modules at run time, not bundle it
// (webpack cannot parse the .node binary; Turbopack would leave it behind and napi's loader would
// not find it).
/** @type {import('next').NextConfig} */
const nextConfig = {
  serverExternalPackages: ['calsync'],
  // Installed from a directory (`npm install ../calsync`, a `file:` dependency), the package is a
  // symlink out of node_modules, which serverExternalPackages does not match: name it for webpack too.
  webpack: (config, { isServer }) => {
    if (isServer) config.externals.push({ calsync: 'commonjs calsync' })
    return config
  },
}

export default nextConfig
